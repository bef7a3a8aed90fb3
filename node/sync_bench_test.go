package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// Environment knobs of BenchmarkBlockSyncApply (issue #9 "re-sync speed", issue #10).
const (
	benchSyncBlocksEnv = "GUILD_BENCH_SYNC_BLOCKS" // blocks in the chain (default 2,000)
	benchSyncTxsEnv    = "GUILD_BENCH_SYNC_TXS"    // transfers per block (default 20)
	// benchSyncProfileEnv names a file for a CPU profile of the timed part alone (-cpuprofile
	// also holds building the chain: signing, the source's execution).
	benchSyncProfileEnv = "GUILD_BENCH_SYNC_CPUPROFILE"
	// benchSyncTraceEnv names a file for an execution trace of the timed part alone: how busy
	// each stage (fetch, verification, the loop's apply) and each core is.
	benchSyncTraceEnv = "GUILD_BENCH_SYNC_TRACE"
)

func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// BenchmarkBlockSyncApply measures how fast a wiped node catches up by block sync: a chain of
// 2,000 blocks of 20 signed transfers each (to 5,000 recipients, half of them new accounts) is
// built on an in-memory source, then a fresh node on pebble (the default backend, on disk) takes
// it through the syncer's own path, in process: fetch in batches, certificate and header checks,
// batch signature pre-verification, then the loop's apply (execution, state tree, block store,
// results and indexes, and their writes to disk). It reports blocks/s and tx/s.
func BenchmarkBlockSyncApply(b *testing.B) {
	blocks := benchEnvInt(b, benchSyncBlocksEnv, 2000)
	perBlock := benchEnvInt(b, benchSyncTxsEnv, 20)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := newSyncChain(b)
	src, err := New(c.home(b), quiet) // memdb: building the chain is not what is measured
	if err != nil {
		b.Fatal(err)
	}
	defer src.closeStores()
	src.snaps.interval = 0
	var nonce uint64
	for h := uint64(1); h <= uint64(blocks); h++ {
		txs := make([][]byte, 0, perBlock)
		for range perBlock {
			var to state.Address
			seed := sha256.Sum256(binary.BigEndian.AppendUint64(nil, nonce%5000))
			copy(to[:], seed[:])
			txs = append(txs, transfer(b, c.gen.ChainID, c.payer, nonce, to, 1+nonce%7))
			nonce++
		}
		blk := Block{Header: ledBy(src, Header{ChainID: c.gen.ChainID, Height: h, Time: src.lastTime + 10, PrevHash: src.lastHash,
			StateRoot: src.st.Root(), TxsHash: TxsHash(txs), ReceiptsRoot: src.st.ReceiptsRoot()}), Txs: txs}
		value, err := blk.Encode()
		if err != nil {
			b.Fatal(err)
		}
		cert := certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))
		if err := src.commit(consensus.Committed{Height: h, Value: value, Certificate: cert}); err != nil {
			b.Fatal(err)
		}
	}
	pebbleHome := func() string {
		home := c.home(b)
		cfg, err := LoadConfig(home)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Storage.Backend = "pebbledb"
		if err := SaveConfig(home, cfg); err != nil {
			b.Fatal(err)
		}
		return home
	}
	fetch := func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}

	if path := os.Getenv(benchSyncProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if path := os.Getenv(benchSyncTraceEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			b.Fatal(err)
		}
		defer trace.Stop()
	}
	b.ResetTimer()
	var took, cpu time.Duration
	for range b.N {
		b.StopTimer()
		dst, err := New(pebbleHome(), quiet)
		if err != nil {
			b.Fatal(err)
		}
		dst.snaps.interval = 0
		s := dst.newSyncer(fakeSyncNet{"src": {height: uint64(blocks), fetch: fetch}})
		s.apply = func(_ context.Context, bs []syncedBlock) error {
			_, local, fatal := dst.applySynced(bs)
			return errors.Join(local, fatal)
		}
		b.StartTimer()
		start, cpu0 := time.Now(), processCPU()
		for dst.blocks.Height() < uint64(blocks) {
			if !s.round(context.Background()) {
				b.Fatalf("block sync stuck at %d", dst.blocks.Height())
			}
		}
		took, cpu = took+time.Since(start), cpu+processCPU()-cpu0
		b.StopTimer()
		if dst.st.Root() != src.st.Root() || dst.lastHash != src.lastHash {
			b.Fatal("block sync ended on another state root or tip")
		}
		dst.closeStores()
		b.StartTimer()
	}
	secs := took.Seconds() / float64(b.N)
	b.ReportMetric(float64(blocks)/secs, "blocks/s")
	b.ReportMetric(float64(blocks*perBlock)/secs, "tx/s")
	cpuPerBlock := float64(cpu.Microseconds()) / float64(b.N*blocks)
	b.ReportMetric(cpuPerBlock, "cpu-us/block")
	fmt.Fprintf(os.Stderr, "block sync of %d blocks x %d transfers: %.2f s, %.0f blocks/s, %.0f tx/s, %.0f us CPU/block\n",
		blocks, perBlock, secs, float64(blocks)/secs, float64(blocks*perBlock)/secs, cpuPerBlock)
}
