package wallet

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/guild-ledger/guild/state"
)

func TestNewTransferDecodes(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var to state.Address
	to[3] = 9
	raw, hash, err := NewTransfer("guild-test-1", priv, to, 1234, 7)
	if err != nil {
		t.Fatal(err)
	}
	if hash != state.HashTx(raw) {
		t.Fatal("hash is not HashTx(raw)")
	}
	tx, err := state.DecodeTx(raw)
	if err != nil {
		t.Fatal(err)
	}
	b := tx.Body
	if b.ChainID != "guild-test-1" || b.From != state.AddressFromPubKey(pub) || b.Nonce != 7 ||
		b.Transfer == nil || b.Transfer.To != to || b.Transfer.Amount != 1234 {
		t.Fatalf("decoded body %+v", b)
	}
	again, err := tx.Encode()
	if err != nil || state.HashTx(again) != hash {
		t.Fatal("re-encoding changes the hash")
	}
	// The signature is over the chain-bound sign bytes, by the sender's key.
	msg, err := state.SignBytes(b.ChainID, &b)
	if err != nil {
		t.Fatal(err)
	}
	if len(tx.Sigs) != 1 || !ed25519.Verify(pub, msg, tx.Sigs[0].Sig) {
		t.Fatal("signature does not verify")
	}
	if ed25519.Verify(pub, mustSignBytes(t, "other-chain", &b), tx.Sigs[0].Sig) {
		t.Fatal("signature verifies for another chain")
	}
}

func mustSignBytes(t *testing.T, chainID string, b *state.TxBody) []byte {
	t.Helper()
	m, err := state.SignBytes(chainID, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewTransferRejects(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var to state.Address
	to[0] = 1
	if _, _, err := NewTransfer("c", priv, to, 0, 0); !errors.Is(err, state.ErrBadAmount) {
		t.Errorf("zero amount: %v", err)
	}
	if _, _, err := NewTransfer("c", priv, state.AddressFromPubKey(pub), 1, 0); !errors.Is(err, state.ErrSelfTransfer) {
		t.Errorf("self transfer: %v", err)
	}
	if _, _, err := NewTransfer("", priv, to, 1, 0); err == nil {
		t.Error("empty chain ID accepted")
	}
	if _, _, err := NewTransfer("c", priv[:32], to, 1, 0); err == nil {
		t.Error("short key accepted")
	}
}

func TestKeystoreKeySigns(t *testing.T) {
	ks := newKeystore(t)
	e, err := ks.Create("alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ks.Load("alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	var to state.Address
	to[0] = 2
	raw, _, err := NewTransfer("c", priv, to, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := state.DecodeTx(raw)
	if err != nil {
		t.Fatal(err)
	}
	if tx.Body.From != e.Address {
		t.Fatal("transfer is not from the keystore entry's address")
	}
}
