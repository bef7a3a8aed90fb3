package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// A ciphertext pushed over the private protocol is stored only if it hashes to a committed
// commitment, with its declared size, and only from a holder's node; and served only to one.
func TestPrivateAcceptChecksCommitmentAndPeer(t *testing.T) {
	home, key := soloHome(t, "memdb")
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	gen.Members = []state.Member{{Name: "solo", Controller: state.AddressFromPubKey(key.Public().(ed25519.PublicKey))}}
	if err := gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	n, cl, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ct := []byte("an age ciphertext")
	c := state.Hash(sha256.Sum256(ct))
	// The record is committed through POST /v1/txs: this node has no ciphertext for it.
	commitAll(t, ctx, cl, n.chainID, key, 0,
		state.TxBody{EncryptionKeySet: &state.EncryptionKeySet{Member: "solo", Key: ageRecipient(t)}},
		state.TxBody{PrivateSend: &state.PrivateSend{Commitment: c, Recipients: []string{"solo"}, Size: uint64(len(ct))}})
	if ok, _ := n.private.store.has(c); ok {
		t.Fatal("the node holds a ciphertext nobody gave it")
	}
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger, _ := p2p.PeerIDFromKey(strangerKey)
	tampered := bytes.Clone(ct)
	tampered[0] ^= 1
	for _, x := range []struct {
		name    string
		peer    string
		c       state.Hash
		payload []byte
		want    p2p.PrivateStatus
	}{
		{"unknown commitment", n.peerID, sha256.Sum256([]byte("other")), []byte("other"), p2p.PrivateUnknown},
		{"not a holder's node", stranger, c, ct, p2p.PrivateRefused},
		{"tampered", n.peerID, c, tampered, p2p.PrivateInvalid},
		{"longer", n.peerID, c, append(bytes.Clone(ct), 0), p2p.PrivateInvalid},
	} {
		if got := n.AcceptPrivate(x.peer, x.c, x.payload); got != x.want {
			t.Errorf("%s: %s, want %s", x.name, got, x.want)
		}
	}
	if ok, _ := n.private.store.has(c); ok {
		t.Fatal("a refused ciphertext was stored")
	}
	if got := n.AcceptPrivate(n.peerID, c, ct); got != p2p.PrivateOK {
		t.Fatalf("the committed ciphertext: %s", got)
	}
	if _, s := n.ServePrivate(stranger, c); s != p2p.PrivateRefused {
		t.Fatalf("served to a stranger: %s", s)
	}
	if got, s := n.ServePrivate(n.peerID, c); s != p2p.PrivateOK || !bytes.Equal(got, ct) {
		t.Fatalf("served to a holder: %q %s", got, s)
	}
}

// The worker's cheap filter never skips a transaction with a payload.
func TestPrivateFilterKeepsPrivateOps(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	p := state.PrivateSend{Commitment: state.Hash{1}, Recipients: []string{"a"}, Size: 1}
	for _, b := range []state.TxBody{
		{PrivateSend: &p},
		{PrivateEscrowCreate: &state.PrivateEscrowCreate{ID: "e", Deadline: 9, Private: p}},
		{PrivateClaimIssue: &state.PrivateClaimIssue{ID: "c", Issuer: "i", Subject: "s", Schema: "x", Private: p}},
	} {
		raw := signedRaw(t, "chain", key, 0, b)
		if !mayBePrivate(raw) {
			t.Errorf("%x skipped", raw)
		}
	}
	if raw := signedRaw(t, "chain", key, 0, state.TxBody{Transfer: &state.Transfer{Amount: 1}}); mayBePrivate(raw) {
		t.Logf("a transfer passes the filter (harmless, but rare): %x", raw)
	}
}

// mayBePrivate finds a private operation's key wherever it is in the bytes (its first byte
// alone, or at the very end, is not one), as the three searches it replaced did.
func TestMayBePrivateMatchesSearch(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(7, 7))
	search := func(raw []byte) bool {
		for _, k := range privateOpKeys {
			if bytes.Contains(raw, k) {
				return true
			}
		}
		return false
	}
	cases := [][]byte{nil, {0x18}, {0x18, 31}, {1, 0x18}, {0x18, 0x18, 32}, {0x18, 33, 0x18, 34}, {31, 0x18}}
	for range 20000 {
		raw := make([]byte, rng.IntN(40))
		for i := range raw {
			raw[i] = []byte{0x18, 31, 32, 34, 33, 0}[rng.IntN(6)]
		}
		cases = append(cases, raw)
	}
	for _, raw := range cases {
		if got, want := mayBePrivate(raw), search(raw); got != want {
			t.Fatalf("mayBePrivate(%x) = %v, want %v", raw, got, want)
		}
	}
}
