package state

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"
)

// govMemo keeps the committed governance record (r/gov) and validator schedule (r/vals/...) in
// memory. Every height reads them several times: execution checks the block's version against
// the record, and the node, after each block, reads the parameters, the upgrades and the whole
// schedule (a store scan). From the store those reads missed pebble's block cache and were a
// tenth of a small block's CPU (issue #10), yet they change only in a block that passes a
// proposal. commit sees that in the block's write set and moves the generation on; an entry of
// an older generation is not used, and the next read loads the store's value again.
//
// Entries are immutable once published: readers on any goroutine share them, and every query
// that hands out one of their slices hands out a copy.
type govMemo struct {
	gen   atomic.Uint64
	gov   atomic.Pointer[govEntry]
	sched atomic.Pointer[schedEntry]
}

type govEntry struct {
	gen uint64
	raw []byte   // the stored record; nil: none (before genesis)
	g   govState // raw decoded
}

type schedEntry struct {
	gen  uint64
	sets []ValidatorSetAt
}

// invalidate moves the generation on: called after a batch that wrote governance records has
// been written (or may have been), so that no read started before it keeps its result.
func (m *govMemo) invalidate() { m.gen.Add(1) }

// writesGovernance reports whether ws changes r/gov or a validator set. ws is sorted by key.
func writesGovernance(ws *writeSet) bool {
	i, _ := slices.BinarySearchFunc(ws.entries, []byte(keyGov), func(e writeEntry, k []byte) int {
		return bytes.Compare(e.key, k)
	})
	if i < len(ws.entries) && bytes.Equal(ws.entries[i].key, []byte(keyGov)) {
		return true
	}
	vals := []byte(recKey("vals"))
	i, _ = slices.BinarySearchFunc(ws.entries, vals, func(e writeEntry, k []byte) int {
		return bytes.Compare(e.key, k)
	})
	return i < len(ws.entries) && bytes.HasPrefix(ws.entries[i].key, vals)
}

// govEntry returns the committed governance record, from the memo or, when the memo has none of
// the current generation, from the store.
func (s *State) govEntry() (*govEntry, error) {
	gen := s.memo.gen.Load()
	if e := s.memo.gov.Load(); e != nil && e.gen == gen {
		return e, nil
	}
	raw, err := s.db.Get([]byte(keyGov))
	if err != nil {
		return nil, fmt.Errorf("state: reading %q: %w", keyGov, err)
	}
	e := &govEntry{gen: gen, raw: raw}
	if raw != nil {
		if err := Unmarshal(raw, &e.g); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrCorrupt, keyGov, err)
		}
	}
	// Stored with the generation read before the store was: if a commit moved it meanwhile, the
	// entry is already stale and the next read loads again.
	s.memo.gov.Store(e)
	return e, nil
}

// validatorSchedule is every validator set stored, by height, from the memo or the store. The
// slice is shared: callers copy what they hand out.
func (s *State) validatorSchedule() ([]ValidatorSetAt, error) {
	gen := s.memo.gen.Load()
	if e := s.memo.sched.Load(); e != nil && e.gen == gen {
		return e.sets, nil
	}
	sets, err := scanAll[ValidatorSetAt](s, recKey("vals"))
	if err != nil {
		return nil, err
	}
	s.memo.sched.Store(&schedEntry{gen: gen, sets: sets})
	return sets, nil
}
