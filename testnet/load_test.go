package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentileNearestRank(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{ms(7)}, 99, ms(7)},
		{"p0 is the minimum", hundred, 0, ms(1)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p90 of 1..100", hundred, 90, ms(90)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p100 is the maximum", hundred, 100, ms(100)},
		{"p50 of three", []time.Duration{ms(10), ms(20), ms(30)}, 50, ms(20)},
		{"p90 of three rounds up", []time.Duration{ms(10), ms(20), ms(30)}, 90, ms(30)},
		{"p50 of four takes the lower middle", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 50, ms(2)},
		{"p99 of ten is the maximum", []time.Duration{ms(1), ms(2), ms(3), ms(4), ms(5), ms(6), ms(7), ms(8), ms(9), ms(1000)}, 99, ms(1000)},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(p%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestSummarizeSortsAndTakesPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 200; i >= 1; i-- { // descending: summarize must sort
		lat = append(lat, ms(i))
	}
	got := summarize(lat)
	want := LatencySummary{Count: 200, P50: ms(100), P90: ms(180), P99: ms(198), Max: ms(200)}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if (summarize(nil) != LatencySummary{}) {
		t.Error("summarize(nil) is not zero")
	}
	b, err := json.Marshal(LatencySummary{Count: 1, P50: 1500 * time.Microsecond, Max: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"count":1,"p50":1.5,"p90":0,"p99":0,"max":2000}` {
		t.Errorf("latency JSON in ms: %s", b)
	}
}

func TestTrackerMatchesBlocksToSubmissions(t *testing.T) {
	tx := func(i byte) ([]byte, state.Hash) {
		raw := []byte{0xa0, i}
		return raw, state.HashTx(raw)
	}
	raw1, h1 := tx(1)
	_, h2 := tx(2)
	raw3, h3 := tx(3)
	_, h4 := tx(4)
	t0 := time.Unix(1000, 0)
	tr := newTracker()
	tr.splitAt = t0.Add(ms(15)) // h3 (and h4) accepted after it
	tr.sent(t0, h1)
	tr.sent(t0.Add(ms(10)), h2)
	tr.sent(t0.Add(ms(20)), h3)
	tr.sent(t0.Add(ms(30)), h4)
	tr.rejected(signedTx{hash: h4}) // rejected by the API

	// Block 1 lists results: h1 applied, h2 failed, plus a transaction someone else sent.
	other := state.HashTx([]byte("other"))
	b1 := &api.BlockResponse{Height: 1, Txs: []string{"00", "00", "00"}, Results: []api.TxResultJSON{
		{Hash: h1.String()}, {Hash: h2.String(), Error: "state: wrong nonce"}, {Hash: other.String()},
	}}
	if err := tr.observe(b1, t0.Add(ms(100))); err != nil {
		t.Fatal(err)
	}
	if got := tr.pending(3); got != 1 {
		t.Errorf("pending after block 1 = %d, want 1", got)
	}
	// Block 2 has no results: the tracker hashes the transactions itself.
	b2 := &api.BlockResponse{Height: 2, Txs: []string{hex.EncodeToString(raw3), hex.EncodeToString(raw1)}}
	if err := tr.observe(b2, t0.Add(ms(220))); err != nil {
		t.Fatal(err)
	}
	// An empty block after the last finalization is outside the window.
	if err := tr.observe(&api.BlockResponse{Height: 3}, t0.Add(ms(900))); err != nil {
		t.Fatal(err)
	}
	if got := tr.pending(3); got != 0 {
		t.Errorf("pending after block 2 = %d, want 0", got)
	}

	var r LoadReport
	tr.report(&r)
	if r.Finalized != 2 || r.FailedInBlock != 1 {
		t.Errorf("finalized %d failed %d, want 2 and 1 (h1 counted once)", r.Finalized, r.FailedInBlock)
	}
	if r.Window != ms(220) {
		t.Errorf("window %v, want 220ms (first submit to last finalization)", r.Window)
	}
	if r.Blocks != 2 || r.AvgTxsPerBlock != 2.5 {
		t.Errorf("blocks %d avg %.2f, want 2 and 2.5", r.Blocks, r.AvgTxsPerBlock)
	}
	if want := (LatencySummary{Count: 2, P50: ms(100), P90: ms(200), P99: ms(200), Max: ms(200)}); r.Latency != want {
		t.Errorf("latency %+v, want %+v", r.Latency, want)
	}
	if want := (LatencySummary{Count: 1, P50: ms(200), P90: ms(200), P99: ms(200), Max: ms(200)}); r.LatencyAfter != want {
		t.Errorf("latency after the split %+v, want %+v (h3 alone)", r.LatencyAfter, want)
	}
	if r.FinalizedRate < 9.09 || r.FinalizedRate > 9.10 {
		t.Errorf("finalized rate %.3f, want 2/0.22s", r.FinalizedRate)
	}
}

func TestReleaseCountsWhatNobodyTook(t *testing.T) {
	// Nobody takes releases: the first batches fill the buffer, the rest of the 50 due in 50 ms
	// at 1000/s are dropped and counted.
	tokens := make(chan int, 2)
	behind := release(context.Background(), tokens, 1000, 50*time.Millisecond, time.Now(), 1, nil)
	n, batches := 0, 0
	for b := range tokens { // closed at the end
		n += b
		batches++
	}
	if batches != 2 || behind == 0 || n+behind != 50 {
		t.Errorf("%d batches of %d in all buffered, %d behind: want 2 batches and the rest of 50 behind", batches, n, behind)
	}
}

func TestReleaseKeepsTheRate(t *testing.T) {
	tokens := make(chan int, 1000)
	got := make(chan int)
	go func() {
		n := 0
		for b := range tokens {
			n += b
		}
		got <- n
	}()
	behind := release(context.Background(), tokens, 2000, 200*time.Millisecond, time.Now(), 4, nil)
	if n := <-got; n != 400 || behind != 0 {
		t.Errorf("released %d with %d behind, want exactly 400 and 0", n, behind)
	}
}

// A tick's releases leave in about lanes batches, not one per transaction: idle workers each
// took one release, and below saturation nearly every request carried a single transaction.
func TestReleaseBatchesEachTick(t *testing.T) {
	tokens := make(chan int, 10000)
	behind := release(context.Background(), tokens, 8000, 300*time.Millisecond, time.Now(), 4, nil)
	n, batches := 0, 0
	for b := range tokens {
		n += b
		batches++
	}
	// 30 ticks (a busy machine may merge some), up to 4 batches each.
	if n != 2400 || behind != 0 || batches > 4*31 {
		t.Errorf("released %d in %d batches, %d behind: want 2400 in at most %d", n, batches, behind, 4*31)
	}
}

func TestRunLoadAgainstFakeNode(t *testing.T) {
	dir, ctx := upFakeNode(t, fakeServe)
	var progress strings.Builder
	var opened, closed []time.Time // the bench reads the phases there
	r, err := RunLoad(ctx, LoadOptions{
		Dir: dir, Passphrase: testPassphrase, Rate: 500, Duration: 600 * time.Millisecond,
		Accounts: 8, Stragglers: 5 * time.Second, Progress: &progress,
		OnSubmitting: func() { opened = append(opened, time.Now()) },
		OnSubmitted:  func() { closed = append(closed, time.Now()) },
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(opened) != 1 || len(closed) != 1 || opened[0].After(r.SubmitStart) ||
		closed[0].Before(r.SubmitStart.Add(r.SubmitWindow)) {
		t.Errorf("window hooks at %v and %v, want once each around the window %v + %v", opened, closed, r.SubmitStart, r.SubmitWindow)
	}
	t.Logf("progress:\n%s", progress.String())
	var text strings.Builder
	r.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	// 500/s for 0.6 s releases exactly 300: each submitted, or counted as behind.
	if r.Submitted+r.Behind != 300 || r.Submitted == 0 {
		t.Errorf("submitted %d and %d behind, want 300 in all", r.Submitted, r.Behind)
	}
	if r.Rejected != 0 || r.Errors != 0 || r.Accepted != r.Submitted {
		t.Errorf("rejected %d errors %d accepted %d of %d", r.Rejected, r.Errors, r.Accepted, r.Submitted)
	}
	// 5 transactions are due every 10 ms tick: they leave together, not as one request each.
	if r.Requests == 0 || r.Requests > r.Submitted/3 {
		t.Errorf("%d requests for %d transactions: a tick's releases should leave in one", r.Requests, r.Submitted)
	}
	if r.Finalized != r.Accepted {
		t.Errorf("finalized %d of %d accepted", r.Finalized, r.Accepted)
	}
	if r.Blocks == 0 || r.Latency.Count != r.Finalized || r.Latency.Max <= 0 || r.FinalizedRate <= 0 {
		t.Errorf("report: %+v", r)
	}
	if !slices.Equal(r.Nodes, []string{r.Follow}) {
		t.Errorf("nodes %v, follow %s", r.Nodes, r.Follow)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"submitted":`, `"rejected":`, `"finalized":`, `"finalized_tps":`, `"blocks":`, `"avg_txs_per_block":`, `"p99":`, `"window_s":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("report JSON lacks %s: %s", key, b)
		}
	}
}

// Transactions a node accepted but never committed are counted, not silently left out.
func TestRunLoadReportsAcceptedNotFinalized(t *testing.T) {
	dir, ctx := upFakeNode(t, fakeLossy)
	r, err := RunLoad(ctx, LoadOptions{
		Dir: dir, Passphrase: testPassphrase, Rate: 200, Duration: 300 * time.Millisecond,
		Accounts: 4, Stragglers: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.NotFinalized == 0 || r.NotFinalized != r.Accepted-r.Finalized-r.FailedInBlock {
		t.Errorf("accepted %d, finalized %d, not finalized %d", r.Accepted, r.Finalized, r.NotFinalized)
	}
	var text strings.Builder
	r.WriteText(&text)
	if !strings.Contains(text.String(), "accepted but not finalized") {
		t.Errorf("report:\n%s", text.String())
	}
	if b, _ := json.Marshal(r); !strings.Contains(string(b), `"not_finalized":`) {
		t.Errorf("report JSON: %s", b)
	}
}

// When the node whose blocks are followed dies (and no other answers), RunLoad still returns its
// report, with the error.
func TestRunLoadReportsWhenFollowedNodeDies(t *testing.T) {
	dir, ctx := upFakeNode(t, fakeServe)
	var once sync.Once
	r, err := RunLoad(ctx, LoadOptions{
		Dir: dir, Passphrase: testPassphrase, Rate: 200, Duration: 2 * time.Second,
		Accounts: 4, Stragglers: 5 * time.Second, FollowGiveUp: 500 * time.Millisecond,
		// Kill the node once a first load transaction is final.
		OnFinal: func(state.Hash, uint64) {
			once.Do(func() {
				if _, err := Kill(dir, 1); err != nil {
					t.Errorf("kill: %v", err)
				}
			})
		},
	})
	if err == nil || !strings.Contains(err.Error(), "following blocks") {
		t.Fatalf("err %v, want the following error", err)
	}
	if r == nil {
		t.Fatal("no report")
	}
	if r.Finalized == 0 || r.Submitted == 0 || r.NotFinalized != r.Accepted-r.Finalized-r.FailedInBlock {
		t.Errorf("report: %+v", r)
	}
}

// upFakeNode brings up a one-node testnet of fake nodes in mode (see fakenode_test.go), stopped
// when the test ends, and a context that ends with the test or after a minute.
func upFakeNode(t testing.TB, mode string) (string, context.Context) {
	t.Helper()
	t.Setenv(fakeNodeEnv, mode)
	dir := t.TempDir()
	t.Cleanup(func() { Down(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if _, err := Up(ctx, dir, UpOptions{Create: CreateOptions{Validators: 1, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}, Binary: os.Args[0]}); err != nil {
		t.Fatal(err)
	}
	return dir, ctx
}

// A node that answers 503 with Retry-After is left alone that long: the refused transactions
// are retried only after it, counted as refused (by the node's error code), never as lost.
func TestSubmitterHonoursRetryAfter(t *testing.T) {
	var (
		mu    sync.Mutex
		times []time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		txs, _ := batchOf(r)
		mu.Lock()
		times = append(times, time.Now())
		first := len(times) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(api.ErrorResponse{Error: "overloaded", Code: api.CodeOverloaded})
			return
		}
		resp := api.SubmitTxsResponse{Results: make([]api.SubmitTxResult, len(txs))}
		for i := range resp.Results {
			resp.Results[i].Status = api.TxPending
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	sub := newSubmitter([]string{srv.URL}, 1, newTracker())
	items := []batchItem{{sender: 0, tx: signedTx{hash: state.Hash{1}, raw: []byte{1}}}, {sender: 1, tx: signedTx{hash: state.Hash{2}, raw: []byte{2}}}}
	if rejected := sub.submitBatch(context.Background(), srv.URL, items); len(rejected) != 0 {
		t.Fatalf("rejected senders %v", rejected)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 2 {
		t.Fatalf("%d requests, want the refused one and one retry", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, before the 1 s Retry-After", gap)
	}
	if got := sub.refusedByReason()[api.CodeOverloaded]; got != 2 || sub.throttled.Load() != 2 {
		t.Fatalf("refused by reason %v, throttled %d; want 2 overloaded", sub.refusedByReason(), sub.throttled.Load())
	}
	if sub.errors.Load() != 0 || sub.accepted.Load() != 2 {
		t.Fatalf("errors %d, accepted %d", sub.errors.Load(), sub.accepted.Load())
	}
}

// A chaos run's "once skipped" finality counts only what was accepted after the first block that
// passed a validator over; an expired skip entry (probation) is not a skip. The slowest
// transactions are named with the node that took them.
func TestTrackerLatencyOnceSkippedAndSlowest(t *testing.T) {
	hash := func(i byte) state.Hash { return state.HashTx([]byte{0xa0, i}) }
	h1, h2, h3 := hash(1), hash(2), hash(3)
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) string { return t0.Add(d).UTC().Format(time.RFC3339Nano) }
	block := func(height uint64, skips []api.LeaderSkipJSON, hs ...state.Hash) *api.BlockResponse {
		b := &api.BlockResponse{Height: height, Header: api.HeaderJSON{Time: at(ms(int(height) * 10)), LeaderSkips: skips}}
		for _, h := range hs {
			b.Txs = append(b.Txs, "00")
			b.Results = append(b.Results, api.TxResultJSON{Hash: h.String()})
		}
		return b
	}
	tr := newTracker()
	tr.names["http://a"], tr.names["http://b"] = "node1", "node2"
	tr.splitAt = t0.Add(ms(10))
	tr.sent(t0, h1)
	tr.accepted(t0, "http://a", signedTx{hash: h1})
	// After the split, but org4's entry has expired (probation): not passed over.
	expired := []api.LeaderSkipJSON{{Validator: 3, Until: at(ms(5))}}
	if err := tr.observe(block(1, expired, h1), t0.Add(ms(50))); err != nil {
		t.Fatal(err)
	}
	tr.sent(t0.Add(ms(60)), h2)
	tr.accepted(t0.Add(ms(60)), "http://b", signedTx{hash: h2})
	if err := tr.observe(block(2, []api.LeaderSkipJSON{{Validator: 3, Until: at(time.Minute)}}), t0.Add(ms(100))); err != nil {
		t.Fatal(err)
	}
	tr.sent(t0.Add(ms(120)), h3)
	tr.accepted(t0.Add(ms(120)), "http://c", signedTx{hash: h3})
	if err := tr.observe(block(3, nil, h2, h3), t0.Add(ms(400))); err != nil {
		t.Fatal(err)
	}
	var r LoadReport
	tr.report(&r)
	if r.SkippedValidator == nil || *r.SkippedValidator != 3 || !r.SkipAt.Equal(t0.Add(ms(100))) {
		t.Fatalf("skipped %v at %v, want validator 3 at the second block", r.SkippedValidator, r.SkipAt)
	}
	if want := (LatencySummary{Count: 1, P50: ms(280), P90: ms(280), P99: ms(280), Max: ms(280)}); r.LatencyAfterSkip != want {
		t.Errorf("latency once skipped %+v, want %+v (h3 alone)", r.LatencyAfterSkip, want)
	}
	if r.LatencyAfter.Count != 2 {
		t.Errorf("latency after the split counts %d, want 2 (h2, h3)", r.LatencyAfter.Count)
	}
	want := []SlowTx{
		{Hash: h2, Node: "node2", Height: 3, Latency: ms(340), After: ms(60)},
		{Hash: h3, Node: "http://c", Height: 3, Latency: ms(280), After: ms(120)},
		{Hash: h1, Node: "node1", Height: 1, Latency: ms(50), After: 0},
	}
	if len(r.Slowest) != len(want) {
		t.Fatalf("slowest %+v, want %+v", r.Slowest, want)
	}
	for i, s := range r.Slowest {
		w := want[i]
		if s.Hash != w.Hash || s.Node != w.Node || s.Height != w.Height || s.Latency != w.Latency || s.After != w.After {
			t.Errorf("slowest[%d] = %+v, want %+v", i, s, w)
		}
	}

	// Only the slowKept slowest are kept, slowest first.
	tr = newTracker()
	for i, d := range []int{30, 70, 10, 90, 50, 20, 80} {
		tr.noteSlow(SlowTx{Height: uint64(i), Latency: ms(d)})
	}
	var got []time.Duration
	for _, s := range tr.slowest {
		got = append(got, s.Latency)
	}
	if !slices.Equal(got, []time.Duration{ms(90), ms(80), ms(70), ms(50), ms(30)}) {
		t.Errorf("slowest kept %v", got)
	}
}

// follow keeps followAhead block requests in flight: read one at a time, under load blocks were
// seen seconds after they were committed, and that lag counted as the transactions' latency.
func TestFollowAsksForSeveralHeightsAtOnce(t *testing.T) {
	var inflight, most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-r.Context().Done() // no block yet: held until the follower stops
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- follow(ctx, newAPIHTTP(2), []string{srv.URL}, 1, newTracker(), 10*time.Second) }()
	deadline := time.After(10 * time.Second)
	for most.Load() < followAhead {
		select {
		case <-deadline:
			t.Fatalf("at most %d block requests at once, want %d", most.Load(), followAhead)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
}

// A run that fits under maxPresigned is signed whole before the clock starts, and its signers
// sign nothing while it runs (they used to replace every transaction taken, on the CPU the
// nodes under test needed); a sender whose share runs past the spare gets more signed.
func TestPresignSignsNothingDuringTheRun(t *testing.T) {
	const accounts, total = 4, 400
	depth, low := presignDepth(total, accounts)
	if depth*accounts > maxPresigned || depth < total/accounts+1 || low >= depth-total/accounts {
		t.Fatalf("depth %d, low %d: does not cover a run of %d over %d senders", depth, low, total, accounts)
	}
	keys := make([]ed25519.PrivateKey, accounts)
	addrs := make([]state.Address, accounts)
	for i := range keys {
		_, keys[i], _ = ed25519.GenerateKey(nil)
		addrs[i] = state.AddressFromPubKey(keys[i].Public().(ed25519.PublicKey))
	}
	stop := make(chan struct{})
	defer close(stop)
	queues := presign("test", keys, addrs, make([]uint64, accounts), depth, low, stop)
	q := queues[0]
	ctx := context.Background()
	var last uint64
	take := func(n int) {
		for range n {
			tx, _ := q.take(ctx)
			d, err := state.DecodeTx(tx.raw)
			if err != nil || d.Body.Nonce != last {
				t.Fatalf("took nonce %d (%v), want %d", d.Body.Nonce, err, last)
			}
			last++
		}
	}
	take(total / accounts)
	// Nothing to wait for but the absence of signing: give a signer that would refill the time
	// to sign far more than it needs.
	time.Sleep(100 * time.Millisecond)
	if got, want := len(q.txs), depth-total/accounts; got != want {
		t.Fatalf("%d signed transactions queued after the sender's share was taken, want %d: the signer went on signing", got, want)
	}
	// An uneven share that eats the spare below low makes the signer sign again, in nonce order.
	take(depth - total/accounts - low + 1)
	deadline := time.Now().Add(10 * time.Second)
	for len(q.txs) < low && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(q.txs) < low {
		t.Fatalf("%d queued after the spare ran low (%d): the signer did not sign more", len(q.txs), low)
	}
	take(2 * low)
}

// The batch body written by hand is byte for byte what cbor.Marshal writes for the same
// transactions, at every head size the lengths and counts can take.
func TestBatchBodyIsCBORMarshal(t *testing.T) {
	for _, sizes := range [][]int{{}, {0}, {1, 23}, {24, 255}, {256, 65535, 65536}, slices.Repeat([]int{170}, 23),
		slices.Repeat([]int{170}, 24), slices.Repeat([]int{3}, 256), slices.Repeat([]int{1}, api.MaxSubmitBatch)} {
		items := make([]batchItem, len(sizes))
		raws := make([][]byte, len(sizes))
		for i, n := range sizes {
			raws[i] = bytes.Repeat([]byte{byte(i)}, n)
			items[i].tx.raw = raws[i]
		}
		want, err := cbor.Marshal(raws)
		if err != nil {
			t.Fatal(err)
		}
		if got := batchBody(items); !bytes.Equal(got, want) {
			t.Fatalf("%d transactions of sizes %v...: body differs from cbor.Marshal's\n got %x...\nwant %x...", len(sizes), sizes[:min(3, len(sizes))], got[:min(16, len(got))], want[:min(16, len(want))])
		}
	}
	if got, want := state.AppendCBORHead(nil, 2, 1<<32), []byte{0x5b, 0, 0, 0, 1, 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("head of 2^32 bytes %x, want %x", got, want)
	}
}

// A transaction the generator gave up offering leaves its sender's later nonces, if a node took
// them, waiting for ever: they are counted apart from the chain's not-final ones.
func TestNotSeenSetsApartWhatWaitsBehindAGivenUpNonce(t *testing.T) {
	tr := newTracker()
	a, b := state.Address{1}, state.Address{2}
	tx := func(from state.Address, nonce uint64) signedTx {
		return signedTx{hash: state.Hash{from[0], byte(nonce)}, sn: senderNonce{from: from, nonce: nonce}}
	}
	now := time.Now()
	for _, x := range []signedTx{tx(a, 0), tx(a, 1), tx(a, 2), tx(b, 0)} {
		tr.sent(now, x.hash)
	}
	tr.accepted(now, "http://n1", tx(a, 0), tx(a, 2), tx(b, 0))
	tr.abandoned(tx(a, 1)) // refused until the end: a's nonce 2 can never be final
	out, behindRefused, behindGaveUp := tr.notSeen()
	if behindGaveUp != 1 || behindRefused != 0 || len(out) != 2 {
		t.Fatalf("not seen %d, behind refused %d, behind given up %d; want 2, 0, 1", len(out), behindRefused, behindGaveUp)
	}
	for _, h := range out {
		if h == tx(a, 2).hash {
			t.Fatal("the transaction behind the given-up nonce is listed as the chain's")
		}
	}
}

// The latencies are also summarized by when their transactions were accepted, a slice every
// latencySlice from the first submission, including slices in which nothing was accepted.
func TestTrackerLatencyBySlice(t *testing.T) {
	hash := func(i byte) state.Hash { return state.HashTx([]byte{0xb0, i}) }
	t0 := time.Unix(2000, 0)
	tr := newTracker()
	send := func(i byte, after, lat time.Duration) {
		tr.sent(t0.Add(after), hash(i))
		tr.accepted(t0.Add(after), "http://a", signedTx{hash: hash(i)})
		b := &api.BlockResponse{Height: uint64(i), Header: api.HeaderJSON{Time: t0.Add(after).UTC().Format(time.RFC3339Nano)},
			Txs: []string{"00"}, Results: []api.TxResultJSON{{Hash: hash(i).String()}}}
		if err := tr.observe(b, t0.Add(after+lat)); err != nil {
			t.Fatal(err)
		}
	}
	send(1, 0, ms(900))                   // the first slice's tail
	send(2, 9*time.Second, ms(100))       // still the first slice, finalized in the second
	send(3, 25*time.Second, ms(40))       // the third; the second accepted nothing
	send(4, 25*time.Second+ms(1), ms(60)) // the third
	var r LoadReport
	tr.report(&r)
	want := []LatencySlice{
		{From: 0, LatencySummary: LatencySummary{Count: 2, P50: ms(100), P90: ms(900), P99: ms(900), Max: ms(900)}},
		{From: latencySlice},
		{From: 2 * latencySlice, LatencySummary: LatencySummary{Count: 2, P50: ms(40), P90: ms(60), P99: ms(60), Max: ms(60)}},
	}
	if !slices.Equal(r.LatencyBySlice, want) {
		t.Fatalf("by slice %+v, want %+v", r.LatencyBySlice, want)
	}
	js, err := json.Marshal(r.LatencyBySlice[2])
	if err != nil {
		t.Fatal(err)
	}
	if got := string(js); got != `{"from_s":20,"count":2,"p50":40,"p90":60,"p99":60,"max":60}` {
		t.Errorf("json %s", got)
	}
	var text strings.Builder
	r.WriteText(&text)
	if !strings.Contains(text.String(), "0s+ p50 100ms p99 900ms;  10s+ none;  20s+ p50 40ms p99 60ms") {
		t.Errorf("text report:\n%s", text.String())
	}
}
