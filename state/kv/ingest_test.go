package kv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func run(prefix string, n int, val string) [][2][]byte {
	kvs := make([][2][]byte, n)
	for i := range kvs {
		kvs[i] = [2][]byte{fmt.Appendf(nil, "%s%06d", prefix, i), fmt.Appendf(nil, "%s%d", val, i)}
	}
	return kvs
}

func checkRun(t *testing.T, s Store, kvs [][2][]byte) {
	t.Helper()
	for _, e := range kvs {
		v, err := s.Get(e[0])
		if err != nil || !bytes.Equal(v, e[1]) {
			t.Fatalf("%s: %q %v, want %q", e[0], v, err, e[1])
		}
	}
}

// Ingest puts a sorted run in the store durably (it survives a reopen), beside what batches
// wrote; the same run again (a block applied again after a crash) and a run over existing keys
// are accepted, the later run's values winning; an unsorted run is refused and leaves nothing,
// not even its table's file; and a backend that cannot ingest says so.
func TestIngest(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(PebbleDB, dir, "state")
	if err != nil {
		t.Fatal(err)
	}
	if !CanIngest(s) {
		t.Fatal("pebbledb cannot ingest")
	}
	b := s.NewBatch()
	if err := b.Set([]byte("a/1"), []byte("x")); err != nil || b.Write() != nil {
		t.Fatal(err)
	}
	first := run("t/v1/", 5000, "v")
	if err := Ingest(s, first); err != nil {
		t.Fatal(err)
	}
	if err := Ingest(s, first); err != nil {
		t.Fatalf("ingesting the same run again: %v", err)
	}
	second := run("t/v2/", 100, "w")
	if err := Ingest(s, second); err != nil {
		t.Fatal(err)
	}
	over := run("t/v1/", 10, "over")
	if err := Ingest(s, over); err != nil {
		t.Fatal(err)
	}
	bad := [][2][]byte{{[]byte("t/v3/b"), nil}, {[]byte("t/v3/a"), nil}}
	if err := Ingest(s, bad); !errors.Is(err, ErrStorage) {
		t.Fatalf("unsorted run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db", ingestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused run left its table: %v", err)
	}
	if v, _ := s.Get([]byte("t/v3/a")); v != nil {
		t.Fatal("a refused run left a key")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A table a crash left half-built goes at the next open.
	if err := os.WriteFile(filepath.Join(dir, "state.db", ingestFile), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(PebbleDB, dir, "state"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, "state.db", ingestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open left a half-built table: %v", err)
	}
	checkRun(t, s, over)
	checkRun(t, s, first[10:])
	checkRun(t, s, second)
	if v, err := s.Get([]byte("a/1")); err != nil || string(v) != "x" {
		t.Fatal(v, err)
	}
	it, err := s.Iterator([]byte("t/"), []byte("t0"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; it.Valid(); it.Next() {
		n++
	}
	it.Close()
	if n != len(first)+len(second) {
		t.Fatalf("iterated %d keys, want %d", n, len(first)+len(second))
	}

	for _, backend := range []Backend{GoLevelDB, MemDB} {
		o, err := Open(backend, t.TempDir(), "state")
		if err != nil {
			t.Fatal(err)
		}
		if CanIngest(o) || !errors.Is(Ingest(o, first), ErrNoIngest) {
			t.Fatalf("%s ingests", backend)
		}
		o.Close()
	}
}
