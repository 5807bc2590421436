// Package trainer is the command-line trainer of the knowledge base's
// sentence encoder (`tandem train-encoder`, `kb-encoder-train`): it trains
// on the demo pack's FAQ phrasings (one label per FAQ) and, when present,
// the intent-labelled utterances of CLINC150 (train + val) and Bitext
// customer support (labels namespaced per dataset), and writes
// kb-encoder.onnx (int8) and kb-encoder.json into a model directory. The
// export is loaded with ONNX Runtime before it is written, so a file that
// exists is known to run.
package trainer

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/demo"
	"github.com/tandem-chat/tandem/knowledge/embed"
	"github.com/tandem-chat/tandem/models"
)

// Run trains the encoder as the command line args say and writes it into
// the output directory: `tandem train-encoder` and kb-encoder-train.
func Run(ctx context.Context, args []string, log io.Writer) error {
	fs := flag.NewFlagSet("train-encoder", flag.ContinueOnError)
	fs.SetOutput(log)
	data := fs.String("data", filepath.Join("..", "shared", "datasets"), "datasets directory (optional)")
	out := fs.String("out", filepath.Join("models", "default"), "output model directory")
	lib := fs.String("onnxruntime-lib", os.Getenv("ONNXRUNTIME_LIB"), "ONNX Runtime library (to verify the export)")
	epochs := fs.Int("epochs", 10, "training epochs")
	dim := fs.Int("dim", 128, "embedding size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ex []embed.Example
	faqs, err := demo.FAQs()
	if err != nil {
		return err
	}
	for _, f := range faqs {
		for _, t := range knowledge.Texts(f) {
			// The demo pack is small next to the public data: repeat it so
			// its labels are learned as well as the intents.
			for range 4 {
				ex = append(ex, embed.Example{Text: t, Label: "faq:" + f.ExternalID})
			}
		}
	}
	nDemo := len(ex)
	if b, err := os.ReadFile(filepath.Join(*data, "clinc150", "data_full.json")); err == nil {
		var raw map[string][][2]string
		if err := json.Unmarshal(b, &raw); err != nil {
			return fmt.Errorf("clinc150: %w", err)
		}
		for _, split := range []string{"train", "val"} {
			for _, r := range raw[split] {
				ex = append(ex, embed.Example{Text: r[0], Label: "clinc:" + r[1]})
			}
		}
	}
	if f, err := os.Open(filepath.Join(*data, "bitext-customer-support", "bitext_customer_support_20k.csv")); err == nil {
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			return fmt.Errorf("bitext: %w", err)
		}
		if len(rows) > 0 {
			rows = rows[1:] // the header
		}
		for _, r := range rows {
			if len(r) >= 4 {
				ex = append(ex, embed.Example{Text: r[1], Label: "bitext:" + r[3]})
			}
		}
	}
	fmt.Fprintf(log, "training on %d examples (%d from the demo pack)\n", len(ex), nDemo)
	enc, err := embed.Train(ctx, ex, embed.TrainConfig{Epochs: *epochs, Dim: *dim, Logf: func(f string, a ...any) { fmt.Fprintf(log, f+"\n", a...) }})
	if err != nil {
		return err
	}
	model, man := enc.Export("kb-encoder")
	if *lib != "" {
		rt, err := models.OpenRuntime(*lib)
		if err != nil {
			return err
		}
		l, err := embed.NewLocal(rt, model, man)
		if err != nil {
			rt.Close()
			return fmt.Errorf("exported model does not load: %w", err)
		}
		if _, err := l.Embed(ctx, []string{"where is my order"}); err != nil {
			return fmt.Errorf("exported model does not run: %w", err)
		}
		l.Close()
		rt.Close()
	}
	if err := embed.WriteFiles(*out, model, man); err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %s (%s, %d bytes)\n", filepath.Join(*out, embed.ModelFile), man.Version, len(model))
	return nil
}
