package state

import (
	"bytes"
	"crypto/sha256"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// TestAccountCodecMatchesCBOR checks the hand-written account codec against codec.go's
// deterministic CBOR, at every integer-width boundary and at random.
func TestAccountCodecMatchesCBOR(t *testing.T) {
	edges := []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}
	var accts []Account
	for _, b := range edges {
		for _, n := range edges {
			accts = append(accts, Account{Balance: b, Nonce: n}, Account{Balance: b, Nonce: n, Multisig: true})
		}
	}
	rng := rand.New(rand.NewSource(1))
	for range 2000 {
		accts = append(accts, Account{Balance: rng.Uint64() >> rng.Intn(64), Nonce: rng.Uint64() >> rng.Intn(64), Multisig: rng.Intn(2) == 0})
	}
	for _, a := range accts {
		want, err := Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got := appendAccount(nil, a)
		if !bytes.Equal(got, want) {
			t.Fatalf("%+v: appendAccount %x, Marshal %x", a, got, want)
		}
		back, err := decodeAccount(want)
		if err != nil || back != a {
			t.Fatalf("%+v: decodeAccount = %+v, %v", a, back, err)
		}
		var viaCBOR Account
		if err := Unmarshal(got, &viaCBOR); err != nil || viaCBOR != a {
			t.Fatalf("%+v: Unmarshal = %+v, %v", a, viaCBOR, err)
		}
	}
	// Anything but the canonical bytes is refused.
	for _, bad := range [][]byte{
		nil,
		{0xa2, 0x01, 0x00, 0x02},                   // truncated
		{0xa2, 0x01, 0x18, 0x05, 0x02, 0x00},       // 5 in two bytes
		{0xa2, 0x02, 0x00, 0x01, 0x00},             // keys out of order
		{0xa2, 0x01, 0x00, 0x02, 0x00, 0x00},       // trailing byte
		{0xa1, 0x01, 0x00},                         // one pair
		{0xa2, 0x01, 0x20, 0x02, 0x00},             // negative integer
		{0xbf, 0x01, 0x00, 0x02, 0x00, 0xff},       // indefinite length
		{0xa3, 0x01, 0x00, 0x02, 0x00, 0x03, 0xf4}, // multisig false written out
		{0xa3, 0x01, 0x00, 0x02, 0x00},             // three pairs announced, two given
		{0xa2, 0x01, 0x00, 0x02, 0x00, 0x03, 0xf5}, // two announced, three given
	} {
		if _, err := decodeAccount(bad); err == nil {
			t.Errorf("decodeAccount(%x) accepted", bad)
		}
	}
}

// specRoot is the state root exactly as package merkle documents it, over the whole state,
// written independently of tree.go: the compact tree built from scratch.
func specRoot(state map[string][]byte) Hash {
	type leaf struct{ kh, h [32]byte }
	var leaves []leaf
	for k, v := range state {
		kh := sha256.Sum256([]byte(k))
		vh := sha256.Sum256(v)
		leaves = append(leaves, leaf{kh, sha256.Sum256(append(append([]byte{0}, kh[:]...), vh[:]...))})
	}
	bit := func(kh [32]byte, i int) byte { return kh[i/8] >> (7 - i%8) & 1 }
	var build func(ls []leaf, depth int) Hash
	build = func(ls []leaf, depth int) Hash {
		switch len(ls) {
		case 0:
			return Hash{}
		case 1:
			return ls[0].h
		}
		var l, r []leaf
		for _, x := range ls {
			if bit(x.kh, depth) == 0 {
				l = append(l, x)
			} else {
				r = append(r, x)
			}
		}
		lh, rh := build(l, depth+1), build(r, depth+1)
		return sha256.Sum256(append(append([]byte{1}, lh[:]...), rh[:]...))
	}
	return build(leaves, 0)
}

// allEntries reads every state entry ("a/" and "r/") of a store.
func allEntries(t *testing.T, db kv.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range []string{"a/", "r/"} {
		it, err := db.Iterator([]byte(p), prefixEnd([]byte(p)))
		if err != nil {
			t.Fatal(err)
		}
		for ; it.Valid(); it.Next() {
			out[string(it.Key())] = bytes.Clone(it.Value())
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func accountEntry(t *testing.T, a Address, acct Account) (string, []byte) {
	t.Helper()
	v, err := Marshal(acct)
	if err != nil {
		t.Fatal(err)
	}
	return "a/" + string(a[:]), v
}

func TestRootFollowsSpec(t *testing.T) {
	alice, bob, carol := newTestKey(1), newTestKey(2), newTestKey(3)
	s, _ := newTestState(t, kv.MemDB, []GenesisAccount{
		{Address: alice.addr, Balance: 100},
		{Address: bob.addr, Balance: 50},
		{Address: carol.addr, Balance: 0}, // stores nothing
	})
	g := map[string][]byte{}
	for _, e := range []struct {
		a Address
		b uint64
	}{{alice.addr, 100}, {bob.addr, 50}} {
		k, v := accountEntry(t, e.a, Account{Balance: e.b})
		g[k] = v
	}
	// Governance is state from genesis on, even when empty.
	gov, err := Marshal(&govState{Params: DefaultParams(), Threshold: DefaultThreshold})
	if err != nil {
		t.Fatal(err)
	}
	g["r/gov"] = gov
	vals, err := Marshal(&ValidatorSetAt{})
	if err != nil {
		t.Fatal(err)
	}
	g["r/vals/\x00\x00\x00\x00\x00\x00\x00\x00"] = vals
	genesis := specRoot(g)
	if s.Root() != genesis || s.Height() != 0 {
		t.Fatalf("genesis root %s height %d, spec says %s", s.Root(), s.Height(), genesis)
	}

	res := mustApply(t, s, 1, [][]byte{
		rawTransfer(t, alice, 0, carol.addr, 30),
		rawTransfer(t, bob, 0, alice.addr, 5),
		rawTransfer(t, bob, 0, alice.addr, 6), // rejected: nonce used
	}, nil)
	for _, e := range []struct {
		a    Address
		acct Account
	}{{alice.addr, Account{Balance: 75, Nonce: 1}}, {bob.addr, Account{Balance: 45, Nonce: 1}}, {carol.addr, Account{Balance: 30}}} {
		k, v := accountEntry(t, e.a, e.acct)
		g[k] = v
	}
	if want := specRoot(g); res.Root != want || s.Root() != want {
		t.Fatalf("block 1 root %s (state %s), spec says %s", res.Root, s.Root(), want)
	}

	// The root is a function of the state alone: an empty block keeps it.
	prev := s.Root()
	res = mustApply(t, s, 2, nil, nil)
	if res.Root != prev {
		t.Fatalf("empty block root %s, want %s", res.Root, prev)
	}

	// Deletes: the tree of the state without an entry is the tree of the state that never had it.
	ws := newWriteSet(2)
	k, _ := accountEntry(t, carol.addr, Account{})
	ws.entries = append(ws.entries, writeEntry{key: []byte(k), deleted: true}, writeEntry{key: []byte("a/b"), value: []byte{}})
	got, _, err := s.tree.update(s.Root(), s.Height()+1, ws)
	if err != nil {
		t.Fatal(err)
	}
	delete(g, k)
	g["a/b"] = []byte{}
	if want := specRoot(g); got != want {
		t.Fatalf("write set with a delete: %s, spec says %s", got, want)
	}
}

// TestGenesisRootGolden pins the root format: if this changes, every existing chain forks.
func TestGenesisRootGolden(t *testing.T) {
	s, _ := newTestState(t, kv.MemDB, []GenesisAccount{
		{Address: newTestKey(1).addr, Balance: 1_000_000},
		{Address: newTestKey(2).addr, Balance: 1},
	})
	const want = "7eb8ef9bfb492708cdb9b3ebc0b474723c5a081a78c58322921299d6ceaf259c" // since the state tree (issue 12)
	if got := s.Root().String(); got != want {
		t.Fatalf("genesis root %s, want %s", got, want)
	}
}

// TestRootCommitsToRecords checks that records are state entries exactly as the spec says: after
// a notary anchor the root is the tree over genesis, the sender's account and the anchor record.
func TestRootCommitsToRecords(t *testing.T) {
	alice := newTestKey(1)
	s, db := newTestState(t, kv.MemDB, []GenesisAccount{{Address: alice.addr, Balance: 100}})
	g := allEntries(t, db)
	if want := specRoot(g); s.Root() != want {
		t.Fatalf("genesis root %s, spec says %s", s.Root(), want)
	}
	doc := Hash{0xd0}
	body := TxBody{ChainID: testChain, From: alice.addr, NotaryAnchor: &NotaryAnchor{Hash: doc}}
	_, raw := signedTx(t, alice, body)
	res := mustApply(t, s, 1, [][]byte{raw}, nil)
	if res.Results[0].Err != nil {
		t.Fatal(res.Results[0].Err)
	}
	k, v := accountEntry(t, alice.addr, Account{Balance: 100, Nonce: 1})
	g[k] = v
	rec, err := Marshal(&NotaryRecord{Hash: doc, By: alice.addr, Height: 1, TimeMs: 1000, Tx: HashTx(raw)})
	if err != nil {
		t.Fatal(err)
	}
	g["r/notary/"+string(doc[:])] = rec
	if want := specRoot(g); res.Root != want {
		t.Fatalf("root %s, spec says %s", res.Root, want)
	}
}

// TestTxBodyCodecMatchesGeneric checks TxBody's hand-written encoding against the generic
// encoder's encoding of the same struct, for bodies with every operation, none, and two.
func TestTxBodyCodecMatchesGeneric(t *testing.T) {
	type plainTxBody TxBody // the same fields, without the MarshalCBOR method
	rc := genRandomChain(t, 3, 12, 60)
	bodies := []TxBody{{}, {ChainID: strings.Repeat("x", 300), Nonce: math.MaxUint64},
		{Transfer: &Transfer{Amount: 1}, GovVote: &GovVote{ID: "x"}, NotaryAnchor: &NotaryAnchor{}},
		// Private data (keys from 30: two-byte CBOR keys).
		{EncryptionKeySet: &EncryptionKeySet{Member: "m", Key: "age1x"}},
		{PrivateSend: &PrivateSend{Recipients: []string{"a", "b"}, Size: 9, Expires: 3}},
		{PrivateEscrowCreate: &PrivateEscrowCreate{ID: "e", Deadline: 4, Private: PrivateSend{Size: 1}}},
		{PrivateEscrowClose: &PrivateEscrowClose{ID: "e", Refund: true}},
		{PrivateClaimIssue: &PrivateClaimIssue{ID: "c", Issuer: "i", Subject: "s", Schema: "x"}},
		{GovVote: &GovVote{ID: "x"}, PrivateSend: &PrivateSend{}}}
	kinds := map[string]bool{}
	for _, block := range rc.blocks {
		for _, tx := range block {
			if tx.decodeErr == nil {
				bodies = append(bodies, tx.body)
				kinds[opKind(&tx.body)] = true
			}
		}
	}
	if len(kinds) != 19 {
		t.Fatalf("only %d operation kinds", len(kinds))
	}
	for _, b := range bodies {
		got, err := Marshal(&b)
		if err != nil {
			t.Fatal(err)
		}
		want, err := encMode.Marshal(plainTxBody(b))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s body: hand-written %x, generic %x", opKind(&b), got, want)
		}
		var back TxBody
		if err := Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if again, _ := Marshal(&back); !bytes.Equal(again, got) {
			t.Fatalf("%s body does not round-trip", opKind(&b))
		}
	}
}
