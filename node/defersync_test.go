package node

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// syncCountingStore counts its batches' durable and deferred writes.
type syncCountingStore struct {
	kv.Store
	synced, deferred []int // the ordinal (from 1) of each batch written so
	batches          int
}

func (s *syncCountingStore) NewBatch() kv.Batch {
	s.batches++
	return &syncCountingBatch{Batch: s.Store.NewBatch(), s: s, n: s.batches}
}

type syncCountingBatch struct {
	kv.Batch
	s *syncCountingStore
	n int
}

func (b *syncCountingBatch) Write() error {
	b.s.synced = append(b.s.synced, b.n)
	return b.Batch.Write()
}

func (b *syncCountingBatch) WriteNoSync() error {
	b.s.deferred = append(b.s.deferred, b.n)
	return b.Batch.WriteNoSync()
}

// A committed block's state waits for the disk only at heights stateSyncEvery divides: the block
// store's synced write is the height's one fsync (issue #10), and a crash's lost state is
// executed again from the stored blocks (TestSyncRunCrashRestartsConsistently, and the state's
// TestCrashRecovery with DeferSync).
func TestStateDurableOnlyEveryStateSyncEvery(t *testing.T) {
	c := newSyncChain(t)
	n, err := New(pebbleSyncHome(t, c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.closeStores()
	counting := &syncCountingStore{Store: n.stateRun.Store}
	n.stateRun.Store = counting
	blocks := uint64(2*stateSyncEvery + 3)
	c.growN(t, n, blocks, nil)
	// One state batch a block (the commit); pruning and other writes would show up as more.
	if counting.batches != int(blocks) {
		t.Fatalf("%d state batches for %d blocks", counting.batches, blocks)
	}
	if len(counting.synced) != 2 || counting.synced[0] != stateSyncEvery || counting.synced[1] != 2*stateSyncEvery {
		t.Fatalf("durable state writes at blocks %v, want %d and %d", counting.synced, stateSyncEvery, 2*stateSyncEvery)
	}
	if len(counting.deferred) != int(blocks)-2 {
		t.Fatalf("%d deferred state writes, want %d", len(counting.deferred), blocks-2)
	}
}

// A pruning node must still hold every block a crash can make it execute again: the state
// loses at most stateSyncEvery-1 blocks.
func TestStateSyncEveryBelowKeptBlocks(t *testing.T) {
	if stateSyncEvery >= minKeepBlocks {
		t.Fatalf("stateSyncEvery %d, minKeepBlocks %d: a crash could leave the state behind the oldest kept block",
			stateSyncEvery, minKeepBlocks)
	}
}

// The state's batch of a block passes through the node's run store and still gets a batch
// sized for it: filled with 4 MiB, it allocates about that once, where a batch grown by
// doubling allocates about twice (and copies as much).
func TestRunStorePassesBatchSizeOn(t *testing.T) {
	db, err := kv.Open(kv.PebbleDB, t.TempDir(), "sized")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs := newRunStore(db)
	const total, valueSize = 4 << 20, 1 << 10
	value := make([]byte, valueSize)
	fill := func(newBatch func() kv.Batch) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b := newBatch()
		for i := 0; i < total/valueSize; i++ {
			if err := b.Set([]byte(fmt.Sprintf("k%08d", i)), value); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		_ = b.Close()
		return after.TotalAlloc - before.TotalAlloc
	}
	grown := fill(rs.NewBatch)
	sized := fill(func() kv.Batch { return kv.NewBatchSized(rs, total+total/8) })
	t.Logf("allocated filling 4 MiB: %d KiB grown, %d KiB sized", grown>>10, sized>>10)
	if sized > total*5/4 || sized*3/2 > grown {
		t.Fatalf("a sized batch through the run store allocated %d bytes, one grown by doubling %d", sized, grown)
	}
}
