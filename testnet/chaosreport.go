package testnet

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteText prints the chaos report for a person: the faults as they happened, the load, the
// liveness figures, and the invariants.
func (r *ChaosReport) WriteText(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "== chaos run: seed %d, %s at %d tx/s, a fault (%s) every %s for %s, at most %d down at once\n",
		r.Seed, o.Duration, o.Rate, joinFaults(o.Faults), o.Interval, o.Downtime, o.MaxDown)
	if o.Byzantine != "" {
		fmt.Fprintf(w, "   hostile: %s runs --byzantine %s from %s on\n", r.Hostile, o.Byzantine, r.HostileAt.Sub(r.Start).Round(time.Second))
	}
	fmt.Fprintf(w, "   repeat with: guild testnet chaos --seed %d --duration %s --rate %d --interval %s --downtime %s --faults %s\n",
		r.Seed, o.Duration, o.Rate, o.Interval, o.Downtime, joinFaults(o.Faults))

	fmt.Fprintf(w, "\n-- faults\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "AT\tNODE\tFAULT\tNEXT COMMIT\tNEXT BLOCK\tDOWN\tTIP AT RETURN\tAT THE TIP AFTER\tNOTE\n")
	for _, f := range r.Faults {
		down, caught := "-", "-"
		if !f.Back.IsZero() {
			down = f.Back.Sub(f.Start).Round(100 * time.Millisecond).String()
			caught = "not within " + catchUpWait.String()
			if f.CaughtUp >= 0 {
				caught = f.CaughtUp.Round(100 * time.Millisecond).String()
			}
		}
		note := f.Note
		if f.Err != "" {
			note = "ERROR " + f.Err
		}
		next, commit := "-", "-"
		if f.NextBlock >= 0 {
			next = f.NextBlock.Round(10 * time.Millisecond).String()
		}
		if f.NextCommit >= 0 {
			commit = f.NextCommit.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", f.At, f.Name, f.Fault, commit, next, down, f.Tip, caught, note)
	}
	tw.Flush()
	if len(r.Faults) == 0 {
		fmt.Fprintln(w, "(none)")
	}

	fmt.Fprintf(w, "\n-- load\n")
	if r.Load != nil {
		r.Load.WriteText(w)
	}
	if r.LoadErr != "" {
		fmt.Fprintf(w, "load ended with: %s\n", r.LoadErr)
	}

	if c := r.Check; c != nil {
		fmt.Fprintf(w, "\n-- liveness (block header times, from the start of the run)\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if c.GapEnd == 0 {
			fmt.Fprintf(tw, "longest time without a block\t%s (no block from then to the end of the run: the chain stopped)\n", c.LongestGap.Round(time.Millisecond))
		} else {
			fmt.Fprintf(tw, "longest time without a block\t%s (before height %d)\n", c.LongestGap.Round(time.Millisecond), c.GapEnd)
		}
		var worst time.Duration = -1
		caught := 0
		for _, f := range r.Faults {
			if f.CaughtUp >= 0 {
				caught++
				worst = max(worst, f.CaughtUp)
			}
		}
		if len(r.Faults) > 0 {
			fmt.Fprintf(tw, "nodes back at the tip\t%d of %d, slowest %s\n", caught, len(r.Faults), worst.Round(100*time.Millisecond))
		}
		label := "whole run"
		if !r.HostileAt.IsZero() {
			label = "healthy half"
		}
		writeRates(tw, label, c.Before)
		if !r.HostileAt.IsZero() {
			writeRates(tw, "hostile half", c.After)
			if r.Load != nil && r.Load.LatencyAfter.Count > 0 {
				l := r.Load.LatencyAfter
				fmt.Fprintf(tw, "finality, hostile half\tp50 %s  p90 %s  p99 %s  max %s (%d transactions accepted from then on)\n",
					roundMs(l.P50), roundMs(l.P90), roundMs(l.P99), roundMs(l.Max), l.Count)
			}
			if r.Load != nil && r.Load.LatencyAfterSkip.Count > 0 {
				l := r.Load.LatencyAfterSkip
				fmt.Fprintf(tw, "finality, once skipped\tp50 %s  p90 %s  p99 %s  max %s (%d transactions accepted after validator index %d was first passed over as leader, at +%.1fs)\n",
					roundMs(l.P50), roundMs(l.P90), roundMs(l.P99), roundMs(l.Max), l.Count, *r.Load.SkippedValidator, r.Load.SkipAt.Sub(r.Start).Seconds())
			}
		}
		fmt.Fprintf(tw, "heights\t%v: all nodes compared up to %d, the highest chain checked to %d\n", c.Heights, c.Checked, c.Top)
		tw.Flush()

		fmt.Fprintf(w, "\n-- invariants\n")
		c.WriteText(w)
		if c.OK() {
			fmt.Fprintf(w, "\nOK: no invariant violated\n")
		} else {
			fmt.Fprintf(w, "\nFAIL: %d violations\n", c.Violations())
		}
	}
}

func writeRates(tw io.Writer, label string, r Rates) {
	fmt.Fprintf(tw, "%s\t%d blocks, %d txs in %.1fs: %.2f blocks/s, %.0f tx/s\n",
		label, r.Blocks, r.Txs, r.Seconds(), r.BlocksPerSec(), r.TxsPerSec())
}
