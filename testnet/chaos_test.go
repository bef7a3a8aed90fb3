package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChaosShort runs a short chaos run on a real 4-node testnet — load, one node killed and one
// paused, each brought back — and expects every invariant to hold and the nodes back at the tip.
// The pause is long enough, under enough load, that the backlog a resumed node reads at once is
// well over its peers' rate limits: charged to them as flooding, it cut all three off.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guild and runs a 4-node testnet for about a minute; skipped with -short")
	}
	bin := buildGuild(t)
	dir := filepath.Join(t.TempDir(), "chaos")
	t.Cleanup(func() {
		if _, err := Down(dir); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var progress strings.Builder
	r, err := RunChaos(ctx, ChaosOptions{
		Dir:        dir,
		Create:     CreateOptions{Validators: 4, Backend: "pebbledb", Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor},
		Binary:     bin,
		Passphrase: testPassphrase,
		Seed:       2,
		Duration:   45 * time.Second,
		Interval:   15 * time.Second,
		Downtime:   12 * time.Second,
		Faults:     []string{FaultKillLeader, FaultPause},
		Rate:       500,
		Accounts:   16,
		Progress:   &progress,
	})
	var report strings.Builder
	if r != nil {
		r.WriteText(&report)
	}
	if err != nil {
		t.Fatalf("chaos: %v\n%s\n%s", err, progress.String(), report.String())
	}
	if !r.OK() {
		t.Fatalf("invariants violated:\n%s\n%s", progress.String(), report.String())
	}
	kinds := map[string]bool{}
	for _, f := range r.Faults {
		kinds[f.Fault] = true
		if f.Err != "" || f.CaughtUp < 0 {
			t.Errorf("fault %+v: not brought back to the tip", f)
		}
		if f.NextBlock < 0 || f.NextCommit < 0 {
			t.Errorf("fault %+v: no block after it", f)
		}
	}
	if len(r.Faults) != 2 || !kinds[FaultKillLeader] || !kinds[FaultPause] {
		t.Errorf("faults %v: want 2, a pause of node1 and a kill of the leader (seed 2)", kinds)
	}
	if r.Check.Invariant(InvAckedKept).Checked == 0 || r.Check.Checked < 20 {
		t.Errorf("checked %d heights and %d acknowledged txs: the run did too little", r.Check.Checked, r.Check.Invariant(InvAckedKept).Checked)
	}
	t.Logf("\n%s", report.String())
}

// TestChaosRefusesABinaryThatCannotMisbehave: a release build given as --byzantine-binary would
// fail to start with --byzantine, and the hostile half would measure a stopped node while the
// run reported success; the run refuses it before it starts.
func TestChaosRefusesABinaryThatCannotMisbehave(t *testing.T) {
	dir := t.TempDir()
	script := func(name, help string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+help+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	release := script("release", "--home value  the node home")
	byz := script("byz", "--byzantine MODE  MODE: misbehave on purpose: silent, replay")
	for _, c := range []struct {
		binary, mode string
		ok           bool
	}{{release, "replay", false}, {byz, "replay", true}, {byz, "flood", false}} {
		o := ChaosOptions{Binary: byz, Byzantine: c.mode, ByzantineBinary: c.binary}
		err := o.defaults()
		if c.ok && err != nil {
			t.Errorf("%s as --byzantine %s: %v", filepath.Base(c.binary), c.mode, err)
		}
		if !c.ok && (!errors.Is(err, ErrChaos) || !strings.Contains(fmt.Sprint(err), "make byzantine-bin")) {
			t.Errorf("%s as --byzantine %s: got %v, want ErrChaos naming make byzantine-bin", filepath.Base(c.binary), c.mode, err)
		}
	}
}
