package consensus

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sampleMessages is one valid message of each type, for height 2 of equalSet(4).
func sampleMessages() []Message {
	value := valueFor(2, "block")
	cert := certFor(2, 0, value, 0, 1, 3)
	return []Message{
		signed(MsgPrePrepare, 2, 0, 2, value, Digest{}),
		signed(MsgPrepare, 2, 0, 1, nil, DigestOf(value)),
		signed(MsgCommit, 2, 0, 3, nil, DigestOf(value)),
		DecisionMessage(0, Committed{Height: 2, Value: value, Certificate: cert}),
		sampleViewChange(0, value),
		sampleNewView(value),
	}
}

// sampleViewChange is validator from's view change to view 1 of height 2 with a prepared
// certificate for value in view 0 (led by validator 2).
func sampleViewChange(from int, value []byte) Message {
	pp := signed(MsgPrePrepare, 2, 0, 2, value, Digest{})
	proof := &PreparedProof{PrePrepare: pp}
	for _, i := range []int{0, 1, 2} {
		m := signed(MsgPrepare, 2, 0, i, nil, pp.Digest)
		proof.Prepares = append(proof.Prepares, Vote{Validator: uint32(i), Sig: m.Sig})
	}
	m := Message{Type: MsgViewChange, Height: 2, View: 1, From: uint32(from), Digest: pp.Digest, Prepared: proof}
	Sign(testChain, keyFor(from), &m)
	return m
}

// sampleNewView is the view-1 leader's (validator 3's) new view for height 2, re-proposing value.
func sampleNewView(value []byte) Message {
	var vcs []Message
	for _, i := range []int{0, 1, 3} {
		vc := sampleViewChange(i, value)
		stripped := *vc.Prepared
		stripped.PrePrepare.Value = nil
		vc.Prepared = &stripped
		vcs = append(vcs, vc)
	}
	pp := signed(MsgPrePrepare, 2, 1, 3, value, Digest{})
	m := Message{Type: MsgNewView, Height: 2, View: 1, From: 3, Digest: pp.Digest, ViewChanges: vcs, Proposal: &pp}
	Sign(testChain, keyFor(3), &m)
	return m
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := EncodeMessage(&m)
		if err != nil {
			t.Fatalf("%v: encode: %v", m.Type, err)
		}
		got, err := DecodeMessage(b, len(b))
		if err != nil {
			t.Fatalf("%v: decode: %v", m.Type, err)
		}
		if !reflect.DeepEqual(*got, m) {
			t.Errorf("%v: round trip changed the message:\n got %+v\nwant %+v", m.Type, *got, m)
		}
		again, err := EncodeMessage(got)
		if err != nil || !bytes.Equal(again, b) {
			t.Errorf("%v: re-encoding differs (err %v)", m.Type, err)
		}
		if err := VerifyMessage(testChain, equalSet(4), got); err != nil {
			t.Errorf("%v: decoded message does not verify: %v", m.Type, err)
		}
	}
}

// The sign bytes are a wire format other implementations must reproduce byte for byte.
func TestSignBytesGolden(t *testing.T) {
	var d Digest
	for i := range d {
		d[i] = byte(i)
	}
	m := Message{Type: MsgPrepare, Height: 3, View: 0, From: 1, Digest: d, Value: []byte("ignored"), Sig: []byte("ignored")}
	want := "guild/consensus/v1\x00guild-test\x00" + // domain tag and chain ID
		"\x85\x02\x03\x00\x01\x58\x20" + string(d[:]) // [type, height, view, from, bstr(32)]
	if got := SignBytes(testChain, &m); string(got) != want {
		t.Fatalf("SignBytes =\n%s\nwant\n%s", hex.Dump(got), hex.Dump([]byte(want)))
	}
}

func TestSignBytesSeparate(t *testing.T) {
	base := Message{Type: MsgCommit, Height: 7, View: 1, From: 2, Digest: DigestOf([]byte("x"))}
	variants := map[string]func(m *Message){
		"type":   func(m *Message) { m.Type = MsgPrepare },
		"height": func(m *Message) { m.Height++ },
		"view":   func(m *Message) { m.View++ },
		"from":   func(m *Message) { m.From++ },
		"digest": func(m *Message) { m.Digest[31] ^= 1 },
	}
	ref := SignBytes(testChain, &base)
	if bytes.Equal(ref, SignBytes("guild-test2", &base)) {
		t.Error("sign bytes do not depend on the chain ID")
	}
	for name, change := range variants {
		m := base
		change(&m)
		if bytes.Equal(ref, SignBytes(testChain, &m)) {
			t.Errorf("sign bytes do not cover %s", name)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := sampleMessages()[1]
	good, err := EncodeMessage(&valid)
	if err != nil {
		t.Fatal(err)
	}
	manyVotes := sampleMessages()[3]
	for len(manyVotes.Certificate.Votes) <= MaxValidators {
		manyVotes.Certificate.Votes = append(manyVotes.Certificate.Votes, Vote{})
	}
	tooManyVotes, err := EncodeMessage(&manyVotes)
	if err != nil {
		t.Fatal(err)
	}
	h := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"oversized", good, len(good) - 1, ErrTooLarge},
		{"zero limit", good, 0, ErrTooLarge},
		{"trailing bytes", append(bytes.Clone(good), 0x00), 1 << 10, ErrMalformed},
		{"two messages", append(bytes.Clone(good), good...), 1 << 10, ErrMalformed},
		{"empty", nil, 1 << 10, ErrMalformed},
		{"truncated", good[:len(good)-1], 1 << 10, ErrMalformed},
		{"not a map", h("83 01 02 03"), 1 << 10, ErrMalformed},
		{"duplicate key", h("a2 02 01 02 02"), 1 << 10, ErrMalformed},
		{"indefinite length map", h("bf 02 01 ff"), 1 << 10, ErrMalformed},
		{"unknown field", h("a1 09 00"), 1 << 10, ErrMalformed},
		{"tag", h("a1 02 c1 01"), 1 << 10, ErrMalformed},
		{"short digest", h("a1 05 41 00"), 1 << 10, ErrMalformed},
		{"long digest", h("a1 05 58 21" + strings.Repeat("00", 33)), 1 << 10, ErrMalformed},
		{"digest as an array", h("a1 05 98 20" + strings.Repeat("00", 32)), 1 << 10, ErrMalformed},
		{"type overflows uint8", h("a1 01 19 01 2c"), 1 << 10, ErrMalformed},
		{"wrong field type", h("a1 01 61 78"), 1 << 10, ErrMalformed},
		{"too deep", h("a1 07 a1 04 81 81 81 81 01"), 1 << 10, ErrMalformed},
		{"more votes than validators can cast", tooManyVotes, 1 << 20, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage(tt.in, tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeMessage = %+v, %v; want %v", m, err, tt.want)
			}
		})
	}
}

func TestVerifyMessage(t *testing.T) {
	vals := equalSet(4)
	value := valueFor(2, "block")
	d := DigestOf(value)
	tests := []struct {
		name string
		m    func() *Message
		want []error
	}{
		{"pre-prepare", func() *Message { m := signed(MsgPrePrepare, 2, 0, 2, value, Digest{}); return &m }, nil},
		{"prepare", func() *Message { m := signed(MsgPrepare, 2, 0, 0, nil, d); return &m }, nil},
		{"commit", func() *Message { m := signed(MsgCommit, 2, 0, 0, nil, d); return &m }, nil},
		{"decision needs no signature", func() *Message { m := sampleMessages()[3]; m.Sig = nil; return &m }, nil},
		{"nil", func() *Message { return nil }, []error{ErrMalformed}},
		{"unknown type", func() *Message { m := signed(MsgType(9), 2, 0, 0, nil, d); return &m }, []error{ErrMalformed}},
		{"type zero", func() *Message { m := signed(0, 2, 0, 0, nil, d); return &m }, []error{ErrMalformed}},
		{"sender out of range", func() *Message { m := signed(MsgPrepare, 2, 0, 0, nil, d); m.From = 4; return &m }, []error{ErrUnknownValidator}},
		{"sender far out of range", func() *Message { m := signed(MsgPrepare, 2, 0, 0, nil, d); m.From = 1<<32 - 1; return &m }, []error{ErrUnknownValidator}},
		{"prepare with a value", func() *Message { m := signed(MsgPrepare, 2, 0, 0, nil, d); m.Value = value; return &m }, []error{ErrMalformed}},
		{"pre-prepare without a value", func() *Message { m := signed(MsgPrePrepare, 2, 0, 2, nil, d); return &m }, []error{ErrMalformed}},
		{"value does not match digest", func() *Message {
			m := signed(MsgPrePrepare, 2, 0, 2, value, Digest{})
			m.Value = valueFor(2, "other")
			return &m
		}, []error{ErrMalformed}},
		{"commit with a certificate", func() *Message {
			m := signed(MsgCommit, 2, 0, 0, nil, d)
			m.Certificate = sampleMessages()[3].Certificate
			return &m
		}, []error{ErrMalformed}},
		{"decision without a certificate", func() *Message { m := sampleMessages()[3]; m.Certificate = nil; return &m }, []error{ErrMalformed}},
		{"decision whose certificate is for another height", func() *Message {
			m := sampleMessages()[3]
			m.Height = 3
			return &m
		}, []error{ErrMalformed}},
		{"decision with a forged certificate", func() *Message {
			m := sampleMessages()[3]
			c := *m.Certificate
			c.Votes = append([]Vote(nil), c.Votes...)
			c.Votes[0].Sig = c.Votes[1].Sig
			m.Certificate = &c
			return &m
		}, []error{ErrInvalidCertificate, ErrBadSignature}},
		{"bad signature", func() *Message { m := signed(MsgPrepare, 2, 0, 0, nil, d); m.Sig[0] ^= 1; return &m }, []error{ErrBadSignature}},
		{"no signature", func() *Message { m := signed(MsgPrepare, 2, 0, 0, nil, d); m.Sig = nil; return &m }, []error{ErrBadSignature}},
		{"signed by another validator", func() *Message { m := signed(MsgPrepare, 2, 0, 0, nil, d); m.From = 1; return &m }, []error{ErrBadSignature}},
		{"signed for another chain", func() *Message {
			m := Message{Type: MsgPrepare, Height: 2, From: 0, Digest: d}
			Sign("other-chain", keyFor(0), &m)
			return &m
		}, []error{ErrBadSignature}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyMessage(testChain, vals, tt.m())
			if tt.want == nil && err != nil {
				t.Fatalf("VerifyMessage = %v, want nil", err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("VerifyMessage = %v, want %v", err, w)
				}
			}
		})
	}
	// A validator set with a malformed key must not make verification panic.
	bad := ValidatorSet{Validators: []Validator{{PubKey: []byte{1}, Power: 1}}}
	m := signed(MsgPrepare, 2, 0, 0, nil, d)
	if err := VerifyMessage(testChain, bad, &m); !errors.Is(err, ErrBadSignature) {
		t.Errorf("malformed key: %v, want ErrBadSignature", err)
	}
}

// FuzzDecodeMessage: no input makes decoding, verification or Step panic, and whatever decodes
// re-encodes and decodes again.
// A view change's sign bytes also cover the view its prepared certificate is from.
func TestViewChangeSignBytesGolden(t *testing.T) {
	var d Digest
	for i := range d {
		d[i] = byte(i)
	}
	m := Message{Type: MsgViewChange, Height: 3, View: 2, From: 1, Digest: d, PreparedView: 1}
	want := "guild/consensus/v1\x00guild-test\x00" +
		"\x86\x05\x03\x02\x01\x58\x20" + string(d[:]) + "\x01" // [type, height, view, from, bstr(32), prepared view]
	if got := SignBytes(testChain, &m); string(got) != want {
		t.Fatalf("SignBytes =\n%s\nwant\n%s", hex.Dump(got), hex.Dump([]byte(want)))
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := EncodeMessage(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, s := range []string{"", "00", "a0", "f6", "a1 01 01", "a1 07 a1 04 81 a0", "bf ff", "a2 01 01 01 01", "5f ff", "c1 00"} {
		b, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		f.Add(b)
	}
	vals := equalSet(4)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b, 1<<16)
		if err != nil {
			return
		}
		_ = VerifyMessage(testChain, vals, m)
		again, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		if _, err := DecodeMessage(again, len(again)); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		c, err := New(Config{ChainID: testChain, Validators: vals, Key: keyFor(0), App: &testApp{applied: 1}, Height: 2})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Step(*m)
		c.Tick()
		_ = c.Ready()
		c.Advance()
	})
}

// Relayed is carried on the wire but outside the signed bytes: a relayed copy of a vote verifies
// as its author's, and the hint cannot make a forged one verify.
func TestRelayedIsAnUnsignedHint(t *testing.T) {
	vals := equalSet(4)
	m := signed(MsgPrepare, 3, 1, 2, nil, DigestOf([]byte("x")))
	relayed := m
	relayed.Relayed = true
	if !bytes.Equal(SignBytes(testChain, &m), SignBytes(testChain, &relayed)) {
		t.Fatal("Relayed changes the sign bytes")
	}
	b, err := EncodeMessage(&relayed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMessage(b, 1<<20)
	if err != nil || !got.Relayed {
		t.Fatalf("decoded %+v, %v; want the hint kept", got, err)
	}
	if err := VerifyMessage(testChain, vals, got); err != nil {
		t.Fatalf("relayed copy: %v", err)
	}
	forged := relayed
	forged.From = 1
	if err := VerifyMessage(testChain, vals, &forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("relayed copy claiming another author: %v", err)
	}
}
