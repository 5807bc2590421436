package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
)

// TestAsk: `tandem ask` answers with the bot of the default models, whose
// rule extractor knows the training data's lookup tables and synonyms
// (models/data/demo.yml: "NYC" is the city New York); a message that is
// not valid UTF-8 is refused rather than answered as another text.
func TestAsk(t *testing.T) {
	env := map[string]string{"ONNXRUNTIME_LIB": testenv.ONNXRuntimeLib(t), "TANDEM_MODEL_DIR": testenv.ModelDir(t)}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"ask", "please ship it to NYC"}, testGetenv(env), &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var got struct {
		Reply struct {
			NLU struct {
				Entities []struct{ Type, Text, Value, Source string }
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	found := false
	for _, e := range got.Reply.NLU.Entities {
		found = found || e.Type == "city" && e.Text == "NYC" && e.Value == "New York" && e.Source == "lookup"
	}
	if !found {
		t.Fatalf("no city lookup entity NYC = New York in %+v", got.Reply.NLU.Entities)
	}

	out.Reset()
	err := run(context.Background(), []string{"ask", "hello \xff\xfe world"}, testGetenv(env), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "UTF-8") || out.Len() > 0 {
		t.Fatalf("invalid UTF-8: err %v, output %q", err, out.String())
	}
}
