package consensus

import (
	"crypto/ed25519"
	"testing"
)

// recordingMemo is a SignatureMemo that counts what the core asks of it. With lie set, it claims
// every triple verified: a core that still called ed25519.Verify would then refuse a forged
// signature, which is how the test sees that a memo hit skips the verify.
type recordingMemo struct {
	held  map[string]bool
	lie   bool
	asked int
	added int
}

func newRecordingMemo() *recordingMemo { return &recordingMemo{held: make(map[string]bool)} }

func memoKey(pub ed25519.PublicKey, msg, sig []byte) string {
	return string(pub) + string(sig) + string(msg)
}

func (m *recordingMemo) Verified(pub ed25519.PublicKey, msg, sig []byte) bool {
	m.asked++
	return m.lie || m.held[memoKey(pub, msg, sig)]
}

func (m *recordingMemo) Add(pub ed25519.PublicKey, msg, sig []byte) {
	m.added++
	m.held[memoKey(pub, msg, sig)] = true
}

func newMemoCore(t *testing.T, memo SignatureMemo) *Core {
	t.Helper()
	c, err := New(Config{ChainID: testChain, Validators: equalSet(4), Key: keyFor(0), App: &testApp{}, Height: 1, Memo: memo})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The topic validator's check fills the memo, and the core then takes the message from it.
func TestMemoFilledByVerifyMessageServesStep(t *testing.T) {
	memo := newRecordingMemo()
	vals := equalSet(4)
	m := signed(MsgPrepare, 1, 0, 2, nil, DigestOf(valueFor(1, "x")))
	if err := VerifyMessageWith(testChain, vals, &m, memo); err != nil {
		t.Fatal(err)
	}
	if memo.added != 1 {
		t.Fatalf("VerifyMessageWith added %d triples, want 1", memo.added)
	}
	c := newMemoCore(t, memo)
	if err := c.Step(m); err != nil {
		t.Fatal(err)
	}
	if memo.asked != 2 || memo.added != 1 {
		t.Fatalf("memo asked %d times, added %d: want the core to find the message (2, 1)", memo.asked, memo.added)
	}
	if st := c.Status(); st.Prepares != 1 {
		t.Fatalf("core holds %d prepares, want 1", st.Prepares)
	}
}

// A memo hit is trusted: the core does not verify again. Shown with a memo that vouches for a
// forged signature, which ed25519.Verify would refuse.
func TestStepSkipsVerifyForMemoHit(t *testing.T) {
	m := signed(MsgPrepare, 1, 0, 2, nil, DigestOf(valueFor(1, "x")))
	m.Sig = append([]byte(nil), m.Sig...)
	m.Sig[5] ^= 1
	if err := newMemoCore(t, nil).Step(m); err == nil {
		t.Fatal("a core without a memo accepted a forged signature")
	}
	memo := newRecordingMemo()
	memo.lie = true
	if err := newMemoCore(t, memo).Step(m); err != nil {
		t.Fatalf("the core verified a signature its memo holds: %v", err)
	}
	if memo.added != 0 {
		t.Fatalf("a memo hit was added again (%d)", memo.added)
	}
}

// A tampered message whose triple is not in the memo is still verified and refused, and nothing
// failed is remembered.
func TestStepRejectsTamperedMessageNotInMemo(t *testing.T) {
	memo := newRecordingMemo()
	vals := equalSet(4)
	good := signed(MsgPrepare, 1, 0, 2, nil, DigestOf(valueFor(1, "x")))
	if err := VerifyMessageWith(testChain, vals, &good, memo); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.Digest = DigestOf(valueFor(1, "y")) // the same signature over another digest
	wantErr(t, VerifyMessageWith(testChain, vals, &bad, memo), ErrBadSignature)
	c := newMemoCore(t, memo)
	wantErr(t, c.Step(bad), ErrBadSignature)
	if memo.added != 1 {
		t.Fatalf("memo added %d triples, want only the good one", memo.added)
	}
	if err := c.Step(good); err != nil {
		t.Fatal(err)
	}
}

// A decision's certificate votes go through the memo too: a certificate verified once (by the
// topic validator) is not verified again.
func TestCertificateVotesUseMemo(t *testing.T) {
	memo := newRecordingMemo()
	vals := equalSet(4)
	v := valueFor(1, "x")
	d := DecisionMessage(1, Committed{Height: 1, Value: v, Certificate: certFor(1, 0, v, 1, 2, 3)})
	if err := VerifyMessageWith(testChain, vals, &d, memo); err != nil {
		t.Fatal(err)
	}
	if memo.added != 3 {
		t.Fatalf("added %d votes, want 3", memo.added)
	}
	d.Certificate.Votes[1].Sig = append([]byte(nil), d.Certificate.Votes[1].Sig...)
	d.Certificate.Votes[1].Sig[0] ^= 1
	wantErr(t, VerifyMessageWith(testChain, vals, &d, memo), ErrBadSignature)
}

// The loop's cost of authenticating one consensus message: the core verifying it, against finding
// it in the memo the topic validator filled (go test -run '^$' -bench CheckAuth ./consensus/).
func BenchmarkCheckAuth(b *testing.B) {
	vals := equalSet(4)
	m := signed(MsgPrepare, 1, 0, 2, nil, DigestOf(valueFor(1, "x")))
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if err := checkAuth(testChain, vals, &m, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memo", func(b *testing.B) {
		memo := newRecordingMemo()
		if err := VerifyMessageWith(testChain, vals, &m, memo); err != nil {
			b.Fatal(err)
		}
		sigs := memoCache(memo)
		for b.Loop() {
			if err := checkAuth(testChain, vals, &m, sigs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
