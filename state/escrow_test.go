package state

import (
	"crypto/sha256"
	"errors"
	"testing"
)

func TestEscrow(t *testing.T) {
	e := newOpEnv(t)
	a, b, c, d := e.alice, e.bob, e.carol, e.dave
	secret := []byte("open sesame")
	lock := Hash(sha256.Sum256(secret))
	create := func(id string, asset string, amount uint64, arbiter *Address, hl *Hash, deadline uint64) TxBody {
		return TxBody{EscrowCreate: &EscrowCreate{ID: id, Beneficiary: b.addr, Asset: asset, Amount: amount,
			Arbiter: arbiter, HashLock: hl, Deadline: deadline}}
	}
	release := func(id string, pre []byte) TxBody {
		return TxBody{EscrowRelease: &EscrowRelease{ID: id, Preimage: pre}}
	}
	refund := func(id string) TxBody { return TxBody{EscrowRefund: &EscrowRefund{ID: id}} }

	// An asset to escrow as well as the native currency.
	e.do(a, nil, TxBody{AssetCreate: &AssetCreate{Symbol: "USD", Name: "Dollar"}})
	e.do(a, nil, TxBody{AssetMint: &AssetMint{Symbol: "USD", To: a.addr, Amount: 500}})

	steps := []struct {
		name string
		k    testKey
		op   TxBody
		want error
	}{
		{"bad id", a, create("x y", "", 10, &d.addr, nil, 50), ErrBadID},
		{"neither arbiter nor lock", a, create("e1", "", 10, nil, nil, 50), ErrBadField},
		{"to self", b, create("e1", "", 10, &d.addr, nil, 50), ErrSelfTransfer},
		{"deadline not ahead", a, create("e1", "", 10, &d.addr, nil, 3), ErrBadHeight},
		{"zero", a, create("e1", "", 0, &d.addr, nil, 50), ErrBadAmount},
		{"unknown asset", a, create("e1", "EUR", 10, &d.addr, nil, 50), ErrUnknown},
		{"too much native", a, create("e1", "", 1001, &d.addr, nil, 50), ErrNoFunds},
		{"too much asset", a, create("e1", "USD", 501, &d.addr, nil, 50), ErrNoFunds},
		{"native, arbiter", a, create("e1", "", 100, &d.addr, nil, 50), nil},
		{"id taken", a, create("e1", "", 100, &d.addr, nil, 50), ErrExists},
		{"asset, hash-lock", a, create("e2", "USD", 200, nil, &lock, 50), nil},
		{"native, both, short deadline", a, create("e3", "", 50, &d.addr, &lock, 20), nil},

		{"release unknown", d, release("e9", nil), ErrUnknown},
		{"release by stranger", c, release("e1", nil), ErrNotArbiter},
		{"preimage without a lock", c, release("e1", secret), ErrBadPreimage},
		{"release by arbiter", d, release("e1", nil), nil},
		{"release twice", d, release("e1", nil), ErrEscrowClosed},
		{"refund after release", a, refund("e1"), ErrEscrowClosed},
		{"wrong preimage", c, release("e2", []byte("open barley")), ErrBadPreimage},
		{"refund early", a, refund("e2"), ErrEscrowNotExpired},
		{"release by preimage", c, release("e2", secret), nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op) })
	}
	e.t = t
	if bal := mustAccount(t, e.s, b.addr).Balance; bal != 1100 {
		t.Fatalf("bob has %d native", bal)
	}
	if bal := must(e.s.AssetBalance(b.addr, "USD")); bal != 200 {
		t.Fatalf("bob has %d USD", bal)
	}
	e2 := must(e.s.Escrow("e2"))
	if e2.Status != EscrowReleased || string(e2.Preimage) != string(secret) || *e2.ClosedBy != c.addr {
		t.Fatalf("e2 %+v", e2)
	}
	// e3's deadline passes: no release, refund only by the depositor, once.
	e.skipTo(19)
	e.do(d, nil, TxBody{NotaryAnchor: &NotaryAnchor{Hash: Hash{1}}}) // block 20
	e.do(d, ErrEscrowExpired, release("e3", nil))
	e.do(c, ErrEscrowExpired, release("e3", secret))
	e.do(c, ErrNotDepositor, refund("e3"))
	before := mustAccount(t, e.s, a.addr).Balance
	e.do(a, nil, refund("e3"))
	if got := mustAccount(t, e.s, a.addr).Balance; got != before+50 {
		t.Fatalf("alice got %d back, want 50", got-before)
	}
	e.do(a, ErrEscrowClosed, refund("e3"))
	e.do(d, ErrEscrowClosed, release("e3", nil))
	if st := must(e.s.Escrow("e3")).Status; st != EscrowRefunded {
		t.Fatalf("e3 is %s", st)
	}
	if _, err := e.s.Escrow("e9"); !errors.Is(err, ErrEscrowNotFound) {
		t.Fatalf("unknown escrow: %v", err)
	}
}

func TestIdentitiesAndClaims(t *testing.T) {
	e := newOpEnv(t)
	a, b, c := e.alice, e.bob, e.carol
	reg := func(id, kind, owner string, keys ...[]byte) TxBody {
		return TxBody{IdentityRegister: &IdentityRegister{ID: id, Kind: kind, Name: "N " + id, Owner: owner, Keys: keys}}
	}
	issue := func(id, issuer, subject string, expires int64) TxBody {
		return TxBody{ClaimIssue: &ClaimIssue{ID: id, Issuer: issuer, Subject: subject, Schema: "kyc/v1",
			ContentHash: sha256.Sum256([]byte(id)), ExpiresMs: expires}}
	}
	revoke := func(id string) TxBody { return TxBody{ClaimRevoke: &ClaimRevoke{ID: id}} }
	steps := []struct {
		name string
		k    testKey
		op   TxBody
		want error
	}{
		{"bad id", c, reg("c/1", KindPerson, ""), ErrBadID},
		{"bad kind", c, reg("carol", "robot", ""), ErrBadField},
		{"bad key", c, reg("carol", KindPerson, "", []byte{1, 2}), ErrBadField},
		{"repeated key", c, reg("carol", KindPerson, "", pub(c), pub(c)), ErrBadField},
		{"person with owner", c, reg("carol", KindPerson, "acme"), ErrBadField},
		{"person", c, reg("carol", KindPerson, "", pub(c)), nil},
		{"taken", b, reg("carol", KindPerson, ""), ErrExists},
		{"organization by outsider", c, reg("carolco", KindOrganization, ""), ErrNotMember},
		{"organization", a, reg("acme", KindOrganization, ""), nil},
		{"bank", b, reg("bolt-bank", KindOrganization, ""), nil},
		{"device without owner", a, reg("sensor-1", KindDevice, ""), ErrBadField},
		{"device of unknown org", a, reg("sensor-1", KindDevice, "nope"), ErrUnknown},
		{"device of a person", c, reg("sensor-1", KindDevice, "carol"), ErrBadField},
		{"device by another org's controller", b, reg("sensor-1", KindDevice, "acme"), ErrNotController},
		{"device", a, reg("sensor-1", KindDevice, "acme"), nil},

		{"claim by outsider", c, issue("k1", "carol", "carol", 0), ErrNotMember},
		{"claim for another's issuer", b, issue("k1", "acme", "carol", 0), ErrNotController},
		{"claim by unknown issuer", b, issue("k1", "nope", "carol", 0), ErrUnknown},
		{"claim about unknown subject", b, issue("k1", "bolt-bank", "nobody", 0), ErrUnknown},
		{"claim without schema", b, TxBody{ClaimIssue: &ClaimIssue{ID: "k1", Issuer: "bolt-bank", Subject: "carol"}}, ErrBadField},
		{"claim already expired", b, issue("k1", "bolt-bank", "carol", 1000), ErrBadField},
		{"claim", b, issue("k1", "bolt-bank", "carol", 0), nil},
		{"claim id taken", b, issue("k1", "bolt-bank", "carol", 0), ErrExists},
		{"claim expiring", b, issue("k2", "bolt-bank", "carol", 30_000), nil},
		{"claim to revoke", b, issue("k3", "bolt-bank", "sensor-1", 0), nil},
		{"revoke by other", a, revoke("k3"), ErrNotIssuer},
		{"revoke unknown", b, revoke("k9"), ErrUnknown},
		{"revoke", b, revoke("k3"), nil},
		{"revoke twice", b, revoke("k3"), ErrClaimRevoked},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op) })
	}
	e.t = t
	dev := must(e.s.Identity("sensor-1"))
	if dev.Kind != KindDevice || dev.Owner != "acme" || dev.Controller != a.addr {
		t.Fatalf("device %+v", dev)
	}
	now := e.s.TimeMs()
	for _, c := range []struct {
		id   string
		at   int64
		want ClaimStatus
	}{
		{"k1", now, ClaimValid}, {"k2", now, ClaimValid}, {"k2", 29_999, ClaimValid}, {"k2", 30_000, ClaimExpired},
		{"k3", now, ClaimRevoked}, {"k9", now, ClaimUnknown},
	} {
		st, claim, err := e.s.ClaimStatus(c.id, c.at)
		if err != nil || st != c.want {
			t.Fatalf("%s at %d: %s, %v; want %s", c.id, c.at, st, err, c.want)
		}
		if st != ClaimUnknown && (claim.Issuer != "bolt-bank" || claim.IssuedBy != b.addr) {
			t.Fatalf("%s: %+v", c.id, claim)
		}
	}
	if _, err := e.s.Identity("nobody"); !errors.Is(err, ErrIdentityNotFound) {
		t.Fatalf("unknown identity: %v", err)
	}
	if _, err := e.s.Claim("k9"); !errors.Is(err, ErrClaimNotFound) {
		t.Fatalf("unknown claim: %v", err)
	}
}

func TestBallots(t *testing.T) {
	e := newOpEnv(t)
	a, b, c := e.alice, e.bob, e.carol
	e.do(c, nil, TxBody{IdentityRegister: &IdentityRegister{ID: "carol", Kind: KindPerson}})
	e.do(b, nil, TxBody{IdentityRegister: &IdentityRegister{ID: "bob", Kind: KindPerson}})
	e.do(a, nil, TxBody{IdentityRegister: &IdentityRegister{ID: "alice", Kind: KindPerson}})
	create := func(id string, opts, elig []string, closes uint64) TxBody {
		return TxBody{BallotCreate: &BallotCreate{ID: id, Title: "Lunch", Options: opts, Eligible: elig, Closes: closes}}
	}
	vote := func(id, who string, opt uint32) TxBody {
		return TxBody{BallotVote: &BallotVote{ID: id, Identity: who, Option: opt}}
	}
	yn := []string{"yes", "no"}
	steps := []struct {
		name string
		k    testKey
		op   TxBody
		want error
	}{
		{"one option", c, create("b1", []string{"yes"}, []string{"carol"}, 20), ErrBadField},
		{"repeated option", c, create("b1", []string{"yes", "yes"}, []string{"carol"}, 20), ErrBadField},
		{"nobody eligible", c, create("b1", yn, nil, 20), ErrBadField},
		{"repeated eligible", c, create("b1", yn, []string{"carol", "carol"}, 20), ErrBadField},
		{"unknown eligible", c, create("b1", yn, []string{"carol", "zed"}, 20), ErrUnknown},
		{"closes now", c, create("b1", yn, []string{"carol"}, 9), ErrBadHeight},
		{"create", c, create("b1", yn, []string{"carol", "bob"}, 20), nil},
		{"id taken", c, create("b1", yn, []string{"carol"}, 20), ErrExists},
		{"unknown ballot", c, vote("b9", "carol", 0), ErrUnknown},
		{"not eligible", a, vote("b1", "alice", 0), ErrNotEligible},
		{"not the controller", a, vote("b1", "carol", 0), ErrNotController},
		{"no such option", c, vote("b1", "carol", 2), ErrBadField},
		{"vote", c, vote("b1", "carol", 1), nil},
		{"double vote", c, vote("b1", "carol", 0), ErrDoubleVote},
		{"second voter", b, vote("b1", "bob", 1), nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op) })
	}
	e.t = t
	tally := must(e.s.Tally("b1"))
	if tally.Votes != 2 || tally.Counts[0] != 0 || tally.Counts[1] != 2 || tally.Closed || tally.Eligible != 2 {
		t.Fatalf("tally %+v", tally)
	}
	e.do(c, nil, create("b2", yn, []string{"alice"}, e.s.Height()+2))
	e.block()
	if !must(e.s.Tally("b2")).Closed {
		t.Fatal("b2 should read as closed")
	}
	e.do(a, ErrBallotClosed, vote("b2", "alice", 0))
	if opt, ok := must2(e.s.Vote("b1", "bob")); !ok || opt != 1 {
		t.Fatalf("bob's vote: %d %v", opt, ok)
	}
	if _, err := e.s.Tally("b9"); !errors.Is(err, ErrBallotNotFound) {
		t.Fatalf("unknown ballot: %v", err)
	}
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}
