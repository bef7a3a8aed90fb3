package consensus

import (
	"bytes"
	"errors"
	"testing"
)

// doublePrepare is validator from's two signed prepares for (height, view) with different digests.
func doublePrepare(height, view uint64, from int) (Message, Message) {
	return signed(MsgPrepare, height, view, from, nil, DigestOf([]byte("a"))),
		signed(MsgPrepare, height, view, from, nil, DigestOf([]byte("b")))
}

func TestEvidenceVerify(t *testing.T) {
	vals := equalSet(4)
	a, b := doublePrepare(3, 1, 2)
	good := NewEvidence(a, b)
	if err := good.Verify(testChain, &vals); err != nil {
		t.Fatalf("valid evidence: %v", err)
	}
	// Pre-prepares carry their value on the wire; the evidence keeps only the signed fields.
	pa := signed(MsgPrePrepare, 3, 0, 1, valueFor(3, "a"), Digest{})
	pb := signed(MsgPrePrepare, 3, 0, 1, valueFor(3, "b"), Digest{})
	pp := NewEvidence(pb, pa)
	if err := pp.Verify(testChain, &vals); err != nil || pp.First.Value != nil || pp.ID() != ptr(NewEvidence(pa, pb)).ID() {
		t.Fatalf("pre-prepare evidence: %v, %+v", err, pp)
	}
	// A view change's signature covers PreparedView, which the evidence must keep.
	va := Message{Type: MsgViewChange, Height: 3, View: 2, From: 0, Digest: DigestOf([]byte("p")), PreparedView: 1}
	Sign(testChain, keyFor(0), &va)
	vb := Message{Type: MsgViewChange, Height: 3, View: 2, From: 0}
	Sign(testChain, keyFor(0), &vb)
	if vcs := NewEvidence(va, vb); vcs.Verify(testChain, &vals) != nil {
		t.Fatalf("view-change evidence: %v", vcs.Verify(testChain, &vals))
	}

	mutate := func(f func(e *Evidence)) *Evidence {
		e := NewEvidence(a, b)
		e.First.Sig, e.Second.Sig = bytes.Clone(e.First.Sig), bytes.Clone(e.Second.Sig)
		f(&e)
		return &e
	}
	other := signed(MsgPrepare, 3, 1, 3, nil, DigestOf([]byte("c"))) // validator 3's
	for _, tc := range []struct {
		name  string
		e     *Evidence
		chain string
		want  error
	}{
		{"nil", nil, testChain, ErrMalformed},
		{"first signature corrupt", mutate(func(e *Evidence) { e.First.Sig[0] ^= 1 }), testChain, ErrBadSignature},
		{"second signature corrupt", mutate(func(e *Evidence) { e.Second.Sig[63] ^= 1 }), testChain, ErrBadSignature},
		{"signature missing", mutate(func(e *Evidence) { e.Second.Sig = nil }), testChain, ErrBadSignature},
		{"other chain", &good, "another-chain", ErrBadSignature},
		{"different signers", ptr(NewEvidence(a, other)), testChain, ErrEvidenceSigners},
		{"signer relabelled", mutate(func(e *Evidence) { e.First.From, e.Second.From = 3, 3 }), testChain, ErrBadSignature},
		{"same digest", ptr(NewEvidence(a, a)), testChain, ErrEvidenceNoConflict},
		{"different height", ptr(NewEvidence(a, signed(MsgPrepare, 4, 1, 2, nil, DigestOf([]byte("c"))))), testChain, ErrEvidenceSlot},
		{"different view", ptr(NewEvidence(a, signed(MsgPrepare, 3, 2, 2, nil, DigestOf([]byte("c"))))), testChain, ErrEvidenceSlot},
		{"different type", ptr(NewEvidence(a, signed(MsgCommit, 3, 1, 2, nil, DigestOf([]byte("c"))))), testChain, ErrEvidenceSlot},
		{"unknown validator", mutate(func(e *Evidence) { e.First.From, e.Second.From = 4, 4 }), testChain, ErrUnknownValidator},
		{"decision", mutate(func(e *Evidence) { e.First.Type, e.Second.Type = MsgDecision, MsgDecision }), testChain, ErrMalformed},
		{"unknown type", mutate(func(e *Evidence) { e.First.Type, e.Second.Type = 99, 99 }), testChain, ErrMalformed},
		{"digests out of order", mutate(func(e *Evidence) { e.First, e.Second = e.Second, e.First }), testChain, ErrMalformed},
		{"carries a value", mutate(func(e *Evidence) { e.First.Value = []byte("x") }), testChain, ErrMalformed},
		{"carries a certificate", mutate(func(e *Evidence) { e.Second.Certificate = &Certificate{} }), testChain, ErrMalformed},
		{"prepared view on a prepare", mutate(func(e *Evidence) { e.First.PreparedView = 1 }), testChain, ErrMalformed},
	} {
		err := tc.e.Verify(tc.chain, &vals)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidEvidence) {
			t.Errorf("%s: got %v, want %v and %v", tc.name, err, tc.want, ErrInvalidEvidence)
		}
	}
	if err := good.Verify(testChain, nil); !errors.Is(err, ErrInvalidEvidence) {
		t.Errorf("nil validator set: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestEvidenceCodec(t *testing.T) {
	a, b := doublePrepare(7, 0, 1)
	e := NewEvidence(b, a)
	raw, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > MaxEvidenceBytes || raw[0] != 0x82 {
		t.Fatalf("encoding: %d bytes starting %#x, want at most %d starting with a two-element array", len(raw), raw[0], MaxEvidenceBytes)
	}
	msg, _ := EncodeMessage(&a)
	if msg[0]>>5 != 5 {
		t.Fatalf("a message encodes as major type %d, want a map (5): evidence would be mistaken for it", msg[0]>>5)
	}
	got, err := DecodeEvidence(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != e.ID() || got.ID() != DigestOf(raw) || got.ID() != ptr(NewEvidence(a, b)).ID() {
		t.Fatal("ID is not stable across encoding and argument order")
	}
	if err := got.Verify(testChain, ptr(equalSet(4))); err != nil {
		t.Fatal(err)
	}

	// The largest evidence there is (view changes with every field at its widest) fits the limit.
	big := Message{Type: MsgViewChange, Height: 1 << 63, View: 1 << 63, From: 1<<32 - 1, Digest: Digest{0xff}, PreparedView: 1 << 63, Sig: make([]byte, 64)}
	big2 := big
	big2.Digest = Digest{0xfe}
	if rawBig, _ := ptr(NewEvidence(big, big2)).Encode(); len(rawBig) > MaxEvidenceBytes {
		t.Fatalf("widest evidence is %d bytes, over MaxEvidenceBytes", len(rawBig))
	}

	swapped := Evidence{First: e.Second, Second: e.First}
	rawSwapped, _ := swapped.Encode()
	withValue := e
	withValue.First.Value = []byte("v")
	rawValue, _ := withValue.Encode()
	nonMinimal := append([]byte{0x98, 0x02}, raw[1:]...) // array length in a wider form than needed
	for name, tc := range map[string]struct {
		raw  []byte
		want error
	}{
		"oversized":       {append(bytes.Clone(raw), make([]byte, MaxEvidenceBytes)...), ErrTooLarge},
		"empty":           {nil, ErrMalformed},
		"garbage":         {[]byte{0xff, 0x00, 0x13}, ErrMalformed},
		"trailing bytes":  {append(bytes.Clone(raw), 0x00), ErrMalformed},
		"truncated":       {raw[:len(raw)-3], ErrMalformed},
		"a message":       {msg, ErrMalformed},
		"three elements":  {append([]byte{0x83}, append(raw[1:], 0xf6)...), ErrMalformed},
		"swapped order":   {rawSwapped, ErrMalformed},
		"carries a value": {rawValue, ErrMalformed},
		"same digest":     {mustEncode(t, &Evidence{First: a, Second: a}), ErrEvidenceNoConflict},
		"non-canonical":   {nonMinimal, ErrMalformed},
	} {
		if _, err := DecodeEvidence(tc.raw); !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidEvidence) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func mustEncode(t *testing.T, e *Evidence) []byte {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Evidence caught by Step comes out in one Ready only, once per slot however often the offence
// is repeated, and a Step between Ready and Advance does not lose what it catches.
func TestReadyHandsOutEvidenceOnce(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1)
	a, b := doublePrepare(1, 0, 2)
	wantErr(t, c.Step(a))
	wantErr(t, c.Step(b), ErrEquivocation)
	rd := c.Ready()
	// Caught while the node handles rd: must wait for the next Ready.
	ca, cb := signed(MsgCommit, 1, 0, 3, nil, DigestOf([]byte("x"))), signed(MsgCommit, 1, 0, 3, nil, DigestOf([]byte("y")))
	wantErr(t, c.Step(ca))
	wantErr(t, c.Step(cb), ErrEquivocation)
	c.Advance()
	if len(rd.Evidence) != 1 || rd.Evidence[0].ID() != ptr(NewEvidence(a, b)).ID() {
		t.Fatalf("first Ready's evidence: %+v", rd.Evidence)
	}
	if !c.HasReady() {
		t.Fatal("evidence caught between Ready and Advance does not make a Ready")
	}
	rd = c.Ready()
	c.Advance()
	if len(rd.Evidence) != 1 || rd.Evidence[0].Slot() != (EvidenceSlot{Height: 1, Type: MsgCommit, Validator: 3}) {
		t.Fatalf("second Ready's evidence: %+v", rd.Evidence)
	}
	if err := rd.Evidence[0].Verify(testChain, &vals); err != nil {
		t.Fatal(err)
	}
	// The same offences again, and a third digest in the same slot: nothing new.
	for _, m := range []Message{b, cb, signed(MsgPrepare, 1, 0, 2, nil, DigestOf([]byte("c")))} {
		wantErr(t, c.Step(m), ErrEquivocation)
	}
	if rd := c.Ready(); len(rd.Evidence) != 0 {
		t.Fatalf("repeated offence reported again: %+v", rd.Evidence)
	}
	if st := c.Status(); st.EvidenceCaught != 2 {
		t.Fatalf("status counts %d pieces of evidence, want 2", st.EvidenceCaught)
	}
}

// However a Byzantine validator floods the core with conflicting messages for every slot it may
// buffer, the evidence held is one record per (height, view, type, validator), and the slots
// remembered are forgotten once their height is decided.
func TestEvidenceBounded(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1)
	slots := map[EvidenceSlot]bool{}
	// Height by height: messages of two validators two heights on make the core, which has no
	// proposal, leave view 0 (maybeCatchUp), and it would then refuse the rest of view 0's.
	for h := uint64(1); h <= 1+MaxFutureHeights; h++ {
		for round := range 5 {
			for from := 1; from < 4; from++ {
				for _, typ := range []MsgType{MsgPrepare, MsgCommit} {
					m := signed(typ, h, 0, from, nil, DigestOf([]byte{byte(round), byte(h), byte(typ), byte(from)}))
					if err := c.Step(m); err != nil && !errors.Is(err, ErrEquivocation) {
						t.Fatal(err)
					}
					if round > 0 {
						slots[EvidenceSlot{Height: h, Type: typ, Validator: uint32(from)}] = true
					}
				}
			}
		}
	}
	rd := c.Ready()
	c.Advance()
	if len(rd.Evidence) != len(slots) {
		t.Fatalf("%d pieces of evidence for %d slots", len(rd.Evidence), len(slots))
	}
	for _, e := range rd.Evidence {
		if !slots[e.Slot()] {
			t.Errorf("evidence for unexpected slot %+v", e.Slot())
		}
		if err := e.Verify(testChain, &vals); err != nil {
			t.Error(err)
		}
	}
	if len(c.evidenceSeen) != len(slots) {
		t.Fatalf("remembers %d slots, want %d", len(c.evidenceSeen), len(slots))
	}
	c.forgetEvidenceBelow(2)
	if len(c.evidenceSeen) != len(slots)-6 {
		t.Fatalf("after height 1: remembers %d slots, want %d", len(c.evidenceSeen), len(slots)-6)
	}
}
