package consensus

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand"
	"testing"
)

// Tests of how a core catches up and helps others catch up: buffering of early messages,
// decisions, retransmission, and the Ready/Advance handshake around a commit.

// Messages for the next height wait in the buffer and are replayed once the node has applied the
// current one; the test application fails if asked about a height too early.
func TestFutureMessagesReplayedAfterAdvance(t *testing.T) {
	c, app := newCore(t, equalSet(4), 0, 1)
	v2 := valueFor(2, "next")
	d2 := DigestOf(v2)
	early := []Message{
		signed(MsgPrePrepare, 2, 0, 2, v2, Digest{}),
		signed(MsgPrepare, 2, 0, 2, nil, d2),
		signed(MsgPrepare, 2, 0, 3, nil, d2),
		signed(MsgPrepare, 2, 0, 1, nil, d2),
		signed(MsgCommit, 2, 0, 1, nil, d2),
		signed(MsgCommit, 2, 0, 2, nil, d2),
	}
	for _, m := range early {
		wantErr(t, c.Step(m))
	}
	if c.HasReady() {
		t.Fatal("future messages produced output")
	}
	// Height 1 is decided by a catch-up decision.
	v1 := valueFor(1, "first")
	wantErr(t, c.Step(DecisionMessage(3, Committed{Height: 1, Value: v1, Certificate: certFor(1, 0, v1, 1, 2, 3)})))
	// A commit for height 2 arriving between Ready and Advance must wait too.
	rd := c.Ready()
	wantErr(t, c.Step(signed(MsgCommit, 2, 0, 3, nil, d2)))
	if len(rd.Committed) != 1 || rd.Committed[0].Height != 1 || rd.Status.Height != 2 {
		t.Fatalf("Ready = %+v", rd)
	}
	app.applied = 1
	c.Advance()
	// Replay: pre-prepare, prepares (quorum with ours), commits (quorum with ours): decided.
	rd = c.Ready()
	if len(rd.Committed) != 1 || rd.Committed[0].Height != 2 || !bytes.Equal(rd.Committed[0].Value, v2) {
		t.Fatalf("after replay, Ready = %+v", rd)
	}
	if len(rd.Persist) != 2 || rd.Persist[0].Type != MsgPrepare || rd.Persist[1].Type != MsgCommit {
		t.Fatalf("after replay, signed %+v", rd.Persist)
	}
	if err := VerifyCertificate(testChain, c.vals, &rd.Committed[0].Certificate); err != nil {
		t.Fatal(err)
	}
	app.applied = 2
	c.Advance()
	if c.Status().Height != 3 {
		t.Fatalf("Status = %+v", c.Status())
	}
}

func TestDecisionCatchUp(t *testing.T) {
	value := valueFor(3, "decided elsewhere")
	decision := func(change func(*Message)) Message {
		m := DecisionMessage(2, Committed{Height: 3, Value: value, Certificate: certFor(3, 0, value, 0, 2, 3)})
		if change != nil {
			change(&m)
		}
		return m
	}
	t.Run("valid certificate is adopted", func(t *testing.T) {
		c, _ := newCore(t, equalSet(4), 1, 3)
		wantErr(t, c.Step(signed(MsgPrepare, 3, 0, 2, nil, DigestOf([]byte("partial state")))))
		m := decision(nil)
		wantErr(t, c.Step(m))
		rd := c.Ready()
		if len(rd.Committed) != 1 || !bytes.Equal(rd.Committed[0].Value, value) || rd.Status.Height != 4 {
			t.Fatalf("Ready = %+v", rd)
		}
		if err := VerifyCertificate(testChain, c.vals, &rd.Committed[0].Certificate); err != nil {
			t.Fatal(err)
		}
		wantErr(t, c.Step(m), ErrStaleHeight)
	})
	rejects := []struct {
		name   string
		change func(*Message)
		want   []error
	}{
		{"forged vote", func(m *Message) {
			c := *m.Certificate
			c.Votes = append([]Vote(nil), c.Votes...)
			c.Votes[2].Sig = bytes.Repeat([]byte{7}, ed25519.SignatureSize)
			m.Certificate = &c
		}, []error{ErrInvalidCertificate, ErrBadSignature}},
		{"too little power", func(m *Message) {
			c := *m.Certificate
			c.Votes = c.Votes[:2]
			m.Certificate = &c
		}, []error{ErrInvalidCertificate, ErrNoQuorum}},
		{"certificate for another value", func(m *Message) {
			m.Value = valueFor(3, "swapped")
			m.Digest = DigestOf(m.Value)
		}, []error{ErrMalformed}},
		{"certificate for another height", func(m *Message) {
			c := certFor(2, 0, value, 0, 2, 3)
			m.Certificate = &c
		}, []error{ErrMalformed}},
		{"value the application rejects", func(m *Message) {
			m.Value = []byte("h=9;wrong height")
			m.Digest = DigestOf(m.Value)
			c := certFor(3, 0, m.Value, 0, 1, 2)
			m.Certificate = &c
		}, []error{ErrInvalidValue}},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCore(t, equalSet(4), 1, 3)
			wantErr(t, c.Step(decision(tt.change)), tt.want...)
			if c.HasReady() || c.Status().Height != 3 {
				t.Fatal("a rejected decision changed the core")
			}
		})
	}
}

func TestRetransmit(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1) // RetransmitTicks 5
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, valueFor(1, "x"), Digest{})))
	prepare := c.Ready().Persist[0]
	c.Advance()
	for range 4 {
		c.Tick()
	}
	if c.HasReady() {
		t.Fatal("retransmitted early")
	}
	// The prepare, small, is resent every 5 ticks. What carries a block backs off: the leader's
	// proposal, relayed for peers that missed it (issue #9), goes out after 5 ticks, then 10
	// more, then 20 more.
	full := map[int]bool{1: true, 3: true, 7: true}
	for round := 1; round <= 7; round++ {
		for range min(round-1, 1) * 4 { // four of round 1's five ticks are behind us
			c.Tick()
			if c.HasReady() {
				t.Fatalf("retransmission %d came early", round)
			}
		}
		c.Tick()
		rd := c.Ready()
		if len(rd.Persist) != 0 || len(rd.Messages) == 0 || !bytes.Equal(rd.Messages[0].Sig, prepare.Sig) || rd.Messages[0].Relayed {
			t.Fatalf("retransmission %d: %+v", round, rd)
		}
		relayed := len(rd.Messages) == 2 && rd.Messages[1].Type == MsgPrePrepare && rd.Messages[1].From == 1 && rd.Messages[1].Relayed
		if len(rd.Messages) != 1 && !relayed || relayed != full[round] {
			t.Fatalf("retransmission %d (full: %v): %+v", round, full[round], rd.Messages)
		}
		c.Advance()
	}
}

// A validator that decided a height answers a peer still voting on it with the decision, at most
// once per retransmit period.
func TestStaleVoteAnsweredWithDecision(t *testing.T) {
	c, app := newCore(t, equalSet(4), 0, 1)
	v := valueFor(1, "x")
	wantErr(t, c.Step(DecisionMessage(1, Committed{Height: 1, Value: v, Certificate: certFor(1, 0, v, 1, 2, 3)})))
	app.applied = 1
	c.Ready()
	c.Advance()
	lagging := signed(MsgPrepare, 1, 0, 3, nil, DigestOf(v))
	// Right after deciding, a late vote is the slowest validator, not a laggard: no block sent.
	wantErr(t, c.Step(lagging), ErrStaleHeight)
	if c.HasReady() {
		t.Fatalf("answered a late vote at once: %+v", c.Ready())
	}
	for !c.HasReady() && c.now-c.decided[0].at < uint64(c.retransmitTicks/2) {
		c.Tick()
	}
	wantErr(t, c.Step(lagging), ErrStaleHeight)
	rd := c.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgDecision {
		t.Fatalf("Ready = %+v, want a decision", rd)
	}
	if err := VerifyMessage(testChain, c.vals, &rd.Messages[0]); err != nil {
		t.Fatal(err)
	}
	c.Advance()
	wantErr(t, c.Step(lagging), ErrStaleHeight)
	if c.HasReady() {
		t.Fatal("answered twice within a retransmit period")
	}
	forged := lagging
	forged.Sig = nil
	wantErr(t, c.Step(forged), ErrBadSignature)
}

// Step may run between Ready and Advance; Advance acknowledges only what Ready returned.
func TestStepBetweenReadyAndAdvance(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1)
	value := valueFor(1, "x")
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, value, Digest{})))
	wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 1, nil, DigestOf(value))))
	rd := c.Ready()
	wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 2, nil, DigestOf(value)))) // prepared: commit
	c.Advance()
	if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgPrepare {
		t.Fatalf("first Ready = %+v", rd)
	}
	rd2 := c.Ready()
	if len(rd2.Messages) != 1 || rd2.Messages[0].Type != MsgCommit {
		t.Fatalf("second Ready = %+v, want the commit signed after the first Ready", rd2)
	}
	if rd.Messages[0].Type != MsgPrepare {
		t.Fatal("Advance changed a Ready already handed out")
	}
}

func TestFutureBufferBounded(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1)
	rng := rand.New(rand.NewSource(7))
	for range 300 {
		var d Digest
		rng.Read(d[:])
		from := 1 + rng.Intn(3)
		h := 2 + uint64(rng.Intn(MaxFutureHeights))
		typ := MsgPrepare + MsgType(rng.Intn(2))
		err := c.Step(signed(typ, h, 0, from, nil, d))
		if err != nil && !errors.Is(err, ErrEquivocation) {
			t.Fatal(err)
		}
	}
	if got, limit := c.future.size(), MaxFutureHeights*2*3; got > limit {
		t.Fatalf("buffered %d messages, bound %d", got, limit)
	}
	if len(c.evidence) > MaxFutureHeights*2*3 {
		t.Fatalf("%d evidence records for 3 validators", len(c.evidence))
	}
}

// Issue #9: a validator heard from after a silence of two view timeouts (restarted, or its link
// repaired) likely missed this slot's messages; they are resent at the next tick rather than after
// a retransmission period that may have backed off far.
func TestRetransmitToValidatorBackFromSilence(t *testing.T) {
	c, err := New(Config{ChainID: testChain, Validators: equalSet(4), App: &testApp{}, Height: 1, Key: keyFor(0),
		RetransmitTicks: 1000, ViewTimeoutTicks: 50})
	if err != nil {
		t.Fatal(err)
	}
	// View 0 times out; validator 2 joins view 1 at once, validator 3 is silent.
	for range 50 {
		c.Tick()
	}
	vc := c.Ready().Messages
	if len(vc) != 1 || vc[0].Type != MsgViewChange {
		t.Fatalf("after view 0's timeout: %+v, want a view change", vc)
	}
	c.Advance()
	wantErr(t, c.Step(viewChange(1, 1, 2, nil)))
	for range 51 {
		c.Tick()
	}
	if c.HasReady() {
		t.Fatalf("sent %+v with no one back from a silence", c.Ready().Messages)
	}
	wantErr(t, c.Step(viewChange(1, 1, 2, nil)), ErrDuplicate) // heard lately: nothing to do
	c.Tick()
	if c.HasReady() {
		t.Fatalf("sent %+v for a validator heard lately", c.Ready().Messages)
	}
	wantErr(t, c.Step(viewChange(1, 1, 3, nil))) // silent for 101 ticks
	c.Tick()
	rd := c.Ready()
	if len(rd.Messages) == 0 || !bytes.Equal(rd.Messages[0].Sig, vc[0].Sig) {
		t.Fatalf("after validator 3 came back: %+v, want the view change resent", rd.Messages)
	}
}
