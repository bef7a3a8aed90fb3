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
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// benchAccountsEnv sets how many accounts BenchmarkJoinStateSyncVsBlockSync's chain holds
// (default 20,000; the figure is 1,000,000: `make bench-statesync`).
const benchAccountsEnv = "GUILD_BENCH_ACCOUNTS"

// BenchmarkJoinStateSyncVsBlockSync builds a chain whose blocks create N accounts (one transfer
// each from a funded payer, 2,000 a block, on pebble), takes a snapshot at the last block but one,
// and then joins it twice from an empty pebble store, in process (no network): by state sync
// (offer, chunks verified and restored, the root checked; then the last block) and by full
// block sync (every block fetched, certificate-checked, signatures batch-verified and executed,
// as the syncer does). It reports the time and the bytes moved of each.
func BenchmarkJoinStateSyncVsBlockSync(b *testing.B) {
	accounts := 20_000
	if v := os.Getenv(benchAccountsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2000 {
			b.Fatalf("%s=%q: want a number of accounts, at least 2000", benchAccountsEnv, v)
		}
		accounts = n
	}
	const perBlock = 2000
	blocks := (accounts + perBlock - 1) / perBlock
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := newSyncChain(b)
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
	src, err := New(pebbleHome(), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer src.closeStores()
	src.snaps.interval = 0

	build := time.Now()
	var nonce uint64
	for h := uint64(1); h <= uint64(blocks); h++ {
		var txs [][]byte
		for range min(perBlock, accounts-int(nonce)) {
			var to state.Address
			seed := sha256.Sum256(binary.BigEndian.AppendUint64(nil, nonce))
			copy(to[:], seed[:])
			txs = append(txs, transfer(b, c.gen.ChainID, c.payer, nonce, to, 1))
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
	// The snapshot at the last block but one, whose root the last block's header certifies.
	snapAt := uint64(blocks - 1)
	hdr, err := src.blocks.Header(snapAt + 1)
	if err != nil {
		b.Fatal(err)
	}
	snapStart := time.Now()
	m, err := src.snaps.take(snapAt, hdr.Header.StateRoot)
	if err != nil {
		b.Fatal(err)
	}
	snapTook := time.Since(snapStart)
	b.Logf("chain of %d blocks, %d new accounts (%d state entries) built in %v; snapshot at %d: %d chunks, %.1f MB, in %v",
		blocks, accounts, m.Entries, time.Since(build).Round(time.Millisecond), snapAt, len(m.Chunks),
		float64(m.Bytes)/1e6, snapTook.Round(time.Millisecond))

	b.ResetTimer()
	for range b.N {
		// State sync: offer and chunks, then the one block after the snapshot.
		dir := b.TempDir()
		db, err := kv.Open(kv.PebbleDB, dir, "state")
		if err != nil {
			b.Fatal(err)
		}
		net := &fakeSnapshotNet{peers: map[string]p2p.SnapshotSource{"src": src.snaps}, penalized: map[string]int{}}
		ss := &stateSyncer{host: net, chainID: c.gen.ChainID, genesis: mustLightGenesis(b, c.gen), db: db, log: quiet,
			metrics: newStateSyncMetrics(prometheus.NewRegistry()), bad: map[string]bool{}}
		start := time.Now()
		cands := ss.offers(context.Background())
		if len(cands) != 1 {
			b.Fatalf("%d offers", len(cands))
		}
		if err := ss.restore(context.Background(), cands[0]); err != nil {
			b.Fatal(err)
		}
		last, cert, err := src.blocks.Block(snapAt + 1)
		if err != nil {
			b.Fatal(err)
		}
		cb, _ := state.Marshal(cert)
		ssTook, ssBytes := time.Since(start), ss.received+uint64(len(last)+len(cb))
		db.Close()

		// Full block sync of the same chain, from genesis.
		dst, err := New(pebbleHome(), quiet)
		if err != nil {
			b.Fatal(err)
		}
		var bsBytes uint64
		fetch := func(from uint64, max int) ([]p2p.SyncedBlock, error) {
			out, err := src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
			for i := range out {
				bsBytes += uint64(len(out[i].Block) + len(out[i].Certificate))
			}
			return out, err
		}
		s := dst.newSyncer(fakeSyncNet{"src": {height: uint64(blocks), fetch: fetch}})
		s.apply = func(_ context.Context, bs []syncedBlock) error {
			_, local, fatal := dst.applySynced(bs)
			return errors.Join(local, fatal)
		}
		start = time.Now()
		for dst.blocks.Height() < uint64(blocks) {
			if !s.round(context.Background()) {
				b.Fatalf("block sync stuck at %d", dst.blocks.Height())
			}
		}
		bsTook := time.Since(start)
		if dst.st.Root() != src.st.Root() {
			b.Fatal("block sync ended on another state root")
		}
		dst.closeStores()

		b.ReportMetric(ssTook.Seconds(), "statesync-s")
		b.ReportMetric(float64(ssBytes)/1e6, "statesync-MB")
		b.ReportMetric(bsTook.Seconds(), "blocksync-s")
		b.ReportMetric(float64(bsBytes)/1e6, "blocksync-MB")
		b.ReportMetric(float64(ssTook.Nanoseconds())/float64(accounts), "statesync-ns/account")
		fmt.Fprintf(os.Stderr, "join %d accounts: state sync %v, %.1f MB; full block sync %v, %.1f MB\n",
			accounts, ssTook.Round(time.Millisecond), float64(ssBytes)/1e6, bsTook.Round(time.Millisecond),
			float64(bsBytes)/1e6)
	}
}
