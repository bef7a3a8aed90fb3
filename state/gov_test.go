package state

import (
	"errors"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

func TestGovernance(t *testing.T) {
	e := newOpEnv(t)
	a, b, c, d, r := e.alice, e.bob, e.carol, e.dave, e.erin
	propose := func(id string, p GovPropose) TxBody { p.ID = id; return TxBody{GovPropose: &p} }
	vote := func(id string, yes bool) TxBody { return TxBody{GovVote: &GovVote{ID: id, Yes: yes}} }
	newVal := Validator{Name: "v4", PubKey: pub(newTestKey(104)), PeerID: "peer4", Power: 1}
	at := func(h uint64) uint64 { return e.s.Height() + 1 + h } // h blocks after the next one

	steps := []struct {
		name string
		k    testKey
		op   func() TxBody
		want error
	}{
		{"outsider", c, func() TxBody { return propose("p1", GovPropose{SetParam: &Param{ParamMaxBlockTxs, 10}}) }, ErrNotMember},
		{"bad id", a, func() TxBody { return propose("p 1", GovPropose{SetParam: &Param{ParamMaxBlockTxs, 10}}) }, ErrBadID},
		{"no change", a, func() TxBody { return propose("p1", GovPropose{}) }, ErrBadField},
		{"two changes", a, func() TxBody {
			return propose("p1", GovPropose{SetParam: &Param{ParamMaxBlockTxs, 10}, RemoveMember: "bolt"})
		}, ErrBadField},
		{"height without validator", a, func() TxBody {
			return propose("p1", GovPropose{SetParam: &Param{ParamMaxBlockTxs, 10}, EffectiveHeight: 50})
		}, ErrBadField},
		{"member without name", a, func() TxBody { return propose("p1", GovPropose{AddMember: &Member{Controller: r.addr}}) }, ErrBadField},
		{"member without controller", a, func() TxBody { return propose("p1", GovPropose{AddMember: &Member{Name: "eon"}}) }, ErrBadField},
		{"member name taken", a, func() TxBody {
			return propose("p1", GovPropose{AddMember: &Member{Name: "bolt", Controller: r.addr}})
		}, ErrExists},
		{"controller taken", a, func() TxBody {
			return propose("p1", GovPropose{AddMember: &Member{Name: "eon", Controller: b.addr}})
		}, ErrExists},
		{"remove unknown member", a, func() TxBody { return propose("p1", GovPropose{RemoveMember: "zed"}) }, ErrUnknown},
		{"unknown param", a, func() TxBody { return propose("p1", GovPropose{SetParam: &Param{"block_gas", 10}}) }, ErrBadField},
		{"param out of range", a, func() TxBody { return propose("p1", GovPropose{SetParam: &Param{ParamViewTimeoutMs, 5}}) }, ErrBadField},
		{"validator too soon", a, func() TxBody {
			return propose("p1", GovPropose{SetValidator: &newVal, EffectiveHeight: at(0)})
		}, ErrBadHeight},
		{"remove unknown validator", a, func() TxBody {
			return propose("p1", GovPropose{SetValidator: &Validator{Name: "zed"}, EffectiveHeight: at(5)})
		}, ErrUnknown},
		{"validator with bad key", a, func() TxBody {
			return propose("p1", GovPropose{SetValidator: &Validator{Name: "v9", PubKey: []byte{1}, Power: 1}, EffectiveHeight: at(5)})
		}, ErrBadField},
		{"validator reusing a key", a, func() TxBody {
			return propose("p1", GovPropose{SetValidator: &Validator{Name: "v9", PubKey: e.vals[0].PubKey, Power: 1}, EffectiveHeight: at(5)})
		}, ErrBadField},

		// Add a fifth member: with three, two yes votes pass it.
		{"propose member", a, func() TxBody {
			return propose("p1", GovPropose{AddMember: &Member{Name: "eon", Controller: r.addr}})
		}, nil},
		{"id taken", b, func() TxBody { return propose("p1", GovPropose{RemoveMember: "acme"}) }, ErrExists},
		{"proposer votes again", a, func() TxBody { return vote("p1", true) }, ErrDoubleVote},
		{"outsider votes", c, func() TxBody { return vote("p1", true) }, ErrNotMember},
		{"unknown proposal", b, func() TxBody { return vote("p9", true) }, ErrUnknown},
		{"second yes passes it", b, func() TxBody { return vote("p1", true) }, nil},
		{"vote after it passed", d, func() TxBody { return vote("p1", true) }, ErrProposalClosed},

		// Four members now: three yes votes needed, so two no votes reject.
		{"new member proposes", r, func() TxBody { return propose("p2", GovPropose{SetParam: &Param{ParamMaxBlockTxs, 500}}) }, nil},
		{"no 1", b, func() TxBody { return vote("p2", false) }, nil},
		{"no 2 rejects", d, func() TxBody { return vote("p2", false) }, nil},
		{"vote on rejected", a, func() TxBody { return vote("p2", true) }, ErrProposalClosed},

		{"param", a, func() TxBody { return propose("p3", GovPropose{SetParam: &Param{ParamViewTimeoutMs, 5000}}) }, nil},
		{"param yes", b, func() TxBody { return vote("p3", true) }, nil},
		{"param passes", d, func() TxBody { return vote("p3", true) }, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op()) })
	}
	e.t = t
	if _, ok, _ := e.s.IsMember(r.addr); !ok {
		t.Fatal("erin's organization is not a member")
	}
	if p := must(e.s.Proposal("p2")); p.Status != ProposalRejected || len(p.No) != 2 {
		t.Fatalf("p2 %+v", p)
	}
	if v := must(e.s.Param(ParamMaxBlockTxs)); v != 2000 {
		t.Fatalf("max_block_txs %d after a rejected proposal", v)
	}
	if v := must(e.s.Param(ParamViewTimeoutMs)); v != 5000 {
		t.Fatalf("view_timeout_ms %d after a passed proposal", v)
	}

	// A validator joins at a stated future height; the current set does not change before it.
	eff := at(10)
	e.do(a, nil, propose("p4", GovPropose{SetValidator: &newVal, EffectiveHeight: eff}))
	e.do(b, nil, vote("p4", true))
	if st := must(e.s.Proposal("p4")).Status; st != ProposalOpen {
		t.Fatalf("p4 %s with 2 of 4", st)
	}
	e.do(d, nil, vote("p4", true))
	if st := must(e.s.Proposal("p4")).Status; st != ProposalPassed {
		t.Fatalf("p4 %s", st)
	}
	if vs := must(e.s.ValidatorsAt(eff - 1)); len(vs.Validators) != 4 || vs.Height != 0 {
		t.Fatalf("before %d: %+v", eff, vs)
	}
	if vs := must(e.s.ValidatorsAt(eff)); len(vs.Validators) != 5 || vs.Height != eff {
		t.Fatalf("at %d: %+v", eff, vs)
	}
	if vs := must(e.s.Validators()); len(vs.Validators) != 4 {
		t.Fatalf("current set changed early: %+v", vs)
	}
	// Changes are scheduled in height order.
	e.do(a, ErrBadHeight, propose("p5", GovPropose{SetValidator: &Validator{Name: "v0"}, EffectiveHeight: eff - 1}))
	// Removing one with power 0, at the same height as the addition.
	e.do(a, nil, propose("p5", GovPropose{SetValidator: &Validator{Name: "v0"}, EffectiveHeight: eff}))
	e.do(b, nil, vote("p5", true))
	e.do(r, nil, vote("p5", true))
	vs := must(e.s.ValidatorsAt(eff))
	if len(vs.Validators) != 4 || vs.Validators[0].Name != "v1" || vs.Validators[3].Name != "v4" {
		t.Fatalf("at %d: %+v", eff, vs)
	}
	if sched := must(e.s.ValidatorSchedule()); len(sched) != 2 || sched[1].Height != eff {
		t.Fatalf("schedule %+v", sched)
	}
	e.skipTo(eff - 1)
	if vs := must(e.s.Validators()); vs.Height != eff {
		t.Fatalf("the next block's set: %+v", vs)
	}

	// A validator change that does not pass before its height comes too near expires.
	near := at(MinValidatorDelay + 1)
	e.do(a, nil, propose("p6", GovPropose{SetValidator: &Validator{Name: "v1", PubKey: e.vals[1].PubKey, Power: 3}, EffectiveHeight: near}))
	e.block()
	e.do(b, ErrProposalClosed, vote("p6", true))
	if st := must(e.s.Proposal("p6")).Status; st != ProposalExpired {
		t.Fatalf("p6 %s", st)
	}

	// Two proposals add the same organization; the second to pass fails, and says why.
	e.do(a, nil, propose("p7", GovPropose{AddMember: &Member{Name: "fay", Controller: c.addr}}))
	e.do(b, nil, propose("p8", GovPropose{AddMember: &Member{Name: "fay", Controller: c.addr}}))
	e.do(b, nil, vote("p7", true))
	e.do(d, nil, vote("p7", true))
	e.do(a, nil, vote("p8", true))
	e.do(d, nil, vote("p8", true))
	e.do(r, nil, vote("p8", true))
	p8 := must(e.s.Proposal("p8"))
	if p8.Status != ProposalFailed || p8.Reason == "" {
		t.Fatalf("p8 %+v", p8)
	}
	if n := len(must(e.s.Members())); n != 5 {
		t.Fatalf("%d members", n)
	}
	// Removing a member takes its powers away.
	e.do(a, nil, propose("p9", GovPropose{RemoveMember: "eon"}))
	for _, k := range []testKey{b, c, d} {
		e.do(k, nil, vote("p9", true))
	}
	e.do(r, ErrNotMember, propose("p10", GovPropose{SetParam: &Param{ParamEmptyBlockMs, 10}}))
	e.do(r, ErrNotMember, TxBody{AssetCreate: &AssetCreate{Symbol: "EON", Name: "Eon"}})

	ps := must(e.s.Proposals())
	if len(ps) != 9 || ps[0].ID != "p1" || ps[8].ID != "p9" {
		t.Fatalf("proposals %v", ps)
	}
	if _, err := e.s.Proposal("p99"); !errors.Is(err, ErrProposalNotFound) {
		t.Fatalf("unknown proposal: %v", err)
	}
}

func TestValidatorSetRules(t *testing.T) {
	k := func(i int) []byte { return pub(newTestKey(300 + i)) }
	one := []Validator{{Name: "a", PubKey: k(1), Power: 1}}
	for _, c := range []struct {
		name string
		vs   []Validator
		v    Validator
		want error
	}{
		{"remove the last", one, Validator{Name: "a"}, ErrBadField},
		{"remove unknown", one, Validator{Name: "b"}, ErrUnknown},
		{"add", one, Validator{Name: "b", PubKey: k(2), Power: 5}, nil},
		{"same key", one, Validator{Name: "b", PubKey: k(1), Power: 5}, ErrBadField},
		{"same peer", []Validator{{Name: "a", PubKey: k(1), PeerID: "p", Power: 1}}, Validator{Name: "b", PubKey: k(2), PeerID: "p", Power: 1}, ErrBadField},
		{"power overflow", one, Validator{Name: "b", PubKey: k(2), Power: ^uint64(0)}, ErrBadField},
		{"change power", one, Validator{Name: "a", PubKey: k(1), Power: 7}, nil},
		{"no name", one, Validator{PubKey: k(2), Power: 1}, ErrBadField},
	} {
		_, err := withValidator(c.vs, c.v)
		if c.want == nil && err != nil || !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestGenesisSeedsEverything(t *testing.T) {
	alice, bob := newTestKey(1), newTestKey(2)
	g := Genesis{
		TimeMs:    5000,
		Accounts:  []GenesisAccount{{Address: alice.addr, Balance: 100}},
		Members:   []Member{{Name: "acme", Controller: alice.addr}},
		Params:    []Param{{ParamMaxBlockTxs, 300}},
		Threshold: Threshold{Num: 1, Den: 2},
		Ops: []TxBody{
			{From: alice.addr, AssetCreate: &AssetCreate{Symbol: "GLD", Name: "Gold"}},
			{From: alice.addr, AssetMint: &AssetMint{Symbol: "GLD", To: bob.addr, Amount: 70}},
			{From: alice.addr, IdentityRegister: &IdentityRegister{ID: "acme", Kind: KindOrganization}},
			{From: alice.addr, ItemRegister: &ItemRegister{ID: "title-1", MetadataHash: Hash{7}}},
			{From: alice.addr, NotaryAnchor: &NotaryAnchor{Hash: Hash{8}}},
			{From: alice.addr, SetSigners: &SetSigners{Signers: [][]byte{pub(bob)}, Quorum: 1}},
			{From: alice.addr, Transfer: &Transfer{To: bob.addr, Amount: 10}},
		},
	}
	s, _ := newTestStateGenesis(t, kv.MemDB, g)
	if a := must(s.Asset("GLD")); a.Supply != 70 {
		t.Fatalf("GLD %+v", a)
	}
	if r := must(s.NotaryRecord(Hash{8})); r.TimeMs != 5000 || r.Height != 0 {
		t.Fatalf("anchor %+v", r)
	}
	if acct := mustAccount(t, s, alice.addr); acct != (Account{Balance: 90, Multisig: true}) {
		t.Fatalf("alice %+v", acct)
	}
	if v := must(s.Param(ParamMaxBlockTxs)); v != 300 {
		t.Fatalf("max_block_txs %d", v)
	}
	if th := must(s.Threshold()); th != (Threshold{1, 2}) {
		t.Fatalf("threshold %+v", th)
	}
	must(s.Item("title-1"))
	must(s.Identity("acme"))

	bad := g
	bad.Ops = append([]TxBody{}, g.Ops...)
	bad.Ops = append(bad.Ops, TxBody{From: bob.addr, AssetMint: &AssetMint{Symbol: "GLD", To: bob.addr, Amount: 1}})
	db := openStore(t, kv.MemDB, t.TempDir())
	defer db.Close()
	s2 := must(Open(db, testChain))
	if err := s2.InitGenesis(bad); !errors.Is(err, ErrBadGenesis) || !errors.Is(err, ErrNotIssuer) {
		t.Fatalf("genesis with a bad op: %v", err)
	}
	for _, g := range []Genesis{
		{Members: []Member{{Name: "a", Controller: alice.addr}, {Name: "a", Controller: bob.addr}}},
		{Members: []Member{{Name: "a", Controller: alice.addr}, {Name: "b", Controller: alice.addr}}},
		{Params: []Param{{"nope", 1}}},
		{Threshold: Threshold{Num: 3, Den: 2}},
		{Validators: []Validator{{Name: "v", PubKey: pub(alice), Power: 0}}},
	} {
		db := openStore(t, kv.MemDB, t.TempDir())
		s := must(Open(db, testChain))
		if err := s.InitGenesis(g); !errors.Is(err, ErrBadGenesis) {
			t.Errorf("%+v: %v", g, err)
		}
		db.Close()
	}
}
