package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/fxamacker/cbor/v2"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// BlockStore keeps committed blocks, their certificates and execution results, and an index from
// transaction hash to where it was committed. It is separate from the state store (docs/architecture.md), and
// is written before the state so that a crash between the two is repaired by re-executing.
//
// Writes come only from the node's loop; reads from any goroutine.
type BlockStore struct {
	db     kv.Store
	height atomic.Uint64
	// base is the first block kept (blockstore_base.go): 0 for a store holding every block.
	base atomic.Uint64
	// indexMark is the version of the tx and account indexes and the height they are complete
	// up to; nil when the store has none (it predates them, or a rebuild was interrupted).
	indexMark atomic.Pointer[indexMark]
}

var ErrBlockNotFound = errors.New("node: block not found")

// StoredResult is what execution did with one transaction of a block.
type StoredResult struct {
	Hash  state.Hash `cbor:"1,keyasint"`
	Error string     `cbor:"2,keyasint,omitempty"`
}

// TxLocation is where a transaction was committed.
type TxLocation struct {
	Height uint64 `cbor:"1,keyasint"`
	Index  uint32 `cbor:"2,keyasint"`
	Error  string `cbor:"3,keyasint,omitempty"` // execution rejected it, with this reason
}

var keyHeight = []byte("m/height")

func heightKey(prefix byte, h uint64) []byte {
	k := make([]byte, 10)
	k[0], k[1] = prefix, '/'
	binary.BigEndian.PutUint64(k[2:], h)
	return k
}

func txKey(h state.Hash) []byte { return append([]byte("t/"), h[:]...) }

// evidencePrefix starts the committed-evidence index: "e/" ‖ height ‖ view ‖ type ‖ validator,
// so it lists in the order of the offences.
var evidencePrefix = []byte("e/")

func evidenceKey(s consensus.EvidenceSlot) []byte {
	k := make([]byte, 0, len(evidencePrefix)+21)
	k = append(k, evidencePrefix...)
	k = binary.BigEndian.AppendUint64(k, s.Height)
	k = binary.BigEndian.AppendUint64(k, s.View)
	k = append(k, byte(s.Type))
	return binary.BigEndian.AppendUint32(k, s.Validator)
}

// CommittedEvidence is a piece of evidence on chain and the height of the block that holds it.
type CommittedEvidence struct {
	Evidence consensus.Evidence `cbor:"1,keyasint"`
	Included uint64             `cbor:"2,keyasint"`
}

// blockEvidenceOnly reads a block's evidence and skips the rest, so that indexing evidence does
// not decode every transaction of a big block again.
type blockEvidenceOnly struct {
	Evidence []consensus.Evidence `cbor:"3,keyasint,omitempty"`
}

var skimMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{MaxNestedLevels: 8, MaxArrayElements: MaxBlockTxsLimit + 1}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("node: cbor decoder options: %v", err))
	}
	return dm
}()

// OpenBlockStore loads the committed height from db.
func OpenBlockStore(db kv.Store) (*BlockStore, error) {
	bs := &BlockStore{db: db}
	v, err := db.Get(keyHeight)
	if err != nil {
		return nil, fmt.Errorf("node: block store: %w", err)
	}
	if v != nil {
		if len(v) != 8 {
			return nil, fmt.Errorf("%w: the block store's height record", ErrStoreCorrupt)
		}
		bs.height.Store(binary.BigEndian.Uint64(v))
	}
	if err := bs.loadBase(); err != nil {
		return nil, err
	}
	if err := bs.loadIndexMark(); err != nil {
		return nil, err
	}
	return bs, nil
}

// Height is the last stored block height (0 before the first block).
func (bs *BlockStore) Height() uint64 { return bs.height.Load() }

// SaveBlock durably stores a decided block with its certificate. Height must be Height()+1.
func (bs *BlockStore) SaveBlock(height uint64, value []byte, cert *consensus.Certificate) error {
	if height != bs.Height()+1 {
		return fmt.Errorf("node: block store: saving height %d after %d", height, bs.Height())
	}
	certBytes, err := state.Marshal(cert)
	if err != nil {
		return err
	}
	// Decided blocks passed CheckProposal; the evidence index is written with the block, so that
	// CheckProposal of the next height sees it whatever stored this one (the loop, block sync).
	var skim blockEvidenceOnly
	if err := skimMode.Unmarshal(value, &skim); err != nil {
		return fmt.Errorf("node: block store: reading the evidence of block %d: %w", height, err)
	}
	b := bs.db.NewBatch()
	defer b.Close()
	for i := range skim.Evidence {
		key := evidenceKey(skim.Evidence[i].Slot())
		if known, err := bs.db.Has(key); err != nil || known {
			if err != nil {
				return err
			}
			continue // CheckProposal refuses this; never let a later copy hide the first
		}
		rec, err := state.Marshal(CommittedEvidence{Evidence: skim.Evidence[i], Included: height})
		if err != nil {
			return err
		}
		if err := b.Set(key, rec); err != nil {
			return err
		}
	}
	var hb [8]byte
	binary.BigEndian.PutUint64(hb[:], height)
	for _, kvp := range [][2][]byte{
		{heightKey('b', height), value},
		{heightKey('c', height), certBytes},
		{keyHeight, hb[:]},
	} {
		if err := b.Set(kvp[0], kvp[1]); err != nil {
			return err
		}
	}
	if err := b.Write(); err != nil {
		return fmt.Errorf("node: block store write: %w", err)
	}
	bs.height.Store(height)
	return nil
}

// SaveResults stores what execution did with a block's transactions and, in the same batch,
// indexes them by hash and by the accounts each touches (touched[i] for transaction i; see
// blockstore_index.go). A transaction already indexed as applied keeps its first location; a
// replay of it is rejected by execution and must not hide where it really took effect.
func (bs *BlockStore) SaveResults(height uint64, results []StoredResult, touched [][]state.Address) error {
	enc := appendResults(make([]byte, 0, 9+len(results)*36), results)
	b := bs.db.NewBatch()
	defer b.Close()
	if err := b.Set(heightKey('r', height), enc); err != nil {
		return err
	}
	w := bs.newIndexWriter(b)
	if err := w.block(height, results, touched); err != nil {
		return err
	}
	// The indexes stay complete only if they were up to the block before; otherwise the node
	// rebuilds them at its next start (checkIndexes).
	mark := bs.indexMark.Load()
	advance := mark != nil && mark.version == indexVersion && mark.height+1 == height
	if advance {
		if err := b.Set(keyIndexMark, encodeIndexMark(height)); err != nil {
			return err
		}
	}
	// Not synced on its own: the next block's SaveBlock syncs the store's log, and with it this
	// batch, before the state can move past height (commitBlock stores a block before executing
	// it). Until then a crash can lose only the results of the state's last block, and those
	// the state keeps: recoverResults writes them again at start. One fsync fewer on the commit
	// path of every height (issue #10).
	if err := b.WriteNoSync(); err != nil {
		return err
	}
	if advance {
		bs.indexMark.Store(&indexMark{version: indexVersion, height: height})
	}
	return nil
}

// appendResults appends state.Marshal's encoding of results, written by hand: the codec spent
// about a tenth of a block store's CPU on it (each hash through a reflection-driven encoder).
// An array of maps {1: hash, 2: error if any}, in the core deterministic encoding.
func appendResults(b []byte, results []StoredResult) []byte {
	b = state.AppendCBORHead(b, 4, uint64(len(results)))
	for i := range results {
		r := &results[i]
		if r.Error == "" {
			b = append(b, 0xa1, 0x01)
		} else {
			b = append(b, 0xa2, 0x01)
		}
		b = state.AppendCBORHead(b, 2, uint64(len(r.Hash)))
		b = append(b, r.Hash[:]...)
		if r.Error != "" {
			b = append(b, 0x02)
			b = state.AppendCBORHead(b, 3, uint64(len(r.Error)))
			b = append(b, r.Error...)
		}
	}
	return b
}

// Block returns a stored block's bytes and certificate.
func (bs *BlockStore) Block(height uint64) ([]byte, *consensus.Certificate, error) {
	v, err := bs.db.Get(heightKey('b', height))
	if err != nil {
		return nil, nil, err
	}
	if v == nil {
		if height < bs.Base() {
			return nil, nil, ErrBlockPruned
		}
		return nil, nil, ErrBlockNotFound
	}
	c, err := bs.db.Get(heightKey('c', height))
	if err != nil {
		return nil, nil, err
	}
	var cert consensus.Certificate
	if err := state.Unmarshal(c, &cert); err != nil {
		return nil, nil, fmt.Errorf("%w: certificate of block %d: %w", ErrStoreCorrupt, height, err)
	}
	return v, &cert, nil
}

// Results returns the execution results of a stored block (nil if not yet executed).
func (bs *BlockStore) Results(height uint64) ([]StoredResult, error) {
	v, err := bs.db.Get(heightKey('r', height))
	if err != nil || v == nil {
		return nil, err
	}
	var out []StoredResult
	if err := state.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("%w: results of block %d: %w", ErrStoreCorrupt, height, err)
	}
	return out, nil
}

// TxLocation finds where a transaction was committed.
func (bs *BlockStore) TxLocation(h state.Hash) (TxLocation, error) {
	v, err := bs.db.Get(txKey(h))
	if err != nil {
		return TxLocation{}, err
	}
	if v == nil {
		return TxLocation{}, ErrBlockNotFound
	}
	var loc TxLocation
	if err := state.Unmarshal(v, &loc); err != nil {
		return TxLocation{}, fmt.Errorf("%w: location of transaction %s: %w", ErrStoreCorrupt, h, err)
	}
	return loc, nil
}

// EvidenceCommitted reports whether evidence for slot is on chain.
func (bs *BlockStore) EvidenceCommitted(slot consensus.EvidenceSlot) (bool, error) {
	return bs.db.Has(evidenceKey(slot))
}

// Evidence lists committed evidence in the order of the offences (height, view, type,
// validator), at most limit pieces, from blocks up to maxIncluded.
func (bs *BlockStore) Evidence(limit int, maxIncluded uint64) ([]CommittedEvidence, error) {
	end := append(slices.Clone(evidencePrefix[:len(evidencePrefix)-1]), evidencePrefix[len(evidencePrefix)-1]+1)
	it, err := bs.db.Iterator(evidencePrefix, end)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []CommittedEvidence
	for ; it.Valid() && len(out) < limit; it.Next() {
		var ce CommittedEvidence
		if err := state.Unmarshal(it.Value(), &ce); err != nil {
			return nil, fmt.Errorf("%w: evidence: %w", ErrStoreCorrupt, err)
		}
		if ce.Included <= maxIncluded {
			out = append(out, ce)
		}
	}
	return out, it.Error()
}
