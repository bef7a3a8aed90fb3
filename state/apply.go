package state

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/guild-ledger/guild/state/merkle"
	"math"
	"runtime"
	"slices"
	"sync"
)

// BlockResult is what applying a block did.
type BlockResult struct {
	Height  uint64
	Root    Hash       // state root after the block
	Results []TxResult // one per transaction, in block order
	// ReceiptsRoot is the root over the block's receipts (package merkle): the next block's
	// header carries it, as it carries Root.
	ReceiptsRoot Hash
}

// ReceiptLeaves are the receipt leaves of a block's results, in order.
func ReceiptLeaves(results []TxResult) [][]byte {
	leaves := make([][]byte, len(results))
	for i := range results {
		leaves[i] = merkle.ReceiptLeaf(results[i].Hash, results[i].Err == nil)
	}
	return leaves
}

// TxResult is one transaction's outcome: Err is nil when it was applied, and otherwise says why
// it was rejected (errors.Is against the package's sentinels). A rejected transaction changed
// nothing, not even its sender's nonce.
type TxResult struct {
	Hash Hash
	Err  error
}

// ApplyBlock executes the transactions of block blk.Height, which must be Height()+1, in order,
// and commits the result in one durable batch with the new height, time and root: after a crash
// the store holds either the state before the block or the state after it. blk.TimeMs is the
// block header's time; records note it and claims expire by it. It is ExecuteBlock followed by
// CommitStaged.
//
// Each transaction must not repeat (by hash) an earlier transaction of the block, must decode
// (DecodeTx), be for this chain, carry valid signatures (not checked again when
// cache.Verified(HashTx(raw)); cache may be nil), be authorised by them (ErrNotAuthorized: the
// sender's own key alone, or a quorum of its signatories, see multisig.go), and carry exactly
// its sender's next nonce. Then its operation's own checks run: for a transfer, a positive
// amount to another account, covered by the sender's balance, not overflowing the recipient's;
// for the other operations, those listed in ops.go. Checks run in that order and the first
// failure is the transaction's error. An accepted transaction applies its operation and
// increments the sender's nonce; later transactions of the block see its effects.
//
// A transaction's rejection is not an error of ApplyBlock. ApplyBlock itself fails only on a
// wrong height, before genesis, or when the store fails (a read, or the commit); then nothing was
// applied (and after a failed commit the State refuses further blocks until it is reopened).
func (s *State) ApplyBlock(blk BlockInfo, txs [][]byte, cache SigCache) (*BlockResult, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	staged, err := s.execute(blk, txs, nil, cache)
	if err != nil {
		return nil, err
	}
	return s.commitStaged(staged)
}

// ErrStaleStaged refuses to commit a Staged block that was executed on another tip (or another
// State), or that was committed already.
var ErrStaleStaged = errors.New("state: staged block does not follow the current tip")

// Staged is a block executed on the state but not committed: what ApplyBlock would commit, held
// in memory. A node executes a proposal once, to judge it before voting, and commits the same
// Staged if the block is decided, instead of executing it again. It stays valid while the tip it
// was executed on is the State's tip; then CommitStaged makes exactly the bytes, root and results
// that ApplyBlock would have.
type Staged struct {
	// Result is the block's outcome: its root and every transaction's result, as ApplyBlock
	// returns them. Callers must not modify it.
	Result *BlockResult

	s         *State
	blk       BlockInfo
	parent    Hash // the root of the tip it was executed on
	ws        *writeSet
	tw        *treeWrites
	accts     []overlayAccount
	decoded   []*Tx
	committed bool
}

// Txs are the block's transactions as execution decoded them, in block order: nil where one did
// not decode or was refused before execution (a wrong chain, a bad signature, a repeat). The
// node indexes the block from them rather than decoding every transaction again. Read-only.
func (st *Staged) Txs() []*Tx { return st.decoded }

// Failed returns the index of the first transaction the block rejects, or -1 if it applies all.
func (st *Staged) Failed() int {
	for i := range st.Result.Results {
		if st.Result.Results[i].Err != nil {
			return i
		}
	}
	return -1
}

// ExecuteBlock runs block blk on the current tip exactly as ApplyBlock would, and returns the
// outcome without writing anything: the store, the tip and what readers see are unchanged. Its
// errors are ApplyBlock's, but for those of the commit. Execute as many candidates as needed;
// commit at most one of them (CommitStaged), and only while the tip has not moved.
func (s *State) ExecuteBlock(blk BlockInfo, txs [][]byte, cache SigCache) (*Staged, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.execute(blk, txs, nil, cache)
}

// ExecuteHashed is ExecuteBlock for a caller that holds each transaction's ID already: hashes[i]
// must be HashTx(txs[i]) (the node has them from its mempool, or from a proposal by reference
// whose transactions it checked against them), so execution does not hash the block again. They
// pick out the signatures the cache vouches for, so a wrong one would skip a check: a caller
// unsure of them passes nil, or calls ExecuteBlock. A length that does not match is ignored.
func (s *State) ExecuteHashed(blk BlockInfo, txs [][]byte, hashes []Hash, cache SigCache) (*Staged, error) {
	if len(hashes) != len(txs) {
		hashes = nil
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.execute(blk, txs, hashes, cache)
}

// CommitStaged commits a block that ExecuteBlock ran on this State's current tip, in one durable
// batch, as ApplyBlock does, and returns its result. A Staged of another tip is refused with
// ErrStaleStaged, changing nothing.
func (s *State) CommitStaged(staged *Staged) (*BlockResult, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.commitStaged(staged)
}

// execute runs a block into an overlay. Precondition: s.applyMu is held (the account cache is
// filled only under it).
func (s *State) execute(blk BlockInfo, txs [][]byte, hashes []Hash, cache SigCache) (*Staged, error) {
	height := blk.Height
	if s.halted != nil {
		return nil, s.halted
	}
	t := s.tip.Load()
	if !t.initialised {
		return nil, ErrNotInitialised
	}
	if height != t.height+1 {
		return nil, fmt.Errorf("%w: got %d, want %d", ErrWrongHeight, height, t.height+1)
	}

	res := &BlockResult{Height: height, Results: make([]TxResult, len(txs))}
	decoded, selfSigned := s.admit(txs, hashes, cache, res.Results)

	ov := newOverlay(s, blk, len(txs))
	if err := ov.checkVersion(); err != nil {
		return nil, fmt.Errorf("state: block %d: %w", height, err)
	}
	if err := ov.prefetch(s, decoded); err != nil {
		return nil, fmt.Errorf("state: block %d: %w", height, err)
	}
	for i, tx := range decoded {
		if tx != nil {
			ov.txHash = res.Results[i].Hash
			res.Results[i].Err = ov.applyTx(tx, selfSigned[i])
			if ov.err != nil {
				// The store failed under a read: the block cannot be applied on this node now.
				return nil, fmt.Errorf("state: block %d: %w", height, ov.err)
			}
		}
	}

	ws := ov.writeSet()
	ov.recordWrites(ws)
	root, tw, err := s.tree.update(t.root, height, ws)
	if err != nil {
		return nil, fmt.Errorf("state: block %d: %w", height, err)
	}
	res.Root = root
	res.ReceiptsRoot = merkle.ReceiptsRoot(ReceiptLeaves(res.Results))
	return &Staged{Result: res, s: s, blk: blk, parent: t.root, ws: ws, tw: tw, accts: ov.accts, decoded: decoded}, nil
}

// commitStaged writes a staged block. Precondition: s.applyMu is held. Nothing but a commit
// moves the tip, and the store's state changes only with the tip, so a Staged executed on the
// current tip (same height and root) read exactly what the store holds now.
func (s *State) commitStaged(st *Staged) (*BlockResult, error) {
	if s.halted != nil {
		return nil, s.halted
	}
	t := s.tip.Load()
	if st == nil || st.s != s || st.committed || !t.initialised || st.blk.Height != t.height+1 || st.parent != t.root {
		return nil, ErrStaleStaged
	}
	last, err := encodeLastResults(st.Result)
	if err != nil {
		return nil, err
	}
	st.committed = true
	if err := s.commit(st.ws, st.tw, st.blk.Height, st.blk.TimeMs, st.Result.Root, st.Result.ReceiptsRoot, st.accts, keyLastResults, last); err != nil {
		return nil, err
	}
	return st.Result, nil
}

// storedResult is one transaction's outcome as kept under keyLastResults.
type storedResult struct {
	Hash Hash   `cbor:"1,keyasint"`
	Err  string `cbor:"2,keyasint,omitempty"`
}

type lastResults struct {
	Height  uint64         `cbor:"1,keyasint"`
	Results []storedResult `cbor:"2,keyasint"`
}

// The last block's results are kept beside the state, in the same atomic write, so that a node
// that crashed after applying a block but before recording its results elsewhere can recover
// them. Only the last block's: nothing before it can be missing. They are bookkeeping, outside
// the state root.
func encodeLastResults(res *BlockResult) ([]byte, error) {
	lr := lastResults{Height: res.Height, Results: make([]storedResult, len(res.Results))}
	for i, r := range res.Results {
		lr.Results[i].Hash = r.Hash
		if r.Err != nil {
			lr.Results[i].Err = r.Err.Error()
		}
	}
	return Marshal(&lr)
}

// LastResults returns what the last applied block did with each of its transactions (an empty
// string for an applied one, else why it was rejected), for a node recovering from a crash.
func (s *State) LastResults() (height uint64, hashes []Hash, errs []string, err error) {
	b, err := s.db.Get(keyLastResults)
	if err != nil || b == nil {
		return 0, nil, nil, err
	}
	var lr lastResults
	if err := Unmarshal(b, &lr); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: last results: %v", ErrCorrupt, err)
	}
	hashes, errs = make([]Hash, len(lr.Results)), make([]string, len(lr.Results))
	for i, r := range lr.Results {
		hashes[i], errs[i] = r.Hash, r.Err
	}
	return lr.Height, hashes, errs, nil
}

// admit runs every check that does not depend on state: hash, duplicates, decoding, chain ID and
// signatures. It fills each rejected transaction's result and returns the decoded transactions,
// nil where rejected, and for each whether it is signed by its sender's own key alone (see
// applyTx).
func (s *State) admit(txs [][]byte, hashes []Hash, cache SigCache, results []TxResult) ([]*Tx, []bool) {
	decoded := make([]*Tx, len(txs))
	decodeErrs := make([]error, len(txs))
	selfSigned := make([]bool, len(txs))
	// Hashing, decoding and deriving the signer's address are pure and independent per
	// transaction. What the cache holds decoded already (the mempool's) is not decoded again:
	// decoding with its canonical-form check was a tenth of a validator's CPU under load. Hashes
	// the caller holds (ExecuteHashed) are not computed again.
	dc, _ := cache.(TxDecodedCache)
	if hashes != nil {
		for i := range results {
			results[i].Hash = hashes[i]
		}
	} else if dc != nil {
		hashes = make([]Hash, len(txs))
		parallelFor(len(txs), 1024, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				hashes[i] = HashTx(txs[i])
				results[i].Hash = hashes[i]
			}
		})
	}
	if dc != nil {
		dc.DecodedTxs(hashes, decoded)
	}
	parallelFor(len(txs), 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if hashes == nil {
				results[i].Hash = HashTx(txs[i])
			}
			if decoded[i] == nil {
				decoded[i], decodeErrs[i] = DecodeTx(txs[i])
			}
			if tx := decoded[i]; tx != nil {
				selfSigned[i] = len(tx.Sigs) == 1 && AddressFromPubKey(tx.Sigs[0].PubKey) == tx.Body.From
			}
		}
	})

	seen := make(map[Hash]struct{}, len(txs))
	var unverified []*Tx
	var unverifiedIdx []int
	for i := range txs {
		h := results[i].Hash
		if _, dup := seen[h]; dup {
			decoded[i], results[i].Err = nil, ErrDuplicateTx
			continue
		}
		seen[h] = struct{}{}
		if decodeErrs[i] != nil {
			results[i].Err = decodeErrs[i]
			continue
		}
		if c := decoded[i].Body.ChainID; c != s.chainID {
			decoded[i], results[i].Err = nil, fmt.Errorf("%w: %q, this chain is %q", ErrWrongChain, c, s.chainID)
			continue
		}
		if cache != nil && cache.Verified(h) {
			continue
		}
		unverified = append(unverified, decoded[i])
		unverifiedIdx = append(unverifiedIdx, i)
	}
	rec, _ := cache.(SigRecorder)
	var good []Hash
	for j, err := range VerifyTxs(s.chainID, unverified) {
		i := unverifiedIdx[j]
		if err != nil {
			decoded[i], results[i].Err = nil, err
		} else if rec != nil {
			good = append(good, results[i].Hash)
		}
	}
	if len(good) > 0 {
		rec.Record(good...)
	}
	return decoded, selfSigned
}

// applyTransfer applies a transfer by the sender at index si (whose authorisation and nonce
// applyTx has checked) if every other check passes, and otherwise changes nothing and returns
// why. It is the hot path: no journal, no records, every account prefetched.
func (ov *overlay) applyTransfer(si int32, from Address, tr *Transfer) error {
	sender := ov.accts[si].acct
	switch {
	case tr.Amount == 0:
		return ErrBadAmount
	case tr.To == from:
		return ErrSelfTransfer
	case sender.Balance < tr.Amount:
		return fmt.Errorf("%w: balance %d, amount %d", ErrNoFunds, sender.Balance, tr.Amount)
	}
	recipient := &ov.accts[ov.indexOf(tr.To)]
	if recipient.acct.Balance > math.MaxUint64-tr.Amount {
		return fmt.Errorf("%w: recipient balance %d, amount %d", ErrOverflow, recipient.acct.Balance, tr.Amount)
	}
	recipient.acct.Balance += tr.Amount
	recipient.dirty = true
	snd := &ov.accts[si]
	snd.acct.Balance -= tr.Amount
	snd.acct.Nonce++
	snd.dirty = true
	return nil
}

// overlay holds the accounts and records a block has read or written, so that each transaction
// sees the effects of the earlier ones, and nothing reaches the store until the block commits.
// Accounts have their own fast structure (transfers are most of the load); every other record is
// a generic key/value entry read through from the store (overlay.go).
type overlay struct {
	index map[Address]int32
	accts []overlayAccount

	s       *State
	blk     BlockInfo
	txHash  Hash // of the transaction being applied
	recs    map[string]*record
	journal []undo // changes of the transaction being applied, while it may still be rejected
	err     error  // a store failure met while applying; fails the block
}

type overlayAccount struct {
	addr  Address
	acct  Account
	dirty bool
}

func newOverlay(s *State, blk BlockInfo, txs int) *overlay {
	// Each transfer touches at most two accounts.
	return &overlay{index: make(map[Address]int32, 2*txs), accts: make([]overlayAccount, 0, 2*txs),
		s: s, blk: blk, recs: map[string]*record{}}
}

// indexOf returns the index of a's entry, which prefetch has loaded. Indexes, unlike pointers,
// stay valid as the overlay grows.
func (ov *overlay) indexOf(a Address) int32 {
	i, ok := ov.index[a]
	if !ok {
		panic(fmt.Sprintf("state: account %s was not prefetched (a bug in ApplyBlock, not in the data)", a))
	}
	return i
}

// prefetch loads every account the block's admitted transactions name, from the cache or, in
// parallel, from the store, so that the sequential pass that applies them works from memory. What
// it reads is committed state, the same whatever the order of the reads.
func (ov *overlay) prefetch(s *State, txs []*Tx) error {
	var missing []int32
	s.cache.mu.RLock()
	for _, tx := range txs {
		if tx == nil {
			continue
		}
		addrs := [2]Address{tx.Body.From}
		n := 1
		if tr := tx.Body.Transfer; tr != nil {
			addrs[1], n = tr.To, 2
		}
		for _, a := range addrs[:n] {
			if _, ok := ov.index[a]; ok {
				continue
			}
			i := int32(len(ov.accts))
			ov.index[a] = i
			acct, ok := s.cache.m[a]
			ov.accts = append(ov.accts, overlayAccount{addr: a, acct: acct})
			if !ok {
				missing = append(missing, i)
			}
		}
	}
	s.cache.mu.RUnlock()

	errs := make([]error, len(missing))
	parallelFor(len(missing), 512, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			e := &ov.accts[missing[j]]
			acct, err := s.loadAccount(e.addr)
			if err != nil && !errors.Is(err, errAccountNotFound) {
				errs[j] = err
				continue
			}
			e.acct = acct
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		loaded := make([]overlayAccount, len(missing))
		for j, i := range missing {
			loaded[j] = ov.accts[i]
		}
		s.cache.putOverlay(loaded, false)
	}
	return nil
}

// writeSet is the accounts the block changed, with their final values, in key order.
func (ov *overlay) writeSet() *writeSet {
	// Sorting here by the first 8 address bytes, then the rest, is several times faster than
	// a generic sort of keys.
	type sortKey struct {
		hi uint64
		i  int32
	}
	keys := make([]sortKey, 0, len(ov.accts))
	for i := range ov.accts {
		if e := &ov.accts[i]; e.dirty {
			keys = append(keys, sortKey{hi: binary.BigEndian.Uint64(e.addr[:8]), i: int32(i)})
		}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		return bytes.Compare(ov.accts[a.i].addr[8:], ov.accts[b.i].addr[8:])
	})
	ws := newWriteSet(len(keys))
	for _, k := range keys {
		e := &ov.accts[k.i]
		ws.setAccount(e.addr, e.acct)
	}
	return ws
}

// parallelFor calls fn on consecutive ranges covering [0, n), spread over the available CPUs in
// ranges of at least grain items. fn must only touch its own range's data.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+grain-1)/grain)
	if workers <= 1 {
		fn(0, n)
		return
	}
	size := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
