package testnet

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Where a height's time went in a bench run: node 1's guild_height_phase_seconds (the node
// package's phases.go), read before and after the load, as milliseconds per height.

// benchPhases is the order the phases are printed in: the order a height reaches them.
var benchPhases = []string{"proposal", "wait", "build", "fetch", "check", "prepare", "commit", "store", "execute", "results"}

// metricsText is a node's /metrics, "" if it cannot be read.
func metricsText(ctx context.Context, apiURL string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	text, err := fetchMetrics(ctx, apiURL)
	if err != nil {
		return ""
	}
	return text
}

// phaseTotals reads, from a /metrics text, the seconds each height phase took in all and the
// height.
func phaseTotals(text string) (map[string]float64, float64) {
	sums := map[string]float64{}
	height := 0.0
	for line := range strings.Lines(text) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		if name == "guild_height" {
			height = v
		}
		if rest, ok := strings.CutPrefix(name, `guild_height_phase_seconds_sum{phase="`); ok {
			sums[strings.TrimSuffix(rest, `"}`)] = v
		}
	}
	return sums, height
}

// heightPhases is the milliseconds per height of each phase between two /metrics texts, nil if
// no height was committed between them or the node has no phases.
func heightPhases(before, after string) map[string]float64 {
	s0, h0 := phaseTotals(before)
	s1, h1 := phaseTotals(after)
	if h1 <= h0 || len(s1) == 0 {
		return nil
	}
	out := make(map[string]float64, len(s1))
	for phase, sum := range s1 {
		out[phase] = 1000 * (sum - s0[phase]) / (h1 - h0)
	}
	return out
}

// writePhases prints a row's phases on one line.
func writePhases(w io.Writer, row BenchRow) {
	if len(row.Phases) == 0 {
		return
	}
	var parts []string
	total := 0.0
	for _, p := range benchPhases {
		if ms, ok := row.Phases[p]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", p, ms))
			total += ms
		}
	}
	fmt.Fprintf(w, "%d tx/s, node1 ms per height: %s (sum %.0f)\n", row.Offered, strings.Join(parts, ", "), total)
	if l := row.Load; l != nil {
		fmt.Fprintf(w, "%d tx/s, blocks seen after their proposal p50 %.0f ms, p99 %.0f ms; load generator CPU %.0f %%\n",
			row.Offered, millis(l.SeenAfterProposal.P50), millis(l.SeenAfterProposal.P99), row.Generator.CPUPercent)
	}
}
