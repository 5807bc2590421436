package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/models"
)

// runAsk answers one or more messages with the bot of the configuration
// (models, policy, demo knowledge) without starting a server, printing
// each reply as JSON: a quick way to see what the bot understood.
//
//	tandem ask [serve flags] "where is my order?" ["and then?" ...]
func runAsk(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, fs, err := parseOfflineFlags("ask", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.Usage = func() {
			fmt.Fprint(fs.Output(), "usage: tandem ask [flags] MESSAGE [MESSAGE ...]\n\nAnswers each message with the bot of the configuration (models, policy, demo knowledge;\nin-memory stores) and prints the replies as JSON. The flags are serve's:\n\n")
			fs.PrintDefaults()
		}
	})
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("ask: give at least one message, e.g. tandem ask \"where is my order?\"")
	}
	for i, text := range fs.Args() {
		// The server refuses such a message; ask must not answer a
		// different text (with U+FFFD) instead.
		if !utf8.ValidString(text) {
			return fmt.Errorf("ask: message %d is not valid UTF-8", i+1)
		}
	}
	rt, err := models.OpenRuntime(cfg.ONNXRuntimeLib)
	if err != nil {
		return fmt.Errorf("ask: %w", err)
	}
	defer rt.Close()
	b, err := buildBot(ctx, rt, cfg, botOptions{})
	if err != nil {
		return err
	}
	defer b.Close()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	for i, text := range fs.Args() {
		r, err := b.Respond(ctx, tandem.Turn{ConversationID: "ask", MessageSeq: int64(i + 1), Text: text, Time: time.Now()})
		if err != nil {
			return fmt.Errorf("ask %q: %w", strings.TrimSpace(text), err)
		}
		if err := enc.Encode(map[string]any{"text": text, "reply": r}); err != nil {
			return err
		}
	}
	return nil
}
