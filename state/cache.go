package state

import "sync"

// maxCachedAccounts bounds the committed-account cache (about 64 bytes an entry).
const maxCachedAccounts = 1 << 18

// accountCache holds committed account values, so that blocks touching the same accounts again
// and again do not read and decode them from the store each time.
//
// It is coherent with the store because only the goroutine applying blocks fills it, holding
// State.applyMu, and only with values it has just read from the store or just written to it; and
// nothing else writes the store's accounts (a State must be its store's only writer). Readers on
// other goroutines only look values up. Whether a value is cached changes speed, never results.
type accountCache struct {
	mu    sync.RWMutex
	m     map[Address]Account
	limit int // entries; tests lower it
}

func newAccountCache() *accountCache {
	return &accountCache{m: make(map[Address]Account), limit: maxCachedAccounts}
}

func (c *accountCache) get(a Address) (Account, bool) {
	c.mu.RLock()
	acct, ok := c.m[a]
	c.mu.RUnlock()
	return acct, ok
}

// putOverlay records the accounts of an overlay: what was read from the store (dirtyOnly false)
// or what was just committed (dirtyOnly true).
func (c *accountCache) putOverlay(accts []overlayAccount, dirtyOnly bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(accts) > c.limit {
		// Crude but deterministic and cheap: start over rather than track recency.
		clear(c.m)
	}
	for i := range accts {
		if e := &accts[i]; e.dirty || !dirtyOnly {
			c.m[e.addr] = e.acct
		}
	}
}

// reset forgets everything; used when the store's contents are no longer known.
func (c *accountCache) reset() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
