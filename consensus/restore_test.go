package consensus

import (
	"testing"
)

// restart builds a new core for validator self at height from what the old one persisted.
func restart(t *testing.T, vals ValidatorSet, self int, height uint64, wal []Message) (*Core, error) {
	t.Helper()
	return New(Config{ChainID: testChain, Validators: vals, App: &testApp{applied: height - 1},
		Height: height, RetransmitTicks: 5, Key: keyFor(self), Restore: wal})
}

// A follower that prepared V1 and restarted never prepares the leader's second proposal V2, and
// resends its prepare at once.
func TestRestoredFollowerNeverSignsConflicting(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1) // validator 1 leads height 1
	v1, v2 := valueFor(1, "one"), valueFor(1, "two")
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, v1, Digest{})))
	wal := c.Ready().Persist
	if len(wal) != 1 || wal[0].Type != MsgPrepare {
		t.Fatalf("persisted %+v, want one prepare", wal)
	}

	c, err := restart(t, vals, 0, 1, wal)
	if err != nil {
		t.Fatal(err)
	}
	rd := c.Ready()
	if len(rd.Persist) != 0 || len(rd.Messages) != 1 || rd.Messages[0].Digest != DigestOf(v1) || rd.Propose != nil {
		t.Fatalf("first Ready after restart = %+v, want the restored prepare resent", rd)
	}
	c.Advance()
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, v2, Digest{})), ErrEquivocation)
	if c.HasReady() {
		t.Fatalf("signed after a conflicting proposal: %+v", c.Ready())
	}
	// The proposal it did prepare goes on to commit, with no second prepare signed.
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, v1, Digest{})))
	for _, from := range []int{1, 2} {
		wantErr(t, c.Step(signed(MsgPrepare, 1, 0, from, nil, DigestOf(v1))))
	}
	rd = c.Ready()
	if len(rd.Persist) != 1 || rd.Persist[0].Type != MsgCommit || rd.Persist[0].Digest != DigestOf(v1) {
		t.Fatalf("after the prepare quorum: %+v, want only a commit for v1", rd.Persist)
	}
	c.Advance()
	for _, from := range []int{1, 2} {
		wantErr(t, c.Step(signed(MsgCommit, 1, 0, from, nil, DigestOf(v1))))
	}
	if rd := c.Ready(); len(rd.Committed) != 1 || string(rd.Committed[0].Value) != string(v1) {
		t.Fatalf("committed %+v, want v1", rd.Committed)
	}
}

// A leader that proposed and restarted is not asked to propose again and resends its proposal.
func TestRestoredLeaderKeepsItsProposal(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 1, 1)
	if rd := c.Ready(); rd.Propose == nil {
		t.Fatal("leader not asked to propose")
	}
	c.Advance()
	v1 := valueFor(1, "one")
	wantErr(t, c.Propose(1, 0, v1))
	wal := c.Ready().Persist

	c, err := restart(t, vals, 1, 1, wal)
	if err != nil {
		t.Fatal(err)
	}
	rd := c.Ready()
	if rd.Propose != nil || len(rd.Messages) != 2 || rd.Messages[0].Type != MsgPrePrepare || string(rd.Messages[0].Value) != string(v1) {
		t.Fatalf("first Ready after restart = %+v, want the proposal resent and no request", rd)
	}
	c.Advance()
	wantErr(t, c.Propose(1, 0, valueFor(1, "two")), ErrDuplicate)
}

func TestRestoreRefusesWhatIsNotThisValidatorsWAL(t *testing.T) {
	vals := equalSet(4)
	d1, d2 := DigestOf(valueFor(2, "a")), DigestOf(valueFor(2, "b"))
	tampered := signed(MsgPrepare, 2, 0, 0, nil, d1)
	tampered.Digest = d2
	for name, wal := range map[string][]Message{
		"a later height":         {signed(MsgPrepare, 3, 0, 0, nil, d1)},
		"another validator's":    {signed(MsgPrepare, 2, 0, 3, nil, d1)},
		"two different prepares": {signed(MsgPrepare, 2, 0, 0, nil, d1), signed(MsgPrepare, 2, 0, 0, nil, d2)},
		"a broken signature":     {tampered},
		"a decision":             {DecisionMessage(0, Committed{Height: 2, Value: valueFor(2, "a"), Certificate: certFor(2, 0, valueFor(2, "a"), 0, 1, 2)})},
	} {
		if _, err := restart(t, vals, 0, 2, wal); err == nil {
			t.Errorf("%s: restored without complaint", name)
		}
	}
	// Messages of decided heights are ignored.
	c, err := restart(t, vals, 0, 2, []Message{signed(MsgPrepare, 1, 0, 0, nil, d1)})
	if err != nil {
		t.Fatal(err)
	}
	if rd := c.Ready(); len(rd.Messages) != 0 {
		t.Fatalf("resent a message of a decided height: %+v", rd.Messages)
	}
}
