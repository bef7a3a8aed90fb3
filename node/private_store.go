package node

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// privateStore keeps the ciphertexts of private payloads this node holds (issue 14), in a store
// of its own (<home>/data/private), apart from state: nothing in it is consensus data, and
// purging it changes no root.
//
//	p/<commitment>                      ciphertext
//	e/<expiry height be64><commitment>  "" (the purge index; payloads without expiry have none)
//	u/<commitment>                      submit height be64 ‖ tx hash: taken from the API, its
//	                                    transaction not yet seen committed; this node hands it
//	                                    out once it is
type privateStore struct {
	db   kv.Store
	held atomic.Int64
	// mu makes put's check and write one step: a push and a fetch of one payload may race.
	mu sync.Mutex
}

func privKey(prefix byte, c state.Hash) []byte { return append([]byte{prefix, '/'}, c[:]...) }

func expiryKey(h uint64, c state.Hash) []byte {
	k := binary.BigEndian.AppendUint64([]byte("e/"), h)
	return append(k, c[:]...)
}

func openPrivateStore(db kv.Store) (*privateStore, error) {
	s := &privateStore{db: db}
	n := 0
	err := s.scan("p/", nil, func(k, _ []byte) error { n++; return nil })
	s.held.Store(int64(n))
	return s, err
}

// scan calls fn for each key from prefix (up to end, or the end of the prefix when nil).
func (s *privateStore) scan(prefix string, end []byte, fn func(k, v []byte) error) error {
	start := []byte(prefix)
	if end == nil {
		end = append([]byte(prefix[:len(prefix)-1]), prefix[len(prefix)-1]+1)
	}
	it, err := s.db.Iterator(start, end)
	if err != nil {
		return fmt.Errorf("node: private store: %w", err)
	}
	defer it.Close()
	for ; it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

func (s *privateStore) has(c state.Hash) (bool, error) { return s.db.Has(privKey('p', c)) }

func (s *privateStore) get(c state.Hash) ([]byte, error) { return s.db.Get(privKey('p', c)) }

// put stores a ciphertext with its expiry height (0: none) and reports whether it is new; a
// submitted one (taken from the API at that height, by transaction tx) is marked until its
// transaction is seen committed.
func (s *privateStore) put(c state.Hash, ciphertext []byte, expires, submitted uint64, tx state.Hash) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	had, err := s.has(c)
	if err != nil {
		return false, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(privKey('p', c), ciphertext); err != nil {
		return false, err
	}
	if expires != 0 {
		if err := b.Set(expiryKey(expires, c), nil); err != nil {
			return false, err
		}
	}
	if submitted != 0 {
		if err := b.Set(privKey('u', c), append(binary.BigEndian.AppendUint64(nil, submitted), tx[:]...)); err != nil {
			return false, err
		}
	}
	if err := b.Write(); err != nil {
		return false, err
	}
	if !had {
		s.held.Add(1)
	}
	return !had, nil
}

// setExpiry indexes a held payload's expiry (one submitted before its record was known).
func (s *privateStore) setExpiry(c state.Hash, expires uint64) error {
	if expires == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(expiryKey(expires, c), nil); err != nil {
		return err
	}
	return b.Write()
}

// submitted reports whether c is marked as taken from the API, and clears the mark if clear.
func (s *privateStore) submitted(c state.Hash, clear bool) (bool, error) {
	ok, err := s.db.Has(privKey('u', c))
	if err != nil || !ok || !clear {
		return ok, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Delete(privKey('u', c)); err != nil {
		return true, err
	}
	return true, b.Write()
}

// remove deletes a ciphertext (and its marks); expires is its expiry height, to drop the index.
func (s *privateStore) remove(c state.Hash, expires uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	had, err := s.has(c)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, k := range [][]byte{privKey('p', c), privKey('u', c), expiryKey(expires, c)} {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	if err := b.Write(); err != nil {
		return err
	}
	if had {
		s.held.Add(-1)
	}
	return nil
}

// purge deletes every ciphertext whose expiry height is at most h and returns their commitments.
func (s *privateStore) purge(h uint64) ([]state.Hash, error) {
	var due []state.Hash
	var heights []uint64
	end := expiryKey(h+1, state.Hash{})
	err := s.scan("e/", end[:10], func(k, _ []byte) error {
		if len(k) == 2+8+32 {
			heights = append(heights, binary.BigEndian.Uint64(k[2:10]))
			due = append(due, state.Hash(k[10:]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, c := range due {
		if err := s.remove(c, heights[i]); err != nil {
			return due[:i], err
		}
	}
	return due, nil
}

// unconfirmedPayload is a payload taken from the API whose transaction is not seen committed.
type unconfirmedPayload struct {
	at uint64     // the height it was submitted at
	tx state.Hash // its transaction
}

// unconfirmed lists the payloads taken from the API whose transactions are not seen committed.
func (s *privateStore) unconfirmed() (map[state.Hash]unconfirmedPayload, error) {
	out := map[state.Hash]unconfirmedPayload{}
	err := s.scan("u/", nil, func(k, v []byte) error {
		if len(k) == 2+32 && len(v) == 8+32 {
			out[state.Hash(k[2:])] = unconfirmedPayload{at: binary.BigEndian.Uint64(v), tx: state.Hash(v[8:])}
		}
		return nil
	})
	return out, err
}
