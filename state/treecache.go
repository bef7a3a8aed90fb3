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

// nodeCache holds committed groups, so that a block's update reads few or none from the store.
// Two generations approximate LRU: a group found in the old one moves to the new one when the
// block commits, and when the new one is full the old one is dropped. A group a committed block
// replaced leaves the cache (proofs at past roots read the store). Groups are immutable (an
// update changes a copy) and named by their hash, so whether one is cached changes speed, never
// results.
//
// Nothing in the cache holds a pointer (issue 12): the groups' nodes live in large slabs
// (nodeSlab), and the maps hold where, so the garbage collector neither scans the maps nor marks
// hundreds of thousands of groups at each collection, and a committed group takes a slab's free
// run, not an allocation. When each group was an object of its own, marking them and allocating
// the copies were a fifth of a block's commit.
type nodeCache struct {
	mu       sync.RWMutex
	cur, old map[Hash]cacheEntry
	bytes    int // of cur's groups
	limit    int // of bytes
	slab     nodeSlab
	freed    []cacheEntry // runs to free once a commit is done (see commit)
}

// cacheEntry is a cached group: its slot index and where its nodes are in the slab.
type cacheEntry struct {
	at  [groupSlots]int8
	n   uint8
	idx uint32
}

// bytes is about the memory e takes: its nodes, and its map entry.
func (e cacheEntry) bytes() int { return 64 + int(e.n)*int(unsafe.Sizeof(inner{})) }

func newNodeCache() *nodeCache {
	return &nodeCache{cur: make(map[Hash]cacheEntry), old: map[Hash]cacheEntry{}, limit: maxCachedBytes}
}

// view is e's group, in place in the slab: valid until a commit or a reset.
func (c *nodeCache) view(e cacheEntry) *group {
	return &group{at: e.at, nodes: c.slab.nodes(e.idx, int(e.n))}
}

// get returns a copy of group h if cached (the caller may hold it across commits, which reuse the
// slab's runs), and whether it is in the old generation.
func (c *nodeCache) get(h Hash) (g *group, old bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.cur[h]
	if !ok {
		if e, ok = c.old[h]; !ok {
			return nil, false
		}
		old = true
	}
	return &group{at: e.at, nodes: exact(c.slab.nodes(e.idx, int(e.n)))}, old
}

// getInto is get into dst, reusing its nodes' room: a proof reads a group at a time, and one
// allocation a group read made proofs twice as slow (the collector's work on a large heap).
func (c *nodeCache) getInto(h Hash, dst *group) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.cur[h]
	if !ok {
		if e, ok = c.old[h]; !ok {
			return false
		}
	}
	dst.at = e.at
	dst.nodes = append(dst.nodes[:0], c.slab.nodes(e.idx, int(e.n))...)
	return true
}

// has is whether group h is cached.
func (c *nodeCache) has(h Hash) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.cur[h]
	if !ok {
		_, ok = c.old[h]
	}
	return ok
}

// lookup is get without the lock and without the copy, for the goroutines of an update: the
// cache changes only in commit and reset, which run under State.applyMu as updates do, so an
// update never overlaps a write; and a block's writes are committed only if no commit came
// between their update and theirs (a Staged on a stale tip is refused), so the views its update
// kept (treeWrites.seen) are still valid when it commits. (Proofs, on any goroutine, use get.)
func (c *nodeCache) lookup(h Hash) (g *group, old bool) {
	if e, ok := c.cur[h]; ok {
		return c.view(e), false
	}
	if e, ok := c.old[h]; ok {
		return c.view(e), true
	}
	return nil, false
}

// commit records a committed update: the groups it made or read enter, those it replaced leave.
// The runs of the groups that leave are freed only at the end, so that the views in tw.seen stay
// valid while the commit copies them.
func (c *nodeCache) commit(tw *treeWrites) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The maps are large, and each look-up a miss of the processor's caches: a block makes as
	// few as it can (a new group is not looked for in the old generation, where only a group
	// the same as one the tree holds elsewhere could be, and would leave with it).
	for w := tw; w != nil; w = w.next {
		for h, g := range w.seen {
			c.put(h, g, true)
		}
		for i := range w.groups {
			c.put(w.groups[i].h, w.groups[i].g, false)
		}
	}
	for w := tw; w != nil; w = w.next {
		for _, h := range w.replaced {
			// The update read every group it replaced, and the puts above moved those it read
			// from the old generation (unless the new one filled and became the old one).
			if e, ok := c.cur[h]; ok {
				c.bytes -= e.bytes()
				delete(c.cur, h)
				c.freed = append(c.freed, e)
			} else if e, ok := c.old[h]; ok {
				delete(c.old, h)
				c.freed = append(c.freed, e)
			}
		}
	}
	for _, e := range c.freed {
		c.slab.free(e.idx, int(e.n))
	}
	c.freed = c.freed[:0]
}

// put puts group h in the new generation: moved from the old one if there (and fromOld), else
// copied into the slab.
func (c *nodeCache) put(h Hash, g *group, fromOld bool) {
	if _, ok := c.cur[h]; ok {
		return // the same hash is the same group
	}
	if c.bytes >= c.limit {
		for _, e := range c.old {
			c.freed = append(c.freed, e)
		}
		c.old, c.cur, c.bytes = c.cur, make(map[Hash]cacheEntry, len(c.cur)), 0
	}
	var (
		e  cacheEntry
		ok bool
	)
	if fromOld {
		if e, ok = c.old[h]; ok {
			delete(c.old, h)
		}
	}
	if !ok {
		e = cacheEntry{at: g.at, n: uint8(len(g.nodes)), idx: c.slab.alloc(len(g.nodes))}
		copy(c.slab.nodes(e.idx, len(g.nodes)), g.nodes)
	}
	c.bytes += e.bytes()
	c.cur[h] = e
}

func (c *nodeCache) reset() {
	c.mu.Lock()
	c.cur, c.old, c.bytes, c.slab = make(map[Hash]cacheEntry), map[Hash]cacheEntry{}, 0, nodeSlab{}
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
