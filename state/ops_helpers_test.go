package state

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// opEnv is a state with a small consortium for the operation tests: alice, bob and dave control
// the members acme, bolt and dyn; carol and erin are outsiders. Everyone has native currency.
type opEnv struct {
	t                             *testing.T
	s                             *State
	db                            kv.Store
	alice, bob, carol, dave, erin testKey
	vals                          []Validator
}

func newOpEnv(t *testing.T) *opEnv {
	t.Helper()
	e := &opEnv{t: t, alice: newTestKey(1), bob: newTestKey(2), carol: newTestKey(3), dave: newTestKey(4), erin: newTestKey(5)}
	for i := range 4 {
		k := newTestKey(100 + i)
		e.vals = append(e.vals, Validator{Name: fmt.Sprintf("v%d", i), PubKey: k.priv.Public().(ed25519.PublicKey), PeerID: fmt.Sprintf("peer%d", i), Power: 1})
	}
	g := Genesis{
		TimeMs: 1_000,
		Members: []Member{
			{Name: "acme", Controller: e.alice.addr},
			{Name: "bolt", Controller: e.bob.addr},
			{Name: "dyn", Controller: e.dave.addr},
		},
		Validators: e.vals,
	}
	for _, k := range []testKey{e.alice, e.bob, e.carol, e.dave, e.erin} {
		g.Accounts = append(g.Accounts, GenesisAccount{Address: k.addr, Balance: 1000})
	}
	e.s, e.db = newTestStateGenesis(t, kv.MemDB, g)
	return e
}

func newTestStateGenesis(t testing.TB, b kv.Backend, g Genesis) (*State, kv.Store) {
	t.Helper()
	db := openStore(t, b, t.TempDir())
	t.Cleanup(func() { db.Close() })
	s, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	return s, db
}

// signOp signs op (a TxBody with only its operation set) as k, at k's next nonce.
func (e *opEnv) signOp(k testKey, op TxBody) []byte {
	e.t.Helper()
	acct := mustAccount(e.t, e.s, k.addr)
	op.ChainID, op.From, op.Nonce = testChain, k.addr, acct.Nonce
	_, raw := signedTx(e.t, k, op)
	return raw
}

// block applies raws as the next block and returns their results.
func (e *opEnv) block(raws ...[]byte) []error {
	e.t.Helper()
	res := mustApply(e.t, e.s, e.s.Height()+1, raws, nil)
	out := make([]error, len(res.Results))
	for i, r := range res.Results {
		out[i] = r.Err
	}
	return out
}

// do applies op from k alone in a block and checks its result against want. A rejected
// operation must leave every state entry as it was, the sender's nonce included.
func (e *opEnv) do(k testKey, want error, op TxBody) {
	e.t.Helper()
	e.doRaw(want, e.signOp(k, op))
}

func (e *opEnv) doRaw(want error, raw []byte) {
	e.t.Helper()
	before := stateEntries(e.t, e.db)
	got := e.block(raw)[0]
	if want == nil && got != nil || want != nil && !errors.Is(got, want) {
		e.t.Fatalf("block %d: got %v, want %v", e.s.Height(), got, want)
	}
	if got != nil && stateEntries(e.t, e.db) != before {
		e.t.Fatalf("block %d: rejected (%v) but the state changed", e.s.Height(), got)
	}
	if got == nil && stateEntries(e.t, e.db) == before {
		e.t.Fatalf("block %d: applied but the state did not change", e.s.Height())
	}
}

// skipTo applies empty blocks until the state is at height h.
func (e *opEnv) skipTo(h uint64) {
	e.t.Helper()
	for e.s.Height() < h {
		e.block()
	}
}

// stateEntries is every state entry ("a/" and "r/" keys), as text.
func stateEntries(t testing.TB, db kv.Store) string {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range []string{accountPrefix, recordPrefix} {
		it, err := db.Iterator([]byte(p), prefixEnd([]byte(p)))
		if err != nil {
			t.Fatal(err)
		}
		for ; it.Valid(); it.Next() {
			fmt.Fprintf(&buf, "%q=%x\n", it.Key(), it.Value())
		}
		if err := it.Error(); err != nil {
			t.Fatal(err)
		}
		it.Close()
	}
	return buf.String()
}

func pub(k testKey) []byte { return bytes.Clone(k.priv.Public().(ed25519.PublicKey)) }

// must returns v, or panics (failing the test with a trace) if a query failed.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
