package state

import (
	"bytes"
	stded25519 "crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

func TestVerifyTx(t *testing.T) {
	alice, bob := newTestKey(1), newTestKey(2)
	body := transferBody(alice, 0, bob.addr, 10)
	good, _ := signedTx(t, alice, body)

	clone := func(tx *Tx) *Tx {
		c := *tx
		c.Sigs = append([]Signature(nil), tx.Sigs...)
		tr := *tx.Body.Transfer
		c.Body.Transfer = &tr
		return &c
	}
	smallOrder, _ := hex.DecodeString("0100000000000000000000000000000000000000000000000000000000000000")

	tests := []struct {
		name    string
		chainID string
		tx      func() *Tx
		want    error
	}{
		{"valid", testChain, func() *Tx { return good }, nil},
		// Whose keys may act for an address depends on state (multisig.go): VerifyTx only checks
		// signatures, and ApplyBlock and CheckTx refuse this one (TestRejectedTxChangesNothing).
		{"signed by another key, claiming its address", testChain, func() *Tx {
			tx, _ := signedTx(t, bob, body) // From is alice, key is bob's
			return tx
		}, nil},
		{"alice's key, bob's signature", testChain, func() *Tx {
			tx := clone(good)
			other, _ := signedTx(t, bob, body)
			tx.Sigs[0].Sig = other.Sigs[0].Sig
			return tx
		}, ErrBadSignature},
		{"tampered amount", testChain, func() *Tx {
			tx := clone(good)
			tx.Body.Transfer.Amount++
			return tx
		}, ErrBadSignature},
		{"tampered recipient", testChain, func() *Tx {
			tx := clone(good)
			tx.Body.Transfer.To = alice.addr
			return tx
		}, ErrBadSignature},
		{"tampered nonce", testChain, func() *Tx {
			tx := clone(good)
			tx.Body.Nonce = 1
			return tx
		}, ErrBadSignature},
		{"signature made for another chain", testChain, func() *Tx {
			msg, err := SignBytes("other-chain", &body)
			if err != nil {
				t.Fatal(err)
			}
			tx := clone(good)
			tx.Sigs[0].Sig = stded25519.Sign(alice.priv, msg)
			return tx
		}, ErrBadSignature},
		// The body names the chain it was signed for: wrong chain, not a bad signature (issue #11).
		{"verified for another chain", "other-chain", func() *Tx { return good }, ErrWrongChain},
		{"signed for another chain", testChain, func() *Tx {
			b := body
			b.ChainID = "other-chain"
			tx, _ := signedTx(t, alice, b)
			return tx
		}, ErrWrongChain},
		{"flipped signature bit", testChain, func() *Tx {
			tx := clone(good)
			tx.Sigs[0].Sig = bytes.Clone(tx.Sigs[0].Sig)
			tx.Sigs[0].Sig[5] ^= 1
			return tx
		}, ErrBadSignature},
		{"S not reduced", testChain, func() *Tx {
			tx := clone(good)
			tx.Sigs[0].Sig = bytes.Clone(tx.Sigs[0].Sig)
			for i := 32; i < 64; i++ {
				tx.Sigs[0].Sig[i] = 0xff
			}
			return tx
		}, ErrBadSignature},
		{"no signature", testChain, func() *Tx {
			tx := clone(good)
			tx.Sigs = nil
			return tx
		}, ErrBadSignature},
		{"two signatures", testChain, func() *Tx {
			tx := clone(good)
			tx.Sigs = append(tx.Sigs, tx.Sigs[0])
			return tx
		}, ErrBadSignature},
		{"short key", testChain, func() *Tx {
			tx := clone(good)
			tx.Sigs[0].PubKey = tx.Sigs[0].PubKey[:31]
			return tx
		}, ErrBadSignature},
		{"short signature", testChain, func() *Tx {
			tx := clone(good)
			tx.Sigs[0].Sig = tx.Sigs[0].Sig[:63]
			return tx
		}, ErrBadSignature},
		{"small-order key that signs everything", testChain, func() *Tx {
			// Under bare ZIP-215 the identity key with R = identity, S = 0 verifies any message.
			b := body
			b.From = AddressFromPubKey(smallOrder)
			sig := make([]byte, 64)
			sig[0] = 1
			msg, _ := SignBytes(testChain, &b)
			if !ed25519.VerifyWithOptions(smallOrder, msg, sig, sigOptions) {
				t.Fatal("test premise: the small-order forgery should pass bare ZIP-215")
			}
			return &Tx{Body: b, Sigs: []Signature{{PubKey: smallOrder, Sig: sig}}}
		}, ErrBadSignature},
		{"nil", testChain, func() *Tx { return nil }, ErrMalformedTx},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := tc.tx()
			err := VerifyTx(tc.chainID, tx)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyTx: %v", err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyTx = %v, want %v", err, tc.want)
			}
			// The batch path gives the same answer, alone and among good transactions.
			batch := []*Tx{good, tx, good}
			for range 100 {
				batch = append(batch, good)
			}
			errs := VerifyTxs(tc.chainID, batch)
			if fmt.Sprint(errs[1]) != fmt.Sprint(err) {
				t.Fatalf("VerifyTxs = %v, VerifyTx = %v", errs[1], err)
			}
		})
	}
}

// TestVerifyTxsAgreesWithVerifyTx checks the batch path against the single path on seeded mixes
// of good and bad signatures, at sizes that exercise every chunking path.
func TestVerifyTxsAgreesWithVerifyTx(t *testing.T) {
	keys := make([]testKey, 8)
	for i := range keys {
		keys[i] = newTestKey(100 + i)
	}
	rng := rand.New(rand.NewSource(7))
	makeTx := func(bad int) *Tx {
		k, to := keys[rng.Intn(len(keys))], keys[rng.Intn(len(keys))]
		tx, _ := signedTx(t, k, transferBody(k, rng.Uint64()%5, to.addr, 1+rng.Uint64()%100))
		switch bad {
		case 1:
			tx.Sigs[0].Sig[rng.Intn(64)] ^= byte(1 << rng.Intn(8))
		case 2:
			tx.Body.Transfer.Amount++
		case 3:
			other := keys[(rng.Intn(len(keys)-1)+1+indexOf(keys, k))%len(keys)]
			tx.Sigs[0].PubKey = other.priv.Public().(stded25519.PublicKey)
		case 4:
			tx.Body.ChainID = "elsewhere"
		}
		return tx
	}
	for _, c := range []struct{ badRate, size int }{{0, 300}, {3, 1100}, {100, 300}, {30, 16}} {
		badRate := c.badRate // percent
		pool := make([]*Tx, c.size)
		single := make([]error, len(pool))
		for i := range pool {
			bad := 0
			if rng.Intn(100) < badRate {
				bad = 1 + rng.Intn(4)
			}
			pool[i] = makeTx(bad)
			single[i] = VerifyTx(testChain, pool[i])
		}
		for _, n := range []int{0, 1, 2, 3, 4, 5, 8, 15, 16, 63, 64, 65, 200, 300, 1100} {
			if n > len(pool) {
				continue
			}
			errs := VerifyTxs(testChain, pool[:n])
			if len(errs) != n {
				t.Fatalf("n=%d: %d results", n, len(errs))
			}
			for i, want := range single[:n] {
				if (errs[i] == nil) != (want == nil) || fmt.Sprint(errs[i]) != fmt.Sprint(want) ||
					(want != nil && !errors.Is(errs[i], ErrBadSignature) && !errors.Is(errs[i], ErrWrongChain)) {
					t.Fatalf("n=%d bad=%d%% tx %d: VerifyTxs %v, VerifyTx %v", n, badRate, i, errs[i], want)
				}
			}
		}
	}
}

func indexOf(keys []testKey, k testKey) int {
	for i := range keys {
		if keys[i].addr == k.addr {
			return i
		}
	}
	return -1
}

// zip215Vectors are signatures over "Zcash" that ZIP-215 accepts and stricter rules reject: small
// order and non-canonical encodings of A and R (a sample of voi's testdata/zip215.json.gz).
var zip215Vectors = [][2]string{
	{"0100000000000000000000000000000000000000000000000000000000000000", "01000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"},
	{"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", "00000000000000000000000000000000000000000000000000000000000000800000000000000000000000000000000000000000000000000000000000000000"},
	{"0000000000000000000000000000000000000000000000000000000000000080", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000"},
	{"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"},
	{"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "01000000000000000000000000000000000000000000000000000000000000800000000000000000000000000000000000000000000000000000000000000000"},
	{"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000"},
	{"0000000000000000000000000000000000000000000000000000000000000000", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000"},
	{"0100000000000000000000000000000000000000000000000000000000000080", "01000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"},
	{"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "00000000000000000000000000000000000000000000000000000000000000800000000000000000000000000000000000000000000000000000000000000000"},
	{"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000"},
	{"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"},
	{"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "01000000000000000000000000000000000000000000000000000000000000800000000000000000000000000000000000000000000000000000000000000000"},
	{"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000"},
}

// TestSigEdgeCasesAgree runs the ZIP-215 edge cases, among ordinary good and bad signatures,
// through the single and the batch primitive: a validator that checked a transaction alone and
// one that checked it in a batch must agree on it, whatever its encoding.
func TestSigEdgeCasesAgree(t *testing.T) {
	var items []sigItem
	stdRejects := 0
	for _, v := range zip215Vectors {
		pk, _ := hex.DecodeString(v[0])
		sig, _ := hex.DecodeString(v[1])
		items = append(items, sigItem{pub: pk, msg: []byte("Zcash"), sig: sig})
		if !smallOrderKeys[[32]byte(pk)] {
			t.Errorf("key %x of a ZIP-215 vector is missing from smallOrderKeys", pk)
		}
		if !stded25519.Verify(pk, []byte("Zcash"), sig) {
			stdRejects++
		}
	}
	if stdRejects == 0 {
		t.Error("expected crypto/ed25519 to reject some ZIP-215 vectors (why it must not be used for transactions)")
	}
	k := newTestKey(9)
	pub := k.priv.Public().(stded25519.PublicKey)
	for i := range 150 {
		msg := []byte(fmt.Sprintf("message %d", i))
		sig := stded25519.Sign(k.priv, msg)
		if i%7 == 0 {
			msg = append(msg, '!')
		}
		items = append(items, sigItem{pub: pub, msg: msg, sig: sig})
	}
	rand.New(rand.NewSource(3)).Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	for _, n := range []int{len(items), 64, 20} {
		batch := verifySigs(items[:n])
		for i := range items[:n] {
			it := &items[i]
			single := ed25519.VerifyWithOptions(it.pub, it.msg, it.sig, sigOptions)
			if batch[i] != single {
				t.Fatalf("n=%d item %d (key %x): batch %v, single %v", n, i, it.pub, batch[i], single)
			}
		}
	}
}

func TestBatchSeedBindsEveryInput(t *testing.T) {
	base := []sigItem{{pub: make([]byte, 32), msg: []byte("m"), sig: make([]byte, 64)}, {pub: make([]byte, 32), msg: []byte("n"), sig: make([]byte, 64)}}
	seed := func(items []sigItem) []byte {
		b, _ := io.ReadAll(batchSeed(items))
		return b
	}
	want := seed(base)
	if len(want) != 32 || !bytes.Equal(seed(base), want) {
		t.Fatal("seed is not a deterministic 32 bytes")
	}
	for _, mutate := range []func([]sigItem){
		func(s []sigItem) { s[1].msg = []byte("o") },
		func(s []sigItem) { s[0].pub = append(make([]byte, 31), 1) },
		func(s []sigItem) { s[1].sig = append(make([]byte, 63), 1) },
		func(s []sigItem) { s[0], s[1] = s[1], s[0] },
	} {
		c := append([]sigItem(nil), base...)
		mutate(c)
		if bytes.Equal(seed(c), want) {
			t.Fatal("changing an input did not change the seed")
		}
	}
}
