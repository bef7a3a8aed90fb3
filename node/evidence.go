package node

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
)

// Evidence of equivocation (issue #3) travels from the core that catches it (Ready.Evidence), or
// from gossip, into this node's EvidencePool; the leader puts pending evidence in its next block,
// every validator checks it in CheckProposal, and the block store indexes it once committed.
// On the consensus topic a piece of evidence travels as its own encoding, a CBOR array, beside
// consensus messages, which are CBOR maps: the first byte tells them apart.

const (
	// MaxEvidenceAge is how many heights below the block that includes it evidence may be. Older
	// evidence is refused by the pool, by gossip and in proposals: a validator set that governance
	// may change, and a pool that must stay bounded, cannot be asked to judge offences forever,
	// and a hundred heights is far longer than it takes honest leaders to record one.
	MaxEvidenceAge = 100
	// MaxBlockEvidence is the most evidence one block may carry.
	MaxBlockEvidence = 16
	// maxPoolEvidence and maxPoolEvidenceBytes bound the pending evidence a node holds, and
	// maxPoolEvidencePerValidator what it holds against one validator: a Byzantine validator
	// can sign valid evidence against itself for any number of views, and must not crowd out
	// the evidence against others. One offence already puts it on record.
	maxPoolEvidence             = 512
	maxPoolEvidenceBytes        = maxPoolEvidence * consensus.MaxEvidenceBytes
	maxPoolEvidencePerValidator = 16
)

var (
	// ErrEvidenceKnown: the pool holds evidence for this slot already, or it is on chain.
	ErrEvidenceKnown = errors.New("node: evidence already known")
	// ErrEvidenceTooOld: the evidence is more than MaxEvidenceAge heights old.
	ErrEvidenceTooOld = errors.New("node: evidence too old")
	// ErrEvidenceFuture: the evidence is for a height too far above this node's chain to judge.
	ErrEvidenceFuture = errors.New("node: evidence for a height too far ahead")
	// ErrEvidencePoolFull: the pool is at its count or byte bound.
	ErrEvidencePoolFull = errors.New("node: evidence pool full")
)

// evidenceFits reports whether evidence for evHeight may go into the block at height: not from a
// later height, and at most MaxEvidenceAge below it. Deterministic: CheckProposal relies on it.
func evidenceFits(evHeight, height uint64) error {
	switch {
	case evHeight > height:
		return fmt.Errorf("%w: evidence for height %d in block %d", ErrEvidenceFuture, evHeight, height)
	case height-evHeight > MaxEvidenceAge:
		return fmt.Errorf("%w: evidence for height %d in block %d, at most %d heights back", ErrEvidenceTooOld, evHeight, height, MaxEvidenceAge)
	}
	return nil
}

// EvidencePool holds verified evidence not yet on chain, one piece per slot, bounded in count and
// bytes. It is safe for concurrent use: the gossip validator adds from pubsub's goroutines, the
// loop adds what its core caught, proposes and prunes.
type EvidencePool struct {
	mu     sync.Mutex
	bySlot map[consensus.EvidenceSlot]pooledEvidence
	ids    map[consensus.Digest]struct{}
	perVal map[uint32]int
	bytes  int
	seq    uint64
}

type pooledEvidence struct {
	ev   consensus.Evidence
	id   consensus.Digest
	size int
	seq  uint64 // arrival order, so proposals take the oldest first
}

// NewEvidencePool makes an empty pool.
func NewEvidencePool() *EvidencePool {
	return &EvidencePool{bySlot: map[consensus.EvidenceSlot]pooledEvidence{}, ids: map[consensus.Digest]struct{}{}, perVal: map[uint32]int{}}
}

// add keeps verified evidence. Precondition: e passed Verify and is not on chain.
func (p *EvidencePool) add(e consensus.Evidence) error {
	raw, err := e.Encode()
	if err != nil {
		return err
	}
	id := consensus.DigestOf(raw)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.ids[id]; ok {
		return fmt.Errorf("%w: %s", ErrEvidenceKnown, id)
	}
	if _, ok := p.bySlot[e.Slot()]; ok {
		return fmt.Errorf("%w: slot %+v", ErrEvidenceKnown, e.Slot())
	}
	if len(p.bySlot) >= maxPoolEvidence || p.bytes+len(raw) > maxPoolEvidenceBytes {
		return ErrEvidencePoolFull
	}
	if p.perVal[e.First.From] >= maxPoolEvidencePerValidator {
		return fmt.Errorf("%w: %d pieces against validator %d pending", ErrEvidencePoolFull, maxPoolEvidencePerValidator, e.First.From)
	}
	p.perVal[e.First.From]++
	p.seq++
	p.bySlot[e.Slot()] = pooledEvidence{ev: e, id: id, size: len(raw), seq: p.seq}
	p.ids[id] = struct{}{}
	p.bytes += len(raw)
	return nil
}

// Has reports whether the pool holds evidence with this ID.
func (p *EvidencePool) Has(id consensus.Digest) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.ids[id]
	return ok
}

// Size is the number of pending pieces of evidence.
func (p *EvidencePool) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.bySlot)
}

// Pending returns up to max pieces of evidence that fit a block at height, oldest first, leaving
// out those for which onChain says true.
func (p *EvidencePool) Pending(height uint64, max int, onChain func(consensus.EvidenceSlot) bool) []consensus.Evidence {
	p.mu.Lock()
	all := make([]pooledEvidence, 0, len(p.bySlot))
	for _, pe := range p.bySlot {
		if evidenceFits(pe.ev.First.Height, height) == nil {
			all = append(all, pe)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(all, func(a, b pooledEvidence) int { return cmp.Compare(a.seq, b.seq) })
	var out []consensus.Evidence
	for _, pe := range all {
		if len(out) == max {
			break
		}
		if !onChain(pe.ev.Slot()) {
			out = append(out, pe.ev)
		}
	}
	return out
}

// Update drops the evidence a committed block at height carried, and what is now too old for
// the next block.
func (p *EvidencePool) Update(height uint64, included []consensus.Evidence) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range included {
		p.drop(included[i].Slot())
	}
	for slot, pe := range p.bySlot {
		if errors.Is(evidenceFits(pe.ev.First.Height, height+1), ErrEvidenceTooOld) {
			p.drop(slot)
		}
	}
}

// discard drops evs from the pool.
func (p *EvidencePool) discard(evs []consensus.Evidence) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range evs {
		p.drop(evs[i].Slot())
	}
}

func (p *EvidencePool) drop(slot consensus.EvidenceSlot) {
	if pe, ok := p.bySlot[slot]; ok {
		delete(p.bySlot, slot)
		delete(p.ids, pe.id)
		p.bytes -= pe.size
		if p.perVal[slot.Validator]--; p.perVal[slot.Validator] == 0 {
			delete(p.perVal, slot.Validator)
		}
	}
}

// SubmitEvidence verifies evidence, adds it to the pool and gossips it to the other nodes; it is
// proposed by whichever of them leads next. It is safe from any goroutine. Errors:
// consensus.ErrInvalidEvidence (with the reason), ErrEvidenceKnown, ErrEvidenceTooOld,
// ErrEvidenceFuture, ErrEvidencePoolFull; on any error nothing changes and nothing is sent.
func (n *Node) SubmitEvidence(e *consensus.Evidence) error {
	if err := n.poolEvidence(e); err != nil {
		return err
	}
	n.gossipEvidence(e)
	return nil
}

// poolEvidence is SubmitEvidence without the gossip.
func (n *Node) poolEvidence(e *consensus.Evidence) error {
	vals := n.validatorsAt(e.First.Height)
	if err := e.Verify(n.chainID, &vals); err != nil {
		return err
	}
	// Evidence a little ahead of the next block is what an honest peer deciding a later height
	// catches; from further ahead this node cannot judge it yet.
	next, h := n.blocks.Height()+1, e.First.Height
	if h > next+consensus.MaxFutureHeights {
		return fmt.Errorf("%w: evidence for height %d, next block %d", ErrEvidenceFuture, h, next)
	}
	if err := evidenceFits(h, max(next, h)); err != nil {
		return err
	}
	onChain, err := n.blocks.EvidenceCommitted(e.Slot())
	if err != nil {
		return err
	}
	if onChain {
		return fmt.Errorf("%w: on chain already", ErrEvidenceKnown)
	}
	return n.evidence.add(*e)
}

// validateEvidence is the consensus topic's validator for evidence: decode with limits, verify
// every signature, then pool it. Invalid evidence costs its sender (Reject); evidence that is
// valid but stale, known, or that the pool has no room for is dropped without blame (Ignore).
func (n *Node) validateEvidence(data []byte) (p2p.Verdict, any) {
	e, err := consensus.DecodeEvidence(data)
	if err != nil {
		return p2p.Reject, nil
	}
	if n.evidence.Has(consensus.DigestOf(data)) { // canonical bytes: their hash is the ID
		return p2p.Ignore, nil
	}
	// Pubsub relays what is accepted: pool it only.
	err = n.poolEvidence(e)
	switch {
	case err == nil:
		return p2p.Accept, e
	case errors.Is(err, consensus.ErrInvalidEvidence):
		return p2p.Reject, nil
	}
	return p2p.Ignore, nil
}

// isEvidence tells an evidence payload (a CBOR array, consensus.Evidence) from a consensus
// message (a CBOR map) on the consensus topic.
func isEvidence(data []byte) bool { return len(data) > 0 && data[0]>>5 == 4 }

// handleCaughtEvidence pools what this node's core caught and gossips what was new.
func (n *Node) handleCaughtEvidence(evs []consensus.Evidence) {
	for i := range evs {
		e := &evs[i]
		if err := n.SubmitEvidence(e); err != nil {
			n.log.Debug("caught evidence not pooled", "validator", e.First.From, "height", e.First.Height, "err", err)
			continue
		}
		n.metrics.evidenceCaught.Inc()
		n.log.Warn("validator equivocated", "validator", e.First.From, "type", e.First.Type,
			"height", e.First.Height, "view", e.First.View, "id", e.ID())
	}
}

// gossipEvidence queues pooled evidence for the consensus topic without blocking.
func (n *Node) gossipEvidence(e *consensus.Evidence) {
	raw, err := e.Encode()
	if err != nil {
		return
	}
	select {
	case n.sendCh <- raw:
	default:
		n.metrics.sendDropped.Inc() // this node still proposes it when it leads
	}
}

// checkBlockEvidence is CheckProposal's part for evidence: every piece verifies, fits the block's
// height, names a slot no other piece of the block names, and is not on chain already.
func (n *Node) checkBlockEvidence(height uint64, evs []consensus.Evidence) error {
	slots := make(map[consensus.EvidenceSlot]struct{}, len(evs))
	for i := range evs {
		e := &evs[i]
		vals := n.validatorsAt(e.First.Height)
		if err := e.Verify(n.chainID, &vals); err != nil {
			return fmt.Errorf("%w: evidence %d: %w", ErrBadBlock, i, err)
		}
		if err := evidenceFits(e.First.Height, height); err != nil {
			return fmt.Errorf("%w: evidence %d: %w", ErrBadBlock, i, err)
		}
		if _, dup := slots[e.Slot()]; dup {
			return fmt.Errorf("%w: evidence %d: %w: twice in the block", ErrBadBlock, i, ErrEvidenceKnown)
		}
		slots[e.Slot()] = struct{}{}
		onChain, err := n.blocks.EvidenceCommitted(e.Slot())
		if err != nil {
			if isStoreFault(err) {
				n.storeFailed("checking a proposal's evidence", err)
			}
			return err
		}
		if onChain {
			return fmt.Errorf("%w: evidence %d: %w: on chain already", ErrBadBlock, i, ErrEvidenceKnown)
		}
	}
	return nil
}

// evidenceOnChain is EvidenceCommitted for Pending: a read error keeps the evidence out of the
// proposal, which is safe.
func (n *Node) evidenceOnChain(slot consensus.EvidenceSlot) bool {
	ok, err := n.blocks.EvidenceCommitted(slot)
	if err != nil && isStoreFault(err) {
		n.storeFailed("checking whether pooled evidence is on chain", err)
	}
	return ok || err != nil
}
