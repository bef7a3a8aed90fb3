package p2p

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// A process that did not run for a while (SIGSTOP, a suspended VM, a CPU starved for seconds)
// reads at once what its peers sent meanwhile. Their messages then arrive in one burst, far over
// the rate they were sent at, and charging that to them as flooding cut a node off from every
// honest peer the moment it came back: in a 10-minute chaos run a node resumed from a 10 s pause
// scored its three peers below DisconnectScore, refused them for the cool-off, and the chain
// went 20.9 s without a block. The clock watch notices such gaps in its own ticks; while one is
// recent, rate limits still drop what is over them (the validation queue stays bounded) but the
// excess costs its sender no score.
//
// A peer cannot cause this forgiveness except by starving the node of CPU for seconds, and then
// it buys only what the limits already drop; invalid messages are scored as always.
const (
	clockTick      = 100 * time.Millisecond
	freezeMin      = time.Second      // a tick this late means the process was not running
	freezeGraceMin = 10 * time.Second // forgiveness after a freeze: 2 × its length, within these
	freezeGraceMax = time.Minute
)

type clockWatch struct {
	last       atomic.Int64 // unix nanoseconds of the last tick
	graceUntil atomic.Int64 // unix nanoseconds until which rate excess is forgiven
	freezes    atomic.Uint64
	log        *slog.Logger
}

func newClockWatch(log *slog.Logger, now time.Time) *clockWatch {
	c := &clockWatch{log: log}
	c.last.Store(now.UnixNano())
	return c
}

// run ticks until ctx ends.
func (c *clockWatch) run(ctx context.Context) {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Not the tick's own time: after a freeze the ticker hands over one stale tick.
			c.tick(time.Now())
		}
	}
}

func (c *clockWatch) tick(now time.Time) {
	gap := time.Duration(now.UnixNano() - c.last.Swap(now.UnixNano()))
	if gap < freezeMin {
		return
	}
	grace := min(max(2*gap, freezeGraceMin), freezeGraceMax)
	c.graceUntil.Store(now.Add(grace).UnixNano())
	c.freezes.Add(1)
	c.log.Warn("this process did not run for a while (paused, suspended or starved of CPU): "+
		"peers' backlog is not charged to their gossip score meanwhile; if it recurs, give the node more CPU",
		"stalled", gap.Round(time.Millisecond), "forgiven_for", grace.Round(time.Millisecond))
}

// forgiving reports whether rate excess seen now should cost its sender nothing: a freeze
// ended recently, or one is ending right now and the next tick has not run yet.
func (c *clockWatch) forgiving(now time.Time) bool {
	n := now.UnixNano()
	return n-c.last.Load() >= int64(freezeMin) || n < c.graceUntil.Load()
}
