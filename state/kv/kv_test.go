package kv

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

func openTest(t testing.TB, b Backend, dir string) Store {
	t.Helper()
	s, err := Open(b, dir, "test")
	if err != nil {
		t.Fatalf("open %s: %v", b, err)
	}
	return s
}

func TestOpenUnknownBackend(t *testing.T) {
	_, err := Open("rocksdb", t.TempDir(), "x")
	if !errors.Is(err, ErrUnknownBackend) {
		t.Fatalf("got %v, want ErrUnknownBackend", err)
	}
	for _, b := range Backends() {
		if !strings.Contains(err.Error(), string(b)) {
			t.Errorf("error %q does not list backend %q", err, b)
		}
	}
}

func TestOpenDefaultCreatesDir(t *testing.T) {
	dir := t.TempDir() + "/a/b/c"
	s, err := Open("", dir, "state")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*store); !ok || s.(*store).mem {
		t.Fatal("empty backend should open the default on-disk store")
	}
}

// TestContract runs the edge cases of the contract on every backend.
func TestContract(t *testing.T) {
	for _, b := range Backends() {
		for _, sized := range []bool{false, true} {
			name := string(b)
			if sized {
				name += "/sized"
			}
			t.Run(name, func(t *testing.T) { testContract(t, b, sized) })
		}
	}
}

// testContract checks one backend, with batches from NewBatch or from NewBatchSized.
func testContract(t *testing.T, b Backend, sized bool) {
	s := openTest(t, b, t.TempDir())
	defer s.Close()
	newBatch := s.NewBatch
	if sized {
		newBatch = func() Batch { return NewBatchSized(s, 64) }
	}

	if v, err := s.Get([]byte("absent")); v != nil || err != nil {
		t.Fatalf("absent key: got %q, %v", v, err)
	}
	if _, err := s.Get(nil); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("Get(nil): %v", err)
	}
	if _, err := s.Has([]byte{}); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("Has(empty): %v", err)
	}

	// The batch copies its arguments; Get hands out a copy.
	key, val := []byte("k1"), []byte("v1")
	bt := newBatch()
	if err := bt.Set(key, val); err != nil {
		t.Fatal(err)
	}
	if err := bt.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if err := bt.Set(nil, val); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("Set(empty key): %v", err)
	}
	key[0], val[0] = 'X', 'X'
	if err := bt.Write(); err != nil {
		t.Fatal(err)
	}
	if err := bt.Set([]byte("late"), val); !errors.Is(err, ErrBatchClosed) {
		t.Fatalf("Set after Write: %v", err)
	}
	if err := bt.Write(); !errors.Is(err, ErrBatchClosed) {
		t.Fatalf("second Write: %v", err)
	}
	if err := bt.Close(); err != nil {
		t.Fatalf("Close after Write: %v", err)
	}
	got, err := s.Get([]byte("k1"))
	if err != nil || string(got) != "v1" {
		t.Fatalf("Get(k1) = %q, %v", got, err)
	}
	got[0] = 'Z'
	if again, _ := s.Get([]byte("k1")); string(again) != "v1" {
		t.Fatalf("mutating a Get result changed the store: %q", again)
	}
	if v, err := s.Get([]byte("empty")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("empty value: got %#v, %v", v, err)
	}
	if ok, err := s.Has([]byte("empty")); !ok || err != nil {
		t.Fatalf("Has(empty value) = %v, %v", ok, err)
	}

	// A closed batch writes nothing.
	bt = newBatch()
	_ = bt.Set([]byte("discarded"), []byte("x"))
	_ = bt.Close()
	_ = bt.Close()
	if ok, _ := s.Has([]byte("discarded")); ok {
		t.Fatal("closed batch was written")
	}

	// Degenerate ranges are empty, not errors.
	for _, r := range [][2][]byte{{[]byte("b"), []byte("a")}, {[]byte("a"), []byte("a")}, {nil, []byte{}}} {
		it, err := s.Iterator(r[0], r[1])
		if err != nil {
			t.Fatalf("Iterator(%q, %q): %v", r[0], r[1], err)
		}
		if it.Valid() {
			t.Fatalf("Iterator(%q, %q) not empty", r[0], r[1])
		}
		_ = it.Close()
	}

	// An iterator is a snapshot, and writing while it is open does not block.
	it, err := s.Iterator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bt = newBatch()
	_ = bt.Set([]byte("added"), []byte("later"))
	_ = bt.Delete([]byte("k1"))
	if err := bt.Write(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for ; it.Valid(); it.Next() {
		keys = append(keys, string(it.Key()))
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	_ = it.Close()
	_ = it.Close()
	if want := []string{"empty", "k1"}; !slices.Equal(keys, want) {
		t.Fatalf("iterator saw %q, want the snapshot %q", keys, want)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get([]byte("k1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := newBatch().Set([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("batch after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestRandomOpsAgainstModel applies one seeded random sequence of batches, reads and range scans
// to every backend and to a map, checks each answer against the map, and checks that all
// backends produced the same transcript.
func TestRandomOpsAgainstModel(t *testing.T) {
	const seed = 20240611
	transcripts := map[Backend][32]byte{}
	for _, b := range Backends() {
		t.Run(string(b), func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, b, dir)
			model := map[string][]byte{}
			rng := rand.New(rand.NewSource(seed))
			h := sha256.New()
			randKey := func() []byte {
				// A small key space so that sets, deletes and reads collide often.
				n := 1 + rng.Intn(3)
				k := make([]byte, n)
				for i := range k {
					k[i] = byte('a' + rng.Intn(6))
				}
				return k
			}
			for op := 0; op < 1500; op++ {
				switch r := rng.Intn(10); {
				case r < 4: // a batch of writes
					bt := s.NewBatch()
					pending := map[string][]byte{}
					var deleted []string
					for n := rng.Intn(8); n >= 0; n-- {
						k := randKey()
						if rng.Intn(3) == 0 {
							if err := bt.Delete(k); err != nil {
								t.Fatal(err)
							}
							delete(pending, string(k))
							deleted = append(deleted, string(k))
							continue
						}
						v := make([]byte, rng.Intn(5))
						rng.Read(v)
						if err := bt.Set(k, v); err != nil {
							t.Fatal(err)
						}
						pending[string(k)] = v
						deleted = slices.DeleteFunc(deleted, func(d string) bool { return d == string(k) })
					}
					if rng.Intn(10) == 0 { // abandon it
						_ = bt.Close()
						fmt.Fprintf(h, "abandon\n")
						continue
					}
					if err := bt.Write(); err != nil {
						t.Fatal(err)
					}
					for _, k := range deleted {
						delete(model, k)
					}
					for k, v := range pending {
						model[k] = v
					}
					fmt.Fprintf(h, "write\n")
				case r < 7:
					k := randKey()
					got, err := s.Get(k)
					if err != nil {
						t.Fatal(err)
					}
					want, ok := model[string(k)]
					if ok != (got != nil) || !bytes.Equal(got, want) {
						t.Fatalf("op %d: Get(%q) = %x, model has %x (present %v)", op, k, got, want, ok)
					}
					has, err := s.Has(k)
					if err != nil || has != ok {
						t.Fatalf("op %d: Has(%q) = %v, %v; model %v", op, k, has, err, ok)
					}
					fmt.Fprintf(h, "get %q %x %v\n", k, got, ok)
				default:
					var start, end []byte
					if rng.Intn(4) != 0 {
						start = randKey()
					}
					if rng.Intn(4) != 0 {
						end = randKey()
					}
					it, err := s.Iterator(start, end)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for ; it.Valid(); it.Next() {
						got = append(got, fmt.Sprintf("%s=%x", it.Key(), it.Value()))
					}
					if err := it.Error(); err != nil {
						t.Fatal(err)
					}
					_ = it.Close()
					var want []string
					for k, v := range model {
						if (start == nil || k >= string(start)) && (end == nil || k < string(end)) {
							want = append(want, fmt.Sprintf("%s=%x", k, v))
						}
					}
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Fatalf("op %d: Iterator(%q, %q) = %q, model %q", op, start, end, got, want)
					}
					fmt.Fprintf(h, "scan %q\n", got)
				}
			}
			// Durable backends give back everything after a reopen.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if b != MemDB {
				s = openTest(t, b, dir)
				defer s.Close()
				it, err := s.Iterator(nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for ; it.Valid(); it.Next() {
					if want := model[string(it.Key())]; !bytes.Equal(it.Value(), want) {
						t.Fatalf("after reopen %q = %x, want %x", it.Key(), it.Value(), want)
					}
					n++
				}
				_ = it.Close()
				if n != len(model) {
					t.Fatalf("after reopen %d keys, want %d", n, len(model))
				}
			}
			transcripts[b] = [32]byte(h.Sum(nil))
		})
	}
	for _, b := range Backends() {
		if transcripts[b] != transcripts[PebbleDB] {
			t.Errorf("backend %s answered differently from %s", b, PebbleDB)
		}
	}
}

func TestConcurrentReads(t *testing.T) {
	for _, b := range Backends() {
		t.Run(string(b), func(t *testing.T) {
			s := openTest(t, b, t.TempDir())
			defer s.Close()
			done := make(chan error)
			for g := 0; g < 4; g++ {
				go func() {
					var err error
					for i := 0; i < 300 && err == nil; i++ {
						_, err = s.Get([]byte(fmt.Sprintf("k%d", i%10)))
						if err == nil {
							var it Iterator
							if it, err = s.Iterator(nil, nil); err == nil {
								for ; it.Valid(); it.Next() {
								}
								err = it.Close()
							}
						}
					}
					done <- err
				}()
			}
			for i := 0; i < 50; i++ {
				bt := s.NewBatch()
				_ = bt.Set([]byte(fmt.Sprintf("k%d", i%10)), []byte{byte(i)})
				if err := bt.Write(); err != nil {
					t.Fatal(err)
				}
			}
			for g := 0; g < 4; g++ {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
