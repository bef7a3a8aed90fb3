package state

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// withIngestFrom sets ingestMinBytes for a test: 0 ingests every block's run.
func withIngestFrom(t *testing.T, n int) {
	t.Helper()
	old := ingestMinBytes
	ingestMinBytes = n
	t.Cleanup(func() { ingestMinBytes = old })
}

// diffDumps names a difference between two dumps, or is "".
func diffDumps(a, b map[string]string) string {
	for k, v := range a {
		if w, ok := b[k]; !ok {
			return fmt.Sprintf("key %x only in the first", k)
		} else if w != v {
			return fmt.Sprintf("key %x differs", k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return fmt.Sprintf("key %x only in the second", k)
		}
	}
	return ""
}

// TestIngestedTreeSameStore grows and prunes a tree on pebbledb with every block's run ingested,
// and on pebbledb through the batch: the two stores hold the same keys and values (the records'
// keys, order and stale index are the batch's), and pruning the ingested store leaves the kept
// trees whole and nothing else, as TestPruneTree checks of the batch.
func TestIngestedTreeSameStore(t *testing.T) {
	const rounds, keep = 24, 5
	batched := openStore(t, kv.PebbleDB, t.TempDir())
	defer batched.Close()
	runTreeChain(t, batched, 7, rounds, keep, 300, 64)

	withIngestFrom(t, 0)
	db := openStore(t, kv.PebbleDB, t.TempDir())
	defer db.Close()
	run := runTreeChain(t, db, 7, rounds, keep, 300, 64)
	if d := diffDumps(fullDump(t, batched), fullDump(t, db)); d != "" {
		t.Fatalf("ingested and batched stores differ: %s", d)
	}
	earliest := pruneAll(t, db, rounds-1-keep)
	checkPruned(t, db, run, earliest, 1000)
	earliest = pruneAll(t, db, rounds-1)
	checkPruned(t, db, run, earliest, 1000)
}

// TestIngestThenBatch stops a block's commit between its ingested run and its batch, as a crash
// there would, and checks that the store, reopened, is the state before the block (the run's
// records are there, but no root names them), that the block applied again (ingesting the same
// keys a second time) and the blocks after it give the reference roots, and that the store then
// holds exactly what a store that never stopped holds, before and after pruning. Were the batch
// written first, the store would claim the block with its tree's records missing.
func TestIngestThenBatch(t *testing.T) {
	rc := genRandomChain(t, 5, 10, 40)
	ref := referenceRun(t, rc)
	const stopAt = 4

	// A store that never stopped, through the batch path.
	clean, _ := newTestStateGenesis(t, kv.PebbleDB, rc.genesis)
	seedAccount(t, clean.db, rc.whale.addr, Account{Balance: rc.whaleBal})
	for i := range rc.blocks {
		mustApply(t, clean, uint64(i+1), rc.raws(i), nil)
	}

	withIngestFrom(t, 0)
	dir := t.TempDir()
	db := openStore(t, kv.PebbleDB, dir)
	s, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(rc.genesis); err != nil {
		t.Fatal(err)
	}
	seedAccount(t, db, rc.whale.addr, Account{Balance: rc.whaleBal})
	for h := uint64(1); h < stopAt; h++ {
		mustApply(t, s, h, rc.raws(int(h-1)), nil)
	}
	before := dumpState(t, s, db)
	treeBefore := countPrefix(t, db, treePrefix+string(treeNodeTag))
	stopped := errors.New("stopped between the ingestion and the batch")
	afterIngest = func() error { return stopped }
	_, err = s.ApplyBlock(blockAt(stopAt), rc.raws(stopAt-1), nil)
	afterIngest = nil
	if !errors.Is(err, stopped) {
		t.Fatalf("ApplyBlock: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openStore(t, kv.PebbleDB, dir)
	defer db.Close()
	s, err = Open(db, testChain)
	if err != nil {
		t.Fatalf("reopen after a stop between ingestion and batch: %v", err)
	}
	if s.Height() != stopAt-1 || s.Root() != ref[stopAt-2] {
		t.Fatalf("reopened at height %d root %s, want %d %s", s.Height(), s.Root(), stopAt-1, ref[stopAt-2])
	}
	if dumpState(t, s, db) != before {
		t.Fatal("reopened state is not the state before the block")
	}
	if n := countPrefix(t, db, treePrefix+string(treeNodeTag)); n <= treeBefore {
		t.Fatalf("the stopped block's run is not in the store (%d tree records, %d before): the test stopped nothing", n, treeBefore)
	}
	for h := uint64(stopAt); h <= uint64(len(rc.blocks)); h++ {
		if res := mustApply(t, s, h, rc.raws(int(h-1)), nil); res.Root != ref[h-1] {
			t.Fatalf("height %d: root %s, want %s", h, res.Root, ref[h-1])
		}
	}
	if d := diffDumps(fullDump(t, clean.db), fullDump(t, db)); d != "" {
		t.Fatalf("the store that stopped differs from one that did not: %s", d)
	}
	for _, st := range []*State{clean, s} {
		if _, err := st.PruneTree(uint64(len(rc.blocks)), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if d := diffDumps(fullDump(t, clean.db), fullDump(t, db)); d != "" {
		t.Fatalf("after pruning, the store that stopped differs from one that did not: %s", d)
	}
	key := accountKey(rc.whale.addr)
	p, err := s.Prove(s.Root(), key[:])
	if err != nil || !p.Present {
		t.Fatal(p, err)
	}
	if err := p.Verify(s.Root()); err != nil {
		t.Fatal(err)
	}
}

// TestIngestThreshold: a small block's run goes in its batch, a large one is ingested, and only
// on a store that can.
func TestIngestThreshold(t *testing.T) {
	db := openStore(t, kv.PebbleDB, t.TempDir())
	defer db.Close()
	mem := openStore(t, kv.MemDB, "")
	defer mem.Close()
	tr := &tree{db: db, cache: newNodeCache()}
	ws := &writeSet{}
	for i := range 3000 {
		ws.entries = append(ws.entries, writeEntry{key: fmt.Appendf(nil, "a/%06d", i), value: bytes.Repeat([]byte{1}, 40)})
	}
	_, tw, err := tr.update(Hash{}, 0, ws)
	if err != nil {
		t.Fatal(err)
	}
	if _, size := tw.size(); size < ingestMinBytes {
		if tw.ingests(db) {
			t.Fatalf("a run of %d bytes is ingested", size)
		}
	}
	withIngestFrom(t, 1)
	if !tw.ingests(db) {
		t.Fatal("a large run is not ingested on pebbledb")
	}
	if tw.ingests(mem) {
		t.Fatal("a run is ingested on memdb")
	}
	// The run is sorted, and holds the records and stale index, not the root's record.
	kvs := tw.run(0)
	for i := range kvs {
		if !isRunKey(kvs[i][0]) {
			t.Fatalf("run holds %x", kvs[i][0])
		}
		if i > 0 && bytes.Compare(kvs[i-1][0], kvs[i][0]) >= 0 {
			t.Fatalf("run out of order at %d", i)
		}
	}
}
