package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// LoadOptions configure RunLoad. Zero values take the defaults in brackets.
type LoadOptions struct {
	Dir        string        // the testnet directory (manifest and wallet)
	Passphrase string        // of the faucet key [Passphrase()]
	Rate       int           // target submissions per second [1000]
	Duration   time.Duration // how long to submit [30s]
	Accounts   int           // fresh load accounts, each a sender and a recipient [64]
	Nodes      []string      // nodes to submit to, by name ("node2") or number ("2") [all]
	Workers    int           // concurrent HTTP submitters [min(Accounts, 512)]
	Stragglers time.Duration // after submitting, how long to wait for the rest to finalize [10s]
	// FollowGiveUp: following blocks fails when every node it may read stays silent for this long
	// each (it moves to the next node when one fails) [10s].
	FollowGiveUp time.Duration
	Progress     io.Writer // a line per phase and every 5 s, if set
	// OnFinal, if set, is called (from the goroutine following blocks) for every submitted
	// transaction seen in a committed block, with that block's height: what the load
	// generator was told is final, which a chaos run checks is never lost.
	OnFinal func(hash state.Hash, height uint64)
	// SplitAt, if set, also summarizes the latencies of the transactions accepted from then on
	// apart (LoadReport.LatencyAfter): a chaos run's hostile half.
	SplitAt time.Time
	// OnSubmitting and OnSubmitted, if set, are called when the submission window opens (the
	// accounts funded, the transfers signed) and when it closes (before the wait for
	// stragglers): what the bench measures over the window alone.
	OnSubmitting, OnSubmitted func()
}

// FundAmount is what the faucet gives each load account: transfers of 1 cannot run it dry.
const FundAmount = 100_000_000

// maxPresigned bounds the transactions signed before the clock starts (~250 bytes each with
// their hash, so up to ~250 MB): below it, a whole run (60 s at 15,000 tx/s) is signed ahead and
// signing cannot limit the rate, nor take CPU from the nodes it shares a machine with; above it,
// signers keep that many ready while the run goes on.
const maxPresigned = 1_000_000

// releaseInterval is the rate limiter's period: every tick releases the transactions due by then.
const releaseInterval = 10 * time.Millisecond

// RunLoad funds Accounts fresh accounts from the testnet's faucet, then submits signed transfers
// among them at Rate for Duration, spread over the chosen nodes, and measures how many become
// final and how fast by following one node's committed blocks. When ctx ends early it returns
// what it measured so far with ctx's error.
func RunLoad(ctx context.Context, opts LoadOptions) (*LoadReport, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	m, err := LoadManifest(opts.Dir)
	if err != nil {
		return nil, err
	}
	nodes, err := m.SelectNodes(opts.Nodes)
	if err != nil {
		return nil, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	first := api.NewClient(nodes[0].API)

	fmt.Fprintf(progress, "funding %d accounts from the faucet through %s\n", opts.Accounts, nodes[0].Name)
	keys, addrs, nonces, err := newLoadAccounts(ctx, m, first, opts.Passphrase, opts.Accounts)
	if err != nil {
		return nil, err
	}

	apis := make([]string, len(nodes))
	for i, n := range nodes {
		apis[i] = n.API
	}
	r := &LoadReport{Nodes: apis, Follow: nodes[0].API, TargetRate: opts.Rate, Accounts: opts.Accounts, Workers: opts.Workers}
	total := int(float64(opts.Rate) * opts.Duration.Seconds())
	depth, low := presignDepth(total, opts.Accounts)
	fmt.Fprintf(progress, "pre-signing %d transactions\n", depth*opts.Accounts)
	stopSigning := make(chan struct{})
	defer close(stopSigning)
	queues := presign(m.ChainID, keys, addrs, nonces, depth, low, stopSigning)

	st, err := first.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("testnet: status of %s: %w", nodes[0].Name, err)
	}
	followCtx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	tr := newTracker()
	tr.onFinal, tr.splitAt = opts.OnFinal, opts.SplitAt
	for _, n := range nodes {
		tr.names[n.API] = n.Name
	}
	followDone := make(chan error, 1)
	followAPIs := followOrder(m, nodes)
	go func() {
		followDone <- follow(followCtx, newAPIHTTP(2), followAPIs, st.Height+1, tr, opts.FollowGiveUp)
	}()

	fmt.Fprintf(progress, "submitting %d tx/s for %s to %d nodes with %d workers\n", opts.Rate, opts.Duration, len(nodes), opts.Workers)
	sub := newSubmitter(apis, opts.Workers, tr)
	if opts.OnSubmitting != nil {
		opts.OnSubmitting()
	}
	submitStart := time.Now()
	// A release per tick and node, each a batch: 100 ms of them wait for a free worker, then
	// releases are dropped.
	lanes := min(len(apis), opts.Workers)
	tokens := make(chan int, lanes*int(100*time.Millisecond/releaseInterval))
	var wg sync.WaitGroup
	for w := range opts.Workers {
		var owned []int
		for s := w; s < opts.Accounts; s += opts.Workers {
			owned = append(owned, s)
		}
		wg.Go(func() { sub.work(ctx, owned, queues, tokens) })
	}
	behind := release(ctx, tokens, opts.Rate, opts.Duration, submitStart, lanes, func() {
		fmt.Fprintf(progress, "  %s\n", tr.progress(sub, submitStart))
	})
	giveUp := time.AfterFunc(opts.Stragglers, func() { close(sub.giveUp) })
	wg.Wait()
	giveUp.Stop()
	submitEnd := time.Now()
	if opts.OnSubmitted != nil {
		opts.OnSubmitted()
	}

	// Stragglers: wait until every accepted transaction is in a block, or the time is up.
	fmt.Fprintf(progress, "submitted; waiting up to %s for the rest to finalize\n", opts.Stragglers)
	deadline := time.Now().Add(opts.Stragglers)
	var followErr error
	followEnded := false
	for tr.pending(int(sub.accepted.Load())) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case followErr = <-followDone:
			followEnded = true
		case <-time.After(20 * time.Millisecond):
		}
		if followEnded {
			break
		}
	}
	stopFollowing()
	if !followEnded {
		followErr = <-followDone
	}
	// Ended by ctx (Ctrl-C, a deadline), following is no failure. Otherwise the nodes it reads
	// went silent: the report still says what was measured up to then, and the error why it stops.
	if followErr != nil && (ctx.Err() != nil || errors.Is(followErr, context.Canceled)) {
		followErr = nil
	}
	if followErr != nil {
		followErr = fmt.Errorf("testnet: following blocks (of %s): %w", strings.Join(followAPIs, ", "), followErr)
	}

	r.Submitted, r.Accepted = int(sub.submitted.Load()), int(sub.accepted.Load())
	r.Rejected, r.Errors, r.Throttled = int(sub.rejected.Load()), int(sub.errors.Load()), int(sub.throttled.Load())
	r.GaveUp, r.Requests = int(sub.gaveUp.Load()), int(sub.requests.Load())
	r.RefusedBy = sub.refusedByReason()
	r.FirstRejection, _ = sub.firstRejection.Load().(string)
	r.Behind = behind
	r.SubmitStart, r.SubmitWindow = submitStart, submitEnd.Sub(submitStart)
	if r.SubmitWindow > 0 {
		r.SubmitRate = float64(r.Submitted) / r.SubmitWindow.Seconds()
	}
	tr.report(r)
	r.NotSeen, r.BehindRefused, r.BehindGaveUp = tr.notSeen()
	// What waits behind a nonce the generator gave up offering can never be final: a gap the
	// client left, reported apart (BehindGaveUp), not as the chain's.
	r.NotFinalized = max(0, tr.pending(r.Accepted)-r.BehindGaveUp)
	if followErr != nil {
		return r, followErr
	}
	return r, ctx.Err()
}

// followOrder lists the APIs to follow blocks on: the chosen nodes first, then the others, so that
// the report survives the followed node dying even when the load goes to one node only.
func followOrder(m *Manifest, chosen []Node) []string {
	var out []string
	for _, n := range chosen {
		out = append(out, n.API)
	}
	for _, n := range m.Nodes {
		if !slices.Contains(out, n.API) {
			out = append(out, n.API)
		}
	}
	return out
}

func (o *LoadOptions) defaults() error {
	if o.Passphrase == "" {
		o.Passphrase, _ = Passphrase()
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Duration <= 0 {
		o.Duration = 30 * time.Second
	}
	if o.Accounts == 0 {
		o.Accounts = 64
	}
	if o.Accounts < 2 {
		return fmt.Errorf("testnet: %d load accounts: need at least 2 to send to one another", o.Accounts)
	}
	if o.Workers <= 0 {
		o.Workers = min(o.Accounts, 512)
	}
	o.Workers = min(o.Workers, o.Accounts) // a sender belongs to one worker, so its nonces stay in order
	if o.Stragglers <= 0 {
		o.Stragglers = 10 * time.Second
	}
	if o.FollowGiveUp <= 0 {
		o.FollowGiveUp = 10 * time.Second
	}
	return nil
}

// SelectNodes picks nodes by name ("node2") or number counting from 1 ("2"); none or "all" is
// every node.
func (m *Manifest) SelectNodes(specs []string) ([]Node, error) {
	if len(specs) == 0 || (len(specs) == 1 && specs[0] == "all") {
		return m.Nodes, nil
	}
	var out []Node
	for _, s := range specs {
		s = strings.TrimSpace(s)
		i, err := strconv.Atoi(s)
		if err != nil {
			i = slices.IndexFunc(m.Nodes, func(n Node) bool { return n.Name == s }) + 1
		}
		if i < 1 || i > len(m.Nodes) {
			return nil, fmt.Errorf("testnet: no node %q: want a name or a number 1..%d", s, len(m.Nodes))
		}
		out = append(out, m.Nodes[i-1])
	}
	return out, nil
}

// newLoadAccounts makes n fresh keys, funds them from the faucet, and reads their next nonces.
func newLoadAccounts(ctx context.Context, m *Manifest, c *api.Client, passphrase string, n int) ([]ed25519.PrivateKey, []state.Address, []uint64, error) {
	keys := make([]ed25519.PrivateKey, n)
	addrs := make([]state.Address, n)
	for i := range keys {
		_, keys[i], _ = ed25519.GenerateKey(rand.Reader)
		addrs[i] = state.AddressFromPubKey(keys[i].Public().(ed25519.PublicKey))
	}
	if err := fund(ctx, m, c, passphrase, addrs); err != nil {
		return nil, nil, nil, err
	}
	nonces, err := accountNonces(ctx, c, addrs)
	return keys, addrs, nonces, err
}

// fund sends FundAmount from the faucet to each address, with consecutive faucet nonces through
// one node, and waits until every transfer is committed.
func fund(ctx context.Context, m *Manifest, c *api.Client, passphrase string, to []state.Address) error {
	faucet, faucetAddr, err := m.LoadWalletKey(FaucetName, passphrase)
	if err != nil {
		return err
	}
	acct, err := c.Account(ctx, faucetAddr.String())
	if err != nil {
		return fmt.Errorf("testnet: faucet account: %w", err)
	}
	hashes := make([]string, len(to))
	for i, addr := range to {
		body := state.TxBody{ChainID: m.ChainID, From: faucetAddr, Nonce: acct.Nonce + uint64(i),
			Transfer: &state.Transfer{To: addr, Amount: FundAmount}}
		raw, _, err := signTx(body, faucet)
		if err != nil {
			return err
		}
		resp, err := c.SubmitTx(ctx, raw)
		if err != nil {
			return fmt.Errorf("testnet: funding load account %d: %w", i, err)
		}
		hashes[i] = resp.Hash
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return forEach(len(hashes), 16, func(i int) error {
		st, err := c.WaitTx(wctx, hashes[i])
		if err != nil {
			return fmt.Errorf("testnet: funding transfer %s: %w", hashes[i], err)
		}
		if st.Status != api.TxCommitted || st.Error != "" {
			return fmt.Errorf("testnet: funding transfer %s %s: %s", hashes[i], st.Status, st.Error)
		}
		return nil
	})
}

// accountNonces reads the next nonce of each address.
func accountNonces(ctx context.Context, c *api.Client, addrs []state.Address) ([]uint64, error) {
	nonces := make([]uint64, len(addrs))
	err := forEach(len(addrs), 16, func(i int) error {
		a, err := c.Account(ctx, addrs[i].String())
		if err != nil {
			return fmt.Errorf("testnet: load account %s: %w", addrs[i], err)
		}
		nonces[i] = a.Nonce
		return nil
	})
	return nonces, err
}

// forEach runs f(0..n-1) on up to par goroutines; it stops at the first error and returns it.
func forEach(n, par int, f func(int) error) error {
	var (
		next   atomic.Int64
		failed atomic.Bool
		once   sync.Once
		first  error
		wg     sync.WaitGroup
	)
	for range min(n, par) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// signedTx is a transaction ready to go, with its sender and nonce: what the tracker files it
// under, kept from signing so that nothing decodes the transaction again.
type signedTx struct {
	hash state.Hash
	raw  []byte
	sn   senderNonce
}

func signTx(body state.TxBody, key ed25519.PrivateKey) ([]byte, state.Hash, error) {
	tx, err := state.SignTx(body, key)
	if err != nil {
		return nil, state.Hash{}, err
	}
	raw, err := tx.Encode()
	if err != nil {
		return nil, state.Hash{}, err
	}
	return raw, state.HashTx(raw), nil
}

// presignDepth is how many transactions each of accounts senders has signed before the clock
// starts (depth), and how few left in its queue make its signer sign more (low). When the whole
// run fits under maxPresigned, depth covers a sender's share of total with an eighth to spare for
// uneven shares, and low is below that spare: signers then sign nothing during the run, where
// they used to replace every transaction taken and took a fifth of the machine from the nodes
// (issue #10). Otherwise each sender gets maxPresigned/accounts, and its signer signs again
// only once a quarter of that is left: a run offered far more than the nodes take (a bench past
// saturation) mostly has its refused transactions retried, and may never need more.
func presignDepth(total, accounts int) (depth, low int) {
	need := (total+accounts-1)/accounts + 1
	if full := need + need/8 + 8; full*accounts <= maxPresigned {
		return full, need/16 + 4
	}
	depth = max(8, maxPresigned/accounts)
	return depth, max(1, depth/4)
}

// signedQueue is one sender's transactions signed ahead, in nonce order.
type signedQueue struct {
	txs  chan signedTx
	low  int
	more chan struct{} // poked when a take leaves fewer than low
}

// take waits for the sender's next transaction (false if ctx ends first).
func (q *signedQueue) take(ctx context.Context) (signedTx, bool) {
	select {
	case tx := <-q.txs:
		if len(q.txs) < q.low {
			select {
			case q.more <- struct{}{}:
			default:
			}
		}
		return tx, true
	case <-ctx.Done():
		return signedTx{}, false
	}
}

// presign starts one signer per sender, each signing depth transfers of 1 to random other load
// accounts, with consecutive nonces, then more only while its queue holds fewer than low; it
// returns once every queue is full, so the run starts with depth transactions per sender signed.
func presign(chainID string, keys []ed25519.PrivateKey, addrs []state.Address, nonces []uint64, depth, low int, stop <-chan struct{}) []*signedQueue {
	queues := make([]*signedQueue, len(keys))
	var filled sync.WaitGroup
	for s := range keys {
		q := &signedQueue{txs: make(chan signedTx, depth), low: low, more: make(chan struct{}, 1)}
		queues[s] = q
		filled.Add(1)
		go func() {
			rng := mrand.New(mrand.NewPCG(mrand.Uint64(), uint64(s)))
			for n, sent := nonces[s], 0; ; n++ {
				if sent >= depth {
					for len(q.txs) >= q.low {
						select {
						case <-q.more:
						case <-stop:
							return
						}
					}
				}
				to := rng.IntN(len(addrs) - 1)
				if to >= s {
					to++ // never self: a transfer to self is invalid
				}
				raw, hash, err := signTx(state.TxBody{ChainID: chainID, From: addrs[s], Nonce: n,
					Transfer: &state.Transfer{To: addrs[to], Amount: 1}}, keys[s])
				if err != nil {
					panic(fmt.Sprintf("testnet: signing a transfer: %v", err)) // encoding a fixed shape cannot fail
				}
				select {
				case q.txs <- signedTx{hash: hash, raw: raw, sn: senderNonce{addrs[s], n}}:
				case <-stop:
					if sent < depth {
						filled.Done()
					}
					return
				}
				if sent++; sent == depth {
					filled.Done()
				}
			}
		}()
	}
	filled.Wait()
	return queues
}

// release is the rate limiter: every releaseInterval it puts into tokens the submissions due by
// then (rate × elapsed) as lanes batches (counts) of about equal size, until duration has passed,
// then closes tokens. A batch that finds tokens full is dropped and counted: the submitters are
// behind, and catching up later in a burst would hide it. tick, if set, runs every 5 s.
//
// Batches, not one release per transaction: a worker waiting on tokens took one, and with
// workers idle each release went to another worker, so below saturation nearly every request
// carried one transaction (8,000 requests a second at 8,000 tx/s), each an HTTP exchange and a
// JSON body for both the generator and the node. A tick's releases now leave as lanes requests.
func release(ctx context.Context, tokens chan<- int, rate int, duration time.Duration, start time.Time, lanes int, tick func()) (behind int) {
	defer close(tokens)
	ticker := time.NewTicker(releaseInterval)
	defer ticker.Stop()
	released, nextTick := 0, start.Add(5*time.Second)
	for {
		now := time.Now()
		elapsed := min(now.Sub(start), duration)
		due := int(float64(rate) * elapsed.Seconds())
		for k := lanes; k > 0 && released < due; k-- {
			n := (due - released + k - 1) / k
			released += n
			select {
			case tokens <- n:
			default:
				behind += n
			}
		}
		if elapsed >= duration {
			return behind
		}
		if tick != nil && now.After(nextTick) {
			tick()
			nextTick = nextTick.Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return behind
		case <-ticker.C:
		}
	}
}

// submitter posts transactions to the nodes' APIs; its counters are what RunLoad reports.
type submitter struct {
	apis    []string
	http    *apiHTTP
	tracker *tracker

	submitted, accepted, rejected, errors, throttled atomic.Int64
	requests                                         atomic.Int64 // POSTs made, retries included
	gaveUp                                           atomic.Int64 // still refused when giveUp closed
	firstRejection                                   atomic.Value // string
	// giveUp closes a while after the submission window: retries of refused transactions stop,
	// so a run ends even if the nodes never take them.
	giveUp chan struct{}
	// notBefore is, per node API, when its last Retry-After ends (unix ns): nothing is sent to
	// it before. refusedBy counts refusals by reason (string -> *atomic.Int64).
	notBefore map[string]*atomic.Int64
	refusedBy sync.Map
}

// work takes batches from tokens — one, plus every other already waiting, up to
// api.MaxSubmitBatch transactions — and submits that many transactions of its senders in turn,
// one request per node (and per api.MaxSubmitBatch): a sender's transactions leave in nonce
// order, to one node (sender s goes to apis[s % len]). Under load a request carries many
// transactions, so the HTTP cost per transaction falls as the rate rises. A sender whose
// transaction is rejected is dropped, since its later nonces can no longer be valid.
func (sub *submitter) work(ctx context.Context, senders []int, queues []*signedQueue, tokens <-chan int) {
	next := 0
	for n := range tokens {
		if len(senders) == 0 || ctx.Err() != nil {
			return // the others take the releases; if none is left, the limiter counts them behind
		}
	drain:
		for n < api.MaxSubmitBatch {
			select {
			case m, ok := <-tokens:
				if !ok {
					break drain
				}
				n += m
			default:
				break drain
			}
		}
		byAPI := map[string][]batchItem{}
		var apis []string
		for k := 0; k < n; k++ {
			next %= len(senders)
			s := senders[next]
			tx, ok := queues[s].take(ctx)
			if !ok {
				return
			}
			apiURL := sub.apis[s%len(sub.apis)]
			if _, ok := byAPI[apiURL]; !ok {
				apis = append(apis, apiURL)
			}
			byAPI[apiURL] = append(byAPI[apiURL], batchItem{sender: s, tx: tx})
			next++
		}
		for _, apiURL := range apis {
			for items := range slices.Chunk(byAPI[apiURL], api.MaxSubmitBatch) {
				for _, s := range sub.submitBatch(ctx, apiURL, items) {
					if i := slices.Index(senders, s); i >= 0 {
						senders = slices.Delete(senders, i, i+1)
					}
				}
			}
		}
	}
}

type batchItem struct {
	sender int
	tx     signedTx
}

// submitBatch posts items to one node in one request (POST /v1/txs/batch), retrying the ones the
// node is too busy to take; it returns the senders whose transactions were rejected.
func (sub *submitter) submitBatch(ctx context.Context, apiURL string, items []batchItem) (rejected []int) {
	if len(items) == 1 {
		if !sub.submit(ctx, apiURL, items[0].tx) {
			return []int{items[0].sender}
		}
		return nil
	}
	sub.submitted.Add(int64(len(items)))
	hashes := make([]state.Hash, len(items))
	for i, it := range items {
		hashes[i] = it.tx.hash
	}
	sub.tracker.sent(time.Now(), hashes...)
	failovers := 0
	farSince := time.Time{} // when the node first refused these as too far ahead
	var body []byte         // of items; made again only when the items to retry change
	for backoff := 5 * time.Millisecond; len(items) > 0; backoff = min(2*backoff, 200*time.Millisecond) {
		if body == nil {
			body = batchBody(items)
		}
		var resp batchAnswer
		if !sub.waitNode(ctx, apiURL) {
			sub.giveUpOn(items)
			return rejected
		}
		sub.requests.Add(1)
		ans, err := sub.http.postDecodeAs(ctx, apiURL+"/v1/txs/batch", "application/cbor", body, &resp)
		status, msg := ans.status, ans.msg
		switch {
		case err != nil && ctx.Err() == nil && failovers < len(sub.apis)-1:
			// No answer: the node is down or hung (a chaos run does that). The same transactions
			// to another node are harmless if the first did take them (known: pending), and
			// otherwise keep this sender's later nonces from waiting forever on a lost one.
			failovers++
			apiURL = sub.apis[(slices.Index(sub.apis, apiURL)+1)%len(sub.apis)]
		case err != nil || status >= 500 && status != 503 || status < 400 && len(resp.Results) != len(items):
			sub.errors.Add(int64(len(items)))
			return rejected
		case status == 429 || status == 503:
			sub.refuse(apiURL, ans, len(items))
		case status >= 400:
			sub.rejected.Add(int64(len(items)))
			sub.firstRejection.CompareAndSwap(nil, fmt.Sprintf("%d %s", status, msg))
			for _, it := range items {
				sub.tracker.rejected(it.tx)
				rejected = append(rejected, it.sender)
			}
			return rejected
		default:
			var busy []batchItem
			taken := make([]signedTx, 0, len(items))
			for i, r := range resp.Results {
				switch {
				case r.Status == api.TxPending:
					taken = append(taken, items[i].tx)
				case r.Status == api.TxBusy:
					sub.refused(reasonBusy, 1)
					busy = append(busy, items[i])
				case tooFarAhead(r.Error) && waitFar(&farSince):
					sub.refused(reasonTooFar, 1)
					busy = append(busy, items[i])
				default:
					sub.rejected.Add(1)
					sub.tracker.rejected(items[i].tx)
					sub.firstRejection.CompareAndSwap(nil, "400 "+r.Error)
					rejected = append(rejected, items[i].sender)
				}
			}
			sub.accepted.Add(int64(len(taken)))
			sub.tracker.accepted(time.Now(), apiURL, taken...)
			if len(busy) < len(items) {
				body = nil
			}
			items = busy
			if len(items) == 0 {
				return rejected
			}
		}
		select {
		case <-ctx.Done():
			return rejected
		case <-sub.giveUp:
			sub.giveUpOn(items)
			return rejected
		case <-time.After(backoff):
		}
	}
	return rejected
}

// giveUpOn counts items as given up (giveUpTxs).
func (sub *submitter) giveUpOn(items []batchItem) {
	txs := make([]signedTx, len(items))
	for i := range items {
		txs[i] = items[i].tx
	}
	sub.giveUpTxs(txs...)
}

// giveUpTxs counts txs as given up and tells the tracker: their senders' later nonces, if a node
// took them, wait behind these for ever.
func (sub *submitter) giveUpTxs(txs ...signedTx) {
	sub.gaveUp.Add(int64(len(txs)))
	sub.tracker.abandoned(txs...)
}

// batchAnswer is the part of a batch answer (api.SubmitTxsResponse) the generator reads: each
// transaction's status and error, not the hashes it already knows (one string fewer to allocate
// per transaction).
type batchAnswer struct {
	Results []struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"results"`
}

// batchBody is the binary form of a batch (POST /v1/txs/batch, application/cbor): a CBOR array
// of byte strings, each an encoded transaction, with the shortest heads (what cbor.Marshal
// writes). Half the bytes of hex in JSON and no hex to decode on the node; written by hand,
// without the reflection cbor.Marshal spends per element.
func batchBody(items []batchItem) []byte {
	size := 9
	for _, it := range items {
		size += 9 + len(it.tx.raw)
	}
	b := state.AppendCBORHead(make([]byte, 0, size), 4, uint64(len(items)))
	for _, it := range items {
		b = state.AppendCBORHead(b, 2, uint64(len(it.tx.raw)))
		b = append(b, it.tx.raw...)
	}
	return b
}

// submit posts tx, retrying while the node pushes back (429, 503); false means rejected.
func (sub *submitter) submit(ctx context.Context, apiURL string, tx signedTx) bool {
	body := make([]byte, 0, len(`{"tx":""}`)+2*len(tx.raw))
	body = append(body, `{"tx":"`...)
	body = hex.AppendEncode(body, tx.raw)
	body = append(body, `"}`...)
	sub.submitted.Add(1)
	sub.tracker.sent(time.Now(), tx.hash)
	failovers := 0
	farSince := time.Time{}
	for backoff := 5 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
		if !sub.waitNode(ctx, apiURL) {
			sub.giveUpTxs(tx)
			return true
		}
		sub.requests.Add(1)
		ans, err := sub.http.post(ctx, apiURL+"/v1/txs", body)
		status, msg := ans.status, ans.msg
		switch {
		case err != nil && ctx.Err() == nil && failovers < len(sub.apis)-1:
			failovers++ // no answer: try the next node, as submitBatch does
			apiURL = sub.apis[(slices.Index(sub.apis, apiURL)+1)%len(sub.apis)]
		case err != nil || status >= 500 && status != 503:
			sub.errors.Add(1)
			return true // it may be in the mempool; its sender's later nonces may still be good
		case status == 429 || status == 503 || status == 400 && tooFarAhead(msg) && waitFar(&farSince):
			if status == 400 {
				sub.refused(reasonTooFar, 1)
			} else {
				sub.refuse(apiURL, ans, 1)
			}
			select {
			case <-ctx.Done():
				return true
			case <-sub.giveUp:
				sub.giveUpTxs(tx)
				return true
			case <-time.After(backoff):
			}
		case status >= 400:
			sub.rejected.Add(1)
			sub.tracker.rejected(tx)
			sub.firstRejection.CompareAndSwap(nil, fmt.Sprintf("%d %s", status, msg))
			return false
		default:
			sub.accepted.Add(1)
			sub.tracker.accepted(time.Now(), apiURL, tx)
			return true
		}
	}
}

func newSubmitter(apis []string, workers int, tr *tracker) *submitter {
	sub := &submitter{apis: apis, http: newAPIHTTP(workers), tracker: tr, giveUp: make(chan struct{}),
		notBefore: map[string]*atomic.Int64{}}
	for _, a := range apis {
		sub.notBefore[a] = new(atomic.Int64)
	}
	return sub
}

// Reasons a submission was refused and retried (LoadReport.RefusedBy).
const (
	reasonBusy   = "busy"          // a transaction of a taken request answered busy
	reasonTooFar = "nonce_too_far" // nonce too far ahead while the chain catches up
)

// refuse counts a whole request refused (429/503) by its error code, and keeps the generator
// off that node for the Retry-After the node asked for: refused, not lost, and not retried
// before the node said it could take it.
func (sub *submitter) refuse(apiURL string, ans apiAnswer, txs int) {
	reason := ans.code
	if reason == "" {
		reason = strconv.Itoa(ans.status)
	}
	sub.refused(reason, txs)
	if ans.retryAfter <= 0 {
		return
	}
	nb := sub.notBefore[apiURL]
	if nb == nil {
		return
	}
	until := time.Now().Add(ans.retryAfter).UnixNano()
	for {
		cur := nb.Load()
		if cur >= until || nb.CompareAndSwap(cur, until) {
			return
		}
	}
}

// refused counts txs refused for reason (each retried).
func (sub *submitter) refused(reason string, txs int) {
	sub.throttled.Add(int64(txs))
	c, _ := sub.refusedBy.LoadOrStore(reason, new(atomic.Int64))
	c.(*atomic.Int64).Add(int64(txs))
}

// refusedByReason is the refusals counted so far, by reason.
func (sub *submitter) refusedByReason() map[string]int {
	out := map[string]int{}
	sub.refusedBy.Range(func(k, v any) bool {
		out[k.(string)] = int(v.(*atomic.Int64).Load())
		return true
	})
	return out
}

// waitNode waits out a Retry-After that apiURL answered, plus up to half as long again at
// random; false if the run or its retries ended first.
func (sub *submitter) waitNode(ctx context.Context, apiURL string) bool {
	nb := sub.notBefore[apiURL]
	if nb == nil {
		return true
	}
	d := time.Until(time.Unix(0, nb.Load()))
	if d <= 0 {
		return true
	}
	// Each worker is a client of its own: they do not all come back at the same instant. Back
	// together, the workers refused by a node in one moment herded in as its door opened, and
	// each node took its full room before it saw what the others had just taken through gossip:
	// past saturation the mempools swung to four times the mark and transactions waited seconds.
	if d > 1 {
		d += mrand.N(d / 2)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-sub.giveUp:
		return false
	case <-t.C:
		return true
	}
}

// tooFarAhead tells a refusal for a nonce too far ahead of the sender's committed one: while
// the chain stalls (a chaos run makes it), the sender's earlier transactions are pending, not
// lost, so it is pushback to wait out, not a reason to drop the sender.
func tooFarAhead(reason string) bool {
	return strings.Contains(reason, node.ErrNonceTooFar.Error())
}

// maxFarWait bounds that wait: a sender still too far ahead after it has lost one of its
// transactions for good (a node that took it crashed), and is dropped.
const maxFarWait = 30 * time.Second

// waitFar starts or continues the wait of a too-far-ahead refusal; false once it is over.
func waitFar(since *time.Time) bool {
	if since.IsZero() {
		*since = time.Now()
	}
	return time.Since(*since) < maxFarWait
}
