package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// pruneRun is a tree updated by random write sets, one per version: its root and entries after
// each.
type pruneRun struct {
	roots  []Hash
	models []map[string][]byte
	keys   [][]byte
}

// runTreeChain applies rounds random write sets to a tree on db, at versions 0, 1, ...: some
// big enough for update's two goroutines, with deletes, new keys, and values written again
// unchanged. After each round, if keep > 0, it prunes the versions before round-keep, at most
// budget records a call in batches of batch, as a node does after each block.
func runTreeChain(t *testing.T, db kv.Store, seed int64, rounds, keep, budget, batch int) *pruneRun {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	tr := &tree{db: db, cache: newNodeCache()}
	tr.cache.limit = 16 << 10 // generations turn over: cached or not must not matter
	model := map[string][]byte{}
	run := &pruneRun{}
	root := Hash{}
	var earliest uint64
	for round := 0; round < rounds; round++ {
		ws := &writeSet{}
		n := 10 + rng.Intn(150)
		if round < 2 || round%7 == 3 {
			n = 700
		}
		picked := map[string]bool{}
		for range n {
			var k []byte
			if len(run.keys) > 0 && rng.Intn(2) == 0 {
				k = run.keys[rng.Intn(len(run.keys))]
			} else {
				k = randomKey(rng)
				run.keys = append(run.keys, k)
			}
			if picked[string(k)] {
				continue
			}
			picked[string(k)] = true
			old, had := model[string(k)]
			switch r := rng.Intn(8); {
			case r == 0:
				ws.entries = append(ws.entries, writeEntry{key: k, deleted: true})
				delete(model, string(k))
			case r == 1 && had:
				ws.entries = append(ws.entries, writeEntry{key: k, value: bytes.Clone(old)})
			default:
				v := make([]byte, rng.Intn(20))
				rng.Read(v)
				ws.entries = append(ws.entries, writeEntry{key: k, value: v})
				model[string(k)] = v
			}
		}
		next, tw, err := tr.update(root, uint64(round), ws)
		if err != nil {
			t.Fatal(err)
		}
		if want := specRoot(model); next != want {
			t.Fatalf("round %d: root %x, spec says %x", round, next, want)
		}
		applyBlockWrites(t, db, tr, ws, tw)
		root = next
		snapshot := make(map[string][]byte, len(model))
		for k, v := range model {
			snapshot[k] = v
		}
		run.roots = append(run.roots, root)
		run.models = append(run.models, snapshot)
		if keep > 0 && round >= keep {
			if _, err := pruneTree(db, earliest, uint64(round-keep), budget, batch, func(e uint64) { earliest = e }); err != nil {
				t.Fatal(err)
			}
		}
	}
	return run
}

// pruneAll prunes db's tree before below to the end, and returns the earliest whole height.
func pruneAll(t *testing.T, db kv.Store, below uint64) uint64 {
	t.Helper()
	earliest, err := readTreeEarliest(db)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		n, err := pruneTree(db, earliest, below, 1000, 64, func(e uint64) { earliest = e })
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && earliest >= below {
			return earliest
		}
		if i > 10000 {
			t.Fatal("pruning does not end")
		}
	}
}

// treeKeys is the set of store keys of root's records: its root record, groups and leaves. It
// reads the store alone (a fresh cache), so a missing record fails.
func treeKeys(t *testing.T, db kv.Store, root Hash, into map[string]bool) {
	t.Helper()
	if root == (Hash{}) {
		return
	}
	tr := &tree{db: db, cache: newNodeCache()}
	r, err := tr.rootRef(root)
	if err != nil {
		t.Fatal(err)
	}
	into[string(rootKey(root))] = true
	var visit func(r ref, g *group, slot, depth int)
	visit = func(r ref, g *group, slot, depth int) {
		switch r.kind {
		case kindEmpty:
			return
		case kindLeaf:
			into[string(nodeKey(r.ver, r.h))] = true
			return
		}
		if depth%groupLevels == 0 {
			into[string(nodeKey(r.ver, r.h))] = true
			var err error
			if g, err = tr.loadGroup(r); err != nil {
				t.Fatal(err)
			}
			slot = 0
		}
		n := g.node(slot)
		visit(n.child[0], g, 2*slot+1, depth+1)
		visit(n.child[1], g, 2*slot+2, depth+1)
	}
	visit(r, nil, 0, 0)
}

// checkPruned checks db after pruning before earliest: it holds exactly the records of the
// trees from earliest on (none that only pruned trees named), and the stale index of later
// versions only; and every key (of the first keys) proves, at every kept version, the value it had then.
func checkPruned(t *testing.T, db kv.Store, run *pruneRun, earliest uint64, keys int) {
	t.Helper()
	want := map[string]bool{}
	for v := earliest; v < uint64(len(run.roots)); v++ {
		treeKeys(t, db, run.roots[v], want)
	}
	it, err := db.Iterator([]byte(treePrefix), []byte("t0"))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	held := 0
	for ; it.Valid(); it.Next() {
		k := it.Key()
		switch {
		case k[len(treePrefix)] == treeNodeTag && len(k) == staleKeyLen:
			if v := binary.BigEndian.Uint64(k[len(treePrefix)+1:]); v <= earliest {
				t.Fatalf("store holds stale index %x of a pruned version (earliest %d)", k, earliest)
			}
		case k[len(treePrefix)] == treeRootTag, k[len(treePrefix)] == treeNodeTag:
			held++
			if !want[string(k)] {
				t.Fatalf("store holds tree record %x, which no tree from version %d on names", k, earliest)
			}
		}
	}
	if held != len(want) {
		t.Fatalf("store holds %d tree records, the kept trees name %d", held, len(want))
	}
	tr := &tree{db: db, cache: newNodeCache()}
	for v := earliest; v < uint64(len(run.roots)); v++ {
		root := run.roots[v]
		for _, k := range append(run.keys[:min(keys, len(run.keys)):min(keys, len(run.keys))], []byte("a/never")) {
			p, err := tr.prove(root, k)
			if err != nil {
				t.Fatalf("version %d, key %x: %v", v, k, err)
			}
			val, ok := run.models[v][string(k)]
			if p.Present != ok || !bytes.Equal(p.Value, val) {
				t.Fatalf("version %d, key %x: proof says present=%v %x, model %v %x", v, k, p.Present, p.Value, ok, val)
			}
			if err := p.Verify(root); err != nil {
				t.Fatalf("version %d, key %x: %v", v, k, err)
			}
		}
	}
}

// TestPruneTree prunes a tree as it grows, with budgets and batches small enough that a prune
// stops in the middle of a version's records and goes on at the next call, and checks that the
// store ends up with the records of the kept trees alone, each of them whole, with the same
// roots (the spec's) on every backend.
func TestPruneTree(t *testing.T) {
	const rounds, keep = 24, 5
	for _, b := range []kv.Backend{kv.MemDB, kv.GoLevelDB, kv.PebbleDB} {
		t.Run(string(b), func(t *testing.T) {
			db := openStore(t, b, t.TempDir())
			defer db.Close()
			run := runTreeChain(t, db, 7, rounds, keep, 300, 64)
			earliest := pruneAll(t, db, rounds-1-keep)
			if earliest != rounds-1-keep {
				t.Fatalf("earliest whole version %d, want %d", earliest, rounds-1-keep)
			}
			keys := len(run.keys)
			if b != kv.MemDB {
				keys = 1000
			}
			checkPruned(t, db, run, earliest, keys)
			// Pruning up to the latest version keeps its tree.
			earliest = pruneAll(t, db, rounds-1)
			checkPruned(t, db, run, earliest, keys)
		})
	}
}

// TestPruneTreeDeletes: a prune of a tree grown without pruning deletes records, and keeps the
// trees from its bound on whole.
func TestPruneTreeDeletes(t *testing.T) {
	db := openStore(t, kv.MemDB, "")
	defer db.Close()
	run := runTreeChain(t, db, 3, 12, 0, 0, 0)
	before := countPrefix(t, db, treePrefix+string(treeNodeTag))
	earliest := pruneAll(t, db, 11)
	after := countPrefix(t, db, treePrefix+string(treeNodeTag))
	if after >= before {
		t.Fatalf("pruning to version 11 of 12 left %d of %d records", after, before)
	}
	checkPruned(t, db, run, earliest, len(run.keys))
}

func countPrefix(t *testing.T, db kv.Store, prefix string) int {
	t.Helper()
	end := []byte(prefix)
	end[len(end)-1]++
	it, err := db.Iterator([]byte(prefix), end)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ; it.Valid(); it.Next() {
		n++
	}
	return n
}

// failingStore fails the failAt-th batch written through it: dropped, or written and then
// reported failed (land).
type failingStore struct {
	kv.Store
	writes, failAt int
	land           bool
}

func (f *failingStore) NewBatch() kv.Batch { return &failingBatch{Batch: f.Store.NewBatch(), f: f} }

type failingBatch struct {
	kv.Batch
	f *failingStore
}

func (b *failingBatch) Write() error { return b.write(b.Batch.Write) }

func (b *failingBatch) WriteNoSync() error { return b.write(b.Batch.WriteNoSync) }

func (b *failingBatch) write(w func() error) error {
	b.f.writes++
	if b.f.writes != b.f.failAt {
		return w()
	}
	if b.f.land {
		if err := w(); err != nil {
			return err
		}
	}
	return errInjected
}

// TestPruneTreeCrash fails the disk at each batch of a prune in turn: the store left (as a
// process that reopens it finds it) proves every kept tree, holds the earliest whole height it
// says, and a prune started again finishes the job.
func TestPruneTreeCrash(t *testing.T) {
	const rounds, below = 10, 6
	orig := openStore(t, kv.MemDB, "")
	defer orig.Close()
	run := runTreeChain(t, orig, 11, rounds, 0, 0, 0)
	for _, land := range []bool{false, true} {
		for failAt := 1; ; failAt++ {
			db := cloneStore(t, orig)
			f := &failingStore{Store: db, failAt: failAt, land: land}
			var earliest uint64
			_, err := pruneTree(f, 0, below, 1<<30, 150, func(e uint64) { earliest = e })
			if err == nil {
				db.Close()
				if failAt < 3 {
					t.Fatalf("a prune of %d versions wrote %d batches", below, failAt-1)
				}
				t.Logf("land=%v: failed each of %d batches", land, failAt-1)
				break
			}
			if !errors.Is(err, errInjected) {
				t.Fatal(err)
			}
			// Reopened: the store says which trees are whole, and they are.
			stored, err := readTreeEarliest(db)
			if err != nil {
				t.Fatal(err)
			}
			if stored > earliest {
				t.Fatalf("batch %d: the store says version %d is the earliest whole one, the prune said %d before writing", failAt, stored, earliest)
			}
			tr := &tree{db: db, cache: newNodeCache()}
			for v := stored; v < rounds; v++ {
				for _, k := range run.keys[:50] {
					p, err := tr.prove(run.roots[v], k)
					if err != nil {
						t.Fatalf("land=%v batch %d: version %d: %v", land, failAt, v, err)
					}
					if err := p.Verify(run.roots[v]); err != nil {
						t.Fatal(err)
					}
				}
			}
			checkPruned(t, db, run, pruneAll(t, db, below), 200)
			db.Close()
		}
	}
}

// TestProveAtPruned: through State, a proof or a snapshot after a pruned block fails with
// ErrPruned naming the earliest provable height, also once the store is reopened; those from it
// on verify.
func TestProveAtPruned(t *testing.T) {
	a, b := newTestKey(1), newTestKey(2)
	s, db := newTestState(t, kv.PebbleDB, []GenesisAccount{{Address: a.addr, Balance: 1000}, {Address: b.addr, Balance: 1000}})
	roots := []Hash{s.Root()}
	for h := uint64(1); h <= 8; h++ {
		mustApply(t, s, h, [][]byte{rawTransfer(t, a, h-1, b.addr, 1)}, nil)
		roots = append(roots, s.Root())
	}
	key := accountKey(b.addr)
	if n, err := s.PruneTree(5, 1<<20); err != nil || n == 0 {
		t.Fatalf("pruned %d records: %v", n, err)
	}
	for _, st := range []*State{s, reopen(t, db)} {
		if e := st.TreeEarliest(); e != 5 {
			t.Fatalf("earliest %d, want 5", e)
		}
		for h := uint64(0); h <= 8; h++ {
			p, err := st.ProveAt(h, roots[h], key[:])
			if h < 5 {
				if !errors.Is(err, ErrPruned) || !bytes.Contains([]byte(err.Error()), []byte("earliest provable height is 5")) {
					t.Fatalf("height %d: %v, want ErrPruned", h, err)
				}
				if _, err := st.WriteSnapshot(h, roots[h], 1<<10, func(int, []byte) error { return nil }); !errors.Is(err, ErrPruned) {
					t.Fatalf("snapshot at %d: %v, want ErrPruned", h, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("height %d: %v", h, err)
			}
			if err := p.Verify(roots[h]); err != nil {
				t.Fatal(err)
			}
			if acct, err := decodeAccount(p.Value); err != nil || acct.Balance != 1000+h {
				t.Fatalf("height %d: %+v %v", h, acct, err)
			}
		}
	}
}

func reopen(t *testing.T, db kv.Store) *State {
	t.Helper()
	s, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cloneStore is a memdb copy of db.
func cloneStore(t *testing.T, db kv.Store) kv.Store {
	t.Helper()
	c := openStore(t, kv.MemDB, "")
	it, err := db.Iterator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	b := c.NewBatch()
	defer b.Close()
	for ; it.Valid(); it.Next() {
		if err := b.Set(bytes.Clone(it.Key()), bytes.Clone(it.Value())); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPruneAfterRestore: a restored state proves from its snapshot's height on (ErrPruned
// before), and a prune deletes the records the restore made and replaced chunk by chunk, which
// no tree names.
func TestPruneAfterRestore(t *testing.T) {
	src, _ := snapshotSource(t, 300)
	m, chunks := takeSnapshot(t, src, 1024)
	db := openStore(t, kv.MemDB, "")
	defer db.Close()
	if err := restoreAll(db, m, chunks); err != nil {
		t.Fatal(err)
	}
	s := reopen(t, db)
	if e := s.TreeEarliest(); e != 1 {
		t.Fatalf("restored at 1: earliest %d", e)
	}
	key := accountKey(newTestKey(1).addr)
	if _, err := s.ProveAt(0, s.Root(), key[:]); !errors.Is(err, ErrPruned) {
		t.Fatalf("proof before the snapshot: %v, want ErrPruned", err)
	}
	for h := uint64(2); h <= 3; h++ {
		mustApply(t, s, h, [][]byte{rawTransfer(t, newTestKey(30+int(h)), 0, newTestKey(1).addr, 5)}, nil)
	}
	before := countPrefix(t, db, treePrefix+string(treeNodeTag))
	if n, err := s.PruneTree(3, 1<<20); err != nil || n == 0 {
		t.Fatalf("pruned %d: %v", n, err)
	}
	want := map[string]bool{}
	treeKeys(t, db, s.Root(), want)
	if got := countPrefix(t, db, treePrefix+string(treeRootTag)) + countPrefix(t, db, treePrefix+string(treeNodeTag)) - countStale(t, db); got != len(want) {
		t.Fatalf("after pruning to the tip: %d tree records (%d before), the tree names %d", got, before, len(want))
	}
	p, err := s.ProveAt(3, s.Root(), key[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(s.Root()); err != nil {
		t.Fatal(err)
	}
}

// countStale is how many stale index records db holds.
func countStale(t *testing.T, db kv.Store) int {
	t.Helper()
	it, err := db.Iterator([]byte(treePrefix+string(treeNodeTag)), []byte(treePrefix+string(treeNodeTag+1)))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ; it.Valid(); it.Next() {
		if len(it.Key()) == staleKeyLen {
			n++
		}
	}
	return n
}
