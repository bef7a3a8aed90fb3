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
// written in the same batch as the block's state. Each node is stored under the version (the
// block height) that wrote it and its hash, and its parent names both:
//
//	t/v ‖ be64(version) ‖ hash  internal: 0x01 ‖ left ‖ right ‖ flags ‖ [left's key hash] ‖
//	                                      [right's key hash] ‖ [uvarint(left's version)] ‖
//	                                      [uvarint(right's version)]   (versions of non-empty children)
//	                            leaf:     0x00 ‖ key hash ‖ value hash ‖ uvarint(len key) ‖ key ‖ value
//	t/r ‖ hash                  a root: be64(its version)
//
// The version comes first so that a block's new nodes are one run of keys after every older
// one: an LSM store (pebble, goleveldb) then moves them down its levels without merging them
// into older files, where nodes keyed by hash alone, scattered over the whole key space, were
// rewritten again and again by compactions (issue 12: that was most of a block's write cost).
// For that, no key may sort after the nodes: the roots' keys, random, come before them ("t/r"
// < "t/v"), as do the state's own entries; a random key after them would put every new run
// inside the key range of an older file, and a compaction would rewrite that file each block.
// The flags (bit 0: the left child is a leaf, bit 1: the right one is), the key hashes of leaf
// children and the versions are not hashed: they let an update find a key's leaf from the
// parent alone, and read a child without an index. A leaf keeps its key and value so that a
// proof at any past height can be answered from the tree alone. Nodes are never overwritten or
// deleted, so every past root stays readable; pruning old roots is future work (mind that one
// node, a subtree made again, may be stored at several versions, and parents name either copy).
const treePrefix = "t/"

const (
	treeRootTag = 'r'
	treeNodeTag = 'v' // after treeRootTag: see above
)

// nodeKey is the store key of node h written at version ver.
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

// Node kinds of a tree reference.
const (
	kindEmpty = iota
	kindLeaf
	kindInternal
)

// ref is a child as its parent knows it: its hash, kind, version and, for a leaf, its key hash.
type ref struct {
	h    Hash
	kh   Hash
	ver  uint64
	kind uint8
}

// inner is a decoded internal node.
type inner struct {
	child [2]ref
}

// encodeInner appends n's stored bytes to b.
func encodeInner(b []byte, n *inner) []byte {
	b = append(b, 1)
	b = append(b, n.child[0].h[:]...)
	b = append(b, n.child[1].h[:]...)
	var flags byte
	for i := range n.child {
		if n.child[i].kind == kindLeaf {
			flags |= 1 << i
		}
	}
	b = append(b, flags)
	for i := range n.child {
		if n.child[i].kind == kindLeaf {
			b = append(b, n.child[i].kh[:]...)
		}
	}
	for i := range n.child {
		if n.child[i].kind != kindEmpty {
			b = binary.AppendUvarint(b, n.child[i].ver)
		}
	}
	return b
}

// maxInnerBytes bounds encodeInner's output.
const maxInnerBytes = 66 + 2*32 + 2*binary.MaxVarintLen64

func decodeInner(b []byte) (*inner, error) {
	if len(b) < 66 || b[0] != 1 {
		return nil, fmt.Errorf("%w: tree node is not an internal node", ErrCorrupt)
	}
	n := &inner{}
	flags := b[65]
	rest := b[66:]
	for i := range n.child {
		c := &n.child[i]
		copy(c.h[:], b[1+32*i:33+32*i])
		switch {
		case flags&(1<<i) != 0:
			if len(rest) < 32 {
				return nil, fmt.Errorf("%w: truncated tree node", ErrCorrupt)
			}
			c.kind = kindLeaf
			copy(c.kh[:], rest[:32])
			rest = rest[32:]
		case c.h == Hash{}:
			c.kind = kindEmpty
		default:
			c.kind = kindInternal
		}
	}
	for i := range n.child {
		c := &n.child[i]
		if c.kind == kindEmpty {
			continue
		}
		v, m := binary.Uvarint(rest)
		if m <= 0 {
			return nil, fmt.Errorf("%w: tree node without its children's versions", ErrCorrupt)
		}
		c.ver, rest = v, rest[m:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: tree node has trailing bytes", ErrCorrupt)
	}
	return n, nil
}

func encodeLeaf(kh, vh Hash, key, value []byte) []byte {
	b := make([]byte, 0, 65+binary.MaxVarintLen64+len(key)+len(value))
	b = append(b, 0)
	b = append(b, kh[:]...)
	b = append(b, vh[:]...)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// decodeLeaf returns a stored leaf's key hash, key and value, checking them against its hash.
func decodeLeaf(h Hash, b []byte) (kh Hash, key, value []byte, err error) {
	if len(b) < 66 || b[0] != 0 {
		return kh, nil, nil, fmt.Errorf("%w: tree node is not a leaf", ErrCorrupt)
	}
	copy(kh[:], b[1:33])
	n, m := binary.Uvarint(b[65:])
	if m <= 0 || uint64(len(b)-65-m) < n {
		return kh, nil, nil, fmt.Errorf("%w: truncated tree leaf", ErrCorrupt)
	}
	key = b[65+m : 65+m+int(n)]
	value = b[65+m+int(n):]
	if merkle.KeyHash(key) != kh || merkle.LeafHash(kh, sha256.Sum256(value)) != h {
		return kh, nil, nil, fmt.Errorf("%w: tree leaf does not match its hash", ErrCorrupt)
	}
	return kh, key, value, nil
}

// maxCachedNodes bounds each of the node cache's two generations (about 220 bytes an entry, so
// up to about 450 MB for a full generation): enough for every internal node of a state of about
// 1,400,000 entries (a compact tree has about 1.45 internal nodes per entry), and the upper
// levels of any. A node that misses the cache costs a random read of the store, about 10 µs on
// pebble: when the cache held a third of a million-entry state's nodes, the reads were most of a
// block's update (issue 12).
const maxCachedNodes = 1 << 21

// nodeCache holds committed internal nodes, so that a block's update reads few or none from the
// store. Two generations approximate LRU: a node found in the old one moves to the new one when
// the block commits, and when the new one is full the old one is dropped. A node a committed
// block replaced leaves the cache (proofs at past roots read the store). Nodes are immutable and
// named by their hash, so whether one is cached changes speed, never results.
type nodeCache struct {
	mu       sync.RWMutex
	cur, old map[Hash]inner
	limit    int
}

func newNodeCache() *nodeCache {
	return &nodeCache{cur: make(map[Hash]inner), old: map[Hash]inner{}, limit: maxCachedNodes}
}

// get returns node h if cached, and whether it is in the old generation.
func (c *nodeCache) get(h Hash) (n inner, found, old bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.lookup(h)
}

// lookup is get without the lock, for the goroutines of an update: the cache changes only in
// commit and reset, which run under State.applyMu as updates do, so an update never overlaps a
// write. (Proofs, on any goroutine, use get.)
func (c *nodeCache) lookup(h Hash) (n inner, found, old bool) {
	if n, ok := c.cur[h]; ok {
		return n, true, false
	}
	if n, ok := c.old[h]; ok {
		return n, true, true
	}
	return n, false, false
}

// commit records a committed update: the nodes it replaced leave, those it made or read enter.
func (c *nodeCache) commit(tw *treeWrites) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range tw.replaced {
		delete(c.cur, h)
		delete(c.old, h)
	}
	put := func(h Hash, n inner) {
		if len(c.cur) >= c.limit {
			c.old, c.cur = c.cur, make(map[Hash]inner, c.limit)
		}
		c.cur[h] = n
	}
	for ; tw != nil; tw = tw.next {
		for h, n := range tw.seen {
			put(h, n)
		}
		for i := range tw.inners {
			put(tw.inners[i].h, tw.inners[i].n)
		}
	}
}

func (c *nodeCache) reset() {
	c.mu.Lock()
	c.cur, c.old = make(map[Hash]inner), map[Hash]inner{}
	c.mu.Unlock()
}

// stage adds tw's nodes to b.
func (tw *treeWrites) stage(b kv.Batch) error {
	for ; tw != nil; tw = tw.next {
		for _, n := range tw.nodes {
			if err := b.Set(n[0], n[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// batchSize is about the bytes a batch of ws's entries and tw's nodes holds, to size it.
func batchSize(ws *writeSet, tw *treeWrites) int {
	n, size := tw.size()
	size += 16 * n
	for i := range ws.entries {
		size += 16 + len(ws.entries[i].key) + len(ws.entries[i].value)
	}
	return size + 1024 // the height, root and other bookkeeping
}

// size is the number of nodes (and root records) tw writes, and their bytes.
func (tw *treeWrites) size() (nodes, bytes int) {
	for ; tw != nil; tw = tw.next {
		nodes += len(tw.nodes)
		for _, n := range tw.nodes {
			bytes += len(n[0]) + len(n[1])
		}
	}
	return nodes, bytes
}

// writeAndCache writes b, which holds tw's nodes, durably, and records tw in the node cache
// while the store syncs: a block's cache work (a map delete and insert per node, tens of
// milliseconds at a million entries) then overlaps the disk's. Nothing reads the new nodes
// before the caller publishes the new root; if the write fails the cache is emptied, since it
// may hold nodes the store does not.
func (t *tree) writeAndCache(b kv.Batch, tw *treeWrites) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.cache.commit(tw)
	}()
	err := b.Write()
	<-done
	if err != nil {
		t.cache.reset()
	}
	return err
}

// tree reads and updates the state tree of one store.
type tree struct {
	db    kv.Store
	cache *nodeCache
	// perEntry is how many nodes the last large update made per changed entry, in hundredths:
	// the next one sizes its buffers by it instead of growing them by copying (a block of a
	// million-entry state makes about ten per entry).
	perEntry atomic.Int64
}

// loadInner reads internal node r, from the cache or the store. seen, if not nil, is an update's
// (which may read the cache without its lock, see lookup), and collects the nodes read from the
// store or the cache's old generation, for the commit to cache.
func (t *tree) loadInner(r ref, seen map[Hash]inner) (inner, error) {
	h := r.h
	var (
		n            inner
		found, older bool
	)
	if seen != nil {
		n, found, older = t.cache.lookup(h)
	} else {
		n, found, older = t.cache.get(h)
	}
	if found {
		if older && seen != nil {
			seen[h] = n
		}
		return n, nil
	}
	raw, err := t.db.Get(nodeKey(r.ver, h))
	if err != nil {
		return n, fmt.Errorf("state: reading tree node %s: %w", h, err)
	}
	if raw == nil {
		return n, fmt.Errorf("%w: tree node %s is missing", ErrCorrupt, h)
	}
	dn, err := decodeInner(raw)
	if err != nil {
		return n, err
	}
	if merkle.InternalHash(dn.child[0].h, dn.child[1].h) != h {
		return n, fmt.Errorf("%w: tree node %s does not match its hash", ErrCorrupt, h)
	}
	if seen != nil {
		seen[h] = *dn
	}
	return *dn, nil
}

// rootRef is what a root hash refers to: the empty tree, one leaf, or an internal node.
func (t *tree) rootRef(root Hash) (ref, error) {
	if root == (Hash{}) {
		return ref{}, nil
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
	if _, found, _ := t.cache.get(root); found {
		return ref{h: root, kind: kindInternal, ver: ver}, nil
	}
	raw, err := t.db.Get(nodeKey(ver, root))
	if err != nil {
		return ref{}, fmt.Errorf("state: reading tree root %s: %w", root, err)
	}
	if len(raw) == 0 {
		return ref{}, fmt.Errorf("%w: tree root %s is missing", ErrCorrupt, root)
	}
	if raw[0] == 0 {
		kh, _, _, err := decodeLeaf(root, raw)
		return ref{h: root, kind: kindLeaf, kh: kh, ver: ver}, err
	}
	return ref{h: root, kind: kindInternal, ver: ver}, nil
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
	nodes    [][2][]byte    // key, value
	buf      []byte         // arena for keys and internal nodes: a block makes tens of thousands
	inners   []hashedInner  // the new internal nodes, to cache once committed
	seen     map[Hash]inner // nodes read from the store or the cache's old generation
	replaced []Hash         // internal nodes no longer in the new tree
	next     *treeWrites    // the other half's nodes to cache (update's two goroutines)
	ver      uint64         // the version the new nodes are written at
}

// update applies ws to the tree of root and returns the new root with the nodes to write, at
// version ver (the block's height: versions must not decrease from one update to the next, or
// the store loses the locality that nodeKey gives). Reads only committed nodes; writes nothing.
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
				u.enc = encodeLeaf(u.kh, vh, e.key, e.value)
			}
		}
	})
	slices.SortFunc(ups, func(a, b treeUpdate) int { return bytes.Compare(a.kh[:], b.kh[:]) })

	r, err := t.rootRef(root)
	if err != nil {
		return Hash{}, nil, err
	}
	// The two halves of the tree are independent: update them on two goroutines when the root
	// is an internal node and the block is big enough for it to pay.
	if r.kind == kindInternal && len(ups) >= 512 {
		rootSeen := map[Hash]inner{}
		n, err := t.loadInner(r, rootSeen)
		if err != nil {
			return Hash{}, nil, err
		}
		split := splitAt(ups, 0)
		var (
			out  [2]ref
			errs [2]error
			tws  [2]*treeWrites
			wg   sync.WaitGroup
		)
		parts := [2][]treeUpdate{ups[:split], ups[split:]}
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tws[i] = t.newTreeWrites(len(parts[i]), ver)
				out[i], errs[i] = t.updateAt(tws[i], n.child[i], 1, parts[i])
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return Hash{}, nil, err
			}
		}
		tw := tws[0]
		tw.merge(tws[1])
		for h, n := range rootSeen {
			tw.seen[h] = n
		}
		nr := tw.combine(out[0], out[1])
		if nr.h != r.h {
			tw.replaced = append(tw.replaced, r.h)
			tw.addRoot(nr)
		}
		t.perEntry.Store(int64(100 * (len(tw.nodes) + len(tws[1].nodes)) / len(ups)))
		return nr.h, tw, nil
	}
	tw := t.newTreeWrites(len(ups), ver)
	nr, err := t.updateAt(tw, r, 0, ups)
	if err != nil {
		return Hash{}, nil, err
	}
	if nr.h != r.h {
		tw.addRoot(nr)
	}
	return nr.h, tw, nil
}

func newTreeWrites(updates int, ver uint64) *treeWrites {
	return &treeWrites{inners: make([]hashedInner, 0, 2*updates), seen: map[Hash]inner{}, ver: ver}
}

// newTreeWrites makes an update's writes with room for as many nodes as the last large update
// made per entry.
func (t *tree) newTreeWrites(updates int, ver uint64) *treeWrites {
	n := max(2*updates, int(t.perEntry.Load())*updates/100+16)
	return &treeWrites{
		nodes:  make([][2][]byte, 0, n),
		inners: make([]hashedInner, 0, n),
		seen:   map[Hash]inner{},
		ver:    ver,
	}
}

// addRoot records the version of a new root, by which proofs and the next update find it.
func (tw *treeWrites) addRoot(r ref) {
	if r.kind == kindEmpty {
		return
	}
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

// addInner stages internal node n with hash h.
func (tw *treeWrites) addInner(h Hash, n *inner) {
	tw.reserve(maxInnerBytes)
	tw.buf = encodeInner(tw.buf, n)
	tw.add(h, tw.take(0))
}

// add stages node h, at the update's version, with stored bytes enc.
func (tw *treeWrites) add(h Hash, enc []byte) {
	tw.reserve(len(treePrefix) + 1 + 8 + len(h))
	tw.buf = appendNodeKey(tw.buf, tw.ver, h)
	tw.nodes = append(tw.nodes, [2][]byte{tw.take(0), enc})
}

// merge chains the other half's writes to tw's: its nodes are staged and cached with tw's.
func (tw *treeWrites) merge(o *treeWrites) {
	tw.replaced = append(tw.replaced, o.replaced...)
	o.replaced = nil
	tw.next = o
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

// updateAt applies ups (sorted, all on r's path) to the subtree r at depth.
func (t *tree) updateAt(tw *treeWrites, r ref, depth int, ups []treeUpdate) (ref, error) {
	if len(ups) == 0 {
		return r, nil
	}
	switch r.kind {
	case kindEmpty:
		return tw.build(depth, ups), nil
	case kindLeaf:
		// The existing leaf joins the updates unless one of them replaces or deletes it.
		i, found := slices.BinarySearchFunc(ups, r.kh, func(u treeUpdate, kh Hash) int { return bytes.Compare(u.kh[:], kh[:]) })
		if found {
			return tw.build(depth, ups), nil
		}
		merged := make([]treeUpdate, 0, len(ups)+1)
		merged = append(merged, ups[:i]...)
		merged = append(merged, treeUpdate{kh: r.kh, leaf: r.h, ver: r.ver})
		merged = append(merged, ups[i:]...)
		return tw.build(depth, merged), nil
	}
	n, err := t.loadInner(r, tw.seen)
	if err != nil {
		return ref{}, err
	}
	if depth >= merkle.MaxDepth {
		return ref{}, fmt.Errorf("%w: the state tree is deeper than %d", ErrCorrupt, merkle.MaxDepth)
	}
	s := splitAt(ups, depth)
	l, err := t.updateAt(tw, n.child[0], depth+1, ups[:s])
	if err != nil {
		return ref{}, err
	}
	rr, err := t.updateAt(tw, n.child[1], depth+1, ups[s:])
	if err != nil {
		return ref{}, err
	}
	out := tw.combine(l, rr)
	if out.h != r.h {
		tw.replaced = append(tw.replaced, r.h)
	}
	return out, nil
}

// build makes the subtree at depth of the entries set by ups (deletes drop out).
func (tw *treeWrites) build(depth int, ups []treeUpdate) ref {
	n := 0
	last := -1
	for i := range ups {
		if ups[i].leaf != (Hash{}) {
			n++
			last = i
		}
	}
	switch n {
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
	return tw.combine(tw.build(depth+1, ups[:s]), tw.build(depth+1, ups[s:]))
}

// combine makes the node over children l and r, keeping the tree compact: nothing over two
// empty subtrees, and a lone leaf moves up.
func (tw *treeWrites) combine(l, r ref) ref {
	switch {
	case l.kind == kindEmpty && r.kind == kindEmpty:
		return ref{}
	case l.kind == kindEmpty && r.kind == kindLeaf:
		return r
	case r.kind == kindEmpty && l.kind == kindLeaf:
		return l
	}
	n := inner{child: [2]ref{l, r}}
	h := merkle.InternalHash(l.h, r.h)
	tw.addInner(h, &n)
	tw.inners = append(tw.inners, hashedInner{h, n})
	return ref{h: h, kind: kindInternal, ver: tw.ver}
}

// prove returns the proof of key against root.
func (t *tree) prove(root Hash, key []byte) (*merkle.StateProof, error) {
	p := &merkle.StateProof{Key: bytes.Clone(key)}
	kh := merkle.KeyHash(key)
	r, err := t.rootRef(root)
	if err != nil {
		return nil, err
	}
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
		n, err := t.loadInner(r, nil)
		if err != nil {
			return nil, err
		}
		b := merkle.Bit((*merkle.Hash)(&kh), depth)
		p.Siblings = append(p.Siblings, n.child[1-b].h)
		r = n.child[b]
	}
}

type hashedInner struct {
	h Hash
	n inner
}
