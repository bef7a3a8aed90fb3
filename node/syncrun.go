package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/guild-ledger/guild/state/kv"
)

// Block sync applies certified blocks in runs (issue #10): the block store's and the state's
// writes of up to syncRunBlocks blocks are kept in memory, readable, and go to disk in one synced
// batch per store when the run ends, not in three or four synced batches per block. A wiped node
// re-synced ~200 blocks/s on the development machines, two thirds of that time waiting for fsync.
//
// Crash safety is the one the stores had block by block. The block store's batch is written
// first, then the state's, so the state is never ahead of the blocks on disk; a crash before
// the first leaves both at the end of the previous run, and one between the two leaves certified
// blocks, their results and indexes stored and not yet applied, which startup re-executes
// (recover), as it does a block stored just before a crash. The consensus WAL is reset only once
// the run's blocks are on disk.
const (
	syncRunBlocks = 64
	syncRunBytes  = 32 << 20 // pending writes held in memory per store, roughly
)

// runStore is a kv.Store that, between begin and flush, keeps every batch written to it in
// memory instead: reads from any goroutine see those writes, and flush writes them all in one
// synced batch. Outside a run it is the store underneath. Writers and runs are the loop's alone
// (the block store and the state are written only by it), so a batch made outside a run is
// written outside one.
//
// The run is a hash map for point reads plus, for iterators, its keys by bucket (their first two
// bytes: "a/", "t/", "r/"... the stores' key families) kept sorted lazily: a block's thousands of
// writes cost a map insert each, not a search of an ordered tree (a B-tree here was a seventh of
// block sync's CPU, issue #10), and an iterator orders only the buckets its range can hold, so
// the scan of the validator schedule after every block ("r/") never sorts the run's accounts and
// tree nodes.
type runStore struct {
	kv.Store

	open atomic.Bool
	// mu guards the run against readers; the loop, the only writer, changes it. Iterator takes
	// it exclusively to fold fresh into sorted.
	mu      sync.RWMutex
	pending map[string]runEntry   // the run's last write of each key
	buckets map[string]*runBucket // the keys of pending, by runBucketOf
	bytes   int
	// err: a flush failed or was refused, so what the store holds of the run is unknown; every
	// later write fails with it.
	err error
}

type runEntry struct {
	value   []byte
	deleted bool
}

// runBucket is the keys of a run that share their first two bytes.
type runBucket struct {
	sorted []string // in order, but those in fresh
	fresh  []string // added since sorted was last brought up to date
}

// runBucketOf is the bucket of a key. Every key of bucket b sorts after every key of a bucket
// below b, so buckets in order, each sorted, are the run in order; and a key in [start, end)
// has a bucket in [runBucketOf(start), runBucketOf(end)] (cutting keys to a length keeps their
// order).
func runBucketOf(k string) string { return k[:min(2, len(k))] }

var errRunAbandoned = errors.New("node: a run of synced blocks was not written: the state would be ahead of the blocks")

func newRunStore(db kv.Store) *runStore { return &runStore{Store: db} }

// begin starts a run. No-op if one is open.
func (s *runStore) begin() {
	if s.open.Load() {
		return
	}
	s.mu.Lock()
	s.pending, s.buckets = make(map[string]runEntry, 1<<14), make(map[string]*runBucket)
	s.bytes = 0
	s.mu.Unlock()
	s.open.Store(true)
}

// size is roughly how many bytes the open run holds.
func (s *runStore) size() int { return s.bytes }

// flush writes the open run, if any, in one synced batch and ends it.
func (s *runStore) flush() error {
	if !s.open.Load() {
		return s.err
	}
	var err error
	if s.err == nil && len(s.pending) > 0 {
		err = s.write()
	}
	if err != nil {
		// Readers keep seeing the run: the loop stops on this error, and memory is what the
		// rest of the node (the state's tip, the store's height) describes.
		s.err = fmt.Errorf("node: writing a run of synced blocks: %w", err)
		return s.err
	}
	if s.err != nil {
		return s.err
	}
	s.end()
	return nil
}

// abandon ends the open run without writing it: an earlier store's flush failed, and this
// store's run must not reach the disk before it. The store then refuses writes.
func (s *runStore) abandon() {
	if !s.open.Load() {
		return
	}
	if s.err == nil {
		s.err = errRunAbandoned
	}
}

func (s *runStore) end() {
	s.mu.Lock()
	s.pending, s.buckets, s.bytes = nil, nil, 0
	s.open.Store(false)
	s.mu.Unlock()
}

func (s *runStore) lookup(key []byte) (runEntry, bool) {
	if !s.open.Load() {
		return runEntry{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.pending == nil { // the run ended meanwhile
		return runEntry{}, false
	}
	e, ok := s.pending[string(key)]
	return e, ok
}

func (s *runStore) Get(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, kv.ErrEmptyKey
	}
	if e, ok := s.lookup(key); ok {
		if e.deleted {
			return nil, nil
		}
		return bytes.Clone(e.value), nil
	}
	return s.Store.Get(key)
}

func (s *runStore) Has(key []byte) (bool, error) {
	if len(key) == 0 {
		return false, kv.ErrEmptyKey
	}
	if e, ok := s.lookup(key); ok {
		return !e.deleted, nil
	}
	return s.Store.Has(key)
}

// order brings sorted up to date: fresh is sorted and merged in. Precondition: the run's lock
// held exclusively.
func (b *runBucket) order() {
	if len(b.fresh) == 0 {
		return
	}
	slices.Sort(b.fresh)
	if len(b.sorted) == 0 {
		b.sorted, b.fresh = b.fresh, nil
		return
	}
	merged := make([]string, 0, len(b.sorted)+len(b.fresh))
	i, j := 0, 0
	for i < len(b.sorted) && j < len(b.fresh) {
		if b.sorted[i] < b.fresh[j] {
			merged = append(merged, b.sorted[i])
			i++
		} else {
			merged = append(merged, b.fresh[j])
			j++
		}
	}
	merged = append(append(merged, b.sorted[i:]...), b.fresh[j:]...)
	b.sorted, b.fresh = merged, nil
}

// inRange returns the run's entries in [start, end) (nil: unbounded), in key order; with share,
// their keys are the run's own bytes, to be read only. Precondition: the run's lock held
// exclusively.
func (s *runStore) inRange(start, end []byte, share bool) []runKV {
	var names []string
	for name := range s.buckets {
		if (start == nil || name >= runBucketOf(string(start))) && (end == nil || name <= runBucketOf(string(end))) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var pend []runKV
	if start == nil && end == nil {
		pend = make([]runKV, 0, len(s.pending))
	}
	for _, name := range names {
		b := s.buckets[name]
		b.order()
		lo, hi := 0, len(b.sorted)
		if start != nil {
			lo, _ = slices.BinarySearch(b.sorted, string(start))
		}
		if end != nil {
			hi, _ = slices.BinarySearch(b.sorted, string(end))
		}
		for _, k := range b.sorted[lo:max(hi, lo)] {
			var key []byte
			if share {
				key = unsafe.Slice(unsafe.StringData(k), len(k))
			} else {
				key = []byte(k) // an iterator's caller may keep or change it
			}
			pend = append(pend, runKV{key: key, runEntry: s.pending[k]})
		}
	}
	return pend
}

// Iterator merges the run's writes in [start, end) over the store's. The run is read and the
// store's iterator opened under the run's lock, which the end of a run waits for: the store then
// holds the run or not, and the run's entries win either way.
func (s *runStore) Iterator(start, end []byte) (kv.Iterator, error) {
	if !s.open.Load() {
		return s.Store.Iterator(start, end)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil { // the run ended meanwhile
		return s.Store.Iterator(start, end)
	}
	pend := s.inRange(start, end, false)
	it, err := s.Store.Iterator(start, end)
	if err != nil {
		return nil, err
	}
	if len(pend) == 0 {
		return it, nil
	}
	m := &mergeIterator{pend: pend, it: it}
	m.settle()
	return m, nil
}

// CanIngest: a block's tree records go straight to the store underneath as a table (see
// kv.Ingest) outside a run, where its batch does too; in a run, they stay in the run's batch.
func (s *runStore) CanIngest() bool { return !s.open.Load() && kv.CanIngest(s.Store) }

// Ingest passes kvs to the store underneath, outside a run.
func (s *runStore) Ingest(kvs [][2][]byte) error {
	if s.open.Load() {
		return errors.New("node: a run of tree records ingested during a run of synced blocks")
	}
	return kv.Ingest(s.Store, kvs)
}

func (s *runStore) NewBatch() kv.Batch {
	if !s.open.Load() {
		return s.Store.NewBatch()
	}
	return &runBatch{s: s}
}

// NewBatchSized is NewBatch, with the size passed on to the store outside a run: the state's
// batch of a block (its entries and tree records, megabytes on a large state) otherwise grew
// by doubling and copying, as kv.NewBatchSized exists to avoid.
func (s *runStore) NewBatchSized(size int) kv.Batch {
	if !s.open.Load() {
		return kv.NewBatchSized(s.Store, size)
	}
	return &runBatch{s: s}
}

// write writes the run's last write of each key in one synced batch, sized for the run (a
// batch of megabytes grown by doubling copied itself over and over), in key order, bucket by
// bucket (pebble's memtable takes sorted keys faster). The loop, the run's only writer, is here.
func (s *runStore) write() error {
	b := kv.NewBatchSized(s.Store, s.bytes)
	defer b.Close()
	s.mu.Lock()
	pend := s.inRange(nil, nil, true) // the batch copies what it keeps (kv.Batch)
	s.mu.Unlock()
	for i := range pend {
		var err error
		if e := &pend[i]; e.deleted {
			err = b.Delete(e.key)
		} else {
			err = b.Set(e.key, e.value)
		}
		if err != nil {
			return err
		}
	}
	return b.Write()
}

// add adds a batch's operations to the open run.
func (s *runStore) add(ops []runOp) error {
	if s.err != nil {
		return s.err
	}
	if !s.open.Load() {
		return errors.New("node: a batch begun in a run was written after it")
	}
	s.mu.Lock()
	for i := range ops {
		k, had := ops[i].key, len(s.pending)
		s.pending[k] = ops[i].runEntry
		if len(s.pending) > had { // a new key: one map operation, not a lookup and a store
			name := runBucketOf(k)
			b := s.buckets[name]
			if b == nil {
				b = &runBucket{}
				s.buckets[name] = b
			}
			b.fresh = append(b.fresh, k)
		}
		s.bytes += len(ops[i].key) + len(ops[i].value) + 64
	}
	s.mu.Unlock()
	return nil
}

type runKV struct {
	key []byte
	runEntry
}

// runOp is one operation of a batch made during a run; its key is a string because that is what
// the run's map holds (one copy of the caller's key, not two).
type runOp struct {
	key string
	runEntry
}

// runBatch is a batch made during a run: it copies what it is given, and its Write adds it to
// the run (durable when the run is flushed).
type runBatch struct {
	s    *runStore
	ops  []runOp
	done bool
}

func (b *runBatch) Set(key, value []byte) error {
	if b.done {
		return kv.ErrBatchClosed
	}
	if len(key) == 0 {
		return kv.ErrEmptyKey
	}
	if value == nil {
		value = []byte{}
	}
	b.ops = append(b.ops, runOp{key: string(key), runEntry: runEntry{value: bytes.Clone(value)}})
	return nil
}

func (b *runBatch) Delete(key []byte) error {
	if b.done {
		return kv.ErrBatchClosed
	}
	if len(key) == 0 {
		return kv.ErrEmptyKey
	}
	b.ops = append(b.ops, runOp{key: string(key), runEntry: runEntry{deleted: true}})
	return nil
}

func (b *runBatch) Write() error {
	if b.done {
		return kv.ErrBatchClosed
	}
	b.done = true
	err := b.s.add(b.ops)
	b.ops = nil
	return err
}

func (b *runBatch) WriteNoSync() error { return b.Write() }

func (b *runBatch) Close() error {
	b.done, b.ops = true, nil
	return nil
}

// mergeIterator walks a run's entries (sorted, taking precedence, deletions hidden) and the
// store's iterator together.
type mergeIterator struct {
	pend   []runKV
	pi     int
	it     kv.Iterator
	fromIt bool // the current entry is the store's
	valid  bool
}

// settle moves to the first entry at or after the current positions that is not deleted.
func (m *mergeIterator) settle() {
	for {
		pv, iv := m.pi < len(m.pend), m.it.Valid()
		switch {
		case !pv && !iv:
			m.valid = false
			return
		case pv && iv:
			c := bytes.Compare(m.pend[m.pi].key, m.it.Key())
			if c == 0 {
				m.it.Next() // shadowed by the run's entry
				continue
			}
			m.fromIt = c > 0
		default:
			m.fromIt = iv
		}
		if !m.fromIt && m.pend[m.pi].deleted {
			m.pi++
			continue
		}
		m.valid = true
		return
	}
}

func (m *mergeIterator) Valid() bool { return m.valid }

func (m *mergeIterator) mustBeValid() {
	if !m.valid {
		panic("node: run iterator used while not valid")
	}
}

func (m *mergeIterator) Next() {
	m.mustBeValid()
	if m.fromIt {
		m.it.Next()
	} else {
		m.pi++
	}
	m.settle()
}

func (m *mergeIterator) Key() []byte {
	m.mustBeValid()
	if m.fromIt {
		return m.it.Key()
	}
	return m.pend[m.pi].key
}

func (m *mergeIterator) Value() []byte {
	m.mustBeValid()
	if m.fromIt {
		return m.it.Value()
	}
	return m.pend[m.pi].value
}

func (m *mergeIterator) Error() error { return m.it.Error() }

func (m *mergeIterator) Close() error {
	m.valid = false
	return m.it.Close()
}

// beginSyncRun opens a run on both stores. On the loop.
func (n *Node) beginSyncRun() {
	n.runStart = n.blocks.Height()
	n.blockRun.begin()
	n.stateRun.begin()
}

// syncRunFull reports whether the open run should be written before the next block.
func (n *Node) syncRunFull() bool {
	return n.blocks.Height()-n.runStart >= syncRunBlocks ||
		n.blockRun.size() >= syncRunBytes || n.stateRun.size() >= syncRunBytes
}

// endSyncRun writes the open run: the blocks, then (the blocks decided and on disk, so that what
// this validator signed at their heights can never conflict again) an empty WAL, then the state.
// An error is lost durability. On the loop.
func (n *Node) endSyncRun() error {
	stored := n.blocks.Height() > n.runStart
	if err := n.blockRun.flush(); err != nil {
		n.stateRun.abandon()
		return err
	}
	var walErr error
	if stored && n.wal != nil {
		walErr = n.wal.Reset()
	}
	return errors.Join(walErr, n.stateRun.flush())
}
