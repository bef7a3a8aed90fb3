package state

import (
	"bytes"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// genericDecodeTx is what DecodeTx did for every transaction before decodeTransferTx: the
// generic decoder, then re-encoding to check canonical form.
func genericDecodeTx(raw []byte) (*Tx, bool) {
	var tx Tx
	if err := Unmarshal(raw, &tx); err != nil {
		return nil, false
	}
	again, err := Marshal(&tx)
	return &tx, err == nil && bytes.Equal(again, raw)
}

// TestDecodeTransferTxMatchesGeneric checks the transfer fast path against the generic one: on
// transfers of every field width it decodes to what the generic decoder gives and encodes to what
// the generic encoder gives (SignBytes too); and on every one-byte change, truncation and
// extension of those bytes, whatever it accepts the generic path accepts as canonical, with the
// same result.
func TestDecodeTransferTxMatchesGeneric(t *testing.T) {
	type plainTxBody TxBody // the generic encoder's view, without the hand-written MarshalCBOR
	rng := rand.New(rand.NewSource(1))
	ints := []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
	chains := []string{"", "c", "guild-testnet", strings.Repeat("x", 23), strings.Repeat("y", 24), strings.Repeat("z", 300), "ché-☃"}
	var raws [][]byte
	for i := 0; i < 200; i++ {
		body := TxBody{ChainID: chains[i%len(chains)], Nonce: ints[i%len(ints)],
			Transfer: &Transfer{Amount: ints[(i/3)%len(ints)]}}
		rng.Read(body.From[:])
		rng.Read(body.Transfer.To[:])
		nsigs := 1 + i%3
		if i%17 == 0 {
			nsigs = MaxSigners
		}
		tx := &Tx{Body: body}
		for j := 0; j < nsigs; j++ {
			s := Signature{PubKey: make([]byte, 32), Sig: make([]byte, 64)}
			rng.Read(s.PubKey)
			rng.Read(s.Sig)
			tx.Sigs = append(tx.Sigs, s)
		}
		raw, err := Marshal(tx)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendTransferTx(nil, tx); !bytes.Equal(got, raw) {
			t.Fatalf("appendTransferTx %x, Marshal %x", got, raw)
		}
		want, err := encMode.Marshal(plainTxBody(tx.Body))
		if err != nil {
			t.Fatal(err)
		}
		sb, err := SignBytes(body.ChainID, &tx.Body)
		if err != nil || !bytes.Equal(sb, append(appendSignHead(nil, body.ChainID), want...)) {
			t.Fatalf("SignBytes %x (%v), generic body %x", sb, err, want)
		}
		fast, ok := decodeTransferTx(raw)
		gen, gok := genericDecodeTx(raw)
		if !ok || !gok || !reflect.DeepEqual(fast, gen) {
			t.Fatalf("decoding %x: fast %+v (%v), generic %+v (%v)", raw, fast, ok, gen, gok)
		}
		raws = append(raws, raw)
	}
	checked := 0
	try := func(b []byte) {
		fast, ok := decodeTransferTx(b)
		if !ok {
			return
		}
		checked++
		gen, gok := genericDecodeTx(b)
		if !gok || !reflect.DeepEqual(fast, gen) {
			t.Fatalf("fast path took %x as %+v; generic: %+v (canonical %v)", b, fast, gen, gok)
		}
	}
	for _, raw := range raws[:40] {
		for i := range raw {
			for _, v := range []byte{raw[i] + 1, raw[i] - 1, raw[i] ^ 0x80, raw[i] ^ 0x20, 0, 0xff, 0x18, 0x60, 0xf6} {
				b := bytes.Clone(raw)
				b[i] = v
				try(b)
			}
			try(raw[:i])
		}
		try(append(bytes.Clone(raw), 0))
	}
	if checked == 0 {
		t.Fatal("no changed encoding was taken: the check checked nothing")
	}
}

// TestDecodeTransferTxRefusesNonCanonical: a transfer with a non-minimal integer or a
// non-UTF-8 chain ID is not taken by the fast path, and DecodeTx still refuses it.
func TestDecodeTransferTxRefusesNonCanonical(t *testing.T) {
	tx := &Tx{Body: TxBody{ChainID: "c", Nonce: 5, Transfer: &Transfer{Amount: 7}},
		Sigs: []Signature{{PubKey: make([]byte, 32), Sig: make([]byte, 64)}}}
	raw, err := Marshal(tx)
	if err != nil {
		t.Fatal(err)
	}
	// Nonce 5 as a one-byte-argument integer (0x18 0x05) instead of 0x05.
	i := bytes.Index(raw, []byte{0x03, 0x05})
	long := append(append(bytes.Clone(raw[:i+1]), 0x18, 0x05), raw[i+2:]...)
	// Chain ID "c" replaced by an invalid UTF-8 byte.
	j := bytes.Index(raw, []byte{0x61, 'c'})
	bad := bytes.Clone(raw)
	bad[j+1] = 0xff
	for _, b := range [][]byte{long, bad} {
		if _, ok := decodeTransferTx(b); ok {
			t.Fatalf("fast path took %x", b)
		}
		if _, err := DecodeTx(b); err == nil {
			t.Fatalf("DecodeTx took %x", b)
		}
	}
	if _, ok := decodeTransferTx(raw); !ok {
		t.Fatal("fast path refused a canonical transfer")
	}
}
