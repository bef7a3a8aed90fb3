package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/state"
)

func ceremonyKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A draft that went through files collects into a valid genesis whose hash is the SHA-256 of the
// file collect writes; changing the parameters or an entry after signing, or repeating a name,
// key or peer ID, is refused naming the organization.
func TestGenesisCeremony(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "draft.json")
	d, err := NewGenesisDraft("c1", time.Unix(1700000000, 0), []state.Param{{Name: state.ParamMaxBlockTxs, Value: 500}}, state.Threshold{})
	if err != nil {
		t.Fatal(err)
	}
	keys := []ed25519.PrivateKey{ceremonyKey(t), ceremonyKey(t)}
	acct := state.AddressFromPubKey(ceremonyKey(t).Public().(ed25519.PublicKey))
	for i, k := range keys {
		if i > 0 {
			if d, err = LoadGenesisDraft(path); err != nil {
				t.Fatal(err)
			}
		}
		e := GenesisEntry{Name: []string{"acme", "bea"}[i], PeerID: []string{"peerA", "peerB"}[i], Power: 1,
			Announce: []string{"/ip4/127.0.0.1/tcp/2665" + string(rune('0'+i))}}
		if i == 0 {
			e.Accounts = []GenesisAccount{{Name: "treasury", Address: acct, Balance: 10}}
		}
		if err := d.AddOrg(e, k); err != nil {
			t.Fatal(err)
		}
		if err := d.Save(path); err != nil {
			t.Fatal(err)
		}
	}
	d, err = LoadGenesisDraft(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Validators) != 2 || len(g.Members) != 1 || g.Members[0].Controller != acct || g.Accounts[0].Balance != 10 {
		t.Fatalf("genesis %+v", g)
	}
	if got := g.BootstrapPeers("peerA"); len(got) != 1 || got[0] != "/ip4/127.0.0.1/tcp/26651/p2p/peerB" {
		t.Fatalf("bootstrap peers of acme: %v", got)
	}
	gp := filepath.Join(dir, "genesis.json")
	if err := g.Save(gp); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(gp)
	sum := sha256.Sum256(raw)
	loaded, err := LoadGenesis(gp)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := loaded.Hash(); h != hex.EncodeToString(sum[:]) {
		t.Fatalf("hash %s, want the file's %x", h, sum)
	}

	for name, change := range map[string]func(d *GenesisDraft){
		"bea":  func(d *GenesisDraft) { d.Orgs[1].Announce[0] = "/ip4/10.0.0.1/tcp/1" },
		"acme": func(d *GenesisDraft) { d.Params[0].Value = 1 }, // every entry signs the parameters
	} {
		d, _ := LoadGenesisDraft(path)
		change(d)
		if _, err := d.Collect(); !errors.Is(err, ErrGenesisEntry) || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("tampered draft: %v, want ErrGenesisEntry naming %s", err, name)
		}
	}
	for what, e := range map[string]GenesisEntry{
		"name":    {Name: "acme", PeerID: "peerC", Power: 1},
		"peer ID": {Name: "cora", PeerID: "peerB", Power: 1},
		"port 0":  {Name: "cora", PeerID: "peerC", Power: 1, Announce: []string{"/ip4/127.0.0.1/tcp/0"}},
	} {
		d, _ := LoadGenesisDraft(path)
		if err := d.AddOrg(e, ceremonyKey(t)); !errors.Is(err, ErrGenesisEntry) {
			t.Errorf("entry repeating a %s: %v, want ErrGenesisEntry", what, err)
		}
	}
	d, _ = LoadGenesisDraft(path)
	if err := d.AddOrg(GenesisEntry{Name: "cora", PeerID: "peerC", Power: 1}, keys[0]); !errors.Is(err, ErrGenesisEntry) {
		t.Errorf("entry repeating a validator key: %v", err)
	}
}
