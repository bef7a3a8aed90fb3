package state

import (
	"crypto/sha256"
	"testing"

	"filippo.io/age"
)

func newAgeKey(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

func TestEncryptionKeySet(t *testing.T) {
	e := newOpEnv(t)
	a, b, c := e.alice, e.bob, e.carol
	k1, k2 := newAgeKey(t), newAgeKey(t)
	set := func(member, identity, key string) TxBody {
		return TxBody{EncryptionKeySet: &EncryptionKeySet{Member: member, Identity: identity, Key: key}}
	}
	e.do(c, nil, TxBody{IdentityRegister: &IdentityRegister{ID: "carol", Kind: KindPerson}})
	steps := []struct {
		name string
		k    testKey
		op   TxBody
		want error
	}{
		{"neither owner", a, set("", "", k1), ErrBadField},
		{"both owners", a, set("acme", "carol", k1), ErrBadField},
		{"not an age key", a, set("acme", "", "age1nope"), ErrBadField},
		{"ed25519 hex is no key", a, set("acme", "", "00112233"), ErrBadField},
		{"unknown member", a, set("zeta", "", k1), ErrUnknown},
		{"another member's", b, set("acme", "", k1), ErrNotController},
		{"member", a, set("acme", "", k1), nil},
		{"rotate", a, set("acme", "", k2), nil},
		{"unknown identity", c, set("", "nobody", k1), ErrUnknown},
		{"another's identity", a, set("", "carol", k1), ErrNotController},
		{"identity", c, set("", "carol", k1), nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op) })
	}
	e.t = t
	k := must(e.s.EncryptionKey(EncKeyMember + "acme"))
	if k.Key != k2 || k.Version != 2 || k.SetBy != a.addr {
		t.Fatalf("acme's key after rotation: %+v", k)
	}
	if got := must(e.s.EncryptionKeys()); len(got) != 2 {
		t.Fatalf("%d keys, want 2", len(got))
	}
	if _, err := e.s.EncryptionKey(EncKeyMember + "bolt"); err != ErrEncKeyNotFound {
		t.Fatalf("bolt's key: %v", err)
	}
}

func TestPrivateSend(t *testing.T) {
	e := newOpEnv(t)
	a, b, c, d := e.alice, e.bob, e.carol, e.dave
	e.do(a, nil, TxBody{EncryptionKeySet: &EncryptionKeySet{Member: "acme", Key: newAgeKey(t)}})
	e.do(b, nil, TxBody{EncryptionKeySet: &EncryptionKeySet{Member: "bolt", Key: newAgeKey(t)}})
	c1 := Hash(sha256.Sum256([]byte("ciphertext 1")))
	send := func(c Hash, size uint64, expires uint64, to ...string) TxBody {
		return TxBody{PrivateSend: &PrivateSend{Commitment: c, Recipients: to, Size: size, Expires: expires}}
	}
	steps := []struct {
		name string
		k    testKey
		op   TxBody
		want error
	}{
		{"outsider", c, send(c1, 10, 0, "bolt"), ErrNotMember},
		{"zero commitment", a, send(Hash{}, 10, 0, "bolt"), ErrBadField},
		{"empty", a, send(c1, 0, 0, "bolt"), ErrBadField},
		{"too large", a, send(c1, MaxPrivateBytes+1, 0, "bolt"), ErrBadField},
		{"no recipient", a, send(c1, 10, 0), ErrBadField},
		{"recipient twice", a, send(c1, 10, 0, "bolt", "bolt"), ErrBadField},
		{"unknown recipient", a, send(c1, 10, 0, "bolt", "zeta"), ErrUnknown},
		{"recipient without a key", a, send(c1, 10, 0, "dyn"), ErrNoEncryptionKey},
		{"expiry not ahead", a, send(c1, 10, 3, "bolt"), ErrBadHeight},
		{"sent", a, send(c1, 10, 40, "bolt"), nil},
		{"commitment reused", b, send(c1, 10, 0, "acme"), ErrExists},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op) })
	}
	e.t = t
	r := must(e.s.PrivateRecord(c1))
	if r.Sender != a.addr || r.SenderMember != "acme" || r.Kind != PrivateKindPayload ||
		len(r.Recipients) != 1 || r.Recipients[0] != "bolt" || r.Expires != 40 || r.Size != 10 {
		t.Fatalf("record %+v", r)
	}
	if !r.IsHolder("acme") || !r.IsHolder("bolt") || r.IsHolder("dyn") {
		t.Fatalf("holders %v", r.Holders())
	}
	if r.ExpiredAt(39) || !r.ExpiredAt(40) {
		t.Fatal("expiry height")
	}
	_ = d
}

func TestPrivateEscrow(t *testing.T) {
	e := newOpEnv(t)
	a, b, c, d := e.alice, e.bob, e.carol, e.dave
	for _, m := range []struct {
		k    testKey
		name string
	}{{a, "acme"}, {b, "bolt"}, {d, "dyn"}} {
		e.do(m.k, nil, TxBody{EncryptionKeySet: &EncryptionKeySet{Member: m.name, Key: newAgeKey(t)}})
	}
	n := 0
	create := func(id string, ben Address, arb *Address, deadline uint64, to ...string) TxBody {
		n++
		h := Hash(sha256.Sum256([]byte{byte(n)}))
		return TxBody{PrivateEscrowCreate: &PrivateEscrowCreate{ID: id, Beneficiary: ben, Arbiter: arb,
			Deadline: deadline, Private: PrivateSend{Commitment: h, Recipients: to, Size: 100}}}
	}
	closeOp := func(id string, refund bool) TxBody {
		return TxBody{PrivateEscrowClose: &PrivateEscrowClose{ID: id, Refund: refund}}
	}
	steps := []struct {
		name string
		k    testKey
		op   TxBody
		want error
	}{
		{"bad id", a, create("x y", b.addr, nil, 50, "bolt"), ErrBadID},
		{"to self", a, create("p1", a.addr, nil, 50, "bolt"), ErrSelfTransfer},
		{"deadline not ahead", a, create("p1", b.addr, nil, 3, "bolt"), ErrBadHeight},
		{"outsider beneficiary", a, create("p1", c.addr, nil, 50, "bolt"), ErrNotMember},
		{"beneficiary not a recipient", a, create("p1", b.addr, nil, 50, "dyn"), ErrBadField},
		{"arbiter not a recipient", a, create("p1", b.addr, &d.addr, 50, "bolt"), ErrBadField},
		{"created", a, create("p1", b.addr, &d.addr, 50, "bolt", "dyn"), nil},
		{"id taken", a, create("p1", b.addr, nil, 50, "bolt"), ErrExists},
		{"second", a, create("p2", b.addr, nil, 50, "bolt"), nil},
		{"third", a, create("p3", b.addr, nil, 60, "bolt"), nil},

		{"close unknown", a, closeOp("p9", false), ErrUnknown},
		{"release by beneficiary", b, closeOp("p1", false), ErrNotArbiter},
		{"refund by stranger", c, closeOp("p1", true), ErrNotDepositor},
		{"release by arbiter", d, closeOp("p1", false), nil},
		{"closed", a, closeOp("p1", true), ErrEscrowClosed},
		{"refund by beneficiary", b, closeOp("p2", true), nil},
		{"refund by depositor early", a, closeOp("p3", true), ErrEscrowNotExpired},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { e.t = t; e.do(st.k, st.want, st.op) })
	}
	e.t = t
	e.skipTo(60)
	e.do(a, ErrEscrowExpired, closeOp("p3", false))
	e.do(a, nil, closeOp("p3", true))
	p1 := must(e.s.PrivateEscrow("p1"))
	if p1.Status != EscrowReleased || *p1.ClosedBy != d.addr || p1.Depositor != a.addr {
		t.Fatalf("p1 %+v", p1)
	}
	r := must(e.s.PrivateRecord(p1.Commitment))
	if r.Kind != PrivateKindEscrow || r.Ref != "p1" || !r.IsHolder("dyn") {
		t.Fatalf("p1's record %+v", r)
	}
	if got := must(e.s.PrivateEscrow("p3")).Status; got != EscrowRefunded {
		t.Fatalf("p3 %s", got)
	}
	// Nothing moved publicly: the value settles under the private terms.
	if bal := mustAccount(t, e.s, a.addr).Balance; bal != 1000 {
		t.Fatalf("depositor's balance %d", bal)
	}
}

func TestPrivateClaim(t *testing.T) {
	e := newOpEnv(t)
	a, b := e.alice, e.bob
	e.do(a, nil, TxBody{EncryptionKeySet: &EncryptionKeySet{Member: "acme", Key: newAgeKey(t)}})
	e.do(b, nil, TxBody{EncryptionKeySet: &EncryptionKeySet{Member: "bolt", Key: newAgeKey(t)}})
	e.do(e.dave, nil, TxBody{EncryptionKeySet: &EncryptionKeySet{Member: "dyn", Key: newAgeKey(t)}})
	e.do(a, nil, TxBody{IdentityRegister: &IdentityRegister{ID: "acme-org", Kind: KindOrganization}})
	e.do(b, nil, TxBody{IdentityRegister: &IdentityRegister{ID: "patient", Kind: KindPerson}})
	c1 := Hash(sha256.Sum256([]byte("record")))
	issue := func(id string, to ...string) TxBody {
		return TxBody{PrivateClaimIssue: &PrivateClaimIssue{ID: id, Issuer: "acme-org", Subject: "patient",
			Schema: "health/v1", Private: PrivateSend{Commitment: c1, Recipients: to, Size: 64}}}
	}
	e.do(b, ErrNotController, issue("c1", "acme"))
	e.do(a, ErrBadField, issue("c1", "dyn")) // the subject's member, bolt, must be a recipient
	e.do(a, nil, issue("c1", "bolt"))
	e.do(a, ErrExists, issue("c2", "bolt")) // one commitment, one record
	c := must(e.s.Claim("c1"))
	if !c.Private || c.ContentHash != c1 || c.Issuer != "acme-org" || c.Subject != "patient" {
		t.Fatalf("claim %+v", c)
	}
	e.do(a, nil, TxBody{ClaimRevoke: &ClaimRevoke{ID: "c1"}})
	if st, _, _ := e.s.ClaimStatus("c1", 0); st != ClaimRevoked {
		t.Fatalf("status %s", st)
	}
	if r := must(e.s.PrivateRecord(c1)); r.Kind != PrivateKindClaim || r.Ref != "c1" {
		t.Fatalf("record %+v", r)
	}
}
