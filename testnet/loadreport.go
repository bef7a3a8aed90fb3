package testnet

import (
	"encoding/json"
	"fmt"
	"github.com/guild-ledger/guild/state"
	"io"
	"maps"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// LoadReport is what RunLoad measured.
type LoadReport struct {
	Nodes      []string `json:"nodes"` // the APIs transactions went to, round-robin by sender
	Follow     string   `json:"follow"`
	TargetRate int      `json:"target_rate"`
	Accounts   int      `json:"accounts"`
	Workers    int      `json:"workers"`

	// Submission. Submitted counts requests made; each ends Accepted, Rejected or Errors.
	Submitted int `json:"submitted"`
	Accepted  int `json:"accepted"`  // 2xx: in a mempool
	Rejected  int `json:"rejected"`  // 4xx other than 429: the API refused it
	Errors    int `json:"errors"`    // no answer, or a 5xx other than 503
	Throttled int `json:"throttled"` // 429 or 503 answers; the same tx was retried
	// RefusedBy splits Throttled by reason: the node's error code for a refused request
	// (overloaded: 503 with Retry-After, which the generator waits out for that node), busy for
	// a transaction of a taken request, nonce_too_far while the chain catches up.
	RefusedBy      map[string]int `json:"refused_by,omitempty"`
	GaveUp         int            `json:"gave_up"`     // still refused Stragglers after the window: not retried further
	Behind         int            `json:"behind"`      // releases dropped: every worker was busy or waiting to sign
	SubmitStart    time.Time      `json:"-"`           // the first release
	SubmitWindow   time.Duration  `json:"-"`           // from the first release to the last submission
	SubmitRate     float64        `json:"submit_rate"` // Submitted / SubmitWindow
	Requests       int            `json:"requests"`    // POSTs made (a batch is one), retries included
	FirstRejection string         `json:"first_rejection,omitempty"`

	// Finality, as seen by following the blocks of the Follow node.
	Finalized     int          `json:"finalized"`       // submitted txs in a block, executed without error
	FailedInBlock int          `json:"failed_in_block"` // submitted txs in a block whose execution failed
	NotFinalized  int          `json:"not_finalized"`   // accepted, but not seen in a block by the end
	NotSeen       []state.Hash `json:"-"`               // those transactions, but for BehindRefused
	// BehindRefused counts accepted transactions not seen committed that wait behind a nonce of
	// their sender the API refused (4xx): a gap only the client can fill, by sending it again.
	BehindRefused int `json:"behind_refused,omitempty"`
	// BehindGaveUp counts accepted transactions not seen committed that wait behind a nonce of
	// their sender the generator gave up offering while still refused (503/429 after the window,
	// or its node down): a gap the client left, not counted in NotFinalized.
	BehindGaveUp  int           `json:"behind_gave_up,omitempty"`
	Window        time.Duration `json:"-"`             // from the first submission to the last finalization
	FinalizedRate float64       `json:"finalized_tps"` // Finalized / Window
	// SustainedRate counts only what was finalized while submissions went on: the backlog that
	// drains after the window does not raise it.
	SustainedRate  float64        `json:"finalized_in_window_tps"`
	Blocks         int            `json:"blocks"` // blocks observed within Window
	AvgTxsPerBlock float64        `json:"avg_txs_per_block"`
	Latency        LatencySummary `json:"latency_ms"` // accepted by a node → block observed
	// LatencyBySlice is Latency by when the transactions were accepted, a slice every
	// latencySlice from the first submission (what was accepted in a slice and finalized later
	// counts in it).
	LatencyBySlice []LatencySlice `json:"latency_by_slice,omitempty"`
	// SeenAfterProposal is, per block, how long after its header time (the leader's clock when
	// it proposed) the generator saw it: a block's consensus plus the follower's own delay, which
	// Latency includes. Seconds here mean the follower, not the chain, was behind.
	SeenAfterProposal LatencySummary `json:"seen_after_proposal_ms"`
	// LatencyAfter is Latency of the transactions accepted from LoadOptions.SplitAt on (zero
	// without a split).
	LatencyAfter LatencySummary `json:"latency_after_split_ms"`
	// SkipAt is when, from the split on, a block first passed a validator (SkippedValidator, by
	// index) over as leader, and LatencyAfterSkip the latencies of the transactions accepted
	// from then on; unset when none was passed over.
	SkipAt           time.Time      `json:"-"`
	SkippedValidator *uint32        `json:"skipped_validator,omitempty"`
	LatencyAfterSkip LatencySummary `json:"latency_after_skip_ms"`
	// Slowest names the slowest finalized transactions, slowest first: where a long tail came
	// from (which node took them, and when).
	Slowest []SlowTx `json:"slowest,omitempty"`
}

// SlowTx is one slow finalized transaction.
type SlowTx struct {
	Hash       state.Hash    `json:"hash"`
	Node       string        `json:"node"` // the node that accepted it
	AcceptedAt time.Time     `json:"-"`
	After      time.Duration `json:"-"` // AcceptedAt, from the first submission
	Height     uint64        `json:"height"`
	Latency    time.Duration `json:"-"`
}

// MarshalJSON writes the times in seconds and milliseconds.
func (s SlowTx) MarshalJSON() ([]byte, error) {
	type plain SlowTx
	return json.Marshal(struct {
		plain
		AfterSeconds float64 `json:"accepted_after_s"`
		LatencyMs    float64 `json:"latency_ms"`
	}{plain(s), math.Round(s.After.Seconds()*1e3) / 1e3, math.Round(float64(s.Latency)/1e3) / 1e3})
}

// MarshalJSON adds the windows in seconds.
func (r *LoadReport) MarshalJSON() ([]byte, error) {
	type plain LoadReport
	return json.Marshal(struct {
		*plain
		SubmitSeconds float64 `json:"submit_window_s"`
		WindowSeconds float64 `json:"window_s"`
	}{(*plain)(r), r.SubmitWindow.Seconds(), r.Window.Seconds()})
}

// latencySlice is the width of LoadReport.LatencyBySlice's slices; a longer load's latencies past
// maxLatencySlices of them are in Latency only.
const (
	latencySlice     = 10 * time.Second
	maxLatencySlices = 360
)

// LatencySlice is the latencies of the transactions accepted from From (since the first
// submission) for latencySlice.
type LatencySlice struct {
	From time.Duration
	LatencySummary
}

// MarshalJSON writes From in seconds beside the summary.
func (s LatencySlice) MarshalJSON() ([]byte, error) {
	sum, err := s.LatencySummary.MarshalJSON()
	if err != nil {
		return nil, err
	}
	from := fmt.Sprintf(`{"from_s":%g,`, s.From.Seconds())
	return append([]byte(from), sum[1:]...), nil
}

// LatencySummary is the distribution of finality latencies.
type LatencySummary struct {
	Count int
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	Max   time.Duration
}

// MarshalJSON writes the latencies in milliseconds.
func (l LatencySummary) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return json.Marshal(struct {
		Count int     `json:"count"`
		P50   float64 `json:"p50"`
		P90   float64 `json:"p90"`
		P99   float64 `json:"p99"`
		Max   float64 `json:"max"`
	}{l.Count, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)})
}

// summarize sorts lat in place and takes its percentiles.
func summarize(lat []time.Duration) LatencySummary {
	if len(lat) == 0 {
		return LatencySummary{}
	}
	slices.Sort(lat)
	return LatencySummary{
		Count: len(lat),
		P50:   percentile(lat, 50),
		P90:   percentile(lat, 90),
		P99:   percentile(lat, 99),
		Max:   lat[len(lat)-1],
	}
}

// percentile is the nearest-rank p-th percentile of sorted: the smallest value with at least p%
// of the values at or below it. It never interpolates, so it is always a latency that happened.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// WriteText prints the report for a person.
func (r *LoadReport) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "target rate\t%d tx/s, %d accounts, %d workers, %d nodes\n", r.TargetRate, r.Accounts, r.Workers, len(r.Nodes))
	fmt.Fprintf(tw, "submitted\t%d in %.1fs = %.0f tx/s\n", r.Submitted, r.SubmitWindow.Seconds(), r.SubmitRate)
	if r.Requests > 0 {
		fmt.Fprintf(tw, "  requests\t%d, %.1f transactions each (retries included)\n", r.Requests, float64(r.Submitted)/float64(r.Requests))
	}
	fmt.Fprintf(tw, "  accepted\t%d\n", r.Accepted)
	fmt.Fprintf(tw, "  rejected by API (4xx)\t%d\n", r.Rejected)
	if r.FirstRejection != "" {
		fmt.Fprintf(tw, "  first rejection\t%s\n", r.FirstRejection)
	}
	fmt.Fprintf(tw, "  errors\t%d\n", r.Errors)
	fmt.Fprintf(tw, "  throttled (429/503, retried)\t%d\n", r.Throttled)
	for _, reason := range slices.Sorted(maps.Keys(r.RefusedBy)) {
		fmt.Fprintf(tw, "    %s\t%d\n", reason, r.RefusedBy[reason])
	}
	if r.GaveUp > 0 {
		fmt.Fprintf(tw, "  gave up (still refused after the window)\t%d\n", r.GaveUp)
	}
	if r.Behind > 0 {
		fmt.Fprintf(tw, "  behind schedule\t%d releases dropped: the submitters could not keep up with the target\n", r.Behind)
	}
	fmt.Fprintf(tw, "finalized\t%d (%d more failed in their block)\n", r.Finalized, r.FailedInBlock)
	fmt.Fprintf(tw, "accepted but not finalized\t%d\n", r.NotFinalized)
	if r.BehindRefused > 0 {
		fmt.Fprintf(tw, "  behind a nonce the API refused\t%d\n", r.BehindRefused)
	}
	if r.BehindGaveUp > 0 {
		fmt.Fprintf(tw, "  behind a nonce given up\t%d (not counted above: the generator stopped offering an earlier nonce of their sender)\n", r.BehindGaveUp)
	}
	fmt.Fprintf(tw, "finalized tx/s\t%.0f over %.1fs (first submit to last finalization); %.0f while submitting\n", r.FinalizedRate, r.Window.Seconds(), r.SustainedRate)
	fmt.Fprintf(tw, "blocks\t%d, %.1f txs/block\n", r.Blocks, r.AvgTxsPerBlock)
	l := r.Latency
	fmt.Fprintf(tw, "finality latency (from acceptance)\tp50 %s  p90 %s  p99 %s  max %s\n", roundMs(l.P50), roundMs(l.P90), roundMs(l.P99), roundMs(l.Max))
	if len(r.LatencyBySlice) > 1 {
		fmt.Fprintf(tw, "  by acceptance time\t")
		for i, s := range r.LatencyBySlice {
			if i > 0 {
				fmt.Fprint(tw, ";  ")
			}
			if s.Count == 0 {
				fmt.Fprintf(tw, "%s+ none", s.From)
				continue
			}
			fmt.Fprintf(tw, "%s+ p50 %s p99 %s", s.From, roundMs(s.P50), roundMs(s.P99))
		}
		fmt.Fprintln(tw)
	}
	l = r.SeenAfterProposal
	fmt.Fprintf(tw, "blocks seen after proposal\tp50 %s  p99 %s  max %s (consensus, plus the follower's own delay)\n", roundMs(l.P50), roundMs(l.P99), roundMs(l.Max))
	for i, s := range r.Slowest {
		label := ""
		if i == 0 {
			label = "slowest"
		}
		fmt.Fprintf(tw, "  %s\t%s  %s accepted by %s %.1fs into the load, finalized at height %d\n",
			label, roundMs(s.Latency), s.Hash.String()[:12], s.Node, s.After.Seconds(), s.Height)
	}
	tw.Flush()
}

func roundMs(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}
