package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/consensus"
)

// Where a height's time goes, as this node sees it (issue #10): guild_height_phase_seconds{phase}
// observes, per height, the time from the previous milestone this node reached to the next one.
// Summed, the phases of a height are the time from entering it to having committed it, so the
// biggest mean is the biggest wait. A milestone this node does not reach at a height (a leader
// fetches nothing; a node that decides from others' commits may never prepare) is skipped, and
// the next one carries its time.

// Phases, in the order a height reaches them.
const (
	// phaseProposal: from entering the height to the leader's proposal reaching the loop.
	phaseProposal = "proposal"
	// phaseWait: the leader, from entering the height to having transactions to propose (at
	// most empty_block_ms).
	phaseWait = "wait"
	// phaseBuild: the leader builds its block: takes transactions from the mempool, executes
	// them, leaves out the failing ones, encodes it and signs the PRE-PREPARE.
	phaseBuild = "build"
	// phaseFetch: a proposal by reference is rebuilt off the loop: missing transactions
	// fetched and verified.
	phaseFetch = "fetch"
	// phaseCheck: the core checks the proposal (header, dry-run execution) until this node
	// signs its PREPARE.
	phaseCheck = "check"
	// phasePrepare: until a quorum of PREPAREs, when this node signs its COMMIT.
	phasePrepare = "prepare"
	// phaseCommit: until a quorum of COMMITs decides the block.
	phaseCommit = "commit"
	// phaseStore: the block and its certificate stored, the WAL reset.
	phaseStore = "store"
	// phaseExecute: the block's state written (its dry-run execution reused when there is one).
	phaseExecute = "execute"
	// phaseResults: the mempool settled and governance followed, up to the next height. The
	// block's results and indexes are written later, once the next height has started (the
	// leader's proposal sent): recordResults, in no phase of either height.
	phaseResults = "results"
)

var heightPhaseNames = []string{phaseProposal, phaseWait, phaseBuild, phaseFetch, phaseCheck, phasePrepare,
	phaseCommit, phaseStore, phaseExecute, phaseResults}

func newHeightPhaseHistogram() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "guild_height_phase_seconds",
		Help: "Per height, time spent in each phase as this node saw it, from the previous milestone it reached: " +
			"proposal (waiting for the leader's proposal), wait and build (the leader: waiting for transactions to propose, building the block), fetch (rebuilding a proposal by reference), " +
			"check (checking and dry-running it), prepare and commit (waiting for the quorums), store, execute, results (committing it).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"phase"})
}

// heightPhases times the milestones of the height being decided. Owned by the loop.
type heightPhases struct {
	hist   *prometheus.HistogramVec
	height uint64
	last   time.Time // the last milestone reached at height
	seen   map[string]bool
	// ahead are the milestones the next height reached while this one was still being
	// committed (its proposal arrived early): they take no time of their own there.
	ahead []string
}

// enter starts timing height, unless it is the one being timed.
func (p *heightPhases) enter(height uint64, now time.Time) {
	if height == p.height && !p.last.IsZero() {
		return
	}
	next := height == p.height+1
	p.height, p.last = height, now
	clear(p.seen)
	ahead := p.ahead
	p.ahead = p.ahead[:0]
	if next {
		for _, phase := range ahead {
			p.mark(height, phase, now)
		}
	}
}

// mark records that height reached the end of phase: the time since the last milestone, once
// per height and phase.
func (p *heightPhases) mark(height uint64, phase string, now time.Time) {
	if height == p.height+1 && !p.last.IsZero() && len(p.ahead) < len(heightPhaseNames) {
		p.ahead = append(p.ahead, phase)
		return
	}
	if height != p.height || p.last.IsZero() || p.seen[phase] {
		return
	}
	if p.seen == nil {
		p.seen = make(map[string]bool, len(heightPhaseNames))
	}
	p.seen[phase] = true
	if p.hist != nil {
		p.hist.WithLabelValues(phase).Observe(now.Sub(p.last).Seconds())
	}
	p.last = now
}

// sent marks the milestones this node's own signed messages show: its PREPARE follows the
// proposal's check, its COMMIT a quorum of PREPAREs.
func (p *heightPhases) sent(self int, msgs []consensus.Message, now time.Time) {
	for i := range msgs {
		if self < 0 || msgs[i].From != uint32(self) {
			continue
		}
		switch m := &msgs[i]; m.Type {
		case consensus.MsgPrepare:
			p.mark(m.Height, phaseCheck, now)
		case consensus.MsgCommit:
			p.mark(m.Height, phasePrepare, now)
		}
	}
}
