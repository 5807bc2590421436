package tandem_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tandem-chat/tandem"

type listedPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) map[string]listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(out)
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// top returns the top-level folder of a module package ("" for the root).
func top(path string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	if i := strings.IndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return rel
}

func inModule(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

// concreteDrivers are the technologies whose adapters only cmd may wire.
var concreteDrivers = []string{"github.com/jackc/pgx", "github.com/nats-io/"}

// TestImportRules enforces the dependency rules of DESIGN.md on non-test code:
//   - the root package imports only the standard library;
//   - nlp, knowledge and handoff never import each other, pipeline, gateway, eval or cmd;
//   - models imports only the root among module packages (and itself);
//   - pipeline never imports handoff, gateway, eval or cmd;
//   - a package that talks to a concrete driver (pgx, NATS) is an adapter, and
//     adapters are imported across top-level folders only by cmd.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	forbidden := map[string][]string{
		"nlp":       {"knowledge", "handoff", "pipeline", "gateway", "eval", "cmd"},
		"knowledge": {"nlp", "handoff", "pipeline", "gateway", "eval", "cmd"},
		"handoff":   {"nlp", "knowledge", "pipeline", "gateway", "eval", "cmd"},
		"models":    {"nlp", "knowledge", "handoff", "pipeline", "gateway", "eval", "cmd"},
		"pipeline":  {"handoff", "gateway", "eval", "cmd"},
		"gateway":   {"eval", "cmd"},
		"eval":      {"gateway", "cmd"},
	}
	adapter := map[string]bool{}
	for path, p := range pkgs {
		for _, imp := range p.Imports {
			for _, d := range concreteDrivers {
				if strings.HasPrefix(imp, d) {
					adapter[path] = true
				}
			}
		}
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for path, p := range pkgs {
		from := top(path)
		for _, imp := range p.Imports {
			if path == module {
				if strings.Contains(strings.Split(imp, "/")[0], ".") {
					t.Errorf("root package imports non-standard %s", imp)
				}
				continue
			}
			if !inModule(imp) {
				continue
			}
			to := top(imp)
			for _, f := range forbidden[from] {
				if to == f {
					t.Errorf("%s imports %s: %s may not import %s", path, imp, from, f)
				}
			}
			// internal/ holds shared driver plumbing (migrations, test
			// databases) that adapters in any folder may use.
			if adapter[imp] && from != "cmd" && from != to && from != "internal" && to != "internal" {
				t.Errorf("%s imports adapter %s: only cmd wires concrete adapters across packages", path, imp)
			}
		}
	}
}
