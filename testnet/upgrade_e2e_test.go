package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// upgradeMargin is how many blocks ahead the test schedules its upgrade: room for three binary
// swaps at the test's block rate (an empty block every 200 ms; the swaps took about 15 blocks
// when measured) on a loaded machine.
const upgradeMargin = 50

// A rolling upgrade on real processes (issue #13): four validators run the default binary
// (protocol version 1); governance schedules the upgrade to version 2; nodes 1-3 are swapped one
// at a time to the binary built with -tags guild_v2 (stopped by PID, restarted on the same home)
// while blocks keep coming. At the activation height the chain moves to version 2 without a
// fork, and node 4, left on the old binary, stops cleanly right before it: its log names the
// upgrade and the height, it signed nothing there, and its binary refuses to start again (exit
// code 3). With the new binary it continues; wiped, it block-syncs the whole chain, the version 1
// blocks under version 1 rules. The rule version 2 changes (ballots of up to 32 options) binds
// from the activation height on.
func TestRollingUpgrade(t *testing.T) {
	began := time.Now()
	var v2bin string
	var buildErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the second build runs beside the first one and the testnet's start
		defer wg.Done()
		v2bin, buildErr = buildCached("guild_v2")
	}()
	tn := startTestnetWith(t, 200*time.Second, func(c *node.Config) {
		c.Consensus.EmptyBlockMillis = 200
		c.Consensus.ViewTimeoutMillis = 1000
	})
	wg.Wait()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	ctx, dir, m, clients := tn.ctx, tn.dir, tn.m, tn.clients
	t.Logf("%v: both binaries built, 4 nodes up on the default one", since(began))
	for _, b := range []struct {
		bin  string
		want string
	}{{tn.bin, "protocol versions: 1..1"}, {v2bin, "protocol versions: 1..2"}} {
		out, err := exec.Command(b.bin, "version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), b.want) {
			t.Fatalf("%s version: %v\n%s", b.bin, err, out)
		}
	}

	orgs := map[string]*govMember{}
	for _, name := range []string{"org1", "org2", "org3", "org4"} {
		key, addr, err := m.LoadWalletKey(name, testPassphrase)
		if err != nil {
			t.Fatal(err)
		}
		orgs[name] = &govMember{key: key, addr: addr}
	}
	g := &govDriver{t: t, ctx: ctx, chainID: m.ChainID, c: clients[3]}
	// Before the upgrade, a ballot of 20 options is refused; an identity to make it eligible.
	g.wait(g.send(orgs["org4"], state.TxBody{IdentityRegister: &state.IdentityRegister{ID: "org4-id", Kind: state.KindOrganization, Name: "Org 4"}}))
	if st := g.result(g.send(orgs["org4"], ballot("b-early", 20))); st.Status != api.TxRejected || !strings.Contains(st.Error, "want 2..16") {
		t.Fatalf("20-option ballot under version 1: %+v", st)
	}

	at := g.height() + upgradeMargin
	const name = "ballots-32"
	g.pass("upgrade-v2", orgs["org1"], []*govMember{orgs["org2"], orgs["org3"]},
		&state.GovPropose{Upgrade: &state.Upgrade{Name: name, Version: 2, Height: at, Info: "guild built with -tags guild_v2"}})
	ups, err := clients[0].Upgrades(ctx)
	if err != nil || len(ups.Upgrades) != 1 || ups.Upgrades[0].Height != at || ups.ProtocolVersion != 1 {
		t.Fatalf("upgrades: %+v %v", ups, err)
	}
	t.Logf("%v: upgrade %q to version 2 scheduled at height %d (now %d)", since(began), name, at, g.height())

	// Swap nodes 1-3 to the new binary, one at a time; before the next goes, the chain moves on
	// with the swapped node caught up.
	for k := 1; k <= 3; k++ {
		before := maxHeight(t, ctx, clients)
		swapStart := time.Now()
		if _, _, err := Restart(ctx, dir, k, v2bin); err != nil {
			t.Fatal(err)
		}
		restarted := time.Since(swapStart)
		waitAll(t, ctx, clients, before+3)
		t.Logf("%v: node%d restarted on the new binary in %v; all four at %d+ after %v", since(began), k,
			restarted.Round(10*time.Millisecond), before+3, time.Since(swapStart).Round(10*time.Millisecond))
	}
	if h := maxHeight(t, ctx, clients); h >= at-1 {
		t.Fatalf("the swaps took the chain to %d, past the activation height %d: raise upgradeMargin", h, at)
	}

	// Node 4 stops right before the activation height; the others go on past it.
	n4 := m.Nodes[3]
	st4, err := clients[3].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitAll(t, ctx, clients[:3], at+5)
	exitDeadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := running(n4.Home); !ok {
			break
		}
		if time.Now().After(exitDeadline) {
			t.Fatalf("node4 (old binary) still runs with the chain past %d", at)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%v: chain past the activation height; node4 (old binary) exited", since(began))
	logText, err := os.ReadFile(filepath.Join(n4.Home, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	// The log quotes the message (slog's text format escapes its quotes): look for its parts.
	wantMsg := fmt.Sprintf("upgrade %q (guild built with -tags guild_v2) activates protocol version 2 at height %d", name, at)
	for _, part := range []string{"ERROR", "the node stops for a protocol upgrade", name,
		fmt.Sprintf("activates protocol version 2 at height %d", at), "install a binary that supports protocol version 2 and restart"} {
		if !strings.Contains(string(logText), part) {
			t.Fatalf("node4's log lacks %q:\n%s", part, logTail(n4.Home, 10))
		}
	}
	// It signed nothing at the activation height: no certificate there holds its vote.
	for h := at; h <= at+5; h++ {
		b := checkBlock(t, ctx, m.ChainID, clients[:3], h, genesisValidators(t, m))
		if b.Header.Version != 2 {
			t.Fatalf("block %d: version %d, want 2", h, b.Header.Version)
		}
		for _, v := range b.Certificate.Votes {
			if int(v.Validator) == st4.ValidatorIdx {
				t.Fatalf("block %d holds a vote of node4, which stopped before it", h)
			}
		}
	}
	if b := checkBlock(t, ctx, m.ChainID, clients[:3], at-1, genesisValidators(t, m)); b.Header.Version != 1 {
		t.Fatalf("block %d: version %d, want 1", at-1, b.Header.Version)
	}
	// Its binary refuses to start again, with the same message and its own exit code.
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	out, err := exec.CommandContext(startCtx, tn.bin, "node", "start", "--home", n4.Home).CombinedOutput()
	cancelStart()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != node.ExitUpgradeRequired || !strings.Contains(string(out), wantMsg) ||
		!strings.Contains(string(out), fmt.Sprintf("stopped before executing height %d", at)) {
		t.Fatalf("old binary restarted: %v (want exit %d)\n%s", err, node.ExitUpgradeRequired, out)
	}

	// Version 2's rule binds: the 20-option ballot passes now.
	if st := g.result(g.sendTo(clients[0], orgs["org4"], ballot("b-late", 20))); st.Status != api.TxCommitted || st.Error != "" || st.Height < at {
		t.Fatalf("20-option ballot under version 2: %+v", st)
	}

	// The new binary on node4's home continues from where the old one stopped.
	if _, _, err := Restart(ctx, dir, 4, v2bin); err != nil {
		t.Fatal(err)
	}
	waitAll(t, ctx, clients, maxHeight(t, ctx, clients))
	t.Logf("%v: node4 on the new binary caught up", since(began))
	// Wiped, it block-syncs the whole chain: version 1 blocks under version 1 rules.
	if _, err := stop([]Node{n4}, stopGrace); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Wipe(dir, 4); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Restart(ctx, dir, 4, v2bin); err != nil {
		t.Fatal(err)
	}
	top := maxHeight(t, ctx, clients)
	waitAll(t, ctx, clients, top)
	for h := uint64(1); h <= top; h++ {
		checkBlock(t, ctx, m.ChainID, clients, h, genesisValidators(t, m))
	}
	t.Logf("%v: node4 wiped and block-synced to %d on the new binary; all 4 nodes agree on every block", since(began), top)
}

// genesisValidators is the testnet's validator set (no governance change in this test).
func genesisValidators(t *testing.T, m *Manifest) consensus.ValidatorSet {
	t.Helper()
	gen, err := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	return gen.ValidatorSet()
}

// ballot is a ballot of n options, open to org4's identity.
func ballot(id string, n int) state.TxBody {
	opts := make([]string, n)
	for i := range opts {
		opts[i] = fmt.Sprintf("option %d", i)
	}
	return state.TxBody{BallotCreate: &state.BallotCreate{ID: id, Options: opts, Eligible: []string{"org4-id"}, Closes: 1 << 40}}
}

// result waits until the transaction is committed or rejected and returns its status.
func (g *govDriver) result(hash state.Hash) api.TxStatus {
	g.t.Helper()
	wctx, cancel := context.WithTimeout(g.ctx, 15*time.Second)
	defer cancel()
	st, err := g.c.WaitTx(wctx, hash.String())
	if err != nil {
		g.t.Fatalf("transaction %s: %+v, %v", hash, st, err)
	}
	return st
}

// sendTo is send through another node, whose client then answers for it.
func (g *govDriver) sendTo(c *api.Client, who *govMember, body state.TxBody) state.Hash {
	g.t.Helper()
	g.c = c
	return g.send(who, body)
}
