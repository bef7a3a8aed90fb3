package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/state/kv"
	"github.com/guild-ledger/guild/state/merkle"
)

// applyTreeWrites writes a tree update's nodes, as commit does.
func applyTreeWrites(t testing.TB, db kv.Store, tr *tree, tw *treeWrites) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	ingest := tw.ingests(db)
	if err := tw.stage(b, 0, !ingest); err != nil {
		t.Fatal(err)
	}
	if err := tr.writeAndCache(b, tw, ingest, false); err != nil {
		t.Fatal(err)
	}
}

// applyBlockWrites writes a block's entries and tree nodes in one batch, as State.commit does.
func applyBlockWrites(t testing.TB, db kv.Store, tr *tree, ws *writeSet, tw *treeWrites) {
	t.Helper()
	b := kv.NewBatchSized(db, batchSize(ws, tw))
	defer b.Close()
	for _, e := range ws.entries {
		if err := b.Set(e.key, e.value); err != nil {
			t.Fatal(err)
		}
	}
	ingest := tw.ingests(db)
	if err := tw.stage(b, 0, !ingest); err != nil {
		t.Fatal(err)
	}
	if err := tr.writeAndCache(b, tw, ingest, false); err != nil {
		t.Fatal(err)
	}
	tr.scratch.release(tw) // the next update reuses the scratch, as after State.commit
}

func randomKey(rng *rand.Rand) []byte {
	k := make([]byte, 1+rng.Intn(12))
	rng.Read(k)
	return append([]byte("r/x/"), k...)
}

// TestTreeProperty updates a tree with random write sets and checks, after each, that its root
// is the spec's root of the model, that a proof of every key (present, deleted, never written)
// verifies with the model's value, that every proof of an earlier root still verifies with the
// value of then, and that any tampering with a proof makes it fail.
func TestTreeProperty(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			db := openStore(t, kv.MemDB, "")
			defer db.Close()
			tr := &tree{db: db, cache: newNodeCache()}
			tr.cache.limit = 8 << 10 // generations turn over: cached or not must not matter
			model := map[string][]byte{}
			var keys [][]byte
			type past struct {
				root  Hash
				model map[string][]byte
			}
			var history []past
			root := Hash{}
			for round := 0; round < 25; round++ {
				ws := &writeSet{}
				n := rng.Intn(40)
				if round < 3 {
					// Big enough for the two-goroutine path, which needs a root with two children
					// (so not in round 0, which starts from the empty tree).
					n = 700
				}
				picked := map[string]bool{}
				for range n {
					var k []byte
					if len(keys) > 0 && rng.Intn(2) == 0 {
						k = keys[rng.Intn(len(keys))]
					} else {
						k = randomKey(rng)
						keys = append(keys, k)
					}
					if picked[string(k)] {
						continue
					}
					picked[string(k)] = true
					if rng.Intn(4) == 0 {
						ws.entries = append(ws.entries, writeEntry{key: k, deleted: true})
						delete(model, string(k))
					} else {
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
				applyTreeWrites(t, db, tr, tw)
				root = next
				snapshot := map[string][]byte{}
				for k, v := range model {
					snapshot[k] = v
				}
				history = append(history, past{root, snapshot})
			}
			unknown := [][]byte{[]byte("a/never"), randomKey(rng), randomKey(rng)}
			for _, h := range history {
				for _, k := range append(keys, unknown...) {
					p, err := tr.prove(h.root, k)
					if err != nil {
						t.Fatal(err)
					}
					want, ok := h.model[string(k)]
					if p.Present != ok || !bytes.Equal(p.Value, want) {
						t.Fatalf("key %x: proof says present=%v %x, model %v %x", k, p.Present, p.Value, ok, want)
					}
					if err := p.Verify(h.root); err != nil {
						t.Fatalf("key %x: %v", k, err)
					}
					checkTampered(t, rng, p, h.root, h.model)
				}
			}
		})
	}
}

// checkTampered changes a proof in one way at random and expects it to fail.
// A non-inclusion proof whose key changes may still be true of the new key, whose path can end
// at the same empty subtree or leaf: that is accepted only if the new key is indeed absent.
func checkTampered(t *testing.T, rng *rand.Rand, p *merkle.StateProof, root Hash, model map[string][]byte) {
	t.Helper()
	q := *p
	q.Key = bytes.Clone(p.Key)
	q.Value = bytes.Clone(p.Value)
	q.Siblings = append([]merkle.Hash(nil), p.Siblings...)
	switch c := rng.Intn(5); {
	case c == 0 && len(q.Siblings) > 0:
		i := rng.Intn(len(q.Siblings))
		q.Siblings[i][rng.Intn(32)] ^= 1 << rng.Intn(8)
	case c == 1:
		q.Key[rng.Intn(len(q.Key))] ^= 1 << rng.Intn(8)
	case c == 2 && q.Present:
		q.Value = append(q.Value, 0)
	case c == 3:
		q.Present = !q.Present
		if !q.Present {
			q.Value = nil
		}
	default:
		q.Siblings = append(q.Siblings, merkle.Hash{})
	}
	if err := q.Verify(root); err == nil {
		if _, ok := model[string(q.Key)]; !q.Present && !ok && !bytes.Equal(q.Key, p.Key) {
			return
		}
		t.Fatalf("tampered proof of %x verifies: %+v was %+v", p.Key, q, *p)
	} else if !errors.Is(err, merkle.ErrPathMismatch) && !errors.Is(err, merkle.ErrMalformed) {
		t.Fatalf("tampered proof: %v", err)
	}
}

// TestStateProofs proves entries of a real state: an account, a notary anchor, and the absence
// of an unknown claim, against the root after the block and against the genesis root.
func TestStateProofs(t *testing.T) {
	alice := newTestKey(1)
	s, _ := newTestState(t, kv.PebbleDB, []GenesisAccount{{Address: alice.addr, Balance: 100}})
	genesis := s.Root()
	doc := Hash{0xd0}
	_, raw := signedTx(t, alice, TxBody{ChainID: testChain, From: alice.addr, NotaryAnchor: &NotaryAnchor{Hash: doc}})
	if res := mustApply(t, s, 1, [][]byte{raw}, nil); res.Results[0].Err != nil {
		t.Fatal(res.Results[0].Err)
	}
	for _, c := range []struct {
		root    Hash
		kind    string
		args    []string
		present bool
	}{
		{s.Root(), KindAccount, []string{alice.addr.String()}, true},
		{s.Root(), KindNotary, []string{doc.String()}, true},
		{genesis, KindNotary, []string{doc.String()}, false},
		{s.Root(), KindClaim, []string{"no-such-claim"}, false},
		{s.Root(), KindGovernance, nil, true},
	} {
		key, err := StateKey(c.kind, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Prove(c.root, key)
		if err != nil {
			t.Fatal(err)
		}
		if p.Present != c.present {
			t.Fatalf("%s %v: present %v, want %v", c.kind, c.args, p.Present, c.present)
		}
		if err := p.Verify(c.root); err != nil {
			t.Fatalf("%s %v: %v", c.kind, c.args, err)
		}
	}
	if acct, err := s.Account(alice.addr); err != nil || acct.Nonce != 1 {
		t.Fatal(acct, err)
	}
}

var (
	benchTreeKeys    = flag.Int("tree.keys", 1_000_000, "entries in the state tree of BenchmarkTreeUpdate")
	benchTreeChanged = flag.Int("tree.changed", 4_000, "keys a block of BenchmarkTreeUpdate changes (two a transfer)")
	benchTreeProfile = flag.String("tree.cpuprofile", "", "write a CPU profile of BenchmarkTreeUpdate's blocks, without its setup, to this file")
)

// BenchmarkTreeUpdate measures one block's tree update on a tree of -tree.keys entries (a
// million accounts by default), for a block of 2,000 transfers (-tree.changed, 4,000 changed
// accounts by default):
// execute (the root, as a validator computes it before voting: hashing, node reads, staging the
// new nodes), commit (execute, then the synchronous write of the new nodes, cache included),
// and proof generation. It reports CPU and wall time per changed key and per block, and what a
// block adds to the store ("nodes/block" counts records: groups, leaves and the root's).
//
//	go test -run XXX -bench BenchmarkTreeUpdate -benchtime 20x ./state/ [-args -tree.keys 200000] [-tree.changed 2000] [-tree.cpuprofile FILE]
func BenchmarkTreeUpdate(b *testing.B) {
	changed := *benchTreeChanged
	accounts := *benchTreeKeys
	for _, backend := range []kv.Backend{kv.PebbleDB, kv.MemDB} {
		b.Run(string(backend), func(b *testing.B) {
			dir := b.TempDir()
			db := openStore(b, backend, dir)
			defer db.Close()
			tr := &tree{db: db, cache: newNodeCache()}
			rng := rand.New(rand.NewSource(1))
			// Keys as arrays, not slices: a million pointers would make the collector, not the
			// tree, much of what the benchmark measures.
			keys := make([][len(accountPrefix) + AddressLen]byte, accounts)
			ws := &writeSet{}
			for i := range keys {
				var a Address
				rng.Read(a[:])
				keys[i] = accountKey(a)
				ws.entries = append(ws.entries, writeEntry{key: keys[i][:], value: appendAccount(nil, Account{Balance: uint64(i)})})
			}
			root, tw, err := tr.update(Hash{}, 0, ws)
			if err != nil {
				b.Fatal(err)
			}
			// The initial state goes in in pieces: one batch of millions of nodes is no block.
			var all [][2][]byte
			for _, e := range ws.entries {
				all = append(all, [2][]byte{e.key, e.value})
			}
			for w := tw; w != nil; w = w.next {
				all = append(all, w.nodes...)
			}
			for len(all) > 0 {
				n := min(len(all), 100_000)
				batch := db.NewBatch()
				for _, kv := range all[:n] {
					if err := batch.Set(kv[0], kv[1]); err != nil {
						b.Fatal(err)
					}
				}
				if err := batch.WriteNoSync(); err != nil {
					b.Fatal(err)
				}
				batch.Close()
				all = all[n:]
			}
			tr.cache.commit(tw)
			tw, ws = nil, nil
			if err := kv.Compact(db); err != nil {
				b.Fatal(err)
			}
			ver := uint64(0) // the version of root
			// -test.cpuprofile would mostly show the setup (building and compacting the
			// initial tree); the store's background work and the collector carry no label.
			if *benchTreeProfile != "" {
				f, err := os.Create(*benchTreeProfile)
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				defer func() {
					pprof.StopCPUProfile()
					f.Close()
				}()
			}
			blockWrites := func(i int) *writeSet {
				ws := &writeSet{}
				seen := map[int]bool{}
				for j := 0; len(ws.entries) < changed; j++ {
					k := rng.Intn(len(keys)) // a key at most once, as in a real write set
					if !seen[k] {
						seen[k] = true
						ws.entries = append(ws.entries, writeEntry{key: keys[k][:], value: appendAccount(nil, Account{Balance: uint64(i), Nonce: uint64(j)})})
					}
				}
				return ws
			}
			report := func(b *testing.B, cpu time.Duration) {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*changed), "cpu-ns/key")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/1000, "cpu-ms/block")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*changed), "ns/key")
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/block")
			}
			b.Run(fmt.Sprintf("execute-%d-transfers", changed/2), func(b *testing.B) {
				var cpu time.Duration
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					ws := blockWrites(i)
					b.StartTimer()
					c0 := processCPU()
					var err error
					// Labelled, so that a profile (-cpuprofile, then pprof -tagfocus phase=execute)
					// shows the blocks apart from the setup.
					pprof.Do(context.Background(), pprof.Labels("phase", "execute"), func(context.Context) {
						_, _, err = tr.update(root, ver+1, ws)
					})
					if err != nil {
						b.Fatal(err)
					}
					cpu += processCPU() - c0
				}
				report(b, cpu)
			})
			b.Run(fmt.Sprintf("commit-%d-transfers", changed/2), func(b *testing.B) {
				nodes, size := 0, 0
				var cpu time.Duration
				disk0 := diskWritten()
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					ws := blockWrites(i)
					b.StartTimer()
					c0 := processCPU()
					ver++
					var (
						next Hash
						tw   *treeWrites
						err  error
					)
					pprof.Do(context.Background(), pprof.Labels("phase", "commit"), func(context.Context) {
						if next, tw, err = tr.update(root, ver, ws); err == nil {
							// The block's batch holds its entries too, as State.commit writes it.
							applyBlockWrites(b, db, tr, ws, tw)
						}
					})
					if err != nil {
						b.Fatal(err)
					}
					n, bytes := tw.size()
					nodes, size = nodes+n, size+bytes
					root = next
					cpu += processCPU() - c0
				}
				report(b, cpu)
				b.ReportMetric(float64(nodes)/float64(b.N), "nodes/block")
				b.ReportMetric(float64(size)/float64(b.N)/1e6, "MB/block")
				b.ReportMetric(float64(diskWritten()-disk0)/float64(b.N)/1e6, "disk-MB/block")
			})
			// Blocks committed as above, without pruning, or pruning after each the versions
			// before the last keep (as a node with storage.keep_blocks does): the tree's records'
			// growth a block, the store's size on disk once compacted, and the CPU the prunes
			// take. With -bench 'TreeUpdate/pebbledb/grow' -benchtime=200x, the pruning run
			// starts by pruning the 200 blocks of the other, then adds 200 of its own.
			for _, keep := range []uint64{0, 10} {
				name := "grow-no-pruning"
				if keep > 0 {
					name = fmt.Sprintf("grow-pruning-keep-%d", keep)
				}
				b.Run(name, func(b *testing.B) {
					if backend == kv.MemDB {
						b.Skip("no disk to measure")
					}
					earliest, err := readTreeEarliest(db)
					if err != nil {
						b.Fatal(err)
					}
					raise := func(e uint64) { earliest = e }
					if keep > 0 {
						// What the runs before left, so that the prunes measured are a block's.
						for {
							n, err := pruneTree(db, earliest, ver, 1<<20, pruneBatchRecords, raise)
							if err != nil {
								b.Fatal(err)
							}
							if n == 0 && earliest == ver {
								break
							}
						}
					}
					if err := kv.Compact(db); err != nil {
						b.Fatal(err)
					}
					tree0 := prefixBytes(b, db, treePrefix)
					var cpu, pruneCPU time.Duration
					pruned := 0
					for i := 0; b.Loop(); i++ {
						b.StopTimer()
						ws := blockWrites(i)
						b.StartTimer()
						c0 := processCPU()
						ver++
						next, tw, err := tr.update(root, ver, ws)
						if err != nil {
							b.Fatal(err)
						}
						applyBlockWrites(b, db, tr, ws, tw)
						root = next
						c1 := processCPU()
						cpu += c1 - c0
						if keep > 0 && ver > keep {
							// (ver-keep would wrap below keep: pruneTree, unlike PruneTree, does
							// not cap it at the tip, and would mark trees not yet written pruned.)
							n, err := pruneTree(db, earliest, ver-keep, 1<<16, pruneBatchRecords, raise)
							if err != nil {
								b.Fatal(err)
							}
							pruned += n
							pruneCPU += processCPU() - c1
						}
					}
					b.StopTimer()
					if err := kv.Compact(db); err != nil {
						b.Fatal(err)
					}
					report(b, cpu)
					b.ReportMetric(float64(prefixBytes(b, db, treePrefix)-tree0)/float64(b.N)/1e6, "tree-MB/block")
					// The store deletes the files a compaction made obsolete in the background:
					// wait until its size stops falling.
					size := dirSize(b, dir)
					for range 40 {
						time.Sleep(250 * time.Millisecond)
						n := dirSize(b, dir)
						if n >= size {
							break
						}
						size = n
					}
					b.ReportMetric(float64(size)/1e6, "store-MB")
					tables, _ := filepath.Glob(filepath.Join(dir, "*", "*.sst"))
					b.ReportMetric(float64(len(tables)), "tables")
					b.ReportMetric(float64(pruneCPU.Microseconds())/float64(b.N)/1000, "prune-cpu-ms/block")
					b.ReportMetric(float64(pruned)/float64(b.N), "pruned/block")
				})
			}
			b.Run("prove", func(b *testing.B) {
				c0 := processCPU()
				for b.Loop() {
					p, err := tr.prove(root, keys[rng.Intn(len(keys))][:])
					if err != nil || !p.Present {
						b.Fatal(p, err)
					}
				}
				b.ReportMetric(float64((processCPU()-c0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/proof")
			})
		})
	}
}

// A store from before the state tree (a root, but no tree node for it), from before the tree's
// nodes were keyed by version ("t/" ‖ hash), or from before they were stored in groups, is
// refused at Open, with what to do, not at its next block.
func TestOpenRefusesStoreWithoutTree(t *testing.T) {
	dir := t.TempDir()
	db := openStore(t, kv.PebbleDB, dir)
	s, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(Genesis{Accounts: []GenesisAccount{{Address: newTestKey(1).addr, Balance: 5}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db, testChain); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	// rewrite replaces every "t/" key by what keep makes of it (nothing when it returns nil).
	rewrite := func(keep func(k, v []byte) []byte) {
		b := db.NewBatch()
		it, err := db.Iterator([]byte(treePrefix), prefixEnd([]byte(treePrefix)))
		if err != nil {
			t.Fatal(err)
		}
		for ; it.Valid(); it.Next() {
			k := bytes.Clone(it.Key())
			if err := b.Delete(k); err != nil {
				t.Fatal(err)
			}
			if nk := keep(k, it.Value()); nk != nil {
				if err := b.Set(nk, bytes.Clone(it.Value())); err != nil {
					t.Fatal(err)
				}
			}
		}
		it.Close()
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
	}
	// The layout before groups: the same keys, a record per binary node (tag 1).
	rv, err := db.Get(rootKey(s.Root()))
	if err != nil || len(rv) != 8 {
		t.Fatal(rv, err)
	}
	nk := nodeKey(binary.BigEndian.Uint64(rv), s.Root())
	raw, err := db.Get(nk)
	if err != nil || len(raw) == 0 || raw[0] != groupTag {
		t.Fatal(raw, err)
	}
	if b := db.NewBatch(); b.Set(nk, append([]byte{oldInnerTag}, raw[1:]...)) != nil || b.Write() != nil {
		t.Fatal("rewriting the root")
	}
	if _, err := Open(db, testChain); !errors.Is(err, ErrNoStateTree) || !strings.Contains(err.Error(), "sync") || !strings.Contains(err.Error(), "groups") {
		t.Fatalf("open with the layout before groups: %v", err)
	}
	// The first layout: each node under "t/" ‖ hash, no root records.
	rewrite(func(k, _ []byte) []byte {
		if k[len(treePrefix)] != treeNodeTag {
			return nil
		}
		return append([]byte(treePrefix), k[len(k)-32:]...)
	})
	if _, err := Open(db, testChain); !errors.Is(err, ErrNoStateTree) || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("open with nodes keyed by hash alone: %v", err)
	}
	// What a version before the tree left: the same entries, no "t/" keys.
	rewrite(func(_, _ []byte) []byte { return nil })
	if _, err := Open(db, testChain); !errors.Is(err, ErrNoStateTree) || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("open without a tree: %v", err)
	}
}

// TestTreeNodesComeLast checks the store layout that keeps a block's writes cheap (tree.go): the
// nodes a block makes are the last keys of the state store, after every older key, so that an
// LSM store appends them instead of merging them into older files. A key family that sorted
// after them would undo that without failing any other test.
func TestTreeNodesComeLast(t *testing.T) {
	alice, bob := newTestKey(1), newTestKey(2)
	s, db := newTestState(t, kv.PebbleDB, []GenesisAccount{{Address: alice.addr, Balance: 100}})
	for h := uint64(1); h <= 3; h++ {
		_, raw := signedTx(t, alice, transferBody(alice, h-1, bob.addr, 1))
		if res := mustApply(t, s, h, [][]byte{raw}, nil); res.Results[0].Err != nil {
			t.Fatal(res.Results[0].Err)
		}
		it, err := db.Iterator(appendNodeKey(nil, h, Hash{}), nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ; it.Valid(); it.Next() {
			k := it.Key()
			if !bytes.HasPrefix(k, appendNodeKey(nil, h, Hash{})[:len(treePrefix)+1+8]) {
				t.Fatalf("block %d: key %q sorts after the block's tree nodes", h, k)
			}
			n++
		}
		it.Close()
		if n == 0 {
			t.Fatalf("block %d wrote no tree node under its height", h)
		}
	}
}

// TestTreeGroupsChecked damages each stored group of a tree in turn, one byte or its tail, and
// expects every read through it (a proof, from an empty cache) to fail as corrupt, never to
// answer a proof of something else.
func TestTreeGroupsChecked(t *testing.T) {
	db := openStore(t, kv.MemDB, "")
	defer db.Close()
	tr := &tree{db: db, cache: newNodeCache()}
	rng := rand.New(rand.NewSource(7))
	ws := &writeSet{}
	var keys [][]byte
	picked := map[string]bool{}
	for len(keys) < 100 {
		k := randomKey(rng)
		if picked[string(k)] {
			continue // a write set has each key once
		}
		picked[string(k)] = true
		keys = append(keys, k)
		ws.entries = append(ws.entries, writeEntry{key: k, value: []byte{byte(len(keys))}})
	}
	root, tw, err := tr.update(Hash{}, 1, ws)
	if err != nil {
		t.Fatal(err)
	}
	applyTreeWrites(t, db, tr, tw)
	groups := 0
	for w := tw; w != nil; w = w.next {
		for _, n := range w.nodes {
			key, val := n[0], n[1]
			if key[len(treePrefix)] != treeNodeTag || val[0] != groupTag {
				continue
			}
			groups++
			for _, bad := range [][]byte{
				append(append([]byte(nil), val[:len(val)/2]...), val[len(val)/2]^0x10),
				val[:len(val)-1],
				append(bytes.Clone(val), 0),
			} {
				b := db.NewBatch()
				if b.Set(key, bad) != nil || b.Write() != nil {
					t.Fatal("damaging a group")
				}
				b.Close()
				fresh := &tree{db: db, cache: newNodeCache()}
				failed := false
				for _, k := range keys {
					p, err := fresh.prove(root, k)
					if err != nil {
						if !errors.Is(err, ErrCorrupt) {
							t.Fatalf("a damaged group: %v, want ErrCorrupt", err)
						}
						failed = true
						continue
					}
					if err := p.Verify(root); err != nil || !p.Present {
						t.Fatalf("a damaged group gave a proof that does not hold: %v", err)
					}
				}
				if !failed {
					t.Fatalf("no proof read the damaged group %x", key)
				}
			}
			b := db.NewBatch()
			if b.Set(key, val) != nil || b.Write() != nil {
				t.Fatal("restoring a group")
			}
			b.Close()
		}
	}
	if groups < 5 {
		t.Fatalf("%d groups: the tree is too small to test them", groups)
	}
}

// dirSize is the bytes of the files under dir.
func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted by the store meanwhile
		}
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// prefixBytes is the bytes of the keys and values under prefix.
func prefixBytes(b *testing.B, db kv.Store, prefix string) int64 {
	end := []byte(prefix)
	end[len(end)-1]++
	it, err := db.Iterator([]byte(prefix), end)
	if err != nil {
		b.Fatal(err)
	}
	defer it.Close()
	var n int64
	for ; it.Valid(); it.Next() {
		n += int64(len(it.Key()) + len(it.Value()))
	}
	if err := it.Error(); err != nil {
		b.Fatal(err)
	}
	return n
}

// TestTreeScratchReused: a block's update takes its scratch from the chunks the last committed
// block's update gave back (issue #10: a chunk allocated and zeroed per block); a Staged block
// not committed gives nothing back; the chunks kept are bounded; and the roots are those of a
// state that never reuses (a fresh State each block).
func TestTreeScratchReused(t *testing.T) {
	keys := make([]testKey, 8)
	var genesis []GenesisAccount
	for i := range keys {
		keys[i] = newTestKey(500 + i)
		genesis = append(genesis, GenesisAccount{Address: keys[i].addr, Balance: 1_000_000})
	}
	for i := range 2000 {
		genesis = append(genesis, GenesisAccount{Address: newTestKey(1000 + i).addr, Balance: 1})
	}
	s, _ := newTestState(t, kv.MemDB, genesis)
	_, refDB := newTestState(t, kv.MemDB, genesis)
	block := func(h uint64) [][]byte {
		var txs [][]byte
		for i, k := range keys {
			txs = append(txs, rawTransfer(t, k, h-1, keys[(i+1)%len(keys)].addr, 1))
		}
		return txs
	}
	first := func(tw *treeWrites) *inner {
		if len(tw.chunks) == 0 {
			t.Fatal("the update took no scratch")
		}
		return &tw.chunks[0][:1][0]
	}
	for h := uint64(1); h <= 20; h++ {
		pooled := slices.Clone(s.tree.scratch.chunks)
		candidate := h%4 == 0
		if candidate {
			// A candidate executed and dropped: it takes the pool's chunk and never gives it back.
			if _, err := s.ExecuteBlock(blockAt(h), block(h)[:1], yesCache{}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := s.ExecuteBlock(blockAt(h), block(h), yesCache{})
		if err != nil {
			t.Fatal(err)
		}
		if h > 1 && !candidate {
			if len(pooled) == 0 {
				t.Fatalf("block %d: no chunk kept from the block before", h)
			}
			if first(st.tw) != &pooled[len(pooled)-1][:1][0] {
				t.Fatalf("block %d: the update allocated scratch rather than take the pool's", h)
			}
		}
		if _, err := s.CommitStaged(st); err != nil {
			t.Fatal(err)
		}
		if i := st.Failed(); i >= 0 {
			t.Fatal(st.Result.Results[i].Err)
		}
		// The root is that of a State with no scratch kept from before (opened afresh).
		ref, err := Open(refDB, testChain)
		if err != nil {
			t.Fatal(err)
		}
		if want := mustApply(t, ref, h, block(h), yesCache{}).Root; st.Result.Root != want {
			t.Fatalf("block %d: root %s, without reuse %s", h, st.Result.Root, want)
		}
	}
	var p scratchPool
	tw := &treeWrites{}
	for range 3 * maxPooledChunks {
		tw.chunks = append(tw.chunks, make([]inner, 0, scratchChunk))
	}
	p.release(tw)
	if len(p.chunks) != maxPooledChunks {
		t.Fatalf("%d chunks kept, at most %d", len(p.chunks), maxPooledChunks)
	}
}
