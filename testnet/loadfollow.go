package testnet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// apiHTTP is the load generator's own HTTP client: api.Client keeps 64 idle connections per
// node, fewer than the submitters may use, and each connection dropped at thousands of requests a
// second costs a TCP handshake and a TIME_WAIT socket.
type apiHTTP struct {
	c *http.Client
}

func newAPIHTTP(conns int) *apiHTTP {
	return &apiHTTP{c: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: conns + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}}
}

// apiAnswer is what a node answered a POST: its status, and for an error status its message,
// error code and Retry-After (zero when it sent none).
type apiAnswer struct {
	status     int
	msg, code  string
	retryAfter time.Duration
}

// post sends body as JSON.
func (h *apiHTTP) post(ctx context.Context, url string, body []byte) (apiAnswer, error) {
	return h.postDecode(ctx, url, body, nil)
}

// postDecode is post for a request whose 2xx answer is decoded into out (unless out is nil).
func (h *apiHTTP) postDecode(ctx context.Context, url string, body []byte, out any) (apiAnswer, error) {
	return h.postDecodeAs(ctx, url, "application/json", body, out)
}

// postDecodeAs is postDecode for a body of the given media type.
func (h *apiHTTP) postDecodeAs(ctx context.Context, url, contentType string, body []byte, out any) (apiAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return apiAnswer{}, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := h.c.Do(req)
	if err != nil {
		return apiAnswer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return apiAnswer{}, err
	}
	ans := apiAnswer{status: resp.StatusCode}
	if resp.StatusCode >= 400 {
		var e api.ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = string(bytes.TrimSpace(data))
		}
		ans.msg, ans.code = e.Error, e.Code
		ans.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
		return ans, nil
	}
	if out == nil {
		return ans, nil
	}
	return ans, json.Unmarshal(data, out)
}

// maxRetryAfter caps how long one Retry-After keeps the generator off a node.
const maxRetryAfter = 30 * time.Second

// parseRetryAfter reads Retry-After in its delay-seconds form (the form Guild sends); zero for
// none or anything else.
func parseRetryAfter(v string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || s <= 0 {
		return 0
	}
	return min(time.Duration(s)*time.Second, maxRetryAfter)
}

// block reads the block at height, asking the node to hold the request up to wait for it to be
// committed (GET /v1/blocks/{h}?wait=ms). It returns nil, nil if the block is not there yet (404).
// It asks for the results without the transactions (txs=none): the results' hashes are all the
// tracker needs, and the transactions in hex were four fifths of the bytes the node encoded and
// the generator decoded (a node that ignores the parameter sends them; they are then hashed).
func (h *apiHTTP) block(ctx context.Context, apiURL string, height uint64, wait time.Duration) (*api.BlockResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
	defer cancel()
	url := apiURL + "/v1/blocks/" + strconv.FormatUint(height, 10) + "?txs=" + api.BlockTxsNone + "&wait=" + strconv.FormatInt(wait.Milliseconds(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, resp.Body)
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(data))
	}
	var b api.BlockResponse
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return &b, nil
}

// blockWait is how long one block request may be held by the node.
const blockWait = 2 * time.Second

// followAhead is how many heights follow asks for at once. Read one at a time, under load the
// blocks were seen up to 8 s after they were committed (at 16,000 tx/s offered, every request
// waiting its turn on two busy cores), and that lag was counted as the transactions' latency.
const followAhead = 4

// fetched is one block request's answer: the block (nil if not committed yet) or why not, and
// when it was asked.
type fetched struct {
	b     *api.BlockResponse
	err   error
	asked time.Time
}

// follow reads committed blocks from height from on, in order, and hands each to tr as soon as
// it is seen, until ctx ends. It reads apis[0], followAhead heights at a time; when that node
// stops answering (a chaos run kills and pauses nodes) it moves to the next, and gives up only
// when every node stays silent (giveUp each).
func follow(ctx context.Context, h *apiHTTP, apis []string, from uint64, tr *tracker, giveUp time.Duration) error {
	var failingSince time.Time
	cur := 0
	ahead := map[uint64]chan fetched{}
	ask := func(height uint64) chan fetched {
		c, apiURL := make(chan fetched, 1), apis[cur]
		go func() {
			asked := time.Now()
			b, err := h.block(ctx, apiURL, height, blockWait)
			c <- fetched{b: b, err: err, asked: asked}
		}()
		return c
	}
	for height := from; ; {
		for k := height; k < height+followAhead; k++ {
			if _, ok := ahead[k]; !ok {
				ahead[k] = ask(k)
			}
		}
		f := <-ahead[height]
		delete(ahead, height)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f.err != nil {
			// A node under load may drop a request; give up only when all stay down.
			if failingSince.IsZero() {
				failingSince = f.asked
			} else if time.Since(failingSince) > time.Duration(len(apis))*giveUp {
				return f.err
			}
			cur = (cur + 1) % len(apis)
			clear(ahead) // asked of the node that failed; their answers are dropped
			pause(ctx, 100*time.Millisecond)
			continue
		}
		failingSince = time.Time{}
		if f.b == nil {
			// Not committed yet. A node that ignores ?wait answers at once; do not spin on it.
			if time.Since(f.asked) < 10*time.Millisecond {
				pause(ctx, 10*time.Millisecond)
			}
			continue
		}
		if err := tr.observe(f.b, time.Now()); err != nil {
			return fmt.Errorf("block %d: %w", height, err)
		}
		height++
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// tracker pairs submitted transactions with the blocks they land in.
type tracker struct {
	mu sync.Mutex
	// txs holds the transactions submitted and not yet seen in a block: one map for all that is
	// known of each (its clock, who took it, its sender and nonce), so that a batch's bookkeeping
	// is one lookup per transaction under one lock.
	txs map[state.Hash]trackedTx
	// refusedFrom is the lowest nonce the API refused (4xx) per sender: what follows it waits
	// behind a gap that only the client can fill.
	refusedFrom map[state.Address]uint64
	// abandonedFrom is the lowest nonce per sender that the generator stopped offering while
	// still refused (503/429 past the window, or its node down): what follows it waits behind a
	// gap the generator left, and can never be final.
	abandonedFrom map[state.Address]uint64
	firstSent     time.Time
	final         int
	failed        int
	latencies     []time.Duration
	// bySlice holds the latencies again by when the transaction was accepted, in slices of
	// latencySlice from the first submission: a tail from the load's first seconds (cold caches,
	// connections opening) looks different from one spread over the whole run.
	bySlice [][]time.Duration
	// after holds the latencies of the transactions accepted at or after splitAt, if set.
	splitAt time.Time
	after   []time.Duration
	// skipAt is when the first block from splitAt on passed a validator over as leader
	// (skipped, its index), and afterSkip the latencies of the transactions accepted from then
	// on: what a down validator costs once the leader schedule routes around it.
	skipAt    time.Time
	skipped   uint32
	afterSkip []time.Duration
	// names the nodes' names by API, and slowest the slowest finalized transactions.
	names     map[string]string
	slowest   []SlowTx
	lastFinal time.Time
	blocks    []blockSeen
	// seenAfter is, per block, how long after its header time it was seen.
	seenAfter []time.Duration
	// onFinal, if set, hears of every submitted transaction seen committed (LoadOptions.OnFinal).
	onFinal func(hash state.Hash, height uint64)
}

// trackedTx is one submitted transaction: when it was sent (then accepted: its latency's start),
// and once a node has taken it (2xx), which node and its sender and nonce.
type trackedTx struct {
	at    time.Time
	sn    senderNonce
	node  string
	taken bool
}

type blockSeen struct {
	at   time.Time
	txs  int
	ours int // of the submitted transactions, finalized in it
}

func newTracker() *tracker {
	return &tracker{txs: make(map[state.Hash]trackedTx), refusedFrom: make(map[state.Address]uint64),
		abandonedFrom: make(map[state.Address]uint64),
		names:         make(map[string]string)}
}

// sent records that hashes are about to be submitted; the time is taken before the request, so
// a block cannot be seen before its transactions' submit time is known.
func (t *tracker) sent(at time.Time, hashes ...state.Hash) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.firstSent.IsZero() {
		t.firstSent = at
	}
	for _, h := range hashes {
		t.txs[h] = trackedTx{at: at}
	}
}

// accepted restarts the clock of transactions a node has just taken, after refusals (503):
// latency is from acceptance to finality, the time a refused client did not wait on the node.
func (t *tracker) accepted(at time.Time, node string, txs ...signedTx) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tx := range txs {
		if _, ok := t.txs[tx.hash]; ok { // not already seen in a block
			t.txs[tx.hash] = trackedTx{at: at, sn: tx.sn, node: node, taken: true}
		}
	}
}

type senderNonce struct {
	from  state.Address
	nonce uint64
}

// rejected drops a transaction the API refused for good (4xx), and records where its sender's
// transactions stop being valid.
func (t *tracker) rejected(tx signedTx) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.txs, tx.hash)
	lowerNonce(t.refusedFrom, tx.sn)
}

// lowerNonce records sn's nonce for its sender in from unless a lower one is there.
func lowerNonce(from map[state.Address]uint64, sn senderNonce) {
	if n, ok := from[sn.from]; !ok || sn.nonce < n {
		from[sn.from] = sn.nonce
	}
}

// abandoned records transactions the generator stopped offering before any node took them.
func (t *tracker) abandoned(txs ...signedTx) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tx := range txs {
		lowerNonce(t.abandonedFrom, tx.sn)
	}
}

// notSeen lists the transactions a node accepted that no block has shown yet, apart from those
// behind a nonce of their sender that the API refused (counted in behindRefused) or that the
// generator gave up offering (behindAbandoned).
func (t *tracker) notSeen() (out []state.Hash, behindRefused, behindAbandoned int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h, tx := range t.txs {
		if !tx.taken {
			continue
		}
		if n, ok := t.refusedFrom[tx.sn.from]; ok && n < tx.sn.nonce {
			behindRefused++
			continue
		}
		if n, ok := t.abandonedFrom[tx.sn.from]; ok && n < tx.sn.nonce {
			behindAbandoned++
			continue
		}
		out = append(out, h)
	}
	return out, behindRefused, behindAbandoned
}

// observe matches a block's transactions, seen at time at, against those submitted.
func (t *tracker) observe(b *api.BlockResponse, at time.Time) error {
	type result struct {
		hash   state.Hash
		failed bool
	}
	results := make([]result, 0, len(b.Txs))
	if len(b.Results) > 0 {
		for _, r := range b.Results {
			h, err := state.ParseHash(r.Hash)
			if err != nil {
				return err
			}
			results = append(results, result{h, r.Error != ""})
		}
	} else {
		for _, tx := range b.Txs {
			raw, err := hex.DecodeString(tx)
			if err != nil {
				return fmt.Errorf("transaction not in hex: %w", err)
			}
			results = append(results, result{hash: state.HashTx(raw)})
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.splitAt.IsZero() && t.skipAt.IsZero() && !at.Before(t.splitAt) {
		if v, ok := passedOver(b.Header); ok {
			t.skipAt, t.skipped = at, v
		}
	}
	if proposed, err := time.Parse(time.RFC3339Nano, b.Header.Time); err == nil {
		t.seenAfter = append(t.seenAfter, at.Sub(proposed))
	}
	t.blocks = append(t.blocks, blockSeen{at: at, txs: max(len(b.Txs), len(results))})
	seen := &t.blocks[len(t.blocks)-1]
	for _, r := range results {
		tx, ok := t.txs[r.hash]
		if !ok {
			continue
		}
		delete(t.txs, r.hash)
		sentAt, node := tx.at, tx.node
		if t.onFinal != nil {
			t.onFinal(r.hash, b.Height)
		}
		if r.failed {
			t.failed++
			continue
		}
		t.final++
		seen.ours++
		lat := at.Sub(sentAt)
		t.latencies = append(t.latencies, lat)
		if i := int(max(0, sentAt.Sub(t.firstSent)) / latencySlice); i < maxLatencySlices {
			for len(t.bySlice) <= i {
				t.bySlice = append(t.bySlice, nil)
			}
			t.bySlice[i] = append(t.bySlice[i], lat)
		}
		if !t.splitAt.IsZero() && !sentAt.Before(t.splitAt) {
			t.after = append(t.after, lat)
		}
		if !t.skipAt.IsZero() && !sentAt.Before(t.skipAt) {
			t.afterSkip = append(t.afterSkip, lat)
		}
		t.noteSlow(SlowTx{Hash: r.hash, Node: node, AcceptedAt: sentAt, Height: b.Height, Latency: lat})
		t.lastFinal = at
	}
	return nil
}

// pending is how many of the accepted transactions have not been seen in a block.
func (t *tracker) pending(accepted int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return max(0, accepted-t.final-t.failed)
}

func (t *tracker) progress(sub *submitter, start time.Time) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%4.0fs: submitted %d, accepted %d, rejected %d, finalized %d, blocks %d",
		time.Since(start).Seconds(), sub.submitted.Load(), sub.accepted.Load(), sub.rejected.Load(), t.final, len(t.blocks))
}

// report fills in r's finality figures.
func (t *tracker) report(r *LoadReport) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r.Finalized, r.FailedInBlock = t.final, t.failed
	r.Latency = summarize(t.latencies)
	for i, lat := range t.bySlice {
		r.LatencyBySlice = append(r.LatencyBySlice, LatencySlice{From: time.Duration(i) * latencySlice,
			LatencySummary: summarize(lat)})
	}
	r.LatencyAfter = summarize(t.after)
	r.SeenAfterProposal = summarize(t.seenAfter)
	if !t.skipAt.IsZero() {
		r.SkipAt, r.SkippedValidator = t.skipAt, &t.skipped
		r.LatencyAfterSkip = summarize(t.afterSkip)
	}
	r.Slowest = slices.Clone(t.slowest)
	for i := range r.Slowest {
		s := &r.Slowest[i]
		s.After = s.AcceptedAt.Sub(t.firstSent)
		if name, ok := t.names[s.Node]; ok {
			s.Node = name
		}
	}
	if t.final == 0 {
		return
	}
	r.Window = t.lastFinal.Sub(t.firstSent)
	if r.Window > 0 {
		r.FinalizedRate = float64(t.final) / r.Window.Seconds()
	}
	txs := 0
	end, inWindow := r.SubmitStart.Add(r.SubmitWindow), 0
	for _, b := range t.blocks {
		if !b.at.After(end) {
			inWindow += b.ours
		}
		if !b.at.After(t.lastFinal) {
			r.Blocks++
			txs += b.txs
		}
	}
	if r.Blocks > 0 {
		r.AvgTxsPerBlock = float64(txs) / float64(r.Blocks)
	}
	if r.SubmitWindow > 0 {
		r.SustainedRate = float64(inWindow) / r.SubmitWindow.Seconds()
	}
}

// slowKept is how many of the slowest finalized transactions a report names.
const slowKept = 5

// noteSlow keeps s if it is among the slowKept slowest so far, slowest first.
func (t *tracker) noteSlow(s SlowTx) {
	if len(t.slowest) == slowKept && s.Latency <= t.slowest[slowKept-1].Latency {
		return
	}
	i, _ := slices.BinarySearchFunc(t.slowest, s, func(a, b SlowTx) int { return cmp.Compare(b.Latency, a.Latency) })
	t.slowest = slices.Insert(t.slowest, i, s)
	if len(t.slowest) > slowKept {
		t.slowest = t.slowest[:slowKept]
	}
}

// passedOver is a validator that the block's leader schedule passes over (its skip table has an
// entry whose time is not yet past the block's), if any.
func passedOver(h api.HeaderJSON) (uint32, bool) {
	at, err := time.Parse(time.RFC3339Nano, h.Time)
	if err != nil {
		return 0, false
	}
	for _, s := range h.LeaderSkips {
		if until, err := time.Parse(time.RFC3339Nano, s.Until); err == nil && until.After(at) {
			return s.Validator, true
		}
	}
	return 0, false
}
