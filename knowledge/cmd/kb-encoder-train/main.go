// Command kb-encoder-train trains the knowledge-base sentence encoder that
// the server uses for vector retrieval and writes it, as int8 ONNX plus a
// manifest (kb-encoder.onnx, kb-encoder.json), into a model directory.
//
// Training data: the demo pack's FAQ phrasings (one label per FAQ) and, when
// present, the intent-labelled utterances of CLINC150 (train + val) and
// Bitext customer support (labels are namespaced per dataset). The result
// is loaded with ONNX Runtime before it is written, so a file that exists
// is known to run.
//
//	go run ./knowledge/cmd/kb-encoder-train -out models/default
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/tandem-chat/tandem/knowledge/embed/trainer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := trainer.Run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kb-encoder-train:", err)
		os.Exit(1)
	}
}
