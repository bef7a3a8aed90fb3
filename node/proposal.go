package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
)

// A proposal is judged by executing it (issue #9): a block that holds a transaction that would
// fail in it — a bad nonce order, a balance it does not cover, any execution error — is one a
// correct leader could not have made, since a correct leader leaves such transactions out
// (maybePropose). Executing it commits nothing: the result is kept, and if the block is decided
// it is what the node commits, so each block is still executed once.

// ErrTxWouldFail refuses a proposal holding a transaction that would fail in it. The leader that
// signed it is at fault (see offences.go).
var ErrTxWouldFail = fmt.Errorf("%w: a transaction in it would fail", ErrBadBlock)

// maxExecuted bounds the executed candidates kept for the current tip: the proposals of a few
// views, this node's own among them.
const maxExecuted = 4

// executedBlock is a block this node checked and executed (as a dry run) on its current tip.
type executedBlock struct {
	digest consensus.Digest
	value  []byte // the block's bytes, whose digest is digest
	block  *Block
	staged *state.Staged
	// failed says why the block would not be a correct leader's (ErrTxWouldFail), or is nil.
	failed error
	// checked: the block passed checkHeader. This node's own proposal is executed before it is
	// checked (maybePropose), and checked like any other.
	checked bool
}

// executedBlocks holds the candidates executed on the current tip, newest last. Owned by the loop.
type executedBlocks struct {
	list []executedBlock
}

// get returns the candidate with digest d executed for height, if it is kept.
func (e *executedBlocks) get(d consensus.Digest, height uint64) *executedBlock {
	for i := range e.list {
		if c := &e.list[i]; c.digest == d && c.staged.Result.Height == height {
			return c
		}
	}
	return nil
}

// put keeps c, dropping candidates of other heights (their tip is gone) and the oldest beyond
// maxExecuted.
func (e *executedBlocks) put(c executedBlock) {
	h := c.staged.Result.Height
	e.list = slices.DeleteFunc(e.list, func(o executedBlock) bool {
		return o.staged.Result.Height != h || o.digest == c.digest
	})
	if len(e.list) >= maxExecuted {
		e.list = slices.Delete(e.list, 0, len(e.list)-maxExecuted+1)
	}
	e.list = append(e.list, c)
}

// digestOf is consensus.DigestOf(value) if value is a kept candidate's bytes. A block is
// hashed whole when it is rebuilt or checked, and again at each step after (its check, its
// commit, the new tip): a SHA-256 over every transaction's bytes each time. Comparing the bytes
// instead costs nothing when they are the same slice (the usual case: the core hands back the
// value it was given) and far less than hashing when they are a copy.
func (e *executedBlocks) digestOf(value []byte) (consensus.Digest, bool) {
	for i := range e.list {
		if c := &e.list[i]; len(c.value) == len(value) && bytes.Equal(c.value, value) {
			return c.digest, true
		}
	}
	return consensus.Digest{}, false
}

// digestOf is consensus.DigestOf(value), taken from a kept candidate or rebuilt proposal with
// the same bytes if there is one. On the loop.
func (n *Node) digestOf(value []byte) consensus.Digest {
	if d, ok := n.executed.digestOf(value); ok {
		return d
	}
	if d, ok := n.refs.digestOf(value); ok {
		return d
	}
	return consensus.DigestOf(value)
}

// take returns the candidate whose digest is that of value, if it is kept, for the commit of
// height, and forgets every candidate: once height is committed none fits the tip.
func (e *executedBlocks) take(value []byte, height uint64) *executedBlock {
	d, ok := e.digestOf(value)
	if !ok {
		d = consensus.DigestOf(value)
	}
	defer func() { clear(e.list); e.list = e.list[:0] }()
	for i := range e.list {
		if c := e.list[i]; c.digest == d && c.staged.Result.Height == height {
			return &c
		}
	}
	return nil
}

// CheckProposal implements consensus.Application: is value a block a correct leader could propose
// on our tip? It runs on the loop, after the previous block has been executed.
func (n *Node) CheckProposal(height uint64, value []byte) error {
	return n.checkProposal(height, -1, value)
}

// CheckProposalBy implements consensus.ProposerChecker: a fresh proposal must also name the
// validator that made it as its proposer. A leader that names another (the one whose turn it
// was, say) would hide that validator's missed turn from the leader schedule.
func (n *Node) CheckProposalBy(height uint64, proposer uint32, value []byte) error {
	return n.checkProposal(height, int64(proposer), value)
}

// checkProposal is CheckProposal, and CheckProposalBy for a proposer >= 0.
func (n *Node) checkProposal(height uint64, proposer int64, value []byte) error {
	err := n.checkBlock(height, value, false, proposer)
	if errors.Is(err, ErrTxWouldFail) {
		n.refusals = append(n.refusals, refusal{height: height, digest: consensus.DigestOf(value), err: err})
	}
	return err
}

// CheckDecision implements consensus.DecisionChecker: a certified block must fit our tip, but
// it is final, so it is executed even if some of its transactions fail (those are recorded as
// rejected, as execution always did). Block sync applies certified blocks by the same rule.
func (n *Node) CheckDecision(height uint64, value []byte) error {
	return n.checkBlock(height, value, true, -1)
}

// checkBlock checks value as the next block and executes it (a dry run, kept for commit). Only a
// proposal (certified false) is refused for a transaction that would fail; a proposer >= 0 must be
// the one the header names.
func (n *Node) checkBlock(height uint64, value []byte, certified bool, proposer int64) error {
	d := n.digestOf(value)
	c := n.executed.get(d, height)
	if c != nil && c.block != nil && proposer >= 0 && int64(c.block.Header.Proposer) != proposer {
		return wrongProposer(c.block.Header.Proposer, proposer)
	}
	if c != nil && c.checked {
		// Judged already on this tip (a retransmission, or a view's re-proposal).
		if certified {
			return nil
		}
		return c.failed
	}
	b, err := n.checkHeader(height, value, d)
	if err != nil {
		return err
	}
	if proposer >= 0 && int64(b.Header.Proposer) != proposer {
		return wrongProposer(b.Header.Proposer, proposer)
	}
	if c != nil {
		c.checked = true // executed already: this node's own proposal
		if certified {
			return nil
		}
		return c.failed
	}
	staged, err := n.st.ExecuteHashed(state.BlockInfo{Height: height, TimeMs: b.Header.Time, Version: b.Header.ProtocolVersion()}, b.Txs, b.hashes, n.sigs)
	if err != nil {
		return fmt.Errorf("node: executing block %d: %w", height, err)
	}
	ex := executedBlock{digest: d, value: value, block: b, staged: staged, checked: true, failed: failure(staged)}
	n.executed.put(ex)
	if certified {
		return nil
	}
	return ex.failed
}

func wrongProposer(named uint32, proposer int64) error {
	return fmt.Errorf("%w: the header names validator %d as proposer, but validator %d proposed it", ErrBadBlock, named, proposer)
}

// failure is why a staged block is not one a correct leader makes, or nil.
func failure(staged *state.Staged) error {
	i := staged.Failed()
	if i < 0 {
		return nil
	}
	r := staged.Result.Results[i]
	return fmt.Errorf("%w: transaction %d (%s): %w", ErrTxWouldFail, i, r.Hash, r.Err)
}

// checkHeader checks everything about value (whose digest is d) as the next block but its
// execution.
func (n *Node) checkHeader(height uint64, value []byte, d consensus.Digest) (*Block, error) {
	b := n.refs.rebuilt(d)
	if sb := n.syncDecoded; b == nil && sb != nil && sb.height == height && sb.cert.Digest == d {
		b = sb.block // decoded from these very bytes: the certificate's digest is theirs (verifySynced)
	}
	if b == nil {
		var err error
		if b, err = DecodeBlock(value); err != nil {
			return nil, err
		}
	}
	h := &b.Header
	switch {
	case h.ChainID != n.chainID:
		return nil, fmt.Errorf("%w: chain ID %q", ErrBadBlock, h.ChainID)
	case h.Height != height:
		return nil, fmt.Errorf("%w: header height %d for height %d", ErrBadBlock, h.Height, height)
	case height != n.blocks.Height()+1:
		return nil, fmt.Errorf("%w: height %d does not follow %d", ErrBadBlock, height, n.blocks.Height())
	case height != n.st.Height()+1:
		return nil, fmt.Errorf("%w: height %d does not follow the state's %d", ErrBadBlock, height, n.st.Height())
	case h.PrevHash != n.lastHash:
		return nil, fmt.Errorf("%w: parent %s is not the tip %s", ErrBadBlock, h.PrevHash, n.lastHash)
	case h.StateRoot != n.st.Root():
		return nil, fmt.Errorf("%w: state root %s, ours %s", ErrBadBlock, h.StateRoot, n.st.Root())
	case h.ReceiptsRoot != n.st.ReceiptsRoot():
		return nil, fmt.Errorf("%w: receipts root %s, ours %s", ErrBadBlock, h.ReceiptsRoot, n.st.ReceiptsRoot())
	case h.Time <= n.lastTime:
		return nil, fmt.Errorf("%w: time %d not after the parent's %d", ErrBadBlock, h.Time, n.lastTime)
	case int(h.Proposer) >= len(n.validatorsAt(height).Validators):
		return nil, fmt.Errorf("%w: proposer index %d out of range", ErrBadBlock, h.Proposer)
	case len(b.Txs) > n.params.maxBlockTxs:
		return nil, fmt.Errorf("%w: %d transactions, the consortium's limit is %d", ErrBadBlock, len(b.Txs), n.params.maxBlockTxs)
	case h.ProtocolVersion() != n.versionAt(height):
		return nil, fmt.Errorf("%w: protocol version %d, version %d is in force at height %d", ErrBadBlock,
			h.ProtocolVersion(), n.versionAt(height), height)
	case h.ProtocolVersion() > state.SupportedVersion:
		// The loop stops before such a height (upgradeCheck); this keeps any other path from
		// judging a block under rules this binary does not have.
		return nil, fmt.Errorf("%w: protocol version %d, this binary supports up to %d", ErrUpgradeRequired,
			h.ProtocolVersion(), state.SupportedVersion)
	}
	if turn := n.leadersAt(height); h.Leader != turn.leader || !slices.Equal(h.Skips, turn.skips) {
		return nil, fmt.Errorf("%w: leader schedule (leader %d, skips %v) is not ours (leader %d, skips %v)",
			ErrBadBlock, h.Leader, h.Skips, turn.leader, turn.skips)
	}
	if err := n.checkBlockEvidence(height, b.Evidence); err != nil {
		return nil, err
	}
	hashes := b.txHashes()
	seen := make(map[state.Hash]struct{}, len(b.Txs))
	for i, th := range hashes {
		if _, dup := seen[th]; dup {
			return nil, fmt.Errorf("%w: transaction %d repeats %s", ErrBadBlock, i, th)
		}
		seen[th] = struct{}{}
	}
	if b.hashes == nil && len(hashes) > 0 {
		// b was decoded here, from value: no one else holds it yet.
		b.hashes = hashes
	}
	return b, nil
}

// leaveOutFailing executes the block a leader is about to propose and leaves out the transactions
// that would fail in it. Those that can never pass leave the mempool as rejected, with the reason,
// for GET /v1/txs/{hash}; one whose nonce is ahead of its sender's next (an earlier one was left
// out or is missing) waits in the mempool. It returns the transactions to propose and their
// execution, which the proposal's own CheckProposal and commit then reuse. hashes are the
// mempool's HashTx of txs; the staged results carry those of the transactions kept.
func (n *Node) leaveOutFailing(info state.BlockInfo, txs [][]byte, hashes []state.Hash) ([][]byte, *state.Staged, error) {
	staged, err := n.st.ExecuteHashed(info, txs, hashes, n.sigs)
	if err != nil || staged.Failed() < 0 {
		return txs, staged, err
	}
	kept := make([][]byte, 0, len(txs))
	keptHashes := make([]state.Hash, 0, len(txs))
	var rejected []state.Hash
	waiting := 0
	for i, r := range staged.Result.Results {
		switch {
		case r.Err == nil:
			kept, keptHashes = append(kept, txs[i]), append(keptHashes, r.Hash)
		case errors.Is(r.Err, state.ErrNonceAhead):
			waiting++
		default:
			rejected = append(rejected, r.Hash)
			n.rejected.put(r.Hash, r.Err.Error())
		}
	}
	n.pool.Remove(rejected)
	n.metrics.txsLeftOut.Add(float64(len(txs) - len(kept)))
	n.log.Debug("left failing transactions out of the proposal", "height", info.Height,
		"rejected", len(rejected), "waiting", waiting, "kept", len(kept))
	// Leaving out transactions that changed nothing changes nothing for the others; executing the
	// final block again is still what makes its result the one committed, byte for byte.
	if staged, err = n.st.ExecuteHashed(info, kept, keptHashes, n.sigs); err != nil {
		return nil, nil, err
	}
	if i := staged.Failed(); i >= 0 {
		return nil, nil, fmt.Errorf("node: transaction %d fails in the block left of passing transactions: %w",
			i, staged.Result.Results[i].Err)
	}
	return kept, staged, nil
}
