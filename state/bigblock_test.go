package state

import (
	"errors"
	"math/rand"
	"runtime"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// TestBigBlockParallelPaths applies one block large enough that hashing, decoding, signature
// verification and account reads all run on several goroutines (run with -race), and checks it
// against the model transaction by transaction.
func TestBigBlockParallelPaths(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(4, runtime.GOMAXPROCS(0))))
	const n = 1100
	rng := rand.New(rand.NewSource(77))
	keys := make([]testKey, n)
	m := newModel()
	var genesis []GenesisAccount
	for i := range keys {
		keys[i] = newTestKey(50_000 + i)
		bal := uint64(rng.Intn(1000))
		genesis = append(genesis, GenesisAccount{Address: keys[i].addr, Balance: bal})
		if bal > 0 {
			m.accts[keys[i].addr] = Account{Balance: bal}
		}
	}
	s, db := newTestState(t, kv.PebbleDB, genesis)

	var raws [][]byte
	var want []error
	seen := map[Hash]bool{}
	for i := range keys {
		to := keys[rng.Intn(n)].addr
		amount := uint64(rng.Intn(1200))
		body := transferBody(keys[i], 0, to, amount)
		sigOK := rng.Intn(50) != 0
		tx, raw := signedTx(t, keys[i], body)
		if !sigOK {
			tx.Sigs[0].Sig[0] ^= 1
			raw = encodeTx(t, tx)
		}
		mt := modelTx{raw: raw, hash: HashTx(raw), chainID: testChain, sigOK: sigOK, body: body, signers: [][]byte{pub(keys[i])}}
		raws = append(raws, raw)
		want = append(want, m.apply(&mt, seen, blockAt(1)))
	}
	res := mustApply(t, s, 1, raws, nil)
	for i, w := range want {
		if err := res.Results[i].Err; w == nil && err != nil || w != nil && !errors.Is(err, w) {
			t.Fatalf("tx %d: got %v, model says %v", i, err, w)
		}
	}
	if d := storeDump(t, db); !mapsEqual(d, m.dump()) {
		t.Fatal("store differs from the model")
	}
}
