package node

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/guild-ledger/guild/consensus"
)

// phaseObserved is what guild_height_phase_seconds holds for phase: observations and their sum.
func phaseObserved(t *testing.T, h *prometheus.HistogramVec, phase string) (uint64, time.Duration) {
	t.Helper()
	var m dto.Metric
	if err := h.WithLabelValues(phase).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
}

// Each phase of a height is the time from the milestone before it that the node reached; a
// milestone is counted once per height, a skipped one leaves its time to the next, and a
// proposal that arrives for the next height while this one is being committed costs that height
// no proposal wait. Times are handed in: no clock is read.
func TestHeightPhases(t *testing.T) {
	p := heightPhases{hist: newHeightPhaseHistogram()}
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	const self = 2

	p.mark(5, phaseProposal, at(1)) // before the first height entered: nothing to time from
	p.enter(5, at(0))
	p.mark(5, phaseProposal, at(10))
	p.mark(5, phaseProposal, at(15)) // a second copy of the proposal
	p.sent(self, []consensus.Message{
		{Type: consensus.MsgPrepare, Height: 5, From: 1}, // another validator's, relayed
		{Type: consensus.MsgPrepare, Height: 5, From: self},
	}, at(40))
	// No COMMIT of its own: the node decided from others' commits, so commit carries prepare's time.
	p.mark(6, phaseProposal, at(50)) // the next height's proposal, early
	p.mark(5, phaseCommit, at(70))
	p.mark(5, phaseStore, at(75))
	p.mark(5, phaseExecute, at(80))
	p.mark(5, phaseResults, at(90))
	p.enter(6, at(92))
	p.enter(6, at(95)) // entering the height being timed again changes nothing
	p.sent(self, []consensus.Message{{Type: consensus.MsgPrepare, Height: 6, From: self}}, at(100))

	for _, c := range []struct {
		phase string
		count uint64
		sum   time.Duration
	}{
		{phaseProposal, 2, 10 * time.Millisecond}, // 10 ms at height 5, 0 at 6
		{phaseCheck, 2, 30*time.Millisecond + 8*time.Millisecond},
		{phasePrepare, 0, 0},
		{phaseCommit, 1, 30 * time.Millisecond},
		{phaseStore, 1, 5 * time.Millisecond},
		{phaseExecute, 1, 5 * time.Millisecond},
		{phaseResults, 1, 10 * time.Millisecond},
		{phaseFetch, 0, 0},
	} {
		count, sum := phaseObserved(t, p.hist, c.phase)
		if count != c.count || (sum-c.sum).Abs() > time.Microsecond {
			t.Errorf("phase %s: %d observations summing to %v, want %d summing to %v", c.phase, count, sum, c.count, c.sum)
		}
	}
}
