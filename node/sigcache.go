package node

import (
	"sync"

	"github.com/guild-ledger/guild/state"
)

// sigCache remembers which transactions had all their signatures verified, so each signature is
// checked once per node however often the transaction is gossiped, proposed or executed
// (docs/performance.md). Two generations bound its memory: when the current one is
// full it becomes the previous one and the old previous one is dropped.
type sigCache struct {
	mu        sync.RWMutex
	cur, prev map[state.Hash]struct{}
	limit     int
	// pool, when set, is asked for transactions already decoded (state.TxDecodedCache): it holds
	// each pending one decoded from its bytes by admission or gossip, after the same checks.
	pool *Mempool
	// synced, while block sync applies a batch, holds that batch's transactions as its
	// pre-verification decoded them (offerSynced), so that execution does not decode them again.
	synced map[state.Hash]*state.Tx
}

func newSigCache(limit int) *sigCache {
	return &sigCache{cur: make(map[state.Hash]struct{}), prev: map[state.Hash]struct{}{}, limit: limit}
}

// Verified implements state.SigCache.
func (c *sigCache) Verified(h state.Hash) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if _, ok := c.cur[h]; ok {
		return true
	}
	_, ok := c.prev[h]
	return ok
}

func (c *sigCache) add(hs ...state.Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hs {
		if len(c.cur) >= c.limit {
			c.prev, c.cur = c.cur, make(map[state.Hash]struct{}, c.limit)
		}
		c.cur[h] = struct{}{}
	}
}

// DecodedTxs implements state.TxDecodedCache from the mempool and the synced batch being
// applied. Only transactions they took are handed out: each is kept as DecodeTx returned it for
// the bytes of its hash, and nothing changes them.
func (c *sigCache) DecodedTxs(hashes []state.Hash, out []*state.Tx) {
	if c.pool != nil {
		c.pool.DecodedTxs(hashes, out)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.synced == nil {
		return
	}
	for i, h := range hashes {
		if out[i] == nil {
			out[i] = c.synced[h]
		}
	}
}

// offerSynced makes txs (by HashTx of their bytes, each what DecodeTx returned for them) what
// DecodedTxs hands out besides the mempool's, until it is called with nil.
func (c *sigCache) offerSynced(txs map[state.Hash]*state.Tx) {
	c.mu.Lock()
	c.synced = txs
	c.mu.Unlock()
}

// Record implements state.SigRecorder.
func (c *sigCache) Record(hs ...state.Hash) { c.add(hs...) }
