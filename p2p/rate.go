package p2p

import (
	"math"
	"sync"
	"time"
)

// RateLimit bounds what one author may publish on a topic, as token buckets of messages and bytes
// that refill at these rates and hold rateBurst worth of them. A message over the limit is dropped
// (not delivered, not relayed, no score cost by itself); a peer that keeps exceeding it with its
// own messages loses application score (rateExcessWeight per message beyond rateTolerance, the
// count decaying with rateExcessHalfLife) until it is disconnected.
type RateLimit struct {
	MsgsPerSec  float64
	BytesPerSec float64
}

// DefaultTxRateLimit leaves an honest node ample room: the node gossips transactions in batches
// (one message per few milliseconds at most, each at most ~1 MiB), so 15,000 tx/s from one node
// is about 200 messages and a few MB per second.
var DefaultTxRateLimit = RateLimit{MsgsPerSec: 500, BytesPerSec: 32 << 20}

// DefaultConsensusRateLimit leaves an honest validator ample room: it signs a handful of
// messages per height (a proposal when it leads, a prepare, a commit; a view change and a new
// view when a leader fails), retransmits them every half second or so while stuck, and sends a
// decision, a whole block, to a peer that lags. At 50 blocks/s that is about 150-200 messages per
// second in bursts; the bytes are a few blocks per second.
var DefaultConsensusRateLimit = RateLimit{MsgsPerSec: 500, BytesPerSec: 64 << 20}

const (
	rateBurst          = 2 * time.Second // a bucket holds this long's worth of tokens
	rateTolerance      = 100.0           // excess messages forgiven before the score drops
	rateExcessWeight   = 1.0             // score lost per excess message beyond the tolerance
	rateExcessHalfLife = 30 * time.Second
)

type bucket struct {
	msgs, bytes float64
	excess      float64
	last        time.Time
}

// rateLimiter keeps a bucket per key: an author, or a (sending peer, author) pair. In a
// permissioned network keys are made of allowed peers, so the map is bounded by the allowlist;
// on an open host idle buckets are swept once the map holds maxBuckets.
type rateLimiter[K comparable] struct {
	limit RateLimit
	mu    sync.Mutex
	peers map[K]*bucket
}

// maxBuckets is the map size beyond which allow sweeps out buckets that have been idle long
// enough to be full again (forgetting them changes nothing).
const maxBuckets = 4096

// withDefaults is l with def's values for its zero (or negative) fields.
func withDefaults(l, def RateLimit) RateLimit {
	if l.MsgsPerSec <= 0 {
		l.MsgsPerSec = def.MsgsPerSec
	}
	if l.BytesPerSec <= 0 {
		l.BytesPerSec = def.BytesPerSec
	}
	return l
}

// newRateLimiter uses def for the zero fields of l.
func newRateLimiter[K comparable](l, def RateLimit) *rateLimiter[K] {
	return &rateLimiter[K]{limit: withDefaults(l, def), peers: map[K]*bucket{}}
}

func (r *rateLimiter[K]) capacity() (msgs, bytes float64) {
	s := rateBurst.Seconds()
	return r.limit.MsgsPerSec * s, r.limit.BytesPerSec * s
}

// refill brings b up to now. Caller holds r.mu.
func (r *rateLimiter[K]) refill(b *bucket, now time.Time) {
	dt := now.Sub(b.last).Seconds()
	if dt <= 0 {
		return
	}
	cm, cb := r.capacity()
	b.msgs = math.Min(cm, b.msgs+dt*r.limit.MsgsPerSec)
	b.bytes = math.Min(cb, b.bytes+dt*r.limit.BytesPerSec)
	b.excess *= math.Exp2(-dt / rateExcessHalfLife.Seconds())
	b.last = now
}

// allow takes one message of n bytes from p's bucket, or refuses it and, if charge, counts it as
// excess.
func (r *rateLimiter[K]) allow(p K, n int, now time.Time, charge bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.peers[p]
	if b == nil {
		if len(r.peers) >= maxBuckets {
			r.sweep(now)
		}
		cm, cb := r.capacity()
		b = &bucket{msgs: cm, bytes: cb, last: now}
		r.peers[p] = b
	}
	r.refill(b, now)
	if b.msgs < 1 || b.bytes < float64(n) {
		if charge {
			b.excess++
		}
		return false
	}
	b.msgs--
	b.bytes -= float64(n)
	return true
}

// sweep forgets buckets idle for long enough to be full and forgiven. Caller holds r.mu.
func (r *rateLimiter[K]) sweep(now time.Time) {
	for k, b := range r.peers {
		if now.Sub(b.last) > max(rateBurst, 10*rateExcessHalfLife) {
			delete(r.peers, k)
		}
	}
}

// penalty is the score p loses now for sustained excess (≥ 0).
func (r *rateLimiter[K]) penalty(p K, now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.peers[p]
	if b == nil {
		return 0
	}
	r.refill(b, now)
	return math.Max(0, b.excess-rateTolerance) * rateExcessWeight
}

// forget drops the buckets whose key keep refuses: peers no longer allowed.
func (r *rateLimiter[K]) forget(keep func(K) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.peers {
		if !keep(p) {
			delete(r.peers, p)
		}
	}
}
