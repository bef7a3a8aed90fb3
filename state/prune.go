package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/state/kv"
	"github.com/guild-ledger/guild/state/merkle"
)

// Pruning the state tree (issue 12): every block writes, in its own batch, the stale index of
// the records it dropped from the tree (tree.go), and PruneTree deletes those that blocks up to
// a height dropped, which no tree from that height on names. The latest tree is never touched.

// ErrPruned: a proof or snapshot was asked at a height whose state tree was pruned.
var ErrPruned = errors.New("state: pruned")

// pruneBatchRecords bounds the records one batch of a prune deletes: a prune of many blocks'
// records is many small batches, never one that holds the store up.
const pruneBatchRecords = 4096

// pruneMaxVersions bounds the versions one prune reads the index of (a seek each), for a node
// that turns pruning on with a long history.
const pruneMaxVersions = 4096

var keyTreePruned = []byte{treePrefix[0], treePrefix[1], treePrunedTag}

// readTreeEarliest is the earliest height whose tree a store holds whole (0: never pruned).
func readTreeEarliest(db kv.Store) (uint64, error) {
	raw, err := db.Get(keyTreePruned)
	if err != nil {
		return 0, fmt.Errorf("state: reading the pruned height: %w", err)
	}
	if raw == nil {
		return 0, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("%w: pruned height of %d bytes", ErrCorrupt, len(raw))
	}
	return binary.BigEndian.Uint64(raw), nil
}

// TreeEarliest is the earliest height whose state tree the store holds whole: proofs and
// snapshots after an earlier block fail with ErrPruned. 0 until the tree is first pruned.
func (s *State) TreeEarliest() uint64 { return s.earliest.Load() }

// TreeDropped is how many records (groups, leaves and roots) the last block applied dropped
// from the state tree, which a prune deletes once that block is pruned: what pruning must keep
// up with.
func (s *State) TreeDropped() int { return int(s.dropped.Load()) }

// prunedError is ErrPruned for height, naming the earliest height that can be proven.
func prunedError(height, earliest uint64) error {
	return fmt.Errorf("%w: the state tree after block %d was pruned; earliest provable height is %d", ErrPruned, height, earliest)
}

// ProveAt is Prove of the state after block height, whose root is root: ErrPruned if that
// tree was pruned, even while a prune runs beside the proof.
func (s *State) ProveAt(height uint64, root Hash, key []byte) (*merkle.StateProof, error) {
	if e := s.earliest.Load(); height < e {
		return nil, prunedError(height, e)
	}
	p, err := s.Prove(root, key)
	if err != nil {
		// A prune that started after the check may have deleted what the proof was reading.
		if e := s.earliest.Load(); height < e {
			return nil, prunedError(height, e)
		}
		return nil, err
	}
	return p, nil
}

// PruneTree deletes the tree records that only the trees after blocks before below name (below
// is capped at the latest height, whose tree is never touched), at most budget of them (each
// record, and each root record, counts one) in batches of a few thousand, and returns how many
// it deleted. Call it again (with the same or a higher below) to go on: what is left of a
// block's index is kept with each batch, so a crash, or an error, loses no progress but that of
// the batch it stops, and a later call deletes the rest. Every tree from TreeEarliest() on stays
// whole; TreeEarliest() reaches below once everything before it is deleted.
func (s *State) PruneTree(below uint64, budget int) (int, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.halted != nil {
		return 0, s.halted
	}
	t := s.tip.Load()
	if !t.initialised || budget <= 0 {
		return 0, nil
	}
	below = min(below, t.height)
	from := s.earliest.Load()
	if below <= from {
		return 0, nil
	}
	return pruneTree(s.db, from, below, budget, pruneBatchRecords, func(e uint64) { s.earliest.Store(e) })
}

type staleIndex struct {
	key  []byte
	ver  uint64
	list []byte
}

// pruneTree is PruneTree's work on db, whose trees from height from on are whole, in batches of
// batch records. It calls raise with the new earliest whole height before each batch lands, so
// that a reader never trusts a tree being deleted.
func pruneTree(db kv.Store, from, below uint64, budget, batch int, raise func(uint64)) (int, error) {
	// Every index before from's is gone (a prune moves the earliest height past a block only
	// once its index is deleted): start there. Each version's index is after its records, so
	// each is sought on its own.
	var (
		todo    []staleIndex
		entries int
		next    = from // the first version not read
	)
	for ; next <= below && entries < budget && next-from < pruneMaxVersions; next++ {
		it, err := db.Iterator(staleKey(next, 0), appendNodeKey(nil, next+1, Hash{})[:len(treePrefix)+1+8])
		if err != nil {
			return 0, fmt.Errorf("state: reading the stale index: %w", err)
		}
		for ; it.Valid(); it.Next() {
			k, v := it.Key(), it.Value()
			if len(k) != staleKeyLen || len(v)%staleLen != 0 {
				_ = it.Close()
				return 0, fmt.Errorf("%w: stale index %x", ErrCorrupt, k)
			}
			todo = append(todo, staleIndex{key: bytes.Clone(k), ver: next, list: bytes.Clone(v)})
			entries += len(v) / staleLen
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("state: reading the stale index: %w", err)
		}
	}

	var (
		err     error
		deleted int
		b       kv.Batch
		inBatch int
		mark    = from // the earliest whole height once the batch lands
	)
	defer func() {
		if b != nil {
			_ = b.Close()
		}
	}()
	flush := func() error {
		if b == nil {
			return nil
		}
		var eb [8]byte
		binary.BigEndian.PutUint64(eb[:], mark)
		if err := b.Set(keyTreePruned, eb[:]); err != nil {
			return err
		}
		raise(mark)
		// Lost in a crash, a prune batch is done again: it need not wait for the disk.
		err := b.WriteNoSync()
		_ = b.Close()
		b, inBatch = nil, 0
		return err
	}
	for i := range todo {
		x := &todo[i]
		// Every index before x's is deleted, and x's records are in no tree from x.ver on.
		mark = max(mark, x.ver)
		for off := 0; off < len(x.list); off += staleLen {
			if deleted == budget {
				// Out of budget: keep what is left of x's index for the next call.
				if b == nil {
					b = db.NewBatch()
				}
				if err := b.Set(x.key, x.list[off:]); err != nil {
					return deleted, err
				}
				return deleted, flush()
			}
			if b == nil {
				b = db.NewBatch()
			}
			e := x.list[off : off+staleLen]
			switch e[0] {
			case staleRecord:
				var h Hash
				copy(h[:], e[9:])
				err = b.Delete(nodeKey(binary.BigEndian.Uint64(e[1:9]), h))
			case staleRoot:
				// The root may have come back since, with a record of a later version: keep it then.
				var h Hash
				copy(h[:], e[1:33])
				k := rootKey(h)
				var cur []byte
				if cur, err = db.Get(k); err == nil && len(cur) == 8 && string(cur) == string(e[33:]) {
					err = b.Delete(k)
				}
			default:
				err = fmt.Errorf("%w: stale index %x: entry of kind %d", ErrCorrupt, x.key, e[0])
			}
			if err != nil {
				return deleted, fmt.Errorf("state: pruning the state tree: %w", err)
			}
			deleted++
			inBatch++
			if inBatch == batch {
				rest := x.list[off+staleLen:]
				if len(rest) == 0 {
					err = b.Delete(x.key)
				} else {
					err = b.Set(x.key, rest)
				}
				if err == nil {
					err = flush()
				}
				if err != nil {
					return deleted, fmt.Errorf("state: pruning the state tree: %w", err)
				}
			}
		}
		if b == nil {
			b = db.NewBatch()
		}
		if err := b.Delete(x.key); err != nil {
			return deleted, fmt.Errorf("state: pruning the state tree: %w", err)
		}
	}
	// Every index of the versions read is deleted: the trees from the last one on are whole.
	if next-1 > mark {
		mark = next - 1
		if b == nil {
			b = db.NewBatch()
		}
	}
	if err := flush(); err != nil {
		return deleted, fmt.Errorf("state: pruning the state tree: %w", err)
	}
	return deleted, nil
}
