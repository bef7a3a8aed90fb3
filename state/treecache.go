package state

import (
	"sync"
	"unsafe"
)

// maxCachedBytes bounds each of the group cache's two generations: enough for every group of a
// state of about 1,500,000 entries (a million-entry state has about 350,000 groups, of 1,450,000
// internal nodes, in about 270 MB), and the upper levels of any. A group that misses the cache
// costs a random read of the store, about 10 µs on pebble: when the cache held a third of a
// million-entry state's nodes, the reads were most of a block's update (issue 12).
const maxCachedBytes = 400 << 20

// nodeCache holds groups of the committed tree, so that a block's update reads few or none from
// the store. Two generations approximate LRU: a group an update reads from the old one, and keeps
// unchanged, moves to the new one when the block commits, and when the new one is full the old
// one is dropped. A group a committed block replaced leaves the cache (proofs at past roots read
// the store). Groups are immutable (an update changes a copy), and whether one is cached changes
// speed, never results.
//
// A cached group is an entry of a table, found by position, not by its hash: the reference to it
// in its parent group (ref.cid), or the root's entry. Each entry keeps its group's hash, and a
// position whose entry no longer holds that hash (the group left the cache, its entry was
// reused) is a miss, read from the store. When the cache was two maps by hash, their look-ups
// (each a miss of the processor's caches, and the maps' upkeep at each commit) were a fifth of a
// block's commit (issue 12). A group enters the cache only with a block that names it from a
// group that enters too (or as the root): a block's new groups, whose parents are new too. A
// group read from the store is on the path of a change, so the block replaces it with a new one.
//
// Nothing in the cache holds a pointer (issue 12): the groups' nodes live in large slabs
// (nodeSlab), and the table holds where, so the garbage collector neither scans the table nor
// marks hundreds of thousands of groups at each collection, and a committed group takes a slab's
// free run, not an allocation. When each group was an object of its own, marking them and
// allocating the copies were a fifth of a block's commit.
type nodeCache struct {
	mu     sync.RWMutex
	ents   []cacheEntry // by id; ref.cid is id+1
	free   []uint32     // ids of unused entries
	gen    uint32       // the new generation's number; the old one's is gen-1
	bytes  int          // of the new generation's groups
	limit  int          // of bytes
	slab   nodeSlab
	root   Hash   // the last committed root, when its group is cached
	rootID uint32 // its entry's id+1
}

// cacheEntry is a cached group: its hash, slot index and where its nodes are in the slab.
type cacheEntry struct {
	h   Hash
	at  [groupSlots]int8
	n   uint8 // 0: the entry is unused
	gen uint32
	idx uint32
}

// cacheRef is a cached group an update read: its entry's id+1 and its hash.
type cacheRef struct {
	h   Hash
	cid uint32
}

// A ref's cid, when pendingCID is set, names a group of the update that made it, not yet cached:
// the group's index in its treeWrites' groups, and with pendingHalf, of the update's second half.
const (
	pendingCID  = 1 << 31
	pendingHalf = 1 << 30
)

// bytes is about the memory e takes: its nodes, and its entry.
func (e *cacheEntry) bytes() int { return 64 + int(e.n)*int(unsafe.Sizeof(inner{})) }

func newNodeCache() *nodeCache { return &nodeCache{limit: maxCachedBytes, gen: 1} }

// find is the id+1 of the entry holding the group r names (an internal node at a group's depth),
// or 0. With view, it is get without the lock and without the copy, for the goroutines of an
// update: the cache changes only in commit and reset, which run under State.applyMu as updates
// do, so an update never overlaps a write; and a block's writes are committed only if no commit
// came between their update and theirs (a Staged on a stale tip is refused), so the entries its
// update names (treeWrites.replaced, touched) are still those when it commits. (Proofs, on any
// goroutine, use get.)
func (c *nodeCache) find(r ref) uint32 {
	if id := r.cid; id != 0 && id&pendingCID == 0 && int(id) <= len(c.ents) {
		if e := &c.ents[id-1]; e.n != 0 && e.h == r.h {
			return id
		}
	}
	if c.rootID != 0 && r.h == c.root {
		return c.rootID
	}
	return 0
}

// view is entry id's group, in place in the slab: valid until a commit or a reset.
func (c *nodeCache) view(id uint32) group {
	e := &c.ents[id-1]
	return group{at: e.at, nodes: c.slab.nodes(e.idx, int(e.n))}
}

// get returns a copy of the group r names if cached (the caller may hold it across commits,
// which reuse the slab's runs).
func (c *nodeCache) get(r ref) *group {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id := c.find(r)
	if id == 0 {
		return nil
	}
	g := c.view(id)
	g.nodes = exact(g.nodes)
	return &g
}

// getInto is get into dst, reusing its nodes' room: a proof reads a group at a time, and one
// allocation a group read made proofs twice as slow (the collector's work on a large heap).
func (c *nodeCache) getInto(r ref, dst *group) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id := c.find(r)
	if id == 0 {
		return false
	}
	e := &c.ents[id-1]
	dst.at = e.at
	dst.nodes = append(dst.nodes[:0], c.slab.nodes(e.idx, int(e.n))...)
	return true
}

// isRoot is whether h is the last committed root and its group is cached.
func (c *nodeCache) isRoot(h Hash) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.find(ref{h: h}) != 0
}

// isOld is whether entry id is in the old generation.
func (c *nodeCache) isOld(id uint32) bool { return c.ents[id-1].gen != c.gen }

// at is the entry r names if it still holds r's group.
func (c *nodeCache) at(r cacheRef) *cacheEntry {
	if r.cid == 0 || int(r.cid) > len(c.ents) {
		return nil
	}
	if e := &c.ents[r.cid-1]; e.n != 0 && e.h == r.h {
		return e
	}
	return nil
}

// commit records a committed update: the groups it replaced leave, those it read from the old
// generation and kept move to the new one, and its new groups enter, each given the entry of the
// groups below it that entered before it (a group's children are made before it).
func (c *nodeCache) commit(tw *treeWrites) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := tw; w != nil; w = w.next {
		for _, r := range w.replaced {
			if e := c.at(r); e != nil {
				c.drop(r.cid, e)
			}
		}
	}
	for w := tw; w != nil; w = w.next {
		for _, r := range w.touched {
			c.turnIfFull()
			if e := c.at(r); e != nil && e.gen != c.gen {
				c.bytes += e.bytes()
				e.gen = c.gen
			}
		}
	}
	// The second half's groups first: the first half's last is the root's, over both.
	var ids [2][]uint32
	halves := []*treeWrites{tw}
	if tw != nil && tw.next != nil {
		halves = []*treeWrites{tw.next, tw}
	}
	for _, w := range halves {
		h := 0
		if w.half {
			h = 1
		}
		ids[h] = make([]uint32, len(w.groups))
		for i := range w.groups {
			ids[h][i] = c.put(w.groups[i].h, w.groups[i].g, &ids)
		}
	}
	if tw != nil && tw.root != nil {
		r := tw.root
		r.cid = resolveCID(r.cid, &ids)
		c.root, c.rootID = r.h, 0
		if r.kind == kindInternal && r.cid != 0 && c.at(cacheRef{r.h, r.cid}) != nil {
			c.rootID = r.cid
		}
	}
}

// resolveCID is cid with a pending group's id in the cache, from ids (0 if it did not enter).
func resolveCID(cid uint32, ids *[2][]uint32) uint32 {
	if cid&pendingCID == 0 {
		return cid
	}
	h := 0
	if cid&pendingHalf != 0 {
		h = 1
	}
	if i := int(cid &^ (pendingCID | pendingHalf)); i < len(ids[h]) {
		return ids[h][i]
	}
	return 0
}

// drop frees entry id (e).
func (c *nodeCache) drop(id uint32, e *cacheEntry) {
	if e.gen == c.gen {
		c.bytes -= e.bytes()
	}
	c.slab.free(e.idx, int(e.n))
	*e = cacheEntry{}
	c.free = append(c.free, id-1)
	if id == c.rootID {
		c.rootID = 0
	}
}

// turnIfFull makes the new generation the old one if it is full: the old one's groups leave.
func (c *nodeCache) turnIfFull() {
	if c.bytes >= c.limit {
		for i := range c.ents {
			if e := &c.ents[i]; e.n != 0 && e.gen != c.gen {
				c.drop(uint32(i+1), e)
			}
		}
		c.gen++
		c.bytes = 0
	}
}

// put copies group h into the slab as a new entry of the new generation, with the ids of the
// groups below it that are new too, and returns the entry's id+1.
func (c *nodeCache) put(h Hash, g *group, ids *[2][]uint32) uint32 {
	c.turnIfFull()
	e := cacheEntry{h: h, at: g.at, n: uint8(len(g.nodes)), gen: c.gen}
	c.bytes += e.bytes()
	e.idx = c.slab.alloc(len(g.nodes))
	nodes := c.slab.nodes(e.idx, len(g.nodes))
	copy(nodes, g.nodes)
	// Only the children at the group's foot are other groups: the nodes of slots 7 to 14.
	for s := groupSlots / 2; s < groupSlots; s++ {
		if i := g.at[s]; i > 0 {
			n := &nodes[i-1]
			for k := range n.child {
				if cid := n.child[k].cid; cid&pendingCID != 0 {
					n.child[k].cid = resolveCID(cid, ids)
				}
			}
		}
	}
	var id uint32
	if f := len(c.free); f > 0 {
		id = c.free[f-1]
		c.free = c.free[:f-1]
	} else {
		id = uint32(len(c.ents))
		c.ents = append(c.ents, cacheEntry{})
	}
	c.ents[id] = e
	return id + 1
}

func (c *nodeCache) reset() {
	c.mu.Lock()
	c.ents, c.free, c.bytes, c.slab, c.root, c.rootID = nil, nil, 0, nodeSlab{}, Hash{}, 0
	c.gen++
	c.mu.Unlock()
}

// slabChunkNodes is how many nodes a chunk of the slab holds (2.5 MB).
const slabChunkNodes = 1 << 14

// nodeSlab holds the cached groups' nodes in chunks without pointers. A group's nodes are a run
// of 1 to groupSlots nodes; a freed run is kept, by length, for the next group of that length or
// shorter. Its memory is that of the most nodes it held at once: the cache's limit, as before.
type nodeSlab struct {
	chunks [][]inner
	used   int                      // nodes handed out of the last chunk
	runs   [groupSlots + 1][]uint32 // free runs by length
}

// alloc returns the index of a run of n nodes (1 <= n <= groupSlots).
func (s *nodeSlab) alloc(n int) uint32 {
	for m := n; m <= groupSlots; m++ {
		if f := s.runs[m]; len(f) > 0 {
			idx := f[len(f)-1]
			s.runs[m] = f[:len(f)-1]
			if m > n {
				s.runs[m-n] = append(s.runs[m-n], idx+uint32(n))
			}
			return idx
		}
	}
	if len(s.chunks) == 0 || s.used+n > slabChunkNodes {
		if rest := slabChunkNodes - s.used; len(s.chunks) > 0 && rest > 0 {
			s.runs[rest] = append(s.runs[rest], uint32(len(s.chunks)*slabChunkNodes-rest))
		}
		s.chunks = append(s.chunks, make([]inner, slabChunkNodes))
		s.used = 0
	}
	idx := uint32((len(s.chunks)-1)*slabChunkNodes + s.used)
	s.used += n
	return idx
}

// free returns the run of n nodes at idx.
func (s *nodeSlab) free(idx uint32, n int) {
	if n > 0 {
		s.runs[n] = append(s.runs[n], idx)
	}
}

// nodes is the run of n nodes at idx.
func (s *nodeSlab) nodes(idx uint32, n int) []inner {
	c := s.chunks[idx/slabChunkNodes]
	o := int(idx % slabChunkNodes)
	return c[o : o+n : o+n]
}
