package state

import (
	"crypto/sha256"
	"errors"
	"math"
	"testing"
)

func TestMultisig(t *testing.T) {
	e := newOpEnv(t)
	a, b, c, d := e.alice, e.bob, e.carol, e.dave
	pay := func(amount uint64) TxBody { return TxBody{Transfer: &Transfer{To: e.erin.addr, Amount: amount}} }
	set := func(q uint32, ks ...testKey) TxBody {
		op := &SetSigners{Quorum: q}
		for _, k := range ks {
			op.Signers = append(op.Signers, pub(k))
		}
		return TxBody{SetSigners: op}
	}
	for _, c := range []struct {
		name string
		op   TxBody
		want error
	}{
		{"quorum above signers", set(3, b, c), ErrBadSigners},
		{"quorum zero", set(0, b, c), ErrBadSigners},
		{"quorum without signers", TxBody{SetSigners: &SetSigners{Quorum: 1}}, ErrBadSigners},
		{"repeated signer", set(1, b, b), ErrBadSigners},
		{"bad key", TxBody{SetSigners: &SetSigners{Signers: [][]byte{make([]byte, 31)}, Quorum: 1}}, ErrBadSigners},
		{"small-order key", TxBody{SetSigners: &SetSigners{Signers: [][]byte{make([]byte, 32)}, Quorum: 1}}, ErrBadSigners},
	} {
		t.Run(c.name, func(t *testing.T) { e.t = t; e.do(a, c.want, c.op) })
	}
	e.t = t
	seventeen := &SetSigners{Quorum: 1}
	for i := range MaxSigners + 1 {
		seventeen.Signers = append(seventeen.Signers, pub(newTestKey(500+i)))
	}
	e.do(a, ErrBadSigners, TxBody{SetSigners: seventeen})

	// alice's treasury: 2 of bob, carol, dave.
	e.do(a, nil, set(2, b, c, d))
	if acct := mustAccount(t, e.s, a.addr); !acct.Multisig {
		t.Fatal("account not marked multi-signature")
	}
	if set := must(e.s.Signers(a.addr)); set == nil || set.Quorum != 2 || len(set.Signers) != 3 {
		t.Fatalf("signer set %+v", set)
	}
	signed := func(op TxBody, ks ...testKey) []byte {
		acct := mustAccount(t, e.s, a.addr)
		op.ChainID, op.From, op.Nonce = testChain, a.addr, acct.Nonce
		tx, err := SignTx(op, ks[0].priv)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks[1:] {
			if err := CoSign(tx, k.priv); err != nil {
				t.Fatal(err)
			}
		}
		return encodeTx(t, tx)
	}
	e.doRaw(ErrNotAuthorized, signed(pay(10), a))       // her own key no longer acts alone
	e.doRaw(ErrNotAuthorized, signed(pay(10), b))       // below quorum
	e.doRaw(ErrNotAuthorized, signed(pay(10), b, a))    // a stranger's signature is refused
	e.doRaw(ErrNotAuthorized, signed(pay(10), b, c, a)) // even beyond the quorum
	e.doRaw(nil, signed(pay(10), b, c))
	e.doRaw(nil, signed(pay(10), d, b, c))
	if got := mustAccount(t, e.s, e.erin.addr).Balance; got != 1020 {
		t.Fatalf("erin has %d", got)
	}
	// The mempool check agrees.
	tx := must(DecodeTx(signed(pay(1), b)))
	if err := e.s.CheckTx(tx); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("CheckTx below quorum: %v", err)
	}
	if err := e.s.CheckTx(must(DecodeTx(signed(pay(1), b, d)))); err != nil {
		t.Fatalf("CheckTx at quorum: %v", err)
	}
	// Changing the signatories takes the current quorum; then the new rule applies.
	e.doRaw(ErrNotAuthorized, signed(set(1, a), b))
	e.doRaw(nil, signed(set(1, a), b, d))
	e.do(a, nil, pay(1))
	// Back to the address's own key.
	e.do(a, nil, TxBody{SetSigners: &SetSigners{}})
	if acct := mustAccount(t, e.s, a.addr); acct.Multisig || must(e.s.Signers(a.addr)) != nil {
		t.Fatal("signer set not removed")
	}
	e.do(a, nil, pay(1))
}

func TestAssets(t *testing.T) {
	e := newOpEnv(t)
	a, b, c := e.alice, e.bob, e.carol
	create := func(sym string, max uint64) TxBody {
		return TxBody{AssetCreate: &AssetCreate{Symbol: sym, Name: "Gold", Decimals: 2, MaxSupply: max}}
	}
	mint := func(sym string, to testKey, n uint64) TxBody {
		return TxBody{AssetMint: &AssetMint{Symbol: sym, To: to.addr, Amount: n}}
	}
	send := func(sym string, to testKey, n uint64) TxBody {
		return TxBody{AssetTransfer: &AssetTransfer{Symbol: sym, To: to.addr, Amount: n}}
	}
	burn := func(sym string, n uint64) TxBody { return TxBody{AssetBurn: &AssetBurn{Symbol: sym, Amount: n}} }
	steps := []struct {
		name string
		k    testKey
		op   TxBody
		want error
	}{
		{"non-member creates", c, create("GLD", 0), ErrNotMember},
		{"symbol too short", a, create("G", 0), ErrBadSymbol},
		{"symbol lower case", a, create("gld", 0), ErrBadSymbol},
		{"symbol too long", a, create("ABCDEFGHIJKLM", 0), ErrBadSymbol},
		{"no name", a, TxBody{AssetCreate: &AssetCreate{Symbol: "GLD"}}, ErrBadField},
		{"too many decimals", a, TxBody{AssetCreate: &AssetCreate{Symbol: "GLD", Name: "x", Decimals: 19}}, ErrBadField},
		{"create", a, create("GLD", 1000), nil},
		{"create again", b, create("GLD", 0), ErrExists},
		{"create unlimited", b, create("PTS", 0), nil},
		{"mint unknown", a, mint("XXX", a, 1), ErrUnknown},
		{"mint by non-issuer", b, mint("GLD", b, 1), ErrNotIssuer},
		{"mint zero", a, mint("GLD", a, 0), ErrBadAmount},
		{"mint over max", a, mint("GLD", a, 1001), ErrMaxSupply},
		{"mint", a, mint("GLD", c, 600), nil},
		{"mint to max", a, mint("GLD", a, 400), nil},
		{"mint past max", a, mint("GLD", a, 1), ErrMaxSupply},
		{"mint near the limit", b, mint("PTS", b, math.MaxUint64-5), nil},
		{"mint overflows", b, mint("PTS", b, 6), ErrOverflow},
		{"send unknown", c, send("XXX", a, 1), ErrUnknown},
		{"send zero", c, send("GLD", a, 0), ErrBadAmount},
		{"send to self", c, send("GLD", c, 1), ErrSelfTransfer},
		{"send too much", c, send("GLD", b, 601), ErrNoFunds},
		{"send", c, send("GLD", b, 100), nil},
		{"send nothing held", e.erin, send("GLD", a, 1), ErrNoFunds},
		{"burn unknown", c, burn("XXX", 1), ErrUnknown},
		{"burn zero", c, burn("GLD", 0), ErrBadAmount},
		{"burn too much", c, burn("GLD", 501), ErrNoFunds},
		{"burn", c, burn("GLD", 500), nil},
		{"burn by issuer of own", a, burn("GLD", 400), nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op) })
	}
	e.t = t
	gld := must(e.s.Asset("GLD"))
	if gld.Supply != 100 || gld.Issuer != a.addr || gld.MaxSupply != 1000 || gld.Decimals != 2 {
		t.Fatalf("GLD %+v", gld)
	}
	if n := must(e.s.AssetBalance(b.addr, "GLD")); n != 100 {
		t.Fatalf("bob holds %d GLD", n)
	}
	bals := must(e.s.AssetBalances(b.addr))
	if len(bals) != 2 || bals[0] != (AssetBalance{"GLD", 100}) || bals[1] != (AssetBalance{"PTS", math.MaxUint64 - 5}) {
		t.Fatalf("bob's balances %+v", bals)
	}
	if n := must(e.s.AssetBalance(c.addr, "GLD")); n != 0 {
		t.Fatalf("carol holds %d GLD", n)
	}
	if _, err := e.s.Asset("NOPE"); !errors.Is(err, ErrAssetNotFound) || !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown asset: %v", err)
	}
}

func TestItems(t *testing.T) {
	e := newOpEnv(t)
	a, b, c := e.alice, e.bob, e.carol
	meta := sha256.Sum256([]byte("a 2-carat diamond"))
	e.do(c, ErrBadID, TxBody{ItemRegister: &ItemRegister{ID: "bad id", MetadataHash: meta}})
	e.do(c, ErrBadID, TxBody{ItemRegister: &ItemRegister{ID: "", MetadataHash: meta}})
	e.do(c, nil, TxBody{ItemRegister: &ItemRegister{ID: "diamond-1", MetadataHash: meta, Owner: &a.addr}})
	e.do(b, ErrExists, TxBody{ItemRegister: &ItemRegister{ID: "diamond-1"}})
	e.do(c, ErrNotOwner, TxBody{ItemTransfer: &ItemTransfer{ID: "diamond-1", To: c.addr}})
	e.do(a, ErrSelfTransfer, TxBody{ItemTransfer: &ItemTransfer{ID: "diamond-1", To: a.addr}})
	e.do(a, ErrUnknown, TxBody{ItemTransfer: &ItemTransfer{ID: "diamond-2", To: b.addr}})
	e.do(a, nil, TxBody{ItemTransfer: &ItemTransfer{ID: "diamond-1", To: b.addr}})
	e.do(a, ErrNotOwner, TxBody{ItemTransfer: &ItemTransfer{ID: "diamond-1", To: c.addr}})
	e.do(b, nil, TxBody{ItemTransfer: &ItemTransfer{ID: "diamond-1", To: c.addr}})

	it := must(e.s.Item("diamond-1"))
	if it.Owner != c.addr || it.Registrar != c.addr || it.MetadataHash != meta || it.Events != 3 {
		t.Fatalf("item %+v", it)
	}
	hist := must(e.s.ItemHistory("diamond-1"))
	want := []struct {
		ev       string
		from, to Address
		h        uint64
	}{{EventRegister, c.addr, a.addr, 3}, {EventTransfer, a.addr, b.addr, 8}, {EventTransfer, b.addr, c.addr, 10}}
	if len(hist) != len(want) {
		t.Fatalf("history %+v", hist)
	}
	for i, w := range want {
		h := hist[i]
		if h.Seq != uint64(i) || h.Event != w.ev || h.From != w.from || h.To != w.to || h.Height != w.h || h.TimeMs != int64(w.h)*1000 || h.Tx == (Hash{}) {
			t.Fatalf("event %d: %+v, want %+v", i, h, w)
		}
	}
	if _, err := e.s.ItemHistory("diamond-2"); !errors.Is(err, ErrItemNotFound) {
		t.Fatalf("unknown item history: %v", err)
	}
	if _, err := e.s.Item("diamond-2"); !errors.Is(err, ErrItemNotFound) {
		t.Fatalf("unknown item: %v", err)
	}
}

func TestNotary(t *testing.T) {
	e := newOpEnv(t)
	doc := sha256.Sum256([]byte("photo.jpg"))
	e.do(e.carol, ErrBadField, TxBody{NotaryAnchor: &NotaryAnchor{}})
	e.do(e.carol, nil, TxBody{NotaryAnchor: &NotaryAnchor{Hash: doc}})
	e.do(e.alice, ErrExists, TxBody{NotaryAnchor: &NotaryAnchor{Hash: doc}})
	r := must(e.s.NotaryRecord(doc))
	if r.By != e.carol.addr || r.Height != 2 || r.TimeMs != 2000 || r.Hash != doc || r.Tx == (Hash{}) {
		t.Fatalf("record %+v", r)
	}
	if _, err := e.s.NotaryRecord(Hash{9}); !errors.Is(err, ErrNotaryNotFound) {
		t.Fatalf("unknown hash: %v", err)
	}
}

// TestMultisigSixteen: the largest signer set, and a transaction carrying all its signatures,
// fit the limits.
func TestMultisigSixteen(t *testing.T) {
	e := newOpEnv(t)
	op := &SetSigners{Quorum: MaxSigners}
	var ks []testKey
	for i := range MaxSigners {
		ks = append(ks, newTestKey(800+i))
		op.Signers = append(op.Signers, pub(ks[i]))
	}
	e.do(e.alice, nil, TxBody{SetSigners: op})
	body := TxBody{ChainID: testChain, From: e.alice.addr, Nonce: 1, Transfer: &Transfer{To: e.bob.addr, Amount: 5}}
	tx, err := SignTx(body, ks[0].priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks[1:] {
		if err := CoSign(tx, k.priv); err != nil {
			t.Fatal(err)
		}
	}
	if err := CoSign(tx, e.alice.priv); err == nil {
		t.Fatal("CoSign accepted a 17th signature")
	}
	raw := encodeTx(t, tx)
	if len(raw) > MaxTxBytes {
		t.Fatalf("%d bytes", len(raw))
	}
	e.doRaw(nil, raw)
}
