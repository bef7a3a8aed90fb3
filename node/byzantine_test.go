//go:build byzantine

package node

import (
	"crypto/ed25519"
	"testing"

	"github.com/guild-ledger/guild/state"
)

func TestDescendingNoncesReversesEachSender(t *testing.T) {
	var keys []ed25519.PrivateKey
	for range 2 {
		_, k, _ := ed25519.GenerateKey(nil)
		keys = append(keys, k)
	}
	var txs [][]byte
	for n := range uint64(3) {
		for _, k := range keys { // a0 b0 a1 b1 a2 b2
			from := state.AddressFromPubKey(k.Public().(ed25519.PublicKey))
			tx, err := state.SignTx(state.TxBody{ChainID: "c", From: from, Nonce: n, Transfer: &state.Transfer{To: from, Amount: 1}}, k)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tx.Encode()
			txs = append(txs, raw)
		}
	}
	out := descendingNonces(txs)
	for i, want := range []uint64{2, 2, 1, 1, 0, 0} {
		tx, err := state.DecodeTx(out[i])
		if err != nil {
			t.Fatal(err)
		}
		if tx.Body.Nonce != want || tx.Body.From != state.AddressFromPubKey(keys[i%2].Public().(ed25519.PublicKey)) {
			t.Fatalf("position %d: nonce %d, want %d of sender %d", i, tx.Body.Nonce, want, i%2)
		}
	}
}
