// Command tandem is Tandem's single binary.
//
//	tandem serve   run the chat service (gateway, bot pipeline, handoff)
//	tandem train   train intent and entity models from labelled data
//	tandem eval    evaluate models (and later the whole bot) on labelled data
//	tandem train-encoder train the knowledge base's sentence encoder
//	tandem eval-bot evaluate the whole bot (answers, handoffs) on held-out messages
//	tandem ask     answer messages with the configured bot and print the replies
//	tandem agent   create, list agent accounts and set passwords (PostgreSQL)
//	tandem loadgen measure whole-turn latency and throughput of the bot
//
// Run `tandem <command> -h` for each command's flags. Configuration of
// `serve` comes from flags and environment variables (flags win); see
// Config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/tandem-chat/tandem/knowledge/embed/trainer"
)

// defaultGCPercent replaces Go's default GOGC of 100 when GOGC is unset.
// The live Go heap is small (model weights live in ONNX Runtime's memory)
// while every turn allocates, so collecting less often buys 10-30% more
// turns per second for a few hundred MB at most (docs/operations.md).
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal (a graceful stop has begun), restore the
		// default handling: a second Ctrl-C or SIGTERM ends the process at
		// once instead of being swallowed until the shutdown timeout.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "tandem:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `usage: tandem <command> [flags]

commands:
  serve   run the chat service
  train   train intent and entity models
  eval    evaluate models on labelled data
  train-encoder  train the knowledge base's sentence encoder
  eval-bot       evaluate the whole bot on held-out labelled messages
  ask     answer messages with the bot and print the replies as JSON
  loadgen measure whole-turn latency and throughput (docs/benchmarks.md)
  agent   agent accounts on DATABASE_URL: create, list, password, update (tandem agent create --email ...)
`

// run dispatches a subcommand. It is main without the process: tests call
// it. A subcommand's -h (its flags printed) is a success.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := dispatch(ctx, args, getenv, stdout, stderr); !errors.Is(err, flag.ErrHelp) {
		return err
	}
	return nil
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "train":
		return runTrain(ctx, rest, stdout, stderr)
	case "eval":
		return runEvalNLU(ctx, rest, stdout, stderr)
	case "train-encoder":
		return trainer.Run(ctx, rest, stderr)
	case "eval-bot":
		return runEvalBot(ctx, rest, getenv, stdout, stderr)
	case "ask":
		return runAsk(ctx, rest, getenv, stdout, stderr)
	case "loadgen":
		return runLoadgen(ctx, rest, getenv, stdout, stderr)
	case "agent":
		return runAgent(ctx, rest, getenv, os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "tandem: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// runServe runs the server until ctx is cancelled (SIGINT/SIGTERM), then
// shuts it down within the configured deadline.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	m := NewMain(stdout, stderr)
	if err := m.ParseFlags(args, getenv); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		_ = m.Close()
		return err
	}
	<-ctx.Done()
	m.Logger.Info("shutting down", "deadline", m.Config.ShutdownTimeout)
	return m.Close()
}
