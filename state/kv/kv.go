// Package kv is Guild's own small key-value interface, and the only place in the project that
// names cometbft-db: its README warns that it may be retired, so everything else codes against
// Store, Batch and Iterator and a replacement touches only this package.
//
// The contract is the same on every backend, and the adapter below papers over the places where
// cometbft-db's backends differ (memdb keeps the caller's slices and iterates under a lock;
// pebbledb and goleveldb copy and iterate over a snapshot):
//
//   - Keys are non-empty (ErrEmptyKey otherwise); a nil value is stored as an empty one.
//   - Get returns a slice the caller owns; nil, nil means absent, and a present empty value is a
//     non-nil empty slice.
//   - A Batch copies what it is given, is atomic, and its Write is durable (fsync) before it
//     returns: a crash leaves all of a batch or none of it.
//   - An Iterator sees the store as it was when the iterator was created; writes made while it
//     is open do not show in it and do not block.
//   - A Store is safe for concurrent use; a Batch and an Iterator belong to one goroutine.
package kv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	dbm "github.com/cometbft/cometbft-db"
)

// Backend names a storage engine.
type Backend string

const (
	// PebbleDB is CockroachDB's pebble: pure Go, maintained, the default.
	PebbleDB Backend = "pebbledb"
	// GoLevelDB is syndtr/goleveldb: pure Go, unmaintained but long proven.
	GoLevelDB Backend = "goleveldb"
	// MemDB keeps everything in memory and loses it on Close; for tests and throw-away nodes.
	// Every Open of it is a new, empty store.
	MemDB Backend = "memdb"

	// DefaultBackend is used when a configuration names none.
	DefaultBackend = PebbleDB
)

// Backends lists the backends Open accepts, default first.
func Backends() []Backend { return []Backend{PebbleDB, GoLevelDB, MemDB} }

var (
	ErrUnknownBackend = errors.New("kv: unknown backend")
	ErrEmptyKey       = errors.New("kv: key must not be empty")
	ErrClosed         = errors.New("kv: store closed")
	ErrBatchClosed    = errors.New("kv: batch already written or closed")
	// ErrStorage marks a failure of the storage engine itself (an I/O error, a checksum that does
	// not match, a full disk): the store, not the caller, is at fault. Every error the backend
	// returns is wrapped with it, and with the store's path.
	ErrStorage = errors.New("kv: storage failure")
)

// Store is an ordered key-value store.
type Store interface {
	// Get returns the value of key, or nil, nil when it is absent. Safe for concurrent use.
	Get(key []byte) ([]byte, error)
	// Has reports whether key is present.
	Has(key []byte) (bool, error)
	// NewBatch starts an atomic group of writes. The caller must Close it.
	NewBatch() Batch
	// Iterator walks keys in [start, end) in ascending order; a nil start is the first key and a
	// nil end goes to the last. The caller must Close it.
	Iterator(start, end []byte) (Iterator, error)
	// Close releases the store; every later call returns ErrClosed.
	Close() error
}

// Batch is a group of writes applied atomically by Write.
type Batch interface {
	Set(key, value []byte) error
	Delete(key []byte) error
	// Write applies the batch and syncs it to stable storage before returning. The batch cannot
	// be used afterwards, except to Close it.
	Write() error
	// WriteNoSync applies the batch without waiting for stable storage. It is durable only once
	// a later Write returns (which syncs it with everything before it): pebble keeps an unsynced
	// record in its own log buffer until that buffer fills or a sync flushes it, so a process
	// killed meanwhile loses it. Use it only for what may be lost. Otherwise as Write.
	WriteNoSync() error
	// Close discards an unwritten batch. It is idempotent.
	Close() error
}

// Iterator walks a range of keys. Key and Value are only valid until the next call to Next or
// Close; copy them to keep them. Key, Value and Next panic when Valid is false.
type Iterator interface {
	Valid() bool
	Next()
	Key() []byte
	Value() []byte
	Error() error
	Close() error
}

// Open opens (creating it if needed) the store called name in directory dir. An empty backend
// means DefaultBackend. For MemDB, dir and name are ignored.
func Open(backend Backend, dir, name string) (Store, error) {
	return OpenWith(backend, dir, name, Options{})
}

// OpenWith is Open with options.
func OpenWith(backend Backend, dir, name string, opts Options) (Store, error) {
	if backend == "" {
		backend = DefaultBackend
	}
	switch backend {
	case PebbleDB, GoLevelDB:
		if name == "" {
			return nil, errors.New("kv: store name must not be empty")
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("kv: create data directory: %w", err)
		}
	case MemDB:
	default:
		return nil, fmt.Errorf("%w %q: want one of %q, %q, %q", ErrUnknownBackend, backend, PebbleDB, GoLevelDB, MemDB)
	}
	var (
		db     dbm.DB
		engine *pebbleLogger
		err    error
	)
	if backend == PebbleDB && opts.Logger != nil {
		db, engine, err = openPebble(dir, name, opts.Logger)
	} else {
		db, err = dbm.NewDB(name, dbm.BackendType(backend), dir)
	}
	if err != nil {
		return nil, fmt.Errorf("kv: open %s store %q in %s: %w", backend, name, dir, err)
	}
	path := filepath.Join(dir, name+".db") // where cometbft-db keeps a disk store
	if backend == MemDB {
		path = "memory"
	}
	if backend == PebbleDB {
		if err := removeIngestLeftover(path); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	return &store{db: db, mem: backend == MemDB, path: path, engine: engine}, nil
}

type store struct {
	db   dbm.DB
	path string // named in errors, so that an operator knows which store failed
	// mem marks cometbft-db's memdb, which keeps references to the caller's slices, hands out its
	// own, and holds a read lock for as long as an iterator is open.
	mem    bool
	closed atomic.Bool
	// engine is a pebble store's logger and event counts (Stats); nil without Options.Logger.
	engine *pebbleLogger
	// ingestMu makes Ingests one at a time: each builds its table in the same file.
	ingestMu  sync.Mutex
	ingestBuf []byte // Ingest's table, reused
}

func (s *store) Get(key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(key) == 0 {
		return nil, ErrEmptyKey
	}
	v, err := s.db.Get(key)
	if err != nil {
		return nil, s.fail("get", err)
	}
	if s.mem && v != nil {
		v = bytes.Clone(v) // Clone keeps an empty value non-nil
	}
	return v, nil
}

func (s *store) Has(key []byte) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	if len(key) == 0 {
		return false, ErrEmptyKey
	}
	ok, err := s.db.Has(key)
	if err != nil {
		return false, s.fail("has", err)
	}
	return ok, nil
}

func (s *store) NewBatch() Batch {
	if s.closed.Load() {
		return &batch{err: ErrClosed}
	}
	return &batch{b: s.db.NewBatch(), copyArgs: s.mem, s: s}
}

func (s *store) Iterator(start, end []byte) (Iterator, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	// cometbft-db rejects empty bounds and, on some backends, start >= end; both mean "nothing"
	// or "unbounded" here.
	if len(start) == 0 {
		start = nil
	}
	if end != nil && len(end) == 0 {
		return &sliceIterator{}, nil
	}
	if start != nil && end != nil && bytes.Compare(start, end) >= 0 {
		return &sliceIterator{}, nil
	}
	it, err := s.db.Iterator(start, end)
	if err != nil {
		return nil, s.fail("iterator", err)
	}
	if !s.mem {
		return &dbIterator{it: it, s: s}, nil
	}
	// memdb's iterator holds the store's read lock until closed, so a write from the iterating
	// goroutine would deadlock. Copy the range out instead: memdb is for tests and small data,
	// and this gives it the same snapshot semantics as the disk backends.
	snap := &sliceIterator{}
	for ; it.Valid(); it.Next() {
		snap.keys = append(snap.keys, bytes.Clone(it.Key()))
		snap.values = append(snap.values, bytes.Clone(it.Value()))
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return nil, s.fail("iterator", err)
	}
	if err := it.Close(); err != nil {
		return nil, s.fail("iterator", err)
	}
	return snap, nil
}

// fail wraps an error of the backend: ErrStorage, the store's path, and what was being done.
func (s *store) fail(op string, err error) error {
	return fmt.Errorf("%w in %s: %s: %w", ErrStorage, s.path, op, err)
}

func (s *store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("kv: close: %w", err)
	}
	return nil
}

// Compact makes a store compact all it holds now, and returns when it is done: after a bulk
// load (a restored snapshot), so that the engine's deferred work does not fall on the next
// writes; benchmarks use it to measure what a block costs, not what the load before it left.
// memdb has nothing to compact.
func Compact(st Store) error {
	s, ok := st.(*store)
	if !ok {
		return nil
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if s.mem {
		return nil
	}
	if err := s.db.Compact(nil, nil); err != nil {
		return s.fail("compact", err)
	}
	return nil
}

// SizedBatcher is a Store whose NewBatchSized knows better than NewBatch; see NewBatchSized.
type SizedBatcher interface {
	NewBatchSized(size int) Batch
}

// NewBatchSized is st.NewBatch with room for about size bytes of keys and values, where the
// backend can use it (pebbledb): a batch of megabytes, such as a block's state entries and tree
// nodes, then does not grow by doubling and copying its buffer (issue 12).
//
// A Store that wraps another (the node's write runs) passes the size on by implementing
// SizedBatcher.
func NewBatchSized(st Store, size int) Batch {
	if sb, ok := st.(SizedBatcher); ok {
		return sb.NewBatchSized(size)
	}
	s, ok := st.(*store)
	if !ok || s.closed.Load() {
		return st.NewBatch()
	}
	p, ok := s.db.(*dbm.PebbleDB)
	if !ok {
		return st.NewBatch()
	}
	return &batch{b: &sizedPebbleBatch{b: p.DB().NewBatchWithSize(size)}, s: s}
}

// sizedPebbleBatch does what cometbft-db's pebble batch does, on a batch made with its size.
type sizedPebbleBatch struct {
	b *pebble.Batch
}

func (b *sizedPebbleBatch) Set(key, value []byte) error {
	if b.b == nil {
		return ErrBatchClosed
	}
	return b.b.Set(key, value, nil)
}

func (b *sizedPebbleBatch) Delete(key []byte) error {
	if b.b == nil {
		return ErrBatchClosed
	}
	return b.b.Delete(key, nil)
}

func (b *sizedPebbleBatch) Write() error { return b.commit(pebble.NoSync) }

func (b *sizedPebbleBatch) WriteSync() error { return b.commit(pebble.Sync) }

func (b *sizedPebbleBatch) commit(opts *pebble.WriteOptions) error {
	if b.b == nil {
		return ErrBatchClosed
	}
	if err := b.b.Commit(opts); err != nil {
		return err
	}
	return b.Close()
}

func (b *sizedPebbleBatch) Close() error {
	if b.b == nil {
		return nil
	}
	err := b.b.Close()
	b.b = nil
	return err
}

type batch struct {
	b        dbm.Batch
	s        *store
	copyArgs bool
	err      error // sticky: the batch is unusable
}

func (b *batch) Set(key, value []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if value == nil {
		value = []byte{}
	}
	if b.copyArgs {
		key, value = bytes.Clone(key), bytes.Clone(value)
	}
	if err := b.b.Set(key, value); err != nil {
		return b.s.fail("batch set", err)
	}
	return nil
}

func (b *batch) Delete(key []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if b.copyArgs {
		key = bytes.Clone(key)
	}
	if err := b.b.Delete(key); err != nil {
		return b.s.fail("batch delete", err)
	}
	return nil
}

func (b *batch) Write() error {
	if err := b.usable(); err != nil {
		return err
	}
	err := b.b.WriteSync()
	_ = b.Close()
	if err != nil {
		return b.s.fail("batch write", err)
	}
	return nil
}

func (b *batch) WriteNoSync() error {
	if err := b.usable(); err != nil {
		return err
	}
	err := b.b.Write()
	_ = b.Close()
	if err != nil {
		return b.s.fail("batch write", err)
	}
	return nil
}

func (b *batch) Close() error {
	if b.b == nil {
		return nil
	}
	err := b.b.Close()
	b.b = nil
	if b.err == nil {
		b.err = ErrBatchClosed
	}
	if err != nil {
		return fmt.Errorf("kv: batch close: %w", err)
	}
	return nil
}

func (b *batch) usable() error {
	if b.err != nil {
		return b.err
	}
	return nil
}

// dbIterator passes a disk backend's iterator through; pebble and goleveldb iterators already
// read from a snapshot taken when they were created.
type dbIterator struct {
	it     dbm.Iterator
	s      *store
	closed bool
}

func (i *dbIterator) Valid() bool   { return !i.closed && i.it.Valid() }
func (i *dbIterator) Next()         { i.it.Next() }
func (i *dbIterator) Key() []byte   { return i.it.Key() }
func (i *dbIterator) Value() []byte { return i.it.Value() }
func (i *dbIterator) Error() error {
	if err := i.it.Error(); err != nil {
		return i.s.fail("iterating", err)
	}
	return nil
}

func (i *dbIterator) Close() error {
	if i.closed {
		return nil
	}
	i.closed = true
	if err := i.it.Close(); err != nil {
		return fmt.Errorf("kv: iterator close: %w", err)
	}
	return nil
}

// sliceIterator walks a copied range (memdb) or nothing (an empty range).
type sliceIterator struct {
	keys, values [][]byte
	pos          int
}

func (i *sliceIterator) Valid() bool { return i.pos < len(i.keys) }
func (i *sliceIterator) Next() {
	i.mustBeValid()
	i.pos++
}
func (i *sliceIterator) Key() []byte {
	i.mustBeValid()
	return i.keys[i.pos]
}
func (i *sliceIterator) Value() []byte {
	i.mustBeValid()
	return i.values[i.pos]
}
func (i *sliceIterator) Error() error { return nil }
func (i *sliceIterator) Close() error {
	i.keys, i.values, i.pos = nil, nil, 0
	return nil
}

func (i *sliceIterator) mustBeValid() {
	if !i.Valid() {
		panic("kv: iterator used after its end")
	}
}
