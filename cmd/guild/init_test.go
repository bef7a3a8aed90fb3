package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/wallet"
)

// `guild node init` alone gives a chain someone can use: the organization is its validator and
// member, and an account whose key is in HOME/wallet holds funds.
func TestNodeInitMakesUsableChain(t *testing.T) {
	t.Setenv(wallet.PassphraseEnv, testPass)
	home := filepath.Join(t.TempDir(), "acme")
	code, out, errOut := runCLI(t, "node", "init", "--home", home, "--moniker", "acme", "--balance", "5000")
	if code != 0 {
		t.Fatalf("node init: exit %d\n%s%s", code, out, errOut)
	}
	ks, err := wallet.Open(filepath.Join(home, "wallet"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ks.Get(initAccountName)
	if err != nil {
		t.Fatalf("no %q key in HOME/wallet: %v", initAccountName, err)
	}
	if !strings.Contains(out, key.Address.String()) || !strings.Contains(out, "guild wallet balance --wallet "+filepath.Join(home, "wallet")) {
		t.Errorf("output does not show the account and how to use it:\n%s", out)
	}

	cfg, err := node.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Storage.Backend = "memdb"
	if err := node.SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	defer func() { stop(); <-done }()
	select {
	case <-n.Started():
	case err := <-done:
		t.Fatalf("node failed to start: %v", err)
	case <-ctx.Done():
		t.Fatal("node did not start")
	}
	c := api.NewClient("http://" + n.APIAddr())
	acct, err := c.Account(ctx, key.Address.String())
	if err != nil || acct.Balance != 5000 || acct.Member != "acme" {
		t.Fatalf("account %s: %+v, %v; want balance 5000, member acme", key.Address, acct, err)
	}
	members, err := c.Members(ctx)
	if err != nil || len(members.Members) != 1 || members.Members[0].Controller != key.Address.String() {
		t.Fatalf("members %+v, %v", members, err)
	}

	// --no-account, and the JSON output, as before.
	home2 := t.TempDir()
	code, out, errOut = runCLI(t, "node", "init", "--home", home2, "--no-account", "--json")
	var res node.InitResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.GenesisWritten || res.Account != nil {
		t.Fatalf("node init --no-account --json: exit %d, %q %s", code, out, errOut)
	}
}
