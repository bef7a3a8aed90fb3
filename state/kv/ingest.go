package kv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/sstable"
	"github.com/cockroachdb/pebble/vfs"
	dbm "github.com/cometbft/cometbft-db"
)

// Ingestion (issue 12): a run of sorted keys that sorts after everything the store holds, such as
// a block's new state-tree records, can be written as one table that pebble adds to its bottom
// level as it is, instead of through its log, memtable, flush and compactions, which rewrote the
// run two to three times and cost more CPU than making it.

// ingestFile is where Ingest builds its table, inside pebble's directory (so that pebble can
// hard-link it) under a name pebble does not take for one of its own files. One is left only by
// a crash while it was being built, and OpenWith removes it.
const ingestFile = "guild-ingest.sst.tmp"

// Ingester is a Store that wraps another and says itself whether runs go through to it: CanIngest
// and Ingest ask it rather than look at the type.
type Ingester interface {
	Store
	CanIngest() bool
	Ingest(kvs [][2][]byte) error
}

// CanIngest reports whether st takes runs by Ingest (pebbledb, or an Ingester that says so).
func CanIngest(st Store) bool {
	if i, ok := st.(Ingester); ok {
		return i.CanIngest()
	}
	_, ok := pebbleOf(st)
	return ok
}

func pebbleOf(st Store) (*store, bool) {
	s, ok := st.(*store)
	if !ok {
		return nil, false
	}
	_, ok = s.db.(*dbm.PebbleDB)
	return s, ok
}

// ErrNoIngest is returned by Ingest on a backend that cannot ingest (see CanIngest).
var ErrNoIngest = errors.New("kv: this storage backend cannot ingest tables (pebbledb can)")

// Ingest writes kvs, whose keys must be strictly ascending, into st as one table, durably, in one
// step: after it returns they are all in the store, also after a crash, and a crash before that
// leaves none of them. It is as if one batch had set them, except that the table's keys take
// precedence over any write of the same keys before it (which a caller rewriting identical
// pairs, after a crash, does not mind). Keys already in the store are allowed; it costs least
// when the run sorts after every key the store holds, which lets pebble put the table in its
// bottom level and never compact it with another for the run's sake.
func Ingest(st Store, kvs [][2][]byte) error {
	if i, ok := st.(Ingester); ok {
		return i.Ingest(kvs)
	}
	s, ok := pebbleOf(st)
	if !ok {
		return ErrNoIngest
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if len(kvs) == 0 {
		return nil
	}
	s.ingestMu.Lock()
	defer s.ingestMu.Unlock()
	db := s.db.(*dbm.PebbleDB).DB()
	path := filepath.Join(s.path, ingestFile)
	if err := s.writeTable(db, path, kvs); err != nil {
		_ = os.Remove(path)
		return s.fail("ingest: write table", err)
	}
	// Ingest syncs the directory and its manifest before it returns, and removes path.
	if err := db.Ingest([]string{path}); err != nil {
		_ = os.Remove(path)
		return s.fail("ingest", err)
	}
	return nil
}

// writeTable writes kvs as a table at path, synced.
func (s *store) writeTable(db *pebble.DB, path string, kvs [][2][]byte) error {
	f, err := vfs.Default.Create(path)
	if err != nil {
		return err
	}
	// The store's own defaults (block size, comparer), in a format it reads, uncompressed: the
	// runs Guild ingests are mostly hashes, which snappy spent CPU on for 2 % fewer bytes.
	var o pebble.Options
	o.EnsureDefaults()
	wo := o.MakeWriterOptions(0, db.FormatMajorVersion().MaxTableFormat())
	wo.Compression = sstable.NoCompression
	mw := &memWritable{f: f, buf: s.ingestBuf[:0]}
	w := sstable.NewWriter(mw, wo)
	for _, e := range kvs {
		if len(e[0]) == 0 {
			_ = w.Close()
			return ErrEmptyKey
		}
		if err := w.Set(e[0], e[1]); err != nil {
			_ = w.Close()
			return fmt.Errorf("key %x: %w", e[0], err)
		}
	}
	err = w.Close() // writes the table out, syncs and closes f
	s.ingestBuf = mw.buf[:0]
	return err
}

// memWritable builds a table in memory and writes it to its file in one call when finished:
// through pebble's buffered file, each of a table's 4 KiB blocks was a system call of its own,
// about 2 ms more CPU for a table of 5 MB.
type memWritable struct {
	f   vfs.File
	buf []byte
}

func (w *memWritable) Write(p []byte) error {
	w.buf = append(w.buf, p...)
	return nil
}

func (w *memWritable) Finish() error {
	_, err := w.f.Write(w.buf)
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (w *memWritable) Abort() { _ = w.f.Close() }

// removeIngestLeftover removes a table a crash left half-built.
func removeIngestLeftover(path string) error {
	err := os.Remove(filepath.Join(path, ingestFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("kv: removing a leftover ingestion table: %w", err)
	}
	return nil
}
