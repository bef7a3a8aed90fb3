package state

import (
	"sync"

	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Signers recur: a ledger's accounts send many transactions each. Decompressing a public key
// and building its multiplication table is a sizeable part of one verification, so the expanded
// form is kept per key and every later signature by that key skips it. Only speed depends on
// the cache: an expanded key carries the same validity checks (ZIP-215 in sigOptions) as the
// compressed one, and a key that does not expand is verified the ordinary way, which rejects it.

// expandedKeyLimit bounds each of the cache's two generations (~1.5 KiB per key).
const expandedKeyLimit = 4096

var expandedKeys = &keyCache{cur: make(map[[32]byte]*ed25519.ExpandedPublicKey)}

type keyCache struct {
	mu        sync.Mutex
	cur, prev map[[32]byte]*ed25519.ExpandedPublicKey
}

// get returns pub's expanded form, computing and keeping it if new; nil if pub does not expand
// (not a point), and then the caller verifies with pub itself.
func (c *keyCache) get(pub []byte) *ed25519.ExpandedPublicKey {
	if len(pub) != ed25519.PublicKeySize {
		return nil
	}
	k := [32]byte(pub)
	c.mu.Lock()
	if e, ok := c.cur[k]; ok {
		c.mu.Unlock()
		return e
	}
	if e, ok := c.prev[k]; ok {
		c.cur[k] = e
		c.mu.Unlock()
		return e
	}
	c.mu.Unlock()
	e, err := ed25519.NewExpandedPublicKey(pub)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	if len(c.cur) >= expandedKeyLimit {
		c.prev, c.cur = c.cur, make(map[[32]byte]*ed25519.ExpandedPublicKey, expandedKeyLimit)
	}
	c.cur[k] = e
	c.mu.Unlock()
	return e
}
