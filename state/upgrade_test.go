package state

import (
	"errors"
	"fmt"
	"testing"
)

// upgradeBlock applies raws as the next block under protocol version v.
func (e *opEnv) upgradeBlock(v uint32, raws ...[]byte) ([]error, error) {
	e.t.Helper()
	h := e.s.Height() + 1
	res, err := e.s.ApplyBlock(BlockInfo{Height: h, TimeMs: int64(h) * 1000, Version: v}, raws, nil)
	if err != nil {
		return nil, err
	}
	out := make([]error, len(res.Results))
	for i, r := range res.Results {
		out[i] = r.Err
	}
	return out, nil
}

func TestUpgradeProposals(t *testing.T) {
	e := newOpEnv(t)
	a, b, c, d := e.alice, e.bob, e.carol, e.dave
	propose := func(id string, p GovPropose) TxBody { p.ID = id; return TxBody{GovPropose: &p} }
	vote := func(id string) TxBody { return TxBody{GovVote: &GovVote{ID: id, Yes: true}} }
	up := func(name string, v uint32, in uint64) *Upgrade {
		return &Upgrade{Name: name, Version: v, Height: e.s.Height() + 1 + in, Info: "https://example.org/guild/v2"}
	}

	steps := []struct {
		name string
		k    testKey
		op   func() TxBody
		want error
	}{
		{"outsider", c, func() TxBody { return propose("u1", GovPropose{Upgrade: up("v2", 2, 20)}) }, ErrNotMember},
		{"no name", a, func() TxBody { return propose("u1", GovPropose{Upgrade: up("", 2, 20)}) }, ErrBadField},
		{"info not printable", a, func() TxBody {
			u := up("v2", 2, 20)
			u.Info = "line\nbreak"
			return propose("u1", GovPropose{Upgrade: u})
		}, ErrBadField},
		{"skips a version", a, func() TxBody { return propose("u1", GovPropose{Upgrade: up("v3", 3, 20)}) }, ErrBadField},
		{"same version", a, func() TxBody { return propose("u1", GovPropose{Upgrade: up("v1", 1, 20)}) }, ErrBadField},
		{"too soon", a, func() TxBody { return propose("u1", GovPropose{Upgrade: up("v2", 2, MinUpgradeDelay-1)}) }, ErrBadHeight},
		{"proposal preset", a, func() TxBody {
			u := up("v2", 2, 20)
			u.Proposal = "x"
			return propose("u1", GovPropose{Upgrade: u})
		}, ErrBadField},
		{"with a second change", a, func() TxBody {
			return propose("u1", GovPropose{Upgrade: up("v2", 2, 20), RemoveMember: "bolt"})
		}, ErrBadField},
		{"cancel unknown", a, func() TxBody { return propose("c0", GovPropose{CancelUpgrade: "v2"}) }, ErrUnknown},
		{"propose", a, func() TxBody { return propose("u1", GovPropose{Upgrade: up("v2", 2, 20)}) }, nil},
		{"passes", b, func() TxBody { return vote("u1") }, nil},
		{"another while one is pending", a, func() TxBody { return propose("u2", GovPropose{Upgrade: up("v3", 3, 40)}) }, ErrExists},
		{"cancel", d, func() TxBody { return propose("c1", GovPropose{CancelUpgrade: "v2"}) }, nil},
		{"cancel passes", a, func() TxBody { return vote("c1") }, nil},
		// A cancelled upgrade is gone from the schedule, and its name with it.
		{"again", a, func() TxBody { return propose("u3", GovPropose{Upgrade: up("v2", 2, MinUpgradeDelay+1)}) }, nil},
		{"again passes", b, func() TxBody { return vote("u3") }, nil},
		{"name taken", a, func() TxBody { return propose("u4", GovPropose{Upgrade: up("v2", 3, 40)}) }, ErrExists},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op()) })
	}
	e.t = t
	if p, err := e.s.Proposal("c1"); err != nil || p.Status != ProposalPassed || p.CancelUpgrade != "v2" {
		t.Fatalf("c1 = %+v, %v", p, err)
	}
	us, err := e.s.Upgrades()
	if err != nil || len(us) != 1 || us[0].Name != "v2" || us[0].Version != 2 || us[0].Proposal != "u3" {
		t.Fatalf("schedule = %+v, %v; want only v2 from u3", us, err)
	}
	at := us[0].Height
	if v, _ := e.s.VersionAt(at - 1); v != 1 {
		t.Errorf("version before the upgrade = %d, want 1", v)
	}
	if v, _ := e.s.VersionAt(at); v != 2 {
		t.Errorf("version at the upgrade = %d, want 2", v)
	}

	// Only one upgrade pending at a time; cancelling one in force is refused. Blocks from the
	// activation height on carry version 2 (e.do applies version 0, read as 1).
	e.do(d, ErrExists, propose("u5", GovPropose{Upgrade: &Upgrade{Name: "v3", Version: 3, Height: at + 50}}))
	e.skipTo(at - 2)
	e.do(d, nil, propose("c2", GovPropose{CancelUpgrade: "v2"})) // still open at at-1
	if _, err := e.upgradeBlock(1, e.signOp(d, propose("c3", GovPropose{CancelUpgrade: "v2"}))); !errors.Is(err, ErrWrongVersion) {
		t.Fatalf("version 1 block at the activation height: %v", err)
	}
	if SupportedVersion < 2 {
		return
	}
	res, err := e.upgradeBlock(2, e.signOp(a, vote("c2")))
	if err != nil || res[0] != nil {
		t.Fatal(res, err)
	}
	if p, _ := e.s.Proposal("c2"); p.Status != ProposalFailed {
		t.Fatalf("cancel passed at the activation height: %+v, want failed", p)
	}
}

// TestUpgradeVersionInForce: from the activation height blocks must carry the new version, and
// before it the old one; a binary that does not support the version refuses the block and
// changes nothing; rules follow the block's version.
func TestUpgradeVersionInForce(t *testing.T) {
	e := newOpEnv(t)
	a, b := e.alice, e.bob
	at := e.s.Height() + 1 + MinUpgradeDelay + 2
	c := e.carol
	e.do(c, nil, TxBody{IdentityRegister: &IdentityRegister{ID: "carol", Kind: KindPerson}})
	e.do(a, nil, TxBody{GovPropose: &GovPropose{ID: "u1", Upgrade: &Upgrade{Name: "v2", Version: 2, Height: at}}})
	e.do(b, nil, TxBody{GovVote: &GovVote{ID: "u1", Yes: true}})
	e.skipTo(at - 2)

	if _, err := e.upgradeBlock(2); !errors.Is(err, ErrWrongVersion) {
		t.Fatalf("version 2 before the upgrade: %v, want ErrWrongVersion", err)
	}
	ballot := func(id string, options int) []byte {
		opts := make([]string, options)
		for i := range opts {
			opts[i] = fmt.Sprintf("option %d", i)
		}
		return e.signOp(c, TxBody{BallotCreate: &BallotCreate{ID: id, Options: opts, Eligible: []string{"carol"}, Closes: at + 100}})
	}
	// Zero reads as version 1 (headers made before they carried a version), and a block of
	// version 1 runs under version 1's rules on every binary, one supporting version 2 included:
	// replaying old heights gives the old results.
	res, err := e.upgradeBlock(0, ballot("b0", 20))
	if err != nil || !errors.Is(res[0], ErrBadField) {
		t.Fatalf("20 options under version 1 (binary supports %d): %v, %v; want ErrBadField", SupportedVersion, res, err)
	}
	if e.s.Height() != at-1 {
		t.Fatalf("at %d, want %d", e.s.Height(), at-1)
	}

	before := stateEntries(t, e.db)
	if _, err := e.upgradeBlock(1, ballot("b1", 20)); !errors.Is(err, ErrWrongVersion) {
		t.Fatalf("version 1 at the upgrade height: %v, want ErrWrongVersion", err)
	}
	res, err = e.upgradeBlock(2, ballot("b1", 20))
	if SupportedVersion < 2 {
		if !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("version 2 on a binary supporting %d: %v, want ErrUnsupportedVersion", SupportedVersion, err)
		}
		if stateEntries(t, e.db) != before || e.s.Height() != at-1 {
			t.Fatal("a refused block changed the state")
		}
		return
	}
	if err != nil || res[0] != nil {
		t.Fatalf("20 options under version 2: %v, %v", err, res)
	}
	if got, _ := e.upgradeBlock(2, ballot("b2", MaxBallotOptionsV2+1)); !errors.Is(got[0], ErrBadField) {
		t.Fatalf("%d options under version 2: %v, want ErrBadField", MaxBallotOptionsV2+1, got[0])
	}
}

// TestBallotOptionsVersion1 pins the version 1 rule that version 2 changes.
func TestBallotOptionsVersion1(t *testing.T) {
	e := newOpEnv(t)
	c := e.carol
	e.do(c, nil, TxBody{IdentityRegister: &IdentityRegister{ID: "carol", Kind: KindPerson}})
	opts := make([]string, MaxBallotOptions+1)
	for i := range opts {
		opts[i] = fmt.Sprintf("option %d", i)
	}
	e.do(c, ErrBadField, TxBody{BallotCreate: &BallotCreate{ID: "b1", Options: opts, Eligible: []string{"carol"}, Closes: 100}})
	if maxBallotOptions(1) != MaxBallotOptions || maxBallotOptions(2) != MaxBallotOptionsV2 {
		t.Fatal("ballot option limits by version")
	}
}
