package node

// The block store's transaction and account indexes.
//
//	"t/" ‖ tx hash             → TxLocation: where the transaction was committed
//	"h/" ‖ address ‖ ^height   → the indexes in block height of the transactions that touch
//	                             address: ascending, the first as a uvarint, each next one as
//	                             a uvarint of its distance from the one before (at least 1)
//	"m/txindex"                → version ‖ height: both are complete for blocks 1..height
//
// An account entry's height is inverted (bitwise NOT, big-endian), so that the store's ascending
// iteration lists an account's blocks newest first. "Touches" is what the event stream's account
// filter means (txTouches). One account entry per block and account, not per transaction: a
// busy account's transactions in a block cost one key to insert, store and compact, where they
// cost one each (version 1: a load of 2,000-transaction blocks among 64 accounts wrote 4,000
// account keys a block, 64 with this).
//
// Both indexes are written with a block's results, in the same batch (SaveResults): they depend
// on what execution did (a failed transaction names no escrow party), and they are the node's own
// business, so they stay out of the state and its root. A store that has no mark of this version,
// or one behind the executed height (it was written by an older binary), is rebuilt from its
// blocks and results at start (checkIndexes) or by `guild node reindex`.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// indexVersion changes whenever what the indexes hold changes; a store marked with another
// version is reindexed from scratch.
const indexVersion = 2

var (
	keyIndexMark  = []byte("m/txindex")
	txIndexPrefix = []byte("t/")
	accountPrefix = []byte("h/") // after "b/", so the store's lowest keys stay its first blocks (TestDamagedPebbleBlockStore)
	accountKeyLen = len(accountPrefix) + state.AddressLen + 8
)

// A rebuild writes a batch every indexFlushEntries entries or indexFlushBlocks blocks.
const (
	indexFlushEntries = 20000
	indexFlushBlocks  = 512
)

// ErrBadCursor: a history cursor that this node did not hand out.
var ErrBadCursor = errors.New("node: malformed cursor")

type indexMark struct {
	version uint32
	height  uint64
}

func encodeIndexMark(height uint64) []byte {
	v := binary.BigEndian.AppendUint32(nil, indexVersion)
	return binary.BigEndian.AppendUint64(v, height)
}

func (bs *BlockStore) loadIndexMark() error {
	v, err := bs.db.Get(keyIndexMark)
	switch {
	case err != nil:
		return fmt.Errorf("node: block store: %w", err)
	case v == nil && bs.Height() == 0:
		// A new store: indexed from its first block on.
		b := bs.db.NewBatch()
		defer b.Close()
		if err := b.Set(keyIndexMark, encodeIndexMark(0)); err != nil {
			return err
		}
		if err := b.Write(); err != nil {
			return fmt.Errorf("node: block store write: %w", err)
		}
		bs.indexMark.Store(&indexMark{version: indexVersion})
	case v == nil:
		bs.indexMark.Store(nil)
	case len(v) != 12:
		return fmt.Errorf("%w: the block store's index mark", ErrStoreCorrupt)
	default:
		bs.indexMark.Store(&indexMark{version: binary.BigEndian.Uint32(v), height: binary.BigEndian.Uint64(v[4:])})
	}
	return nil
}

// IndexedHeight is the height the indexes are complete up to; ok is false when the store has no
// indexes of this version at all.
func (bs *BlockStore) IndexedHeight() (height uint64, ok bool) {
	m := bs.indexMark.Load()
	if m == nil || m.version != indexVersion {
		return 0, false
	}
	return m.height, true
}

// TxPos is a transaction's place in the chain: block height and index in the block (from 0).
type TxPos struct {
	Height uint64
	Index  uint32
}

// String is the opaque cursor form of a position: 24 hex digits.
func (p TxPos) String() string {
	return fmt.Sprintf("%016x%08x", p.Height, p.Index)
}

// ParseCursor reads a cursor made by TxPos.String.
func ParseCursor(s string) (TxPos, error) {
	var p TxPos
	if len(s) != 24 {
		return p, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	if _, err := fmt.Sscanf(s, "%016x%08x", &p.Height, &p.Index); err != nil || p.Height == 0 || p.String() != s {
		return TxPos{}, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return p, nil
}

func accountBlockKey(a state.Address, height uint64) []byte {
	k := make([]byte, 0, accountKeyLen)
	k = append(k, accountPrefix...)
	k = append(k, a[:]...)
	return binary.BigEndian.AppendUint64(k, ^height)
}

// appendAccountIndexes encodes ascending transaction indexes as an account entry's value.
func appendAccountIndexes(v []byte, idx []uint32) []byte {
	prev := uint32(0)
	for i, x := range idx {
		if i > 0 {
			x -= prev
		}
		v = binary.AppendUvarint(v, uint64(x))
		prev = idx[i]
	}
	return v
}

// decodeAccountIndexes reads an account entry's value: strictly ascending indexes.
func decodeAccountIndexes(v []byte) ([]uint32, error) {
	var out []uint32
	for len(v) > 0 {
		d, n := binary.Uvarint(v)
		if n <= 0 || d > math.MaxUint32 || (len(out) > 0 && d == 0) {
			return nil, fmt.Errorf("%w: account index entry", ErrStoreCorrupt)
		}
		x := d
		if len(out) > 0 {
			x += uint64(out[len(out)-1])
		}
		if x > math.MaxUint32 {
			return nil, fmt.Errorf("%w: account index entry", ErrStoreCorrupt)
		}
		out = append(out, uint32(x))
		v = v[n:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty account index entry", ErrStoreCorrupt)
	}
	return out, nil
}

// prefixEnd is the first key after every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// AccountTxs lists where the transactions touching a were committed, newest first: at most
// limit, at heights up to maxHeight, and strictly older than after unless it is zero (a page
// resumes after the last position of the one before, so blocks added meanwhile shift nothing).
func (bs *BlockStore) AccountTxs(a state.Address, maxHeight uint64, after TxPos, limit int) ([]TxPos, error) {
	if maxHeight == 0 || limit <= 0 {
		return nil, nil
	}
	start := accountBlockKey(a, maxHeight)
	resume := after != (TxPos{}) && after.Height <= maxHeight
	if resume {
		start = accountBlockKey(a, after.Height) // its older transactions, then older blocks
	}
	it, err := bs.db.Iterator(start, prefixEnd(start[:len(accountPrefix)+state.AddressLen]))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []TxPos
	for ; it.Valid() && len(out) < limit; it.Next() {
		k := it.Key()
		if len(k) != accountKeyLen {
			return nil, fmt.Errorf("%w: account index key %x", ErrStoreCorrupt, k)
		}
		height := ^binary.BigEndian.Uint64(k[len(accountPrefix)+state.AddressLen:])
		if height < bs.Earliest() {
			break // pruned blocks: their entries are left in place, and all older ones are too
		}
		idx, err := decodeAccountIndexes(it.Value())
		if err != nil {
			return nil, fmt.Errorf("%w (block %d)", err, height)
		}
		for j := len(idx) - 1; j >= 0 && len(out) < limit; j-- {
			if resume && height == after.Height && idx[j] >= after.Index {
				continue
			}
			out = append(out, TxPos{Height: height, Index: idx[j]})
		}
	}
	return out, it.Error()
}

// indexWriter adds the index entries of blocks to a batch.
type indexWriter struct {
	bs *BlockStore
	b  kv.Batch
	// applied are the transactions applied by blocks already in this batch, which a read of the
	// store does not see yet.
	applied map[state.Hash]struct{}
	// multi is set when the batch takes more than one block (a rebuild): only then is applied
	// kept, as SaveResults' single block finds its own replays among its entries.
	multi   bool
	entries int
}

func (bs *BlockStore) newIndexWriter(b kv.Batch) *indexWriter {
	return &indexWriter{bs: bs, b: b, applied: map[state.Hash]struct{}{}}
}

// block adds the entries of one block, each index's in key order: pebble inserts a batch into
// its memtable in the batch's order, and a key next to the one before is found from where that
// one went instead of from the top of the skiplist (a 2,400-key batch of random keys applied
// ~20 % faster sorted).
func (w *indexWriter) block(height uint64, results []StoredResult, touched [][]state.Address) error {
	if err := w.txs(height, results); err != nil {
		return err
	}
	byAccount := map[state.Address][]uint32{}
	for i, accounts := range touched {
		for _, a := range accounts {
			idx := byAccount[a]
			if len(idx) > 0 && idx[len(idx)-1] == uint32(i) {
				continue // named twice by one transaction
			}
			byAccount[a] = append(idx, uint32(i))
		}
	}
	accounts := make([]state.Address, 0, len(byAccount))
	for a := range byAccount {
		accounts = append(accounts, a)
	}
	slices.SortFunc(accounts, func(x, y state.Address) int { return bytes.Compare(x[:], y[:]) })
	var v []byte
	for _, a := range accounts {
		v = appendAccountIndexes(v[:0], byAccount[a])
		if err := w.b.Set(accountBlockKey(a, height), v); err != nil { // Set copies v
			return err
		}
		w.entries++
	}
	return nil
}

// txs adds the transaction index entries of a block. Where a hash appears more than once (a
// replay, rejected), the entry is the one writing them in block order gave: an applied copy's,
// the last of them; otherwise the last rejected copy's, unless the transaction was applied
// before (earlier in this batch, or in the store), whose location it must not hide.
func (w *indexWriter) txs(height uint64, results []StoredResult) error {
	order := make([]int32, len(results))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		if c := bytes.Compare(results[x].Hash[:], results[y].Hash[:]); c != 0 {
			return c
		}
		return int(x - y)
	})
	key := make([]byte, 0, len(txIndexPrefix)+len(state.Hash{}))
	var loc []byte
	for j := 0; j < len(order); {
		h := results[order[j]].Hash
		pick, applied := order[j], false
		for ; j < len(order) && results[order[j]].Hash == h; j++ {
			if ok := results[order[j]].Error == ""; ok || !applied {
				pick, applied = order[j], ok
			}
		}
		r := results[pick]
		if applied {
			if w.multi {
				w.applied[h] = struct{}{}
			}
		} else {
			if _, ok := w.applied[h]; ok {
				continue
			}
			if prev, err := w.bs.TxLocation(h); err == nil && prev.Error == "" {
				continue
			}
		}
		var err error
		if loc, err = appendTxLocation(loc[:0], TxLocation{Height: height, Index: uint32(pick), Error: r.Error}); err != nil {
			return err
		}
		key = append(append(key[:0], txIndexPrefix...), h[:]...)
		if err := w.b.Set(key, loc); err != nil { // Set copies key and loc
			return err
		}
		w.entries++
	}
	return nil
}

// appendTxLocation appends loc's encoding, state.Marshal's: a location without an error, nearly
// every one, is written by hand (a map of two unsigned integers), the rest by the codec.
func appendTxLocation(b []byte, loc TxLocation) ([]byte, error) {
	if loc.Error != "" {
		enc, err := state.Marshal(loc)
		return append(b, enc...), err
	}
	b = append(b, 0xa2, 0x01)
	b = state.AppendCBORHead(b, 0, loc.Height)
	b = append(b, 0x02)
	return state.AppendCBORHead(b, 0, uint64(loc.Index)), nil
}

// blockTxsOnly reads a stored block's transactions and skips the rest.
type blockTxsOnly struct {
	Txs [][]byte `cbor:"2,keyasint"`
}

// TouchesFunc says which accounts each transaction of a block touched (blockTouches).
type TouchesFunc func(height uint64, txs [][]byte, results []StoredResult) ([][]state.Address, error)

// RebuildIndexes writes the indexes of blocks up to the executed height to: from scratch when
// full is set or the store has none of this version (their entries are deleted first), and
// otherwise for the blocks after the height they are complete up to. progress, if not nil, is
// called after each batch is written. It returns the number of entries written. Only the loop,
// or a tool holding the home's lock, may call it.
func (bs *BlockStore) RebuildIndexes(to uint64, full bool, touches TouchesFunc, progress func(height uint64, entries int)) (int, error) {
	if to > bs.Height() {
		return 0, fmt.Errorf("node: block store: indexing up to height %d, but blocks end at %d", to, bs.Height())
	}
	from, ok := bs.IndexedHeight()
	if full || !ok || from > to {
		if err := bs.dropIndexes(); err != nil {
			return 0, err
		}
		from = 0
	}
	from = max(from, bs.Base()) // nothing below the base is held, nor indexed
	entries := 0
	b := bs.db.NewBatch()
	defer func() { b.Close() }()
	w := bs.newIndexWriter(b)
	w.multi = true
	flush := func(h uint64) error {
		if err := b.Set(keyIndexMark, encodeIndexMark(h)); err != nil {
			return err
		}
		if err := b.Write(); err != nil {
			return fmt.Errorf("node: block store write: %w", err)
		}
		bs.indexMark.Store(&indexMark{version: indexVersion, height: h})
		entries += w.entries
		b.Close()
		b = bs.db.NewBatch()
		w = bs.newIndexWriter(b)
		w.multi = true
		if progress != nil {
			progress(h, entries)
		}
		return nil
	}
	for h := from + 1; h <= to; h++ {
		value, err := bs.db.Get(heightKey('b', h))
		if err != nil {
			return entries, err
		}
		if value == nil {
			return entries, fmt.Errorf("%w: block %d is missing", ErrStoreCorrupt, h)
		}
		var blk blockTxsOnly
		if err := skimMode.Unmarshal(value, &blk); err != nil {
			return entries, fmt.Errorf("%w: block %d: %w", ErrStoreCorrupt, h, err)
		}
		results, err := bs.Results(h)
		if err != nil {
			return entries, err
		}
		if results == nil && len(blk.Txs) > 0 {
			return entries, fmt.Errorf("%w: block %d has no recorded results", ErrStoreCorrupt, h)
		}
		t, err := touches(h, blk.Txs, results)
		if err != nil {
			return entries, err
		}
		if err := w.block(h, results, t); err != nil {
			return entries, err
		}
		if w.entries >= indexFlushEntries || (h-from)%indexFlushBlocks == 0 || h == to {
			if err := flush(h); err != nil {
				return entries, err
			}
		}
	}
	if from == to && (full || !ok) {
		return entries, flush(to) // nothing to index: mark the (empty) indexes as complete
	}
	return entries, nil
}

// dropIndexes deletes the mark, then every index entry, then marks the indexes empty. An
// interruption leaves no mark, so the next rebuild starts from scratch again.
func (bs *BlockStore) dropIndexes() error {
	b := bs.db.NewBatch()
	defer b.Close()
	if err := b.Delete(keyIndexMark); err != nil {
		return err
	}
	if err := b.Write(); err != nil {
		return fmt.Errorf("node: block store write: %w", err)
	}
	bs.indexMark.Store(nil)
	for _, prefix := range [][]byte{txIndexPrefix, accountPrefix} {
		if err := bs.deletePrefix(prefix); err != nil {
			return err
		}
	}
	return nil
}

func (bs *BlockStore) deletePrefix(prefix []byte) error {
	for {
		it, err := bs.db.Iterator(prefix, prefixEnd(prefix))
		if err != nil {
			return err
		}
		b := bs.db.NewBatch()
		n := 0
		for ; it.Valid() && n < indexFlushEntries; it.Next() {
			if err := b.Delete(bytes.Clone(it.Key())); err != nil {
				break
			}
			n++
		}
		err = errors.Join(it.Error(), it.Close())
		if err == nil && n > 0 {
			err = b.Write()
		}
		b.Close()
		if err != nil {
			return fmt.Errorf("node: block store: clearing the indexes: %w", err)
		}
		if n < indexFlushEntries {
			return nil
		}
	}
}

// StoredHeader is a stored block's header, hash and counts, read without its transactions.
type StoredHeader struct {
	Hash     consensus.Digest
	Header   Header
	Txs      int
	Evidence int
}

// blockHeaderOnly reads a block's header and counts its transactions and evidence.
type blockHeaderOnly struct {
	Header   Header    `cbor:"1,keyasint"`
	Txs      cborCount `cbor:"2,keyasint"`
	Evidence cborCount `cbor:"3,keyasint,omitempty"`
}

// cborHead reads the head of a CBOR data item: its major type, its argument (a length or count)
// and the head's size. Only definite lengths: the canonical encoding has no others.
func cborHead(data []byte) (major byte, arg uint64, size int, err error) {
	if len(data) == 0 {
		return 0, 0, 0, errors.New("node: CBOR item missing")
	}
	major, info := data[0]>>5, data[0]&0x1f
	if info < 24 {
		return major, uint64(info), 1, nil
	}
	if info > 27 {
		return 0, 0, 0, errors.New("node: CBOR item of indefinite or reserved length")
	}
	n := 1 << (info - 24) // 1, 2, 4 or 8 bytes of argument
	if len(data) < 1+n {
		return 0, 0, 0, errors.New("node: CBOR head truncated")
	}
	for _, b := range data[1 : 1+n] {
		arg = arg<<8 | uint64(b)
	}
	return major, arg, 1 + n, nil
}

// cborCount decodes a CBOR array as its length, without decoding the elements.
type cborCount int

func (c *cborCount) UnmarshalCBOR(data []byte) error {
	major, n, _, err := cborHead(data)
	switch {
	case err != nil:
		return err
	case major != 4:
		return errors.New("node: not a CBOR array")
	case n > math.MaxInt32:
		return errors.New("node: CBOR array too long")
	}
	*c = cborCount(n)
	return nil
}

// txPicker decodes a block's array of transactions, keeping only those whose index is in want:
// a page of history needs a few transactions of a block that may hold tens of thousands.
type txPicker struct {
	want  map[uint32]bool
	count int
	got   map[uint32][]byte
}

func (p *txPicker) UnmarshalCBOR(data []byte) error {
	major, n, off, err := cborHead(data)
	if err != nil || major != 4 || n > MaxBlockTxsLimit {
		return fmt.Errorf("node: a block's transactions: not an array of at most %d (%v)", MaxBlockTxsLimit, err)
	}
	p.count, p.got = int(n), make(map[uint32][]byte, len(p.want))
	for i := uint32(0); i < uint32(n); i++ {
		major, l, size, err := cborHead(data[off:])
		if err != nil || major != 2 || l > uint64(len(data)-off-size) {
			return fmt.Errorf("node: transaction %d of a block: not a byte string (%v)", i, err)
		}
		off += size
		if p.want[i] {
			p.got[i] = bytes.Clone(data[off : off+int(l)])
		}
		off += int(l)
	}
	return nil
}

// BlockTxs reads the time of stored block height, its number of transactions, and those of
// them at the indexes in want, without decoding the others.
func (bs *BlockStore) BlockTxs(height uint64, want []uint32) (timeMs int64, count int, txs map[uint32][]byte, err error) {
	value, err := bs.db.Get(heightKey('b', height))
	if err != nil {
		return 0, 0, nil, err
	}
	if value == nil {
		return 0, 0, nil, ErrBlockNotFound
	}
	skim := struct {
		Header Header   `cbor:"1,keyasint"`
		Txs    txPicker `cbor:"2,keyasint"`
	}{Txs: txPicker{want: make(map[uint32]bool, len(want))}}
	for _, i := range want {
		skim.Txs.want[i] = true
	}
	if err := skimMode.Unmarshal(value, &skim); err != nil {
		return 0, 0, nil, fmt.Errorf("%w: block %d: %w", ErrStoreCorrupt, height, err)
	}
	return skim.Header.Time, skim.Txs.count, skim.Txs.got, nil
}

// Header reads a stored block's header; its hash is the digest its certificate signed.
func (bs *BlockStore) Header(height uint64) (StoredHeader, error) {
	value, cert, err := bs.Block(height)
	if err != nil {
		return StoredHeader{}, err
	}
	var skim blockHeaderOnly
	if err := skimMode.Unmarshal(value, &skim); err != nil {
		return StoredHeader{}, fmt.Errorf("%w: header of block %d: %w", ErrStoreCorrupt, height, err)
	}
	return StoredHeader{Hash: cert.Digest, Header: skim.Header, Txs: int(skim.Txs), Evidence: int(skim.Evidence)}, nil
}

// checkIndexes rebuilds the block store's indexes at start when they are missing (a store from
// before them) or behind the executed blocks (an older binary ran on it), so that history is
// never silently incomplete. It runs before the node serves anything.
func (n *Node) checkIndexes() error {
	to := n.st.Height()
	at, ok := n.blocks.IndexedHeight()
	if ok && at == to {
		return nil
	}
	if ok && at > to && at <= n.blocks.Height() {
		// A crash between the two writes of a sync run (syncrun.go) left the run's blocks,
		// results and indexes stored, the state not: recover executes those blocks again and
		// writes the same entries.
		return nil
	}
	why := "the block store has no transaction and account indexes (it predates them)"
	if ok {
		why = fmt.Sprintf("the indexes end at height %d, before the executed blocks (%d)", at, to)
	}
	n.log.Warn("rebuilding the block store's indexes before starting; this takes a while on a long chain "+
		"(`guild node reindex` does the same with the node stopped)", "why", why, "blocks", to)
	entries, err := n.blocks.RebuildIndexes(to, false, n.touchesFunc(), func(h uint64, entries int) {
		n.log.Info("reindexing", "height", h, "of", to, "entries", entries)
	})
	if err != nil {
		return fmt.Errorf("node: rebuilding the indexes: %w", err)
	}
	n.log.Warn("block store indexes rebuilt", "height", to, "entries", entries)
	return nil
}

func (n *Node) touchesFunc() TouchesFunc {
	return func(h uint64, txs [][]byte, results []StoredResult) ([][]state.Address, error) {
		return blockTouches(n.st, h, txs, nil, results)
	}
}
