package state

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/guild-ledger/guild/state/kv"
)

var errInjected = errors.New("injected fault")

// faultyStore injects store failures.
type faultyStore struct {
	kv.Store
	failGets      atomic.Bool
	failWrite     atomic.Bool // the batch is dropped and Write fails
	failAfterLand atomic.Bool // the batch is written, then Write reports failure
}

func (f *faultyStore) Get(k []byte) ([]byte, error) {
	if f.failGets.Load() {
		return nil, errInjected
	}
	return f.Store.Get(k)
}

func (f *faultyStore) NewBatch() kv.Batch { return &faultyBatch{Batch: f.Store.NewBatch(), f: f} }

type faultyBatch struct {
	kv.Batch
	f *faultyStore
}

func (b *faultyBatch) Write() error {
	switch {
	case b.f.failWrite.Load():
		_ = b.Batch.Close()
		return errInjected
	case b.f.failAfterLand.Load():
		if err := b.Batch.Write(); err != nil {
			return err
		}
		return errInjected
	}
	return b.Batch.Write()
}

// referenceRun applies a chain's blocks on memdb and returns the root after each.
func referenceRun(t *testing.T, rc *randomChain) []Hash {
	t.Helper()
	s, db := newTestStateGenesis(t, kv.MemDB, rc.genesis)
	seedAccount(t, db, rc.whale.addr, Account{Balance: rc.whaleBal})
	roots := make([]Hash, len(rc.blocks))
	for i := range rc.blocks {
		roots[i] = mustApply(t, s, uint64(i+1), rc.raws(i), nil).Root
	}
	return roots
}

func TestStoreFailures(t *testing.T) {
	rc := genRandomChain(t, 5, 6, 40)
	ref := referenceRun(t, rc)

	setup := func(t *testing.T) (*State, *faultyStore) {
		inner := openStore(t, kv.MemDB, "")
		f := &faultyStore{Store: inner}
		s, err := Open(f, testChain)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InitGenesis(rc.genesis); err != nil {
			t.Fatal(err)
		}
		seedAccount(t, inner, rc.whale.addr, Account{Balance: rc.whaleBal})
		for i := range 3 {
			mustApply(t, s, uint64(i+1), rc.raws(i), nil)
		}
		// A fresh State, with nothing cached, so that the next block must read the store.
		s, err = Open(f, testChain)
		if err != nil {
			t.Fatal(err)
		}
		return s, f
	}

	t.Run("read fails mid-block", func(t *testing.T) {
		s, f := setup(t)
		before := dumpState(t, s, f)
		f.failGets.Store(true)
		if _, err := s.ApplyBlock(blockAt(4), rc.raws(3), nil); !errors.Is(err, errInjected) {
			t.Fatalf("ApplyBlock: %v", err)
		}
		f.failGets.Store(false)
		if dumpState(t, s, f) != before {
			t.Fatal("a failed block left writes behind")
		}
		// Nothing was committed, so the State may simply retry.
		if res := mustApply(t, s, 4, rc.raws(3), nil); res.Root != ref[3] {
			t.Fatal("retry gave a different root")
		}
	})

	t.Run("commit lost", func(t *testing.T) {
		s, f := setup(t)
		before := dumpState(t, s, f)
		f.failWrite.Store(true)
		if _, err := s.ApplyBlock(blockAt(4), rc.raws(3), nil); !errors.Is(err, errInjected) {
			t.Fatalf("ApplyBlock: %v", err)
		}
		f.failWrite.Store(false)
		if s.Height() != 3 {
			t.Fatal("height moved although the commit failed")
		}
		// The State no longer knows what is on disk and refuses to go on.
		if _, err := s.ApplyBlock(blockAt(4), rc.raws(3), nil); !errors.Is(err, ErrCommitFailed) {
			t.Fatalf("ApplyBlock after a failed commit: %v", err)
		}
		reopened, err := Open(f, testChain)
		if err != nil {
			t.Fatal(err)
		}
		if dumpState(t, reopened, f) != before {
			t.Fatal("reopened state is not the state before the block")
		}
		if res := mustApply(t, reopened, 4, rc.raws(3), nil); res.Root != ref[3] {
			t.Fatal("re-applied block gave a different root")
		}
	})

	t.Run("commit landed but reported failure", func(t *testing.T) {
		s, f := setup(t)
		f.failAfterLand.Store(true)
		if _, err := s.ApplyBlock(blockAt(4), rc.raws(3), nil); !errors.Is(err, errInjected) {
			t.Fatalf("ApplyBlock: %v", err)
		}
		f.failAfterLand.Store(false)
		reopened, err := Open(f, testChain)
		if err != nil {
			t.Fatal(err)
		}
		if reopened.Height() != 4 || reopened.Root() != ref[3] {
			t.Fatalf("reopened at %d %s, want 4 %s", reopened.Height(), reopened.Root(), ref[3])
		}
	})
}

// crashChildEnv makes the test binary act as a node that applies blocks until it is killed.
const crashChildEnv = "GUILD_STATE_CRASH_CHILD"

const (
	crashSeed   = 11
	crashBlocks = 24
)

// TestCrashRecovery kills (SIGKILL) a process in the middle of applying blocks, several times, and
// checks after each restart that the store holds exactly the state after some whole block: its
// root and every account match a reference run at the height it reports. With DeferSync (the
// node's mode), the store may be behind what the process reported, but never behind the last
// height written durably, and still at a whole block.
func TestCrashRecovery(t *testing.T) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		crashChild(t, spec)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rc := genRandomChain(t, crashSeed, crashBlocks, 40)
	ref := referenceRun(t, rc)
	plan := t.TempDir() + "/plan.cbor"
	writeCrashPlan(t, rc, plan)
	// pebbledb-ingest ingests every block's run of tree records (ingestMinBytes 0), so that kills
	// also land between a block's ingestion and its batch. Each also runs under DeferSync (every
	// 4th height durable), the node's mode.
	for _, name := range []string{string(kv.PebbleDB), "pebbledb-ingest", string(kv.GoLevelDB)} {
		for _, every := range []uint64{0, 4} {
			backend, ingest := kv.Backend(strings.TrimSuffix(name, "-ingest")), strings.HasSuffix(name, "-ingest")
			t.Run(fmt.Sprintf("%s/defer%d", name, every), func(t *testing.T) {
				crashRounds(t, backend, ingest, every, plan, ref, rc)
			})
		}
	}
}

// crashRounds is one mode of TestCrashRecovery: kill the child, check the store, until it has
// applied every block.
func crashRounds(t *testing.T, backend kv.Backend, ingest bool, every uint64, plan string, ref []Hash, rc *randomChain) {
	dir := t.TempDir()
	height := uint64(0)
	for round := 0; height < crashBlocks; round++ {
		killAfter := height + 6 // let it report some progress, then kill it mid-stride
		reported := runCrashChild(t, backend, ingest, every, dir, plan, killAfter)
		durable := reported
		if every > 1 {
			durable -= reported % every
		}
		db := openStore(t, backend, dir)
		s, err := Open(db, testChain)
		if err != nil {
			t.Fatal(err)
		}
		h := s.Height()
		if h < durable || h > crashBlocks {
			t.Fatalf("round %d: store at height %d, child had reported %d (%d durably)", round, h, reported, durable)
		}
		if h > 0 {
			if s.Root() != ref[h-1] {
				t.Fatalf("round %d: root at height %d is not the reference root", round, h)
			}
			if d := storeDump(t, db); !mapsEqual(d, rc.models[h-1]) {
				t.Fatalf("round %d: accounts at height %d differ from the model", round, h)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if h <= height && durable < crashBlocks {
			t.Fatalf("round %d: no progress", round)
		}
		height = h
		t.Logf("round %d: height %d (reported %d)", round, h, reported)
	}
}

// runCrashChild starts the child on dir, kills it once it has reported height killAfter (or lets
// it finish), and returns the last height it reported.
func runCrashChild(t *testing.T, backend kv.Backend, ingest bool, deferEvery uint64, dir, plan string, killAfter uint64) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%v,%d,%s,%s", crashChildEnv, backend, ingest, deferEvery, dir, plan))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var reported uint64
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "applied "); ok {
			reported, _ = strconv.ParseUint(h, 10, 64)
			if reported >= killAfter && !killed {
				_ = cmd.Process.Kill() // our own child, by its PID
				killed = true
			}
		}
	}
	err = cmd.Wait()
	if !killed && err != nil {
		t.Fatalf("child failed: %v\n%s", err, stderr.String())
	}
	return reported
}

// crashPlan is what the child applies, handed over in a file so that it need not re-sign.
type crashPlan struct {
	Genesis  Genesis
	Whale    Address
	WhaleBal uint64
	Blocks   [][][]byte
}

func writeCrashPlan(t *testing.T, rc *randomChain, path string) {
	t.Helper()
	p := crashPlan{Genesis: rc.genesis, Whale: rc.whale.addr, WhaleBal: rc.whaleBal}
	for i := range rc.blocks {
		p.Blocks = append(p.Blocks, rc.raws(i))
	}
	b, err := Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// crashChild is the child's side: resume from the store's height and apply blocks, reporting each.
func crashChild(t *testing.T, spec string) {
	parts := strings.SplitN(spec, ",", 5)
	backend, dir, planPath := parts[0], parts[3], parts[4]
	if parts[1] == "true" {
		ingestMinBytes = 0
	}
	every, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(planPath)
	if err != nil {
		t.Fatal(err)
	}
	var p crashPlan
	// The plan is larger than the network limits Unmarshal enforces.
	if err := cbor.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	db := openStore(t, kv.Backend(backend), dir)
	defer db.Close()
	s, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Initialised() {
		if err := s.InitGenesis(p.Genesis); err != nil {
			t.Fatal(err)
		}
		// Not atomic with genesis, but the child is only killed after it has applied blocks.
		seedAccount(t, db, p.Whale, Account{Balance: p.WhaleBal})
	}
	s.DeferSync(every)
	for h := s.Height() + 1; h <= uint64(len(p.Blocks)); h++ {
		mustApply(t, s, h, p.Blocks[h-1], nil)
		fmt.Printf("applied %d\n", h)
	}
}

// TestConcurrentReads reads accounts, height and root from other goroutines while blocks are
// applied (run with -race).
func TestConcurrentReads(t *testing.T) {
	rc := genRandomChain(t, 9, 15, 40)
	s, db := newTestStateGenesis(t, kv.PebbleDB, rc.genesis)
	seedAccount(t, db, rc.whale.addr, Account{Balance: rc.whaleBal})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := rc.keys[(i+g)%len(rc.keys)]
				if _, err := s.Account(k.addr); err != nil {
					errs <- err
					return
				}
				_ = s.CheckTx(&Tx{Body: transferBody(k, 0, rc.keys[0].addr, 1)})
				h := s.Height()
				_ = s.Root()
				if h < last {
					errs <- fmt.Errorf("height went back from %d to %d", last, h)
					return
				}
				last = h
			}
		}()
	}
	for i := range rc.blocks {
		mustApply(t, s, uint64(i+1), rc.raws(i), nil)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
