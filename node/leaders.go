package node

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/guild-ledger/guild/consensus"
)

// Leader choice that routes around failure (issue #9). Leaders rotate every height, so a crashed
// validator would cost a view timeout and a view change at each of its turns, for ever. Instead,
// a validator that missed its turn is passed over for a while, and longer each time it misses
// again, so a crashed validator costs a few timeouts, not one every n heights.
//
// The rule is a function of block headers only, checked by every validator in CheckProposal:
//   - Header.Leader names the validator scheduled to lead view 0 of the block's height, and
//     Header.Proposer the one that built the block (a value re-proposed after a view change keeps
//     its header). Leader != Proposer means the scheduled leader missed its turn.
//   - Header.Skips is the skip table in force at the block's height. The table of height h+1
//     follows from block h's header alone (nextSkips), so a restarted node or one applying
//     synced blocks needs nothing but the last stored header. Durations are in block time (the
//     parent's Time), not heights, so a skip lasts as long whether the chain is idle or busy.
//   - Who is passed over at h (at most f = (n-1)/3 validators, those that missed last) is
//     handed to the consensus core, which asks the others first (consensus.LeaderOrder); every
//     validator still leads one view in n, so a wrong schedule costs views, never liveness, and
//     safety never looks at it.
//
// Indexes are those of the set in force at the height; when governance changes the set, the
// table starts empty (an index may name another validator there).

const (
	// leaderSkipFirst is how long, in block time, a validator that missed its turn is passed
	// over; each further miss after it was given its turn back doubles it, up to leaderSkipMax.
	leaderSkipFirst = time.Minute
	leaderSkipMax   = time.Hour
)

// LeaderSkip is one validator in a header's skip table.
type LeaderSkip struct {
	_         struct{} `cbor:",toarray"`
	Validator uint32   // index in the validator set of the block's height
	// Until is a block time (unix milliseconds): the validator is passed over at every height
	// whose parent block is older. Once it is past, the entry stays until the validator leads
	// a turn (and is dropped) or misses one (and is passed over twice as long).
	Until  int64
	Misses uint32 // turns missed in a row
}

// leaderTurn is the leader schedule of one height.
type leaderTurn struct {
	height  uint64
	skips   []LeaderSkip // the table in force: the block of height carries it
	skipped []uint32     // passed over at height, ascending
	leader  uint32       // scheduled view-0 leader
	// missed is the entry the parent block's miss added, led whether the parent's scheduled
	// leader led its turn after having been skipped; both for the log.
	missed *LeaderSkip
	led    bool
}

// scheduleLeaders computes the schedule of height from its parent's header (nil at height 1)
// and the parent block's time (genesis time at height 1). sameSet says whether the set in force
// at height is the parent's. Pure: every node computes the same from the same chain.
func scheduleLeaders(height uint64, vals consensus.ValidatorSet, parent *Header, parentTime int64, sameSet bool) leaderTurn {
	t := leaderTurn{height: height}
	if parent != nil && sameSet {
		t.skips, t.missed, t.led = nextSkips(parent, len(vals.Validators))
	}
	t.skipped = skippedAt(t.skips, parentTime, len(vals.Validators))
	t.leader = vals.LeaderOf(height, 0, t.skipped)
	return t
}

// skipFor is how long a validator is passed over after its misses-th miss in a row.
func skipFor(misses uint32) time.Duration {
	if shift := misses - 1; misses > 0 && shift < 16 {
		return min(leaderSkipFirst<<shift, leaderSkipMax)
	}
	return leaderSkipMax
}

// missedAt is the block time of the miss that set s.
func missedAt(s LeaderSkip) int64 { return s.Until - skipFor(s.Misses).Milliseconds() }

// nextSkips is the skip table of the height after parent's, for a set of n validators.
func nextSkips(parent *Header, n int) (skips []LeaderSkip, missed *LeaderSkip, led bool) {
	for _, s := range parent.Skips {
		if s.Validator != parent.Leader && int(s.Validator) < n {
			skips = append(skips, s)
		}
	}
	i := slices.IndexFunc(parent.Skips, func(s LeaderSkip) bool { return s.Validator == parent.Leader })
	switch {
	case int(parent.Leader) >= n:
	case parent.Proposer != parent.Leader:
		e := LeaderSkip{Validator: parent.Leader, Misses: 1}
		if i >= 0 {
			e.Misses = parent.Skips[i].Misses + 1
		}
		e.Until = parent.Time + skipFor(e.Misses).Milliseconds()
		skips = append(skips, e)
		missed = &e
	case i >= 0:
		led = true // it led its turn: forgiven
	}
	slices.SortFunc(skips, func(a, b LeaderSkip) int { return cmp.Compare(a.Validator, b.Validator) })
	return skips, missed, led
}

// skippedAt is who the table passes over at a height whose parent has time parentTime: those
// whose Until is later, at most f = (n-1)/3 of them, the latest miss first (then the lower
// index). Passing over more could hand view 0 of every height to a few validators, which is
// what leader rotation exists to prevent; with more than f validators down there is no quorum
// anyway. The latest miss, not the latest Until: a validator that missed its turn just now is the
// one likely down now, while one whose second miss, minutes ago, earned it a longer skip has
// likely been back since. Ordered by Until, a 10-minute chaos run passed over a validator that
// was up again and scheduled a just-killed one twice in three heights: two view timeouts.
func skippedAt(skips []LeaderSkip, parentTime int64, n int) []uint32 {
	var active []LeaderSkip
	for _, s := range skips {
		if s.Until > parentTime && int(s.Validator) < n {
			active = append(active, s)
		}
	}
	slices.SortFunc(active, func(a, b LeaderSkip) int {
		if c := cmp.Compare(missedAt(b), missedAt(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.Validator, b.Validator)
	})
	active = active[:min(len(active), (n-1)/3)]
	out := make([]uint32, len(active))
	for i, s := range active {
		out[i] = s.Validator
	}
	slices.Sort(out)
	return out
}

// Skipped implements consensus.LeaderSchedule for the core: who is passed over at height.
func (n *Node) Skipped(height uint64) []uint32 { return n.leadersAt(height).skipped }

// leadersAt is the leader schedule of height, which is the next one (blocks.Height()+1): it
// follows from the tip's header, and is computed once per height. Runs on the loop, or before
// it starts.
func (n *Node) leadersAt(height uint64) leaderTurn {
	if n.turn.height == height && height != 0 {
		return n.turn
	}
	vals := n.validatorsAt(height)
	if height != n.blocks.Height()+1 || (height > 1 && n.lastHeader.Height != height-1) {
		// Nothing asks about another height (CheckProposal refuses it first); answer
		// round-robin rather than guess from the wrong parent.
		n.log.Error("leader schedule asked for a height that does not follow the tip; this is a bug",
			"height", height, "tip", n.blocks.Height())
		return leaderTurn{height: height, leader: vals.Leader(height, 0)}
	}
	var parent *Header
	if height > 1 {
		parent = &n.lastHeader
	}
	same := height > 1 && sameValidators(vals, n.validatorsAt(height-1))
	t := scheduleLeaders(height, vals, parent, n.lastTime, same)
	n.turn = t
	skipped := slices.Clone(t.skipped)
	n.skippedNow.Store(&skipped)
	n.metrics.leadersSkipped.Set(float64(len(t.skipped)))
	if t.missed != nil {
		n.metrics.leaderSkips.Inc()
		name := n.validatorName(height-1, t.missed.Validator)
		until := time.UnixMilli(t.missed.Until).UTC()
		level := slog.LevelWarn
		if until.Before(time.Now()) {
			level = slog.LevelInfo // history, met while syncing or replaying: nothing to check now
		}
		n.log.Log(context.Background(), level, fmt.Sprintf("validator %s missed its turn at height %d; skipped as leader until block time %s; check its node",
			name, height-1, until.Format(time.RFC3339)),
			"validator", name, "index", t.missed.Validator, "height", height-1, "until", until,
			"for", time.Duration(t.missed.Until-parent.Time)*time.Millisecond, "misses_in_a_row", t.missed.Misses)
	}
	if t.led {
		n.log.Info("validator led its turn again; no longer skipped as leader",
			"validator", n.validatorName(height-1, parent.Leader), "height", height-1)
	}
	return t
}
