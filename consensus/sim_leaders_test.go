package consensus

import (
	"fmt"
	"slices"
	"testing"
)

// A leader schedule in the simulator, after the node's rule (issue #9): a validator that missed
// its turn — the block decided at a height it was scheduled to lead was built by another — is
// passed over for a while. The simulated values are "h=H;v=V;by=P;r=R", so the builder of each
// decided value is in its bytes, as a block's proposer is in its header; who was scheduled is
// computed again from the decided values below, as the node does from headers.

// simSkipWindow is how many heights a missed turn is remembered.
const simSkipWindow = 64

// simSchedule is one node's schedule, read from its own decided values only.
type simSchedule struct {
	nd   *simNode
	vals ValidatorSet
	// leader memoizes the scheduled view-0 leader per height.
	leader map[uint64]uint32
	err    *error
}

func (s *sim) scheduleFor(i int) LeaderSchedule {
	if !s.sc.leaders {
		return nil
	}
	return &simSchedule{nd: s.nodes[i], vals: s.vals, leader: map[uint64]uint32{}, err: &s.err}
}

func (p *simSchedule) Skipped(height uint64) []uint32 {
	if uint64(len(p.nd.decided)) < height-1 {
		// The LeaderSchedule contract: asked only once everything below is applied.
		if *p.err == nil {
			*p.err = fmt.Errorf("schedule asked for height %d with %d decided", height, len(p.nd.decided))
		}
		return nil
	}
	var out []uint32
	for h := height - min(height-1, simSkipWindow); h < height; h++ {
		if l := p.scheduled(h); p.builder(h) != int64(l) && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// scheduled is the view-0 leader of height h. Precondition: h-1 is decided.
func (p *simSchedule) scheduled(h uint64) uint32 {
	if l, ok := p.leader[h]; ok {
		return l
	}
	l := p.vals.LeaderOf(h, 0, p.Skipped(h))
	p.leader[h] = l
	return l
}

// builder is the validator that built the value decided at h, -1 if unreadable.
func (p *simSchedule) builder(h uint64) int64 {
	var hh, v, by, r int64
	if _, err := fmt.Sscanf(string(p.nd.decided[h-1].Value), "h=%d;v=%d;by=%d;r=%d", &hh, &v, &by, &r); err != nil {
		return -1
	}
	return by
}

// One validator is silent for the whole run. Round-robin would spend a view change at each of its
// turns (5 of 20 heights); with the schedule, only its first turn costs one, and every later
// height is decided in view 0.
func TestSimulatorSkipsASilentLeader(t *testing.T) {
	base := scenario{name: "4-silent-leader", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 20, maxDelay: 3, dup: 0.1,
		byz: "silent", maxView: 4, liveness: true, maxTicks: 5000}
	runs := max(*simRuns/20, 5)
	for _, leaders := range []bool{true, false} {
		sc := base
		sc.leaders = leaders
		for seed := int64(1); seed <= int64(runs); seed++ {
			stats := simStats{}
			if err := runSim(sc, seed, &stats); err != nil {
				t.Fatalf("leaders=%v seed %d: %v", leaders, seed, err)
			}
			// Per honest validator: at most the silent one's first turn, or — without the
			// schedule — every turn of it.
			honest := len(sc.powers) - 1
			switch {
			case leaders && stats.lateViews > honest:
				t.Fatalf("seed %d: %d heights decided in a later view by %d honest validators, want at most one height each", seed, stats.lateViews, honest)
			case !leaders && stats.lateViews < 4*honest:
				t.Fatalf("seed %d: without a schedule only %d late heights; the scenario no longer shows the cost it exists to remove", seed, stats.lateViews)
			}
		}
	}
}

// The schedule under loss, partitions and restarts: safety and liveness as in every scenario.
func TestSimulatorLeaderScheduleFaults(t *testing.T) {
	scenarios := []scenario{
		{name: "4-leaders-lossy-silent", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 12, drop: 0.1, dup: 0.1, maxDelay: 3, byz: "silent", maxView: 4, liveness: true, maxTicks: 8000},
		{name: "4-leaders-partition", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 10, drop: 0.05, dup: 0.05, maxDelay: 3, partition: 200, isolateLeader: true, liveness: true, maxTicks: 8000},
		{name: "4-leaders-restarts", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 10, drop: 0.1, dup: 0.05, maxDelay: 3, restarts: 4, liveness: true, maxTicks: 8000},
		{name: "7-leaders-equivocate", powers: []uint64{3, 1, 2, 7, 5, 6, 4}, observers: 1, heights: 8, drop: 0.05, dup: 0.05, maxDelay: 3, byz: "equivocate", maxView: 4, liveness: true, maxTicks: 8000},
	}
	for _, sc := range scenarios {
		sc.leaders = true
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runs := max(*simRuns/20, 5)
			if raceEnabled {
				runs = 5
			}
			for seed := int64(1); seed <= int64(runs); seed++ {
				if err := runSim(sc, seed, &simStats{}); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		})
	}
}
