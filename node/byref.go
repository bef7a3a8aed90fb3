package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// Proposals by reference (issue #10, docs/protocol.md). Transactions travel once, through tx
// gossip; a leader's PRE-PREPARE goes out as its header, the ordered hashes of its transactions
// and its evidence, with the leader's signed message. The value consensus decides is still the
// whole block: the digest the leader signed, the prepares and commits, and the certificate are
// all the full block's hash, so the block store, block sync, the API and light clients see
// nothing new. A validator rebuilds the block from its mempool and txCache, fetches what it
// lacks by hash (p2p.FetchTxs), checks that every fetched transaction hashes to what it asked for
// and that the rebuilt block hashes to the signed digest, and only then hands the core an
// ordinary PRE-PREPARE carrying the whole block, which the core checks and prepares as before.
// A block the validator cannot obtain within fetch_timeout_ms is never handed to the core: it
// does not prepare, and if too many others cannot either, the view times out.
//
// Nothing about the wire form is signed: a relay that alters the hashes only makes the rebuilt
// block miss the digest, and the block is refused like any forgery.

// proposalRefPrefix starts a proposal by reference on the consensus topic. 0xff is CBOR's
// "break", which starts no well-formed item, so no consensus message (a map) or evidence (an
// array) can be taken for one.
const proposalRefPrefix = 0xff

// proposalRef is a PRE-PREPARE by reference.
type proposalRef struct {
	// Message is the leader's signed PRE-PREPARE with its value left out; its digest is the
	// whole block's.
	Message  consensus.Message    `cbor:"1,keyasint"`
	Header   Header               `cbor:"2,keyasint"`
	Txs      state.HashList       `cbor:"3,keyasint"`
	Evidence []consensus.Evidence `cbor:"4,keyasint,omitempty"`
	// Inline carries, whole, the transactions the sender took in too recently for tx gossip to
	// have brought them to the others (inlineWindow): asking for them would cost a round trip
	// to a leader that is busy proposing. In ascending index order; each must hash to its entry
	// in Txs.
	Inline []inlineTx `cbor:"5,keyasint,omitempty"`
}

// inlineTx is a transaction of a proposal by reference sent whole: Txs[Index]'s bytes.
type inlineTx struct {
	_     struct{} `cbor:",toarray"`
	Index uint32
	Raw   []byte
}

// inlineWindow: a proposal by reference carries whole the transactions its sender took in this
// recently. Tx gossip batches every few milliseconds, but on a busy machine its validation
// queue runs hundreds of milliseconds behind; measured on the 2 shared cores at 6,000 tx/s, about
// 5 % of a proposal's transactions were not yet at the other validators, and fetching them took
// 0.3-0.7 s.
const inlineWindow = 300 * time.Millisecond

var (
	// ErrBadProposalRef is a proposal by reference that cannot be a correct one.
	ErrBadProposalRef = errors.New("node: invalid proposal by reference")
	// ErrTxsUnavailable: some transactions of a proposal by reference could not be obtained in time.
	ErrTxsUnavailable = errors.New("node: transactions of a proposal by reference unavailable")
	// errWrongTx is a fetched transaction that does not hash to what was asked for.
	errWrongTx = errors.New("node: fetched transaction does not match its hash")
)

func isProposalRef(data []byte) bool { return len(data) > 0 && data[0] == proposalRefPrefix }

// encodeProposalRef is the wire form of m, a PRE-PREPARE of b, by reference. recent, if set,
// gives the indexes (ascending) of the transactions to send whole.
func encodeProposalRef(m *consensus.Message, b *Block, recent func([]state.Hash) []int) ([]byte, error) {
	ref := proposalRef{Message: *m, Header: b.Header, Txs: make(state.HashList, len(b.Txs)), Evidence: b.Evidence}
	ref.Message.Value = nil
	copy(ref.Txs, b.txHashes())
	if recent != nil {
		for _, i := range recent(ref.Txs) {
			ref.Inline = append(ref.Inline, inlineTx{Index: uint32(i), Raw: b.Txs[i]})
		}
	}
	enc, err := state.Marshal(&ref)
	if err != nil {
		return nil, err
	}
	return append([]byte{proposalRefPrefix}, enc...), nil
}

// decodeProposalRef decodes and checks the shape of a proposal by reference: a PRE-PREPARE
// without its value, within the limits of a block, whose hashes and evidence are those its
// header commits to. The signature is not checked here.
func decodeProposalRef(data []byte) (*proposalRef, error) {
	if !isProposalRef(data) || len(data) > MaxBlockBytes {
		return nil, fmt.Errorf("%w: not one, or over %d bytes", ErrBadProposalRef, MaxBlockBytes)
	}
	var ref proposalRef
	if err := state.Unmarshal(data[1:], &ref); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadProposalRef, err)
	}
	m, h := &ref.Message, &ref.Header
	switch {
	case m.Type != consensus.MsgPrePrepare:
		return nil, fmt.Errorf("%w: a %v", ErrBadProposalRef, m.Type)
	case len(m.Value) != 0 || m.Certificate != nil || m.Prepared != nil || m.PreparedView != 0 ||
		m.ViewChanges != nil || m.Proposal != nil:
		return nil, fmt.Errorf("%w: fields a pre-prepare by reference does not carry", ErrBadProposalRef)
	case h.Height != m.Height:
		return nil, fmt.Errorf("%w: header height %d for height %d", ErrBadProposalRef, h.Height, m.Height)
	case len(ref.Txs) > MaxBlockTxsLimit:
		return nil, fmt.Errorf("%w: %d transactions, limit %d", ErrBadProposalRef, len(ref.Txs), MaxBlockTxsLimit)
	case len(ref.Evidence) > MaxBlockEvidence:
		return nil, fmt.Errorf("%w: %d pieces of evidence, limit %d", ErrBadProposalRef, len(ref.Evidence), MaxBlockEvidence)
	case len(h.Skips) > consensus.MaxValidators:
		return nil, fmt.Errorf("%w: %d leader skips", ErrBadProposalRef, len(h.Skips))
	case txsHashOf(ref.Txs) != h.TxsHash:
		return nil, fmt.Errorf("%w: hashes do not match the header's txs_hash", ErrBadProposalRef)
	case EvidenceHash(ref.Evidence) != h.EvidenceHash:
		return nil, fmt.Errorf("%w: evidence does not match the header's evidence_hash", ErrBadProposalRef)
	}
	for j, in := range ref.Inline {
		if int(in.Index) >= len(ref.Txs) || j > 0 && in.Index <= ref.Inline[j-1].Index {
			return nil, fmt.Errorf("%w: inline transaction %d out of order or range", ErrBadProposalRef, in.Index)
		}
		if len(in.Raw) == 0 || len(in.Raw) > state.MaxTxBytes || state.HashTx(in.Raw) != ref.Txs[in.Index] {
			return nil, fmt.Errorf("%w: inline transaction %d is not the one listed", ErrBadProposalRef, in.Index)
		}
	}
	return &ref, nil
}

// txsHashOf is TxsHash from the transactions' hashes.
func txsHashOf(hashes []state.Hash) state.Hash {
	h := sha256.New()
	for i := range hashes {
		h.Write(hashes[i][:])
	}
	var out state.Hash
	h.Sum(out[:0])
	return out
}

// verifyProposalRef checks the leader's signature on ref's message (the digest it signs is the
// whole block's, so this authenticates the block that the rebuilt one must match).
func verifyProposalRef(chainID string, vals consensus.ValidatorSet, m *consensus.Message, memo consensus.SignatureMemo) error {
	if int(m.From) >= len(vals.Validators) {
		return fmt.Errorf("%w: validator %d of %d", ErrBadProposalRef, m.From, len(vals.Validators))
	}
	if !consensus.VerifySignature(memo, vals.Validators[m.From].PubKey, consensus.SignBytes(chainID, m), m.Sig) {
		return fmt.Errorf("%w: bad signature from validator %d", ErrBadProposalRef, m.From)
	}
	return nil
}

// validateProposalRef is validateConsensus for a proposal by reference.
func (n *Node) validateProposalRef(from string, data []byte) (p2p.Verdict, any) {
	ref, err := decodeProposalRef(data)
	if err != nil {
		return p2p.Reject, nil
	}
	m := &ref.Message
	if why := n.outsideWindow(from, m); why != "" {
		n.metrics.outOfWindow.WithLabelValues(why).Inc()
		return p2p.Ignore, nil
	}
	vals, final := n.validatorsFinal(m.Height)
	if err := verifyProposalRef(n.chainID, vals, m, n.consensusSigs); err != nil {
		if !final {
			return p2p.Ignore, nil
		}
		return p2p.Reject, nil
	}
	if ref.Header.Time > time.Now().Add(maxClockDrift).UnixMilli() {
		return p2p.Ignore, nil // as validateConsensus does for a whole proposal
	}
	return n.ownCopy(m), ref
}

// encodeOutgoing is the wire form of a consensus message this node sends: a PRE-PREPARE by
// reference unless consensus.proposals is "full", everything else as it is.
func (n *Node) encodeOutgoing(m *consensus.Message) ([]byte, error) {
	if m.Type == consensus.MsgPrePrepare && len(m.Value) > 0 && n.cfg.byReference() {
		var b *Block
		if c := n.executed.get(m.Digest, m.Height); c != nil {
			b = c.block // its own proposal, or one it checked: no decoding
		} else if d, err := DecodeBlock(m.Value); err == nil {
			b = d
		}
		if b != nil {
			cutoff := time.Now().Add(-inlineWindow)
			recent := func(hs []state.Hash) []int { return n.pool.AddedSince(hs, cutoff) }
			if enc, err := encodeProposalRef(m, b, recent); err == nil {
				return enc, nil
			}
		}
	}
	return consensus.EncodeMessage(m)
}

// TxsByHash implements p2p.TxSource: what tx fetch serves, from the mempool and the txCache.
func (n *Node) TxsByHash(hashes [][32]byte) [][]byte {
	hs := make([]state.Hash, len(hashes))
	for i := range hashes {
		hs[i] = hashes[i]
	}
	out := make([][]byte, len(hashes))
	if n.pool.Fill(hs, out) < len(hs) {
		n.recent.fill(hs, out)
	}
	return out
}

// txFetcher is the part of the p2p host that proposals by reference use; tests fake it.
type txFetcher interface {
	ConnectedPeers() []string
	FetchTxs(ctx context.Context, peer string, hashes [][32]byte) ([][]byte, error)
}

// maxResolvingPerAuthor bounds the proposals by reference of one validator being rebuilt at
// once (an honest leader has one per view; two let an equivocation be seen), so that a faulty
// validator's proposals, which may never rebuild, cannot hold up the honest leader's.
const maxResolvingPerAuthor = 2

// maxResolved is how many rebuilt values the loop keeps, so that another copy of a proposal
// (relayed, or after the core was not ready for it) needs no second rebuild.
const maxResolved = 8

// resolvedRef is the outcome of rebuilding a proposal by reference, for the loop.
type resolvedRef struct {
	from  string
	msg   *consensus.Message // with its whole value; nil on failure
	block *Block             // msg's value, decoded
	err   error
	ref   *proposalRef
	start time.Time
}

// refState is the loop's bookkeeping of proposals by reference. Owned by the loop.
type refState struct {
	resolving map[consensus.Digest]uint32 // being rebuilt, with the validator that signed it
	resolved  []resolvedValue             // newest last
}

type resolvedValue struct {
	digest consensus.Digest
	value  []byte
	block  *Block // value decoded: what DecodeBlock(value) would give
}

// rebuilt is the block of a rebuilt proposal with digest d, if kept: the proposal checks take it
// instead of decoding the value again.
func (r *refState) rebuilt(d consensus.Digest) *Block {
	for _, v := range r.resolved {
		if v.digest == d {
			return v.block
		}
	}
	return nil
}

// digestOf is the digest of a kept rebuilt value with the same bytes as value (see
// executedBlocks.digestOf).
func (r *refState) digestOf(value []byte) (consensus.Digest, bool) {
	for _, v := range r.resolved {
		if len(v.value) == len(value) && bytes.Equal(v.value, value) {
			return v.digest, true
		}
	}
	return consensus.Digest{}, false
}

func (r *refState) value(d consensus.Digest) []byte {
	for _, v := range r.resolved {
		if v.digest == d {
			return v.value
		}
	}
	return nil
}

func (r *refState) keep(d consensus.Digest, value []byte, b *Block) {
	if r.value(d) != nil {
		return
	}
	if len(r.resolved) >= maxResolved {
		r.resolved = slices.Delete(r.resolved, 0, len(r.resolved)-maxResolved+1)
	}
	r.resolved = append(r.resolved, resolvedValue{digest: d, value: value, block: b})
}

// takeProposalRef handles a proposal by reference on the loop: a copy of one already rebuilt is
// stepped at once, a new one is rebuilt off the loop (resolveRef) and comes back on n.resolvedCh.
func (n *Node) takeProposalRef(ctx context.Context, from string, ref *proposalRef) {
	m := &ref.Message
	if m.Height < n.core.Status().Height {
		return // decided here already; commits and decisions tell the leader we moved on
	}
	if v := n.refs.value(m.Digest); v != nil {
		full := *m
		full.Value = v
		n.stepConsensus(from, &full)
		return
	}
	st := n.core.Status()
	if m.Height == st.Height && m.View == st.View && m.From != st.Leader {
		return // not this view's leader: the core would refuse it, so it is not worth a fetch
	}
	if _, ok := n.refs.resolving[m.Digest]; ok {
		return
	}
	mine := 0
	for _, author := range n.refs.resolving {
		if author == m.From {
			mine++
		}
	}
	if mine >= maxResolvingPerAuthor {
		return
	}
	if n.refs.resolving == nil {
		n.refs.resolving = make(map[consensus.Digest]uint32)
	}
	n.refs.resolving[m.Digest] = m.From
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		start := time.Now()
		msg, b, err := n.resolveRef(ctx, from, ref)
		select {
		case n.resolvedCh <- resolvedRef{from: from, msg: msg, block: b, err: err, ref: ref, start: start}:
		case <-ctx.Done():
		}
	}()
}

// finishProposalRef steps a rebuilt proposal, or says why there is none. On the loop.
func (n *Node) finishProposalRef(r resolvedRef) {
	m := &r.ref.Message
	delete(n.refs.resolving, m.Digest)
	if r.err != nil {
		reason := "unavailable"
		if !errors.Is(r.err, ErrTxsUnavailable) {
			reason = "invalid"
		}
		n.metrics.refFailed.WithLabelValues(reason).Inc()
		if m.Height >= n.core.Status().Height {
			n.log.Warn("proposal by reference not rebuilt; not preparing it (if most validators cannot, the view "+
				"changes; check tx gossip and p2p connectivity to the leader)", "height", m.Height, "view", m.View,
				"leader", m.From, "txs", len(r.ref.Txs), "err", r.err)
		}
		return
	}
	n.refs.keep(m.Digest, r.msg.Value, r.block)
	n.phases.mark(m.Height, phaseFetch, time.Now())
	n.stepConsensus(r.from, r.msg)
}

// resolveRef rebuilds ref's block: from the mempool and the txCache, and what they lack fetched
// from the leader, the peer that relayed it, and the other connected peers in turn, until all
// is there or fetch_timeout_ms is up. Fetched transactions must hash to what was asked for; a
// peer answering with anything else is not asked again for this proposal. Their signatures go
// through the node's verifier (each verified once per node, in big batches) before the block is
// handed to the core, which checks and executes it as any proposal. Off the loop.
//
// The block comes back decoded too: it is what DecodeBlock would make of the value (each
// transaction is 1..MaxTxBytes long, being pending or fetched within that limit; the hashes and
// evidence are those the header commits to, checked by decodeProposalRef; the value is the
// block's canonical encoding), so the proposal checks need not decode it again.
func (n *Node) resolveRef(ctx context.Context, from string, ref *proposalRef) (*consensus.Message, *Block, error) {
	m := &ref.Message
	hashes := ref.Txs
	raws := make([][]byte, len(hashes))
	have := n.pool.Fill(hashes, raws)
	if have < len(hashes) {
		have += n.recent.fill(hashes, raws)
	}
	// Inline transactions not held here are taken as fetched ones: hashes checked (by
	// decodeProposalRef), signatures through the verifier.
	var inline []int
	for _, in := range ref.Inline {
		if raws[in.Index] == nil {
			raws[in.Index] = in.Raw
			inline = append(inline, int(in.Index))
		}
	}
	if err := n.verifyFetched(ctx, ref, raws, inline); err != nil {
		return nil, nil, err
	}
	missing := len(hashes) - have - len(inline)
	n.metrics.refMissing.Observe(float64(missing))
	if missing > 0 {
		start := time.Now()
		fetched, err := n.fetchMissing(ctx, from, ref, raws)
		n.metrics.refFetched.Observe(float64(fetched))
		n.metrics.refFetchSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			return nil, nil, err
		}
	}
	// Every raws[i] hashes to hashes[i]: the mempool and txCache hold transactions under their
	// own hashes, and fetched and inline ones were checked against them.
	b := Block{Header: ref.Header, Txs: raws, Evidence: ref.Evidence, hashes: hashes}
	for i, raw := range raws {
		if len(raw) == 0 || len(raw) > state.MaxTxBytes {
			return nil, nil, fmt.Errorf("%w: transaction %d has %d bytes", ErrBadProposalRef, i, len(raw))
		}
	}
	value, err := b.Encode()
	if err != nil || len(value) > MaxBlockBytes {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d (%v)", ErrBadProposalRef, len(value), MaxBlockBytes, err)
	}
	if consensus.DigestOf(value) != m.Digest {
		// The hashes the header commits to are those sent, and each transaction hashes to its
		// own: what differs is the header or evidence, which a relay may have changed.
		return nil, nil, fmt.Errorf("%w: the rebuilt block is not the one the leader signed", ErrBadProposalRef)
	}
	full := *m
	full.Value = value
	return &full, &b, nil
}

// fetchMissing fills the nil entries of raws by asking peers, and returns how many it fetched.
// The fetching is bounded by fetch_timeout_ms: the leader (which made the block from its
// mempool) is asked first, alone for up to half of it; what it does not answer is then asked of
// every other connected peer at once, and between rounds the mempool and cache are looked at
// again (tx gossip may bring what is missing meanwhile). Verifying the fetched signatures is not
// bounded by it: that work is the same as checking a whole proposal's, and on a starved CPU it
// is what takes time, not the network. Off the loop.
func (n *Node) fetchMissing(ctx context.Context, from string, ref *proposalRef, raws [][]byte) (int, error) {
	m := &ref.Message
	timeout := n.cfg.fetchTimeout()
	netCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var leader string
	if e := n.sched.Load().at(m.Height); int(m.From) < len(e.Peers) {
		leader = e.Peers[m.From]
	}
	bad := map[string]bool{n.peerID: true, "": true}
	var got fetchedTxs
	if !bad[leader] {
		lctx, lcancel := context.WithTimeout(netCtx, timeout/2)
		n.fetchFrom(lctx, leader, ref, raws, &got, bad)
		lcancel()
	}
	for len(missingIndexes(raws)) > 0 {
		var others []string
		seen := map[string]bool{}
		cands := []string{from}
		if n.fetcher != nil {
			cands = append(cands, n.fetcher.ConnectedPeers()...)
		}
		cands = append(cands, leader)
		for _, p := range cands {
			if !bad[p] && !seen[p] {
				seen[p] = true
				others = append(others, p)
			}
		}
		var wg sync.WaitGroup
		for _, p := range others {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.fetchFrom(netCtx, p, ref, raws, &got, bad)
			}()
		}
		wg.Wait()
		if len(missingIndexes(raws)) == 0 {
			break
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-netCtx.Done():
			t.Stop()
		case <-t.C:
		}
		n.pool.Fill(ref.Txs, raws)
		n.recent.fill(ref.Txs, raws)
		if netCtx.Err() != nil && len(missingIndexes(raws)) > 0 {
			return len(got.idx), fmt.Errorf("%w: %d of %d transactions not obtained within %v from %d peers",
				ErrTxsUnavailable, len(missingIndexes(raws)), len(raws), timeout, len(others))
		}
		clear(bad)
		bad[n.peerID], bad[""] = true, true
	}
	return len(got.idx), n.verifyFetched(ctx, ref, raws, got.idx)
}

// verifyFetched verifies the signatures of raws[idx], transactions fetched or sent inline, in
// one batch (state.VerifyTxs, as the node's verifier does), before the core sees the block, and
// records them in the sigCache (each is verified once per node: execution then skips them) and
// the txCache. They are a proposal's, on the critical path of a height: not queued behind the
// verifier's backlog of API and gossip batches, which under load runs far behind. A bad
// signature is the proposal's fault, not the peer's: the transaction is the one the leader
// ordered, and execution refuses the block for it.
func (n *Node) verifyFetched(ctx context.Context, ref *proposalRef, raws [][]byte, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	var (
		txs    []*state.Tx
		hashes []state.Hash
		kept   [][]byte
	)
	for _, i := range idx {
		kept = append(kept, raws[i])
		if n.sigs.Verified(ref.Txs[i]) {
			continue
		}
		if tx, err := state.DecodeTx(raws[i]); err == nil && tx.Body.ChainID == n.chainID {
			txs, hashes = append(txs, tx), append(hashes, ref.Txs[i])
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrTxsUnavailable, ctx.Err())
	}
	if len(txs) > 0 {
		start := time.Now()
		var good []state.Hash
		for j, err := range state.VerifyTxs(n.chainID, txs) {
			if err == nil {
				good = append(good, hashes[j])
			}
		}
		n.metrics.verifyBatch.Observe(float64(len(txs)))
		n.metrics.verifySeconds.Observe(time.Since(start).Seconds())
		n.sigs.add(good...)
	}
	n.recent.putAll(kept, hashesAt(ref.Txs, idx))
	return nil
}

// fetchedTxs collects, across the peers asked at once, the transactions fetched for a proposal.
type fetchedTxs struct {
	mu  sync.Mutex
	idx []int
	raw [][]byte
}

func missingIndexes(raws [][]byte) []int {
	var idx []int
	for i, raw := range raws {
		if raw == nil {
			idx = append(idx, i)
		}
	}
	return idx
}

// fetchFrom asks peer p for what is missing in raws, in requests of at most p2p.MaxFetchTxs,
// and fills raws with what it answered once the whole answer is checked: every transaction
// hashes to what was asked for. One wrong transaction and the peer's whole answer is discarded,
// and the peer is marked bad (not asked again this round), as is one that cannot be asked.
// Peers asked at once share raws, got and bad under got's lock.
func (n *Node) fetchFrom(ctx context.Context, p string, ref *proposalRef, raws [][]byte, got *fetchedTxs, bad map[string]bool) {
	got.mu.Lock()
	idx := missingIndexes(raws)
	got.mu.Unlock()
	var (
		gotIdx []int
		gotRaw [][]byte
		err    error
	)
	if n.fetcher == nil {
		err = p2p.ErrFetchUnavailable
	}
	for len(idx) > 0 && err == nil {
		chunk := idx[:min(len(idx), p2p.MaxFetchTxs)]
		idx = idx[len(chunk):]
		req := make([][32]byte, len(chunk))
		for j, i := range chunk {
			req[j] = ref.Txs[i]
		}
		var answer [][]byte
		answer, err = n.fetcher.FetchTxs(ctx, p, req)
		if err != nil && !errors.Is(err, p2p.ErrFetchUnavailable) {
			gotIdx, gotRaw = nil, nil // a protocol violation: nothing of this peer's is used
			break
		}
		for j, raw := range answer {
			if j >= len(chunk) || raw == nil {
				continue
			}
			i := chunk[j]
			if state.HashTx(raw) != ref.Txs[i] {
				err = fmt.Errorf("%w: %s from %s", errWrongTx, ref.Txs[i], p)
				gotIdx, gotRaw = nil, nil
				break
			}
			gotIdx, gotRaw = append(gotIdx, i), append(gotRaw, raw)
		}
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if err != nil {
		bad[p] = true
		if errors.Is(err, errWrongTx) || errors.Is(err, p2p.ErrFetchResponse) {
			n.metrics.fetchBadPeers.Inc()
			n.log.Warn("a peer answered a transaction fetch with bytes that are not what was asked for; "+
				"its answer is discarded", "peer", p, "height", ref.Message.Height, "err", err)
			return
		}
	}
	for j, i := range gotIdx {
		if raws[i] == nil {
			raws[i] = gotRaw[j]
			got.idx, got.raw = append(got.idx, i), append(got.raw, gotRaw[j])
		}
	}
}

func hashesAt(hashes []state.Hash, idx []int) []state.Hash {
	out := make([]state.Hash, len(idx))
	for j, i := range idx {
		out[j] = hashes[i]
	}
	return out
}
