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

// Record implements state.SigRecorder.
func (c *sigCache) Record(hs ...state.Hash) { c.add(hs...) }
