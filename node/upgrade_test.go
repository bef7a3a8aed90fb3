package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// An upgrade scheduled by governance binds from its height: a binary that supports the new
// version makes the blocks from there under it (and those before under the old one); the default
// binary, which does not, stops after the block before the activation height, with nothing of
// that height signed or executed, and refuses to start again.
func TestUpgradeStopsBeforeActivationHeight(t *testing.T) {
	home, key := memberHome(t, "pebbledb", func(c *Config) { c.Consensus.EmptyBlockMillis = 20 })
	n, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	select {
	case <-n.Started():
	case err := <-done:
		t.Fatalf("node failed to start: %v", err)
	}
	c := api.NewClient(n.APIAddr())
	at := n.executedHeight() + state.MinUpgradeDelay + 8
	commitAll(t, ctx, c, n.chainID, key, 0, state.TxBody{GovPropose: &state.GovPropose{ID: "up-1",
		Upgrade: &state.Upgrade{Name: "ballots-32", Version: 2, Height: at, Info: "guild v2"}}})
	ups, err := c.Upgrades(ctx)
	if err != nil || len(ups.Upgrades) != 1 || ups.Upgrades[0].Height != at || ups.Upgrades[0].Status != "scheduled" ||
		ups.ProtocolVersion != 1 || ups.SupportedVersion != state.SupportedVersion {
		t.Fatalf("GET /v1/upgrades = %+v, %v", ups, err)
	}
	if got := scrapeMetric(t, ctx, n, "guild_upgrade_pending_height"); got != fmt.Sprint(at) {
		t.Errorf("guild_upgrade_pending_height = %q, want %d", got, at)
	}

	if state.SupportedVersion >= 2 {
		for h, want := range map[uint64]uint32{at - 1: 1, at: 2, at + 1: 2} {
			b, err := c.BlockWait(ctx, h, 20*time.Second)
			if err != nil || b.Header.Version != want {
				t.Fatalf("block %d: version %d (%v), want %d", h, b.Header.Version, err, want)
			}
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return
	}

	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		t.Fatalf("the node did not stop at the activation height %d (at %d)", at, n.blocks.Height())
	}
	var up *UpgradeRequiredError
	if !errors.As(runErr, &up) || !errors.Is(runErr, ErrUpgradeRequired) || up.Height != at || up.Upgrade.Name != "ballots-32" {
		t.Fatalf("Run returned %v, want the upgrade ballots-32 required at %d", runErr, at)
	}
	for _, want := range []string{`"ballots-32"`, fmt.Sprintf("at height %d", at), "install a binary that supports protocol version 2 and restart"} {
		if !strings.Contains(runErr.Error(), want) {
			t.Errorf("message %q lacks %q", runErr, want)
		}
	}
	if r := strings.Join(n.readiness(nil), "; "); !strings.Contains(r, "protocol upgrade required") {
		t.Errorf("readiness reasons %q do not report the upgrade", r)
	}
	if got := n.blocks.Height(); got != at-1 {
		t.Fatalf("stopped at height %d, want %d: the activation height must not be committed", got, at-1)
	}
	// Nothing signed at the activation height: the WAL holds no message of it.
	wal, restored, err := OpenWAL(filepath.Join(home, DataDir, WALFile))
	if err != nil {
		t.Fatal(err)
	}
	wal.Close()
	for _, m := range restored {
		if m.Height >= at {
			t.Fatalf("the WAL holds a %v signed at height %d", m.Type, m.Height)
		}
	}
	if _, err := New(home, nil); !errors.Is(err, ErrUpgradeRequired) {
		t.Fatalf("restarting the same binary: %v, want ErrUpgradeRequired", err)
	}
}

// A validator refuses a proposal whose header names a protocol version other than the one in
// force at its height; a header without a version (0) reads as version 1.
func TestUpgradeProposalVersionChecked(t *testing.T) {
	_, n := validatorOfSyncChain(t)
	turn := n.leadersAt(1)
	for _, tc := range []struct {
		version uint32
		ok      bool
	}{{2, false}, {3, false}, {0, true}, {1, true}} {
		b := Block{Header: Header{ChainID: n.chainID, Height: 1, Time: n.lastTime + 1, PrevHash: n.lastHash,
			StateRoot: n.st.Root(), TxsHash: TxsHash(nil), Proposer: turn.leader, Leader: turn.leader,
			Version: tc.version}, Txs: [][]byte{}}
		v, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		err = n.CheckProposal(1, v)
		if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrBadBlock) {
			t.Errorf("version %d: %v", tc.version, err)
		}
	}
}

// A binary that follows an upgrade logs its activation once, when the node reaches its height;
// not before, not for an upgrade it cannot follow (that one stops the node instead).
func TestUpgradeActivationLogged(t *testing.T) {
	var buf bytes.Buffer
	n := &Node{log: slog.New(slog.NewTextHandler(&buf, nil))}
	us := []state.Upgrade{{Name: "ballots-32", Height: 20, Version: 2, Info: "guild v2"}, {Name: "next-one", Height: 40, Version: 3}}
	for _, next := range []uint64{19, 20, 20, 21, 40} {
		n.noteActivation(us, next, 2)
	}
	out := buf.String()
	if got := strings.Count(out, "activated"); got != 1 {
		t.Fatalf("%d activation lines, want 1 (version 3 is not supported):\n%s", got, out)
	}
	if want := "upgrade ballots-32 activated at height 20, protocol version 2"; !strings.Contains(out, want) || !strings.Contains(out, "level=INFO") {
		t.Fatalf("log %q lacks INFO %q", out, want)
	}
}
