package node

import (
	"sync"

	"github.com/guild-ledger/guild/state"
)

// txCache keeps the bytes of recently seen transactions that are not (or no longer) in the
// mempool, by hash: those of recently committed blocks, those fetched for a proposal by
// reference, and verified gossip the mempool had no room for. A proposal by reference is rebuilt
// from the mempool and this cache, and tx fetch serves peers from both, so a peer that lags a
// block behind can still get a committed block's transactions. Two generations bound its memory,
// as the sigCache's do. Safe for concurrent use.
type txCache struct {
	mu        sync.RWMutex
	cur, prev map[state.Hash][]byte
	limit     int
}

func newTxCache(limit int) *txCache {
	return &txCache{cur: make(map[state.Hash][]byte), prev: map[state.Hash][]byte{}, limit: limit}
}

func (c *txCache) put(h state.Hash, raw []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(h, raw)
}

func (c *txCache) putLocked(h state.Hash, raw []byte) {
	if _, ok := c.cur[h]; ok {
		return
	}
	if len(c.cur) >= c.limit {
		c.prev, c.cur = c.cur, make(map[state.Hash][]byte, c.limit)
	}
	c.cur[h] = raw
}

// putAll keeps txs, whose hashes are hashes (nil: computed here).
func (c *txCache) putAll(txs [][]byte, hashes []state.Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, raw := range txs {
		var h state.Hash
		if hashes != nil {
			h = hashes[i]
		} else {
			h = state.HashTx(raw)
		}
		c.putLocked(h, raw)
	}
}

// fill is Mempool.Fill for the cache.
func (c *txCache) fill(hashes []state.Hash, out [][]byte) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	set := 0
	for i, h := range hashes {
		if out[i] != nil {
			continue
		}
		raw, ok := c.cur[h]
		if !ok {
			raw, ok = c.prev[h]
		}
		if ok {
			out[i] = raw
			set++
		}
	}
	return set
}
