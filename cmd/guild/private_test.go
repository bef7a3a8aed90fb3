package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/node/api"
)

// guild private, against a real (in-process) node: register a key, send a file, read it back
// and decrypt it, refuse it to a key that controls no recipient, and verify a disclosed copy.
func TestPrivateCommandsAgainstSoloNode(t *testing.T) {
	dir, keys := testWallet(t, "acme", "bea")
	url := soloNode(t, keys["acme"])
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
	tmp := t.TempDir()
	file := filepath.Join(tmp, "deal.txt")
	if err := os.WriteFile(file, []byte("price: 412.50"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails("no encryption key", "private", "send", "--from", "acme", "--to", "acme", "--file", file)
	run("private", "key", "set", "--from", "acme", "--wait")
	fails("no encryption key on chain", "private", "send", "--from", "acme", "--to", "zeta", "--file", file)

	var sent struct {
		ID string `json:"id"` // the commitment
	}
	if err := json.Unmarshal([]byte(run("private", "send", "--from", "acme", "--to", "acme", "--file", file, "--wait", "--json")), &sent); err != nil {
		t.Fatal(err)
	}
	out, ct := filepath.Join(tmp, "out.txt"), filepath.Join(tmp, "deal.age")
	run("private", "get", sent.ID, "--from", "acme", "--out", out, "--ciphertext-out", ct)
	if got, err := os.ReadFile(out); err != nil || string(got) != "price: 412.50" {
		t.Fatalf("decrypted %q, %v", got, err)
	}
	fails("controls no holder's account", "private", "get", sent.ID, "--from", "bea", "--out", out)
	var rec api.PrivateRecord
	if err := json.Unmarshal([]byte(run("private", "verify", "--file", ct, sent.ID, "--json")), &rec); err != nil || rec.Commitment != sent.ID || !rec.Held {
		t.Fatalf("verify: %+v %v", rec, err)
	}
	fails("does not match commitment", "private", "verify", "--file", file, sent.ID)
	if list := run("private", "list", "--member", "acme"); !strings.Contains(list, sent.ID) {
		t.Fatalf("list:\n%s", list)
	}
}
