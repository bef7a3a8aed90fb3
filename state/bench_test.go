package state

import (
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/guild-ledger/guild/state/kv"
)

const (
	benchBlockTxs = 5000
	benchAccounts = 10_000
	benchBlocks   = 6 // distinct blocks signed up front; the state is reset after the last
)

type benchChain struct {
	genesis []GenesisAccount
	blocks  [][][]byte
	cache   mapCache
	txs     []*Tx // the first block's transactions, decoded
}

var (
	benchOnce sync.Once
	benchData *benchChain
)

// benchSetup signs benchBlocks blocks of benchBlockTxs transfers: in each block every one of
// benchBlockTxs senders pays a random account, so nonces line up block after block.
func benchSetup(b *testing.B) *benchChain {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewSource(1))
		keys := make([]testKey, benchAccounts)
		c := &benchChain{cache: mapCache{}}
		for i := range keys {
			keys[i] = newTestKey(10_000 + i)
			c.genesis = append(c.genesis, GenesisAccount{Address: keys[i].addr, Balance: 1_000_000})
		}
		for h := range benchBlocks {
			block := make([][]byte, benchBlockTxs)
			for i := range block {
				to := keys[rng.Intn(len(keys))].addr
				if to == keys[i].addr {
					to = keys[(i+1)%len(keys)].addr
				}
				tx, raw := signedTx(b, keys[i], transferBody(keys[i], uint64(h), to, 1+uint64(rng.Intn(100))))
				block[i] = raw
				c.cache[HashTx(raw)] = true
				if h == 0 {
					c.txs = append(c.txs, tx)
				}
			}
			c.blocks = append(c.blocks, block)
		}
		benchData = c
	})
	return benchData
}

// BenchmarkApplyBlock applies blocks of 5,000 signed transfers among 10,000 accounts, with the
// signatures already in the cache (as after mempool verification) and without.
func BenchmarkApplyBlock(b *testing.B) {
	c := benchSetup(b)
	for _, backend := range kv.Backends() {
		for _, cached := range []bool{true, false} {
			name := fmt.Sprintf("%s/uncached", backend)
			var cache SigCache
			if cached {
				name, cache = fmt.Sprintf("%s/cached", backend), c.cache
			}
			b.Run(name, func(b *testing.B) {
				var s *State
				var db kv.Store
				reset := func() {
					if db != nil {
						db.Close()
					}
					db = openStore(b, backend, b.TempDir())
					var err error
					if s, err = Open(db, testChain); err != nil {
						b.Fatal(err)
					}
					if err := s.InitGenesis(Genesis{Accounts: c.genesis}); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				reset()
				b.StartTimer()
				var cpu time.Duration
				cpu0 := processCPU()
				for i := 0; i < b.N; i++ {
					if s.Height() == benchBlocks {
						b.StopTimer()
						cpu += processCPU() - cpu0
						reset()
						cpu0 = processCPU()
						b.StartTimer()
					}
					h := s.Height() + 1
					res, err := s.ApplyBlock(BlockInfo{Height: h}, c.blocks[h-1], cache)
					if err != nil {
						b.Fatal(err)
					}
					if err := res.Results[0].Err; err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				cpu += processCPU() - cpu0
				reportRates(b, b.N*benchBlockTxs, cpu, "tx")
				db.Close()
			})
		}
	}
}

// BenchmarkVerifyTxs compares batch verification (all CPUs, then one) with one-by-one
// verification, per signature.
func BenchmarkVerifyTxs(b *testing.B) {
	c := benchSetup(b)
	for _, n := range []int{64, 256, 1024, 5000} {
		b.Run(fmt.Sprintf("batch-%d", n), func(b *testing.B) {
			txs := c.txs[:n]
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				for _, err := range VerifyTxs(testChain, txs) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			reportRates(b, b.N*n, processCPU()-cpu0, "sig")
		})
	}
	for _, n := range []int{64, 1024} {
		b.Run(fmt.Sprintf("batch-%d-1cpu", n), func(b *testing.B) {
			items := benchSigItems(b, c.txs[:n])
			ok := make([]bool, n)
			b.ResetTimer()
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				verifyChunk(items, ok)
			}
			reportRates(b, b.N*n, processCPU()-cpu0, "sig")
		})
	}
	b.Run("single", func(b *testing.B) {
		cpu0 := processCPU()
		for i := 0; i < b.N; i++ {
			if err := VerifyTx(testChain, c.txs[i%len(c.txs)]); err != nil {
				b.Fatal(err)
			}
		}
		reportRates(b, b.N, processCPU()-cpu0, "sig")
	})
}

// reportRates adds throughput (n items over the benchmark's wall time) and CPU time per item.
func reportRates(b *testing.B, n int, cpu time.Duration, item string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), item+"/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/"+item)
	}
}

func BenchmarkDecodeTx(b *testing.B) {
	raw := benchSetup(b).blocks[0][0]
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeTx(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallBlock is one height of a lightly loaded chain as a node lives it: a block of 10
// transfers executed, committed, and followed by the governance reads the node makes after
// every block (parameters, validator schedule, upgrades), on a state of 10,000 accounts. At
// 500 tx/s blocks come back to back, ~50 a second, and what a height costs whatever its
// transactions is most of a node's CPU (issue #10).
func BenchmarkSmallBlock(b *testing.B) {
	const txs, blocks = 10, 500
	var genesis []GenesisAccount
	keys := make([]testKey, benchAccounts)
	for i := range keys {
		keys[i] = newTestKey(10_000 + i)
		genesis = append(genesis, GenesisAccount{Address: keys[i].addr, Balance: 1_000_000})
	}
	keys = keys[:txs]
	chain := make([][][]byte, blocks)
	for h := range chain {
		for i, k := range keys {
			to := keys[(i+1+h)%len(keys)].addr
			if to == k.addr {
				to = keys[(i+2)%len(keys)].addr
			}
			chain[h] = append(chain[h], rawTransfer(b, k, uint64(h), to, 1))
		}
	}
	for _, backend := range []kv.Backend{kv.PebbleDB} {
		b.Run(string(backend), func(b *testing.B) {
			var s *State
			var db kv.Store
			reset := func() {
				if db != nil {
					db.Close()
				}
				db = openStore(b, backend, b.TempDir())
				var err error
				if s, err = Open(db, testChain); err != nil {
					b.Fatal(err)
				}
				if err := s.InitGenesis(Genesis{Accounts: genesis, Validators: []Validator{
					{Name: "v1", PubKey: []byte(newTestKey(1).priv[32:]), Power: 1},
					{Name: "v2", PubKey: []byte(newTestKey(2).priv[32:]), Power: 1},
				}}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reset()
			b.ReportAllocs()
			b.StartTimer()
			var cpu time.Duration
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				if s.Height() == blocks {
					b.StopTimer()
					cpu += processCPU() - cpu0
					reset()
					cpu0 = processCPU()
					b.StartTimer()
				}
				h := s.Height() + 1
				st, err := s.ExecuteBlock(BlockInfo{Height: h, TimeMs: int64(h)}, chain[h-1], yesCache{})
				if err != nil {
					b.Fatal(err)
				}
				if i := st.Failed(); i >= 0 {
					b.Fatal(st.Result.Results[i].Err)
				}
				if _, err := s.CommitStaged(st); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Params(); err != nil {
					b.Fatal(err)
				}
				if _, err := s.ValidatorSchedule(); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Upgrades(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu += processCPU() - cpu0
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/block")
			db.Close()
		})
	}
}

// benchSigItems is the first signature of each of txs, as verifySigs takes them.
func benchSigItems(b *testing.B, txs []*Tx) []sigItem {
	items := make([]sigItem, len(txs))
	for i, tx := range txs {
		msg, err := sigMessage(testChain, tx)
		if err != nil {
			b.Fatal(err)
		}
		items[i] = sigItem{pub: tx.Sigs[0].PubKey, msg: msg, sig: tx.Sigs[0].Sig}
	}
	return items
}

// BenchmarkVerifySmall compares a few signatures verified one at a time with the same verified as
// one batch: where verifySigs starts batching (minOneBatch). Under a steady few thousand
// transactions a second a node's verifier flushes every few milliseconds with a handful in hand.
func BenchmarkVerifySmall(b *testing.B) {
	c := benchSetup(b)
	for _, n := range []int{2, 3, 4, 8, 16} {
		items := benchSigItems(b, c.txs[:n])
		for i := range items {
			expandedKeys.get(items[i].pub) // warm, as for a known sender
		}
		ok := make([]bool, n)
		b.Run(fmt.Sprintf("one-by-one-%d", n), func(b *testing.B) {
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				for j := range items {
					if !verifyOne(items[j].pub, items[j].msg, items[j].sig) {
						b.Fatal("bad signature")
					}
				}
			}
			reportRates(b, b.N*n, processCPU()-cpu0, "sig")
		})
		b.Run(fmt.Sprintf("batch-%d", n), func(b *testing.B) {
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				verifyChunk(items, ok)
				if !ok[0] {
					b.Fatal("bad signature")
				}
			}
			reportRates(b, b.N*n, processCPU()-cpu0, "sig")
		})
	}
}
