package state

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// fullDump is every key of the store, bookkeeping included.
func fullDump(t testing.TB, db kv.Store) map[string]string {
	t.Helper()
	it, err := db.Iterator([]byte{0}, []byte{0xff})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for ; it.Valid(); it.Next() {
		out[string(it.Key())] = fmt.Sprintf("%x", it.Value())
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

func resultStrings(res *BlockResult) []string {
	out := make([]string, len(res.Results))
	for i, r := range res.Results {
		out[i] = r.Hash.String()
		if r.Err != nil {
			out[i] += " " + r.Err.Error()
		}
	}
	return out
}

// A block executed as a dry run and then committed (ExecuteBlock or ExecuteHashed, CommitStaged) gives the same
// root, results and stored bytes as ApplyBlock, on random chains of every operation, even when
// other candidates for the same height were executed and dropped first (as proposals refused or
// replaced in a view change are); and a dry run changes nothing anyone can read.
func TestStagedCommitMatchesApplyBlock(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		rng := rand.New(rand.NewSource(seed))
		rc := genRandomChain(t, 20_000+seed, 8, 40)
		a, dbA := newTestStateGenesis(t, kv.MemDB, rc.genesis)
		b, dbB := newTestStateGenesis(t, kv.MemDB, rc.genesis)
		seedAccount(t, dbA, rc.whale.addr, Account{Balance: rc.whaleBal})
		seedAccount(t, dbB, rc.whale.addr, Account{Balance: rc.whaleBal})
		if seed%2 == 0 {
			b.cache.limit = 3 // the account cache starts over almost every block
		}
		var stale []*Staged
		for i := range rc.blocks {
			h := uint64(i + 1)
			txs := rc.raws(i)
			want := mustApply(t, a, h, txs, rc.cache)

			before, root := fullDump(t, dbB), b.Root()
			// Rival candidates for this height: the block's transactions shuffled, and a prefix.
			for _, rival := range [][][]byte{shuffled(rng, txs), txs[:len(txs)/2]} {
				st, err := b.ExecuteBlock(blockAt(h), rival, rc.cache)
				if err != nil {
					t.Fatal(err)
				}
				stale = append(stale, st)
			}
			var st *Staged
			var err error
			switch seed % 3 {
			case 0:
				st, err = b.ExecuteBlock(blockAt(h), txs, rc.cache)
			case 1: // the caller's hashes, as the node passes them
				hashes := make([]Hash, len(txs))
				for i := range txs {
					hashes[i] = HashTx(txs[i])
				}
				st, err = b.ExecuteHashed(blockAt(h), txs, hashes, rc.cache)
			case 2: // hashes that do not fit the block are not used
				st, err = b.ExecuteHashed(blockAt(h), txs, make([]Hash, len(txs)+1), rc.cache)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !mapsEqual(fullDump(t, dbB), before) || b.Root() != root || b.Height() != h-1 {
				t.Fatalf("seed %d block %d: a dry run changed the state", seed, h)
			}
			if st.Result.Root != want.Root || !slices.Equal(resultStrings(st.Result), resultStrings(want)) {
				t.Fatalf("seed %d block %d: dry run gives root %s, ApplyBlock %s", seed, h, st.Result.Root, want.Root)
			}
			got, err := b.CommitStaged(st)
			if err != nil {
				t.Fatal(err)
			}
			if got.Root != want.Root || b.Root() != a.Root() || !slices.Equal(resultStrings(got), resultStrings(want)) {
				t.Fatalf("seed %d block %d: committed root %s, ApplyBlock %s", seed, h, got.Root, want.Root)
			}
			if !mapsEqual(fullDump(t, dbB), fullDump(t, dbA)) {
				t.Fatalf("seed %d block %d: stores differ after commit", seed, h)
			}
			if _, err := b.CommitStaged(st); !errors.Is(err, ErrStaleStaged) {
				t.Fatalf("seed %d block %d: a staged block committed twice: %v", seed, h, err)
			}
			for _, old := range stale {
				if _, err := b.CommitStaged(old); !errors.Is(err, ErrStaleStaged) {
					t.Fatalf("seed %d block %d: a candidate of an earlier tip committed: %v", seed, h, err)
				}
			}
			if _, err := a.CommitStaged(st); !errors.Is(err, ErrStaleStaged) {
				t.Fatalf("seed %d block %d: a block staged on another State committed: %v", seed, h, err)
			}
		}
		if !mapsEqual(fullDump(t, dbB), fullDump(t, dbA)) {
			t.Fatalf("seed %d: stores differ at the end", seed)
		}
	}
}

func shuffled(rng *rand.Rand, txs [][]byte) [][]byte {
	out := slices.Clone(txs)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// A sender's transactions in descending nonce order — valid one by one, each signed — fail all
// but the one carrying the next nonce: the dry run says which, and why, so that a node can refuse
// the block before voting for it. Those ahead of the next nonce fail with ErrNonceAhead (they
// may pass in a later block); a nonce already used does not.
func TestDryRunFindsDescendingNonces(t *testing.T) {
	k, to := newTestKey(1), newTestKey(2)
	s, db := newTestState(t, kv.MemDB, []GenesisAccount{{Address: k.addr, Balance: 100}})
	var txs [][]byte
	for nonce := uint64(4); ; nonce-- {
		txs = append(txs, rawTransfer(t, k, nonce, to.addr, 1))
		if nonce == 0 {
			break
		}
	}
	before := fullDump(t, db)
	st, err := s.ExecuteBlock(blockAt(1), txs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(fullDump(t, db), before) {
		t.Fatal("the dry run wrote to the store")
	}
	if got := st.Failed(); got != 0 {
		t.Fatalf("first failing transaction %d, want 0", got)
	}
	for i, r := range st.Result.Results {
		if last := i == len(txs)-1; last != (r.Err == nil) {
			t.Fatalf("tx %d (nonce %d): %v", i, len(txs)-1-i, r.Err)
		}
		if r.Err != nil && !errors.Is(r.Err, ErrNonceAhead) {
			t.Fatalf("tx %d: %v, want ErrNonceAhead", i, r.Err)
		}
	}
	// The same transactions in order all pass; afterwards nonce 0 again is used, not ahead.
	slices.Reverse(txs)
	st, err = s.ExecuteBlock(blockAt(1), txs, nil)
	if err != nil || st.Failed() != -1 {
		t.Fatalf("ascending nonces: failed at %d, %v", st.Failed(), err)
	}
	if _, err := s.CommitStaged(st); err != nil {
		t.Fatal(err)
	}
	st, err = s.ExecuteBlock(blockAt(2), txs[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Result.Results[0].Err; !errors.Is(err, ErrBadNonce) || errors.Is(err, ErrNonceAhead) {
		t.Fatalf("a used nonce again: %v, want ErrBadNonce and not ErrNonceAhead", err)
	}
}
