package p2p

import (
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// RateLimit bounds what one author may publish on the transaction topic, as token buckets of
// messages and bytes that refill at these rates and hold rateBurst worth of them. A message over
// the limit is Ignored (not delivered, not relayed, no score cost by itself); a peer that keeps
// exceeding it loses application score (rateExcessWeight per message beyond rateTolerance, the
// count decaying with rateExcessHalfLife) until it is disconnected.
type RateLimit struct {
	MsgsPerSec  float64
	BytesPerSec float64
}

// DefaultTxRateLimit leaves an honest node ample room: the node gossips transactions in batches
// (one message per few milliseconds at most, each at most ~1 MiB), so 15,000 tx/s from one node
// is about 200 messages and a few MB per second.
var DefaultTxRateLimit = RateLimit{MsgsPerSec: 500, BytesPerSec: 32 << 20}

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

// rateLimiter keeps a bucket per author. Authors are allowed peers (others are Rejected before
// the limiter sees them), so the map is bounded by the allowlist.
type rateLimiter struct {
	limit RateLimit
	mu    sync.Mutex
	peers map[peer.ID]*bucket
}

func newRateLimiter(l RateLimit) *rateLimiter {
	if l.MsgsPerSec <= 0 {
		l.MsgsPerSec = DefaultTxRateLimit.MsgsPerSec
	}
	if l.BytesPerSec <= 0 {
		l.BytesPerSec = DefaultTxRateLimit.BytesPerSec
	}
	return &rateLimiter{limit: l, peers: map[peer.ID]*bucket{}}
}

func (r *rateLimiter) capacity() (msgs, bytes float64) {
	s := rateBurst.Seconds()
	return r.limit.MsgsPerSec * s, r.limit.BytesPerSec * s
}

// refill brings b up to now. Caller holds r.mu.
func (r *rateLimiter) refill(b *bucket, now time.Time) {
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

// allow takes one message of n bytes from p's bucket, or counts it as excess.
func (r *rateLimiter) allow(p peer.ID, n int, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.peers[p]
	if b == nil {
		cm, cb := r.capacity()
		b = &bucket{msgs: cm, bytes: cb, last: now}
		r.peers[p] = b
	}
	r.refill(b, now)
	if b.msgs < 1 || b.bytes < float64(n) {
		b.excess++
		return false
	}
	b.msgs--
	b.bytes -= float64(n)
	return true
}

// penalty is the score p loses now for sustained excess (≥ 0).
func (r *rateLimiter) penalty(p peer.ID, now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.peers[p]
	if b == nil {
		return 0
	}
	r.refill(b, now)
	return math.Max(0, b.excess-rateTolerance) * rateExcessWeight
}

// forget drops the buckets of peers no longer allowed.
func (r *rateLimiter) forget(keep func(peer.ID) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.peers {
		if !keep(p) {
			delete(r.peers, p)
		}
	}
}
