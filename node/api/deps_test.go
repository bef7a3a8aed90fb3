package api

import (
	"os/exec"
	"strings"
	"testing"
)

// forbiddenDeps are what a client of the API must not link: the p2p stack and the store.
var forbiddenDeps = []string{
	"github.com/libp2p/",
	"github.com/cometbft/cometbft-db",
	"github.com/cockroachdb/pebble",
	"github.com/guild-ledger/guild/state",
	"github.com/guild-ledger/guild/node", // the package itself is node/api; see below
}

// The api package stays light: a wallet or explorer that talks to a node must not pull in libp2p
// or the store (state imports cometbft-db and pebble).
func TestNoHeavyDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH: cannot list this package's dependencies")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/guild-ledger/guild/node/api" {
			continue
		}
		for _, bad := range forbiddenDeps {
			if dep == bad || strings.HasPrefix(dep, bad) {
				t.Errorf("node/api depends on %s (forbidden: %s)", dep, bad)
			}
		}
	}
}
