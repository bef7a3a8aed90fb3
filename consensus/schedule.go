package consensus

// Leader choice that routes around failure (issue #9). Round-robin alone makes a crashed
// validator cost a view timeout at every one of its turns, for ever. The node knows, from the
// certified chain, which validators recently failed to propose; it tells the core through a
// LeaderSchedule, and the core asks the others first. The schedule only reorders who leads:
// every validator still leads one view in n at every height, so liveness never rests on the
// schedule being right, and safety never looks at it (quorums do not care who proposed).

// LeaderSchedule says which validators are passed over as leaders at a height.
type LeaderSchedule interface {
	// Skipped returns the indexes, in the height's validator set, of the validators whose turns
	// to lead height go to the others first. The core calls it when it opens height, after every
	// block below height is applied (at New, and at the Advance after the last commit), and keeps
	// the answer for the height. It must be a deterministic function of the certified chain
	// below height, the same on every honest node: nodes that disagree disagree on who leads,
	// which costs view changes (liveness), never safety. Indexes out of range and repeats are
	// ignored.
	Skipped(height uint64) []uint32
}

// LeaderOrder is the order in which the validators lead the views of height when the validators
// in skipped are passed over: round-robin from Leader(height, 0), the validators not skipped
// first, then the skipped ones in the same rotation. View v is led by order[v mod n]. With
// nothing skipped, order[v] is Leader(height, v). If every validator is skipped, the order is
// plain round-robin. nil for an empty set.
func (vs ValidatorSet) LeaderOrder(height uint64, skipped []uint32) []uint32 {
	n := len(vs.Validators)
	if n == 0 {
		return nil
	}
	skip := make([]bool, n)
	for _, i := range skipped {
		if uint64(i) < uint64(n) {
			skip[i] = true
		}
	}
	base := int(height % uint64(n))
	order := make([]uint32, 0, n)
	for _, wantSkipped := range []bool{false, true} {
		for k := range n {
			if i := (base + k) % n; skip[i] == wantSkipped {
				order = append(order, uint32(i))
			}
		}
	}
	return order
}

// LeaderOf is the leader of (height, view) when the validators in skipped are passed over; see
// LeaderOrder. 0 for an empty set.
func (vs ValidatorSet) LeaderOf(height, view uint64, skipped []uint32) uint32 {
	order := vs.LeaderOrder(height, skipped)
	if len(order) == 0 {
		return 0
	}
	return order[view%uint64(len(order))]
}

// openLeaders asks the schedule for the order in which validators lead c.height, once per
// height, and names the current round's leader by it. Precondition: every height below c.height
// is applied (the schedule is a function of them).
func (c *Core) openLeaders() {
	if c.leadersFor == c.height && c.leaders != nil {
		return
	}
	c.leaders, c.leadersFor = nil, c.height
	if c.schedule != nil {
		c.leaders = c.vals.LeaderOrder(c.height, c.schedule.Skipped(c.height))
	}
	c.round.leader = c.leaderOf(c.round.view)
}

// leaderOf is the leader of (c.height, view): by the schedule's order once the height is open,
// round-robin before that or without a schedule.
func (c *Core) leaderOf(view uint64) uint32 {
	if len(c.leaders) == 0 {
		return c.vals.Leader(c.height, view)
	}
	return c.leaders[view%uint64(len(c.leaders))]
}
