package state

import (
	"bytes"
	stded25519 "crypto/ed25519"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// fixture is a small chain after one block: alice has spent nonce 0, carol sits just below the
// uint64 limit (seeded, since genesis refuses a supply that large), dave has no account.
type fixture struct {
	alice, bob, carol, dave testKey
}

func newFixture() fixture {
	return fixture{alice: newTestKey(1), bob: newTestKey(2), carol: newTestKey(3), dave: newTestKey(4)}
}

func (f fixture) open(t *testing.T) (*State, kv.Store) {
	t.Helper()
	s, db := newTestState(t, kv.MemDB, []GenesisAccount{
		{Address: f.alice.addr, Balance: 1000},
		{Address: f.bob.addr, Balance: 1000},
	})
	seedAccount(t, db, f.carol.addr, Account{Balance: math.MaxUint64 - 10})
	res := mustApply(t, s, 1, [][]byte{rawTransfer(t, f.alice, 0, f.bob.addr, 1)}, nil)
	if res.Results[0].Err != nil {
		t.Fatal(res.Results[0].Err)
	}
	return s, db // alice: 999, nonce 1; bob: 1001, nonce 0
}

// badTxCase is a transaction that block 2 of the fixture must reject.
type badTxCase struct {
	name string
	raw  func(t *testing.T, f fixture) []byte
	want error
}

func badTxCases() []badTxCase {
	body := func(f fixture) TxBody { return transferBody(f.alice, 1, f.dave.addr, 3) }
	good := func(t *testing.T, f fixture) (*Tx, []byte) { return signedTx(t, f.alice, body(f)) }
	return []badTxCase{
		{"signed by another key", func(t *testing.T, f fixture) []byte {
			_, raw := signedTx(t, f.bob, body(f))
			return raw
		}, ErrBadSignature},
		{"alice's key with bob's signature", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			other, _ := signedTx(t, f.bob, body(f))
			tx.Sigs[0].Sig = other.Sigs[0].Sig
			return encodeTx(t, tx)
		}, ErrBadSignature},
		{"tampered amount", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			tx.Body.Transfer.Amount = 500
			return encodeTx(t, tx)
		}, ErrBadSignature},
		{"tampered recipient", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			tx.Body.Transfer.To = f.bob.addr
			return encodeTx(t, tx)
		}, ErrBadSignature},
		{"signature for another chain ID", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			msg, err := SignBytes("guild-other", &tx.Body)
			if err != nil {
				t.Fatal(err)
			}
			tx.Sigs[0].Sig = stded25519.Sign(f.alice.priv, msg)
			return encodeTx(t, tx)
		}, ErrBadSignature},
		{"wrong chain ID", func(t *testing.T, f fixture) []byte {
			b := body(f)
			b.ChainID = "guild-other"
			_, raw := signedTx(t, f.alice, b)
			return raw
		}, ErrWrongChain},
		{"nonce too low (replay)", func(t *testing.T, f fixture) []byte {
			return rawTransfer(t, f.alice, 0, f.dave.addr, 3)
		}, ErrBadNonce},
		{"nonce too high", func(t *testing.T, f fixture) []byte {
			return rawTransfer(t, f.alice, 2, f.dave.addr, 3)
		}, ErrBadNonce},
		{"insufficient funds", func(t *testing.T, f fixture) []byte {
			return rawTransfer(t, f.alice, 1, f.dave.addr, 1000)
		}, ErrNoFunds},
		{"sender has no account", func(t *testing.T, f fixture) []byte {
			nobody := newTestKey(99)
			return rawTransfer(t, nobody, 0, f.alice.addr, 1)
		}, ErrNoFunds},
		{"overflow at recipient", func(t *testing.T, f fixture) []byte {
			return rawTransfer(t, f.alice, 1, f.carol.addr, 11)
		}, ErrOverflow},
		{"zero amount", func(t *testing.T, f fixture) []byte {
			return rawTransfer(t, f.alice, 1, f.dave.addr, 0)
		}, ErrBadAmount},
		{"self-transfer", func(t *testing.T, f fixture) []byte {
			return rawTransfer(t, f.alice, 1, f.alice.addr, 3)
		}, ErrSelfTransfer},
		{"no operation", func(t *testing.T, f fixture) []byte {
			b := body(f)
			b.Transfer = nil
			_, raw := signedTx(t, f.alice, b)
			return raw
		}, ErrNoOperation},
		{"missing signature", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			tx.Sigs = nil
			return encodeTx(t, tx)
		}, ErrMalformedTx},
		{"extra signature", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			other, _ := signedTx(t, f.bob, body(f))
			tx.Sigs = append(tx.Sigs, other.Sigs[0])
			return encodeTx(t, tx)
		}, ErrNotAuthorized}, // valid, but alice's account has no signer set: one signature, hers
		{"two operations", func(t *testing.T, f fixture) []byte {
			b := body(f)
			b.NotaryAnchor = &NotaryAnchor{Hash: Hash{1}}
			_, raw := signedTx(t, f.alice, b)
			return raw
		}, ErrMalformedTx},
		{"no operation", func(t *testing.T, f fixture) []byte {
			b := body(f)
			b.Transfer = nil
			_, raw := signedTx(t, f.alice, b)
			return raw
		}, ErrNoOperation},
		{"seventeen signatures", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			for i := range MaxSigners {
				if err := CoSign(tx, newTestKey(700+i).priv); err != nil {
					// CoSign stops at the limit; add the last one by hand.
					other, _ := signedTx(t, newTestKey(700+i), body(f))
					tx.Sigs = append(tx.Sigs, other.Sigs[0])
				}
			}
			return encodeTx(t, tx)
		}, ErrMalformedTx},
		{"unsigned", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			tx.Sigs = nil
			return encodeTx(t, tx)
		}, ErrMalformedTx},
		{"same signature twice", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			tx.Sigs = append(tx.Sigs, tx.Sigs[0])
			return encodeTx(t, tx)
		}, ErrMalformedTx},
		{"garbage", func(t *testing.T, f fixture) []byte {
			return []byte("this is not a transaction at all")
		}, ErrMalformedTx},
		{"empty", func(t *testing.T, f fixture) []byte { return []byte{} }, ErrMalformedTx},
		{"truncated", func(t *testing.T, f fixture) []byte {
			_, raw := good(t, f)
			return raw[:len(raw)-1]
		}, ErrMalformedTx},
		{"trailing bytes", func(t *testing.T, f fixture) []byte {
			_, raw := good(t, f)
			return append(raw, 0x00)
		}, ErrMalformedTx},
		{"non-canonical: integer longer than needed", func(t *testing.T, f fixture) []byte {
			_, raw := good(t, f)
			// The body's nonce (1) follows From: 0x54 ‖ 20 bytes ‖ 0x03 ‖ 0x01. Re-encode it as
			// 0x18 0x01; the signature covers the canonical body, so only canonicality can fail.
			at := bytes.Index(raw, append([]byte{0x54}, f.alice.addr[:]...)) + 21
			if raw[at] != 0x03 || raw[at+1] != 0x01 {
				t.Fatalf("unexpected layout at %d: %x", at, raw[at:at+2])
			}
			out := append(bytes.Clone(raw[:at+1]), 0x18, 0x01)
			return append(out, raw[at+2:]...)
		}, ErrMalformedTx},
		{"non-canonical: map keys out of order", func(t *testing.T, f fixture) []byte {
			tx, raw := good(t, f)
			bodyEnc, err := Marshal(&tx.Body)
			if err != nil {
				t.Fatal(err)
			}
			sigs := raw[2+len(bodyEnc)+1:] // raw = a2 01 body 02 sigs
			out := append([]byte{0xa2, 0x02}, sigs...)
			out = append(out, 0x01)
			return append(out, bodyEnc...)
		}, ErrMalformedTx},
		{"non-canonical: self-describe tag", func(t *testing.T, f fixture) []byte {
			_, raw := good(t, f)
			return append([]byte{0xd9, 0xd9, 0xf7}, raw...)
		}, ErrMalformedTx},
		{"non-canonical: indefinite-length map", func(t *testing.T, f fixture) []byte {
			_, raw := good(t, f)
			out := append([]byte{0xbf}, raw[1:]...)
			return append(out, 0xff)
		}, ErrMalformedTx},
		{"unknown field", func(t *testing.T, f fixture) []byte {
			tx, _ := good(t, f)
			s := tx.Sigs[0]
			raw, err := Marshal(map[uint64]any{
				1: map[uint64]any{1: tx.Body.ChainID, 2: tx.Body.From[:], 3: tx.Body.Nonce,
					4: map[uint64]any{1: tx.Body.Transfer.To[:], 2: tx.Body.Transfer.Amount}, 9: uint64(7)},
				2: []any{map[uint64]any{1: s.PubKey, 2: s.Sig}},
			})
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}, ErrMalformedTx},
		{"oversized", func(t *testing.T, f fixture) []byte {
			b := body(f)
			b.ChainID = strings.Repeat("x", MaxTxBytes)
			_, raw := signedTx(t, f.alice, b)
			return raw
		}, ErrTxTooLarge},
	}
}

// TestRejectedTxChangesNothing applies, for every kind of bad transaction, the block
// [good₁, bad, good₂] to one state and [good₁, good₂] to an identical one: the bad transaction
// must get its error and leave both the accounts and the root exactly as if it were absent.
func TestRejectedTxChangesNothing(t *testing.T) {
	f := newFixture()
	for _, tc := range badTxCases() {
		t.Run(tc.name, func(t *testing.T) {
			good1 := rawTransfer(t, f.bob, 0, f.dave.addr, 5)
			good2 := rawTransfer(t, f.alice, 1, f.dave.addr, 7)
			bad := tc.raw(t, f)

			for _, cache := range []SigCache{nil, mapCache{HashTx(good1): true, HashTx(good2): true}} {
				withBad, dbA := f.open(t)
				without, dbB := f.open(t)
				res := mustApply(t, withBad, 2, [][]byte{good1, bad, good2}, cache)
				ref := mustApply(t, without, 2, [][]byte{good1, good2}, cache)

				for i, want := range []error{nil, tc.want, nil} {
					r := res.Results[i]
					if want == nil && r.Err != nil || want != nil && !errors.Is(r.Err, want) {
						t.Fatalf("tx %d: got %v, want %v", i, r.Err, want)
					}
				}
				if res.Results[1].Hash != HashTx(bad) {
					t.Fatal("result hash is not HashTx(raw)")
				}
				if res.Root != ref.Root {
					t.Fatal("the rejected transaction changed the root")
				}
				if a, b := dumpState(t, withBad, dbA), dumpState(t, without, dbB); a != b {
					t.Fatalf("the rejected transaction changed the state:\n%s\nvs\n%s", a, b)
				}
			}

			// Alone in a block, it changes nothing but the height.
			alone, dbA := f.open(t)
			empty, dbB := f.open(t)
			res := mustApply(t, alone, 2, [][]byte{bad}, nil)
			ref := mustApply(t, empty, 2, nil, nil)
			if !errors.Is(res.Results[0].Err, tc.want) || res.Root != ref.Root || dumpState(t, alone, dbA) != dumpState(t, empty, dbB) {
				t.Fatalf("alone: %v, root equal %v", res.Results[0].Err, res.Root == ref.Root)
			}
		})
	}
}

func TestDuplicateInBlock(t *testing.T) {
	f := newFixture()
	s, _ := f.open(t)
	tx := rawTransfer(t, f.bob, 0, f.dave.addr, 5)
	poor := rawTransfer(t, f.dave, 0, f.alice.addr, 5) // fails the first time, would pass the second
	res := mustApply(t, s, 2, [][]byte{poor, tx, tx, poor}, nil)
	for i, want := range []error{ErrNoFunds, nil, ErrDuplicateTx, ErrDuplicateTx} {
		if got := res.Results[i].Err; want == nil && got != nil || !errors.Is(got, want) {
			t.Fatalf("tx %d: %v, want %v", i, got, want)
		}
	}
	if got := mustAccount(t, s, f.dave.addr); got != (Account{Balance: 5}) {
		t.Fatalf("dave %+v", got)
	}
	// In a later block the nonce stops the replay.
	res = mustApply(t, s, 3, [][]byte{tx}, nil)
	if !errors.Is(res.Results[0].Err, ErrBadNonce) {
		t.Fatalf("replay in a later block: %v", res.Results[0].Err)
	}
}

func TestApplyBlockSeesEarlierTxs(t *testing.T) {
	f := newFixture()
	s, _ := f.open(t)
	res := mustApply(t, s, 2, [][]byte{
		rawTransfer(t, f.alice, 1, f.dave.addr, 999), // alice empties her account into dave's
		rawTransfer(t, f.dave, 0, f.bob.addr, 500),   // dave spends what he got in this block
		rawTransfer(t, f.dave, 1, f.bob.addr, 499),
		rawTransfer(t, f.dave, 2, f.bob.addr, 1),  // nothing left
		rawTransfer(t, f.alice, 2, f.bob.addr, 1), // nor for alice
	}, nil)
	for i, want := range []error{nil, nil, nil, ErrNoFunds, ErrNoFunds} {
		if got := res.Results[i].Err; want == nil && got != nil || !errors.Is(got, want) {
			t.Fatalf("tx %d: %v, want %v", i, got, want)
		}
	}
	for _, c := range []struct {
		who  testKey
		want Account
	}{
		{f.alice, Account{Balance: 0, Nonce: 2}},
		{f.bob, Account{Balance: 1001 + 999, Nonce: 0}},
		{f.dave, Account{Balance: 0, Nonce: 2}},
	} {
		if got := mustAccount(t, s, c.who.addr); got != c.want {
			t.Errorf("%x: %+v, want %+v", c.who.addr[:4], got, c.want)
		}
	}
	if s.Height() != 2 || s.Root() != res.Root || res.Height != 2 {
		t.Fatalf("height %d root %s, result %d %s", s.Height(), s.Root(), res.Height, res.Root)
	}
}

// TestSigCacheIsTrusted documents the cache contract: a hit skips verification, so a cache must
// only ever hold transactions it verified; a miss, or no cache, verifies.
func TestSigCacheIsTrusted(t *testing.T) {
	f := newFixture()
	forged := func(t *testing.T) []byte {
		tx, _ := signedTx(t, f.alice, transferBody(f.alice, 1, f.bob.addr, 100))
		tx.Sigs[0].Sig[7] ^= 1
		return encodeTx(t, tx)
	}
	for _, c := range []struct {
		name  string
		cache SigCache
		want  error
	}{
		{"no cache", nil, ErrBadSignature},
		{"cache miss", mapCache{}, ErrBadSignature},
		{"cache hit", yesCache{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := f.open(t)
			res := mustApply(t, s, 2, [][]byte{forged(t)}, c.cache)
			if got := res.Results[0].Err; c.want == nil && got != nil || !errors.Is(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestApplyBlockHeight(t *testing.T) {
	f := newFixture()
	s, db := f.open(t)
	before := dumpState(t, s, db)
	tx := rawTransfer(t, f.bob, 0, f.dave.addr, 5)
	for _, h := range []uint64{0, 1, 3, math.MaxUint64} {
		if _, err := s.ApplyBlock(BlockInfo{Height: h}, [][]byte{tx}, nil); !errors.Is(err, ErrWrongHeight) {
			t.Fatalf("height %d: %v", h, err)
		}
	}
	if dumpState(t, s, db) != before {
		t.Fatal("a refused block changed the state")
	}
	mustApply(t, s, 2, [][]byte{tx}, nil)
}

func TestGenesis(t *testing.T) {
	a, b := newTestKey(1), newTestKey(2)
	db := openStore(t, kv.MemDB, "")
	s, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if s.Initialised() || s.Height() != 0 || s.Root() != (Hash{}) {
		t.Fatal("fresh state should be empty")
	}
	if _, err := s.ApplyBlock(BlockInfo{Height: 1}, nil, nil); !errors.Is(err, ErrNotInitialised) {
		t.Fatalf("ApplyBlock before genesis: %v", err)
	}
	if err := s.InitGenesis(Genesis{Accounts: []GenesisAccount{{Address: a.addr, Balance: 1}, {Address: a.addr, Balance: 2}}}); !errors.Is(err, ErrBadGenesis) {
		t.Fatalf("duplicate account: %v", err)
	}
	if err := s.InitGenesis(Genesis{Accounts: []GenesisAccount{{Address: a.addr, Balance: math.MaxUint64}, {Address: b.addr, Balance: 1}}}); !errors.Is(err, ErrBadGenesis) {
		t.Fatalf("supply overflow: %v", err)
	}
	if s.Initialised() {
		t.Fatal("a refused genesis initialised the state")
	}
	if err := s.InitGenesis(Genesis{Accounts: []GenesisAccount{{Address: a.addr, Balance: math.MaxUint64 - 1}, {Address: b.addr, Balance: 1}}}); err != nil {
		t.Fatal(err)
	}
	if !s.Initialised() || s.Height() != 0 || s.Root() == (Hash{}) {
		t.Fatal("genesis did not set the root")
	}
	if err := s.InitGenesis(Genesis{}); !errors.Is(err, ErrInitialised) {
		t.Fatalf("second genesis: %v", err)
	}
	if got := mustAccount(t, s, a.addr); got != (Account{Balance: math.MaxUint64 - 1}) {
		t.Fatalf("account %+v", got)
	}

	// A second State on the same store knows genesis happened.
	again, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.InitGenesis(Genesis{}); !errors.Is(err, ErrInitialised) {
		t.Fatalf("genesis on a reopened store: %v", err)
	}
	if again.Root() != s.Root() {
		t.Fatal("reopened root differs")
	}

	// Genesis with no accounts is allowed.
	empty, _ := newTestState(t, kv.MemDB, nil)
	if empty.Root() == (Hash{}) {
		t.Fatal("empty genesis has no root")
	}
}

func TestOpenRefuses(t *testing.T) {
	if _, err := Open(openStore(t, kv.MemDB, ""), ""); !errors.Is(err, ErrEmptyChainID) {
		t.Fatalf("empty chain ID: %v", err)
	}
	_, db := newTestState(t, kv.MemDB, nil)
	if _, err := Open(db, "guild-other"); !errors.Is(err, ErrWrongChain) {
		t.Fatalf("another chain's store: %v", err)
	}

	half := openStore(t, kv.MemDB, "")
	b := half.NewBatch()
	_ = b.Set(keyRoot, make([]byte, 34))
	_ = b.Write()
	if _, err := Open(half, testChain); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("root without height: %v", err)
	}

	// Accounts without metadata: genesis must not write over them.
	stray := openStore(t, kv.MemDB, "")
	seedAccount(t, stray, newTestKey(1).addr, Account{Balance: 1})
	s, err := Open(stray, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(Genesis{}); !errors.Is(err, ErrInitialised) {
		t.Fatalf("genesis over stray accounts: %v", err)
	}
}

func TestCheckTx(t *testing.T) {
	f := newFixture()
	s, _ := f.open(t) // alice: 999, nonce 1
	tx := func(mut func(*TxBody)) *Tx {
		b := transferBody(f.alice, 1, f.bob.addr, 10)
		mut(&b)
		k := f.alice
		if b.From == f.dave.addr {
			k = f.dave
		}
		signed, _ := signedTx(t, k, b)
		return signed
	}
	for _, c := range []struct {
		name string
		tx   *Tx
		want error
	}{
		{"next nonce", tx(func(*TxBody) {}), nil},
		{"future nonce", tx(func(b *TxBody) { b.Nonce = 7 }), nil},
		{"whole balance", tx(func(b *TxBody) { b.Transfer.Amount = 999 }), nil},
		{"used nonce", tx(func(b *TxBody) { b.Nonce = 0 }), ErrBadNonce},
		{"wrong chain", tx(func(b *TxBody) { b.ChainID = "guild-other" }), ErrWrongChain},
		{"insufficient funds", tx(func(b *TxBody) { b.Transfer.Amount = 1000 }), ErrNoFunds},
		{"no account", tx(func(b *TxBody) { b.From = f.dave.addr; b.Nonce = 0 }), ErrNoFunds},
		{"zero amount", tx(func(b *TxBody) { b.Transfer.Amount = 0 }), ErrBadAmount},
		{"self", tx(func(b *TxBody) { b.Transfer.To = f.alice.addr }), ErrSelfTransfer},
		{"no operation", tx(func(b *TxBody) { b.Transfer = nil }), ErrNoOperation},
		{"two operations", tx(func(b *TxBody) { b.NotaryAnchor = &NotaryAnchor{Hash: Hash{1}} }), ErrMalformedTx},
		{"signer not the sender", func() *Tx { x := tx(func(*TxBody) {}); x.Body.From = f.carol.addr; return x }(), ErrNotAuthorized},
		{"two signers", func() *Tx { x := tx(func(*TxBody) {}); _ = CoSign(x, f.bob.priv); return x }(), ErrNotAuthorized},
		{"nil", nil, ErrMalformedTx},
	} {
		err := s.CheckTx(c.tx)
		if c.want == nil && err != nil || !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// recCache is a mapCache that records what the state verified (a SigRecorder).
type recCache struct{ mapCache }

func (c recCache) Record(hs ...Hash) {
	for _, h := range hs {
		c.mapCache[h] = true
	}
}

// A block's transactions verified by the state are recorded in a SigRecorder, the good ones
// only, so the node does not verify them again when gossip brings them.
func TestSigRecorderLearnsWhatTheBlockVerified(t *testing.T) {
	f := newFixture()
	s, _ := f.open(t)
	good := rawTransfer(t, f.bob, 0, f.dave.addr, 5)
	tx, _ := signedTx(t, f.alice, transferBody(f.alice, 1, f.bob.addr, 100))
	tx.Sigs[0].Sig[7] ^= 1
	forged := encodeTx(t, tx)
	c := recCache{mapCache{}}
	mustApply(t, s, 2, [][]byte{good, forged}, c)
	if !c.Verified(HashTx(good)) || c.Verified(HashTx(forged)) {
		t.Fatalf("recorded %v: want the good transaction only", c.mapCache)
	}
}

// decodedCache is a TxDecodedCache: verified and decoded transactions by hash.
type decodedCache map[Hash]*Tx

func (c decodedCache) Verified(h Hash) bool { return c[h] != nil }

func (c decodedCache) DecodedTxs(hashes []Hash, out []*Tx) {
	for i, h := range hashes {
		if out[i] == nil {
			out[i] = c[h]
		}
	}
}

// TestDecodedTxsAreTrusted documents the TxDecodedCache contract: a block's transaction that the
// cache holds decoded is executed as the cache has it, without decoding its bytes again (here
// the cache lies about the amount, to show that), so a cache must only hold what DecodeTx made
// of those very bytes; a miss decodes.
func TestDecodedTxsAreTrusted(t *testing.T) {
	f := newFixture()
	raw := rawTransfer(t, f.alice, 1, f.bob.addr, 100)
	tx, err := DecodeTx(raw)
	if err != nil {
		t.Fatal(err)
	}
	lie := *tx
	lie.Body.Transfer = &Transfer{To: f.bob.addr, Amount: 7}
	for _, c := range []struct {
		name  string
		cache SigCache
		bob   uint64
	}{
		{"no cache", nil, 1001 + 100},
		{"miss", decodedCache{}, 1001 + 100},
		{"hit", decodedCache{HashTx(raw): tx}, 1001 + 100},
		{"hit, lying", decodedCache{HashTx(raw): &lie}, 1001 + 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := f.open(t)
			res := mustApply(t, s, 2, [][]byte{raw}, c.cache)
			if err := res.Results[0].Err; err != nil {
				t.Fatal(err)
			}
			if got := mustAccount(t, s, f.bob.addr).Balance; got != c.bob {
				t.Fatalf("bob's balance %d, want %d", got, c.bob)
			}
		})
	}
}
