package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/pgstore"
)

const agentUsage = `usage: tandem agent <command> [flags]

commands:
  create     create an agent account (prompts for the password, or --password-stdin)
  list       list agent accounts
  update     change an agent's profile (--email to find it; --role, --name, --skills,
             --languages, --max-chats, --new-email: only the flags given change; a
             role change ends the agent's tokens and open consoles)
  password   set an agent's password (--email; prompts, or --password-stdin), e.g. the
             demo agent's, whose password the server prints only when it creates it

All work on the PostgreSQL store of DATABASE_URL (or --database-url). With
the in-memory store (no DATABASE_URL) agents live inside the running server:
use its admin API, POST /api/v1/agents (docs/openapi-agents.yaml).
`

// runAgent runs `tandem agent ...`. stdin is read for the password.
func runAgent(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, agentUsage)
		return errUsage
	}
	switch args[0] {
	case "create":
		return runAgentCreate(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "list":
		return runAgentList(ctx, args[1:], getenv, stdout, stderr)
	case "password":
		return runAgentPassword(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "update":
		return runAgentUpdate(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, agentUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "tandem agent: unknown command %q\n\n%s", args[0], agentUsage)
		return errUsage
	}
}

// openAgentEngine opens the Postgres handoff store and an engine over it
// (no routing runs: only account calls are made).
//
// Only create may set the schema up in a database that has none (the
// first account before the first start); list, password and update refuse
// one: a mistyped database name got the schema, and an empty list.
func openAgentEngine(ctx context.Context, databaseURL string, mayCreate bool) (*handoff.Engine, func(), error) {
	if databaseURL == "" {
		return nil, nil, errors.New("agent: DATABASE_URL (or --database-url) is required; without a database, agents live in the running server: use POST /api/v1/agents")
	}
	if err := (Config{DatabaseURL: databaseURL}).validateDatabaseURL(); err != nil {
		return nil, nil, err
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !mayCreate {
		if err := requireHandoffSchema(octx, databaseURL); err != nil {
			return nil, nil, err
		}
	}
	store, err := pgstore.Open(octx, databaseURL, pgstore.Options{MaxConns: 2})
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	eng, err := handoff.New(store, handoff.Config{Node: "cli", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	return eng, func() {
		_ = eng.Close(context.Background())
		_ = store.Close()
	}, nil
}

// requireHandoffSchema fails unless the database has Tandem's handoff
// tables.
func requireHandoffSchema(ctx context.Context, databaseURL string) error {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("agent: connect to DATABASE_URL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('handoff_agents') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("agent: read DATABASE_URL's schema: %w", err)
	}
	if !exists {
		return errors.New("agent: this database has no Tandem agents (no handoff tables): is DATABASE_URL the service's database? (`tandem agent create` or a first `tandem serve` sets one up)")
	}
	return nil
}

// validateDatabaseURL checks only the database URL setting.
func (c Config) validateDatabaseURL() error {
	d := DefaultConfig()
	d.DatabaseURL = c.DatabaseURL
	if err := d.Validate(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runAgentCreate(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem agent create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "login email (required)")
	name := fs.String("name", "", "display name shown to customers (default: the email's local part)")
	skills := fs.String("skills", "", "comma-separated skills, e.g. billing,returns")
	languages := fs.String("languages", "", "comma-separated languages the agent serves, e.g. en,de")
	maxChats := fs.Int("max-chats", 0, "concurrent chats (0 = 3)")
	role := fs.String("role", handoff.RoleAgent, "agent or admin")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	if err := parseAgentFlags(fs, args, "agent create", email); err != nil {
		return err
	}
	if *role != handoff.RoleAgent && *role != handoff.RoleAdmin {
		return fmt.Errorf("agent create: invalid --role %q: accepted values: agent, admin", *role)
	}
	if *maxChats < 0 || *maxChats > handoff.MaxChatsLimit {
		return fmt.Errorf("agent create: invalid --max-chats %d: accepted values: 1..%d (0 = default)", *maxChats, handoff.MaxChatsLimit)
	}
	password, err := readValidPassword(stdin, stderr, *passwordStdin, "agent create")
	if err != nil {
		return err
	}
	eng, closeEng, err := openAgentEngine(ctx, *dbURL, true)
	if err != nil {
		return err
	}
	defer closeEng()
	a, err := eng.CreateAgent(ctx, tandem.Agent{Email: strings.TrimSpace(*email), DisplayName: strings.TrimSpace(*name), Role: *role,
		Skills: splitList(*skills), Languages: splitList(*languages), MaxChats: *maxChats}, password)
	if err != nil {
		return agentError("agent create", err)
	}
	fmt.Fprintf(stdout, "created %s %s <%s> (%s, max %d chats", a.ID, a.DisplayName, a.Email, a.Role, a.MaxChats)
	if len(a.Skills) > 0 {
		fmt.Fprintf(stdout, ", skills %s", strings.Join(a.Skills, ","))
	}
	if len(a.Languages) > 0 {
		fmt.Fprintf(stdout, ", languages %s", strings.Join(a.Languages, ","))
	}
	fmt.Fprintln(stdout, ")")
	return nil
}

func runAgentPassword(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem agent password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "login email of the account (required)")
	passwordStdin := fs.Bool("password-stdin", false, "read the new password from the first line of standard input")
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	if err := parseAgentFlags(fs, args, "agent password", email); err != nil {
		return err
	}
	password, err := readValidPassword(stdin, stderr, *passwordStdin, "agent password")
	if err != nil {
		return err
	}
	eng, closeEng, err := openAgentEngine(ctx, *dbURL, false)
	if err != nil {
		return err
	}
	defer closeEng()
	a, err := agentByEmail(ctx, eng, *email, "agent password")
	if err != nil {
		return err
	}
	if err := eng.SetPassword(ctx, a.ID, password); err != nil {
		return fmt.Errorf("agent password: %w", err)
	}
	fmt.Fprintf(stdout, "password set for %s <%s>\n", a.ID, a.Email)
	return nil
}

// agentByEmail finds the agent with the email, case-insensitively.
func agentByEmail(ctx context.Context, eng *handoff.Engine, email, cmd string) (tandem.Agent, error) {
	agents, err := eng.Agents(ctx)
	if err != nil {
		return tandem.Agent{}, fmt.Errorf("%s: %w", cmd, err)
	}
	email = norm.NFC.String(strings.TrimSpace(email))
	i := slices.IndexFunc(agents, func(a tandem.Agent) bool { return strings.EqualFold(norm.NFC.String(a.Email), email) })
	if i < 0 {
		return tandem.Agent{}, fmt.Errorf("%s: no agent has the email %q", cmd, email)
	}
	return agents[i], nil
}

// agentError is an engine error for the command line: a client fault's
// message alone, an internal error wrapped.
func agentError(cmd string, err error) error {
	if tandem.ErrorCode(err) != tandem.EINTERNAL {
		return fmt.Errorf("%s: %s", cmd, tandem.ErrorMessage(err))
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

func runAgentUpdate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem agent update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "login email of the account (required)")
	newEmail := fs.String("new-email", "", "new login email")
	name := fs.String("name", "", "new display name (empty: the email's local part)")
	role := fs.String("role", "", "new role: agent or admin (ends the agent's tokens)")
	skills := fs.String("skills", "", "new comma-separated skills (empty: none)")
	languages := fs.String("languages", "", "new comma-separated languages (empty: none)")
	maxChats := fs.Int("max-chats", 0, "new number of concurrent chats (1-100)")
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	if err := parseAgentFlags(fs, args, "agent update", email); err != nil {
		return err
	}
	var p handoff.AgentPatch
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "new-email":
			p.Email = ptr(strings.TrimSpace(*newEmail))
		case "name":
			p.DisplayName = ptr(strings.TrimSpace(*name))
		case "role":
			p.Role = role
		case "skills":
			p.Skills = ptr(splitList(*skills))
		case "languages":
			p.Languages = ptr(splitList(*languages))
		case "max-chats":
			p.MaxChats = maxChats
		}
	})
	if p.Empty() {
		return errors.New("agent update: nothing to change: give --role, --name, --skills, --languages, --max-chats or --new-email")
	}
	if p.Role != nil && *p.Role != handoff.RoleAgent && *p.Role != handoff.RoleAdmin {
		return fmt.Errorf("agent update: invalid --role %q: accepted values: agent, admin", *p.Role)
	}
	if p.MaxChats != nil && (*p.MaxChats < 1 || *p.MaxChats > handoff.MaxChatsLimit) {
		return fmt.Errorf("agent update: invalid --max-chats %d: accepted values: 1..%d", *p.MaxChats, handoff.MaxChatsLimit)
	}
	eng, closeEng, err := openAgentEngine(ctx, *dbURL, false)
	if err != nil {
		return err
	}
	defer closeEng()
	found, err := agentByEmail(ctx, eng, *email, "agent update")
	if err != nil {
		return err
	}
	a, err := eng.PatchAgent(ctx, found.ID, p)
	if err != nil {
		return agentError("agent update", err)
	}
	fmt.Fprintf(stdout, "updated %s %s <%s> (%s, max %d chats, skills %s, languages %s)\n", a.ID, a.DisplayName, a.Email, a.Role, a.MaxChats,
		orNone(strings.Join(a.Skills, ",")), orNone(strings.Join(a.Languages, ",")))
	return nil
}

func ptr[T any](v T) *T { return &v }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// parseAgentFlags parses an agent command's flags (secret defaults hidden
// from its help): no positional arguments, and --email required. email is
// the flag's variable, read after parsing.
func parseAgentFlags(fs *flag.FlagSet, args []string, cmd string, email *string) error {
	hideSecretDefaults(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if strings.TrimSpace(*email) == "" {
		return fmt.Errorf("%s: --email is required", cmd)
	}
	return nil
}

// readValidPassword reads the password (readPassword) and checks its length.
func readValidPassword(stdin io.Reader, stderr io.Writer, fromStdin bool, cmd string) (string, error) {
	password, err := readPassword(stdin, stderr, fromStdin)
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if err := handoff.CheckPassword(password); err != nil {
		return "", fmt.Errorf("%s: %s", cmd, tandem.ErrorMessage(err))
	}
	return password, nil
}

// readPassword reads the password from stdin's first line (fromStdin) or
// prompts twice on the terminal without echo.
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, isFile := stdin.(*os.File)
	if !isFile {
		return "", errors.New("no terminal to prompt on: pass --password-stdin")
	}
	p1, ok, err := readSecret(f, stderr, "Password: ")
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("standard input is not a terminal: pass --password-stdin")
	}
	p2, _, err := readSecret(f, stderr, "Repeat password: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("the passwords do not match")
	}
	return p1, nil
}

func runAgentList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem agent list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	hideSecretDefaults(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return fmt.Errorf("agent list: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("agent list: unexpected argument %q", fs.Arg(0))
	}
	eng, closeEng, err := openAgentEngine(ctx, *dbURL, false)
	if err != nil {
		return err
	}
	defer closeEng()
	agents, err := eng.Agents(ctx)
	if err != nil {
		return fmt.Errorf("agent list: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLE\tSKILLS\tLANGUAGES\tMAX\tDISABLED")
	for _, a := range agents {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%v\n", a.ID, a.Email, a.DisplayName, a.Role,
			strings.Join(a.Skills, ","), strings.Join(a.Languages, ","), a.MaxChats, a.Disabled)
	}
	return tw.Flush()
}
