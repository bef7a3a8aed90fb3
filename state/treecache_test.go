package state

import (
	"bytes"
	"math/rand"
	"slices"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// TestNodeSlabRuns checks that the slab never hands out a run that overlaps one in use: runs
// freed are reused, split when longer than asked, and a chunk's tail too short for a run is kept
// for shorter ones.
func TestNodeSlabRuns(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var s nodeSlab
	type run struct {
		idx uint32
		n   int
	}
	owner := map[uint32]int{} // node index -> run id
	var live []run
	for step := range 100_000 {
		if len(live) > 0 && rng.Intn(5) < 2 { // live runs grow: chunks fill up
			i := rng.Intn(len(live))
			r := live[i]
			for j := range r.n {
				delete(owner, r.idx+uint32(j))
			}
			s.free(r.idx, r.n)
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			continue
		}
		n := 1 + rng.Intn(groupSlots)
		idx := s.alloc(n)
		if int(idx%slabChunkNodes)+n > slabChunkNodes {
			t.Fatalf("step %d: run of %d at %d crosses a chunk", step, n, idx)
		}
		for j := range n {
			if o, ok := owner[idx+uint32(j)]; ok {
				t.Fatalf("step %d: run of %d at %d overlaps run %d", step, n, idx, o)
			}
			owner[idx+uint32(j)] = step
		}
		// Marks in the nodes themselves: what another run's writes would overwrite.
		for j := range s.nodes(idx, n) {
			s.nodes(idx, n)[j].child[0].ver = uint64(step)
		}
		live = append(live, run{idx, n})
	}
	for _, r := range live {
		for _, nd := range s.nodes(r.idx, r.n) {
			if got := owner[r.idx]; nd.child[0].ver != uint64(got) {
				t.Fatalf("run at %d holds %d, written by run %d", r.idx, nd.child[0].ver, got)
			}
		}
	}
	nodes := 0
	for _, r := range live {
		nodes += r.n
	}
	if len(s.chunks) < 10 {
		t.Fatalf("%d chunks: the test no longer fills chunks", len(s.chunks))
	}
	// Freed runs are reused: the slab stays near what is live at the end (which grew all along).
	if limit := 2 * nodes / slabChunkNodes; len(s.chunks) > limit+2 {
		t.Fatalf("%d chunks for %d live runs: freed runs are not reused", len(s.chunks), len(live))
	}
}

// TestNodeCacheGetCopies checks that a group got from the cache (as a proof gets it, on any
// goroutine) stays as it was after a commit replaces it and reuses its place in the slab.
func TestNodeCacheGetCopies(t *testing.T) {
	c := newNodeCache()
	mk := func(b byte) *group {
		g := &group{}
		g.set(0, inner{child: [2]ref{{h: Hash{b}, kind: kindLeaf}, {h: Hash{b, 1}, kind: kindLeaf}}})
		return g
	}
	a, b, d := Hash{1}, Hash{2}, Hash{3}
	c.commit(&treeWrites{groups: []hashedGroup{{a, mk(1)}}})
	got, _ := c.get(a)
	c.commit(&treeWrites{groups: []hashedGroup{{b, mk(2)}}, replaced: []Hash{a}})
	c.commit(&treeWrites{groups: []hashedGroup{{d, mk(3)}}}) // takes a's place in the slab
	if g, _ := c.get(b); g == nil || g.node(0).child[0].h != (Hash{2}) {
		t.Fatal("group b is not cached")
	}
	if c.has(a) {
		t.Fatal("replaced group a is still cached")
	}
	if got.node(0).child[0].h != (Hash{1}) {
		t.Fatalf("a copy of group a changed to %x after a commit", got.node(0).child[0].h[:1])
	}
}

// TestNodeCacheSlabBounded commits many blocks to a tree and checks that the cache's slabs stay
// near what its groups hold: freed runs are split but never merged, and a block allocates its new
// groups before it frees those it replaced, so fragmentation could otherwise make them grow.
func TestNodeCacheSlabBounded(t *testing.T) {
	db := openStore(t, kv.MemDB, "")
	defer db.Close()
	tr := &tree{db: db, cache: newNodeCache()}
	rng := rand.New(rand.NewSource(1))
	keys := make([][]byte, 10_000)
	ws := &writeSet{}
	for i := range keys {
		keys[i] = randomKey(rng)
		ws.entries = append(ws.entries, writeEntry{key: keys[i], value: []byte{byte(i)}})
	}
	slices.SortFunc(ws.entries, func(a, b writeEntry) int { return bytes.Compare(a.key, b.key) })
	ws.entries = slices.CompactFunc(ws.entries, func(a, b writeEntry) bool { return bytes.Equal(a.key, b.key) })
	keys = keys[:0]
	for _, e := range ws.entries {
		keys = append(keys, e.key)
	}
	root, tw, err := tr.update(Hash{}, 1, ws)
	if err != nil {
		t.Fatal(err)
	}
	applyBlockWrites(t, db, tr, ws, tw)
	var peak int
	for ver := uint64(2); ver < 120; ver++ {
		ws := &writeSet{}
		seen := map[int]bool{}
		for len(ws.entries) < 300 {
			k := rng.Intn(len(keys))
			if !seen[k] {
				seen[k] = true
				ws.entries = append(ws.entries, writeEntry{key: keys[k], value: []byte{byte(ver), byte(k)}})
			}
		}
		if root, tw, err = tr.update(root, ver, ws); err != nil {
			t.Fatal(err)
		}
		applyBlockWrites(t, db, tr, ws, tw)
		live := 0
		for _, m := range []map[Hash]cacheEntry{tr.cache.cur, tr.cache.old} {
			for _, e := range m {
				live += int(e.n)
			}
		}
		peak = max(peak, live)
	}
	// 600 blocks hand out about as much room as 120 (1.37 times the peak): it does not grow.
	s := &tr.cache.slab
	if used := (len(s.chunks)-1)*slabChunkNodes + s.used; used > peak*3/2 {
		t.Fatalf("the slabs have handed out room for %d nodes for at most %d cached", used, peak)
	}
}
