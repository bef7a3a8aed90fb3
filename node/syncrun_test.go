package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// A runStore answers Get, Has and Iterator as a plain store holding every write would, in and
// out of runs, and holds after a flush exactly what was written: seeded random operations
// against a map model.
func TestRunStoreMatchesModel(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			under, err := kv.Open(kv.MemDB, "", "")
			if err != nil {
				t.Fatal(err)
			}
			defer under.Close()
			s := newRunStore(under)
			model := map[string][]byte{}
			// Keys of 1 to 4 bytes: several share a bucket (their first two bytes) and some are
			// shorter than one, which the run's ordering by bucket must get right.
			key := func() []byte {
				k := make([]byte, 1+rng.Intn(4))
				for i := range k {
					k[i] = byte('a' + rng.Intn(3))
				}
				return k
			}
			for step := range 400 {
				switch r := rng.Intn(20); {
				case r == 0:
					s.begin()
				case r == 1:
					if err := s.flush(); err != nil {
						t.Fatal(err)
					}
				case r < 12:
					b := s.NewBatch()
					pend := map[string][]byte{}
					for range 1 + rng.Intn(4) {
						k := key()
						if rng.Intn(3) == 0 {
							if err := b.Delete(k); err != nil {
								t.Fatal(err)
							}
							pend[string(k)] = nil
						} else {
							v := []byte(fmt.Sprint(step))
							if err := b.Set(k, v); err != nil {
								t.Fatal(err)
							}
							v[0] = 'x' // the batch copied it
							pend[string(k)] = []byte(fmt.Sprint(step))
						}
					}
					if rng.Intn(5) == 0 {
						b.Close() // discarded
						continue
					}
					if err := b.Write(); err != nil {
						t.Fatal(err)
					}
					b.Close()
					for k, v := range pend {
						if v == nil {
							delete(model, k)
						} else {
							model[k] = v
						}
					}
				default:
					k := key()
					got, err := s.Get(k)
					if err != nil || !bytes.Equal(got, model[string(k)]) || (got == nil) != (model[string(k)] == nil) {
						t.Fatalf("step %d: Get(%s) = %q, %v; want %q", step, k, got, err, model[string(k)])
					}
					if has, _ := s.Has(k); has != (model[string(k)] != nil) {
						t.Fatalf("step %d: Has(%s) = %v", step, k, has)
					}
					var start, end []byte
					if rng.Intn(3) > 0 {
						start = key()
					}
					if rng.Intn(3) > 0 {
						end = key()
					}
					checkRange(t, s, model, start, end)
				}
			}
			if err := s.flush(); err != nil {
				t.Fatal(err)
			}
			checkRange(t, under, model, nil, nil)
		})
	}
}

func checkRange(t *testing.T, s kv.Store, model map[string][]byte, start, end []byte) {
	t.Helper()
	var want []string
	for k, v := range model {
		if (start == nil || k >= string(start)) && (end == nil || k < string(end)) {
			want = append(want, k+"="+string(v))
		}
	}
	slices.Sort(want)
	it, err := s.Iterator(start, end)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var got []string
	for ; it.Valid(); it.Next() {
		got = append(got, string(it.Key())+"="+string(it.Value()))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Iterator(%q, %q) = %v, want %v", start, end, got, want)
	}
}

// runFailingStore fails its failAt-th batch write (counting from 1), as a full or broken disk would.
type runFailingStore struct {
	kv.Store
	writes, failAt int
}

var errDiskGone = errors.New("test: disk gone")

func (f *runFailingStore) NewBatch() kv.Batch {
	return &runFailingBatch{Batch: f.Store.NewBatch(), f: f}
}

type runFailingBatch struct {
	kv.Batch
	f *runFailingStore
}

func (b *runFailingBatch) Write() error {
	b.f.writes++
	if b.f.writes == b.f.failAt {
		b.Close()
		return fmt.Errorf("%w: %w", kv.ErrStorage, errDiskGone)
	}
	return b.Batch.Write()
}

// logLines keeps what a node logs.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// A node that dies while block sync writes a run of blocks (issue #10: a run of blocks goes to
// each store in one batch) starts again at a consistent height: the state never ahead of the
// blocks, every applied block with its results and indexes, no index rebuild; and it then syncs
// to the same tip, state and index as the node that made the chain. The disk fails at the block
// store's write of the second run, and at the state's write of the second run (its blocks are on
// disk by then: they are executed again at start).
func TestSyncRunCrashRestartsConsistently(t *testing.T) {
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	const blocks = 3*syncRunBlocks + 10
	c.grow(t, src, blocks, 2)
	fetch := func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}
	syncAll := func(t *testing.T, n *Node) error {
		s := n.newSyncer(fakeSyncNet{"src": {height: blocks, fetch: fetch}})
		var fatal error
		s.apply = func(_ context.Context, bs []syncedBlock) error {
			_, local, err := n.applySynced(bs)
			fatal = errors.Join(fatal, err)
			return errors.Join(local, err)
		}
		s.round(context.Background())
		return fatal
	}
	for _, tc := range []struct {
		name       string
		blockStore bool   // the block store's disk fails, else the state's
		wantBlocks uint64 // on disk after the crash
		wantState  uint64
	}{
		{"block store write fails", true, syncRunBlocks, syncRunBlocks},
		{"state write fails", false, 2 * syncRunBlocks, syncRunBlocks},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := pebbleSyncHome(t, c)
			dst, err := New(home, nil)
			if err != nil {
				t.Fatal(err)
			}
			run := dst.stateRun
			if tc.blockStore {
				run = dst.blockRun
			}
			run.Store = &runFailingStore{Store: run.Store, failAt: 2} // each run writes once
			if err := syncAll(t, dst); !errors.Is(err, errDiskGone) {
				dst.closeStores()
				t.Fatalf("sync over a failing disk: %v, want the disk's error", err)
			}
			dst.closeStores() // the crash: what was not written is lost

			var logs logLines
			dst, err = New(home, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("restart after the crash: %v", err)
			}
			defer dst.closeStores()
			if got := dst.blocks.Height(); got != tc.wantBlocks {
				t.Fatalf("blocks on disk after the crash: %d, want %d", got, tc.wantBlocks)
			}
			if strings.Contains(logs.String(), "rebuilding the block store's indexes") {
				t.Fatalf("the restart rebuilt the indexes:\n%s", logs.String())
			}
			if tc.wantBlocks > tc.wantState && !strings.Contains(logs.String(), "re-executed stored block") {
				t.Fatalf("the blocks stored ahead of the state were not executed at start:\n%s", logs.String())
			}
			checkSameChain(t, src, dst, dst.blocks.Height())
			if err := syncAll(t, dst); err != nil {
				t.Fatal(err)
			}
			checkSameChain(t, src, dst, blocks)
		})
	}
}

// checkSameChain checks that n holds src's chain up to height h: blocks, state root, results,
// and each transaction indexed where src has it.
func checkSameChain(t *testing.T, src, n *Node, h uint64) {
	t.Helper()
	if n.blocks.Height() != h || n.st.Height() != h {
		t.Fatalf("blocks at %d, state at %d; want both at %d", n.blocks.Height(), n.st.Height(), h)
	}
	if at, ok := n.blocks.IndexedHeight(); !ok || at != h {
		t.Fatalf("indexes complete up to %d (%v), want %d", at, ok, h)
	}
	wantRoot := src.st.Root()
	if h < src.blocks.Height() {
		hd, err := src.blocks.Header(h + 1)
		if err != nil {
			t.Fatal(err)
		}
		wantRoot = hd.Header.StateRoot
	}
	if n.st.Root() != wantRoot {
		t.Fatalf("state root at %d: %s, want %s", h, n.st.Root(), wantRoot)
	}
	for k := uint64(1); k <= h; k++ {
		want, err := src.blocks.Results(k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := n.blocks.Results(k)
		if err != nil || len(got) != len(want) {
			t.Fatalf("results of block %d: %v (%v), want %v", k, got, err, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("result %d of block %d: %v, want %v", i, k, got[i], want[i])
			}
			loc, err := n.blocks.TxLocation(want[i].Hash)
			wantLoc, _ := src.blocks.TxLocation(want[i].Hash)
			if err != nil || loc != wantLoc {
				t.Fatalf("transaction %d of block %d indexed at %+v (%v), want %+v", i, k, loc, err, wantLoc)
			}
		}
	}
}

// Readers on other goroutines (the API, peers' block sync, the snapshotter) see each batch of a
// run whole, before, during and after its flush: an iterator never shows a pair of keys written
// together with different values.
func TestRunStoreReadersSeeWholeBatches(t *testing.T) {
	under, err := kv.Open(kv.MemDB, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer under.Close()
	s := newRunStore(under)
	stop := make(chan struct{})
	failed := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			it, err := s.Iterator([]byte("k"), []byte("l"))
			if err != nil {
				failed <- err.Error()
				return
			}
			var vals []string
			for ; it.Valid(); it.Next() {
				vals = append(vals, string(it.Value()))
			}
			it.Close()
			if len(vals) == 2 && vals[0] != vals[1] || len(vals) == 1 {
				failed <- fmt.Sprintf("a batch seen in part: %q", vals)
				return
			}
		}
	}()
	for i := range 2000 {
		if i%7 == 0 {
			s.begin()
		}
		b := s.NewBatch()
		v := []byte(fmt.Sprint(i))
		if err := b.Set([]byte("k1"), v); err != nil {
			t.Fatal(err)
		}
		if err := b.Set([]byte("k2"), v); err != nil {
			t.Fatal(err)
		}
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
		if i%7 == 6 {
			if err := s.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-failed:
		t.Fatal(msg)
	default:
	}
}

// A validator keeps what it signed at a height in its WAL until the block of that height is on
// disk: a sync run resets the WAL only after writing its blocks, so a crash in between leaves the
// prepare a restart must remember (never two different votes for one height, view and phase).
func TestSyncRunKeepsWALUntilBlocksWritten(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	c.grow(t, src, 10, 1)
	served, err := src.SyncBlocks(1, 10, p2p.DefaultSyncResponseBytes)
	if err != nil {
		t.Fatal(err)
	}
	// Height 1, view 0 is led by validator 1: its proposal is src's block 1, which n prepares.
	if err := n.stepMessage(prePrepare(n.chainID, c.valKeys[1], 1, 1, 0, served[0].Block)); err != nil {
		t.Fatal(err)
	}
	if !signedAnyPrepare(drain(t, n)) {
		t.Fatal("the validator did not prepare block 1")
	}
	blocks, err := n.newSyncer(fakeSyncNet{}).verify(1, state.Hash{}, served)
	if err != nil || len(blocks) != 10 {
		t.Fatalf("verified %d blocks: %v", len(blocks), err)
	}
	n.blockRun.Store = &runFailingStore{Store: n.blockRun.Store, failAt: 1}
	if _, _, fatal := n.applySynced(blocks); !errors.Is(fatal, errDiskGone) {
		t.Fatalf("applying over a failing disk: %v, want the disk's error", fatal)
	}
	wal, restored, err := OpenWAL(filepath.Join(n.home, DataDir, WALFile))
	if err != nil {
		t.Fatal(err)
	}
	defer wal.Close()
	if !signedAnyPrepare(restored) {
		t.Fatalf("the WAL lost the prepare of height 1 although block 1 never reached the disk: %v", restored)
	}
}

// The node's state store, a runStore, lets a block's tree records through to pebble as a table
// outside a run of synced blocks (else the state never ingests them on a node), and keeps them
// in the run's batch inside one.
func TestRunStoreIngests(t *testing.T) {
	under, err := kv.Open(kv.PebbleDB, t.TempDir(), "state")
	if err != nil {
		t.Fatal(err)
	}
	defer under.Close()
	s := newRunStore(under)
	if !kv.CanIngest(s) {
		t.Fatal("a runStore over pebbledb does not ingest outside a run")
	}
	run := [][2][]byte{{[]byte("t/v1"), []byte("x")}, {[]byte("t/v2"), []byte("y")}}
	if err := kv.Ingest(s, run); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("t/v2")); err != nil || string(v) != "y" {
		t.Fatal(v, err)
	}
	s.begin()
	if kv.CanIngest(s) {
		t.Fatal("a runStore ingests inside a run")
	}
	if err := kv.Ingest(s, run); err == nil {
		t.Fatal("Ingest inside a run succeeded")
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	mem, err := kv.Open(kv.MemDB, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if kv.CanIngest(newRunStore(mem)) {
		t.Fatal("a runStore over memdb ingests")
	}
}
