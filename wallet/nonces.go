package wallet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/guild-ledger/guild/state"
)

// NonceBookFile is where a keystore remembers the nonces it signed, beside the keys. Its name does
// not end in the key files' extension, so List never mistakes it for a key.
const NonceBookFile = "nonces.book"

// nonceTrust is how long the book's word outlives the node's. A nonce this wallet signed but that
// no node has seen within this time was lost (refused, or accepted by a node that then died before
// gossiping it); trusting the book beyond that would leave every later transaction waiting behind
// a gap that never fills.
const nonceTrust = 2 * time.Minute

// nonceEntry is the last nonce signed for one account on one chain.
type nonceEntry struct {
	Last uint64 `json:"last"`
	// AtMs is when it was signed (unix milliseconds).
	AtMs int64 `json:"at_ms"`
	// Hash is the transaction signed with Last, once known (see Signed).
	Hash string `json:"hash,omitempty"`
}

// NonceBook remembers, per chain and account, the last nonce this wallet signed. A node's
// next_nonce counts only what that node has seen; a script sending back to back without --wait,
// spread over several nodes, would otherwise reuse a nonce that another node already holds
// pending. The file is locked while read and replaced atomically, so concurrent commands on one
// wallet never hand out the same nonce twice.
type NonceBook struct {
	path string
	now  func() time.Time
}

// Nonces returns the keystore's nonce book.
func (k *Keystore) Nonces() *NonceBook {
	return &NonceBook{path: filepath.Join(k.Dir, NonceBookFile), now: time.Now}
}

func nonceKey(chainID string, from state.Address) string { return chainID + "/" + from.String() }

// Reserve picks the nonce for the next transaction from one account and records it as signed:
// override if set (--nonce), else the larger of the node's next nonce and one past the last this
// wallet signed in the last two minutes. rejected, if not nil, is asked whether the transaction
// last signed was rejected: a rejected transaction used no nonce, so its nonce is free again.
// fromBook reports whether the book's record won, so a caller can say why a nonce is ahead of the
// node's.
func (b *NonceBook) Reserve(chainID string, from state.Address, nodeNext uint64, override *uint64, rejected func(hash string) bool) (nonce uint64, fromBook bool, err error) {
	err = b.update(func(book map[string]nonceEntry) {
		k := nonceKey(chainID, from)
		e, ok := book[k]
		fresh := ok && b.now().UnixMilli()-e.AtMs < nonceTrust.Milliseconds()
		switch {
		case override != nil:
			nonce = *override
		case fresh && e.Last >= nodeNext:
			nonce, fromBook = e.Last+1, true
			if e.Hash != "" && rejected != nil && rejected(e.Hash) {
				nonce = e.Last
			}
		default:
			nonce = nodeNext
		}
		// An explicit nonce below a fresh record (re-sending a lost transaction) leaves the
		// record as it is: the later nonces it holds are still signed.
		if !fresh || nonce >= e.Last {
			book[k] = nonceEntry{Last: nonce, AtMs: b.now().UnixMilli()}
		}
	})
	return nonce, fromBook, err
}

// Signed notes the hash of the transaction signed with a reserved nonce.
func (b *NonceBook) Signed(chainID string, from state.Address, nonce uint64, hash string) error {
	return b.update(func(book map[string]nonceEntry) {
		k := nonceKey(chainID, from)
		if e, ok := book[k]; ok && e.Last == nonce {
			e.Hash = hash
			book[k] = e
		}
	})
}

// Release forgets a reserved nonce that no node accepted (the transaction was refused), so that
// the next command does not leave a gap. It changes nothing if another nonce was reserved since.
func (b *NonceBook) Release(chainID string, from state.Address, nonce uint64) error {
	return b.update(func(book map[string]nonceEntry) {
		k := nonceKey(chainID, from)
		if e, ok := book[k]; ok && e.Last == nonce {
			if nonce == 0 {
				delete(book, k)
			} else {
				book[k] = nonceEntry{Last: nonce - 1, AtMs: e.AtMs} // its hash is unknown
			}
		}
	})
}

// update runs f on the book under the file lock and writes the result atomically.
func (b *NonceBook) update(f func(map[string]nonceEntry)) error {
	unlock, err := lockFile(b.path + ".lock")
	if err != nil {
		return fmt.Errorf("wallet: locking the nonce book: %w", err)
	}
	defer unlock()
	book := map[string]nonceEntry{}
	data, err := os.ReadFile(b.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("wallet: reading the nonce book: %w", err)
	default:
		if err := json.Unmarshal(data, &book); err != nil {
			// Only a hint: a damaged book costs at most a retry, never a key, so start afresh.
			book = map[string]nonceEntry{}
		}
	}
	f(book)
	out, err := json.MarshalIndent(book, "", "  ")
	if err != nil {
		return err
	}
	tmp := b.path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("wallet: writing the nonce book: %w", err)
	}
	if err := os.Rename(tmp, b.path); err != nil {
		return fmt.Errorf("wallet: writing the nonce book: %w", err)
	}
	return nil
}
