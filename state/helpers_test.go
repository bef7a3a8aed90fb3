package state

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

const testChain = "guild-test-1"

// testKey is a deterministic account key: the same index gives the same key in every run.
type testKey struct {
	priv ed25519.PrivateKey
	addr Address
}

func newTestKey(i int) testKey {
	seed := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("guild/state-test-key"), uint64(i)))
	priv := ed25519.NewKeyFromSeed(seed[:])
	return testKey{priv: priv, addr: AddressFromPubKey(priv.Public().(ed25519.PublicKey))}
}

func transferBody(k testKey, nonce uint64, to Address, amount uint64) TxBody {
	return TxBody{ChainID: testChain, From: k.addr, Nonce: nonce, Transfer: &Transfer{To: to, Amount: amount}}
}

// signedTx signs body with k and returns the transaction and its bytes.
func signedTx(t testing.TB, k testKey, body TxBody) (*Tx, []byte) {
	t.Helper()
	tx, err := SignTx(body, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return tx, raw
}

func rawTransfer(t testing.TB, k testKey, nonce uint64, to Address, amount uint64) []byte {
	_, raw := signedTx(t, k, transferBody(k, nonce, to, amount))
	return raw
}

func encodeTx(t testing.TB, tx *Tx) []byte {
	t.Helper()
	raw, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// openStore opens a fresh store of backend b in a test directory.
func openStore(t testing.TB, b kv.Backend, dir string) kv.Store {
	t.Helper()
	db, err := kv.Open(b, dir, "state")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// newTestState opens an empty state on a fresh store and applies genesis.
func newTestState(t testing.TB, b kv.Backend, genesis []GenesisAccount) (*State, kv.Store) {
	t.Helper()
	db := openStore(t, b, t.TempDir())
	t.Cleanup(func() { db.Close() })
	s, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(Genesis{Accounts: genesis}); err != nil {
		t.Fatal(err)
	}
	return s, db
}

// seedAccount writes an account straight into the store, bypassing genesis: tests use it for
// states genesis refuses (a balance close to the uint64 limit next to others).
func seedAccount(t testing.TB, db kv.Store, a Address, acct Account) {
	t.Helper()
	k := accountKey(a)
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(k[:], appendAccount(nil, acct)); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
}

// dumpState returns every state entry and the height and root: two states with equal dumps are
// the same state.
func dumpState(t testing.TB, s *State, db kv.Store) string {
	t.Helper()
	it, err := db.Iterator([]byte(accountPrefix), []byte("a0"))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "height %d root %s\n", s.Height(), s.Root())
	for ; it.Valid(); it.Next() {
		fmt.Fprintf(&buf, "%x=%x\n", it.Key(), it.Value())
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// mapCache is a SigCache over a set of hashes.
type mapCache map[Hash]bool

func (c mapCache) Verified(h Hash) bool { return c[h] }

// yesCache claims every transaction is verified: a broken cache, to show ApplyBlock trusts it.
type yesCache struct{}

func (yesCache) Verified(Hash) bool { return true }

func mustApply(t testing.TB, s *State, height uint64, txs [][]byte, cache SigCache) *BlockResult {
	t.Helper()
	res, err := s.ApplyBlock(blockAt(height), txs, cache)
	if err != nil {
		t.Fatalf("ApplyBlock(%d): %v", height, err)
	}
	return res
}

func mustAccount(t testing.TB, s *State, a Address) Account {
	t.Helper()
	acct, err := s.Account(a)
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// blockAt is block h's info in tests: one second per block.
func blockAt(h uint64) BlockInfo { return BlockInfo{Height: h, TimeMs: int64(h) * 1000} }
