package consensus

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand"
	"testing"
)

// Evidence end to end inside consensus: over seeded runs, the leader of height 1 equivocates with
// the simulator's own Byzantine behaviour (different proposals to different validators, and a
// second signed vote for every vote). Every honest validator must surface Ready.Evidence naming
// it, and no one else; every piece must verify on its own; no node may hand out one slot twice.
func TestSimulatedEquivocationSurfacesEvidence(t *testing.T) {
	runs := max(*simRuns/20, 10)
	if raceEnabled {
		runs = 10
	}
	first := int64(1)
	if *simSeed >= 0 {
		first, runs = *simSeed, 1
	}
	caught := 0
	for seed := first; seed < first+int64(runs); seed++ {
		n, err := runEvidenceSim(seed)
		if err != nil {
			t.Fatalf("seed %d: %v\nreproduce: go test ./consensus -run 'TestSimulatedEquivocationSurfacesEvidence$' -sim.seed=%d -v", seed, err, seed)
		}
		caught += n
	}
	t.Logf("%d runs, %d pieces of evidence surfaced by honest validators", runs, caught)
}

// runEvidenceSim runs 4 validators over a reordering network until the honest ones decide 4
// heights, and returns how much evidence they surfaced.
func runEvidenceSim(seed int64) (int, error) {
	const n, heights = 4, 4
	vals := equalSet(n)
	byz := int(vals.Leader(1, 0))
	// The Byzantine behaviours need only these fields of a sim.
	s := &sim{sc: scenario{powers: make([]uint64, n)}, rng: rand.New(rand.NewSource(seed)), vals: vals, byz: byz,
		nodes: make([]*simNode, n), forged: map[string]Message{}, sigs: newSigCache()}
	cores := make([]*Core, n)
	apps := make([]*testApp, n)
	seen := make([]map[EvidenceSlot]bool, n)
	for i := range cores {
		apps[i] = &testApp{}
		c, err := New(Config{ChainID: testChain, Validators: vals, Key: keyFor(i), App: apps[i], Height: 1,
			RetransmitTicks: 8, ViewTimeoutTicks: 40, sigs: s.sigs})
		if err != nil {
			return 0, err
		}
		cores[i], seen[i] = c, map[EvidenceSlot]bool{}
	}
	var (
		q     queue
		seq   uint64
		now   uint64
		total int
	)
	push := func(from int, r routed) {
		for to := range cores {
			if to != from && (r.to < 0 || r.to == to) {
				seq++
				heap.Push(&q, envelope{at: now + 1 + uint64(s.rng.Intn(3)), seq: seq, to: to, m: r.m})
			}
		}
	}
	var drain func(i int) error
	drain = func(i int) error {
		c := cores[i]
		for c.HasReady() {
			rd := c.Ready()
			for _, e := range rd.Evidence {
				if i == byz {
					continue
				}
				if err := e.Verify(testChain, &vals); err != nil {
					return fmt.Errorf("node %d surfaced evidence that does not verify: %w", i, err)
				}
				if int(e.First.From) != byz {
					return fmt.Errorf("node %d surfaced evidence against honest validator %d", i, e.First.From)
				}
				if seen[i][e.Slot()] {
					return fmt.Errorf("node %d surfaced slot %+v twice", i, e.Slot())
				}
				seen[i][e.Slot()] = true
				total++
			}
			for _, m := range rd.Messages {
				out := []routed{{-1, m}}
				if i == byz {
					out = equivocateLeader(s, m)
				}
				for _, r := range out {
					push(i, r)
				}
			}
			for _, d := range rd.Committed {
				apps[i].applied = d.Height
			}
			propose := rd.Propose
			c.Advance()
			if propose != nil {
				err := c.Propose(propose.Height, propose.View, valueFor(propose.Height, fmt.Sprintf("by=%d;v=%d", i, propose.View)))
				if err != nil && !errors.Is(err, ErrNotRequested) && !errors.Is(err, ErrStaleHeight) && !errors.Is(err, ErrWrongView) {
					return fmt.Errorf("node %d: Propose: %w", i, err)
				}
			}
		}
		return nil
	}
	done := func() bool {
		for i, a := range apps {
			if i != byz && a.applied < heights {
				return false
			}
		}
		return true
	}
	for now = 0; now < 3000 && !done(); now++ {
		for len(q) > 0 && q[0].at <= now {
			e := heap.Pop(&q).(envelope)
			_ = cores[e.to].Step(e.m) // refusals are the point of the exercise
			if err := drain(e.to); err != nil {
				return total, err
			}
		}
		for i, c := range cores {
			c.Tick()
			if err := drain(i); err != nil {
				return total, err
			}
		}
	}
	if !done() {
		return total, fmt.Errorf("liveness: honest validators did not decide %d heights", heights)
	}
	for i := range cores {
		if i != byz && len(seen[i]) == 0 {
			return total, fmt.Errorf("honest validator %d surfaced no evidence against equivocating validator %d", i, byz)
		}
	}
	return total, nil
}
