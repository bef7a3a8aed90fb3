package testnet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
)

// Wipe refuses a running node; on a stopped one it empties the data directory (blocks, state,
// WAL) and keeps keys, config and genesis.
func TestWipeKeepsKeysAndConfig(t *testing.T) {
	t.Setenv(fakeNodeEnv, fakeServe)
	dir := t.TempDir()
	t.Cleanup(func() { Down(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Up(ctx, dir, UpOptions{Create: CreateOptions{Validators: 2, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}, Binary: os.Args[0]})
	if err != nil {
		t.Fatal(err)
	}
	home := m.Nodes[1].Home
	data := filepath.Join(home, node.DataDir)
	for _, f := range []string{node.WALFile, "blocks.db/000001.log", "state.db/MANIFEST"} {
		p := filepath.Join(data, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("chain data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := Wipe(dir, 2); !errors.Is(err, ErrRunning) {
		t.Fatalf("wiping a running node: %v, want ErrRunning", err)
	}
	if _, err := os.Stat(filepath.Join(data, node.WALFile)); err != nil {
		t.Fatalf("a refused wipe deleted data: %v", err)
	}
	if _, err := Kill(dir, 2); err != nil {
		t.Fatal(err)
	}
	n, size, err := Wipe(dir, 2)
	if err != nil || n.Name != m.Nodes[1].Name || size != 3*int64(len("chain data")) {
		t.Fatalf("wipe: %s, %d bytes, %v", n.Name, size, err)
	}
	left, err := os.ReadDir(data)
	if err != nil || len(left) != 0 {
		t.Fatalf("data directory after wipe: %v entries, %v", len(left), err)
	}
	for _, f := range []string{node.ConfigFile, node.GenesisFile, node.NodeKeyFile, node.ValidatorKeyFile} {
		if _, err := os.Stat(filepath.Join(home, f)); err != nil {
			t.Errorf("wipe removed %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(m.Nodes[0].Home, node.ConfigFile)); err != nil {
		t.Errorf("node 1 touched: %v", err)
	}
	if _, _, err := Wipe(dir, 3); err == nil {
		t.Error("wiping node 3 of 2 accepted")
	}
}
