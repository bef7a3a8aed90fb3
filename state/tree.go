package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/guild-ledger/guild/state/kv"
	"github.com/guild-ledger/guild/state/merkle"
)

// The state tree (see package merkle for its hashing) is kept in the state store under "t/",
// written in the same batch as the block's state (a large block's records and stale index just
// before it, as a table the store ingests: see writeAndCache). The binary tree is stored in
// groups of groupLevels levels: a group is an internal node at a depth that is a multiple of
// groupLevels with the internal nodes below it down to, not including, the next such depth (the
// Jellyfish Merkle Tree's layout). Each group, and each leaf, is one record, stored under the version (the
// block height) that wrote it and its hash, and its parent names both:
//
//	t/v ‖ be64(version) ‖ hash  group: 0x02 ‖ the group's root, where a node is
//	                                   kinds ‖ left child ‖ right child   kinds: bits 0-1 the left
//	                                   child's (0 empty, 1 leaf, 2 internal), bits 2-3 the right's;
//	                                   a leaf child is key hash ‖ hash ‖ uvarint(version), an
//	                                   internal child in the group is that node (in preorder),
//	                                   one below the group is hash ‖ uvarint(version)
//	                            leaf:  0x03 ‖ uvarint(len key) ‖ key ‖ value
//	t/r ‖ hash                  a root: be64(its version)
//
// A group does not store the hashes of its own internal nodes: reading it computes them, which
// also checks the record against its hash. A block that changes a key writes about a quarter of
// the records a node each would (issue 12: the records, each a key to sort, store, cache and
// compact, were most of a block's cost), with the same hashes, roots and proofs.
//
// The version comes first so that a block's new records are one run of keys after every older
// one: an LSM store (pebble, goleveldb) then moves them down its levels without merging them
// into older files, where records keyed by hash alone, scattered over the whole key space, were
// rewritten again and again by compactions. For that, no key may sort after the records: the
// roots' keys, random, come before them ("t/r" < "t/v"), as do the state's own entries; a random
// key after them would put every new run inside the key range of an older file, and a compaction
// would rewrite that file each block. The kinds, the key hashes of leaf children and the versions
// are not hashed: they let an update find a key's leaf from its group alone, and read a child
// without an index. A leaf keeps its key and value so that a proof at any past height can be
// answered from the tree alone. Records are never overwritten; they are deleted only by pruning
// (prune.go), which a block's stale index makes possible:
//
//	t/v ‖ be64(version) ‖ 0xff×32 ‖ be64(part)  the records block version dropped from the
//	                            tree, up to 256 a part, each 'v' ‖ be64(its version) ‖ hash,
//	                            or 'r' ‖ root ‖ be64(its version) for the root record of the
//	                            tree before it
//	t/p                         be64(the earliest height whose tree is complete)
//
// The index sorts after the block's records (a longer key than any hash's), so that it is in the
// block's run of keys, as the layout above wants of everything a block adds to the tree.
//
// A record is named by its version and hash, not its hash alone: one subtree made again is a
// new record at the new version, and a record once dropped is never named again (a tree names
// only its predecessor's records and its own new ones), so what a block drops is needed only by
// the trees before it.
const treePrefix = "t/"

const (
	treePrunedTag = 'p' // these two before treeNodeTag: see above
	treeRootTag   = 'r'
	treeNodeTag   = 'v'
)

// groupLevels is how many levels of the binary tree a group holds: 4, a record per 16 slots
// at the group's foot, as the Jellyfish Merkle Tree has.
const groupLevels = 4

// groupSlots is the most internal nodes a group holds: slot 0 is its root, and the children
// of slot s are slots 2s+1 (left) and 2s+2 (right).
const groupSlots = 1<<groupLevels - 1

// Record tags: the first byte of a record.
const (
	oldLeafTag  = 0 // the layouts before groups: refused (see checkTreeLayout)
	oldInnerTag = 1
	groupTag    = 2
	leafTag     = 3
)

// nodeKey is the store key of record h written at version ver.
func nodeKey(ver uint64, h Hash) []byte {
	k := make([]byte, 0, len(treePrefix)+1+8+len(h))
	return appendNodeKey(k, ver, h)
}

func appendNodeKey(b []byte, ver uint64, h Hash) []byte {
	b = append(b, treePrefix...)
	b = append(b, treeNodeTag)
	b = binary.BigEndian.AppendUint64(b, ver)
	return append(b, h[:]...)
}

// rootKey is the store key of root h's version.
func rootKey(h Hash) []byte {
	k := make([]byte, 0, len(treePrefix)+1+len(h))
	k = append(k, treePrefix...)
	k = append(k, treeRootTag)
	return append(k, h[:]...)
}

// Node kinds of a tree reference (two bits in a group record).
const (
	kindEmpty = iota
	kindLeaf
	kindInternal
)

// ref is a child as its parent knows it: its hash, kind, version (of its record: a leaf's, or
// a group root's) and, for a leaf, its key hash.
type ref struct {
	h    Hash
	kh   Hash
	ver  uint64
	kind uint8
	// cid, for a group's root, is where the cache may hold the group (nodeCache.find): not
	// stored, not hashed, and checked against h when used (in the room the fields above leave).
	cid uint32
}

// inner is an internal node.
type inner struct {
	child [2]ref
}

// group is a decoded group: its internal nodes, by slot. Most groups, near the foot of the
// tree, hold a few nodes of their 15 slots: they keep only those (the cache holds hundreds of
// thousands of groups).
type group struct {
	at    [groupSlots]int8 // 1 + the index in nodes of each slot's node; 0: none
	nodes []inner
}

// node is the node at slot, which must have one.
func (g *group) node(slot int) *inner { return &g.nodes[g.at[slot]-1] }

// set puts n at slot. A node that an update left unreachable stays, unused, until the group is
// compacted.
func (g *group) set(slot int, n inner) {
	if i := g.at[slot]; i > 0 {
		g.nodes[i-1] = n
		return
	}
	g.nodes = append(g.nodes, n)
	g.at[slot] = int8(len(g.nodes))
}

// cloneFull is a copy of g to change in which every slot has a node already, so that two
// goroutines can set distinct slots.
func (g *group) cloneFull() *group {
	c := &group{at: g.at, nodes: exact(g.nodes)}
	for s := range c.at {
		if c.at[s] == 0 {
			c.set(s, inner{})
		}
	}
	return c
}

// clone is a copy of g to change, in tw's scratch (the cache copies what it keeps), with room
// for a few more nodes.
func (tw *treeWrites) clone(g *group) *group {
	c := tw.newGroup()
	c.at, c.nodes = g.at, tw.scratchNodes(len(g.nodes), 2)
	copy(c.nodes, g.nodes)
	return c
}

// newGroup is an empty group from tw's arena of them: a block's update makes thousands, which
// one allocation each made 3 % of its commit (issue 12).
func (tw *treeWrites) newGroup() *group {
	if len(tw.groupArena) == cap(tw.groupArena) {
		tw.groupArena = make([]group, 0, 256)
	}
	tw.groupArena = append(tw.groupArena, group{})
	return &tw.groupArena[len(tw.groupArena)-1]
}

// scratchNodes is n nodes, with room for more, from tw's scratch: a block's update copies
// thousands of groups, which one allocation per group made a large part of its cost, and of the
// garbage collector's. The nodes are not zeroed: the caller writes each before it is read.
func (tw *treeWrites) scratchNodes(n, room int) []inner {
	if cap(tw.scratch)-len(tw.scratch) < n+room {
		tw.scratch = tw.pool.get()
		tw.chunks = append(tw.chunks, tw.scratch)
	}
	l := len(tw.scratch)
	tw.scratch = tw.scratch[:l+n+room]
	return tw.scratch[l : l+n : l+n+room]
}

// scratchChunk is the nodes of one scratch chunk (160 bytes each): more than a small block's
// update copies; a large one takes a chunk after another.
const scratchChunk = 1 << 12

// maxPooledChunks bounds the scratch kept between blocks, 40 MiB: a block of 2,000 transfers on
// a million accounts takes 28 chunks (18 MiB), and one of up to about 4,500 finds all it needs
// there; a larger block's chunks beyond it are left to the collector rather than held for ever.
// With 16 kept, a block of 2,000 transfers allocated and cleared 12 chunks anew (issue 12);
// what is kept is a tenth of the group cache's room.
const maxPooledChunks = 64

// scratchPool keeps the scratch chunks of committed updates for the next ones (issue #10): a
// chunk allocated per block, zeroed and soon garbage, was 3 % of a node's CPU at 50 small blocks
// a second. A chunk comes back only once its update's block is committed (the cache has copied
// the groups out of it by then); the chunks of a Staged never committed are the collector's.
// A nil pool allocates.
type scratchPool struct {
	mu     sync.Mutex
	chunks [][]inner
}

func (p *scratchPool) get() []inner {
	if p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if n := len(p.chunks); n > 0 {
			c := p.chunks[n-1]
			p.chunks[n-1] = nil
			p.chunks = p.chunks[:n-1]
			return c[:0]
		}
	}
	return make([]inner, 0, scratchChunk)
}

// release gives back the scratch chunks of tw (and its other half), whose block is committed:
// nothing may read tw's groups any more.
func (p *scratchPool) release(tw *treeWrites) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for w := tw; w != nil; w = w.next {
		for i, c := range w.chunks {
			if len(p.chunks) < maxPooledChunks {
				p.chunks = append(p.chunks, c[:0])
			}
			w.chunks[i] = nil
		}
		w.chunks, w.scratch, w.groups = nil, nil, nil
	}
}

// compact is g with only the nodes its root reaches: what the cache keeps. reached is how many
// nodes its root reaches.
func (tw *treeWrites) compact(g *group, reached int) *group {
	if reached == len(g.nodes) {
		return g // the common case: an update changed nodes, added or dropped none
	}
	var (
		buf [groupSlots]inner
		at  [groupSlots]int8
	)
	n := 0
	var walk func(slot, rel int)
	walk = func(slot, rel int) {
		buf[n] = *g.node(slot)
		n++
		at[slot] = int8(n)
		if rel+1 < groupLevels {
			for i, c := range g.node(slot).child {
				if c.kind == kindInternal {
					walk(2*slot+1+i, rel+1)
				}
			}
		}
	}
	walk(0, 0)
	c := tw.newGroup()
	c.at, c.nodes = at, tw.scratchNodes(n, 0)
	copy(c.nodes, buf[:n])
	return c
}

// exact is a copy of nodes with no spare room (slices.Clone rounds it up to an allocation
// size: then compact would copy every group again).
func exact(nodes []inner) []inner {
	c := make([]inner, len(nodes))
	copy(c, nodes)
	return c
}

// encodeGroup appends g's stored bytes to b, and returns how many nodes they hold.
func encodeGroup(b []byte, g *group) ([]byte, int) {
	reached := 0
	b = append(b, groupTag)
	return g.encode(b, 0, 0, &reached), reached
}

func (g *group) encode(b []byte, slot, rel int, reached *int) []byte {
	*reached++
	n := g.node(slot)
	b = append(b, n.child[0].kind|n.child[1].kind<<2)
	for i := range n.child {
		c := &n.child[i]
		switch c.kind {
		case kindLeaf:
			b = append(b, c.kh[:]...)
			b = append(b, c.h[:]...)
			b = binary.AppendUvarint(b, c.ver)
		case kindInternal:
			if rel+1 < groupLevels {
				b = g.encode(b, 2*slot+1+i, rel+1, reached)
			} else {
				b = append(b, c.h[:]...)
				b = binary.AppendUvarint(b, c.ver)
			}
		}
	}
	return b
}

// decodeGroup decodes a stored group and returns it with its hash (that of its root).
func decodeGroup(b []byte) (*group, Hash, error) {
	if len(b) < 2 || b[0] != groupTag {
		return nil, Hash{}, fmt.Errorf("%w: tree record is not a group", ErrCorrupt)
	}
	var buf [groupSlots]inner
	g := &group{nodes: buf[:0]}
	rest, h, err := g.decode(b[1:], 0, 0)
	if err != nil {
		return nil, Hash{}, err
	}
	if len(rest) != 0 {
		return nil, Hash{}, fmt.Errorf("%w: tree group has trailing bytes", ErrCorrupt)
	}
	g.nodes = exact(g.nodes)
	return g, h, nil
}

var errTruncatedGroup = fmt.Errorf("%w: truncated tree group", ErrCorrupt)

func (g *group) decode(b []byte, slot, rel int) ([]byte, Hash, error) {
	if len(b) < 1 {
		return nil, Hash{}, errTruncatedGroup
	}
	kinds := b[0]
	b = b[1:]
	g.set(slot, inner{})
	n := g.node(slot)
	for i := range n.child {
		c := &n.child[i]
		c.kind = kinds >> (2 * i) & 3
		switch c.kind {
		case kindEmpty:
		case kindLeaf:
			if len(b) < 64 {
				return nil, Hash{}, errTruncatedGroup
			}
			copy(c.kh[:], b[:32])
			copy(c.h[:], b[32:64])
			v, m := binary.Uvarint(b[64:])
			if m <= 0 {
				return nil, Hash{}, errTruncatedGroup
			}
			c.ver, b = v, b[64+m:]
		case kindInternal:
			if rel+1 < groupLevels {
				var err error
				if b, c.h, err = g.decode(b, 2*slot+1+i, rel+1); err != nil {
					return nil, Hash{}, err
				}
				continue
			}
			if len(b) < 32 {
				return nil, Hash{}, errTruncatedGroup
			}
			copy(c.h[:], b[:32])
			v, m := binary.Uvarint(b[32:])
			if m <= 0 {
				return nil, Hash{}, errTruncatedGroup
			}
			c.ver, b = v, b[32+m:]
		default:
			return nil, Hash{}, fmt.Errorf("%w: tree group with a child of kind %d", ErrCorrupt, c.kind)
		}
	}
	if kinds>>4 != 0 || n.child[0].kind+n.child[1].kind < 2 || n.child[0].kind == kindEmpty && n.child[1].kind == kindLeaf {
		// Not a node of a compact tree (nothing over two empty subtrees, a lone leaf moves up).
		return nil, Hash{}, fmt.Errorf("%w: tree group with a node of kinds %#x", ErrCorrupt, kinds)
	}
	return b, merkle.InternalHash(n.child[0].h, n.child[1].h), nil
}

// encodeLeaf is a leaf's stored bytes. Its key and value hashes are not stored: reading it
// computes them, to check it against its hash anyway.
func encodeLeaf(key, value []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+len(value))
	b = append(b, leafTag)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// decodeLeaf returns a stored leaf's key hash, key and value, checking them against its hash.
func decodeLeaf(h Hash, b []byte) (kh Hash, key, value []byte, err error) {
	if len(b) < 2 || b[0] != leafTag {
		return kh, nil, nil, fmt.Errorf("%w: tree record is not a leaf", ErrCorrupt)
	}
	n, m := binary.Uvarint(b[1:])
	if m <= 0 || uint64(len(b)-1-m) < n {
		return kh, nil, nil, fmt.Errorf("%w: truncated tree leaf", ErrCorrupt)
	}
	key = b[1+m : 1+m+int(n)]
	value = b[1+m+int(n):]
	kh = merkle.KeyHash(key)
	if merkle.LeafHash(kh, sha256.Sum256(value)) != h {
		return kh, nil, nil, fmt.Errorf("%w: tree leaf does not match its hash", ErrCorrupt)
	}
	return kh, key, value, nil
}

// stage adds tw's records to b, and the stale index of the records it dropped as parts part,
// part+1, ... of its version's (a block's start at 0; a snapshot being restored, at a distinct
// number per chunk). With run false, it adds only the root's record: the caller ingests the
// rest (tw.run) before it writes b.
func (tw *treeWrites) stage(b kv.Batch, part uint64, run bool) error {
	for w := tw; w != nil; w = w.next {
		for _, n := range w.nodes {
			if !run && isRunKey(n[0]) {
				continue
			}
			if err := b.Set(n[0], n[1]); err != nil {
				return err
			}
		}
	}
	if !run {
		return nil
	}
	for _, e := range tw.staleParts(part) {
		if err := b.Set(e[0], e[1]); err != nil {
			return err
		}
	}
	return nil
}

// isRunKey reports whether k, a key tw writes, is one of its version's run (a group, a leaf or
// the stale index), not a root's record.
func isRunKey(k []byte) bool { return k[len(treePrefix)] == treeNodeTag }

// staleParts is tw's stale index, as parts part, part+1, ... of its version's.
func (tw *treeWrites) staleParts(part uint64) [][2][]byte {
	var stale []byte
	for w := tw; w != nil; w = w.next {
		stale = append(stale, w.stale...)
	}
	var parts [][2][]byte
	for j := uint64(0); len(stale) > 0; j++ {
		n := min(len(stale), staleIndexEntries*staleLen)
		parts = append(parts, [2][]byte{staleKey(tw.ver, part+j), stale[:n:n]})
		stale = stale[n:]
	}
	return parts
}

// ingestMinBytes is the size from which a block's run of records (its groups, leaves and stale
// index: one run of keys after every older record) is ingested into a store that can
// (kv.Ingest, pebbledb), as a table of its own in the store's bottom level, instead of going
// through the store's log, memtable, flush and compactions with the block's batch (issue 12:
// those were more than half of a block's CPU at 2,000 transfers). Smaller blocks keep the
// batch, so that a quiet chain does not make a file a block. A variable for tests.
var ingestMinBytes = 1 << 20

// ingests reports whether a commit of tw to db ingests its run.
func (tw *treeWrites) ingests(db kv.Store) bool {
	if !kv.CanIngest(db) {
		return false
	}
	_, size := tw.size()
	return size >= ingestMinBytes
}

// run is tw's run (see isRunKey) with its stale index as parts part, ..., in key order.
func (tw *treeWrites) run(part uint64) [][2][]byte {
	n, _ := tw.size()
	kvs := make([][2][]byte, 0, n+8)
	for w := tw; w != nil; w = w.next {
		for _, e := range w.nodes {
			if isRunKey(e[0]) {
				kvs = append(kvs, e)
			}
		}
	}
	// The keys share their prefix and version: order them by hash, first by its leading 8 bytes
	// as an integer, in an index of those (sorting the pairs themselves cost 6 % of a commit).
	off := len(treePrefix) + 1 + 8
	type pos struct {
		lead uint64
		i    int
	}
	idx := make([]pos, len(kvs))
	for i := range kvs {
		idx[i] = pos{binary.BigEndian.Uint64(kvs[i][0][off:]), i}
	}
	slices.SortFunc(idx, func(a, b pos) int {
		if a.lead != b.lead {
			if a.lead < b.lead {
				return -1
			}
			return 1
		}
		return bytes.Compare(kvs[a.i][0], kvs[b.i][0])
	})
	sorted := make([][2][]byte, len(kvs), len(kvs)+8)
	for j, p := range idx {
		sorted[j] = kvs[p.i]
	}
	kvs = sorted
	// A record made twice in one block (the same hash) is one key, as a batch would leave it.
	kvs = slices.CompactFunc(kvs, func(a, b [2][]byte) bool { return bytes.Equal(a[0], b[0]) })
	// The stale index sorts after every record of its version (staleMark).
	return append(kvs, tw.staleParts(part)...)
}

// staleIndexEntries is the most entries one record of a stale index holds: a block's index of
// 11,700 entries (480 KB) as one value, pebble wrote 7 times over to disk, with 15 ms of CPU a
// block (BenchmarkTreeUpdate's commit); in records of 256, it costs a fifth of that.
const staleIndexEntries = 256

// staleKey is the store key of part part of version ver's stale index.
func staleKey(ver, part uint64) []byte {
	k := make([]byte, 0, staleKeyLen)
	k = appendNodeKey(k, ver, staleMark)
	return binary.BigEndian.AppendUint64(k, part)
}

// staleMark is the hash part of a stale index's key: with the part after it, the key sorts after
// every record of its version.
var staleMark = Hash{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

const staleKeyLen = len(treePrefix) + 1 + 8 + len(Hash{}) + 8

// Entries of a stale index.
const (
	staleRecord = 'v' // ‖ be64(version) ‖ hash: a group or leaf record
	staleRoot   = 'r' // ‖ root ‖ be64(version): a root record, deleted only if it still says version
	staleLen    = 1 + 8 + 32
)

// dropped is how many records tw's update dropped.
func (tw *treeWrites) dropped() int {
	n := 0
	for ; tw != nil; tw = tw.next {
		n += len(tw.stale) / staleLen
	}
	return n
}

// dropRecord records that the update dropped record r (a group or a leaf) from the tree.
func (tw *treeWrites) dropRecord(r ref) {
	tw.stale = append(tw.stale, staleRecord)
	tw.stale = binary.BigEndian.AppendUint64(tw.stale, r.ver)
	tw.stale = append(tw.stale, r.h[:]...)
}

// dropRoot records that root r's record no longer names the tree's root. A root that is a leaf
// is left out: it can become the root again with the same version (the one entry left after
// the others are deleted), which the record could not tell apart; it costs a 40-byte record
// only in a tree of one entry.
func (tw *treeWrites) dropRoot(r ref) {
	if r.kind != kindInternal {
		return
	}
	tw.stale = append(tw.stale, staleRoot)
	tw.stale = append(tw.stale, r.h[:]...)
	tw.stale = binary.BigEndian.AppendUint64(tw.stale, r.ver)
}

// batchSize is about the bytes a batch of ws's entries and tw's records holds, to size it.
func batchSize(ws *writeSet, tw *treeWrites) int {
	n, size := tw.size()
	size += 16 * n
	for w := tw; w != nil; w = w.next {
		size += len(w.stale)
	}
	for i := range ws.entries {
		size += 16 + len(ws.entries[i].key) + len(ws.entries[i].value)
	}
	return size + 1024 // the height, root and other bookkeeping
}

// size is the number of records (groups, leaves and root records) tw writes, and their bytes.
func (tw *treeWrites) size() (nodes, bytes int) {
	for ; tw != nil; tw = tw.next {
		nodes += len(tw.nodes)
		for _, n := range tw.nodes {
			bytes += len(n[0]) + len(n[1])
		}
	}
	return nodes, bytes
}

// writeAndCache writes b, which holds tw's records (or, with ingest, only its root's record:
// see stage), durably unless noSync (then as kv.Batch.WriteNoSync), and records tw in the group
// cache while the store writes: a block's cache work then overlaps the disk's. Nothing reads the
// new groups before the caller publishes the new root; if the write fails the cache is emptied,
// since it may hold groups the store does not.
//
// With ingest, tw's run is ingested first, durably, and b written only after: a crash between
// the two (or one that loses b, written without a sync) leaves records that no root names (b
// holds the root's record and the state's pointer to it), which the block, applied again after
// the restart, writes again with the same keys and values. The other order would leave, after
// such a crash, a root whose records are missing.
func (t *tree) writeAndCache(b kv.Batch, tw *treeWrites, ingest, noSync bool) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.cache.commit(tw)
	}()
	var err error
	if ingest {
		err = kv.Ingest(t.db, tw.run(0))
		if err == nil && afterIngest != nil {
			err = afterIngest()
		}
	}
	switch {
	case err != nil:
	case noSync:
		err = b.WriteNoSync()
	default:
		err = b.Write()
	}
	<-done
	if err != nil {
		t.cache.reset()
	}
	return err
}

// afterIngest, when set by a test, runs between a block's ingested run and its batch: an error
// from it is a crash there.
var afterIngest func() error

// tree reads and updates the state tree of one store.
type tree struct {
	db    kv.Store
	cache *nodeCache
	// perEntry is how many records the last large update made per changed entry, in
	// hundredths: the next one sizes its buffers by it instead of growing them by copying.
	perEntry atomic.Int64
	scratch  scratchPool
	// last is the root the last committed update made: the next update (every block's) starts
	// from it without reading its record from the store (issue #10). A root's record is written
	// again only by an update that makes that root anew, which then becomes last.
	last atomic.Pointer[ref]
}

// loadGroup reads the group whose root is r, from the cache or the store.
func (t *tree) loadGroup(r ref) (*group, error) {
	if g := t.cache.get(r); g != nil {
		return g, nil
	}
	return t.readGroup(r)
}

// updateGroup is loadGroup for an update, which may read the cache without its lock (see
// find): the group is shared, the caller must not change it. from names the cache's entry it
// came from (cid 0: the store), and old is whether that is in the old generation.
func (t *tree) updateGroup(r ref) (g group, from cacheRef, old bool, err error) {
	if id := t.cache.find(r); id != 0 {
		return t.cache.view(id), cacheRef{h: r.h, cid: id}, t.cache.isOld(id), nil
	}
	rg, err := t.readGroup(r)
	if err != nil {
		return group{}, cacheRef{}, false, err
	}
	return *rg, cacheRef{}, false, nil
}

// readGroup reads the group whose root is r from the store.
func (t *tree) readGroup(r ref) (*group, error) {
	h := r.h
	raw, err := t.db.Get(nodeKey(r.ver, h))
	if err != nil {
		return nil, fmt.Errorf("state: reading tree group %s: %w", h, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: tree group %s is missing", ErrCorrupt, h)
	}
	g, got, err := decodeGroup(raw)
	if err != nil {
		return nil, fmt.Errorf("tree group %s: %w", h, err)
	}
	if got != h {
		return nil, fmt.Errorf("%w: tree group %s does not match its hash", ErrCorrupt, h)
	}
	return g, nil
}

// errOldTreeLayout: a store whose tree has a record per binary node, written before groups.
var errOldTreeLayout = fmt.Errorf("%w (its state tree has the layout before groups): %w", ErrNoStateTree, errNoStateTreeHint)

// rootRef is what a root hash refers to: the empty tree, one leaf, or an internal node.
func (t *tree) rootRef(root Hash) (ref, error) {
	if root == (Hash{}) {
		return ref{}, nil
	}
	if r := t.last.Load(); r != nil && r.h == root {
		return *r, nil
	}
	rv, err := t.db.Get(rootKey(root))
	if err != nil {
		return ref{}, fmt.Errorf("state: reading tree root %s: %w", root, err)
	}
	if rv == nil {
		return ref{}, fmt.Errorf("%w: the state tree has no root %s (a store written before this layout of the state tree: sync it anew)", ErrCorrupt, root)
	}
	if len(rv) != 8 {
		return ref{}, fmt.Errorf("%w: tree root %s: version of %d bytes", ErrCorrupt, root, len(rv))
	}
	ver := binary.BigEndian.Uint64(rv)
	if t.cache.isRoot(root) {
		return ref{h: root, kind: kindInternal, ver: ver}, nil
	}
	raw, err := t.db.Get(nodeKey(ver, root))
	if err != nil {
		return ref{}, fmt.Errorf("state: reading tree root %s: %w", root, err)
	}
	if len(raw) == 0 {
		return ref{}, fmt.Errorf("%w: tree root %s is missing", ErrCorrupt, root)
	}
	switch raw[0] {
	case leafTag:
		kh, _, _, err := decodeLeaf(root, raw)
		return ref{h: root, kind: kindLeaf, kh: kh, ver: ver}, err
	case oldInnerTag, oldLeafTag:
		return ref{}, errOldTreeLayout
	}
	return ref{h: root, kind: kindInternal, ver: ver}, nil
}

// checkTreeLayout refuses a store whose tree, at root, another layout wrote.
func checkTreeLayout(db kv.Store, root Hash) error {
	t := &tree{db: db, cache: newNodeCache()}
	_, err := t.rootRef(root)
	return err
}

// treeUpdate is one entry of a block's write set as the tree sees it.
type treeUpdate struct {
	kh   Hash
	leaf Hash   // zero: delete
	enc  []byte // the leaf's stored bytes; nil for a delete, or for a leaf already stored
	ver  uint64 // a leaf already stored: its version
}

// treeWrites is what updating the tree adds to a block's batch.
type treeWrites struct {
	nodes      [][2][]byte   // key, value
	buf        []byte        // arena for keys and groups: a block makes thousands
	scratch    []inner       // arena for the groups the update changes (see scratchNodes)
	chunks     [][]inner     // every chunk scratch has been, to give back (scratchPool)
	pool       *scratchPool  // where scratch comes from; nil: allocated
	root       *ref          // the new root, when the update made one (addRoot)
	groups     []hashedGroup // the new groups, children before parents, to cache once committed
	groupArena []group       // where the update's groups are (newGroup)
	touched    []cacheRef    // groups read from the cache's old generation and kept
	replaced   []cacheRef    // cached groups no longer in the new tree
	half       bool          // the update's second half (its groups' pending cids say so)
	stale      []byte        // the records the update dropped, as the stale index lists them
	next       *treeWrites   // the other half's records to cache (update's two goroutines)
	ver        uint64        // the version the new records are written at
}

type hashedGroup struct {
	h Hash
	g *group
}

// update applies ws to the tree of root and returns the new root with the records to write,
// at version ver (the block's height: versions must not decrease from one update to the next,
// or the store loses the locality that nodeKey gives). Reads only committed records; writes
// nothing.
func (t *tree) update(root Hash, ver uint64, ws *writeSet) (Hash, *treeWrites, error) {
	ups := make([]treeUpdate, len(ws.entries))
	parallelFor(len(ups), 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			e := &ws.entries[i]
			u := &ups[i]
			u.kh = merkle.KeyHash(e.key)
			if !e.deleted {
				vh := sha256.Sum256(e.value)
				u.leaf = merkle.LeafHash(u.kh, vh)
				u.enc = encodeLeaf(e.key, e.value)
			}
		}
	})
	slices.SortFunc(ups, func(a, b treeUpdate) int { return bytes.Compare(a.kh[:], b.kh[:]) })

	r, err := t.rootRef(root)
	if err != nil {
		return Hash{}, nil, err
	}
	// The two halves of the tree are independent: update them on two goroutines when the root
	// is an internal node and the block is big enough for it to pay. They change distinct slots
	// of the root's group (a copy).
	if r.kind == kindInternal && len(ups) >= 512 {
		og, from, old, err := t.updateGroup(r)
		if err != nil {
			return Hash{}, nil, err
		}
		g := (&og).cloneFull()
		split := splitAt(ups, 0)
		var (
			out  [2]ref
			errs [2]error
			tws  [2]*treeWrites
			wg   sync.WaitGroup
		)
		parts := [2][]treeUpdate{ups[:split], ups[split:]}
		n := *g.node(0)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tws[i] = t.newTreeWrites(len(parts[i]), ver)
				tws[i].half = i == 1
				out[i], errs[i] = t.updateAt(tws[i], n.child[i], g, 1+i, 1, parts[i])
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return Hash{}, nil, err
			}
		}
		tw := tws[0]
		tw.next = tws[1]
		nr := tw.combine(g, 0, out[0], out[1])
		if nr.h == r.h {
			if old {
				tw.touched = append(tw.touched, from)
			}
			return r.h, tw, nil
		}
		if from.cid != 0 {
			tw.replaced = append(tw.replaced, from)
		}
		tw.dropRecord(r)
		tw.dropRoot(r)
		if nr.kind == kindInternal {
			nr.cid = tw.addGroup(nr.h, g)
		}
		tw.addRoot(nr)
		t.perEntry.Store(int64(100 * (len(tw.nodes) + len(tws[1].nodes)) / len(ups)))
		return nr.h, tw, nil
	}
	tw := t.newTreeWrites(len(ups), ver)
	nr, err := t.updateAt(tw, r, nil, 0, 0, ups)
	if err != nil {
		return Hash{}, nil, err
	}
	if nr.h != r.h {
		tw.addRoot(nr)
		tw.dropRoot(r)
	}
	return nr.h, tw, nil
}

func newTreeWrites(updates int, ver uint64) *treeWrites {
	return &treeWrites{ver: ver}
}

// newTreeWrites makes an update's writes with room for as many records as the last large
// update made per entry.
func (t *tree) newTreeWrites(updates int, ver uint64) *treeWrites {
	n := max(updates, int(t.perEntry.Load())*updates/100+16)
	return &treeWrites{
		nodes:  make([][2][]byte, 0, n),
		groups: make([]hashedGroup, 0, n),
		ver:    ver,
		pool:   &t.scratch,
	}
}

// addRoot records the version of a new root, by which proofs and the next update find it.
func (tw *treeWrites) addRoot(r ref) {
	if r.kind == kindEmpty {
		return
	}
	tw.root = &r
	tw.reserve(len(treePrefix) + 1 + len(r.h) + 8)
	tw.buf = append(tw.buf, treePrefix...)
	tw.buf = append(tw.buf, treeRootTag)
	tw.buf = append(tw.buf, r.h[:]...)
	k := tw.take(0)
	tw.buf = binary.BigEndian.AppendUint64(tw.buf, r.ver)
	tw.nodes = append(tw.nodes, [2][]byte{k, tw.take(0)})
}

// reserve makes room for n more bytes in the arena. Slices taken earlier stay valid: a full
// chunk is left to them, not copied.
func (tw *treeWrites) reserve(n int) {
	if cap(tw.buf)-len(tw.buf) < n {
		tw.buf = make([]byte, 0, max(n, 64<<10))
	}
}

// take returns the arena's bytes from start on, and moves the arena past them.
func (tw *treeWrites) take(start int) []byte {
	b := tw.buf[start:len(tw.buf):len(tw.buf)]
	tw.buf = tw.buf[len(tw.buf):]
	return b
}

// maxGroupBytes bounds encodeGroup's output: a tag, a kinds byte per node, and at most 16
// children of a key hash, a hash and a version each.
const maxGroupBytes = 1 + groupSlots + (groupSlots+1)*(64+binary.MaxVarintLen64)

// addGroup stages group g, whose root has hash h, and keeps it to cache. It returns the cid by
// which its parent names it until the cache gives it an entry (see nodeCache.commit).
func (tw *treeWrites) addGroup(h Hash, g *group) uint32 {
	tw.reserve(maxGroupBytes)
	var reached int
	tw.buf, reached = encodeGroup(tw.buf, g)
	tw.add(h, tw.take(0))
	tw.groups = append(tw.groups, hashedGroup{h, tw.compact(g, reached)})
	cid := pendingCID | uint32(len(tw.groups)-1)
	if tw.half {
		cid |= pendingHalf
	}
	return cid
}

// add stages record h, at the update's version, with stored bytes enc.
func (tw *treeWrites) add(h Hash, enc []byte) {
	tw.reserve(len(treePrefix) + 1 + 8 + len(h))
	tw.buf = appendNodeKey(tw.buf, tw.ver, h)
	tw.nodes = append(tw.nodes, [2][]byte{tw.take(0), enc})
}

// splitAt is the index of the first update whose path has bit depth set (ups is sorted by path,
// and all share the bits before depth).
func splitAt(ups []treeUpdate, depth int) int {
	lo, hi := 0, len(ups)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if merkle.Bit((*merkle.Hash)(&ups[m].kh), depth) == 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// updateAt applies ups (sorted, all on r's path) to the subtree r at depth. Unless depth starts
// a group, r is in group g (a copy the update may change) at slot, and so is what replaces it.
func (t *tree) updateAt(tw *treeWrites, r ref, g *group, slot, depth int, ups []treeUpdate) (ref, error) {
	if len(ups) == 0 {
		return r, nil
	}
	if depth%groupLevels != 0 {
		return t.updateIn(tw, r, g, slot, depth, ups)
	}
	var (
		ng   *group
		from cacheRef
		old  bool
	)
	if r.kind == kindInternal {
		og, f, o, err := t.updateGroup(r)
		if err != nil {
			return ref{}, err
		}
		ng, from, old = tw.clone(&og), f, o
	} else {
		ng = tw.newGroup()
	}
	out, err := t.updateIn(tw, r, ng, 0, depth, ups)
	if err != nil {
		return ref{}, err
	}
	if out.h == r.h {
		if old {
			tw.touched = append(tw.touched, from)
		}
		return r, nil // unchanged: r names the stored copy
	}
	if r.kind == kindInternal {
		if from.cid != 0 {
			tw.replaced = append(tw.replaced, from)
		}
		tw.dropRecord(r)
	}
	if out.kind == kindInternal {
		out.cid = tw.addGroup(out.h, ng)
	}
	return out, nil
}

// updateIn is updateAt on a node of group g at slot.
func (t *tree) updateIn(tw *treeWrites, r ref, g *group, slot, depth int, ups []treeUpdate) (ref, error) {
	switch r.kind {
	case kindEmpty:
		return tw.build(g, slot, depth, ups), nil
	case kindLeaf:
		// The existing leaf joins the updates unless one of them replaces or deletes it.
		i, found := slices.BinarySearchFunc(ups, r.kh, func(u treeUpdate, kh Hash) int { return bytes.Compare(u.kh[:], kh[:]) })
		if found {
			if ups[i].leaf == r.h {
				// The same value again: keep the stored leaf. A copy at this version would be
				// a record no tree names when nothing else here changes.
				ups[i].enc, ups[i].ver = nil, r.ver
			} else {
				tw.dropRecord(r)
			}
			return tw.build(g, slot, depth, ups), nil
		}
		merged := make([]treeUpdate, 0, len(ups)+1)
		merged = append(merged, ups[:i]...)
		merged = append(merged, treeUpdate{kh: r.kh, leaf: r.h, ver: r.ver})
		merged = append(merged, ups[i:]...)
		return tw.build(g, slot, depth, merged), nil
	}
	if depth >= merkle.MaxDepth {
		return ref{}, fmt.Errorf("%w: the state tree is deeper than %d", ErrCorrupt, merkle.MaxDepth)
	}
	n := *g.node(slot)
	s := splitAt(ups, depth)
	l, err := t.updateAt(tw, n.child[0], g, 2*slot+1, depth+1, ups[:s])
	if err != nil {
		return ref{}, err
	}
	rr, err := t.updateAt(tw, n.child[1], g, 2*slot+2, depth+1, ups[s:])
	if err != nil {
		return ref{}, err
	}
	return tw.combine(g, slot, l, rr), nil
}

// live is how many of ups set an entry, and the index of the last that does.
func live(ups []treeUpdate) (n, last int) {
	last = -1
	for i := range ups {
		if ups[i].leaf != (Hash{}) {
			n++
			last = i
		}
	}
	return n, last
}

// build makes the subtree at depth of the entries set by ups (deletes drop out), in group g at
// slot.
func (tw *treeWrites) build(g *group, slot, depth int, ups []treeUpdate) ref {
	switch n, last := live(ups); n {
	case 0:
		return ref{}
	case 1:
		u := &ups[last]
		if u.enc == nil {
			return ref{h: u.leaf, kind: kindLeaf, kh: u.kh, ver: u.ver}
		}
		tw.add(u.leaf, u.enc)
		return ref{h: u.leaf, kind: kindLeaf, kh: u.kh, ver: tw.ver}
	}
	// Two distinct paths part before the last level.
	s := splitAt(ups, depth)
	return tw.combine(g, slot, tw.buildAt(g, 2*slot+1, depth+1, ups[:s]), tw.buildAt(g, 2*slot+2, depth+1, ups[s:]))
}

// buildAt is build for a child: one at a group's depth starts a group of its own.
func (tw *treeWrites) buildAt(g *group, slot, depth int, ups []treeUpdate) ref {
	if depth%groupLevels != 0 {
		return tw.build(g, slot, depth, ups)
	}
	if n, _ := live(ups); n < 2 {
		return tw.build(nil, 0, depth, ups) // a leaf or nothing: no group
	}
	ng := tw.newGroup()
	ng.nodes = tw.scratchNodes(0, 4)
	out := tw.build(ng, 0, depth, ups)
	out.cid = tw.addGroup(out.h, ng)
	return out
}

// combine makes the node over children l and r at slot of group g, keeping the tree compact:
// nothing over two empty subtrees, and a lone leaf moves up.
func (tw *treeWrites) combine(g *group, slot int, l, r ref) ref {
	switch {
	case l.kind == kindEmpty && r.kind == kindEmpty:
		return ref{}
	case l.kind == kindEmpty && r.kind == kindLeaf:
		return r
	case r.kind == kindEmpty && l.kind == kindLeaf:
		return l
	}
	g.set(slot, inner{child: [2]ref{l, r}})
	return ref{h: merkle.InternalHash(l.h, r.h), kind: kindInternal, ver: tw.ver}
}

// prove returns the proof of key against root.
func (t *tree) prove(root Hash, key []byte) (*merkle.StateProof, error) {
	p := &merkle.StateProof{Key: bytes.Clone(key)}
	kh := merkle.KeyHash(key)
	r, err := t.rootRef(root)
	if err != nil {
		return nil, err
	}
	var (
		g       *group
		buf     [groupSlots]inner
		scratch = group{nodes: buf[:0]} // each group read in turn, copied out of the cache
	)
	slot := 0
	for depth := 0; ; depth++ {
		switch r.kind {
		case kindEmpty:
			return p, nil
		case kindLeaf:
			raw, err := t.db.Get(nodeKey(r.ver, r.h))
			if err != nil {
				return nil, fmt.Errorf("state: reading tree leaf %s: %w", r.h, err)
			}
			if raw == nil {
				return nil, fmt.Errorf("%w: tree leaf %s is missing", ErrCorrupt, r.h)
			}
			lkh, _, value, err := decodeLeaf(r.h, raw)
			if err != nil {
				return nil, err
			}
			if lkh != kh {
				okh, ovh := merkle.Hash(lkh), sha256.Sum256(value)
				p.OtherKeyHash, p.OtherValueHash = &okh, &ovh
				return p, nil
			}
			p.Present, p.Value = true, bytes.Clone(value)
			return p, nil
		}
		if depth >= merkle.MaxDepth {
			return nil, fmt.Errorf("%w: the state tree is deeper than %d", ErrCorrupt, merkle.MaxDepth)
		}
		if depth%groupLevels == 0 {
			g = &scratch
			if !t.cache.getInto(r, g) {
				if g, err = t.readGroup(r); err != nil {
					return nil, err
				}
			}
			slot = 0
		}
		n := g.node(slot)
		b := merkle.Bit((*merkle.Hash)(&kh), depth)
		p.Siblings = append(p.Siblings, n.child[1-b].h)
		r = n.child[b]
		slot = 2*slot + 1 + b
	}
}
