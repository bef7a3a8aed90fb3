package testnet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
)

// longEnv=1 runs the long real-process tests (make events-load). eventsBaselineEnv=1 runs
// TestSlowEventSubscriberUnderLoad without its slow subscriber and prints node1's peak RSS: the
// measurement eventsRSSBound is set from.
const (
	longEnv           = "GUILD_LONG"
	eventsBaselineEnv = "GUILD_EVENTS_BASELINE"
)

// The load and the slow subscriber's behaviour.
const (
	eventsLoadRate     = 2000             // transfers per second
	eventsLoadDuration = 60 * time.Second // of submitting
	// eventsWriteTimeout is node1's [api] events_write_timeout_ms: short, so that each stall of
	// the slow subscriber (slowStall, every slowStallEvery) cuts it off.
	eventsWriteTimeout = 2 * time.Second
	slowStall          = 3 * time.Second
	slowStallEvery     = 15 * time.Second
	// Between stalls it takes slowBatch events and then sleeps slowBatchPause: 500 events/s, a
	// quarter of the events the load makes.
	slowBatch      = 25
	slowBatchPause = 50 * time.Millisecond
	// slowRcvBuf is the slow subscriber's socket receive buffer, set before it connects (the
	// kernel doubles it and applies its minimum): little lies between its reads and the node's
	// writes, so the node's writes block as soon as it falls behind.
	slowRcvBuf = 4096
	// slowSubscribers read slowly; the first stallingSubscribers of them also stall. More slow
	// subscribers did not make the RSS bound sharper: with 8 (2 stalling), node1 peaked at
	// 228-270 MiB, and at 240-288 MiB when built to queue each one's backlog in memory; the
	// in-process TestStalledEventSubscriberHoldsNoBacklog (package node) is the sharp check.
	slowSubscribers     = 1
	stallingSubscribers = 1
)

// eventsRSSBound is the most node1's RSS may reach during TestSlowEventSubscriberUnderLoad:
// the baseline peak + 64 MiB. Measured on a 2-core machine shared with other jobs, 2,000 tx/s
// offered for 60 s: with only the fast subscriber (GUILD_EVENTS_BASELINE=1, 1,837 tx/s
// finalized) node1 peaked at 187.1 MiB; with the slow one too (1,649 tx/s), at 201.9 MiB. It
// guards against gross growth only: a node built to queue the slow subscriber's events in
// memory peaked at 214.6 MiB, because each cutoff dropped its queue.
const eventsRSSBound = 251 << 20

// Under 2,000 tx/s for 60 s, a deliberately slow subscriber of node1's /v1/events (all kinds,
// from height 1) falls behind, stalls longer than events_write_timeout_ms and is cut off, and
// resumes each time from its last event ID; once the load is over it reads to the end. Its
// sequence of events equals a fast subscriber's and a fresh read from height 1: the same IDs,
// kinds and data, every position of every block, none twice. Node1's RSS, sampled every second,
// stays under eventsRSSBound: the node holds no backlog for a subscriber, which only falls
// behind in the block store.
func TestSlowEventSubscriberUnderLoad(t *testing.T) {
	if os.Getenv(longEnv) != "1" {
		t.Skipf("long test (~2 min once guild is built: a 4-node testnet under %d tx/s for %v with a slow event subscriber): "+
			"run it with %s=1 or make events-load", eventsLoadRate, eventsLoadDuration, longEnv)
	}
	baseline := os.Getenv(eventsBaselineEnv) == "1"
	tn := startTestnetWith(t, 10*time.Minute, func(c *node.Config) {
		c.API.EventsWriteTimeoutMillis = int(eventsWriteTimeout / time.Millisecond)
	})
	ctx, clients := tn.ctx, tn.clients
	pid, err := readPID(tn.m.Nodes[0].Home)
	if err != nil || pid == 0 {
		t.Fatalf("node1's PID: %d %v", pid, err)
	}
	waitHeights(t, ctx, clients, 2)
	rss := sampleRSS(ctx, pid, clients[0].Base(), time.Second)

	// Every subscriber starts at height 1; each stops at the first event above stopAbove once it is
	// set (the tip after the load).
	var stopAbove atomic.Uint64
	var slowMode atomic.Bool
	slowMode.Store(true)
	fast := &subscriber{name: "fast", c: clients[0], stop: &stopAbove}
	subs := []*subscriber{fast}
	var slows []*subscriber
	for i := range slowSubscribers {
		if baseline {
			break
		}
		slows = append(slows, &subscriber{name: fmt.Sprintf("slow%d", i+1), stop: &stopAbove, pace: slowPacer(&slowMode, i < stallingSubscribers),
			c: api.NewClientWith(clients[0].Base(), &http.Client{Transport: smallRcvBufTransport()})})
	}
	subs = append(subs, slows...)
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { s.run(ctx) })
	}

	// How far the slow subscribers fall behind, sampled as the load runs.
	var maxLag atomic.Uint64
	lagCtx, stopLag := context.WithCancel(ctx)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-lagCtx.Done():
				return
			case <-tick.C:
			}
			if st, err := clients[0].Status(lagCtx); err == nil {
				for _, s := range slows {
					if at := s.height.Load(); at > 0 && st.Height > at && st.Height-at > maxLag.Load() {
						maxLag.Store(st.Height - at)
					}
				}
			}
		}
	}()

	rep, err := RunLoad(ctx, LoadOptions{Dir: tn.dir, Passphrase: testPassphrase, Rate: eventsLoadRate, Duration: eventsLoadDuration})
	stopLag()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	st, err := clients[0].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tip := st.Height
	loadPeak, loadLive := rss.peakSoFar()
	slowAtEnd := uint64(0)
	for _, s := range slows {
		slowAtEnd = max(slowAtEnd, s.height.Load())
	}
	slowMode.Store(false) // the load is over: the slow subscribers read the rest at full speed
	stopAbove.Store(tip)
	catchUp := time.Now()
	wg.Wait()
	caughtUp := time.Since(catchUp)
	peak := rss.stop()
	hwm := procStatusKiB(pid, "VmHWM")

	fresh := &subscriber{name: "fresh", c: clients[0], stop: &stopAbove}
	fresh.run(ctx)
	want := fresh.upTo(tip)
	if err := contiguous(want, tip); err != nil {
		t.Fatalf("a fresh read of heights 1..%d: %v", tip, err)
	}
	for _, s := range append(subs, fresh) {
		if s.err != nil {
			t.Fatalf("%s subscriber: %v", s.name, s.err)
		}
	}
	for _, s := range subs {
		if err := sameEvents(s.upTo(tip), want); err != nil {
			t.Errorf("%s subscriber vs a fresh read from height 1: %v", s.name, err)
		}
	}
	// A counter vector has no sample before its first increment: absent is 0.
	cut, _ := scrapeMetric(ctx, clients[0].Base(), `guild_events_cut_total{reason="slow"}`)

	t.Logf("load: %d tx/s offered for %v; submitted %d (%.0f/s), finalized %d (%.0f tx/s), %d blocks",
		eventsLoadRate, eventsLoadDuration, rep.Submitted, rep.SubmitRate, rep.Finalized, rep.FinalizedRate, rep.Blocks)
	t.Logf("events: %d compared (heights 1..%d), in %d blocks", len(want), tip, tip)
	_, live := rss.peakSoFar()
	t.Logf("node1 RSS: peak %.1f MiB sampled every second (%.1f MiB until the load ended; VmHWM %.1f MiB); bound %.0f MiB; %d samples",
		mib(peak), mib(loadPeak), mib(hwm), mib(eventsRSSBound), rss.count())
	t.Logf("node1 live heap (next_gc/2): peak %.1f MiB (%.1f MiB until the load ended)", mib(live), mib(loadLive))
	for _, s := range subs {
		t.Logf("%s subscriber: %d streams (%d resumes with Last-Event-ID; ends: %s)", s.name, s.streams, s.streams-1, s.endsSummary())
	}
	if baseline {
		t.Logf("baseline (%s=1, no slow subscriber): node1's peak RSS %.1f MiB", eventsBaselineEnv, mib(peak))
		return
	}
	t.Logf("slow subscribers (%d): at most %d blocks behind during the load, the most advanced at height %d of %d when it ended; all read the rest in %v; node1 cut off %v slow subscribers",
		len(slows), maxLag.Load(), slowAtEnd, tip, caughtUp.Round(time.Millisecond), cut)
	for _, s := range slows[:stallingSubscribers] {
		if s.streams < 2 {
			t.Errorf("%s was never cut off: the node's writes to it never blocked for %v, so the test did not test a subscriber the node must wait for",
				s.name, eventsWriteTimeout)
		}
	}
	if cut < 1 {
		t.Errorf("node1 counted no slow subscriber cut off (guild_events_cut_total{reason=\"slow\"} %v)", cut)
	}
	if peak > eventsRSSBound {
		t.Errorf("node1's RSS peaked at %.1f MiB with %d slow subscribers, above the bound %.0f MiB", mib(peak), len(slows), mib(eventsRSSBound))
	}
}

// subscriber reads node events from height 1, resuming from its last ID whenever the stream
// ends, until an event above stop arrives.
type subscriber struct {
	name    string
	c       *api.Client
	stop    *atomic.Uint64
	pace    func() // called after each event; nil: read at full speed
	events  []eventRec
	height  atomic.Uint64 // of the last event read
	streams int
	ends    map[string]int // why streams ended, but the last
	err     error
}

// eventRec is one event as read: ID, kind, a digest of its data, and for a block event the
// number of events after it in the block.
type eventRec struct {
	id, kind string
	data     uint64
	more     int
}

var errPastStop = errors.New("past the stop height")

// maxResumes bounds the reconnections of one subscriber: each stall cuts it off once.
const maxResumes = 100

func (s *subscriber) run(ctx context.Context) {
	s.ends = map[string]int{}
	after := ""
	for {
		q := api.EventsQuery{After: after, IdleTimeout: 30 * time.Second}
		if after == "" {
			q.FromHeight = 1
		}
		s.streams++
		last, err := s.c.Events(ctx, q, s.take)
		if errors.Is(err, errPastStop) {
			return
		}
		if ctx.Err() != nil || s.streams > maxResumes {
			s.err = fmt.Errorf("after %d streams: %w", s.streams, err)
			return
		}
		// Cut off: what ended the stream is kept for the report, the last ID to resume from.
		msg := err.Error()
		if errors.Is(err, api.ErrEventStreamCut) {
			msg = "cutoff event"
		}
		s.ends[msg]++
		after = last
	}
}

func (s *subscriber) take(ev api.StreamEvent) error {
	id, err := api.ParseEventID(ev.ID)
	if err != nil {
		return fmt.Errorf("event %q: %w", ev.ID, err)
	}
	if stop := s.stop.Load(); stop > 0 && id.Height > stop {
		return errPastStop
	}
	h := fnv.New64a()
	h.Write(ev.Data)
	r := eventRec{id: ev.ID, kind: ev.Type, data: h.Sum64(), more: -1}
	if ev.Type == api.EventBlock {
		var b api.BlockEventJSON
		if err := json.Unmarshal(ev.Data, &b); err != nil {
			return fmt.Errorf("block event %s: %w", ev.ID, err)
		}
		r.more = b.Txs + b.Evidence
	}
	s.events = append(s.events, r)
	s.height.Store(id.Height)
	if s.pace != nil {
		s.pace()
	}
	return nil
}

// upTo is what the subscriber read at heights 1..tip (one that reads ahead of tip before it is
// told the tip reads a little more).
func (s *subscriber) upTo(tip uint64) []eventRec {
	for i, r := range s.events {
		if id, _ := api.ParseEventID(r.id); id.Height > tip {
			return s.events[:i]
		}
	}
	return s.events
}

func (s *subscriber) endsSummary() string {
	if len(s.ends) == 0 {
		return "none"
	}
	var parts []string
	for msg, n := range s.ends {
		parts = append(parts, fmt.Sprintf("%d× %s", n, msg))
	}
	return strings.Join(parts, "; ")
}

// slowPacer reads slowBatch events then sleeps slowBatchPause, and stops reading for slowStall
// every slowStallEvery if stalls, while slow is set.
func slowPacer(slow *atomic.Bool, stalls bool) func() {
	n, lastStall := 0, time.Now()
	return func() {
		if !slow.Load() {
			return
		}
		if stalls && time.Since(lastStall) >= slowStallEvery {
			time.Sleep(slowStall)
			lastStall = time.Now()
		}
		if n++; n%slowBatch == 0 {
			time.Sleep(slowBatchPause)
		}
	}
}

// smallRcvBufTransport dials with a socket receive buffer of slowRcvBuf bytes, set before the
// connection is made so that the window it advertises is small from the start.
func smallRcvBufTransport() *http.Transport {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, slowRcvBuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	return &http.Transport{DialContext: d.DialContext, ReadBufferSize: slowRcvBuf}
}

// contiguous checks that evs is every event of heights 1..tip in order: each block event, then
// positions 1..n of its block (n from the block event), then the next block.
func contiguous(evs []eventRec, tip uint64) error {
	i := 0
	for h := uint64(1); h <= tip; h++ {
		if i >= len(evs) || evs[i].id != fmt.Sprintf("%d-0", h) || evs[i].kind != api.EventBlock {
			return fmt.Errorf("event %d: want block %d-0, got %v", i, h, at(evs, i))
		}
		more := evs[i].more
		i++
		for p := 1; p <= more; p++ {
			if i >= len(evs) || evs[i].id != fmt.Sprintf("%d-%d", h, p) {
				return fmt.Errorf("event %d: want %d-%d (block %d has %d events after it), got %v", i, h, p, h, more, at(evs, i))
			}
			i++
		}
	}
	if i != len(evs) {
		return fmt.Errorf("%d events after block %d's last: %v", len(evs)-i, tip, evs[i])
	}
	return nil
}

func at(evs []eventRec, i int) any {
	if i < len(evs) {
		return evs[i]
	}
	return "the end"
}

// sameEvents reports the first difference between got and want (ID, kind or data).
func sameEvents(got, want []eventRec) error {
	for i := range min(len(got), len(want)) {
		if got[i].id != want[i].id || got[i].kind != want[i].kind || got[i].data != want[i].data {
			return fmt.Errorf("event %d is %s %s (data %x), want %s %s (data %x)", i,
				got[i].id, got[i].kind, got[i].data, want[i].id, want[i].kind, want[i].data)
		}
	}
	if len(got) != len(want) {
		n := min(len(got), len(want))
		return fmt.Errorf("%d events, want %d: the first %d agree, then got %v, want %v", len(got), len(want), n, at(got, n), at(want, n))
	}
	return nil
}

// rssSampler records a process's largest VmRSS, read every period.
type rssSampler struct {
	done    chan struct{}
	cancel  context.CancelFunc
	mu      sync.Mutex
	peak    uint64
	samples int
	// live is the largest heap found live by a collection: half the next collection's target
	// (GOGC=100), from the node's go_memstats_next_gc_bytes.
	live uint64
}

func sampleRSS(ctx context.Context, pid int, base string, period time.Duration) *rssSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &rssSampler{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			if v := procStatusKiB(pid, "VmRSS"); v > 0 {
				s.mu.Lock()
				s.peak, s.samples = max(s.peak, v), s.samples+1
				s.mu.Unlock()
			}
			if v, err := scrapeMetric(ctx, base, "go_memstats_next_gc_bytes"); err == nil {
				s.mu.Lock()
				s.live = max(s.live, uint64(v)/2)
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak in bytes.
func (s *rssSampler) stop() uint64 {
	s.cancel()
	<-s.done
	return s.peak
}

func (s *rssSampler) peakSoFar() (rss, live uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.live
}

func (s *rssSampler) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// procStatusKiB reads a "Field:   N kB" line of /proc/PID/status, in bytes; 0 if absent.
func procStatusKiB(pid int, field string) uint64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// scrapeMetric reads one sample of a node's /metrics by its full name (with labels, if any).
func scrapeMetric(ctx context.Context, base, sample string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no sample %s", base, sample)
}
