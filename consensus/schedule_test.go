package consensus

import (
	"slices"
	"testing"
)

func TestLeaderOrder(t *testing.T) {
	vals := equalSet(4)
	tests := []struct {
		name    string
		height  uint64
		skipped []uint32
		want    []uint32
	}{
		{"nothing skipped is round-robin", 5, nil, []uint32{1, 2, 3, 0}},
		{"the base leader skipped goes last", 5, []uint32{1}, []uint32{2, 3, 0, 1}},
		{"a later one skipped", 4, []uint32{2}, []uint32{0, 1, 3, 2}},
		{"two skipped keep their rotation at the end", 6, []uint32{2, 0}, []uint32{3, 1, 2, 0}},
		{"repeats and out of range ignored", 5, []uint32{1, 1, 9}, []uint32{2, 3, 0, 1}},
		{"everyone skipped is round-robin", 7, []uint32{0, 1, 2, 3}, []uint32{3, 0, 1, 2}},
		{"height 0", 0, []uint32{0}, []uint32{1, 2, 3, 0}},
		{"largest height", ^uint64(0), []uint32{3}, []uint32{0, 1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := vals.LeaderOrder(tc.height, tc.skipped)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("LeaderOrder(%d, %v) = %v, want %v", tc.height, tc.skipped, got, tc.want)
			}
			for v := range uint64(9) {
				if l := vals.LeaderOf(tc.height, v, tc.skipped); l != tc.want[v%4] {
					t.Fatalf("LeaderOf(%d, %d) = %d, want %d", tc.height, v, l, tc.want[v%4])
				}
			}
		})
	}
	if got := (ValidatorSet{}).LeaderOrder(3, []uint32{0}); got != nil {
		t.Fatalf("empty set: %v", got)
	}
}

// Whatever is skipped, each view's leader is a permutation of the set over n views: every
// validator still leads one view in n, so a wrong schedule costs views, never liveness.
func TestLeaderOrderIsAPermutation(t *testing.T) {
	for n := 1; n <= 7; n++ {
		vals := equalSet(n)
		for mask := range 1 << n {
			var skipped []uint32
			for i := range n {
				if mask&(1<<i) != 0 {
					skipped = append(skipped, uint32(i))
				}
			}
			for h := uint64(0); h < uint64(2*n); h++ {
				order := vals.LeaderOrder(h, skipped)
				sorted := slices.Clone(order)
				slices.Sort(sorted)
				for i, v := range sorted {
					if v != uint32(i) {
						t.Fatalf("n=%d skipped=%v h=%d: order %v is not a permutation", n, skipped, h, order)
					}
				}
				if mask != 1<<n-1 && slices.Contains(skipped, order[0]) {
					t.Fatalf("n=%d skipped=%v h=%d: view 0 led by skipped validator %d", n, skipped, h, order[0])
				}
			}
		}
	}
}

// fixedSchedule skips the same validators at every height and records what it was asked.
type fixedSchedule struct {
	skipped []uint32
	asked   []uint64
}

func (s *fixedSchedule) Skipped(height uint64) []uint32 {
	s.asked = append(s.asked, height)
	return s.skipped
}

func scheduledCore(t *testing.T, vals ValidatorSet, self int, height uint64, sched LeaderSchedule) (*Core, *testApp) {
	t.Helper()
	app := &testApp{applied: height - 1}
	c, err := New(Config{ChainID: testChain, Validators: vals, Key: keyFor(self), App: app, Height: height, RetransmitTicks: 5, Schedule: sched})
	if err != nil {
		t.Fatal(err)
	}
	return c, app
}

// Height 1's round-robin leader is validator 1; with 1 skipped, validator 2 is asked to propose,
// the status names it, and a proposal from 1 is refused while 2's is prepared.
func TestScheduleAsksTheNextLeader(t *testing.T) {
	vals := equalSet(4)
	sched := &fixedSchedule{skipped: []uint32{1}}
	leader, _ := scheduledCore(t, vals, 2, 1, sched)
	rd := leader.Ready()
	if rd.Propose == nil || rd.Propose.Height != 1 || rd.Propose.View != 0 {
		t.Fatalf("the scheduled leader was not asked to propose: %+v", rd.Propose)
	}
	if rd.Status.Leader != 2 {
		t.Fatalf("status names leader %d, want 2", rd.Status.Leader)
	}
	if !slices.Equal(sched.asked, []uint64{1}) {
		t.Fatalf("schedule asked for heights %v, want [1]", sched.asked)
	}
	leader.Advance()

	skippedOne, _ := scheduledCore(t, vals, 1, 1, &fixedSchedule{skipped: []uint32{1}})
	if rd := skippedOne.Ready(); rd.Propose != nil {
		t.Fatalf("the skipped validator was asked to propose: %+v", rd.Propose)
	}
	wantErr(t, skippedOne.Propose(1, 0, valueFor(1, "x")), ErrNotLeader)

	follower, _ := scheduledCore(t, vals, 0, 1, &fixedSchedule{skipped: []uint32{1}})
	follower.Ready()
	follower.Advance()
	wantErr(t, follower.Step(signed(MsgPrePrepare, 1, 0, 1, valueFor(1, "rr"), Digest{})), ErrNotLeader)
	wantErr(t, follower.Step(signed(MsgPrePrepare, 1, 0, 2, valueFor(1, "sched"), Digest{})))
	if rd := follower.Ready(); len(rd.Persist) != 1 || rd.Persist[0].Type != MsgPrepare {
		t.Fatalf("no prepare for the scheduled leader's proposal: %+v", rd.Persist)
	}
}

// A proposal for the next height arrives before it opens; who leads it is not known then, so it
// is buffered, and judged by the schedule once the height opens.
func TestScheduleJudgesEarlyProposalsWhenTheHeightOpens(t *testing.T) {
	vals := equalSet(4)
	for _, tc := range []struct {
		name    string
		from    int
		prepare bool
	}{{"scheduled leader", 3, true}, {"round-robin leader, skipped", 2, false}} {
		t.Run(tc.name, func(t *testing.T) {
			// Height 2: round-robin leader 2, skipped; 3 leads.
			c, app := scheduledCore(t, vals, 0, 1, &fixedSchedule{skipped: []uint32{1, 2}})
			c.Ready()
			c.Advance()
			v1 := valueFor(1, "one")
			c.Step(signed(MsgPrePrepare, 1, 0, 2, v1, Digest{}))
			wantErr(t, c.Step(signed(MsgPrePrepare, 2, 0, tc.from, valueFor(2, "early"), Digest{})))
			cert := certFor(1, 0, v1, 1, 2, 3)
			wantErr(t, c.Step(DecisionMessage(1, Committed{Height: 1, Value: v1, Certificate: cert})))
			rd := c.Ready()
			if len(rd.Committed) != 1 {
				t.Fatalf("height 1 not decided: %+v", rd)
			}
			app.applied = 1
			c.Advance()
			rd = c.Ready()
			prepared := len(rd.Persist) == 1 && rd.Persist[0].Type == MsgPrepare && rd.Persist[0].Height == 2
			if prepared != tc.prepare {
				t.Fatalf("prepared the early proposal from %d: %v, want %v (%+v)", tc.from, prepared, tc.prepare, rd.Persist)
			}
			if rd.Status.Leader != 3 {
				t.Fatalf("height 2 led by %d, want 3", rd.Status.Leader)
			}
		})
	}
}

// With validator 1 skipped at height 1, view 0 is led by 2 and view 1 by 3; a NewView for view 1
// must come from 3, and a prepared certificate from view 0 must be 2's proposal.
func TestScheduleViewChangeLeaders(t *testing.T) {
	vals := equalSet(4)
	sched := &fixedSchedule{skipped: []uint32{1}}
	prep := valueFor(1, "prepared")
	pp := signed(MsgPrePrepare, 1, 0, 2, prep, Digest{})
	proof := &PreparedProof{PrePrepare: pp}
	for _, i := range []int{0, 2, 3} {
		m := signed(MsgPrepare, 1, 0, i, nil, pp.Digest)
		proof.Prepares = append(proof.Prepares, Vote{Validator: uint32(i), Sig: m.Sig})
	}
	rrProof := preparedProof(vals, 0, prep, 0, 2, 3) // proposed by round-robin leader 1
	vcs := []Message{viewChange(1, 1, 0, proof), viewChange(1, 1, 1, nil), viewChange(1, 1, 2, nil)}
	nv := func(from int, vcs []Message) Message {
		p := signed(MsgPrePrepare, 1, 1, from, prep, Digest{})
		m := Message{Type: MsgNewView, Height: 1, View: 1, From: uint32(from), Digest: p.Digest, ViewChanges: vcs, Proposal: &p}
		Sign(testChain, keyFor(from), &m)
		return m
	}
	follower := func() *Core {
		c, _ := scheduledCore(t, vals, 0, 1, sched)
		c.startViewChange(1, LeftByTimeout)
		c.Ready()
		c.Advance()
		if st := c.Status(); st.Leader != 3 {
			t.Fatalf("view 1 led by %d, want 3", st.Leader)
		}
		return c
	}
	wantErr(t, follower().Step(nv(2, vcs)), ErrNotLeader) // round-robin's view-1 leader
	wantErr(t, follower().Step(nv(3, vcs)))
	wantErr(t, follower().Step(viewChange(1, 1, 3, rrProof)), ErrNotLeader)
	wantErr(t, follower().Step(viewChange(1, 1, 3, proof)))
}

// A core restarted mid-height asks the schedule again and resumes with the same leader.
func TestScheduleAfterRestart(t *testing.T) {
	vals := equalSet(4)
	sched := &fixedSchedule{skipped: []uint32{1}}
	c, _ := scheduledCore(t, vals, 2, 1, sched)
	rd := c.Ready()
	c.Advance()
	wantErr(t, c.Propose(rd.Propose.Height, rd.Propose.View, valueFor(1, "mine")))
	rd = c.Ready()
	c.Advance()
	app := &testApp{}
	again, err := New(Config{ChainID: testChain, Validators: vals, Key: keyFor(2), App: app, Height: 1, Restore: rd.Persist, Schedule: sched})
	if err != nil {
		t.Fatalf("restart with a pre-prepare of the scheduled leader: %v", err)
	}
	if st := again.Status(); st.Leader != 2 {
		t.Fatalf("restarted core names leader %d, want 2", st.Leader)
	}
}
