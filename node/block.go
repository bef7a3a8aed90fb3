package node

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
)

// Limits on blocks, checked before anything else so a hostile proposal cannot make a node allocate
// without bound.
const (
	// MaxBlockTxsLimit is the most transactions a block may hold, whatever the config says.
	MaxBlockTxsLimit = 50000
	// MaxBlockBytes bounds an encoded block; the consensus topic's message limit is derived from it.
	MaxBlockBytes = 8 << 20
)

var (
	ErrBadBlock = errors.New("node: invalid block")
)

// Header is what a block commits to besides its transactions. StateRoot (and ReceiptsRoot) are
// the state after (and the receipts of) the previous block, so a block can be proposed before it
// is executed.
type Header struct {
	ChainID   string     `cbor:"1,keyasint"`
	Height    uint64     `cbor:"2,keyasint"`
	Time      int64      `cbor:"3,keyasint"` // proposer's clock, unix milliseconds; strictly increasing
	PrevHash  state.Hash `cbor:"4,keyasint"`
	StateRoot state.Hash `cbor:"5,keyasint"`
	TxsHash   state.Hash `cbor:"6,keyasint"`
	Proposer  uint32     `cbor:"7,keyasint"` // validator index of the leader that proposed it
	// EvidenceHash commits to the block's evidence (see EvidenceHash); zero, and left out of the
	// encoding, when the block carries none, so blocks without evidence encode as before.
	EvidenceHash state.Hash `cbor:"8,keyasint,omitzero"`
	// Leader is the validator scheduled to lead view 0 of this height, and Skips the skip table
	// in force at it (see leaders.go): Proposer != Leader records that Leader missed its turn.
	// Both are checked by every validator against its own computation from the parent header.
	Leader uint32       `cbor:"9,keyasint,omitempty"`
	Skips  []LeaderSkip `cbor:"10,keyasint,omitempty"`
	// Version is the protocol version the block was made under: the one in force at its height
	// (upgrade.go), 1 until an upgrade changes it. Every leader writes it, 1 included, and every
	// validator refuses a proposal whose version is not the one in force. It is left out of the
	// encoding only when zero, which no current binary writes: that keeps the bytes and hashes of
	// blocks made before headers carried a version, and such a header reads as version 1
	// (ProtocolVersion).
	Version uint32 `cbor:"11,keyasint,omitempty"`
	// ReceiptsRoot is, like StateRoot, about the previous block: the root over its receipts
	// (state/merkle: one leaf per transaction, its hash and whether it applied), so that block
	// h's outcomes are certified by the certificate of block h+1. Zero, and left out of the
	// encoding, when the previous block had no transactions. Checked by every validator.
	ReceiptsRoot state.Hash `cbor:"12,keyasint,omitzero"`
}

// Block is the value consensus decides; its hash (consensus.DigestOf of its encoding) is the block
// hash that the certificate signs.
type Block struct {
	Header Header   `cbor:"1,keyasint"`
	Txs    [][]byte `cbor:"2,keyasint"`
	// Evidence of equivocation the proposer put on record, at most MaxBlockEvidence, each for a
	// different slot (issue #3); CheckProposal verifies every piece.
	Evidence []consensus.Evidence `cbor:"3,keyasint,omitempty"`

	// hashes, when set, is HashTx of each of Txs, known from where the block was put together
	// (the mempool's, or a proposal by reference's checked ones): the proposal checks and
	// execution take them instead of hashing every transaction again. Not encoded.
	hashes []state.Hash
}

// txHashes is HashTx of each of b's transactions: b.hashes if set, else computed (not kept: a
// block may be read by more than one goroutine).
func (b *Block) txHashes() []state.Hash {
	if len(b.hashes) == len(b.Txs) {
		return b.hashes
	}
	hs := make([]state.Hash, len(b.Txs))
	for i, tx := range b.Txs {
		hs[i] = state.HashTx(tx)
	}
	return hs
}

// EvidenceHash commits to a block's evidence: zero for none, else SHA-256 over the evidence IDs
// in order.
func EvidenceHash(evs []consensus.Evidence) state.Hash {
	var out state.Hash
	if len(evs) == 0 {
		return out
	}
	h := sha256.New()
	for i := range evs {
		id := evs[i].ID()
		h.Write(id[:])
	}
	h.Sum(out[:0])
	return out
}

// TxsHash commits to the ordered transactions: SHA-256 over their hashes.
func TxsHash(txs [][]byte) state.Hash {
	h := sha256.New()
	for _, tx := range txs {
		th := state.HashTx(tx)
		h.Write(th[:])
	}
	var out state.Hash
	h.Sum(out[:0])
	return out
}

// Encode gives the block's canonical bytes.
func (b *Block) Encode() ([]byte, error) { return state.Marshal(b) }

// DecodeBlock parses a block and checks its shape (sizes, counts, canonical encoding, tx hash),
// not its place in the chain.
func DecodeBlock(raw []byte) (*Block, error) {
	if len(raw) > MaxBlockBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadBlock, len(raw), MaxBlockBytes)
	}
	var b Block
	if err := state.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBlock, err)
	}
	if len(b.Txs) > MaxBlockTxsLimit {
		return nil, fmt.Errorf("%w: %d transactions, limit %d", ErrBadBlock, len(b.Txs), MaxBlockTxsLimit)
	}
	for i, tx := range b.Txs {
		if len(tx) == 0 || len(tx) > state.MaxTxBytes {
			return nil, fmt.Errorf("%w: transaction %d has %d bytes", ErrBadBlock, i, len(tx))
		}
	}
	again, err := b.Encode()
	if err != nil || !bytes.Equal(again, raw) {
		return nil, fmt.Errorf("%w: not in canonical encoding", ErrBadBlock)
	}
	if TxsHash(b.Txs) != b.Header.TxsHash {
		return nil, fmt.Errorf("%w: txs_hash does not match the transactions", ErrBadBlock)
	}
	if len(b.Header.Skips) > consensus.MaxValidators {
		return nil, fmt.Errorf("%w: %d leader skips, limit %d", ErrBadBlock, len(b.Header.Skips), consensus.MaxValidators)
	}
	if len(b.Evidence) > MaxBlockEvidence {
		return nil, fmt.Errorf("%w: %d pieces of evidence, limit %d", ErrBadBlock, len(b.Evidence), MaxBlockEvidence)
	}
	if EvidenceHash(b.Evidence) != b.Header.EvidenceHash {
		return nil, fmt.Errorf("%w: evidence_hash does not match the evidence", ErrBadBlock)
	}
	return &b, nil
}
