package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// A chaos run: load at a steady rate while, on a seeded schedule, nodes are killed, paused, wiped
// or restarted and brought back; optionally one node turns Byzantine halfway; then every
// invariant is checked over the nodes' APIs. The same seed gives the same schedule, so a failing
// run can be repeated.

// ChaosOptions configure RunChaos. Zero values take the defaults in brackets.
type ChaosOptions struct {
	Dir    string
	Create CreateOptions `json:"-"` // the testnet to make when Dir holds none
	Binary string        // runs the nodes [this executable]
	// Passphrase of the faucet key, for the load [Passphrase()].
	Passphrase string `json:"-"`

	Seed     uint64
	Duration time.Duration // of the load and of the schedule [2m]
	Interval time.Duration // between faults [30s]
	Downtime time.Duration // each fault lasts [10s]
	Faults   []string      // drawn from [kill, pause]
	MaxDown  int           // nodes down at once [1]

	Rate     int // load, tx/s [1000]
	Accounts int // load accounts [64]

	// Byzantine, if set, is the misbehaviour (guild node start --byzantine MODE) node
	// ByzantineNode [last] takes on halfway through, run by ByzantineBinary (built with
	// -tags byzantine).
	Byzantine       string
	ByzantineNode   int
	ByzantineBinary string

	// Targets: a longest gap between blocks above MaxGap, or a node brought back that takes more
	// than MaxCatchUp to reach the tip, is a violation. 0: measured and reported only.
	MaxGap     time.Duration
	MaxCatchUp time.Duration

	Settle   time.Duration // how long the check waits for nodes to converge [30s]
	Progress io.Writer     `json:"-"`
}

// FaultRecord is what happened to one scheduled fault.
type FaultRecord struct {
	ChaosEvent
	Name   string    `json:"name"`
	Start  time.Time `json:"start"`
	Back   time.Time `json:"back"` // when it was brought back (zero: never)
	Tip    uint64    `json:"tip"`  // the others' highest height when it came back
	Height uint64    `json:"height"`
	// CaughtUp is how long after Back it reached Tip; -1 if it did not within the wait.
	CaughtUp time.Duration `json:"caught_up"`
	// NextBlock is the time from Start to the header time of the next block (-1: none).
	NextBlock time.Duration `json:"next_block"`
	// NextCommit is the time from Start until another node was seen to have committed a
	// block it had not when the fault began (polled; -1: none while the node was down). A
	// header time can come before the fault: a block proposed before the leader was killed and
	// decided after it keeps its proposer's time; this is what the clients saw.
	NextCommit time.Duration `json:"next_commit"`
	Note       string        `json:"note,omitempty"`
	Err        string        `json:"error,omitempty"`
}

// ChaosReport is what RunChaos did and found.
type ChaosReport struct {
	Seed      uint64
	Options   ChaosOptions
	Start     time.Time
	End       time.Time
	Faults    []*FaultRecord
	HostileAt time.Time // zero without a Byzantine node
	Hostile   string    // node name
	Load      *LoadReport
	LoadErr   string
	// NotCommitted lists the accepted transactions still neither committed nor rejected with a
	// reason on any node after the run and the settle time, with what the nodes say of them.
	NotCommitted []string
	Check        *CheckReport
}

// OK reports whether the run met every invariant (and target, where set).
func (r *ChaosReport) OK() bool { return r.Check != nil && r.Check.OK() }

// ErrChaos is a chaos run that could not be made (bad options, a testnet that would not start).
var ErrChaos = errors.New("testnet: chaos")

func (o *ChaosOptions) defaults() error {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Downtime <= 0 {
		o.Downtime = 10 * time.Second
	}
	if len(o.Faults) == 0 {
		o.Faults = []string{FaultKill, FaultPause}
	}
	if o.MaxDown <= 0 {
		o.MaxDown = 1
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Settle <= 0 {
		o.Settle = 30 * time.Second
	}
	if o.Binary == "" {
		b, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%w: finding the guild binary: %v", ErrChaos, err)
		}
		o.Binary = b
	}
	if o.Byzantine != "" && o.ByzantineBinary == "" {
		return fmt.Errorf("%w: --byzantine needs --byzantine-binary (build it with make byzantine-bin)", ErrChaos)
	}
	if o.Byzantine != "" {
		return checkByzantineBinary(o.ByzantineBinary, o.Byzantine)
	}
	return nil
}

// checkByzantineBinary makes sure binary can misbehave as mode says before the run spends its
// healthy half: a release build does not know --byzantine, and a hostile half run with a node
// that never started measures a crashed validator, not the mode.
func checkByzantineBinary(binary, mode string) error {
	out, err := exec.Command(binary, "node", "start", "--help").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s node start --help: %v", ErrChaos, binary, err)
	}
	help := string(out)
	if !strings.Contains(help, "--byzantine") || !strings.Contains(help, mode) {
		return fmt.Errorf("%w: %s has no --byzantine mode %q; build it with make byzantine-bin (go build -tags byzantine)", ErrChaos, binary, mode)
	}
	return nil
}

// RunChaos brings the testnet in o.Dir up (making it if needed), runs the load and the fault
// schedule, brings every faulted node back, and checks the invariants. When ctx ends early (Ctrl-C)
// it stops injecting, brings the nodes back and still checks. The nodes keep running afterwards;
// Down stops them. The error is for a run that could not be made; violations are in the report.
func RunChaos(ctx context.Context, o ChaosOptions) (*ChaosReport, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	progress := io.Writer(io.Discard)
	if o.Progress != nil {
		// The load, the fault loop and each recovery report progress from their own goroutines.
		progress = &lockedWriter{w: o.Progress}
	}
	upCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	m, err := Up(upCtx, o.Dir, UpOptions{Create: o.Create, Binary: o.Binary, Progress: progress})
	cancel()
	if err != nil {
		return nil, err
	}
	gen, err := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		return nil, err
	}
	if o.Byzantine != "" && o.ByzantineNode == 0 {
		o.ByzantineNode = len(m.Nodes)
	}
	so := ScheduleOptions{Seed: o.Seed, Duration: o.Duration, Interval: o.Interval, Downtime: o.Downtime,
		Faults: o.Faults, Nodes: len(m.Nodes), MaxDown: o.MaxDown}
	if o.Byzantine != "" {
		so.Hostile, so.HostileAt = o.ByzantineNode, o.Duration/2
	}
	events, err := Schedule(so)
	if err != nil {
		return nil, err
	}
	r := &ChaosReport{Seed: o.Seed, Options: o, Start: time.Now()}
	fmt.Fprintf(progress, "chaos: seed %d, %d faults scheduled over %s (%s every %s, back after %s)\n",
		o.Seed, len(events), o.Duration, joinFaults(o.Faults), o.Interval, o.Downtime)
	for _, e := range events {
		if e.Fault == FaultKillLeader {
			fmt.Fprintf(progress, "  at %6s  %-11s the leader then\n", e.At, e.Fault)
			continue
		}
		fmt.Fprintf(progress, "  at %6s  %-11s node%d\n", e.At, e.Fault, e.Node)
	}

	var ackMu sync.Mutex
	acked := map[state.Hash]uint64{}
	loadDone := make(chan struct{})
	// A chain that stalls for good would keep the submitters retrying for ever: the load gets a
	// deadline, and the check still runs.
	loadCtx, stopLoad := context.WithTimeout(ctx, o.Duration+2*time.Minute)
	defer stopLoad()
	var split time.Time // the hostile half's latencies are reported apart
	if o.Byzantine != "" {
		split = r.Start.Add(so.HostileAt)
	}
	go func() {
		defer close(loadDone)
		lr, err := RunLoad(loadCtx, LoadOptions{Dir: o.Dir, Passphrase: o.Passphrase, Rate: o.Rate, Duration: o.Duration, Accounts: o.Accounts,
			Progress: progress, SplitAt: split, OnFinal: func(h state.Hash, height uint64) {
				ackMu.Lock()
				acked[h] = height
				ackMu.Unlock()
			}})
		r.Load = lr
		if err != nil {
			r.LoadErr = err.Error()
		}
	}()

	c := &chaosRun{m: m, o: o, progress: progress, start: r.Start}
	var recoveries sync.WaitGroup
	hostileDone := o.Byzantine == ""
	for _, e := range events {
		if !hostileDone && e.At > so.HostileAt {
			r.HostileAt, r.Hostile = c.turnHostile(ctx, so.HostileAt)
			hostileDone = true
		}
		if !sleepUntil(ctx, r.Start.Add(e.At)) {
			break
		}
		rec := c.inject(ctx, e)
		r.Faults = append(r.Faults, rec)
		if !rec.Back.IsZero() {
			recoveries.Go(func() { c.measureCatchUp(ctx, rec) })
		}
	}
	if !hostileDone && ctx.Err() == nil {
		r.HostileAt, r.Hostile = c.turnHostile(ctx, so.HostileAt)
	}
	<-loadDone
	recoveries.Wait()
	// Whatever Ctrl-C interrupted: every node runs (and none is frozen) before the check.
	c.restoreAll()
	r.End = time.Now()
	if c.hostileErr != nil {
		return r, c.hostileErr
	}
	if r.Load != nil && len(r.Load.NotSeen) > 0 {
		// Accepted transactions the load did not see committed before it stopped following may
		// still be draining from a backlog: ask the nodes, for as long as the check settles.
		fmt.Fprintf(progress, "waiting for %d accepted transactions not yet seen committed\n", len(r.Load.NotSeen))
		r.NotCommitted = waitCommitted(context.WithoutCancel(ctx), m, r.Load.NotSeen, o.Settle)
	}

	fmt.Fprintf(progress, "checking invariants over %d nodes\n", len(m.Nodes))
	apis := make([]string, len(m.Nodes))
	for i, n := range m.Nodes {
		apis[i] = n.API
	}
	ackMu.Lock()
	ackCopy := make(map[state.Hash]uint64, len(acked))
	for h, v := range acked {
		ackCopy[h] = v
	}
	ackMu.Unlock()
	// Rates and gaps are over the scheduled run, not the load's tail of stragglers.
	until := r.End
	if scheduled := r.Start.Add(o.Duration); scheduled.Before(until) {
		until = scheduled
	}
	checkCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	marks := make([]time.Time, len(r.Faults))
	for i, f := range r.Faults {
		marks[i] = f.Start
	}
	r.Check, err = CheckInvariants(checkCtx, CheckOptions{APIs: apis, Genesis: gen, Acked: ackCopy,
		Settle: o.Settle, Since: r.Start, Split: r.HostileAt, Until: until, Marks: marks, AllHonest: o.Byzantine == ""})
	if err != nil {
		return r, err
	}
	for i, f := range r.Faults {
		if i < len(r.Check.NextBlock) {
			f.NextBlock = r.Check.NextBlock[i]
		}
	}
	r.addTargets()
	return r, nil
}

// chaosRun is the state of one run's fault injection.
type chaosRun struct {
	m        *Manifest
	o        ChaosOptions
	progress io.Writer
	start    time.Time
	// hostileErr is why the Byzantine node did not start; the run then fails.
	hostileErr error
}

func (c *chaosRun) logf(format string, args ...any) {
	fmt.Fprintf(c.progress, "%6.1fs chaos: %s\n", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
}

// inject applies one fault, waits out its downtime, and brings the node back.
func (c *chaosRun) inject(ctx context.Context, e ChaosEvent) *FaultRecord {
	if e.Fault == FaultKillLeader {
		if k, ok := c.leaderNode(); ok {
			e.Node = k
		}
	}
	n := c.m.Nodes[e.Node-1]
	rec := &FaultRecord{ChaosEvent: e, Name: n.Name, Start: time.Now(), CaughtUp: -1, NextBlock: -1, NextCommit: -1}
	fail := func(err error) *FaultRecord {
		rec.Err = err.Error()
		c.logf("%s %s: %v", e.Fault, n.Name, err)
		return rec
	}
	c.logf("%s %s for %s", e.Fault, n.Name, e.Downtime)
	var back func() error
	switch e.Fault {
	case FaultPause, FaultPartition:
		if e.Fault == FaultPartition {
			rec.Note = "partition runs as pause: a rootless run cannot cut links (make netns does, as root)"
		}
		if _, _, err := Pause(c.m.Dir, e.Node); err != nil {
			return fail(err)
		}
		back = func() error { _, _, err := Resume(c.m.Dir, e.Node); return err }
	case FaultKill, FaultWipe, FaultKillLeader:
		if _, err := Kill(c.m.Dir, e.Node); err != nil {
			return fail(err)
		}
		if e.Fault == FaultWipe {
			if _, size, err := Wipe(c.m.Dir, e.Node); err != nil {
				return fail(err)
			} else {
				rec.Note = fmt.Sprintf("%.1f MiB of chain data deleted", float64(size)/(1<<20))
			}
		}
		back = func() error { return c.startNode(ctx, e.Node, c.o.Binary) }
	case FaultRestart:
		if _, err := stop([]Node{n}, stopGrace); err != nil {
			return fail(err)
		}
		back = func() error { return c.startNode(ctx, e.Node, c.o.Binary) }
	default:
		return fail(fmt.Errorf("%w: unknown fault %q", ErrBadSchedule, e.Fault))
	}
	watched := make(chan time.Duration, 1)
	go func() { watched <- c.watchNextCommit(ctx, e.Node, rec.Start, rec.Start.Add(e.Downtime)) }()
	// The node comes back even when ctx ends mid-downtime: a run never leaves one down.
	sleepUntil(ctx, rec.Start.Add(e.Downtime))
	rec.NextCommit = <-watched
	rec.Tip = c.othersTip(e.Node)
	if err := back(); err != nil {
		return fail(err)
	}
	rec.Back = time.Now()
	c.logf("%s back (the others at height %d)", n.Name, rec.Tip)
	return rec
}

// startNode starts node k and waits for its API.
func (c *chaosRun) startNode(ctx context.Context, k int, binary string, extra ...string) error {
	n := c.m.Nodes[k-1]
	pid, exited, err := start(binary, n.Home, extra...)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	if err := waitAPI(wctx, n, exited); err != nil {
		return err
	}
	c.logf("started %s (pid %d)", n.Name, pid)
	return nil
}

// leaderNode is the node (from 1) of the validator leading the height being decided, by the
// first node that answers, unless it is the hostile one; false if none is found (the fault then
// goes to the node the schedule drew).
func (c *chaosRun) leaderNode() (int, bool) {
	sts := queryStatus(context.Background(), c.m.Nodes, 2*time.Second)
	leader := -1
	for _, st := range sts {
		if st.err == nil {
			leader = int(st.resp.Leader)
			break
		}
	}
	for i, st := range sts {
		if st.err == nil && st.resp.ValidatorIdx == leader && (c.o.Byzantine == "" || i+1 != c.o.ByzantineNode) {
			return i + 1, true
		}
	}
	return 0, false
}

// othersTip is the highest height any node but k reports (k is not asked: a paused node would
// hold the answer up).
func (c *chaosRun) othersTip(k int) uint64 {
	var tip uint64
	for _, st := range queryStatus(context.Background(), c.others(k), 2*time.Second) {
		if st.err == nil {
			tip = max(tip, st.resp.Height)
		}
	}
	return tip
}

// others is every node of the testnet but node k (from 1).
func (c *chaosRun) others(k int) []Node {
	return append(append([]Node(nil), c.m.Nodes[:k-1]...), c.m.Nodes[k:]...)
}

// commitPoll is how often the others are asked for their height after a fault: the next
// commit's time is known to within it (and an API round trip).
const commitPoll = 20 * time.Millisecond

// watchNextCommit polls every node but k from just after the fault until one reports a height
// above the highest any reported on the first poll, and returns the time from start to that
// answer; -1 if none came before until. Taking the first answers after the fault as the base
// errs late, never early: a block decided between the fault and that poll is not counted, the
// one after it is.
func (c *chaosRun) watchNextCommit(ctx context.Context, k int, start, until time.Time) time.Duration {
	others := c.others(k)
	base, known := uint64(0), false
	for time.Now().Before(until) && ctx.Err() == nil {
		tip, any := uint64(0), false
		for _, st := range queryStatus(ctx, others, time.Second) {
			if st.err == nil {
				tip, any = max(tip, st.resp.Height), true
			}
		}
		switch {
		case !any:
		case !known:
			base, known = tip, true
		case tip > base:
			return time.Since(start)
		}
		sleepUntil(ctx, time.Now().Add(commitPoll))
	}
	return -1
}

// catchUpWait bounds how long a node brought back is watched on its way to the tip.
const catchUpWait = 2 * time.Minute

// measureCatchUp polls the node of rec until it reaches rec.Tip.
func (c *chaosRun) measureCatchUp(ctx context.Context, rec *FaultRecord) {
	cl := api.NewClient(c.m.Nodes[rec.Node-1].API)
	for deadline := rec.Back.Add(catchUpWait); time.Now().Before(deadline) && ctx.Err() == nil; {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cl.Status(qctx)
		cancel()
		if err == nil {
			rec.Height = st.Height
			if st.Height >= rec.Tip {
				rec.CaughtUp = time.Since(rec.Back)
				c.logf("%s at the tip (%d) %.1fs after it came back", rec.Name, rec.Tip, rec.CaughtUp.Seconds())
				return
			}
		}
		pause(ctx, 100*time.Millisecond)
	}
}

// turnHostile restarts the Byzantine node with the Byzantine binary at at after the start.
func (c *chaosRun) turnHostile(ctx context.Context, at time.Duration) (time.Time, string) {
	if !sleepUntil(ctx, c.start.Add(at)) {
		return time.Time{}, ""
	}
	k := c.o.ByzantineNode
	n := c.m.Nodes[k-1]
	c.logf("%s turns Byzantine: %s --byzantine %s", n.Name, c.o.ByzantineBinary, c.o.Byzantine)
	if _, err := stop([]Node{n}, stopGrace); err != nil {
		c.logf("stopping %s: %v", n.Name, err)
	}
	when := time.Now()
	if err := c.startNode(ctx, k, c.o.ByzantineBinary, "--byzantine", c.o.Byzantine); err != nil {
		c.logf("starting %s Byzantine: %v", n.Name, err)
		c.hostileErr = fmt.Errorf("%w: %s did not start as Byzantine (%v); the hostile half measured a stopped node, not --byzantine %s",
			ErrChaos, n.Name, err, c.o.Byzantine)
	}
	return when, n.Name
}

// restoreAll resumes every node and starts any that is not running.
func (c *chaosRun) restoreAll() {
	for i, n := range c.m.Nodes {
		if pid, ok := running(n.Home); ok {
			signalGroup(pid, syscall.SIGCONT)
			continue
		}
		if err := c.startNode(context.Background(), i+1, c.o.Binary); err != nil {
			c.logf("bringing %s back: %v", n.Name, err)
		}
	}
}

// addTargets adds the liveness targets that were set as invariants.
func (r *ChaosReport) addTargets() {
	o := r.Options
	if r.Load != nil && o.Byzantine == "" {
		// Every transaction a node answered 202 to is committed, or refused with a reason, by
		// the end: a restarted node takes back what it had accepted (its pending log). A hostile
		// node may drop its own clients' transactions, so this holds only without one.
		inv := &Invariant{Name: InvAcceptedFinalized, Checked: r.Load.Accepted}
		for _, e := range r.NotCommitted {
			inv.fail("%s", e)
		}
		var notes []string
		if r.Load.BehindRefused > 0 {
			notes = append(notes, fmt.Sprintf("%d more wait behind a nonce the API refused (%s), which the load "+
				"generator did not send again", r.Load.BehindRefused, r.Load.FirstRejection))
		}
		if r.Load.BehindGaveUp > 0 {
			notes = append(notes, fmt.Sprintf("%d more wait behind a nonce the load generator gave up offering "+
				"while it was refused", r.Load.BehindGaveUp))
		}
		inv.Note = strings.Join(notes, "; ")
		r.Check.Invariants = append(r.Check.Invariants, inv)
	}
	if o.MaxGap > 0 {
		inv := &Invariant{Name: fmt.Sprintf("longest time without a block <= %s", o.MaxGap), Checked: 1}
		if r.Check.LongestGap > o.MaxGap {
			if r.Check.GapEnd == 0 {
				inv.fail("%s without a block at the end of the run: the chain stopped", r.Check.LongestGap.Round(time.Millisecond))
			} else {
				inv.fail("%s without a block before height %d", r.Check.LongestGap.Round(time.Millisecond), r.Check.GapEnd)
			}
		}
		r.Check.Invariants = append(r.Check.Invariants, inv)
	}
	if o.MaxCatchUp > 0 {
		inv := &Invariant{Name: fmt.Sprintf("node brought back reaches the tip within %s", o.MaxCatchUp)}
		for _, f := range r.Faults {
			inv.Checked++
			switch {
			case f.Err != "":
				inv.fail("%s %s at %s: %s", f.Fault, f.Name, f.At, f.Err)
			case f.CaughtUp < 0:
				inv.fail("%s %s at %s: not at the tip %d after %s (at %d)", f.Fault, f.Name, f.At, f.Tip, catchUpWait, f.Height)
			case f.CaughtUp > o.MaxCatchUp:
				inv.fail("%s %s at %s: %s to reach the tip", f.Fault, f.Name, f.At, f.CaughtUp.Round(time.Millisecond))
			}
		}
		r.Check.Invariants = append(r.Check.Invariants, inv)
	}
}

// sleepUntil waits until t or until ctx ends; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func joinFaults(f []string) string { return strings.Join(f, ",") }

// lockedWriter serialises writes from several goroutines onto one io.Writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitCommitted asks the nodes about each of hashes until every one is committed or rejected
// with a reason, or d passes; it returns the rest, each with what a node last said of it.
func waitCommitted(ctx context.Context, m *Manifest, hashes []state.Hash, d time.Duration) []string {
	clients := make([]*api.Client, len(m.Nodes))
	for i, n := range m.Nodes {
		clients[i] = api.NewClient(n.API)
	}
	open := map[state.Hash]string{}
	for _, h := range hashes {
		open[h] = "not asked"
	}
	deadline := time.Now().Add(d)
	for k := 0; len(open) > 0; k++ {
		for h := range open {
			c := clients[k%len(clients)]
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ts, err := c.Tx(qctx, h.String())
			cancel()
			switch {
			case err != nil:
				open[h] = fmt.Sprintf("%s: %v", c.Base(), err)
			case ts.Status == api.TxCommitted || ts.Status == api.TxRejected:
				delete(open, h)
			default:
				open[h] = fmt.Sprintf("%s says %s", c.Base(), ts.Status)
			}
		}
		next := time.Now().Add(500 * time.Millisecond)
		if len(open) == 0 || !next.Before(deadline) || !sleepUntil(ctx, next) {
			break
		}
	}
	out := make([]string, 0, len(open))
	for h, why := range open {
		out = append(out, fmt.Sprintf("accepted tx %s not committed: %s", h, why))
	}
	slices.Sort(out)
	return out
}
