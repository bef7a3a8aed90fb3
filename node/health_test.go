package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state/kv"
)

// logBuffer is a goroutine-safe log sink for tests that read what the node logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lineWith returns the first logged line holding every one of parts.
func (b *logBuffer) lineWith(parts ...string) string {
	for _, line := range strings.Split(b.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line
		}
	}
	return ""
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNode runs the node built by New(home, logger) after prepare (if any) had a look at it;
// done yields what Run returned.
func startNode(t *testing.T, home string, logger *slog.Logger, prepare func(*Node)) (*Node, <-chan error, context.CancelFunc) {
	t.Helper()
	n, err := New(home, logger)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, stopped := make(chan error, 1), make(chan struct{})
	go func() {
		done <- n.Run(ctx)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Error("node did not stop")
		}
	})
	select {
	case <-n.Started():
	case err := <-done:
		t.Fatalf("node failed to start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node did not start")
	}
	return n, done, cancel
}

func getJSON(t *testing.T, n *Node, path string, out any) int {
	t.Helper()
	resp, err := http.Get("http://" + n.APIAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %q: %v", path, body, err)
		}
	}
	return resp.StatusCode
}

// lonelyValidatorHome is the home of validator a of a 4-validator chain whose other three never
// run: it cannot finalize anything.
func lonelyValidatorHome(t *testing.T) string {
	t.Helper()
	c := newSyncChain(t)
	home := c.home(t)
	if err := WriteKeyFile(filepath.Join(home, ValidatorKeyFile), c.valKeys[0]); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.Permissioned = false // genesis binds no peer IDs
	cfg.Consensus.StallWarnMillis = 300
	cfg.Consensus.EmptyBlockMillis = 50
	cfg.Consensus.ViewTimeoutMillis = 5000 // stays in view 0, waiting for b's proposal
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	return home
}

// A validator that cannot reach a quorum says so at WARN with what it waits for and who is
// silent, reports stalled in /v1/status, /readyz and the metrics, and stays healthy (/healthz).
func TestStalledValidatorSaysWhy(t *testing.T) {
	logger, logs := newTestLogger()
	n, _, _ := startNode(t, lonelyValidatorHome(t), logger, nil)

	waitUntil(t, "a stall warning", 15*time.Second, func() bool {
		return logs.lineWith("level=WARN", "consensus stalled") != ""
	})
	line := logs.lineWith("level=WARN", "consensus stalled")
	for _, want := range []string{
		"height=1", "view=0", "leader=b",
		`waiting_for="the proposal of leader b for view 0"`,
		"a: this node", "b: never heard (no peer ID in genesis)",
		"check that the node of validator b, c, d is running",
		"a quorum needs 3 of 4 validators and this node hears from 1",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("stall warning lacks %q:\n%s", want, line)
		}
	}

	var st api.StatusResponse
	if code := getJSON(t, n, "/v1/status", &st); code != 200 || !st.Stalled || st.CatchingUp || st.LastBlockTimeMs != 0 {
		t.Errorf("status %d %+v: want stalled, not catching up, no block", code, st)
	}
	var ready api.ReadyResponse
	if code := getJSON(t, n, "/readyz", &ready); code != http.StatusServiceUnavailable || ready.Ready {
		t.Errorf("readyz %d %+v, want 503", code, ready)
	}
	reasons := strings.Join(ready.Reasons, "|")
	for _, want := range []string{"consensus is stalled", "no p2p peers"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("readyz reasons %q lack %q", reasons, want)
		}
	}
	for _, path := range []string{"/healthz", "/health"} {
		var h api.HealthResponse
		if code := getJSON(t, n, path, &h); code != 200 || h.Status != "ok" {
			t.Errorf("%s during a stall: %d %+v, want 200 ok", path, code, h)
		}
	}
	ctx := context.Background()
	if v := scrapeMetric(t, ctx, n, "guild_stalled"); v != "1" {
		t.Errorf("guild_stalled = %q, want 1", v)
	}
	if v := scrapeMetric(t, ctx, n, `guild_consensus_last_heard_seconds{validator="b"}`); v == "" {
		t.Error("no guild_consensus_last_heard_seconds for validator b")
	}
	for _, m := range []string{"guild_seconds_since_last_block", "guild_catching_up", "guild_disk_free_bytes", "guild_store_errors_total"} {
		if scrapeMetric(t, ctx, n, m) == "" {
			t.Errorf("metric %s missing", m)
		}
	}
}

// A solo validator that commits is ready, and its status says when it committed last.
func TestReadyWhenCommitting(t *testing.T) {
	n, c, _ := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 2, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var ready api.ReadyResponse
	if code := getJSON(t, n, "/readyz", &ready); code != 200 || !ready.Ready {
		t.Errorf("readyz %d %+v, want 200 ready", code, ready)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Stalled || st.LastBlockTimeMs == 0 || st.LastBlockHeaderMs == 0 {
		t.Errorf("status %+v %v: want not stalled, with the last block's times", st, err)
	}
	if d := time.Since(time.UnixMilli(st.LastBlockTimeMs)); d < 0 || d > time.Minute {
		t.Errorf("last_block_time_ms is %s ago", d)
	}
}

// The watchdog reports a stall once per stall_warn_ms and, when blocks come again, how long it
// lasted.
func TestStallWatchReportsEndAndDuration(t *testing.T) {
	logger, logs := newTestLogger()
	n := &Node{log: logger, cfg: DefaultConfig()}
	n.health.started = time.Now().Add(-time.Hour)
	c := newSyncChain(t)
	sched := &schedule{epochs: []epoch{{From: 1, Names: []string{"a", "b", "c", "d"}, Peers: make([]string, 4)}}}
	for _, k := range c.valKeys {
		sched.epochs[0].Set.Validators = append(sched.epochs[0].Set.Validators, consensus.Validator{PubKey: k.Public().(ed25519.PublicKey), Power: 1})
	}
	n.sched.Store(sched)
	p := loopProbe{status: consensus.Status{Height: 8, View: 2, Self: 0, Leader: 2, Proposal: true, Prepares: 3, Commits: 1}, epoch: sched.epochs[0]}

	now := time.Now()
	n.health.lastBlockMs.Store(now.Add(-5 * time.Second).UnixMilli())
	w := stallWatch{warnEvery: time.Second}
	w.observe(n, p, now)
	w.observe(n, p, now.Add(500*time.Millisecond)) // within warnEvery: no second line
	if got := strings.Count(logs.String(), "consensus stalled"); got != 1 || !n.health.stalled.Load() {
		t.Fatalf("%d stall warnings, stalled=%v:\n%s", got, n.health.stalled.Load(), logs)
	}
	if line := logs.lineWith("consensus stalled"); !strings.Contains(line, `waiting_for="commits: 1 of 4 validators, a quorum needs 3"`) {
		t.Errorf("stall warning: %s", line)
	}
	w.observe(n, p, now.Add(1100*time.Millisecond))
	if got := strings.Count(logs.String(), "consensus stalled"); got != 2 {
		t.Fatalf("%d stall warnings after warnEvery, want 2", got)
	}
	n.health.blockApplied(now.UnixMilli())
	w.observe(n, p, time.Now())
	line := logs.lineWith("level=INFO", "consensus stall ended")
	if line == "" || n.health.stalled.Load() {
		t.Fatalf("no end of stall reported:\n%s", logs)
	}
	var lasted string
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "lasted="); ok {
			lasted = v
		}
	}
	if d, err := time.ParseDuration(lasted); err != nil || d < 5*time.Second || d > time.Minute {
		t.Errorf("stall lasted %q (%v), want about 5s", lasted, err)
	}
}

func TestDiagnoseStall(t *testing.T) {
	set := consensus.ValidatorSet{Validators: make([]consensus.Validator, 4)}
	for i := range set.Validators {
		set.Validators[i].Power = 1
	}
	base := func() stallInput {
		return stallInput{
			set: set, names: []string{"a", "b", "c", "d"}, peerIDs: []string{"pa", "pb", "pc", "pd"},
			connected: map[string]bool{"pb": true, "pc": true, "pd": true}, peers: 3,
			heardAgo: []time.Duration{-1, time.Second, time.Second, time.Second}, silent: 10 * time.Second,
			status: consensus.Status{Height: 5, Self: 0, Leader: 1},
		}
	}
	for _, tc := range []struct {
		name          string
		change        func(*stallInput)
		waiting, todo string
	}{
		{"no proposal", func(in *stallInput) {}, "the proposal of leader b for view 0", "every validator is heard from"},
		{"own turn", func(in *stallInput) { in.status.Leader = 0 }, "its own turn to propose: this node leads view 0", "look for 'proposing failed'"},
		{"prepares", func(in *stallInput) {
			in.status.Proposal, in.status.Prepares = true, 2
			in.heardAgo[2], in.heardAgo[3] = -1, time.Minute
			delete(in.connected, "pc")
		}, "prepares: 2 of 4 validators, a quorum needs 3", "check that the node of validator c, d is running"},
		{"commits", func(in *stallInput) { in.status.Proposal, in.status.Prepares, in.status.Commits = true, 3, 2 },
			"commits: 2 of 4 validators, a quorum needs 3", "every validator is heard from"},
		{"view change", func(in *stallInput) { in.status.View, in.status.ViewChangeVotes = 3, 2 },
			"view changes: 2 of 4 validators moved to view 3, a quorum needs 3", ""},
		{"catching up", func(in *stallInput) { in.catchingUp = true }, "catching up by block sync", "let it catch up"},
		{"no peers", func(in *stallInput) { in.connected, in.peers = map[string]bool{}, 0 }, "", "connected to no peer"},
		{"observer", func(in *stallInput) { in.status.Self = -1; in.heardAgo[0] = 2 * time.Second }, "",
			"a quorum needs 3 of 4 validators and this node (an observer) hears from 4"},
	} {
		in := base()
		tc.change(&in)
		out := diagnoseStall(in)
		if !strings.Contains(out.waitingFor, tc.waiting) || !strings.Contains(out.action, tc.todo) {
			t.Errorf("%s:\n waiting_for %q, want %q\n action %q, want %q", tc.name, out.waitingFor, tc.waiting, out.action, tc.todo)
		}
	}
	in := base()
	in.status.Proposal, in.heardAgo[2] = true, -1
	delete(in.connected, "pc")
	out := diagnoseStall(in)
	if want := "a: this node; b: heard 1s ago (connected); c: never heard (not connected); d: heard 1s ago (connected)"; out.validators != want {
		t.Errorf("validators %q, want %q", out.validators, want)
	}
}

func TestQuorumCount(t *testing.T) {
	for _, tc := range []struct {
		powers []uint64
		want   int
	}{{[]uint64{1}, 1}, {[]uint64{1, 1, 1, 1}, 3}, {[]uint64{1, 1, 1, 1, 1, 1, 1}, 5}, {[]uint64{10, 1, 1, 1}, 1}, {[]uint64{5, 5, 1}, 2}} {
		set := consensus.ValidatorSet{}
		for _, p := range tc.powers {
			set.Validators = append(set.Validators, consensus.Validator{Power: p})
		}
		if got := quorumCount(set); got != tc.want {
			t.Errorf("powers %v: quorum of %d validators, want %d", tc.powers, got, tc.want)
		}
	}
}

// /healthz fails when the loop does not answer (here: nothing reads its probes).
func TestHealthzFailsWhenLoopIsStuck(t *testing.T) {
	n := &Node{}
	n.health.probes = make(chan chan loopProbe)
	rec := httptest.NewRecorder()
	n.handleHealthz(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "unresponsive") {
		t.Fatalf("healthz with a stuck loop: %d %s", rec.Code, rec.Body)
	}
}

// faultyStore fails reads of blocks, or every write, on demand, as a damaged or full disk would.
type faultyStore struct {
	kv.Store
	failBlockReads, failWrites atomic.Bool
}

var errInjected = fmt.Errorf("%w in /data/blocks.db: get: pebble/table: invalid table 000042 (checksum mismatch at 0/1234)", kv.ErrStorage)

func (s *faultyStore) Get(key []byte) ([]byte, error) {
	if s.failBlockReads.Load() && len(key) > 0 && key[0] == 'b' {
		return nil, errInjected
	}
	return s.Store.Get(key)
}

func (s *faultyStore) NewBatch() kv.Batch {
	b := s.Store.NewBatch()
	if s.failWrites.Load() {
		return failingBatch{b}
	}
	return b
}

type failingBatch struct{ kv.Batch }

func (failingBatch) Write() error {
	return fmt.Errorf("%w in /data/blocks.db: batch write: write /data/blocks.db/000007.log: no space left on device", kv.ErrStorage)
}

// A damaged block store on the API path: the client gets a generic 500, the operator an ERROR
// line with what to do, a counter and /readyz; the pebble message never reaches the client.
func TestStoreReadFailureReported(t *testing.T) {
	home, _ := soloHome(t, "memdb")
	logger, logs := newTestLogger()
	fs := &faultyStore{}
	n, _, _ := startNode(t, home, logger, func(n *Node) { fs.Store = n.blocks.db; n.blocks.db = fs })
	c := api.NewClient(n.APIAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	fs.failBlockReads.Store(true)
	var body api.ErrorResponse
	if code := getJSON(t, n, "/v1/blocks/1", &body); code != 500 || body.Error != storeFaultMessage {
		t.Fatalf("GET /v1/blocks/1 on a damaged store: %d %+v, want 500 %q", code, body, storeFaultMessage)
	}
	line := logs.lineWith("level=ERROR", "store failure: reading block 1")
	for _, want := range []string{"checksum mismatch", "move", "resync from peers", "keep", WALFile} {
		if !strings.Contains(line, want) {
			t.Errorf("store failure line lacks %q: %s", want, line)
		}
	}
	if v := scrapeMetric(t, ctx, n, "guild_store_errors_total"); v != "1" {
		t.Errorf("guild_store_errors_total = %q, want 1", v)
	}
	var ready api.ReadyResponse
	if code := getJSON(t, n, "/readyz", &ready); code != 503 || !strings.Contains(strings.Join(ready.Reasons, "|"), "store read or write failed") {
		t.Errorf("readyz after a store failure: %d %+v", code, ready)
	}
	// A second failure soon after is counted but not logged again.
	getJSON(t, n, "/v1/blocks/1", nil)
	if v := scrapeMetric(t, ctx, n, "guild_store_errors_total"); v != "2" {
		t.Errorf("guild_store_errors_total = %q, want 2", v)
	}
	if got := strings.Count(logs.String(), "store failure: reading block 1"); got != 1 {
		t.Errorf("%d store failure lines, want 1 (rate-limited)", got)
	}
}

// A write that fails under a decided block stops the node with one ERROR line saying what to do,
// and Run returns the error (the CLI exits non-zero with it).
func TestStoreWriteFailureStopsTheNode(t *testing.T) {
	home, _ := soloHome(t, "memdb")
	logger, logs := newTestLogger()
	fs := &faultyStore{}
	n, done, _ := startNode(t, home, logger, func(n *Node) { fs.Store = n.blocks.db; n.blocks.db = fs })
	c := api.NewClient(n.APIAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	fs.failWrites.Store(true)
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("the node went on after a failed block write")
	}
	if !errors.Is(err, kv.ErrStorage) {
		t.Fatalf("Run returned %v, want the storage failure", err)
	}
	line := logs.lineWith("level=ERROR", "the node stops")
	for _, want := range []string{"no space left on device", "free space", "resync from peers"} {
		if !strings.Contains(line, want) {
			t.Errorf("stop line lacks %q: %s", want, line)
		}
	}
}

func TestDiskMonitor(t *testing.T) {
	logger, logs := newTestLogger()
	var h nodeHealth
	free := int64(5 << 30)
	d := newDiskMonitor("/data", 1024, func(string) (int64, error) { return free, nil }, logger, &h)
	now := time.Now()
	step := func(bytes int64, at time.Duration) diskState {
		free = bytes
		d.check(now.Add(at))
		if h.diskFree.Load() != bytes {
			t.Fatalf("diskFree %d, want %d", h.diskFree.Load(), bytes)
		}
		return diskState(h.diskLevel.Load())
	}
	if l := step(5<<30, 0); l != diskOK || logs.String() != "" {
		t.Fatalf("plenty of space: level %d, logged %q", l, logs)
	}
	if l := step(500<<20, time.Second); l != diskLow || logs.lineWith("level=WARN", "disk space low", "free_mb=500") == "" {
		t.Fatalf("500 MB: level %d, log %q", l, logs)
	}
	step(400<<20, 2*time.Second) // same level, soon after: not logged again
	if got := strings.Count(logs.String(), "disk space low"); got != 1 {
		t.Errorf("%d low-disk lines, want 1", got)
	}
	if l := step(50<<20, 3*time.Second); l != diskCritical || logs.lineWith("level=ERROR", "disk nearly full", "free_mb=50") == "" {
		t.Fatalf("50 MB: level %d, log %q", l, logs)
	}
	step(40<<20, 3*time.Second+diskRepeatEvery) // still critical a minute later: said again
	if got := strings.Count(logs.String(), "disk nearly full"); got != 2 {
		t.Errorf("%d critical lines, want 2", got)
	}
	if l := step(2<<30, 5*time.Minute); l != diskOK || logs.lineWith("level=INFO", "disk space is sufficient again") == "" {
		t.Fatalf("freed: level %d, log %q", l, logs)
	}

	// Readiness follows the critical level.
	n := &Node{home: "/home"}
	n.health.diskLevel.Store(int32(diskCritical))
	n.health.diskFree.Store(50 << 20)
	n.health.started = time.Now()
	sched := &schedule{epochs: []epoch{{From: 1, Set: consensus.ValidatorSet{Validators: make([]consensus.Validator, 4)}}}}
	n.sched.Store(sched)
	n.blocks = &BlockStore{}
	if r := strings.Join(n.readiness([]string{"a", "b", "c"}), "|"); !strings.Contains(r, "disk nearly full: 50 MB free") {
		t.Errorf("readiness with a full disk: %q", r)
	}

	// A failing statfs is said once and leaves the metric unknown.
	var h2 nodeHealth
	h2.diskFree.Store(-1)
	logs2 := &logBuffer{}
	d = newDiskMonitor("/data", 1024, func(string) (int64, error) { return 0, errors.New("boom") }, slog.New(slog.NewTextHandler(logs2, nil)), &h2)
	d.check(now)
	d.check(now.Add(time.Hour))
	if strings.Count(logs2.String(), "cannot read the free disk space") != 1 || h2.diskFree.Load() != -1 {
		t.Errorf("statfs failure: %q, free %d", logs2, h2.diskFree.Load())
	}
}

// syncPair is a node with blocks 1..blocks of one transfer each (src), and a new node of the
// same chain with none (dst); both closed when t ends.
func syncPair(t *testing.T, blocks int) (src, dst *Node) {
	t.Helper()
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.closeStores)
	c.grow(t, src, blocks, 1)
	if dst, err = New(c.home(t), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dst.closeStores)
	return src, dst
}

// Block sync sets catching_up while it fetches from peers that are ahead, and clears it after.
func TestCatchingUpWhileSyncing(t *testing.T) {
	src, dst := syncPair(t, 20)
	s := dst.newSyncer(fakeSyncNet{"peer": {height: 20, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}}})
	var seen, readyDuring bool
	s.apply = func(_ context.Context, bs []syncedBlock) error {
		seen = dst.health.catchingUp.Load()
		readyDuring = len(dst.readiness([]string{"peer"})) == 0
		_, local, fatal := dst.applySynced(bs)
		return errors.Join(local, fatal)
	}
	s.round(context.Background())
	if dst.blocks.Height() != 20 || !seen || readyDuring {
		t.Fatalf("height %d, catching up while applying: %v, ready then: %v", dst.blocks.Height(), seen, readyDuring)
	}
	// The chain may have moved on while the round fetched: the flag holds until a round finds
	// the node at the peers' height.
	if !dst.health.catchingUp.Load() {
		t.Error("not catching up right after a round that applied blocks")
	}
	if s.round(context.Background()) || dst.health.catchingUp.Load() {
		t.Error("still catching up after a round that found the node at the peers' height")
	}
}

// The tester's case (issue #9): bytes flipped in a table of a pebble block store. A block that is
// not read at start is served as a generic 500 with an ERROR line saying what to do; damage under
// what the node reads at start stops New with that advice.
func TestDamagedPebbleBlockStore(t *testing.T) {
	c := newSyncChain(t)
	home := c.home(t)
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Storage.Backend = "pebbledb"
	cfg.API.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.P2P.Permissioned = false
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	n, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.grow(t, n, 120, 2)
	n.closeStores()
	// Opening again moves pebble's log into a table on disk.
	if n, err = New(home, nil); err != nil {
		t.Fatal(err)
	}
	n.closeStores()
	tables, _ := filepath.Glob(filepath.Join(home, DataDir, "blocks.db", "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table in the block store")
	}
	flip := func(at func(size int) int) {
		for _, tbl := range tables {
			data, err := os.ReadFile(tbl)
			if err != nil {
				t.Fatal(err)
			}
			for i := at(len(data)); i < at(len(data))+16; i++ {
				data[i] ^= 0xff
			}
			if err := os.WriteFile(tbl, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	flip(func(int) int { return 100 }) // the first data block: the lowest keys, block 1 and its neighbours

	logger, logs := newTestLogger()
	n, done, stop := startNode(t, home, logger, nil)
	var body api.ErrorResponse
	if code := getJSON(t, n, "/v1/blocks/1", &body); code != 500 || body.Error != storeFaultMessage {
		t.Fatalf("GET /v1/blocks/1 from a damaged table: %d %+v", code, body)
	}
	line := logs.lineWith("level=ERROR", "store failure: reading block 1")
	for _, want := range []string{"blocks.db", "checksum", "resync from peers"} {
		if !strings.Contains(line, want) {
			t.Errorf("store failure line lacks %q: %s", want, line)
		}
	}
	var ready api.ReadyResponse
	if code := getJSON(t, n, "/readyz", &ready); code != 503 || !strings.Contains(strings.Join(ready.Reasons, "|"), "store read or write failed") {
		t.Errorf("readyz: %d %+v", code, ready)
	}
	stop()
	<-done

	// Damage at the table's end (its index) stops the node at start, saying what to do.
	flip(func(size int) int { return size - 120 })
	logger, logs = newTestLogger()
	_, err = New(home, logger)
	if !errors.Is(err, kv.ErrStorage) || !strings.Contains(err.Error(), "resync from peers") {
		t.Fatalf("New on a store damaged under its tip: %v", err)
	}
	// Pebble retries what failed in the background at once; the log says it once.
	if got := strings.Count(logs.String(), "storage engine error"); got > 1 {
		t.Errorf("%d lines for pebble's background errors, want at most 1", got)
	}
}

// /readyz is 503 until the node knows the peers' height and is within one block of it, and while
// the validators it reaches cannot make a quorum (issue #11); a peer claiming a height that does
// not exist cannot keep it unready.
func TestReadinessKnowsTheTipAndTheQuorum(t *testing.T) {
	n := &Node{home: "/home"}
	n.health.started = time.Now()
	n.sched.Store(&schedule{epochs: []epoch{{From: 1,
		Set:   consensus.ValidatorSet{Validators: []consensus.Validator{{Power: 1}, {Power: 1}, {Power: 1}, {Power: 1}}},
		Names: []string{"org1", "org2", "org3", "org4"}, Peers: []string{"a", "b", "c", "d"}}}})
	n.blocks = &BlockStore{} // height 0
	reasons := func(connected ...string) string { return strings.Join(n.readiness(connected), "|") }

	if r := reasons(); !strings.Contains(r, "no p2p peers connected") || !strings.Contains(r, "reaches validators with 0 of 4") {
		t.Errorf("no peers: %q", r)
	}
	if r := reasons("a", "b", "c"); !strings.Contains(r, "no peer has told its height yet") {
		t.Errorf("tip unknown: %q", r)
	}
	n.health.tipKnown.Store(true)
	n.health.peersTip.Store(5)
	if r := reasons("a", "b", "c"); r != "behind: at height 0, peers at 5" {
		t.Errorf("behind: %q", r)
	}
	n.health.peersTip.Store(1)
	if r := reasons("a", "b", "c"); r != "" {
		t.Errorf("within one block, 3 of 4 reached: %q, want ready", r)
	}
	if r := reasons("a", "b", "x"); !strings.Contains(r, "reaches validators with 2 of 4 voting power (org1, org2)") {
		t.Errorf("2 of 4 reached: %q", r)
	}
	if tip := tipOf(map[string]uint64{"a": 5, "b": 6, "c": 1 << 40}, 1); tip != 6 {
		t.Errorf("tip with one peer lying: %d, want 6", tip)
	}
	if tip := tipOf(map[string]uint64{"a": 5}, 1); tip != 5 {
		t.Errorf("tip of one peer: %d, want 5", tip)
	}
}

// A node catching up applies a batch of synced blocks a slice of the loop's time at a time, and
// the loop answers probes between slices: a batch of 128 blocks under load is seconds of work,
// and the watchdog used to log "event loop has not answered" (and GET /healthz to fail) while a
// node did nothing but catch up.
func TestSyncAppliesASliceATime(t *testing.T) {
	src, dst := syncPair(t, 20)
	dst.syncSlice = time.Nanosecond               // one block a turn
	dst.health.probes = make(chan chan loopProbe) // startHealth's, without its goroutines
	// The loop's part: serve sync turns and probes, as Run's select does.
	stop := make(chan struct{})
	defer close(stop)
	var turns, probesDuring atomic.Int32
	go func() {
		for {
			select {
			case req := <-dst.syncCh:
				turns.Add(1)
				if _, err := dst.serveSyncApply(req); err != nil {
					t.Error(err)
				}
			case reply := <-dst.health.probes:
				if h := dst.blocks.Height(); h > 0 && h < 20 {
					probesDuring.Add(1)
				}
				reply <- loopProbe{}
			case <-stop:
				return
			}
		}
	}()
	s := dst.newSyncer(fakeSyncNet{"peer": {height: 20, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}}})
	applied := make(chan struct{})
	var once sync.Once
	s.apply = func(ctx context.Context, bs []syncedBlock) error {
		defer once.Do(func() { close(applied) })
		return dst.applySyncedFromLoop(ctx, bs)
	}
	// A probe at every turn: each must be answered while the batch is still being applied.
	go func() {
		for {
			select {
			case <-applied:
				return
			default:
			}
			dst.probeLoop(context.Background(), time.Second)
		}
	}()
	s.round(context.Background())
	if dst.blocks.Height() != 20 {
		t.Fatalf("height %d after syncing 20 blocks", dst.blocks.Height())
	}
	if n := turns.Load(); n < 20 {
		t.Errorf("20 blocks applied in %d turns of the loop, with a slice of one block", n)
	}
	if probesDuring.Load() == 0 {
		t.Error("no probe was answered while the batch was applied")
	}
}

// A store whose engine has stopped writes is exported per store, and makes the node not ready
// once the stall has lasted storageStallNotReady; a short one does not.
func TestStorageStallNotReady(t *testing.T) {
	now := time.Now()
	stats := map[string]kv.EngineStats{
		"blocks": {WriteStalls: 3, StalledSince: now.Add(-5 * time.Second), StalledFor: 6 * time.Second, CompactionDebt: 300 << 20, L0Sublevels: 24,
			FlushedBytes: 1000, CompactedBytes: 2500},
		"state": {WriteStalls: 1, StalledSince: now.Add(-100 * time.Millisecond)},
	}
	n := &Node{home: "/home", engineStatsFn: func() map[string]kv.EngineStats { return stats }}
	n.health.started = now
	n.sched.Store(&schedule{epochs: []epoch{{From: 1, Set: consensus.ValidatorSet{Validators: make([]consensus.Validator, 4)}}}})
	n.blocks = &BlockStore{}
	r := strings.Join(n.readiness([]string{"a", "b", "c"}), "|")
	if !strings.Contains(r, "the blocks store has stopped writes for 5s") || !strings.Contains(r, "300 MB of debt") {
		t.Errorf("readiness while the block store stalls: %q", r)
	}
	if strings.Contains(r, "state store") {
		t.Errorf("a stall of 100 ms made the node not ready: %q", r)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newStorageCollector(n))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = v
		}
	}
	for k, want := range map[string]float64{
		"guild_storage_write_stalled/blocks":             1,
		"guild_storage_write_stalls_total/blocks":        3,
		"guild_storage_write_stall_seconds_total/blocks": 6,
		"guild_storage_compaction_debt_bytes/blocks":     300 << 20,
		"guild_storage_l0_sublevels/blocks":              24,
		"guild_storage_flushed_bytes_total/blocks":       1000,
		"guild_storage_compacted_bytes_total/blocks":     2500,
		"guild_storage_write_stalled/state":              1,
		"guild_storage_write_stalls_total/state":         1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}

	// Once the stall is over, the node is ready again (as far as its stores go).
	stats["blocks"] = kv.EngineStats{WriteStalls: 3, StalledFor: 7 * time.Second}
	if r := strings.Join(n.readiness([]string{"a", "b", "c"}), "|"); strings.Contains(r, "store") {
		t.Errorf("readiness after the stall: %q", r)
	}
}

// A node on pebble exports its stores' engine health from the start.
func TestStorageMetricsFromRealStores(t *testing.T) {
	dir := t.TempDir()
	opts := kv.Options{Logger: slog.New(slog.DiscardHandler)}
	var err error
	n := &Node{}
	if n.blockDB, err = kv.OpenWith(kv.PebbleDB, dir, "blocks", opts); err != nil {
		t.Fatal(err)
	}
	defer n.blockDB.Close()
	if n.stateDB, err = kv.OpenWith(kv.PebbleDB, dir, "state", opts); err != nil {
		t.Fatal(err)
	}
	defer n.stateDB.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newStorageCollector(n))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "guild_storage_write_stalled" {
			series = len(mf.GetMetric())
		}
	}
	if series != 2 {
		t.Fatalf("guild_storage_write_stalled: %d series, want one per store", series)
	}
	if len(n.storageStalls(time.Now())) != 0 {
		t.Errorf("fresh stores stall: %v", n.storageStalls(time.Now()))
	}
}
