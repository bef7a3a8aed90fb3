package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
)

// guild proof writes files that guild verify accepts with the genesis alone, and refuses, each
// with its exit status, when a byte is changed or the genesis is another chain's.
func TestProofAndVerifyCommands(t *testing.T) {
	dir, keys := testWallet(t, "acme")
	url, home := soloNodeHome(t, keys["acme"])
	c := api.NewClient(url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := runGuild(t, args...)
		if err != nil {
			t.Fatalf("guild %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	doc := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(doc, []byte("a photo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Hash string `json:"hash"`
	}
	if err := json.Unmarshal([]byte(run("notary", "anchor", "--file", doc, "--from", "acme", "--wait", "--json", "--wallet", dir, "--node", url)), &sent); err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitTx(ctx, sent.Hash)
	if err != nil {
		t.Fatal(err)
	}
	// Block h's state and receipts are certified by block h+1.
	if _, err := c.BlockWait(ctx, st.Height+1, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	genesis := filepath.Join(home, node.GenesisFile)
	out := t.TempDir()
	files := map[string][]string{
		"notary.json":  {"proof", "notary", "--file", doc},
		"claim.json":   {"proof", "claim", "no-such-claim"},
		"account.json": {"proof", "account", keys["acme"].Address.String()},
		"tx.json":      {"proof", "tx", sent.Hash},
	}
	for name, args := range files {
		run(append(args, "--out", filepath.Join(out, name), "--node", url)...)
	}
	for name, want := range map[string]string{
		"notary.json": "notary anchor", "claim.json": "claim no-such-claim does not exist",
		"account.json": "account", "tx.json": "applied",
	} {
		if got := run("verify", filepath.Join(out, name), "--genesis", genesis); !strings.Contains(got, "OK: ") || !strings.Contains(got, want) {
			t.Fatalf("verify %s:\n%s", name, got)
		}
	}

	// A changed byte, another chain's genesis.
	b, err := os.ReadFile(filepath.Join(out, "notary.json"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), `"siblings": [`) + len(`"siblings": [`) + 10
	b[i] ^= 0x01
	bad := filepath.Join(out, "bad.json")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runGuild(t, "verify", bad, "--genesis", genesis); exitCode(err) < 3 || !strings.Contains(err.Error(), "FAILED") {
		t.Fatalf("verify of a changed file: %v (exit %d)", err, exitCode(err))
	}
	g, err := os.ReadFile(genesis)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(g, &m); err != nil {
		t.Fatal(err)
	}
	m["chain_id"] = "another-chain"
	g, _ = json.Marshal(m)
	other := filepath.Join(out, "other-genesis.json")
	if err := os.WriteFile(other, g, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runGuild(t, "verify", filepath.Join(out, "tx.json"), "--genesis", other); exitCode(err) != 4 || !strings.Contains(err.Error(), "another chain") {
		t.Fatalf("verify with another chain's genesis: %v (exit %d)", err, exitCode(err))
	}
}
