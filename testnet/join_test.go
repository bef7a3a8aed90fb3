package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/p2p"
)

// Join adds a node for a new organization beside running (fake) nodes: its keys, a config like
// the others' with all of them as bootstrap peers, the same genesis bytes, a wallet key, and a
// manifest entry that status and down then include; it reports what a governance proposal needs.
func TestJoinAddsANodeForANewOrganization(t *testing.T) {
	t.Setenv(fakeNodeEnv, fakeServe)
	dir := t.TempDir()
	t.Cleanup(func() { Down(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Up(ctx, dir, UpOptions{Create: CreateOptions{Validators: 3, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}, Binary: os.Args[0]}); err != nil {
		t.Fatal(err)
	}
	m, j, err := Join(ctx, dir, JoinOptions{Name: "acme", Binary: os.Args[0], Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 4 || m.Nodes[3] != j.Node || j.Node.Name != "node4" || j.Org != "acme" || !j.Node.Joined || j.PID == 0 {
		t.Fatalf("joined %+v; manifest nodes %+v", j, m.Nodes)
	}
	if got, err := LoadManifest(dir); err != nil || !slices.Equal(got.Nodes, m.Nodes) {
		t.Fatalf("saved manifest: %+v, %v", got, err)
	}
	if keys := m.WalletKeys(); !slices.Equal(keys, []string{"faucet", "org1", "org2", "org3", "acme"}) {
		t.Errorf("wallet keys %v", keys)
	}
	if _, addr, err := m.LoadWalletKey("acme", testPassphrase); err != nil || addr != j.Address {
		t.Errorf("wallet key acme: %s, %v; Join reported %s", addr, err, j.Address)
	}

	home := j.Node.Home
	valKey, err := node.LoadKeyFile(filepath.Join(home, node.ValidatorKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if j.ValidatorPubKey != hex.EncodeToString(valKey.Public().(ed25519.PublicKey)) {
		t.Errorf("validator key %s is not the node's", j.ValidatorPubKey)
	}
	nodeKey, err := node.LoadKeyFile(filepath.Join(home, node.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := p2p.PeerIDFromKey(nodeKey); id != j.PeerID || j.Node.PeerID != j.PeerID {
		t.Errorf("peer ID %s, node key gives %s", j.PeerID, id)
	}
	want, _ := os.ReadFile(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if got, err := os.ReadFile(filepath.Join(home, node.GenesisFile)); err != nil || !bytes.Equal(got, want) {
		t.Errorf("genesis differs from node1's (%v)", err)
	}
	cfg, err := node.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := node.LoadConfig(m.Nodes[0].Home)
	if cfg.Moniker != "acme" || !cfg.P2P.Permissioned || cfg.P2P.MDNS != ref.P2P.MDNS || cfg.Storage.Backend != ref.Storage.Backend ||
		!slices.Equal(cfg.P2P.Bootstrap, []string{m.Nodes[0].P2P, m.Nodes[1].P2P, m.Nodes[2].P2P}) {
		t.Errorf("config: %+v", cfg)
	}
	for _, other := range m.Nodes[:3] {
		c, err := node.LoadConfig(other.Home)
		if err != nil || !slices.Contains(c.P2P.Bootstrap, j.Node.P2P) {
			t.Errorf("%s does not bootstrap to the new node: %v, %v", other.Name, c.P2P.Bootstrap, err)
		}
	}

	sts, err := Status(ctx, dir)
	if err != nil || len(sts) != 4 || !sts[3].Running || sts[3].PID != j.PID {
		t.Fatalf("status: %+v, %v", sts, err)
	}
	for _, name := range []string{"acme", "org2"} {
		if _, _, err := Join(ctx, dir, JoinOptions{Name: name, Binary: os.Args[0], Passphrase: testPassphrase}); !errors.Is(err, ErrNameTaken) {
			t.Errorf("joining %s again: %v, want ErrNameTaken", name, err)
		}
	}
	if got, _ := LoadManifest(dir); len(got.Nodes) != 4 {
		t.Errorf("a refused join changed the manifest: %d nodes", len(got.Nodes))
	}
	stopped, err := Down(dir)
	if err != nil || len(stopped) != 4 {
		t.Errorf("Down: %+v, %v", stopped, err)
	}
}
