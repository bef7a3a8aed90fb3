package state

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"maps"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// snapshotSource is a state of n funded accounts with a block of transfers applied on top, so
// that the snapshot is of a root other than genesis's and holds records as well as accounts.
func snapshotSource(t *testing.T, n int) (*State, kv.Store) {
	t.Helper()
	var gen []GenesisAccount
	for i := range n {
		gen = append(gen, GenesisAccount{Address: newTestKey(i).addr, Balance: 1000})
	}
	s, db := newTestState(t, kv.MemDB, gen)
	var txs [][]byte
	for i := range 10 {
		txs = append(txs, rawTransfer(t, newTestKey(i), 0, newTestKey(n+i).addr, 7))
	}
	mustApply(t, s, 1, txs, nil)
	return s, db
}

// takeSnapshot writes s's snapshot at its tip in chunks of chunkBytes.
func takeSnapshot(t *testing.T, s *State, chunkBytes int) (*SnapshotManifest, [][]byte) {
	t.Helper()
	var chunks [][]byte
	m, err := s.WriteSnapshot(s.Height(), s.Root(), chunkBytes, func(i int, c []byte) error {
		if i != len(chunks) {
			t.Fatalf("chunk %d emitted after %d", i, len(chunks))
		}
		chunks = append(chunks, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, chunks
}

func restoreAll(db kv.Store, m *SnapshotManifest, chunks [][]byte) error {
	r, err := NewRestorer(db, m)
	if err != nil {
		return err
	}
	for _, c := range chunks {
		if err := r.Add(c); err != nil {
			return err
		}
	}
	return r.Finish(1234, nil)
}

func TestSnapshotRestoreGivesTheSameState(t *testing.T) {
	src, srcDB := snapshotSource(t, 300)
	m, chunks := takeSnapshot(t, src, 1024)
	if len(chunks) < 5 {
		t.Fatalf("%d chunks: the test wants several", len(chunks))
	}
	if m.Height != 1 || m.Root != src.Root() || m.ChainID != testChain || len(m.Chunks) != len(chunks) {
		t.Fatalf("manifest %+v", m)
	}
	// The same root cuts into the same chunks: honest peers offer identical manifests.
	m2, _ := takeSnapshot(t, src, 1024)
	h1, _ := m.Hash()
	h2, _ := m2.Hash()
	if h1 != h2 {
		t.Fatal("two snapshots of one root differ")
	}

	db := openStore(t, kv.MemDB, "")
	if err := restoreAll(db, m, chunks); err != nil {
		t.Fatal(err)
	}
	got, err := Open(db, testChain)
	if err != nil {
		t.Fatal(err)
	}
	if got.Height() != 1 || got.Root() != src.Root() || got.TimeMs() != 1234 {
		t.Fatalf("restored height %d root %s, want 1 %s", got.Height(), got.Root(), src.Root())
	}
	if want, have := allEntries(t, srcDB), allEntries(t, db); !maps.EqualFunc(want, have, bytes.Equal) {
		t.Fatalf("restored %d entries, source has %d", len(have), len(want))
	}
	// The restored state goes on as the source does.
	tx := [][]byte{rawTransfer(t, newTestKey(20), 0, newTestKey(21).addr, 5)}
	a, b := mustApply(t, src, 2, tx, nil), mustApply(t, got, 2, tx, nil)
	if a.Root != b.Root {
		t.Fatalf("after the next block: restored root %s, source %s", b.Root, a.Root)
	}
}

func TestSnapshotRefusesTamperedChunk(t *testing.T) {
	src, _ := snapshotSource(t, 100)
	m, chunks := takeSnapshot(t, src, 1024)
	db := openStore(t, kv.MemDB, "")
	r, err := NewRestorer(db, m)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(chunks[0])
	bad[len(bad)-1] ^= 1
	if err := r.Add(bad); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("tampered chunk: %v, want ErrSnapshot", err)
	}
	if r.Next() != 0 {
		t.Fatal("a refused chunk moved the restore on")
	}
	// Chunks out of order are refused too (each is checked against the hash of its index).
	if err := r.Add(chunks[1]); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("chunk 1 as chunk 0: %v, want ErrSnapshot", err)
	}
	for _, c := range chunks { // the good ones, from another peer, then go in
		if err := r.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Finish(0, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotRefusesWrongRoot(t *testing.T) {
	src, _ := snapshotSource(t, 100)
	m, chunks := takeSnapshot(t, src, 1024)
	// A manifest whose chunk hashes match its chunks but whose root is another's: the chunks
	// hash fine, and only the root at the end tells.
	lie := *m
	lie.Root[0] ^= 1
	db := openStore(t, kv.MemDB, "")
	if err := restoreAll(db, &lie, chunks); !errors.Is(err, ErrSnapshotRoot) {
		t.Fatalf("wrong root: %v, want ErrSnapshotRoot", err)
	}
	if s, err := Open(db, testChain); err != nil || s.Initialised() {
		t.Fatalf("a refused restore left a state (%v)", err)
	}
	// Chunks made to match a manifest, with an entry dropped: their own hashes are right.
	dropped := *m
	dropped.Chunks = append([]Hash(nil), m.Chunks...)
	short := bytes.Clone(chunks[0])
	_, n := readSnapshotField(short)
	_, v := readSnapshotField(short[n:])
	short = short[n+v:]
	dropped.Chunks[0] = sha256Sum(short)
	dropped.Entries--
	if err := ClearStore(db); err != nil {
		t.Fatal(err)
	}
	if err := restoreAll(db, &dropped, append([][]byte{short}, chunks[1:]...)); !errors.Is(err, ErrSnapshotRoot) {
		t.Fatalf("an entry left out: %v, want ErrSnapshotRoot", err)
	}
}

func TestSnapshotRefusesWrongChainAndForeignKeys(t *testing.T) {
	src, _ := snapshotSource(t, 20)
	m, chunks := takeSnapshot(t, src, 1<<20)
	raw, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeSnapshotManifest(raw, "another-chain"); !errors.Is(err, ErrWrongChain) {
		t.Fatalf("manifest of another chain: %v, want ErrWrongChain", err)
	}
	if _, err := DecodeSnapshotManifest(raw, testChain); err != nil {
		t.Fatal(err)
	}
	// An entry outside the state ("m/height") would set bookkeeping: refused even when hashed
	// into the manifest.
	forged := append(bytes.Clone(chunks[0]), 8)
	forged = append(forged, "m/height"...)
	forged = append(forged, 1, 0x05)
	fm := *m
	fm.Chunks = []Hash{sha256Sum(forged)}
	db := openStore(t, kv.MemDB, "")
	r, err := NewRestorer(db, &fm)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(forged); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("bookkeeping key in a chunk: %v, want ErrSnapshot", err)
	}
	// A store that holds state is not restored into.
	if err := restoreAll(db, m, chunks); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRestorer(db, m); !errors.Is(err, ErrRestoreTarget) {
		t.Fatalf("restoring over a state: %v, want ErrRestoreTarget", err)
	}
}

func sha256Sum(b []byte) Hash { return Hash(sha256.Sum256(b)) }
