package node

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
)

// The memo answers for exactly the triples added, forgets the oldest past its size, and ignores
// malformed keys and signatures.
func TestSigMemoExactAndBounded(t *testing.T) {
	pub := ed25519.PublicKey(bytes.Repeat([]byte{1}, ed25519.PublicKeySize))
	sig := bytes.Repeat([]byte{2}, ed25519.SignatureSize)
	m := newSigMemo(4)
	for i := range 6 {
		m.Add(pub, fmt.Appendf(nil, "msg %d", i), sig)
	}
	for i := range 6 {
		if got, want := m.Verified(pub, fmt.Appendf(nil, "msg %d", i), sig), i >= 2; got != want {
			t.Fatalf("msg %d: Verified %v, want %v", i, got, want)
		}
	}
	msg := []byte("msg 5")
	otherSig := bytes.Clone(sig)
	otherSig[63] ^= 1
	otherPub := bytes.Clone(pub)
	otherPub[0] ^= 1
	switch {
	case m.Verified(pub, msg, otherSig):
		t.Fatal("another signature counted as verified")
	case m.Verified(otherPub, msg, sig):
		t.Fatal("another key counted as verified")
	case m.Verified(pub, []byte("msg 50"), sig):
		t.Fatal("another message counted as verified")
	case m.Verified(pub[:31], msg, sig):
		t.Fatal("a short key counted as verified")
	}
	m.Add(pub[:31], msg, sig)
	if len(m.seen) != 4 || len(m.ring) != 4 {
		t.Fatalf("memo holds %d (ring %d), want its size 4", len(m.seen), len(m.ring))
	}
}

// Pubsub runs validators concurrently with the loop: under -race this finds unguarded state.
func TestSigMemoConcurrent(t *testing.T) {
	pub := ed25519.PublicKey(bytes.Repeat([]byte{1}, ed25519.PublicKeySize))
	sig := bytes.Repeat([]byte{2}, ed25519.SignatureSize)
	m := newSigMemo(64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				msg := fmt.Appendf(nil, "%d/%d", g, i)
				m.Add(pub, msg, sig)
				m.Verified(pub, msg, sig)
			}
		}()
	}
	wg.Wait()
	if len(m.seen) != 64 {
		t.Fatalf("memo holds %d, want 64", len(m.seen))
	}
}

// The consensus topic's validator fills the node's memo, and the node's core consults that same
// memo: shown by a forged prepare, refused by the core until the memo claims it verified.
func TestConsensusSignaturesVerifiedOncePerNode(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	h := n.blocks.Height() + 1
	digest := consensus.DigestOf([]byte("some block"))
	vals := n.coreEpoch.Set
	prepare := func(from uint32) *consensus.Message {
		m := &consensus.Message{Type: consensus.MsgPrepare, Height: h, From: from, Digest: digest}
		consensus.Sign(n.chainID, c.valKeys[from], m)
		return m
	}
	m := prepare(2)
	data, err := consensus.EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := n.validateConsensus("relay", data); v != p2p.Accept {
		t.Fatalf("verdict %v, want Accept", v)
	}
	if !n.consensusSigs.Verified(vals.Validators[2].PubKey, consensus.SignBytes(n.chainID, m), m.Sig) {
		t.Fatal("the topic validator did not remember the signature it verified")
	}

	forged := prepare(3)
	forged.Sig = bytes.Clone(forged.Sig)
	forged.Sig[7] ^= 1
	data, _ = consensus.EncodeMessage(forged)
	if v, _ := n.validateConsensus("relay", data); v != p2p.Reject {
		t.Fatalf("forged prepare: verdict %v, want Reject", v)
	}
	pub, sb := vals.Validators[3].PubKey, consensus.SignBytes(n.chainID, forged)
	if n.consensusSigs.Verified(pub, sb, forged.Sig) {
		t.Fatal("a signature that failed was remembered")
	}
	if err := n.stepMessage(forged); !errors.Is(err, consensus.ErrBadSignature) {
		t.Fatalf("core took a forged prepare: %v", err)
	}
	n.consensusSigs.Add(pub, sb, forged.Sig) // what only a verify that passed may do
	if err := n.stepMessage(forged); err != nil {
		t.Fatalf("the core does not consult the node's memo: %v", err)
	}
}

// A node assembled without New (tests, tools) has a nil memo: it must verify, not panic.
func TestNilSigMemoHoldsNothing(t *testing.T) {
	var m *sigMemo
	pub := ed25519.PublicKey(bytes.Repeat([]byte{1}, ed25519.PublicKeySize))
	sig := bytes.Repeat([]byte{2}, ed25519.SignatureSize)
	m.Add(pub, []byte("x"), sig)
	if m.Verified(pub, []byte("x"), sig) {
		t.Fatal("a nil memo claims a signature verified")
	}
}
