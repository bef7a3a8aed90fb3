package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/state/kv"
	"github.com/guild-ledger/guild/state/merkle"
)

// State snapshots (issue 13).
//
// A snapshot is every state entry under one root, in the order of the state tree (by key hash:
// the order a walk of the tree gives), cut into chunks of about ChunkBytes each:
//
//	chunk = entry*    entry = uvarint(len key) ‖ key ‖ uvarint(len value) ‖ value
//
// The manifest names the chain, the height and root, and the SHA-256 of every chunk. The walk
// reads the tree, whose nodes are never overwritten, so a snapshot of a past root can be taken
// while blocks are applied, and two honest nodes cut the same root into the same chunks: the
// manifest is a function of (root, format, chunk size), and peers offering the same manifest
// can serve each other's chunks.
//
// Tree order rather than key order is what makes restoring cheap: each chunk covers a contiguous
// range of key hashes, so adding chunks one by one to the tree rewrites only the right edge of
// what is built, not paths all over it.

// SnapshotFormat is the version of the chunk and manifest encoding above.
const SnapshotFormat = 1

const (
	// DefaultSnapshotChunkBytes is the size a chunk is cut at (it ends after the entry that
	// reaches it).
	DefaultSnapshotChunkBytes = 4 << 20
	// MaxSnapshotChunkBytes bounds one chunk as a restorer accepts it.
	MaxSnapshotChunkBytes = 16 << 20
	// MaxSnapshotChunks bounds a manifest's chunks (the decoder's array limit).
	MaxSnapshotChunks = maxArrayElements
	// maxSnapshotEntry bounds one entry's key or value in a chunk.
	maxSnapshotEntry = 8 << 20
)

var (
	// ErrSnapshot is a manifest or chunk that is malformed or does not match what it claims.
	ErrSnapshot = errors.New("state: invalid snapshot")
	// ErrSnapshotRoot is a complete snapshot whose entries do not make the manifest's root.
	ErrSnapshotRoot = errors.New("state: snapshot entries do not make the certified state root")
	// ErrRestoreTarget is a store that cannot be restored into: it already holds state.
	ErrRestoreTarget = errors.New("state: the store to restore into is not empty")
)

// SnapshotManifest describes one snapshot.
type SnapshotManifest struct {
	Format  uint32 `cbor:"1,keyasint"`
	ChainID string `cbor:"2,keyasint"`
	// Height is the last block applied to the state; Root is the state root after it, which the
	// header of block Height+1 carries.
	Height uint64 `cbor:"3,keyasint"`
	Root   Hash   `cbor:"4,keyasint"`
	// Entries and Bytes count the state entries and the chunks' total size.
	Entries uint64 `cbor:"5,keyasint"`
	Bytes   uint64 `cbor:"6,keyasint"`
	Chunks  []Hash `cbor:"7,keyasint"`
}

// Hash identifies the manifest (and so the snapshot): peers offering the same hash hold the same
// chunks.
func (m *SnapshotManifest) Hash() (Hash, error) {
	b, err := Marshal(m)
	if err != nil {
		return Hash{}, err
	}
	return sha256.Sum256(b), nil
}

// Check refuses a manifest for another chain or format, or one whose shape is impossible.
func (m *SnapshotManifest) Check(chainID string) error {
	switch {
	case m.Format != SnapshotFormat:
		return fmt.Errorf("%w: format %d, this node reads %d", ErrSnapshot, m.Format, SnapshotFormat)
	case m.ChainID != chainID:
		return fmt.Errorf("%w: %w: manifest of chain %q, this chain is %q", ErrSnapshot, ErrWrongChain, m.ChainID, chainID)
	case m.Root == (Hash{}) || len(m.Chunks) == 0:
		return fmt.Errorf("%w: an empty state", ErrSnapshot)
	case len(m.Chunks) > MaxSnapshotChunks:
		return fmt.Errorf("%w: %d chunks, at most %d", ErrSnapshot, len(m.Chunks), MaxSnapshotChunks)
	case m.Entries < uint64(len(m.Chunks)):
		return fmt.Errorf("%w: %d entries in %d chunks", ErrSnapshot, m.Entries, len(m.Chunks))
	}
	return nil
}

// DecodeSnapshotManifest decodes and checks a manifest received from a peer.
func DecodeSnapshotManifest(b []byte, chainID string) (*SnapshotManifest, error) {
	var m SnapshotManifest
	if err := Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrSnapshot, err)
	}
	if err := m.Check(chainID); err != nil {
		return nil, err
	}
	return &m, nil
}

// WriteSnapshot walks the state tree of root, after block height (any root this store has held
// from TreeEarliest on: before it, ErrPruned), and hands emit each chunk of about chunkBytes, in
// order; it returns the manifest of height's snapshot. emit owns the chunk it is given. Safe to
// run while blocks are applied.
func (s *State) WriteSnapshot(height uint64, root Hash, chunkBytes int, emit func(i int, chunk []byte) error) (*SnapshotManifest, error) {
	if chunkBytes <= 0 || chunkBytes > MaxSnapshotChunkBytes/2 {
		return nil, fmt.Errorf("%w: chunk size %d", ErrSnapshot, chunkBytes)
	}
	if root == (Hash{}) {
		return nil, fmt.Errorf("%w: no state to snapshot", ErrSnapshot)
	}
	m := &SnapshotManifest{Format: SnapshotFormat, ChainID: s.chainID, Height: height, Root: root}
	buf := make([]byte, 0, chunkBytes+4096)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		c := bytes.Clone(buf)
		m.Chunks = append(m.Chunks, sha256.Sum256(c))
		m.Bytes += uint64(len(c))
		if len(m.Chunks) > MaxSnapshotChunks {
			return fmt.Errorf("%w: more than %d chunks: raise the chunk size", ErrSnapshot, MaxSnapshotChunks)
		}
		buf = buf[:0]
		return emit(len(m.Chunks)-1, c)
	}
	if e := s.earliest.Load(); height < e {
		return nil, prunedError(height, e)
	}
	r, err := s.tree.rootRef(root)
	if err == nil {
		err = s.tree.walk(r, nil, 0, 0, func(key, value []byte) error {
			if len(key) > maxSnapshotEntry || len(value) > maxSnapshotEntry {
				return fmt.Errorf("%w: entry of %d+%d bytes", ErrSnapshot, len(key), len(value))
			}
			buf = binary.AppendUvarint(buf, uint64(len(key)))
			buf = append(buf, key...)
			buf = binary.AppendUvarint(buf, uint64(len(value)))
			buf = append(buf, value...)
			m.Entries++
			if len(buf) >= chunkBytes {
				return flush()
			}
			return nil
		})
	}
	if err != nil {
		// A prune that started after the check may have deleted what the walk was reading.
		if e := s.earliest.Load(); height < e {
			return nil, prunedError(height, e)
		}
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return m, nil
}

// walk calls fn with the key and value of every leaf under r, left to right (by key hash). The
// slices are valid only during the call. Unless depth starts a group, r is in group g at slot.
func (t *tree) walk(r ref, g *group, slot, depth int, fn func(key, value []byte) error) error {
	switch r.kind {
	case kindEmpty:
		return nil
	case kindLeaf:
		raw, err := t.db.Get(nodeKey(r.ver, r.h))
		if err != nil {
			return fmt.Errorf("state: reading tree leaf %s: %w", r.h, err)
		}
		if raw == nil {
			return fmt.Errorf("%w: tree leaf %s is missing", ErrCorrupt, r.h)
		}
		_, key, value, err := decodeLeaf(r.h, raw)
		if err != nil {
			return err
		}
		return fn(key, value)
	}
	if depth >= merkle.MaxDepth {
		return fmt.Errorf("%w: the state tree is deeper than %d", ErrCorrupt, merkle.MaxDepth)
	}
	if depth%groupLevels == 0 {
		var err error
		if g, err = t.loadGroup(r); err != nil {
			return err
		}
		slot = 0
	}
	n := g.node(slot)
	if err := t.walk(n.child[0], g, 2*slot+1, depth+1, fn); err != nil {
		return err
	}
	return t.walk(n.child[1], g, 2*slot+2, depth+1, fn)
}

// VerifySnapshotChunk checks chunk i against the manifest's hash of it.
func VerifySnapshotChunk(m *SnapshotManifest, i int, chunk []byte) error {
	if i < 0 || i >= len(m.Chunks) {
		return fmt.Errorf("%w: chunk %d of %d", ErrSnapshot, i, len(m.Chunks))
	}
	if len(chunk) == 0 || len(chunk) > MaxSnapshotChunkBytes {
		return fmt.Errorf("%w: chunk %d of %d bytes", ErrSnapshot, i, len(chunk))
	}
	if sha256.Sum256(chunk) != m.Chunks[i] {
		return fmt.Errorf("%w: chunk %d does not match the manifest's hash", ErrSnapshot, i)
	}
	return nil
}

// Restorer writes a snapshot into an empty store, chunk by chunk in order, and makes it a state
// only once the entries are complete and their tree's root is the manifest's (Finish). Until
// then the store holds no height or root, so Open sees no state in it; a store left by an
// interrupted restore is emptied with ClearStore.
type Restorer struct {
	db      kv.Store
	tree    *tree
	m       *SnapshotManifest
	next    int
	root    Hash
	lastKH  Hash
	entries uint64
}

// NewRestorer starts restoring the snapshot m (checked by the caller against a certified header)
// into db, which must hold no state.
func NewRestorer(db kv.Store, m *SnapshotManifest) (*Restorer, error) {
	if err := m.Check(m.ChainID); err != nil {
		return nil, err
	}
	s := &State{db: db}
	for _, prefix := range []string{accountPrefix, recordPrefix, treePrefix, "m/"} {
		empty, err := s.prefixEmpty(prefix)
		if err != nil {
			return nil, err
		}
		if !empty {
			return nil, fmt.Errorf("%w: it holds %q keys", ErrRestoreTarget, prefix)
		}
	}
	return &Restorer{db: db, tree: &tree{db: db, cache: newNodeCache()}, m: m}, nil
}

// Next is the index of the chunk Add expects.
func (r *Restorer) Next() int { return r.next }

// Add verifies chunk Next() against the manifest and writes its entries and their tree nodes.
// A chunk that fails is refused with ErrSnapshot and changes nothing.
func (r *Restorer) Add(chunk []byte) error {
	i := r.next
	if err := VerifySnapshotChunk(r.m, i, chunk); err != nil {
		return err
	}
	// The hash matched, so the bytes are what the manifest's author cut; what they mean is
	// checked anyway, since only the root at the end is certified.
	ws := newWriteSet(0)
	last := r.lastKH
	first := r.next == 0
	for rest := chunk; len(rest) > 0; {
		key, n := readSnapshotField(rest)
		if n <= 0 {
			return fmt.Errorf("%w: chunk %d: bad entry key", ErrSnapshot, i)
		}
		rest = rest[n:]
		value, n := readSnapshotField(rest)
		if n <= 0 {
			return fmt.Errorf("%w: chunk %d: bad entry value", ErrSnapshot, i)
		}
		rest = rest[n:]
		if !bytes.HasPrefix(key, []byte(accountPrefix)) && !bytes.HasPrefix(key, []byte(recordPrefix)) {
			return fmt.Errorf("%w: chunk %d: key %q is not a state entry", ErrSnapshot, i, key)
		}
		kh := merkle.KeyHash(key)
		if !first && bytes.Compare(kh[:], last[:]) <= 0 {
			return fmt.Errorf("%w: chunk %d: entries out of tree order", ErrSnapshot, i)
		}
		first, last = false, kh
		ws.entries = append(ws.entries, writeEntry{key: key, value: value})
	}
	if len(ws.entries) == 0 {
		return fmt.Errorf("%w: chunk %d holds no entry", ErrSnapshot, i)
	}
	root, tw, err := r.tree.update(r.root, r.m.Height, ws)
	if err != nil {
		return err
	}
	b := kv.NewBatchSized(r.db, batchSize(ws, tw))
	defer b.Close()
	for _, e := range ws.entries {
		if err := b.Set(e.key, e.value); err != nil {
			return fmt.Errorf("state: restoring chunk %d: %w", i, err)
		}
	}
	// A chunk's records share the snapshot's version and interleave with other chunks': no run to
	// ingest.
	if err := tw.stage(b, uint64(i+1)<<32, true); err != nil {
		return fmt.Errorf("state: restoring chunk %d: %w", i, err)
	}
	if err := r.tree.writeAndCache(b, tw, false, false); err != nil {
		return fmt.Errorf("state: restoring chunk %d: %w", i, err)
	}
	r.root, r.lastKH, r.entries = root, last, r.entries+uint64(len(ws.entries))
	r.next++
	return nil
}

// readSnapshotField reads uvarint(len) ‖ bytes, returning the bytes and the length read.
func readSnapshotField(b []byte) ([]byte, int) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > maxSnapshotEntry || uint64(len(b)-n) < l {
		return nil, 0
	}
	return b[n : n+int(l)], n + int(l)
}

// Finish checks that every chunk was added and that the entries make the manifest's root, and
// only then writes the chain ID, height, root and time (of block Height, unix milliseconds) that
// make the store a state at that height, with block Height's results (checked by the caller
// against the receipts root that block Height+1 certifies), which the next header's receipts
// root is judged by. On ErrSnapshotRoot the store holds unverified entries: ClearStore it.
func (r *Restorer) Finish(timeMs int64, results []TxResult) error {
	if r.next != len(r.m.Chunks) {
		return fmt.Errorf("%w: %d of %d chunks added", ErrSnapshot, r.next, len(r.m.Chunks))
	}
	if r.root != r.m.Root {
		return fmt.Errorf("%w: got %s, want %s", ErrSnapshotRoot, r.root, r.m.Root)
	}
	if r.entries != r.m.Entries {
		return fmt.Errorf("%w: %d entries, the manifest says %d", ErrSnapshot, r.entries, r.m.Entries)
	}
	s := &State{db: r.db, chainID: r.m.ChainID, tree: r.tree, cache: newAccountCache()}
	chain, err := Marshal(r.m.ChainID)
	if err != nil {
		return err
	}
	res := &BlockResult{Height: r.m.Height, Root: r.root, Results: results}
	last, err := encodeLastResults(res)
	if err != nil {
		return err
	}
	receipts := merkle.ReceiptsRoot(ReceiptLeaves(results))
	// The store holds no tree before the snapshot's: proofs before it are refused as pruned.
	earliest := binary.BigEndian.AppendUint64(nil, r.m.Height)
	return s.commit(newWriteSet(0), newTreeWrites(0, r.m.Height), r.m.Height, timeMs, r.root, receipts, nil,
		keyChainID, chain, keyLastResults, last, keyTreePruned, earliest)
}

// ClearStore deletes every state entry, tree node and bookkeeping key from db: what an
// interrupted or refused restore left.
func ClearStore(db kv.Store) error {
	for _, prefix := range []string{accountPrefix, recordPrefix, treePrefix, "m/"} {
		end := []byte(prefix)
		end[len(end)-1]++
		for {
			it, err := db.Iterator([]byte(prefix), end)
			if err != nil {
				return fmt.Errorf("state: clearing %q: %w", prefix, err)
			}
			b := db.NewBatch()
			n := 0
			for ; it.Valid() && n < 10000; it.Next() {
				if err := b.Delete(bytes.Clone(it.Key())); err != nil {
					it.Close()
					b.Close()
					return err
				}
				n++
			}
			err = it.Error()
			it.Close()
			if err == nil && n > 0 {
				err = b.Write()
			}
			b.Close()
			if err != nil {
				return fmt.Errorf("state: clearing %q: %w", prefix, err)
			}
			if n < 10000 {
				break
			}
		}
	}
	return nil
}
