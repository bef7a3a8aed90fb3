package node

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
)

// sigMemoSize bounds the consensus signatures remembered: at 5,000 tx/s a node sees a few hundred
// consensus signatures a second, and the core looks at one a few milliseconds after the topic
// validator, so this holds tens of seconds of them in ~0.5 MiB.
const sigMemoSize = 1 << 13

// sigMemo is the node's consensus.SignatureMemo: the topic validator adds the consensus
// signatures it verified, and the core skips them (issue #10: each message was verified twice,
// ~9 % of a node's CPU at 5,000 tx/s). Entries are SHA-256 of (public key, signature, signed
// bytes) — key and signature have fixed sizes, so the concatenation is unambiguous — and the
// oldest is dropped first. Only triples that ed25519.Verify accepted are ever added (see
// consensus.SignatureMemo), so a forged message is still verified, and refused, every time. Safe
// for concurrent use: pubsub runs validators on several goroutines.
type sigMemo struct {
	mu   sync.Mutex
	seen map[[32]byte]struct{}
	ring [][32]byte // insertion order; next is the slot to overwrite
	next int
}

func newSigMemo(size int) *sigMemo {
	return &sigMemo{seen: make(map[[32]byte]struct{}, size), ring: make([][32]byte, 0, size)}
}

func sigMemoKey(pub ed25519.PublicKey, msg, sig []byte) [32]byte {
	h := sha256.New()
	h.Write(pub)
	h.Write(sig)
	h.Write(msg)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// Verified implements consensus.SignatureMemo. A nil memo holds nothing.
func (m *sigMemo) Verified(pub ed25519.PublicKey, msg, sig []byte) bool {
	if m == nil || len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	k := sigMemoKey(pub, msg, sig)
	m.mu.Lock()
	_, ok := m.seen[k]
	m.mu.Unlock()
	return ok
}

// Add implements consensus.SignatureMemo. A nil memo keeps nothing.
func (m *sigMemo) Add(pub ed25519.PublicKey, msg, sig []byte) {
	if m == nil || len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return
	}
	k := sigMemoKey(pub, msg, sig)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[k]; ok {
		return
	}
	if len(m.ring) < cap(m.ring) {
		m.ring = append(m.ring, k)
	} else {
		delete(m.seen, m.ring[m.next])
		m.ring[m.next] = k
		m.next = (m.next + 1) % len(m.ring)
	}
	m.seen[k] = struct{}{}
}
