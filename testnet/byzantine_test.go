//go:build byzantine

package testnet

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
)

// TestByzantineModes runs, for each misbehaviour, a 4-node testnet under load whose node 4 turns
// Byzantine halfway through, and expects the chain to keep finalizing with every invariant
// holding. Run it with make byzantine-test (-tags byzantine); it is not part of make test.
func TestByzantineModes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guild twice and runs a testnet per Byzantine mode; skipped with -short")
	}
	bin := buildGuild(t)
	byz := buildGuildTags(t, "byzantine")
	for _, mode := range node.ByzantineModes {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "net")
			t.Cleanup(func() {
				if _, err := Down(dir); err != nil {
					t.Errorf("Down: %v", err)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var progress strings.Builder
			r, err := RunChaos(ctx, ChaosOptions{
				Dir:        dir,
				Create:     CreateOptions{Validators: 4, Backend: "pebbledb", Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor},
				Binary:     bin,
				Passphrase: testPassphrase,
				Duration:   30 * time.Second,
				Interval:   time.Hour, // no crash faults: the hostile node is the one fault
				Faults:     []string{FaultKill},
				Rate:       200,
				Accounts:   16,
				Byzantine:  mode, ByzantineNode: 4, ByzantineBinary: byz,
				Progress: &progress,
			})
			var report strings.Builder
			if r != nil {
				r.WriteText(&report)
			}
			if err != nil {
				t.Fatalf("chaos: %v\n%s\n%s", err, progress.String(), report.String())
			}
			if !r.OK() {
				t.Fatalf("invariants violated with a %s validator:\n%s\n%s", mode, progress.String(), report.String())
			}
			if r.HostileAt.IsZero() {
				t.Fatalf("node 4 never turned %s:\n%s", mode, progress.String())
			}
			if r.Check.After.Blocks < 3 {
				t.Fatalf("%d blocks in the hostile half: the chain stopped finalizing\n%s", r.Check.After.Blocks, report.String())
			}
			t.Logf("\n%s", report.String())
		})
	}
}

// buildGuildTags builds guild with build tags (once per run).
func buildGuildTags(t *testing.T, tags string) string {
	t.Helper()
	bin, err := buildCached(tags)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
