package state

import (
	"bytes"
	"math/rand"
	"slices"
	"sync/atomic"
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
	// Each commit's group is its root: the cache finds it by the root's entry, then by its cid.
	commit := func(h Hash, g *group, replaced ...cacheRef) ref {
		r := ref{h: h, kind: kindInternal, cid: pendingCID}
		c.commit(&treeWrites{groups: []hashedGroup{{h, g}}, replaced: replaced, root: &r})
		return r
	}
	a, b, d := Hash{1}, Hash{2}, Hash{3}
	ra := commit(a, mk(1))
	got := c.get(ra)
	rb := commit(b, mk(2), cacheRef{a, ra.cid})
	commit(d, mk(3)) // takes a's place in the slab
	if g := c.get(rb); g == nil || g.node(0).child[0].h != (Hash{2}) {
		t.Fatal("group b is not cached")
	}
	if c.get(ra) != nil {
		t.Fatal("replaced group a is still cached")
	}
	if got.node(0).child[0].h != (Hash{1}) {
		t.Fatalf("a copy of group a changed to %x after a commit", got.node(0).child[0].h[:1])
	}
}

// TestNodeCacheSlabBounded commits many blocks to a tree and checks that the cache's slabs stay
// near what its groups hold: freed runs are split but never merged, so fragmentation could
// otherwise make them grow.
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
		for _, e := range tr.cache.ents {
			live += int(e.n)
		}
		peak = max(peak, live)
	}
	// 600 blocks hand out about as much room as 120 (1.37 times the peak): it does not grow.
	s := &tr.cache.slab
	if used := (len(s.chunks)-1)*slabChunkNodes + s.used; used > peak*3/2 {
		t.Fatalf("the slabs have handed out room for %d nodes for at most %d cached", used, peak)
	}
}

// groupGets counts the tree groups read from a store.
type groupGets struct {
	kv.Store
	n atomic.Int64
}

func (s *groupGets) Get(key []byte) ([]byte, error) {
	v, err := s.Store.Get(key)
	if len(v) > 0 && v[0] == groupTag && bytes.HasPrefix(key, []byte(treePrefix+string(treeNodeTag))) {
		s.n.Add(1)
	}
	return v, err
}

// TestNodeCacheFoundByPosition checks that, once the cache holds the tree, an update and a proof
// read no group from the store: the cache finds each group by its parent's cid (or as the root),
// and the commits that replace groups give the new ones theirs. Were a cid missing or wrong, the
// results would be the same (the store has every group), only slower: this is what sees it.
func TestNodeCacheFoundByPosition(t *testing.T) {
	db := &groupGets{Store: openStore(t, kv.MemDB, "")}
	defer db.Close()
	tr := &tree{db: db, cache: newNodeCache()}
	rng := rand.New(rand.NewSource(1))
	ws := &writeSet{}
	keys := map[string]bool{}
	for len(ws.entries) < 20_000 {
		k := randomKey(rng)
		if !keys[string(k)] {
			keys[string(k)] = true
			ws.entries = append(ws.entries, writeEntry{key: k, value: []byte{1}})
		}
	}
	var all [][]byte
	for _, e := range ws.entries {
		all = append(all, e.key)
	}
	root, tw, err := tr.update(Hash{}, 1, ws)
	if err != nil {
		t.Fatal(err)
	}
	applyBlockWrites(t, db, tr, ws, tw)
	tr.last.Store(tw.root)
	for ver := uint64(2); ver < 12; ver++ {
		ws := &writeSet{}
		for _, i := range rng.Perm(len(all))[:600] { // 600 keys: both halves at once
			ws.entries = append(ws.entries, writeEntry{key: all[i], value: []byte{byte(ver)}})
		}
		if ver%3 == 0 { // and some new keys, some deleted
			ws.entries = append(ws.entries, writeEntry{key: randomKey(rng), value: []byte{2}})
			ws.entries = append(ws.entries, writeEntry{key: all[ver], deleted: true})
		}
		slices.SortFunc(ws.entries, func(a, b writeEntry) int { return bytes.Compare(a.key, b.key) })
		ws.entries = slices.CompactFunc(ws.entries, func(a, b writeEntry) bool { return bytes.Equal(a.key, b.key) })
		before := db.n.Load()
		if root, tw, err = tr.update(root, ver, ws); err != nil {
			t.Fatal(err)
		}
		if n := db.n.Load() - before; n != 0 {
			t.Fatalf("block %d: the update read %d groups from the store", ver, n)
		}
		applyBlockWrites(t, db, tr, ws, tw)
		tr.last.Store(tw.root)
		before = db.n.Load()
		for _, k := range all[:200] {
			if _, err := tr.prove(root, k); err != nil {
				t.Fatal(err)
			}
		}
		if n := db.n.Load() - before; n != 0 {
			t.Fatalf("block %d: 200 proofs read %d groups from the store", ver, n)
		}
	}
}
