package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

// soloNode runs a one-validator node in-process whose genesis funds the wallet key "acme" and
// makes it the controller of the only member, also "acme". It returns the node's API URL.
func soloNode(t *testing.T, acme wallet.Entry) string {
	t.Helper()
	url, _ := soloNodeHome(t, acme)
	return url
}

// soloNodeHome is soloNode, also returning the node's home (its genesis.json).
func soloNodeHome(t *testing.T, acme wallet.Entry) (string, string) {
	t.Helper()
	home := t.TempDir()
	if _, err := node.InitHome(home, "solo"); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Storage.Backend = "memdb"
	cfg.Consensus.EmptyBlockMillis = 100
	cfg.Private.Member = "acme" // the validator is named "solo"
	if err := node.SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	gen, err := node.LoadGenesis(filepath.Join(home, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	gen.Accounts = append(gen.Accounts, node.GenesisAccount{Address: acme.Address, Balance: 1_000_000})
	gen.Members = []state.Member{{Name: "acme", Controller: acme.Address}}
	if err := gen.Save(filepath.Join(home, node.GenesisFile)); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node stopped with: %v", err)
		}
	})
	select {
	case <-n.Started():
	case err := <-done:
		t.Fatalf("node failed to start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node did not start")
	}
	return "http://" + n.APIAddr(), home
}

// The commands the end-to-end walkthrough does not use, against a real (in-process) node: burn,
// an arbitrated escrow refunded after its deadline, a device owned by an organization, a
// parameter change and an existing validator's power change by proposal.
func TestCommandsAgainstSoloNode(t *testing.T) {
	dir, keys := testWallet(t, "acme", "bea")
	url := soloNode(t, keys["acme"])
	c := api.NewClient(url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := runGuild(t, append(args, "--wallet", dir, "--node", url)...)
		if err != nil {
			t.Fatalf("guild %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, stderr, err := runGuild(t, append(args, "--wallet", dir, "--node", url)...)
		if exitCode(err) != 1 || !strings.Contains(err.Error()+stderr, want) {
			t.Fatalf("guild %s: want exit 1 saying %q, got %v\n%s%s", strings.Join(args, " "), want, err, out, stderr)
		}
	}

	run("asset", "create", "PTS", "--name", "Reward points", "--max-supply", "500", "--from", "acme", "--wait")
	run("asset", "mint", "PTS", "--to", "acme", "--amount", "300", "--from", "acme", "--wait")
	fails("maximum supply", "asset", "mint", "PTS", "--to", "bea", "--amount", "201", "--from", "acme", "--wait")
	fails("not the issuer", "asset", "mint", "PTS", "--to", "bea", "--amount", "1", "--from", "bea", "--wait")
	run("asset", "burn", "PTS", "--amount", "100", "--from", "acme", "--wait")
	if a, err := c.Asset(ctx, "PTS"); err != nil || a.Supply != 200 {
		t.Fatalf("after burn: %+v %v", a, err)
	}

	// An arbitrated escrow: the beneficiary cannot release it, and the depositor gets it back
	// only from its deadline on.
	run("escrow", "create", "e1", "--to", "bea", "--amount", "700", "--arbiter", "acme", "--blocks", "50", "--from", "acme", "--wait")
	fails("not the arbiter", "escrow", "release", "e1", "--from", "bea", "--wait")
	var e api.EscrowResponse
	if err := json.Unmarshal([]byte(run("escrow", "show", "e1", "--json")), &e); err != nil || e.Status != state.EscrowOpen {
		t.Fatalf("escrow: %+v %v", e, err)
	}
	if _, err := c.BlockWait(ctx, e.Deadline, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	run("escrow", "refund", "e1", "--from", "acme", "--wait")
	fails("already released or refunded", "escrow", "release", "e1", "--from", "acme", "--wait")

	run("identity", "register", "acme-org", "--kind", "organization", "--from", "acme", "--wait")
	run("identity", "register", "sensor-7", "--kind", "device", "--owner", "acme-org", "--key", "bea", "--from", "acme", "--wait")
	var dev api.IdentityResponse
	if err := json.Unmarshal([]byte(run("identity", "show", "sensor-7", "--json")), &dev); err != nil ||
		dev.Owner != "acme-org" || len(dev.Keys) != 1 || dev.Keys[0] != hex.EncodeToString(keys["bea"].PubKey) {
		t.Fatalf("device: %+v %v", dev, err)
	}
	fails("not a consortium member", "identity", "register", "bea-org", "--kind", "organization", "--from", "bea", "--wait")

	// One member: its own proposal passes at once.
	run("gov", "propose", "fewer-txs", "--param", state.ParamMaxBlockTxs, "--value", "1500", "--from", "acme", "--wait")
	run("gov", "propose", "more-power", "--validator", "solo", "--power", "5", "--in", "1000", "--from", "acme", "--wait")
	fails("no longer open", "gov", "vote", "more-power", "--yes", "--from", "bea", "--wait") // it passed at once
	if p, err := c.Params(ctx); err != nil || !strings.Contains(jsonOf(p), `{"name":"max_block_txs","value":1500}`) {
		t.Fatalf("params: %+v %v", p, err)
	}
	vs, err := c.Validators(ctx)
	if err != nil || len(vs.Scheduled) != 1 || len(vs.Scheduled[0].Validators) != 1 ||
		vs.Scheduled[0].Validators[0].Power != 5 || vs.Scheduled[0].Validators[0].PubKey != vs.Current.Validators[0].PubKey {
		t.Fatalf("validators: %+v %v", vs, err)
	}
	if out := run("gov", "list"); !strings.Contains(out, "validator solo power 5") || !strings.Contains(out, "set max_block_txs = 1500") {
		t.Fatalf("gov list:\n%s", out)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
