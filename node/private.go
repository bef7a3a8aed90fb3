package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// Private payloads between named members (issue 14). The chain holds each payload's public part
// (state.PrivateRecord: commitment, sender, recipients, expiry); this file moves and keeps the
// ciphertexts, outside the event loop, on a worker of its own that follows committed blocks:
//
//   - The node that took a payload from its API (POST /v1/private) keeps it, marked submitted;
//     once the transaction commits it pushes the ciphertext over the private stream protocol to
//     the node of every other holder (the sender's member and the recipients), and nobody else.
//   - A holder's node that sees a committed record it lacks the ciphertext of (in a new block,
//     or at start for everything committed while it was down) fetches it by commitment from the
//     sender's node, then the other holders', until it has it or it expires.
//   - A node accepts a pushed ciphertext, or serves one, only for a committed record whose
//     holders include both itself and the asking peer's member; what it stores must hash to the
//     commitment and have the declared size.
//   - Once block h is applied, every ciphertext whose expiry height is at most h is deleted. The
//     record stays, so a disclosed copy can still be checked against the commitment.
//
// A member's node is the node bound (peer ID) to the validator named like the member: so it is
// in testnets and in the genesis `guild node init` makes. [private] member overrides it for self.

const (
	privateRetryMin = 500 * time.Millisecond
	privateRetryMax = 30 * time.Second
	privateTimeout  = 10 * time.Second
	// privatePushAttempts bounds a sender's retries of one push: after them the recipient's own
	// fetch (at its restart or on its next sight of the record) is what delivers it.
	privatePushAttempts = 8
	// privateUnconfirmedBlocks: a payload taken by the API whose transaction has not committed
	// this many blocks later is dropped (the transaction was refused or lost).
	privateUnconfirmedBlocks = 600
	// privateWarnAttempts: a fetch that failed this many times is reported at WARN.
	privateWarnAttempts = 6
)

var (
	errPrivateNotHolder = errors.New("node: this node's member is not a holder of the payload")
	errPrivateNoOp      = errors.New("node: the transaction has no private operation")
)

// privateData is the node's side of private payloads.
type privateData struct {
	store *privateStore
	db    kv.Store
	// wake nudges the worker (a payload was submitted).
	wake chan struct{}

	received prometheus.Counter
	purged   prometheus.Counter
	invalid  prometheus.Counter
	refused  *prometheus.CounterVec
	missing  prometheus.Gauge
}

// privateTask is what the worker still has to do for one payload.
type privateTask struct {
	rec      state.PrivateRecord
	fetch    bool            // this node lacks the ciphertext
	pushTo   map[string]bool // members whose nodes are still to get it from this node
	attempts int
	next     time.Time
	busy     bool // an attempt is running
}

type privateResult struct {
	c       state.Hash
	fetched bool            // the ciphertext was fetched and stored
	pushed  map[string]bool // members whose nodes took it (or will never)
	err     error
}

func (n *Node) openPrivate() error {
	db, err := kv.OpenWith(kv.Backend(n.cfg.Storage.Backend), filepath.Join(n.home, DataDir), "private", kv.Options{Logger: n.log})
	if err != nil {
		return fmt.Errorf("node: opening private store: %w", err)
	}
	st, err := openPrivateStore(db)
	if err != nil {
		_ = db.Close()
		return err
	}
	p := &privateData{store: st, db: db, wake: make(chan struct{}, 1),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_private_received_total",
			Help: "Private ciphertexts this node received from a peer (pushed or fetched), checked against their commitment and stored."}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_private_purged_total",
			Help: "Private ciphertexts deleted because their expiry height passed."}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_private_invalid_total",
			Help: "Private ciphertexts refused because they do not hash to their on-chain commitment or have another size."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_private_refused_total",
			Help: "Private payload requests refused because the asker is not a holder, by where they came from (stream, api)."}, []string{"via"}),
		missing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_private_missing",
			Help: "Private payloads this node's member should hold and this node has not got yet (it keeps fetching them)."}),
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "guild_private_held", Help: "Private ciphertexts this node stores."},
		func() float64 { return float64(st.held.Load()) })
	for _, c := range []prometheus.Collector{p.received, p.purged, p.invalid, p.refused, p.missing, held} {
		if err := n.metrics.reg.Register(c); err != nil {
			n.log.Warn("registering private metrics", "err", err)
		}
	}
	n.private = p
	return nil
}

func (n *Node) closePrivate() {
	if n.private != nil {
		if err := n.private.db.Close(); err != nil {
			n.log.Warn("closing private store", "err", err)
		}
	}
}

// privateMember is the member this node holds payloads for ("" if it is none's).
func (n *Node) privateMember() string {
	if n.cfg.Private.Member != "" {
		return n.cfg.Private.Member
	}
	return n.memberOfPeer(n.peerID)
}

// memberOfPeer is the member whose node has peer ID p: the newest validator bound to p.
func (n *Node) memberOfPeer(p string) string {
	eps := n.sched.Load().epochs
	for i := len(eps) - 1; i >= 0; i-- {
		if j := slices.Index(eps[i].Peers, p); j >= 0 {
			return eps[i].Names[j]
		}
	}
	return ""
}

// peerOfMember is the peer ID of member m's node ("" if none is bound).
func (n *Node) peerOfMember(m string) string {
	eps := n.sched.Load().epochs
	for i := len(eps) - 1; i >= 0; i-- {
		if j := slices.Index(eps[i].Names, m); j >= 0 && eps[i].Peers[j] != "" {
			return eps[i].Peers[j]
		}
	}
	return ""
}

// privateOp returns the public part of a transaction's private payload, if it has one.
func privateOp(b *state.TxBody) (*state.PrivateSend, bool) {
	switch {
	case b.PrivateSend != nil:
		return b.PrivateSend, true
	case b.PrivateEscrowCreate != nil:
		return &b.PrivateEscrowCreate.Private, true
	case b.PrivateClaimIssue != nil:
		return &b.PrivateClaimIssue.Private, true
	}
	return nil, false
}

// checkCiphertext checks a ciphertext against its commitment and declared size.
func checkCiphertext(c state.Hash, size uint64, ct []byte) error {
	if uint64(len(ct)) != size {
		return fmt.Errorf("node: ciphertext of %d bytes, the transaction declares %d", len(ct), size)
	}
	if sha256.Sum256(ct) != c {
		return fmt.Errorf("node: ciphertext does not hash to the commitment %s", c)
	}
	return nil
}

// SubmitPrivate takes a signed transaction with a private operation and its ciphertext: it checks
// that the ciphertext matches, keeps it, and submits the transaction. The ciphertext goes to the
// other holders' nodes once the transaction commits.
func (n *Node) SubmitPrivate(ctx context.Context, raw, ciphertext []byte) (state.Hash, state.Hash, error) {
	tx, err := state.DecodeTx(raw)
	if err != nil {
		return state.Hash{}, state.Hash{}, err
	}
	op, ok := privateOp(&tx.Body)
	if !ok {
		return state.Hash{}, state.Hash{}, errPrivateNoOp
	}
	if len(ciphertext) > n.cfg.Private.MaxBytes {
		return state.Hash{}, op.Commitment, fmt.Errorf("node: ciphertext of %d bytes, this node's limit (private.max_bytes) is %d", len(ciphertext), n.cfg.Private.MaxBytes)
	}
	if err := checkCiphertext(op.Commitment, op.Size, ciphertext); err != nil {
		n.private.invalid.Inc()
		return state.Hash{}, op.Commitment, err
	}
	self := n.privateMember()
	sender, _, err := n.st.IsMember(tx.Body.From)
	if err != nil {
		return state.Hash{}, op.Commitment, err
	}
	if self == "" || (sender.Name != self && !slices.Contains(op.Recipients, self)) {
		return state.Hash{}, op.Commitment, fmt.Errorf("%w (this node holds for %q): submit it to the node of the sender's member", errPrivateNotHolder, self)
	}
	if _, err := n.private.store.put(op.Commitment, ciphertext, op.Expires, max(1, n.executedHeight()), state.HashTx(raw)); err != nil {
		return state.Hash{}, op.Commitment, err
	}
	h, err := n.Submit(ctx, raw)
	if err != nil && !errors.Is(err, ErrTxKnown) {
		// Refused: nothing will commit it, so nothing should hold it.
		if rerr := n.private.store.remove(op.Commitment, op.Expires); rerr != nil {
			n.log.Warn("dropping a refused private payload", "commitment", op.Commitment, "err", rerr)
		}
		return h, op.Commitment, err
	}
	select {
	case n.private.wake <- struct{}{}:
	default:
	}
	return h, op.Commitment, nil
}

// AcceptPrivate is p2p.PrivateSource: a ciphertext pushed by peer.
func (n *Node) AcceptPrivate(peer string, commitment [32]byte, ct []byte) p2p.PrivateStatus {
	c := state.Hash(commitment)
	rec, status := n.privateAllowed(peer, c, "push")
	if status != p2p.PrivateOK {
		return status
	}
	if ok, err := n.private.store.has(c); err == nil && ok {
		return p2p.PrivateOK
	}
	if err := checkCiphertext(c, rec.Size, ct); err != nil {
		n.private.invalid.Inc()
		n.log.Warn("refused a private ciphertext that does not match its commitment; the peer's node is faulty or tampered with",
			"peer", peer, "member", n.memberOfPeer(peer), "commitment", c, "err", err)
		// An honest node checks what it stores and pushes: this is garbage, and costs score.
		_ = n.host.Penalize(peer, invalidMessagePenalty)
		return p2p.PrivateInvalid
	}
	added, err := n.private.store.put(c, ct, rec.Expires, 0, state.Hash{})
	if err != nil {
		n.log.Error("storing a private ciphertext", "commitment", c, "err", err)
		return p2p.PrivateBusy
	}
	if added {
		n.private.received.Inc()
		n.log.Info("private payload received", "commitment", c, "from", n.memberOfPeer(peer), "via", "push")
	}
	return p2p.PrivateOK
}

// ServePrivate is p2p.PrivateSource: peer asks for a ciphertext.
func (n *Node) ServePrivate(peer string, commitment [32]byte) ([]byte, p2p.PrivateStatus) {
	c := state.Hash(commitment)
	if _, status := n.privateAllowed(peer, c, "fetch"); status != p2p.PrivateOK {
		return nil, status
	}
	ct, err := n.private.store.get(c)
	if err != nil || ct == nil {
		return nil, p2p.PrivateUnknown
	}
	return ct, p2p.PrivateOK
}

// privateAllowed decides whether peer may push or fetch commitment c here: a committed, unexpired
// record of which this node's member and the peer's member are both holders.
func (n *Node) privateAllowed(peer string, c state.Hash, what string) (state.PrivateRecord, p2p.PrivateStatus) {
	rec, err := n.st.PrivateRecord(c)
	if err != nil {
		return rec, p2p.PrivateUnknown // not committed here (yet), or a store fault
	}
	self, theirs := n.privateMember(), n.memberOfPeer(peer)
	if !rec.IsHolder(self) || theirs == "" || !rec.IsHolder(theirs) {
		n.private.refused.WithLabelValues("stream").Inc()
		n.log.Warn("refused a private "+what+" from a peer that is not a holder of the payload",
			"peer", peer, "member", theirs, "commitment", c, "holders", rec.Holders())
		return rec, p2p.PrivateRefused
	}
	if rec.ExpiredAt(n.executedHeight()) {
		return rec, p2p.PrivateUnknown
	}
	return rec, p2p.PrivateOK
}

// runPrivate is the worker: it follows committed blocks, and pushes, fetches and purges.
func (n *Node) runPrivate(ctx context.Context) {
	w := &privateWorker{n: n, log: n.log.With("component", "private"), tasks: map[state.Hash]*privateTask{},
		results: make(chan privateResult, 16)}
	last := n.executedHeight()
	w.scanAll(last)
	tick := time.NewTicker(privateRetryMin)
	defer tick.Stop()
	defer w.attempts.Wait() // they use the store and the host, which close after Run's workers
	for {
		woken := n.commits.wait()
		for h := last + 1; h <= n.executedHeight(); h++ {
			if err := w.block(h); err != nil {
				w.log.Warn("reading a committed block for private payloads; retrying", "height", h, "err", err)
				break
			}
			last = h
		}
		w.purge(last)
		w.start(ctx, time.Now())
		n.private.missing.Set(float64(w.missing()))
		select {
		case <-ctx.Done():
			return
		case <-woken:
		case <-tick.C:
		case <-n.private.wake:
		case r := <-w.results:
			w.finish(r, time.Now())
		}
	}
}

type privateWorker struct {
	n        *Node
	log      *slog.Logger
	tasks    map[state.Hash]*privateTask
	results  chan privateResult
	running  int
	attempts sync.WaitGroup
}

// scanAll considers every committed record: what this node missed while it was down.
func (w *privateWorker) scanAll(h uint64) {
	recs, err := w.n.st.PrivateRecords()
	if err != nil {
		w.log.Warn("listing private records at start; payloads missed while down are fetched when next seen", "err", err)
		return
	}
	for i := range recs {
		w.consider(&recs[i], h)
	}
}

// block considers the private records committed by block h. It follows every block at full
// load, so it does the least it can with one that has no private operation (nearly every one):
// the transactions are split out of the block without copying them, decoded only where their
// bytes may hold a private operation, and the results are read only when one does.
func (w *privateWorker) block(h uint64) error {
	value, _, err := w.n.blocks.Block(h)
	if err != nil {
		return err
	}
	var b blockTxsRaw
	if err := skimMode.Unmarshal(value, &b); err != nil {
		return err
	}
	txs, err := state.SplitByteStrings(b.Txs, MaxBlockTxsLimit)
	if err != nil {
		return err
	}
	var results []StoredResult
	for i, raw := range txs {
		if !mayBePrivate(raw) {
			continue
		}
		// DecodeTx, as execution: what it refuses was rejected, which purge handles.
		tx, err := state.DecodeTx(raw)
		if err != nil {
			continue
		}
		op, ok := privateOp(&tx.Body)
		if !ok {
			continue
		}
		if results == nil {
			if results, err = w.n.blocks.Results(h); err != nil {
				return err
			}
		}
		if i >= len(results) {
			break
		}
		if results[i].Error != "" {
			continue // rejected: purge drops what this node took for it
		}
		rec, err := w.n.st.PrivateRecord(op.Commitment)
		if err != nil {
			return err
		}
		w.consider(&rec, h)
	}
	return nil
}

// privateOpKeys are the CBOR map keys of TxBody's private operations that carry a payload (31,
// 32, 34: two bytes each). A transaction whose bytes hold none of them has no payload, and is not
// decoded again here: the worker follows every block, at full load too.
var privateOpKeys = [][]byte{{0x18, 31}, {0x18, 32}, {0x18, 34}}

// mayBePrivate says whether raw holds one of privateOpKeys, in one pass over it (they all start
// with the same byte).
func mayBePrivate(raw []byte) bool {
	for i := 0; ; i++ {
		j := bytes.IndexByte(raw[i:], privateOpKeys[0][0])
		if j < 0 || i+j+1 >= len(raw) {
			return false
		}
		i += j
		for _, k := range privateOpKeys {
			if raw[i+1] == k[1] {
				return true
			}
		}
	}
}

// blockTxsRaw is a stored block's transactions, as their CBOR array, the rest skipped.
type blockTxsRaw struct {
	Txs cbor.RawMessage `cbor:"2,keyasint"`
}

// consider makes the task one committed record needs, as of height h.
func (w *privateWorker) consider(rec *state.PrivateRecord, h uint64) {
	self := w.n.privateMember()
	store := w.n.private.store
	c := rec.Commitment
	if !rec.IsHolder(self) {
		return
	}
	if rec.ExpiredAt(h) {
		if err := store.remove(c, rec.Expires); err != nil {
			w.log.Warn("purging an expired private payload", "commitment", c, "err", err)
		}
		delete(w.tasks, c)
		return
	}
	held, err := store.has(c)
	if err != nil {
		w.log.Warn("reading the private store", "err", err)
		return
	}
	submitted, err := store.submitted(c, held)
	if err != nil {
		w.log.Warn("reading the private store", "err", err)
	}
	t := w.tasks[c]
	if held && !submitted {
		return
	}
	if t == nil {
		t = &privateTask{rec: *rec}
		w.tasks[c] = t
	}
	if !held {
		t.fetch = true
		w.log.Info("private payload to fetch", "commitment", c, "sender", rec.SenderMember)
		return
	}
	// This node took it from the API: hand it to every other holder's node.
	if err := store.setExpiry(c, rec.Expires); err != nil {
		w.log.Warn("indexing a private payload's expiry", "commitment", c, "err", err)
	}
	t.pushTo = map[string]bool{}
	for _, m := range rec.Holders() {
		if m != self {
			t.pushTo[m] = true
		}
	}
}

// purge deletes what expired by height h, and drops submissions that never committed.
func (w *privateWorker) purge(h uint64) {
	store := w.n.private.store
	gone, err := store.purge(h)
	if err != nil {
		w.log.Warn("purging expired private payloads", "err", err)
	}
	for _, c := range gone {
		delete(w.tasks, c)
		w.n.private.purged.Inc()
		w.log.Info("private payload purged at its expiry; the commitment stays on chain", "commitment", c, "height", h)
	}
	for c, t := range w.tasks {
		if t.rec.ExpiredAt(h) {
			delete(w.tasks, c)
		}
	}
	pending, err := store.unconfirmed()
	if err != nil {
		w.log.Warn("listing submitted private payloads", "err", err)
		return
	}
	for c, u := range pending {
		_, refused := w.n.rejected.get(u.tx)
		if loc, err := w.n.blocks.TxLocation(u.tx); err == nil && loc.Error != "" {
			refused = true // a block rejected it
		}
		if w.n.pool.Has(u.tx) || !refused && h < u.at+privateUnconfirmedBlocks {
			continue
		}
		if _, err := w.n.st.PrivateRecord(c); !errors.Is(err, state.ErrUnknown) {
			continue // committed (the worker will push it) or unreadable now
		}
		if err := store.remove(c, 0); err != nil {
			w.log.Warn("dropping a private payload whose transaction did not commit", "commitment", c, "err", err)
			continue
		}
		w.log.Info("dropped a submitted private payload: its transaction was rejected or never committed", "commitment", c, "tx", u.tx)
	}
}

func (w *privateWorker) missing() int {
	k := 0
	for _, t := range w.tasks {
		if t.fetch {
			k++
		}
	}
	return k
}

// start runs the attempts that are due, a few at a time.
func (w *privateWorker) start(ctx context.Context, now time.Time) {
	for c, t := range w.tasks {
		if w.running >= 4 {
			return
		}
		if t.busy || now.Before(t.next) || (!t.fetch && len(t.pushTo) == 0) {
			continue
		}
		t.busy = true
		w.running++
		rec, fetch, pushTo := t.rec, t.fetch, mapsKeys(t.pushTo)
		w.attempts.Add(1)
		go func() {
			defer w.attempts.Done()
			var r privateResult
			if fetch {
				r = w.n.fetchPrivate(ctx, &rec)
			} else {
				r = w.n.pushPrivate(ctx, &rec, pushTo)
			}
			r.c = c
			select {
			case w.results <- r:
			case <-ctx.Done():
			}
		}()
	}
}

func mapsKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// finish records an attempt's outcome and schedules the next one, backing off.
func (w *privateWorker) finish(r privateResult, now time.Time) {
	w.running--
	t := w.tasks[r.c]
	if t == nil {
		return // purged meanwhile
	}
	t.busy = false
	if r.fetched {
		t.fetch = false
	}
	for m := range r.pushed {
		delete(t.pushTo, m)
	}
	if !t.fetch && len(t.pushTo) == 0 {
		delete(w.tasks, r.c)
		return
	}
	t.attempts++
	if !t.fetch && t.attempts >= privatePushAttempts {
		w.log.Warn("gave up pushing a private payload; the recipients' nodes fetch it themselves when they see it",
			"commitment", r.c, "members", mapsKeys(t.pushTo), "err", r.err)
		delete(w.tasks, r.c)
		return
	}
	if t.fetch && t.attempts%privateWarnAttempts == 0 {
		w.log.Warn("cannot fetch a private payload from any holder's node yet; check that they are up and connected",
			"commitment", r.c, "holders", t.rec.Holders(), "attempts", t.attempts, "err", r.err)
	}
	t.next = now.Add(min(privateRetryMax, privateRetryMin<<min(t.attempts, 10)))
}

// fetchPrivate asks the sender's node, then the other holders', for the ciphertext.
func (n *Node) fetchPrivate(ctx context.Context, rec *state.PrivateRecord) privateResult {
	self := n.privateMember()
	var errs []error
	for _, m := range rec.Holders() { // the sender's member first
		p := n.peerOfMember(m)
		if m == self || p == "" {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, privateTimeout)
		ct, status, err := n.host.FetchPrivate(actx, p, rec.Commitment)
		cancel()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		case status != p2p.PrivateOK:
			errs = append(errs, fmt.Errorf("%s: %s", m, status))
			continue
		}
		if err := checkCiphertext(rec.Commitment, rec.Size, ct); err != nil {
			n.private.invalid.Inc()
			n.log.Warn("a holder's node served a ciphertext that does not match its commitment; its store is corrupt or it is faulty",
				"member", m, "commitment", rec.Commitment, "err", err)
			_ = n.host.Penalize(p, invalidMessagePenalty)
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		added, err := n.private.store.put(rec.Commitment, ct, rec.Expires, 0, state.Hash{})
		if err != nil {
			return privateResult{err: err}
		}
		if added {
			n.private.received.Inc()
			n.log.Info("private payload received", "commitment", rec.Commitment, "from", m, "via", "fetch")
		}
		return privateResult{fetched: true}
	}
	return privateResult{err: errors.Join(errs...)}
}

// pushPrivate hands the ciphertext to the nodes of members.
func (n *Node) pushPrivate(ctx context.Context, rec *state.PrivateRecord, members []string) privateResult {
	ct, err := n.private.store.get(rec.Commitment)
	if err != nil || ct == nil {
		return privateResult{err: fmt.Errorf("node: reading the private store: %v", err)}
	}
	done := map[string]bool{}
	var errs []error
	for _, m := range members {
		p := n.peerOfMember(m)
		if p == "" {
			n.log.Warn("a recipient member has no node bound to a validator; it cannot get the payload", "member", m, "commitment", rec.Commitment)
			done[m] = true
			continue
		}
		actx, cancel := context.WithTimeout(ctx, privateTimeout)
		status, err := n.host.PushPrivate(actx, p, rec.Commitment, ct)
		cancel()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
		case status == p2p.PrivateOK:
			done[m] = true
			n.log.Info("private payload delivered", "commitment", rec.Commitment, "to", m)
		case status == p2p.PrivateRefused, status == p2p.PrivateInvalid:
			done[m] = true
			n.log.Warn("a recipient's node refused a private payload", "member", m, "commitment", rec.Commitment, "status", status)
		default: // unknown (it has not applied the block yet) or busy: later
			errs = append(errs, fmt.Errorf("%s: %s", m, status))
		}
	}
	return privateResult{pushed: done, err: errors.Join(errs...)}
}

// privateStreamCollector exports the private stream protocol's counts.
type privateStreamCollector struct {
	h    *p2p.Host
	desc *prometheus.Desc
}

func newPrivateStreamCollector(h *p2p.Host) *privateStreamCollector {
	return &privateStreamCollector{h: h, desc: prometheus.NewDesc("guild_private_stream_requests_total",
		"Private payload stream requests this node served, by kind (push, fetch) and answer (ok, refused, unknown, invalid, busy).",
		[]string{"kind", "status"}, nil)}
}

func (c *privateStreamCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *privateStreamCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.h.PrivateCounts()
	for i := range counts.Pushes {
		s := p2p.PrivateStatus(i).String()
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(counts.Pushes[i]), "push", s)
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(counts.Fetches[i]), "fetch", s)
	}
}
