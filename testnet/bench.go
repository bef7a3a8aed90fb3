package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/guild-ledger/guild/state"
)

// BenchOptions configure Bench. Zero values take the defaults in brackets.
type BenchOptions struct {
	Dir        string        // parent of the testnets, one per rate: DIR/rate-<R> [./guild-bench]
	Rates      []int         // offered tx/s, one run each [1000,2000,4000,8000,16000]
	Duration   time.Duration // submission window per rate [20s]
	Validators int           // [4]
	Backend    string        // [pebbledb]
	Accounts   int           // load accounts per run [256]
	Binary     string        // the guild binary that runs the nodes [the running executable]
	Keep       bool          // keep each run's testnet directory (stopped) instead of deleting it
	Proposals  string        // consensus.proposals of every node: reference or full [the node's default]
	Progress   io.Writer
}

// BenchReport is one sweep: a row per offered rate, beside the signature verification ceiling
// measured on the same machine just before.
type BenchReport struct {
	Started    time.Time     `json:"started"`
	Validators int           `json:"validators"`
	Backend    string        `json:"backend"`
	Duration   float64       `json:"duration_s"`
	Proposals  string        `json:"proposals,omitempty"`
	CPUs       int           `json:"cpus"`
	Ceiling    VerifyCeiling `json:"verify_ceiling"`
	Rows       []BenchRow    `json:"rows"`
}

// BenchRow is what one fresh testnet did at one offered rate.
type BenchRow struct {
	Offered   int     `json:"offered_tps"`
	Submitted float64 `json:"submitted_tps"`           // what the generator managed to offer
	Finalized float64 `json:"finalized_tps"`           // first submission to last finalization
	Sustained float64 `json:"finalized_in_window_tps"` // finalized while submissions went on
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Accepted  int     `json:"accepted"`
	Refused   int     `json:"refused"`       // 503/429 answers (each retried after a back-off)
	Rejected  int     `json:"rejected"`      // 4xx: invalid, never retried
	Failed    int     `json:"failed"`        // no answer or another 5xx
	Behind    int     `json:"behind"`        // releases the generator could not make in time
	GaveUp    int     `json:"gave_up"`       // still refused 10 s after the window: not retried further
	NotFinal  int     `json:"not_finalized"` // accepted, never seen in a block: not in p50/p99
	// NotFinalWhy, when NotFinal > 0, is what the nodes said of them afterwards (notFinalWhy).
	NotFinalWhy string  `json:"not_finalized_why,omitempty"`
	ViewChanges int     `json:"view_changes"`
	LoadAvg     string  `json:"loadavg"` // of the machine before the run: it is shared
	Nodes       []Usage `json:"nodes"`
	// Generator is the load generator's own CPU over the window (this process): beside the
	// nodes' on the same cores, and behind any delay in seeing blocks (load's
	// seen_after_proposal_ms).
	Generator Usage  `json:"generator"`
	Error     string `json:"error,omitempty"`

	// Phases is where node 1's heights spent their time over the run: milliseconds per height by
	// phase (guild_height_phase_seconds; docs/operations.md).
	Phases map[string]float64 `json:"height_phases_ms,omitempty"`
	Load   *LoadReport        `json:"load,omitempty"`
}

// Usage is one node's resource use during a run.
type Usage struct {
	Name       string  `json:"name"`
	PeakRSSMiB float64 `json:"peak_rss_mib"` // VmHWM at the end of the run
	CPUPercent float64 `json:"cpu_percent"`  // over the submission window; 100 = one core
}

// VerifyCeiling is how fast this machine verifies transaction signatures with the node's own
// code (state.VerifyTxs: curve25519-voi, ZIP-215 rules), one at a time and in batches.
type VerifyCeiling struct {
	SingleMicros float64 `json:"single_us_per_sig"` // one transaction per call, one core
	SinglePerSec float64 `json:"single_per_s"`
	BatchSize    int     `json:"batch_size"`
	BatchMicros  float64 `json:"batch_us_per_sig_per_core"`
	BatchPerSec  float64 `json:"batch_per_s_all_cores"` // VerifyTxs spreads a batch over the cores
}

// DefaultBenchRates is the sweep when none is given.
var DefaultBenchRates = []int{1000, 2000, 4000, 8000, 16000}

// Bench measures the verify ceiling, then for each rate starts a fresh testnet, runs RunLoad on
// it while sampling each node's CPU and memory, stops it and deletes it. A run that fails is a
// row with its error; the sweep goes on.
func Bench(ctx context.Context, opts BenchOptions) (*BenchReport, error) {
	if opts.Dir == "" {
		opts.Dir = "./guild-bench"
	}
	if len(opts.Rates) == 0 {
		opts.Rates = DefaultBenchRates
	}
	if opts.Duration <= 0 {
		opts.Duration = 20 * time.Second
	}
	if opts.Validators <= 0 {
		opts.Validators = 4
	}
	if opts.Backend == "" {
		opts.Backend = "pebbledb"
	}
	if opts.Accounts <= 0 {
		opts.Accounts = 256
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	r := &BenchReport{Started: time.Now().UTC(), Validators: opts.Validators, Backend: opts.Backend,
		Duration: opts.Duration.Seconds(), CPUs: runtime.NumCPU(), Proposals: opts.Proposals}
	fmt.Fprintln(progress, "measuring the ed25519 verify ceiling")
	r.Ceiling = MeasureVerifyCeiling(1024, 2*time.Second)
	for _, rate := range opts.Rates {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(progress, "== %d tx/s offered\n", rate)
		row := benchOne(ctx, opts, filepath.Join(dir, "rate-"+strconv.Itoa(rate)), rate, progress)
		r.Rows = append(r.Rows, row)
	}
	return r, ctx.Err()
}

func benchOne(ctx context.Context, opts BenchOptions, dir string, rate int, progress io.Writer) BenchRow {
	row := BenchRow{Offered: rate, LoadAvg: loadAvg()}
	fail := func(err error) BenchRow { row.Error = err.Error(); return row }
	if err := os.RemoveAll(dir); err != nil {
		return fail(err)
	}
	pass, _ := Passphrase()
	upCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	m, err := Up(upCtx, dir, UpOptions{
		Create: CreateOptions{Validators: opts.Validators, Backend: opts.Backend, Passphrase: pass,
			WalletWorkFactor: 10, Proposals: opts.Proposals}, // bench keys guard nothing; keep the setup fast
		Binary: opts.Binary, Progress: io.Discard,
	})
	cancel()
	defer func() {
		if m == nil {
			return
		}
		if _, err := stop(m.Nodes, stopGrace); err != nil {
			fmt.Fprintf(progress, "stopping %s: %v\n", dir, err)
		}
		if !opts.Keep {
			_ = os.RemoveAll(dir)
		}
	}()
	if err != nil {
		return fail(err)
	}
	sampler := newUsageSampler(append(slices.Clone(m.Nodes), Node{Name: "generator"}))
	sampler.pids[len(m.Nodes)] = os.Getpid()
	stopSampling := sampler.run(time.Second)
	// The phases over the submission window only: the empty heights of the funding before it
	// and of the drain after it took an empty-block interval each, and made the loaded heights
	// look as if they waited for proposals and transactions.
	var phasesBefore, phasesAfter string
	lr, err := RunLoad(ctx, LoadOptions{Dir: dir, Passphrase: pass, Rate: rate, Duration: opts.Duration,
		Accounts: opts.Accounts, Progress: progress,
		OnSubmitting: func() { phasesBefore = metricsText(ctx, m.Nodes[0].API) },
		OnSubmitted:  func() { phasesAfter = metricsText(ctx, m.Nodes[0].API) }})
	stopSampling()
	if lr == nil {
		return fail(err)
	}
	if err != nil {
		row.Error = err.Error()
	}
	row.Load = lr
	row.Submitted, row.Finalized, row.Sustained = lr.SubmitRate, lr.FinalizedRate, lr.SustainedRate
	row.P50, row.P99 = millis(lr.Latency.P50), millis(lr.Latency.P99)
	row.Accepted, row.Refused, row.Rejected, row.Failed = lr.Accepted, lr.Throttled, lr.Rejected, lr.Errors
	row.Behind, row.GaveUp, row.NotFinal = lr.Behind, lr.GaveUp, lr.NotFinalized
	if row.NotFinal > 0 {
		// Accepted but not seen by the generator's follower: ask the nodes, before the testnet
		// goes, whether they committed them after all (seen late, or a block the follower
		// missed), still hold them, or know nothing of them.
		left := waitCommitted(ctx, m, lr.NotSeen, notFinalSettle)
		row.NotFinalWhy = notFinalWhy(row.NotFinal, len(lr.NotSeen), lr.BehindRefused+lr.BehindGaveUp, left)
	}
	row.Nodes = sampler.usage(lr.SubmitStart, lr.SubmitStart.Add(lr.SubmitWindow))
	row.Nodes, row.Generator = row.Nodes[:len(m.Nodes)], row.Nodes[len(m.Nodes)]
	row.Phases = heightPhases(phasesBefore, phasesAfter)
	for _, n := range m.Nodes {
		row.ViewChanges = max(row.ViewChanges, readMetric(ctx, n.API, "guild_consensus_view_changes"))
	}
	return row
}

// readMetric reads one unlabelled gauge or counter from a node's /metrics; 0 if it cannot.
func readMetric(ctx context.Context, api, name string) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, _ := fetchMetric(ctx, api, name)
	return int(v)
}

func millis(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 1e2 }

// loadAvg is the machine's 1/5/15-minute load average, "" where /proc does not tell.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// MeasureVerifyCeiling times state.VerifyTxs on freshly signed transfers: for about budget/2
// one transaction per call, then for about budget/2 batches of batch.
func MeasureVerifyCeiling(batch int, budget time.Duration) VerifyCeiling {
	txs := make([]*state.Tx, batch)
	for i := range txs {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
		tx, err := state.SignTx(state.TxBody{ChainID: "bench", From: from, Nonce: uint64(i),
			Transfer: &state.Transfer{To: from, Amount: 1}}, key)
		if err != nil {
			panic(fmt.Sprintf("testnet: signing a transfer: %v", err)) // a fixed shape cannot fail
		}
		txs[i] = tx
	}
	c := VerifyCeiling{BatchSize: batch}
	n, start := 0, time.Now()
	for time.Since(start) < budget/2 {
		state.VerifyTxs("bench", txs[n%batch:n%batch+1])
		n++
	}
	per := time.Since(start).Seconds() / float64(n)
	c.SingleMicros, c.SinglePerSec = math.Round(per*1e7)/10, math.Round(1/per)
	n, start = 0, time.Now()
	for time.Since(start) < budget/2 {
		state.VerifyTxs("bench", txs)
		n += batch
	}
	per = time.Since(start).Seconds() / float64(n)
	procs := min(runtime.GOMAXPROCS(0), (batch+63)/64)
	c.BatchMicros, c.BatchPerSec = math.Round(per*float64(procs)*1e7)/10, math.Round(1/per)
	return c
}

// usageSampler reads each node's CPU time every period, to tell its CPU use over a window.
type usageSampler struct {
	nodes []Node
	pids  []int
	mu    sync.Mutex
	at    []time.Time
	ticks [][]uint64 // by sample, by node
}

func newUsageSampler(nodes []Node) *usageSampler {
	s := &usageSampler{nodes: nodes, pids: make([]int, len(nodes))}
	for i, n := range nodes {
		s.pids[i], _ = readPID(n.Home)
	}
	return s
}

func (s *usageSampler) sample() {
	t := make([]uint64, len(s.pids))
	for i, pid := range s.pids {
		t[i] = cpuTicks(pid)
	}
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.ticks = append(s.ticks, t)
	s.mu.Unlock()
}

// run samples every period until the returned function is called (which takes a last sample).
func (s *usageSampler) run(period time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	s.sample()
	wg.Go(func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.sample()
			}
		}
	})
	return func() { close(done); wg.Wait(); s.sample() }
}

// usage is each node's CPU over the samples nearest [from, to], and its peak RSS so far.
func (s *usageSampler) usage(from, to time.Time) []Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	nearest := func(t time.Time) int {
		best := 0
		for i, a := range s.at {
			if a.Sub(t).Abs() < s.at[best].Sub(t).Abs() {
				best = i
			}
		}
		return best
	}
	a, b := nearest(from), nearest(to)
	out := make([]Usage, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = Usage{Name: n.Name, PeakRSSMiB: math.Round(peakRSS(s.pids[i])/(1<<20)*10) / 10}
		if b > a && s.ticks[b][i] >= s.ticks[a][i] {
			secs := float64(s.ticks[b][i]-s.ticks[a][i]) / clockTicks
			out[i].CPUPercent = math.Round(secs / s.at[b].Sub(s.at[a]).Seconds() * 100)
		}
	}
	return out
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every Linux port Go runs on.
const clockTicks = 100

// cpuTicks is the user+system CPU time of pid in clock ticks, 0 where /proc does not tell.
func cpuTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64) // utime, field 14
	k, _ := strconv.ParseUint(f[12], 10, 64) // stime, field 15
	return u + k
}

// peakRSS is pid's peak resident set (VmHWM) in bytes, 0 where /proc does not tell.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// WriteText prints the sweep as one table.
func (r *BenchReport) WriteText(w io.Writer) {
	c := r.Ceiling
	fmt.Fprintf(w, "ed25519 verify ceiling (state.VerifyTxs, this machine, now): one at a time %.1f µs/sig (%.0f/s on one core); "+
		"batches of %d %.1f µs/sig per core (%.0f/s on all %d cores)\n", c.SingleMicros, c.SinglePerSec,
		c.BatchSize, c.BatchMicros, c.BatchPerSec, r.CPUs)
	proposals := r.Proposals
	if proposals == "" {
		proposals = "default"
	}
	fmt.Fprintf(w, "%d validators, %s, %.0fs per rate, a fresh testnet per rate, proposals %s\n\n", r.Validators, r.Backend, r.Duration, proposals)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "offered\tsubmitted\tfinalized\tin window\tp50 ms\tp99 ms\tnot final\trefused\tfailed\trejected\tview chg\tpeak RSS MiB\tCPU %\tloadavg\t")
	for _, row := range r.Rows {
		var rss, cpu []string
		for _, u := range row.Nodes {
			rss = append(rss, strconv.FormatFloat(u.PeakRSSMiB, 'f', 0, 64))
			cpu = append(cpu, strconv.FormatFloat(u.CPUPercent, 'f', 0, 64))
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", row.Offered, row.Submitted,
			row.Finalized, row.Sustained, row.P50, row.P99, row.NotFinal, row.Refused, row.Failed, row.Rejected, row.ViewChanges,
			strings.Join(rss, "/"), strings.Join(cpu, "/"), row.LoadAvg)
	}
	tw.Flush()
	fmt.Fprintln(w, "finalized: from the first submission to the last finalization; in window: finalized while submitting;\n"+
		"p50/p99: from a node's acceptance to the block seen; not final: accepted, never seen in a block (not in p50/p99);\n"+
		"refused: 503/429 answers, each retried after a backoff;\n"+
		"CPU: per node over the submission window, 100 = one core; loadavg: the shared machine's, before the run")
	for _, row := range r.Rows {
		writePhases(w, row)
	}
	for _, row := range r.Rows {
		if row.NotFinalWhy != "" {
			fmt.Fprintf(w, "%d tx/s, not final: %s\n", row.Offered, row.NotFinalWhy)
		}
		if row.Error != "" {
			fmt.Fprintf(w, "%d tx/s: %s\n", row.Offered, row.Error)
		}
	}
}

// notFinalSettle is how long a bench asks the nodes about accepted transactions its follower did
// not see committed.
const notFinalSettle = 10 * time.Second

// notFinalWhy explains a bench row's not-final count: counted is accepted minus finalized (the
// generator's counters, less what waits behind a nonce it gave up), tracked those of its own
// records not seen in a block (behind of them waiting behind a nonce the API refused or the
// generator gave up, which only the client can fill, and not asked), and
// left what the nodes said of the tracked ones still not committed after notFinalSettle
// (waitCommitted). Counted above tracked means acceptances counted twice (a batch resent after
// a lost answer); tracked but committed means the follower missed or was late.
func notFinalWhy(counted, tracked, behind int, left []string) string {
	committed := tracked - len(left)
	why := fmt.Sprintf("%d counted, %d tracked (%d more behind a refused or given-up nonce); asked of the nodes for %s: %d committed, %d not",
		counted, tracked, behind, notFinalSettle, committed, len(left))
	if len(left) > 0 {
		why += " (first: " + left[0] + ")"
	}
	return why
}

// WriteJSON writes the report to path (indented), for comparing runs.
func (r *BenchReport) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("testnet: writing the bench report: %w", err)
	}
	return nil
}

// ErrBadRates refuses a --rates list that is not positive integers.
var ErrBadRates = errors.New("testnet: rates must be positive integers, comma-separated")

// ParseRates reads "1000,2000,4000".
func ParseRates(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%w: %q", ErrBadRates, s)
		}
		out = append(out, v)
	}
	return out, nil
}
