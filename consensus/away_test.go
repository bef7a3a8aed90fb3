package consensus

import "testing"

// awayCore is validator 0 of four at height 5, with heights 3 and 4 decided (view 0 of height 5
// is led by 1, view 1 by 2), a view timeout of testViewTimeout ticks and a retransmit period of 4.
func awayCore(t *testing.T) *Core {
	t.Helper()
	var recent []Committed
	for h := uint64(3); h <= 4; h++ {
		v := valueFor(h, "x")
		recent = append(recent, Committed{Height: h, Value: v, Certificate: certFor(h, 0, v, 0, 1, 2)})
	}
	c, err := New(Config{ChainID: testChain, Validators: equalSet(4), App: &testApp{applied: 4}, Height: 5, Key: keyFor(0),
		RetransmitTicks: 4, ViewTimeoutTicks: testViewTimeout, Recent: recent})
	if err != nil {
		t.Fatal(err)
	}
	for c.HasReady() {
		c.Ready()
		c.Advance()
	}
	return c
}

// lagging is validator from's prepare for height 4, which awayCore decided in view 0: it may have
// been sent just before its author decided, and been on the wire since.
func lagging(from int) Message {
	return signed(MsgPrepare, 4, 0, from, nil, DigestOf(valueFor(4, "x")))
}

// stuck is validator from's view change to view 1 of height 4: it left view 0, which decided the
// height, and cannot finish it without a decision. Stepped a retransmit period after the start, it
// shows that validator is still at height 4.
func stuck(from int) Message {
	return viewChange(4, 1, from, nil)
}

// Issue #9: a leader that shows it cannot propose at the height (still behind a quarter timeout
// into view 0, or nothing from it at the height in a later view) gets a quarter of the view
// timeout, counted from when the core entered the view; one heard from at the height, or only
// briefly late, gets the whole timeout.
func TestAwayLeaderShortensItsView(t *testing.T) {
	t.Run("view 0, leader still at a decided height, out of its deciding view", func(t *testing.T) {
		c := awayCore(t)
		for range testViewTimeout / 4 {
			c.Tick()
		}
		wantErr(t, c.Step(stuck(1)), ErrStaleHeight)
		if got := ticksToViewChange(t, c); got != 1 {
			t.Fatalf("view 0 ended %d ticks after the leader showed it was still behind, want 1", got)
		}
	})
	t.Run("view 0, leader's vote of the deciding view arriving late", func(t *testing.T) {
		// 4-replay-idle, seed 331: an honest leader decided the last height a few ticks after
		// this validator, and its last vote for it, resent just before, arrived after a hop of
		// 6 ticks, a quarter timeout into the height. It was never behind by more than the
		// wire: it must keep its view.
		c := awayCore(t)
		for range testViewTimeout / 4 {
			c.Tick()
		}
		wantErr(t, c.Step(lagging(1)), ErrStaleHeight)
		wantErr(t, c.Step(signed(MsgCommit, 4, 0, 1, nil, DigestOf(valueFor(4, "x")))), ErrStaleHeight)
		if got := testViewTimeout/4 + ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended %d ticks after the height opened, want %d", got, testViewTimeout)
		}
	})
	t.Run("view 0, leader's stale view change relayed", func(t *testing.T) {
		// Passed on by another (a replay, or a relay by a node behind): no sign of where its
		// author is now.
		c := awayCore(t)
		for range testViewTimeout / 4 {
			c.Tick()
		}
		m := stuck(1)
		m.Relayed = true
		wantErr(t, c.Step(m), ErrStaleHeight)
		if got := testViewTimeout/4 + ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended %d ticks after the height opened, want %d", got, testViewTimeout)
		}
	})
	t.Run("view 0, leader a little late", func(t *testing.T) {
		// Behind just after the height opened, and then not: it may be about to propose.
		c := awayCore(t)
		c.Tick()
		c.Tick()
		wantErr(t, c.Step(stuck(1)), ErrStaleHeight)
		if got := 2 + ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended %d ticks after the height opened, want %d", got, testViewTimeout)
		}
	})
	t.Run("view 0, leader caught up", func(t *testing.T) {
		c := awayCore(t)
		for range testViewTimeout / 4 {
			c.Tick()
		}
		wantErr(t, c.Step(stuck(1)), ErrStaleHeight)
		// It is at the height now: its prepare for a proposal this core has not seen yet.
		wantErr(t, c.Step(signed(MsgPrepare, 5, 0, 1, nil, DigestOf(valueFor(5, "y")))))
		if got := testViewTimeout/4 + ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended %d ticks after the height opened, want %d", got, testViewTimeout)
		}
	})
	t.Run("view 0, nothing from the leader", func(t *testing.T) {
		// It may be waiting for transactions: only silence for two timeouts would cut it short.
		c := awayCore(t)
		if got := ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended after %d ticks, want %d", got, testViewTimeout)
		}
	})
	t.Run("view 1, leader heard lately but never at this height", func(t *testing.T) {
		c := awayCore(t)
		c.Tick()
		c.Tick()
		wantErr(t, c.Step(lagging(2)), ErrStaleHeight)
		ticksToViewChange(t, c)
		wantErr(t, c.Step(viewChange(5, 1, 1, nil)))
		wantErr(t, c.Step(viewChange(5, 1, 3, nil)))
		if got := ticksToViewChange(t, c); got != testViewTimeout/4 {
			t.Fatalf("view 1 ended after %d ticks, want %d", got, testViewTimeout/4)
		}
	})
	t.Run("view 1, leader a view behind", func(t *testing.T) {
		// Its prepare in view 0 shows it is at the height: it joins view 1 soon.
		c := awayCore(t)
		ticksToViewChange(t, c)
		wantErr(t, c.Step(signed(MsgPrepare, 5, 0, 2, nil, DigestOf(valueFor(5, "y")))), ErrWrongView)
		wantErr(t, c.Step(viewChange(5, 1, 1, nil)))
		wantErr(t, c.Step(viewChange(5, 1, 3, nil)))
		if got := ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 1 ended after %d ticks, want %d", got, testViewTimeout)
		}
	})
	t.Run("view 1, leader's view change in", func(t *testing.T) {
		c := awayCore(t)
		c.Tick()
		c.Tick()
		wantErr(t, c.Step(lagging(2)), ErrStaleHeight)
		ticksToViewChange(t, c)
		wantErr(t, c.Step(viewChange(5, 1, 2, nil)))
		wantErr(t, c.Step(viewChange(5, 1, 3, nil)))
		if got := ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 1 ended after %d ticks, want %d", got, testViewTimeout)
		}
	})
}

// Issue #9: a validator without its height's proposal that hears more than a third of the power
// two heights on knows the height is decided without it, and moves to view 1 at once; its view
// change, stale for the others, gets it the decision at once.
func TestCatchUpWithoutTheProposal(t *testing.T) {
	ahead := func(h uint64, from int) Message {
		return signed(MsgPrepare, h, 0, from, nil, DigestOf(valueFor(h, "z")))
	}
	t.Run("two validators two heights on", func(t *testing.T) {
		c := awayCore(t)
		wantErr(t, c.Step(ahead(7, 1)))
		if st := c.Status(); st.View != 0 {
			t.Fatalf("left view 0 on one validator ahead: %+v", st)
		}
		wantErr(t, c.Step(ahead(7, 2)))
		if st := c.Status(); st.View != 1 {
			t.Fatalf("status %+v, want view 1", st)
		}
	})
	t.Run("one height on", func(t *testing.T) {
		// The slowest validator sees the next height's first votes before its last commits.
		c := awayCore(t)
		for from := 1; from < 4; from++ {
			wantErr(t, c.Step(ahead(6, from)))
		}
		if st := c.Status(); st.View != 0 {
			t.Fatalf("status %+v, want view 0", st)
		}
	})
	t.Run("with the proposal", func(t *testing.T) {
		c := awayCore(t)
		wantErr(t, c.Step(signed(MsgPrePrepare, 5, 0, 1, valueFor(5, "p"), Digest{})))
		for from := 1; from < 4; from++ {
			wantErr(t, c.Step(ahead(7, from)))
		}
		if st := c.Status(); st.View != 0 {
			t.Fatalf("status %+v, want view 0: the commits may still come", st)
		}
	})
	t.Run("a stale view change is answered like a stale vote", func(t *testing.T) {
		// Decided height 4 at tick 0. A validator that times out at a height the others have
		// just decided resends its view change; answering the first one at once let a hostile
		// validator, sending view changes for its height without pause, have every honest node
		// broadcast every block a second time (a real-process run: one decision per height per
		// node, blocks/s down to 39 % while it lasted).
		c := awayCore(t)
		wantErr(t, c.Step(lagging(1)), ErrStaleHeight)
		wantErr(t, c.Step(viewChange(4, 1, 1, nil)), ErrStaleHeight)
		if rd := c.Ready(); len(rd.Messages) != 0 {
			t.Fatalf("answered a stale vote or view change at once: %+v", rd.Messages)
		}
		c.Advance()
		c.Tick()
		c.Tick() // half the retransmit period
		for c.HasReady() {
			c.Ready()
			c.Advance()
		}
		wantErr(t, c.Step(viewChange(4, 1, 1, nil)), ErrStaleHeight)
		rd := c.Ready()
		if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgDecision || rd.Messages[0].Height != 4 {
			t.Fatalf("answered the resent stale view change with %+v, want the decision of height 4", rd.Messages)
		}
	})
}

// Issue #10 (kill the leader: the next block within 1.5 s): a leader whose node's connection
// closed (SetPeerDown) gets an eighth of the view timeout from then, a quarter if its proposal is
// in (the height may still be decided without it, unless a validator lacks the proposal); a
// message from it, or its node reconnecting, gives it the whole timeout back.
func TestDisconnectedLeaderShortensItsView(t *testing.T) {
	const at = 5 // ticks into view 0 when the leader's connection closes
	eighth := testViewTimeout / 8
	ticks := func(c *Core, n int) {
		for range n {
			c.Tick()
		}
	}
	t.Run("down before proposing", func(t *testing.T) {
		c := awayCore(t)
		ticks(c, at)
		c.SetPeerDown(1, true)
		if got := at + ticksToViewChange(t, c); got != at+eighth {
			t.Fatalf("view 0 ended %d ticks after the height opened, want %d", got, at+eighth)
		}
	})
	t.Run("another validator down", func(t *testing.T) {
		c := awayCore(t)
		c.SetPeerDown(2, true)
		if got := ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended after %d ticks, want %d", got, testViewTimeout)
		}
	})
	t.Run("proposal in before it went down", func(t *testing.T) {
		// The others may decide without it, so it gets longer; but the height is still open a
		// quarter timeout on (no quorum here: nobody else votes), so one of them may lack the
		// proposal, and only a new view brings it (TestSimulatorKilledLeaderProposedToSome).
		c := awayCore(t)
		wantErr(t, c.Step(signed(MsgPrePrepare, 5, 0, 1, valueFor(5, "p"), Digest{})))
		ticks(c, at)
		c.SetPeerDown(1, true)
		if got, want := at+ticksToViewChange(t, c), at+testViewTimeout/4; got != want {
			t.Fatalf("view 0 ended %d ticks after the height opened, want %d", got, want)
		}
	})
	t.Run("heard from after", func(t *testing.T) {
		c := awayCore(t)
		c.SetPeerDown(1, true)
		ticks(c, 1)
		wantErr(t, c.Step(signed(MsgPrepare, 5, 0, 1, nil, DigestOf(valueFor(5, "y")))))
		if got := 1 + ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended %d ticks after the height opened, want %d", got, testViewTimeout)
		}
	})
	t.Run("reconnected", func(t *testing.T) {
		c := awayCore(t)
		c.SetPeerDown(1, true)
		ticks(c, 1)
		c.SetPeerDown(1, false)
		if got := 1 + ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended %d ticks after the height opened, want %d", got, testViewTimeout)
		}
	})
	t.Run("own index and out of range ignored", func(t *testing.T) {
		c := awayCore(t)
		c.SetPeerDown(0, true)
		c.SetPeerDown(99, true)
		if got := ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended after %d ticks, want %d", got, testViewTimeout)
		}
	})
}
