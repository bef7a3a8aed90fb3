package node

import (
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// BenchmarkCommitStorePebble is what the commit path writes to a pebble block store per block of
// 2,000 transfers among 64 accounts (the testnet load's shape): the block with its certificate,
// then its results and indexes, with the store's background flushes and compactions. It reports
// the whole process's CPU per transaction, which is where compactions show (they run on
// pebble's own goroutines, outside the timed loop's wall time on a busy machine).
func BenchmarkCommitStorePebble(b *testing.B) {
	const txsPerBlock, accounts = 2000, 64
	db, err := kv.OpenWith(kv.PebbleDB, b.TempDir(), "blocks", kv.Options{Logger: slog.New(slog.DiscardHandler)}) // the node's tuning
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	bs, err := OpenBlockStore(db)
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]state.Address, accounts)
	for i := range addrs {
		addrs[i] = state.Address{byte(i), 0xa5, byte(i * 7)}
	}
	// A block's bytes: about 180 bytes a transaction, as signed transfers are, and as little
	// compressible (keys and signatures).
	rng := rand.NewChaCha8([32]byte{1})
	payload := make([][]byte, txsPerBlock)
	block := func(h uint64) ([]byte, []StoredResult, [][]state.Address) {
		results := make([]StoredResult, txsPerBlock)
		touched := make([][]state.Address, txsPerBlock)
		for i := range payload {
			payload[i] = make([]byte, 180)
			rng.Read(payload[i])
			results[i].Hash = state.HashTx(payload[i])
			touched[i] = []state.Address{addrs[(int(h)+i)%accounts], addrs[(int(h)*3+i*7+1)%accounts]}
		}
		value, err := (&Block{Header: Header{ChainID: "bench", Height: h, Time: int64(h)}, Txs: payload}).Encode()
		if err != nil {
			b.Fatal(err)
		}
		return value, results, touched
	}
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		h := uint64(i + 1)
		value, results, touched := block(h)
		cert := consensus.Certificate{Height: h, Digest: consensus.DigestOf(value)}
		if err := bs.SaveBlock(h, value, &cert); err != nil {
			b.Fatal(err)
		}
		if err := bs.SaveResults(h, results, touched); err != nil {
			b.Fatal(err)
		}
	}
	// Making the blocks is in it too, the same for every layout.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N*txsPerBlock), "cpu-ns/tx")
	if es, ok := kv.Stats(db); ok {
		b.ReportMetric(float64(es.CompactedBytes)/float64(b.N*txsPerBlock), "compacted-B/tx")
		b.ReportMetric(float64(es.FlushedBytes)/float64(b.N*txsPerBlock), "flushed-B/tx")
	}
}
