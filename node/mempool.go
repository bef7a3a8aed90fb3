package node

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/guild-ledger/guild/state"
)

var (
	ErrMempoolFull = errors.New("node: mempool full, try again later")
	ErrTxKnown     = errors.New("node: transaction already pending")
	ErrNonceTaken  = errors.New("node: another pending transaction from this account has this nonce")
)

type pendingTx struct {
	raw   []byte
	hash  state.Hash
	tx    *state.Tx // raw decoded, kept so that executing a block does not decode it again
	from  state.Address
	nonce uint64
	added time.Time // when it entered this mempool
	seq   uint64    // arrival order in this mempool: Reap serves the oldest first
	own   bool      // accepted from this node's API (AddOwn), not by gossip
}

// Mempool holds verified transactions waiting for a block: deduplicated by hash, ordered by nonce
// per account, served oldest first, bounded in size. It is used from the API and
// gossip goroutines and from the node's loop, so it has its own lock; it holds no protocol state.
type Mempool struct {
	mu       sync.Mutex
	byHash   map[state.Hash]*pendingTx
	bySender map[state.Address]map[uint64]*pendingTx
	order    []state.Address // senders with pending txs, by first arrival
	limit    int
	seq      uint64 // arrivals so far
	// own is how many pending transactions came from this node's API, ownGapped how many of them
	// waited behind a nonce gap at the last Gapped.
	own, ownGapped int
	notify         chan struct{}
	// superseded, when set, hears of each transaction dropped because another transaction of its
	// sender used its nonce, with why.
	superseded func(h state.Hash, reason string)
}

// NewMempool makes a mempool holding at most limit transactions.
func NewMempool(limit int) *Mempool {
	return &Mempool{
		byHash:   make(map[state.Hash]*pendingTx),
		bySender: make(map[state.Address]map[uint64]*pendingTx),
		limit:    limit,
		notify:   make(chan struct{}, 1),
	}
}

// Notify is signalled (without blocking, coalesced) whenever transactions are added.
func (m *Mempool) Notify() <-chan struct{} { return m.notify }

// Size is the number of pending transactions.
func (m *Mempool) Size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byHash)
}

// Has reports whether the transaction is pending.
func (m *Mempool) Has(h state.Hash) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.byHash[h]
	return ok
}

// Fill sets out[i] to the pending transaction with hash hashes[i], for each i where out[i] is
// nil and the transaction is pending, and returns how many it set: one lock for a whole proposal
// by reference.
func (m *Mempool) Fill(hashes []state.Hash, out [][]byte) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := 0
	for i, h := range hashes {
		if out[i] != nil {
			continue
		}
		if p, ok := m.byHash[h]; ok {
			out[i] = p.raw
			set++
		}
	}
	return set
}

// DecodedTxs sets out[i] to the decoded pending transaction with hash hashes[i], where out[i] is
// nil and one is pending: one lock for a whole block (state.TxDecodedCache, through sigCache).
func (m *Mempool) DecodedTxs(hashes []state.Hash, out []*state.Tx) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, h := range hashes {
		if out[i] != nil {
			continue
		}
		if p, ok := m.byHash[h]; ok {
			out[i] = p.tx
		}
	}
}

// AddedSince returns the indexes of the hashes whose transactions entered the mempool after t.
func (m *Mempool) AddedSince(hashes []state.Hash, t time.Time) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for i, h := range hashes {
		if p, ok := m.byHash[h]; ok && p.added.After(t) {
			out = append(out, i)
		}
	}
	return out
}

// NextNonce is the first nonce at or after committed (the account's committed nonce) that no
// pending transaction from the account holds: what a client should sign its next transaction with.
func (m *Mempool) NextNonce(from state.Address, committed uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.bySender[from]
	next := committed
	for {
		if _, ok := q[next]; !ok {
			return next
		}
		next++
	}
}

// ClosesGap reports whether a transaction from from with nonce would be the next one its account
// can use (committed is the account's committed nonce) while later ones of the account wait
// pending behind it: admitting it lets them be proposed.
// committed is only called when some pending transaction of the account has a higher nonce: a
// sender sending in order, the common case under load, costs no state read.
func (m *Mempool) ClosesGap(from state.Address, nonce uint64, committed func(state.Address) uint64) bool {
	m.mu.Lock()
	q := m.bySender[from]
	above := false
	for n := range q {
		if n > nonce {
			above = true
			break
		}
	}
	m.mu.Unlock()
	if !above {
		return false
	}
	// The committed nonce is read outside the lock: the loop takes it to settle blocks.
	c := committed(from)
	m.mu.Lock()
	defer m.mu.Unlock()
	q = m.bySender[from]
	next := c
	for {
		if _, ok := q[next]; !ok {
			break
		}
		next++
	}
	return nonce == next
}

// Add inserts a transaction whose signature and state checks have passed.
func (m *Mempool) Add(raw []byte, h state.Hash, tx *state.Tx) error { return m.add(raw, h, tx, false) }

// AddOwn is Add for a transaction from this node's API: the door bounds how many of those are
// pending (Own).
func (m *Mempool) AddOwn(raw []byte, h state.Hash, tx *state.Tx) error {
	return m.add(raw, h, tx, true)
}

// Own is how many pending transactions came from this node's API, less those that waited behind
// a nonce gap at the last Gapped.
func (m *Mempool) Own() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(0, m.own-m.ownGapped)
}

func (m *Mempool) add(raw []byte, h state.Hash, tx *state.Tx, own bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byHash[h]; ok {
		return ErrTxKnown
	}
	if len(m.byHash) >= m.limit {
		return ErrMempoolFull
	}
	from := tx.Body.From
	q := m.bySender[from]
	if q == nil {
		q = make(map[uint64]*pendingTx)
		m.bySender[from] = q
		m.order = append(m.order, from)
	}
	if _, ok := q[tx.Body.Nonce]; ok {
		return ErrNonceTaken
	}
	m.seq++
	p := &pendingTx{raw: raw, hash: h, tx: tx, from: from, nonce: tx.Body.Nonce, added: time.Now(), seq: m.seq, own: own}
	if own {
		m.own++
	}
	q[p.nonce] = p
	m.byHash[h] = p
	select {
	case m.notify <- struct{}{}:
	default:
	}
	return nil
}

// Reap picks transactions for a block, oldest first: of each account, its consecutive nonces
// starting at the account's committed nonce, up to maxTxs and maxBytes in all, in the order they
// became proposable (a transaction arrived ahead of its predecessor is ready with it). Gaps wait.
// Serving whole accounts in order of first arrival instead (issue #10) let the first senders,
// refilled as fast as they were served, take every block past saturation while later senders'
// transactions waited many seconds behind them.
func (m *Mempool) Reap(maxTxs, maxBytes int, nonceOf func(state.Address) uint64) [][]byte {
	txs, _ := m.ReapHashed(maxTxs, maxBytes, nonceOf)
	return txs
}

// ReapHashed is Reap, with each transaction's hash (HashTx of its bytes, as the mempool keys it).
func (m *Mempool) ReapHashed(maxTxs, maxBytes int, nonceOf func(state.Address) uint64) ([][]byte, []state.Hash) {
	m.mu.Lock()
	defer m.mu.Unlock()
	heads := make(readyHeads, 0, len(m.order))
	for i, from := range m.order {
		q := m.bySender[from]
		next := nonceOf(from)
		p, ok := q[next]
		if !ok {
			// Stuck on a gap: drop what a block this node never held has made stale (another
			// node's transaction with the same nonce), so it does not wait here for ever.
			for n, p := range q {
				if n < next {
					m.supersedeLocked(p, next)
				}
			}
			continue
		}
		heads = append(heads, readyHead{p: p, ready: p.seq, rank: i})
	}
	heap.Init(&heads)
	var out [][]byte
	var hashes []state.Hash
	size := 0
	for len(heads) > 0 && len(out) < maxTxs {
		h := &heads[0]
		if size+len(h.p.raw) > maxBytes {
			break
		}
		out = append(out, h.p.raw)
		hashes = append(hashes, h.p.hash)
		size += len(h.p.raw)
		next, ok := m.bySender[h.p.from][h.p.nonce+1]
		if !ok {
			heap.Pop(&heads)
			continue
		}
		h.p, h.ready = next, max(h.ready, next.seq)
		heap.Fix(&heads, 0)
	}
	return out, hashes
}

// readyHead is an account's next transaction for Reap: ready is when it became proposable (the
// arrival of the latest of it and its pending predecessors), rank the account's place in order.
type readyHead struct {
	p     *pendingTx
	ready uint64
	rank  int
}

// readyHeads is a min-heap of accounts' next transactions by readiness (container/heap).
type readyHeads []readyHead

func (h readyHeads) Len() int { return len(h) }
func (h readyHeads) Less(i, j int) bool {
	return h[i].ready < h[j].ready || h[i].ready == h[j].ready && h[i].rank < h[j].rank
}
func (h readyHeads) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *readyHeads) Push(x any)   { *h = append(*h, x.(readyHead)) }
func (h *readyHeads) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Gapped counts the pending transactions that cannot be proposed now: those behind a nonce gap
// of their account (nonceOf gives the account's committed nonce).
func (m *Mempool) Gapped(nonceOf func(state.Address) uint64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	ready, ownReady := 0, 0
	for from, q := range m.bySender {
		for n := nonceOf(from); ; n++ {
			p, ok := q[n]
			if !ok {
				break
			}
			ready++
			if p.own {
				ownReady++
			}
		}
	}
	m.ownGapped = m.own - ownReady
	return len(m.byHash) - ready
}

// Update removes what a committed block settled: the transactions it applied or rejected for
// good (committed), and every pending transaction of the accounts they touched whose nonce is now
// used. Nothing else leaves: a proposal that is not decided takes nothing out of the pool.
func (m *Mempool) Update(committed []state.Hash, nonceOf func(state.Address) uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	touched := make(map[state.Address]bool)
	for _, h := range committed {
		if p, ok := m.byHash[h]; ok {
			m.removeLocked(p)
			touched[p.from] = true
		}
	}
	for from := range touched {
		next := nonceOf(from)
		for n, p := range m.bySender[from] {
			if n < next {
				m.supersedeLocked(p, next)
			}
		}
	}
	if len(touched) > 0 {
		m.compactLocked()
	}
}

// Remove takes out transactions that can never pass (a leader found them failing).
func (m *Mempool) Remove(hashes []state.Hash) {
	if len(hashes) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range hashes {
		if p, ok := m.byHash[h]; ok {
			m.removeLocked(p)
		}
	}
	m.compactLocked()
}

// compactLocked forgets senders left with nothing pending.
func (m *Mempool) compactLocked() {
	kept := m.order[:0]
	for _, from := range m.order {
		if len(m.bySender[from]) > 0 {
			kept = append(kept, from)
		} else {
			delete(m.bySender, from)
		}
	}
	m.order = kept
}

// supersedeLocked drops p, whose nonce a committed transaction used (next is its sender's next).
func (m *Mempool) supersedeLocked(p *pendingTx, next uint64) {
	m.removeLocked(p)
	if m.superseded != nil {
		m.superseded(p.hash, fmt.Sprintf("%v: nonce %d already used by another transaction (next is %d)", state.ErrBadNonce, p.nonce, next))
	}
}

func (m *Mempool) removeLocked(p *pendingTx) {
	if _, ok := m.byHash[p.hash]; ok && p.own {
		m.own--
	}
	delete(m.byHash, p.hash)
	if q := m.bySender[p.from]; q != nil {
		delete(q, p.nonce)
	}
}
