//go:build byzantine

package node

// A misbehaving validator, for tests only: built with -tags byzantine (make byzantine-bin), never
// in a release binary. The hooks sit at the node's edge — what it sends (send), what it proposes
// (maybePropose), what it hears (the loop) — and the consensus core stays the honest one; where a
// mode must sign what the core never would (two prepares for one slot), it signs here with the
// key directly, bypassing the core's WAL and its refusal to sign twice.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
)

// Byzantine modes.
const (
	ByzSilent     = "silent"     // sends no consensus message (its core still runs); p2p stays up
	ByzFlood      = "flood"      // ~2,000 signed, invalid prepares and commits a second
	ByzViewFlood  = "viewflood"  // view changes for ever higher views
	ByzReplay     = "replay"     // re-publishes old valid messages it heard
	ByzEquivocate = "equivocate" // two pre-prepares as leader, two prepares as follower
	ByzBadOrder   = "badorder"   // as leader, each sender's transactions in descending nonce order
)

// ByzantineModes lists the modes SetByzantine takes.
var ByzantineModes = []string{ByzSilent, ByzFlood, ByzViewFlood, ByzReplay, ByzEquivocate, ByzBadOrder}

// ErrByzantineMode is a mode SetByzantine does not know.
var ErrByzantineMode = errors.New("node: unknown byzantine mode")

// Rates of the modes that publish on their own.
const (
	floodPerSec     = 2000
	viewFloodPerSec = 200
	replayPerSec    = 500
	replayKeep      = 8192 // messages heard, kept for replay
)

type byzantine struct {
	mode string
	rng  *mrand.Rand // the loop's (outgoing, proposal)

	mu    sync.Mutex // observe (loop) and run (its goroutine) share the replay buffer
	heard [][]byte
	next  int
}

// SetByzantine makes the node misbehave as mode says, from Run on. Test builds only.
func (n *Node) SetByzantine(mode string) error {
	if !slices.Contains(ByzantineModes, mode) {
		return fmt.Errorf("%w %q: want one of %s", ErrByzantineMode, mode, strings.Join(ByzantineModes, ", "))
	}
	n.byz = &byzantine{mode: mode, rng: mrand.New(mrand.NewPCG(mrand.Uint64(), 1))}
	n.log.Warn("BYZANTINE TEST MODE: this validator misbehaves on purpose", "mode", mode)
	return nil
}

// publish queues raw for gossip without ever blocking.
func (n *Node) publish(raw []byte) bool {
	select {
	case n.sendCh <- raw:
		return true
	default:
		return false
	}
}

// signed signs m with the validator key and encodes it.
func (n *Node) signed(m *consensus.Message) []byte {
	consensus.Sign(n.chainID, n.valKey, m)
	raw, err := consensus.EncodeMessage(m)
	if err != nil {
		return nil
	}
	return raw
}

func randomDigest() consensus.Digest {
	var d consensus.Digest
	rand.Read(d[:])
	return d
}

// outgoing sees every message the core sends; true means it is not sent.
func (b *byzantine) outgoing(n *Node, m *consensus.Message) bool {
	switch b.mode {
	case ByzSilent:
		return true
	case ByzBadOrder:
		if m.Type == consensus.MsgPrePrepare {
			if bad := n.badOrderProposal(m); bad != nil {
				n.publish(bad)
				return true
			}
		}
	case ByzEquivocate:
		switch m.Type {
		case consensus.MsgPrePrepare:
			alt := n.otherProposal(m)
			if alt == nil {
				return false
			}
			// Gossip reaches everyone, so "halves" are made by order: half the time the other
			// block leaves first, and each node takes whichever arrives first.
			if b.rng.IntN(2) == 0 {
				n.publish(alt)
				return false
			}
			raw, err := consensus.EncodeMessage(m)
			if err == nil {
				n.publish(raw)
				n.publish(alt)
			}
			return true
		case consensus.MsgPrepare, consensus.MsgCommit:
			two := consensus.Message{Type: m.Type, Height: m.Height, View: m.View, From: m.From, Digest: randomDigest()}
			if raw := n.signed(&two); raw != nil {
				n.publish(raw)
			}
		}
	}
	return false
}

// otherProposal is a second, valid pre-prepare for m's slot: the same block a millisecond later.
func (n *Node) otherProposal(m *consensus.Message) []byte {
	blk, err := DecodeBlock(m.Value)
	if err != nil {
		return nil
	}
	blk.Header.Time++
	value, err := blk.Encode()
	if err != nil {
		return nil
	}
	alt := consensus.Message{Type: m.Type, Height: m.Height, View: m.View, From: m.From,
		Digest: consensus.DigestOf(value), Value: value}
	return n.signed(&alt)
}

// badOrderProposal is m (this leader's honest pre-prepare) with each sender's transactions in
// descending nonce order, signed outside the core: the core checks its own proposals and would
// refuse to sign it, which is the point — it is a block a correct leader could not make. nil if
// the order would not change.
func (n *Node) badOrderProposal(m *consensus.Message) []byte {
	blk, err := DecodeBlock(m.Value)
	if err != nil || len(blk.Txs) < 2 {
		return nil
	}
	bad := descendingNonces(blk.Txs)
	if slices.EqualFunc(bad, blk.Txs, func(a, b []byte) bool { return bytes.Equal(a, b) }) {
		return nil
	}
	blk.Txs = bad
	blk.Header.TxsHash = TxsHash(bad)
	value, err := blk.Encode()
	if err != nil {
		return nil
	}
	pp := consensus.Message{Type: m.Type, Height: m.Height, View: m.View, From: m.From,
		Digest: consensus.DigestOf(value), Value: value}
	return n.signed(&pp)
}

// descendingNonces puts each sender's transactions, in the positions they hold, in descending
// nonce order.
func descendingNonces(txs [][]byte) [][]byte {
	type item struct {
		raw   []byte
		nonce uint64
	}
	bySender := map[state.Address][]int{} // positions of each sender's transactions
	items := make([]item, len(txs))
	for i, raw := range txs {
		tx, err := state.DecodeTx(raw)
		if err != nil {
			return txs
		}
		items[i] = item{raw, tx.Body.Nonce}
		bySender[tx.Body.From] = append(bySender[tx.Body.From], i)
	}
	out := make([][]byte, len(txs))
	for _, pos := range bySender {
		mine := make([]item, len(pos))
		for k, p := range pos {
			mine[k] = items[p]
		}
		slices.SortFunc(mine, func(a, b item) int { return -cmpU64(a.nonce, b.nonce) })
		for k, p := range pos {
			out[p] = mine[k].raw
		}
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// observe keeps what the node hears, for replay.
func (b *byzantine) observe(m *consensus.Message) {
	if b.mode != ByzReplay || m.Type == consensus.MsgDecision {
		return
	}
	raw, err := consensus.EncodeMessage(m)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.heard) < replayKeep {
		b.heard = append(b.heard, raw)
		return
	}
	b.heard[b.next] = raw
	b.next = (b.next + 1) % replayKeep
}

// run publishes what the flooding modes publish on their own, every 10 ms, until ctx ends.
func (b *byzantine) run(ctx context.Context, n *Node) {
	perSec := map[string]int{ByzFlood: floodPerSec, ByzViewFlood: viewFloodPerSec, ByzReplay: replayPerSec}[b.mode]
	if perSec == 0 {
		return
	}
	rng := mrand.New(mrand.NewPCG(mrand.Uint64(), 2))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var nextView uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st := n.snapshot.Load()
		if st == nil || st.Self < 0 {
			continue
		}
		self := uint32(st.Self)
		for range perSec / 100 {
			var raw []byte
			switch b.mode {
			case ByzFlood:
				typ := consensus.MsgPrepare
				if rng.IntN(2) == 0 {
					typ = consensus.MsgCommit
				}
				raw = n.signed(&consensus.Message{Type: typ, Height: st.Height, View: st.View + uint64(rng.IntN(64)),
					From: self, Digest: randomDigest()})
			case ByzViewFlood:
				nextView = max(nextView, st.View) + 1
				raw = n.signed(&consensus.Message{Type: consensus.MsgViewChange, Height: st.Height, View: nextView, From: self})
			case ByzReplay:
				b.mu.Lock()
				if len(b.heard) > 0 {
					raw = b.heard[rng.IntN(len(b.heard))]
				}
				b.mu.Unlock()
			}
			if raw == nil || !n.publish(raw) {
				break
			}
		}
	}
}
