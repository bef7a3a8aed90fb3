package consensus

import "testing"

// A leader stuck short of a decision retransmits its proposal only while some validator has not
// acknowledged it: once every other validator's Prepare for its digest is in, the block is not
// sent again (issue #10: re-sent blocks of hundreds of KB took the CPU the height needed), while
// its votes still are.
func TestProposalNotResentOnceEveryoneHasIt(t *testing.T) {
	vals := equalSet(4)
	cores := make([]*Core, 4)
	for i := range cores {
		cores[i], _ = newCore(t, vals, i, 1)
	}
	leader := cores[1] // height 1, view 0
	rd := leader.Ready()
	if rd.Propose == nil {
		t.Fatal("leader not asked to propose")
	}
	leader.Advance()
	if err := leader.Propose(1, 0, valueFor(1, "x")); err != nil {
		t.Fatal(err)
	}
	var pp Message
	for _, m := range leader.Ready().Messages {
		if m.Type == MsgPrePrepare {
			pp = m
		}
	}
	leader.Advance()
	// deliver gives the proposal to validator i and its Prepare to the leader.
	deliver := func(i int) {
		t.Helper()
		if err := cores[i].Step(pp); err != nil {
			t.Fatal(err)
		}
		for cores[i].HasReady() {
			for _, m := range cores[i].Ready().Messages {
				if m.Type == MsgPrepare {
					wantErr(t, leader.Step(m))
				}
			}
			cores[i].Advance()
		}
	}
	// resent ticks the leader through a full retransmission and says whether the proposal went
	// out again, and whether its own votes did.
	resent := func() (proposal, votes bool) {
		for range 40 {
			leader.Tick()
			for leader.HasReady() {
				for _, m := range leader.Ready().Messages {
					proposal = proposal || m.Type == MsgPrePrepare
					votes = votes || m.Type == MsgPrepare || m.Type == MsgCommit
				}
				leader.Advance()
			}
		}
		return proposal, votes
	}
	deliver(0)
	deliver(2)
	if p, _ := resent(); !p {
		t.Fatal("validator 3 never acknowledged the proposal, and it was not resent")
	}
	deliver(3)
	if p, v := resent(); p || !v {
		t.Fatalf("every validator prepared the proposal: resent proposal %v (want false), votes %v (want true)", p, v)
	}
}
