package state

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeTx: transaction bytes come from the network (gossip, the API, blocks). No input makes
// decoding or verification panic, and whatever decodes is in canonical form: it re-encodes to the
// same bytes, so a transaction has exactly one hash.
func FuzzDecodeTx(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	from := AddressFromPubKey(key.Public().(ed25519.PublicKey))
	for _, body := range []TxBody{
		{ChainID: "fuzz-chain", From: from, Nonce: 1, Transfer: &Transfer{To: Address{1}, Amount: 5}},
		{ChainID: "fuzz-chain", From: from, Nonce: 1 << 40, Transfer: &Transfer{To: from, Amount: 1<<64 - 1}},
		{ChainID: "", From: from},
	} {
		tx, err := SignTx(body, key)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := tx.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
		f.Add(append(bytes.Clone(raw), 0))
	}
	for _, s := range []string{"", "a0", "f6", "a2 01 a0 02 80", "a1 01 a1 04 a0", "bf ff", "9f ff", "5f ff", "c1 00", "a2 02 80 01 a0"} {
		b, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tx, err := DecodeTx(raw)
		if err != nil {
			return
		}
		again, err := tx.Encode()
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("decoded transaction re-encodes to %x (%v), not %x", again, err, raw)
		}
		if fast, ok := decodeTransferTx(raw); ok {
			if gen, gok := genericDecodeTx(raw); !gok || !reflect.DeepEqual(fast, gen) {
				t.Fatalf("fast path decodes %x to %+v, generic to %+v (%v)", raw, fast, gen, gok)
			}
		}
		_ = VerifyTx(tx.Body.ChainID, tx)
		_ = VerifyTxs(tx.Body.ChainID, []*Tx{tx, tx})
		_ = HashTx(raw)
	})
}
