package state

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// model is the ledger's rules written as plainly as possible, to check State against.
type model struct {
	accts map[Address]Account
}

// modelTx is a generated transaction and what the model needs to judge it.
type modelTx struct {
	raw       []byte
	hash      Hash
	decodeErr error // the sentinel DecodeTx must return, if the bytes are not a transaction
	chainID   string
	sigOK     bool
	from, to  Address
	nonce     uint64
	amount    uint64
}

// apply judges tx the way the spec orders the checks, and applies it if it passes.
func (m *model) apply(tx *modelTx, seen map[Hash]bool) error {
	if seen[tx.hash] {
		return ErrDuplicateTx
	}
	seen[tx.hash] = true
	switch {
	case tx.decodeErr != nil:
		return tx.decodeErr
	case tx.chainID != testChain:
		return ErrWrongChain
	case !tx.sigOK:
		return ErrBadSignature
	}
	from := m.accts[tx.from]
	switch {
	case tx.nonce != from.Nonce:
		return ErrBadNonce
	case tx.amount == 0:
		return ErrBadAmount
	case tx.to == tx.from:
		return ErrSelfTransfer
	case from.Balance < tx.amount:
		return ErrNoFunds
	}
	to := m.accts[tx.to]
	if to.Balance > math.MaxUint64-tx.amount {
		return ErrOverflow
	}
	from.Balance -= tx.amount
	from.Nonce++
	to.Balance += tx.amount
	m.accts[tx.from], m.accts[tx.to] = from, to
	return nil
}

func (m *model) supply() *big.Int {
	s := new(big.Int)
	for _, a := range m.accts {
		s.Add(s, new(big.Int).SetUint64(a.Balance))
	}
	return s
}

// dump is the store contents the model predicts, in dumpState's format without the header.
func (m *model) dump() map[string]string {
	out := map[string]string{}
	for a, acct := range m.accts {
		if acct != (Account{}) {
			k := accountKey(a)
			out[fmt.Sprintf("%x", k[:])] = fmt.Sprintf("%x", appendAccount(nil, acct))
		}
	}
	return out
}

// randomChain is a seeded sequence of blocks with the model's verdict on every transaction.
type randomChain struct {
	keys     []testKey
	genesis  []GenesisAccount
	whale    testKey // seeded near the uint64 limit, so that credits to it can overflow
	whaleBal uint64
	blocks   [][]modelTx
	want     [][]error
	models   []map[string]string // the model's store contents after each block
	supply   *big.Int
	cache    mapCache // some of the transactions with good signatures
}

func genRandomChain(t testing.TB, seed int64, nBlocks, maxTxs int) *randomChain {
	rng := rand.New(rand.NewSource(seed))
	rc := &randomChain{cache: mapCache{}}
	m := &model{accts: map[Address]Account{}}
	for i := range 12 {
		k := newTestKey(1000 + i)
		rc.keys = append(rc.keys, k)
		bal := uint64(rng.Intn(5000))
		if i%5 == 0 {
			bal = 0
		}
		rc.genesis = append(rc.genesis, GenesisAccount{Address: k.addr, Balance: bal})
		if bal > 0 {
			m.accts[k.addr] = Account{Balance: bal}
		}
	}
	rc.whale, rc.whaleBal = newTestKey(2000), math.MaxUint64-3000
	rc.keys = append(rc.keys, rc.whale)
	m.accts[rc.whale.addr] = Account{Balance: rc.whaleBal}
	rc.supply = m.supply()

	var history []modelTx
	pick := func() testKey { return rc.keys[rng.Intn(len(rc.keys))] }
	sign := func(k testKey, body TxBody, sigOK bool) modelTx {
		tx, raw := signedTx(t, k, body)
		if !sigOK {
			tx.Sigs[0].Sig[rng.Intn(64)] ^= byte(1 << rng.Intn(8))
			raw = encodeTx(t, tx)
		}
		tr := body.Transfer
		return modelTx{raw: raw, hash: HashTx(raw), chainID: body.ChainID, sigOK: sigOK,
			from: body.From, to: tr.To, nonce: body.Nonce, amount: tr.Amount}
	}
	for range nBlocks {
		var block []modelTx
		var errs []error
		seen := map[Hash]bool{}
		for range rng.Intn(maxTxs + 1) {
			from, to := pick(), pick()
			acct := m.accts[from.addr]
			// Mostly affordable amounts, sometimes not; the whale spends like everyone else, so
			// its room below the limit stays small.
			spendable := int64(min(acct.Balance, 10_000))
			amount := uint64(rng.Int63n(spendable+spendable/3+2)) + 1
			nonce := acct.Nonce
			var tx modelTx
			switch r := rng.Intn(100); {
			case r < 55:
				tx = sign(from, transferBody(from, nonce, to.addr, amount), true)
			case r < 62:
				if nonce > 0 && rng.Intn(2) == 0 {
					nonce -= 1 + uint64(rng.Intn(int(min(nonce, 3))))
				} else {
					nonce += 1 + uint64(rng.Intn(3))
				}
				tx = sign(from, transferBody(from, nonce, to.addr, amount), true)
			case r < 66:
				tx = sign(from, transferBody(from, nonce, to.addr, 0), true)
			case r < 70:
				tx = sign(from, transferBody(from, nonce, from.addr, amount), true)
			case r < 75:
				tx = sign(from, transferBody(from, nonce, to.addr, amount), false)
			case r < 79:
				b := transferBody(from, nonce, to.addr, amount)
				b.ChainID = "guild-elsewhere"
				tx = sign(from, b, true)
			case r < 83:
				garbage := make([]byte, rng.Intn(300))
				rng.Read(garbage)
				tx = modelTx{raw: garbage, hash: HashTx(garbage), decodeErr: ErrMalformedTx}
			case r < 86:
				good := sign(from, transferBody(from, nonce, to.addr, amount), true)
				cut := good.raw[:rng.Intn(len(good.raw))]
				tx = modelTx{raw: cut, hash: HashTx(cut), decodeErr: ErrMalformedTx}
			case r < 90 && len(block) > 0:
				tx = block[rng.Intn(len(block))]
			case r < 94 && len(history) > 0:
				tx = history[rng.Intn(len(history))]
			default:
				// A credit to the whale, which overflows when it exceeds the room left below the
				// uint64 limit.
				tx = sign(from, transferBody(from, nonce, rc.whale.addr, 1+uint64(rng.Int63n(spendable+1))), true)
			}
			if tx.sigOK && rng.Intn(2) == 0 {
				rc.cache[tx.hash] = true
			}
			errs = append(errs, m.apply(&tx, seen))
			block = append(block, tx)
		}
		history = append(history, block...)
		rc.blocks = append(rc.blocks, block)
		rc.want = append(rc.want, errs)
		rc.models = append(rc.models, m.dump())
		if m.supply().Cmp(rc.supply) != 0 {
			t.Fatal("the model does not conserve supply")
		}
	}
	return rc
}

func (rc *randomChain) raws(i int) [][]byte {
	out := make([][]byte, len(rc.blocks[i]))
	for j := range rc.blocks[i] {
		out[j] = rc.blocks[i][j].raw
	}
	return out
}

// TestRandomChainAgainstModel runs thousands of seeded random transfers, valid and not, on each
// backend (with and without a signature cache), and checks every verdict and every account
// against the model after every block, that supply is conserved, and that all runs agree on
// every root.
func TestRandomChainAgainstModel(t *testing.T) {
	const seed = 42
	rc := genRandomChain(t, seed, 60, 80)
	total, rejected := 0, map[string]int{}
	for i := range rc.want {
		for _, err := range rc.want[i] {
			total++
			if err != nil {
				rejected[sentinelName(err)]++
			}
		}
	}
	t.Logf("seed %d: %d transactions, rejections %v", seed, total, rejected)
	for _, kind := range []error{ErrDuplicateTx, ErrMalformedTx, ErrWrongChain, ErrBadSignature, ErrBadNonce, ErrBadAmount, ErrSelfTransfer, ErrNoFunds, ErrOverflow} {
		if rejected[sentinelName(kind)] == 0 {
			t.Errorf("the generator never produced %v", kind)
		}
	}

	var roots []Hash
	for _, run := range []struct {
		backend    kv.Backend
		cache      SigCache
		cacheLimit int // of the account cache; 0 leaves the default
	}{
		{kv.PebbleDB, rc.cache, 0},
		{kv.GoLevelDB, nil, 0},
		{kv.MemDB, rc.cache, 0},
		{kv.MemDB, nil, 3}, // the account cache starts over almost every block
	} {
		t.Run(fmt.Sprintf("%s/sigcache=%v/acctcache=%d", run.backend, run.cache != nil, run.cacheLimit), func(t *testing.T) {
			dir := t.TempDir()
			db := openStore(t, run.backend, dir)
			s, err := Open(db, testChain)
			if err != nil {
				t.Fatal(err)
			}
			if run.cacheLimit > 0 {
				s.cache.limit = run.cacheLimit
			}
			if err := s.InitGenesis(Genesis{Accounts: rc.genesis}); err != nil {
				t.Fatal(err)
			}
			seedAccount(t, db, rc.whale.addr, Account{Balance: rc.whaleBal})
			var got []Hash
			for i := range rc.blocks {
				res := mustApply(t, s, uint64(i+1), rc.raws(i), run.cache)
				for j, want := range rc.want[i] {
					err := res.Results[j].Err
					if want == nil && err != nil || want != nil && !errors.Is(err, want) {
						t.Fatalf("seed %d block %d tx %d: got %v, model says %v", seed, i+1, j, err, want)
					}
				}
				if d := storeDump(t, db); !mapsEqual(d, rc.models[i]) {
					t.Fatalf("seed %d block %d: store differs from model:\n%v\nvs\n%v", seed, i+1, d, rc.models[i])
				}
				got = append(got, res.Root)
			}
			m := &model{accts: map[Address]Account{}}
			for _, k := range rc.keys {
				m.accts[k.addr] = mustAccount(t, s, k.addr)
			}
			if m.supply().Cmp(rc.supply) != 0 {
				t.Fatalf("supply %v, genesis had %v", m.supply(), rc.supply)
			}
			if roots == nil {
				roots = got
			} else {
				for i := range roots {
					if roots[i] != got[i] {
						t.Fatalf("block %d: root %s, first backend had %s", i+1, got[i], roots[i])
					}
				}
			}
			// A durable store gives the same state back after a reopen.
			final := dumpState(t, s, db)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if run.backend != kv.MemDB {
				db = openStore(t, run.backend, dir)
				defer db.Close()
				s2, err := Open(db, testChain)
				if err != nil {
					t.Fatal(err)
				}
				if again := dumpState(t, s2, db); again != final {
					t.Fatalf("after reopen:\n%s\nbefore:\n%s", again, final)
				}
			}
		})
	}
}

func storeDump(t testing.TB, db kv.Store) map[string]string {
	t.Helper()
	it, err := db.Iterator([]byte(accountPrefix), []byte("a0"))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for ; it.Valid(); it.Next() {
		out[fmt.Sprintf("%x", it.Key())] = fmt.Sprintf("%x", it.Value())
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sentinelName(err error) string {
	for _, s := range []error{ErrDuplicateTx, ErrTxTooLarge, ErrMalformedTx, ErrNoOperation, ErrWrongChain, ErrBadSignature, ErrBadNonce, ErrBadAmount, ErrSelfTransfer, ErrNoFunds, ErrOverflow} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return err.Error()
}
