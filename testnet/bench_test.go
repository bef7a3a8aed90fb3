package testnet

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseRates(t *testing.T) {
	got, err := ParseRates("1000, 2000,16000")
	if err != nil || len(got) != 3 || got[0] != 1000 || got[2] != 16000 {
		t.Fatalf("ParseRates = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1000,", "-5", "fast"} {
		if _, err := ParseRates(bad); !errors.Is(err, ErrBadRates) {
			t.Errorf("ParseRates(%q) = %v, want ErrBadRates", bad, err)
		}
	}
}

// The sampler reads this very process: its CPU time and peak RSS are known to be non-zero.
func TestUsageSamplerReadsProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	if peakRSS(pid) <= 0 {
		t.Fatal("peakRSS of this process is 0")
	}
	s := &usageSampler{nodes: []Node{{Name: "self"}}, pids: []int{pid}}
	s.sample()
	from := time.Now()
	for deadline := time.Now().Add(5 * time.Second); cpuTicks(pid) < s.ticks[0][0]+5 && time.Now().Before(deadline); {
		for i := 0; i < 1e6; i++ {
			_ = strings.Repeat("x", i%7)
		}
	}
	s.sample()
	u := s.usage(from, time.Now())
	if len(u) != 1 || u[0].CPUPercent <= 0 || u[0].PeakRSSMiB <= 0 {
		t.Fatalf("usage = %+v, want CPU and RSS above 0", u)
	}
}

func TestBenchReportText(t *testing.T) {
	r := &BenchReport{Validators: 4, Backend: "pebbledb", Duration: 20, CPUs: 2,
		Ceiling: VerifyCeiling{SingleMicros: 50, BatchSize: 1024, BatchMicros: 20},
		Rows: []BenchRow{{Offered: 4000, Finalized: 3990, P50: 120, P99: 400, Refused: 7,
			Nodes: []Usage{{Name: "node1", PeakRSSMiB: 120, CPUPercent: 80}}}}}
	var b bytes.Buffer
	r.WriteText(&b)
	for _, want := range []string{"verify ceiling", "4000", "3990", "refused", "120"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// A row's height phases are node 1's milliseconds per height between the /metrics before and
// after the load, and the table prints them in the order a height reaches them.
func TestBenchHeightPhases(t *testing.T) {
	before := "# HELP guild_height x\nguild_height 10\n" +
		`guild_height_phase_seconds_sum{phase="proposal"} 1` + "\n" +
		`guild_height_phase_seconds_count{phase="proposal"} 9` + "\n"
	after := "guild_height 30\n" +
		`guild_height_phase_seconds_sum{phase="proposal"} 3` + "\n" +
		`guild_height_phase_seconds_sum{phase="commit"} 0.4` + "\n" +
		`guild_height_phase_seconds_bucket{phase="commit",le="0.001"} 2` + "\n"
	got := heightPhases(before, after)
	if len(got) != 2 || got["proposal"] != 100 || got["commit"] != 20 {
		t.Fatalf("phases = %v, want proposal 100 and commit 20 ms per height", got)
	}
	if heightPhases(after, after) != nil || heightPhases("", "guild_height 3\n") != nil {
		t.Fatal("phases with no height committed, or none reported: want nil")
	}
	r := &BenchReport{Rows: []BenchRow{{Offered: 8000, Phases: got}}}
	var b bytes.Buffer
	r.WriteText(&b)
	if want := "8000 tx/s, node1 ms per height: proposal 100, commit 20 (sum 120)"; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
}

// A not-final count is explained by what the nodes said of each transaction afterwards, and the
// first one still not committed is named.
func TestNotFinalWhy(t *testing.T) {
	got := notFinalWhy(4697, 4600, 12, []string{"accepted tx ab not committed: http://n1 says pending", "accepted tx cd not committed: x"})
	for _, want := range []string{"4697 counted", "4600 tracked", "12 more behind a refused or given-up nonce", "4598 committed", "2 not",
		"(first: accepted tx ab not committed: http://n1 says pending)"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := notFinalWhy(10, 10, 0, nil); strings.Contains(got, "first:") || !strings.Contains(got, "10 committed, 0 not") {
		t.Errorf("all committed: %q", got)
	}
}
