package state

import (
	"errors"
	"fmt"
	"github.com/guild-ledger/guild/state/merkle"
	"sync"
	"sync/atomic"

	"github.com/guild-ledger/guild/state/kv"
)

// Store layout. State entries (what the state root commits to) live under "a/" (accounts) and
// "r/" (every other record, see overlay.go); bookkeeping under "m/" is not state and is not in
// any write set.
//
//	a/<20-byte address>  CBOR(Account)
//	r/...                the records of overlay.go
//	m/chain              CBOR(chain ID string), written at genesis
//	m/height             CBOR(uint64), last applied block
//	m/root               CBOR(Hash), state root after that block
//	m/time               CBOR(int64), that block's time, unix milliseconds
const accountPrefix = "a/"

var (
	keyChainID = []byte("m/chain")
	keyHeight  = []byte("m/height")
	keyRoot    = []byte("m/root")
	keyTime    = []byte("m/time")
	// keyLastResults holds the last block's per-transaction results (see LastResults).
	keyLastResults = []byte("m/last-results")
)

var (
	ErrWrongHeight    = errors.New("state: block height is not the next one")
	ErrDuplicateTx    = errors.New("state: transaction repeated in block (replay)")
	ErrNotInitialised = errors.New("state: genesis not applied")
	ErrInitialised    = errors.New("state: genesis already applied")
	ErrBadGenesis     = errors.New("state: invalid genesis")
	ErrCorrupt        = errors.New("state: store is corrupt")
	ErrEmptyChainID   = errors.New("state: chain ID must not be empty")
	// ErrCommitFailed: writing a block's batch failed, so whether it is on disk is unknown. The
	// State refuses all further writes; reopen the store to continue from what it holds.
	ErrCommitFailed    = errors.New("state: a block failed to commit; reopen the store to find out whether it landed")
	errNonceExhausted  = fmt.Errorf("%w: account nonce exhausted", ErrBadNonce)
	errAccountNotFound = errors.New("state: account not found") // internal: never returned
	// ErrNoStateTree: the store was written before the state root was a Merkle tree (issue 12).
	ErrNoStateTree     = errors.New("state: the store has no state tree (written by an older version)")
	errNoStateTreeHint = errors.New("move the node's data directory aside and start it again: it syncs the chain from its peers and rebuilds the state")
)

// accountKey is the store key of an account.
func accountKey(a Address) [len(accountPrefix) + AddressLen]byte {
	var k [len(accountPrefix) + AddressLen]byte
	copy(k[:], accountPrefix)
	copy(k[len(accountPrefix):], a[:])
	return k
}

// State is one chain's account state on a kv.Store. Blocks are applied by one goroutine (the
// node's loop): ApplyBlock and InitGenesis are serialised by a mutex, not meant to race. Every
// read — Height, Root, Account, CheckTx — is safe from any goroutine at any time.
type State struct {
	db      kv.Store
	chainID string

	// applyMu serialises writers (InitGenesis, ApplyBlock).
	applyMu sync.Mutex
	// tip is what readers see: the last committed height and root, swapped in after each
	// block's batch is durable.
	tip atomic.Pointer[tip]
	// halted is set when a batch write failed: memory and disk may then disagree, and only a
	// reopen can tell which state the store holds.
	halted error
	// cache holds committed accounts; see accountCache for why it stays coherent.
	cache *accountCache
	// tree is the state tree over the entries, which gives the root (tree.go).
	tree *tree
	// earliest is the earliest height whose tree is whole (prune.go).
	earliest atomic.Uint64
	// dropped is how many records the last block dropped from the tree.
	dropped atomic.Int64
	// syncEvery, above 1, is DeferSync's period: only heights it divides wait for the disk.
	syncEvery uint64
	// memo holds the committed governance record and validator schedule (govmemo.go).
	memo govMemo
}

// DeferSync lets the commit of a block whose height every does not divide return without
// waiting for the disk (kv.Batch.WriteNoSync); the heights it divides, and genesis, are written
// durably, as every block is without it. A crash can then lose the last blocks' state, up to
// every-1 of them, always whole blocks in order (the store's log is sequential): the state
// reopens at an earlier height, which the caller must be able to re-execute from. The node does
// (its blocks are stored durably before they are applied), and so takes one fsync per block, the
// block store's, instead of two. every ≤ 1 writes every block durably. Call it before applying
// blocks, from the goroutine that applies them.
func (s *State) DeferSync(every uint64) { s.syncEvery = every }

type tip struct {
	height      uint64
	root        Hash
	receipts    Hash // receipts root of block height
	timeMs      int64
	initialised bool
}

// Open loads the state of chain chainID from db: its height and root, if genesis was applied. A
// store that holds another chain's state is refused.
func Open(db kv.Store, chainID string) (*State, error) {
	if chainID == "" {
		return nil, ErrEmptyChainID
	}
	s := &State{db: db, chainID: chainID, cache: newAccountCache(), tree: &tree{db: db, cache: newNodeCache()}}
	t := &tip{}
	rawRoot, err := db.Get(keyRoot)
	if err != nil {
		return nil, fmt.Errorf("state: reading root: %w", err)
	}
	rawHeight, err := db.Get(keyHeight)
	if err != nil {
		return nil, fmt.Errorf("state: reading height: %w", err)
	}
	rawChain, err := db.Get(keyChainID)
	if err != nil {
		return nil, fmt.Errorf("state: reading chain ID: %w", err)
	}
	switch {
	case rawRoot == nil && rawHeight == nil && rawChain == nil:
		// Empty: waiting for InitGenesis.
	case rawRoot == nil || rawHeight == nil || rawChain == nil:
		return nil, fmt.Errorf("%w: only some of chain ID, height and root are present", ErrCorrupt)
	default:
		var stored string
		if err := Unmarshal(rawChain, &stored); err != nil {
			return nil, fmt.Errorf("%w: chain ID: %v", ErrCorrupt, err)
		}
		if stored != chainID {
			return nil, fmt.Errorf("%w: store holds chain %q, not %q", ErrWrongChain, stored, chainID)
		}
		if err := Unmarshal(rawHeight, &t.height); err != nil {
			return nil, fmt.Errorf("%w: height: %v", ErrCorrupt, err)
		}
		if err := Unmarshal(rawRoot, &t.root); err != nil {
			return nil, fmt.Errorf("%w: root: %v", ErrCorrupt, err)
		}
		// Absent in stores written before blocks had times: then 0.
		if rawTime, err := db.Get(keyTime); err != nil {
			return nil, fmt.Errorf("state: reading time: %w", err)
		} else if rawTime != nil {
			if err := Unmarshal(rawTime, &t.timeMs); err != nil {
				return nil, fmt.Errorf("%w: time: %v", ErrCorrupt, err)
			}
		}
		t.initialised = true
		// A store written before the state tree has a root no tree node answers to: refuse it
		// now, with what to do, rather than fail at its next block.
		if t.root != (Hash{}) {
			if ok, err := db.Has(rootKey(t.root)); err != nil {
				return nil, fmt.Errorf("state: reading the state tree: %w", err)
			} else if !ok {
				return nil, fmt.Errorf("%w: %w", ErrNoStateTree, errNoStateTreeHint)
			}
			if err := checkTreeLayout(db, t.root); err != nil {
				return nil, err
			}
		}
		e, err := readTreeEarliest(db)
		if err != nil {
			return nil, err
		}
		s.earliest.Store(e)
		// The receipts root of the last block, which the next header carries, from the results
		// kept beside the state.
		if _, hashes, errs, err := s.LastResults(); err != nil {
			return nil, err
		} else {
			leaves := make([][]byte, len(hashes))
			for i := range hashes {
				leaves[i] = merkle.ReceiptLeaf(hashes[i], errs[i] == "")
			}
			t.receipts = merkle.ReceiptsRoot(leaves)
		}
	}
	s.tip.Store(t)
	return s, nil
}

// ChainID is the chain whose transactions this state accepts.
func (s *State) ChainID() string { return s.chainID }

// Height is the height of the last applied block: 0 after genesis (and before it).
func (s *State) Height() uint64 { return s.tip.Load().height }

// Root is the state root after the last applied block, which block Height()+1's header carries.
// It is the zero hash before genesis.
func (s *State) Root() Hash { return s.tip.Load().root }

// ReceiptsRoot is the root over the receipts of the last applied block (zero at genesis, and
// for a block without transactions), which block Height()+1's header carries.
func (s *State) ReceiptsRoot() Hash { return s.tip.Load().receipts }

// TimeMs is the time (unix milliseconds) of the last applied block, or of genesis: the "now" at
// which a query such as ClaimStatus judges expiry.
func (s *State) TimeMs() int64 { return s.tip.Load().timeMs }

// Initialised reports whether genesis has been applied.
func (s *State) Initialised() bool { return s.tip.Load().initialised }

// Account returns the committed state of account a, or the zero Account if it has never held
// anything. While ApplyBlock commits, it may show the new block's value a moment before Height
// moves, or the old one a moment after the batch is on disk.
func (s *State) Account(a Address) (Account, error) {
	if acct, ok := s.cache.get(a); ok {
		return acct, nil
	}
	acct, err := s.loadAccount(a)
	if errors.Is(err, errAccountNotFound) {
		return Account{}, nil
	}
	return acct, err
}

func (s *State) loadAccount(a Address) (Account, error) {
	k := accountKey(a)
	raw, err := s.db.Get(k[:])
	if err != nil {
		return Account{}, fmt.Errorf("state: reading account %s: %w", a, err)
	}
	if raw == nil {
		return Account{}, errAccountNotFound
	}
	acct, err := decodeAccount(raw)
	if err != nil {
		return Account{}, fmt.Errorf("%w: account %s: %v", ErrCorrupt, a, err)
	}
	return acct, nil
}

// CheckTx is the mempool's cheap stateful pre-check of a decoded transaction against committed
// state: right chain, exactly one operation, signatures that authorise the sender (its own key,
// or a quorum of its signatories), a nonce not yet used, and for a transfer a positive amount to
// someone else that the balance covers now. It does not verify signatures (VerifyTx does) and
// cannot promise that the transaction will apply: a nonce above the account's is accepted, since
// earlier transactions may still be pending, and operations other than transfers are judged in
// full only when applied.
func (s *State) CheckTx(tx *Tx) error {
	if tx == nil {
		return fmt.Errorf("%w: nil transaction", ErrMalformedTx)
	}
	if tx.Body.ChainID != s.chainID {
		return fmt.Errorf("%w: %q, this chain is %q", ErrWrongChain, tx.Body.ChainID, s.chainID)
	}
	switch ops := tx.Body.opCount(); {
	case ops == 0:
		return ErrNoOperation
	case ops > 1:
		return fmt.Errorf("%w: %d operations, want exactly 1", ErrMalformedTx, ops)
	}
	t := tx.Body.Transfer
	if t != nil {
		if t.Amount == 0 {
			return ErrBadAmount
		}
		if t.To == tx.Body.From {
			return ErrSelfTransfer
		}
	}
	acct, err := s.Account(tx.Body.From)
	if err != nil {
		return err
	}
	if !acct.Multisig {
		if len(tx.Sigs) != 1 || AddressFromPubKey(tx.Sigs[0].PubKey) != tx.Body.From {
			return fmt.Errorf("%w: the signer's key is not the sender's", ErrNotAuthorized)
		}
	} else {
		set, err := s.Signers(tx.Body.From)
		if err != nil {
			return err
		}
		if set == nil {
			return fmt.Errorf("%w: account %s is marked multi-signature but has no signer set", ErrCorrupt, tx.Body.From)
		}
		if err := authorised(set, tx.Sigs); err != nil {
			return err
		}
	}
	if tx.Body.Nonce < acct.Nonce {
		return fmt.Errorf("%w: nonce %d already used (next is %d)", ErrBadNonce, tx.Body.Nonce, acct.Nonce)
	}
	if t != nil && acct.Balance < t.Amount {
		return fmt.Errorf("%w: balance %d, amount %d", ErrNoFunds, acct.Balance, t.Amount)
	}
	return nil
}

// Genesis is the state at height 0.
//
// Accounts are funded first (distinct, total within a uint64, so that no later credit of the
// native currency can overflow). Members, Validators (the set of heights from 0 on, possibly
// empty for a state used without consensus), Params (missing ones take DefaultParams) and
// Threshold (zero: DefaultThreshold) seed governance. Then Ops seed every other kind of state:
// each is applied, in order, as a transaction from its From at height 0 and time TimeMs, with
// all the checks of ApplyBlock except signatures and nonces (genesis is agreed off chain, and
// its operations leave nonces at 0). Every op must succeed.
type Genesis struct {
	TimeMs     int64
	Accounts   []GenesisAccount
	Members    []Member
	Validators []Validator
	Params     []Param
	Threshold  Threshold
	Ops        []TxBody
}

// InitGenesis writes the genesis state into an empty store and sets the genesis root (the state
// tree over it, see root.go), at height 0.
func (s *State) InitGenesis(g Genesis) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.halted != nil {
		return s.halted
	}
	if s.tip.Load().initialised {
		return ErrInitialised
	}
	// The tip says empty, but state written by a crashed or foreign process must not be
	// silently overwritten.
	for _, prefix := range []string{accountPrefix, recordPrefix, treePrefix, "m/"} {
		empty, err := s.prefixEmpty(prefix)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%w: the store already holds %q keys", ErrInitialised, prefix)
		}
	}

	ov := newOverlay(s, BlockInfo{Height: 0, TimeMs: g.TimeMs}, len(g.Accounts))
	if err := ov.genesis(&g); err != nil {
		if ov.err != nil {
			return ov.err
		}
		return err
	}
	ws := ov.writeSet()
	ov.recordWrites(ws)
	root, tw, err := s.tree.update(Hash{}, 0, ws)
	if err != nil {
		return err
	}
	chain, err := Marshal(s.chainID)
	if err != nil {
		return fmt.Errorf("state: encoding chain ID: %w", err)
	}
	return s.commit(ws, tw, 0, g.TimeMs, root, Hash{}, nil, keyChainID, chain)
}

// commit writes a write set, the tree nodes it made, and the new height and root (and any extra
// metadata pairs) in one batch, durable unless DeferSync says otherwise, then records the block's accounts (if any) and tree
// nodes in the caches and publishes the new tip to readers.
func (s *State) commit(ws *writeSet, tw *treeWrites, height uint64, timeMs int64, root, receipts Hash, written []overlayAccount, extra ...[]byte) error {
	hb, err := Marshal(height)
	if err != nil {
		return fmt.Errorf("state: encoding height: %w", err)
	}
	tb, err := Marshal(timeMs)
	if err != nil {
		return fmt.Errorf("state: encoding time: %w", err)
	}
	extra = append(extra, keyTime, tb)
	rb, err := Marshal(root)
	if err != nil {
		return fmt.Errorf("state: encoding root: %w", err)
	}
	b := kv.NewBatchSized(s.db, batchSize(ws, tw))
	defer b.Close()
	for i := range ws.entries {
		e := &ws.entries[i]
		if e.deleted {
			err = b.Delete(e.key)
		} else {
			err = b.Set(e.key, e.value)
		}
		if err != nil {
			return fmt.Errorf("state: staging block %d: %w", height, err)
		}
	}
	ingest := tw.ingests(s.db)
	if err := tw.stage(b, 0, !ingest); err != nil {
		return fmt.Errorf("state: staging block %d: %w", height, err)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if err := b.Set(extra[i], extra[i+1]); err != nil {
			return fmt.Errorf("state: staging block %d: %w", height, err)
		}
	}
	if err := b.Set(keyHeight, hb); err != nil {
		return fmt.Errorf("state: staging block %d: %w", height, err)
	}
	if err := b.Set(keyRoot, rb); err != nil {
		return fmt.Errorf("state: staging block %d: %w", height, err)
	}
	noSync := s.syncEvery > 1 && height > 0 && height%s.syncEvery != 0
	err = s.tree.writeAndCache(b, tw, ingest, noSync)
	if writesGovernance(ws) {
		// Whether or not the batch landed: a failed one halts the State, and what is read of
		// governance from then on comes from the store.
		s.memo.invalidate()
	}
	if err != nil {
		// The batch may or may not be on disk: nothing more may be applied on top of a state
		// this process can no longer describe. (writeAndCache emptied the node cache.)
		s.halted = fmt.Errorf("%w (height %d: %w)", ErrCommitFailed, height, err)
		s.cache.reset()
		return s.halted
	}
	if written != nil {
		s.cache.putOverlay(written, true)
	}
	s.dropped.Store(int64(tw.dropped()))
	s.tree.scratch.release(tw)
	if tw.root != nil {
		s.tree.last.Store(tw.root)
	}
	s.tip.Store(&tip{height: height, root: root, receipts: receipts, timeMs: timeMs, initialised: true})
	return nil
}

// prefixEmpty reports whether no key in the store starts with prefix (which must not end in 0xff).
func (s *State) prefixEmpty(prefix string) (bool, error) {
	end := []byte(prefix)
	end[len(end)-1]++
	it, err := s.db.Iterator([]byte(prefix), end)
	if err != nil {
		return false, fmt.Errorf("state: scanning %q: %w", prefix, err)
	}
	defer it.Close()
	return !it.Valid(), it.Error()
}
