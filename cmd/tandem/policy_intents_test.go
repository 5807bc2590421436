package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/knowledge/demo"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/pipeline"
)

// TestPolicyIntentsCheckCoversEveryIntentKey: a typo in human_intents,
// labels or an "intent:NAME" skill would silently never fire, like one in
// responses or escalation.intents, so it fails the start too.
func TestPolicyIntentsCheckCoversEveryIntentKey(t *testing.T) {
	labels := []string{"greet", "complaint", "contact_human_agent"}
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"human_intents", "escalation:\n  human_intents: [talk_to_human]\n", "escalation.human_intents: talk_to_human"},
		{"labels", "labels:\n  greet: Hello\n  gret: Typo\n", "labels: gret"},
		{"skills", "escalation:\n  skills:\n    \"intent:complain\": [complaints]\n", "escalation.skills: complain"},
	} {
		p, err := pipeline.ParsePolicy([]byte(c.yaml))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		err = checkPolicyIntents(p, labels)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: checkPolicyIntents = %v, want an error naming %q", c.name, err, c.want)
		}
	}
	// Known names pass, and so does the default human_intents with a model
	// that lacks its label (the key was left out).
	ok, err := pipeline.ParsePolicy([]byte("escalation:\n  human_intents: [contact_human_agent]\n  skills:\n    \"intent:complaint\": [complaints]\n    vip: [vip]\nlabels:\n  greet: Hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPolicyIntents(ok, labels); err != nil {
		t.Errorf("valid policy: %v", err)
	}
	if err := checkPolicyIntents(pipeline.DefaultPolicy(), []string{"greet"}); err != nil {
		t.Errorf("default policy with a model without contact_human_agent: %v", err)
	}
}

// TestDemoPolicyIntentsKnownToDefaultModel: the stricter check still
// accepts the embedded demo policy with the default model.
func TestDemoPolicyIntentsKnownToDefaultModel(t *testing.T) {
	p, err := loadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.ReadManifest(testenv.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPolicyIntents(p, m.Models["intent"].Labels); err != nil {
		t.Fatal(err)
	}
}

// TestDemoFAQIntentsKnownToDefaultModel: a demo FAQ linked to an intent
// links to one the default model predicts; a link to any other name never
// fires (the pipeline answers from the linked FAQ of a confident intent).
func TestDemoFAQIntentsKnownToDefaultModel(t *testing.T) {
	faqs, err := demo.FAQs()
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.ReadManifest(testenv.ModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	labels := m.Models["intent"].Labels
	for _, f := range faqs {
		if f.Intent != "" && !slices.Contains(labels, f.Intent) {
			t.Errorf("demo FAQ %q links to intent %q, which the default model does not have", f.Question, f.Intent)
		}
	}
}

// TestPolicyIntentsErrorNamesFiles: the start-up error for a policy that
// names intents the model lacks says which policy file and model directory
// (it named neither).
func TestPolicyIntentsErrorNamesFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte("escalation: {intents: [no_such_intent]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ONNXRUNTIME_LIB": testenv.ONNXRuntimeLib(t), "TANDEM_MODEL_DIR": testenv.ModelDir(t)}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"ask", "--policy", p, "hello"}, testGetenv(env), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "no_such_intent") || !strings.Contains(err.Error(), testenv.ModelDir(t)) {
		t.Fatalf("err = %v, want the policy file, the model directory and the intent named", err)
	}
}
