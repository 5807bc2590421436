package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestOfflineCommandsRefuseIgnoredArguments: loadgen and eval-bot have no
// positional arguments; one (a concurrency level, a data spec without
// --data) or a negative count used to be accepted and silently ignored.
func TestOfflineCommandsRefuseIgnoredArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"loadgen", "--turns", "10", "256"}, "unexpected argument"},
		{[]string{"loadgen", "--unique", "-5"}, "--unique"},
		{[]string{"eval-bot", "--data", "tandem:x.yml", "tandem:y.yml"}, "unexpected argument"},
		{[]string{"eval-bot", "--data", "tandem:x.yml", "--concurrency", "-1"}, "--concurrency"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), c.args, func(string) string { return "" }, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want one naming %q", c.args, err, c.want)
		}
	}
}

// TestAgentListRefusesArguments: `tandem agent list` takes no argument
// (an email given to it was ignored and every agent listed).
func TestAgentListRefusesArguments(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"agent", "list", "--database-url", "postgres://u@127.0.0.1:1/x", "ada@example.com"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "unexpected argument") {
		t.Fatalf("err = %v, want an unexpected argument error", err)
	}
}
