package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"

	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// SigCache remembers transactions whose signatures have all been checked, keyed by
// HashTx(raw). The node's mempool workers fill it as they verify incoming transactions, so that
// a block's transactions are usually verified once per node, not twice.
//
// It is an optimisation, never the source of truth: an implementation that always answers false
// is correct, only slower. It must never answer true for a transaction it has not verified with
// VerifyTx or VerifyTxs (for any chain ID: a transaction from another chain is rejected by its
// chain ID before its signature matters). Verified is called from the goroutine that applies
// blocks, concurrently with the workers that fill the cache.
type SigCache interface {
	Verified(h Hash) bool
}

// SigRecorder is a SigCache that also learns what ApplyBlock and ExecuteBlock verified
// themselves, so that a transaction first seen in a block is not verified again when gossip
// brings it (each signature verified once per node). Record is called only with hashes of
// transactions whose every signature verified.
type SigRecorder interface {
	SigCache
	Record(hs ...Hash)
}

// TxDecodedCache is a SigCache that can also hand back transactions already decoded, by their
// hashes (the node's mempool holds each pending transaction decoded): execution then does not
// decode a block's transactions again. For each hashes[i] it knows, it sets out[i] to what
// DecodeTx returned for the bytes with that hash, and it and its callers never change what it
// hands out. Like Verified, an implementation that knows nothing is correct, only slower.
type TxDecodedCache interface {
	SigCache
	DecodedTxs(hashes []Hash, out []*Tx)
}

// sigOptions are the ed25519 verification rules of every transaction signature check, single or
// batched. ZIP-215 is what the cofactored batch equation actually implements; verifying one
// transaction with any other rules (crypto/ed25519's, or voi's default) would let a node that
// verified a transaction alone and one that verified it in a batch disagree about a block, and
// fork. See https://zips.z.cash/zip-0215 and
// https://hdevalence.ca/blog/2020-10-04-its-25519am.
var sigOptions = &ed25519.Options{Verify: ed25519.VerifyOptionsZIP_215}

// Batch sizes for VerifyTxs. Below minBatch the fixed cost of a batch is not worth it; above
// maxBatch the per-signature gain flattens while the cost of a batch that fails (every entry
// then verified alone) keeps growing.
const (
	minBatch = 64
	maxBatch = 1024
	// minOneBatch is the fewest signatures verified as one batch rather than one at a time:
	// BenchmarkVerifySmall, CPU per signature with known keys, one at a time against one batch:
	// 23–24 against 25 µs for 2, 23–25/20–22 for 3, 24–25/18–19 for 4, 24–25/15.5–16 for 8,
	// 24–25/13.5–14.5 for 16. A
	// node's verifier flushes every 2 ms, so at a few thousand transactions a second its batches
	// hold about ten (they were verified one at a time below 16).
	minOneBatch = 3
)

// batchSeedTag separates the batch-verification transcript hash from every other hash.
const batchSeedTag = "guild/batch-verify/v1"

// VerifyTx checks that tx carries 1..MaxSigners signatures by distinct keys and that every one is
// valid over SignBytes(chainID, &tx.Body). Every failure wraps ErrBadSignature (or ErrMalformedTx
// for a nil tx, or ErrWrongChain for a body naming another chain).
//
// It does not decide whether those keys may act for tx.Body.From: that depends on state (the
// account's signer set, see multisig.go) and is checked by CheckTx and ApplyBlock. For an account
// without a signer set, the rule is that of the first version: exactly one signature, by the key
// whose hash is the address.
func VerifyTx(chainID string, tx *Tx) error {
	msg, err := sigMessage(chainID, tx)
	if err != nil {
		return err
	}
	for i := range tx.Sigs {
		s := &tx.Sigs[i]
		if !verifyOne(s.PubKey, msg, s.Sig) {
			return errSigInvalid
		}
	}
	return nil
}

// verifyOne checks one signature under sigOptions, with pub's cached expanded form if it has one.
func verifyOne(pub, msg, sig []byte) bool {
	if e := expandedKeys.get(pub); e != nil {
		return ed25519.VerifyExpandedWithOptions(e, msg, sig, sigOptions)
	}
	return ed25519.VerifyWithOptions(pub, msg, sig, sigOptions)
}

var errSigInvalid = fmt.Errorf("%w: signature does not verify", ErrBadSignature)

// VerifyTxs checks many transactions as VerifyTx does and returns one error per transaction, nil
// for a good one, always the same as VerifyTx would return. It verifies signatures in batches
// (several times faster than one at a time when they are good) spread over the available CPUs;
// when a batch fails, its entries are checked one by one to find the bad ones.
func VerifyTxs(chainID string, txs []*Tx) []error {
	errs := make([]error, len(txs))
	items := make([]sigItem, 0, len(txs))
	for i, tx := range txs {
		msg, err := sigMessage(chainID, tx)
		if err != nil {
			errs[i] = err
			continue
		}
		for j := range tx.Sigs {
			items = append(items, sigItem{pub: tx.Sigs[j].PubKey, msg: msg, sig: tx.Sigs[j].Sig, idx: i})
		}
	}
	ok := verifySigs(items)
	for j, it := range items {
		if !ok[j] {
			errs[it.idx] = errSigInvalid
		}
	}
	return errs
}

// sigMessage checks everything about tx's signature except the curve arithmetic, and returns the
// bytes the signature must cover.
func sigMessage(chainID string, tx *Tx) ([]byte, error) {
	if tx == nil {
		return nil, fmt.Errorf("%w: nil transaction", ErrMalformedTx)
	}
	// The body names the chain it was signed for: a transaction made for another chain (a wallet
	// pointed at the wrong node, a testnet key used on another testnet) says so, rather than
	// failing as a bad signature, which sends its author looking for a broken key.
	if tx.Body.ChainID != chainID {
		return nil, fmt.Errorf("%w: the transaction is for chain %q, this chain is %q", ErrWrongChain, tx.Body.ChainID, chainID)
	}
	if len(tx.Sigs) == 0 || len(tx.Sigs) > MaxSigners {
		return nil, fmt.Errorf("%w: want 1..%d signatures, got %d", ErrBadSignature, MaxSigners, len(tx.Sigs))
	}
	for i := range tx.Sigs {
		s := &tx.Sigs[i]
		if len(s.PubKey) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: signature or key of wrong length", ErrBadSignature)
		}
		if smallOrderKeys[[32]byte(s.PubKey)] {
			return nil, fmt.Errorf("%w: public key of small order", ErrBadSignature)
		}
		for _, t := range tx.Sigs[:i] {
			if bytes.Equal(s.PubKey, t.PubKey) {
				return nil, fmt.Errorf("%w: two signatures by one key", ErrBadSignature)
			}
		}
	}
	msg, err := SignBytes(chainID, &tx.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding body: %v", ErrBadSignature, err)
	}
	return msg, nil
}

// smallOrderKeys are the 14 encodings (canonical or not, as ZIP-215 accepts them) of the 8
// points of small order. Such a "key" has no secret behind it, and under ZIP-215 a zero
// signature from it verifies for every message, so an account derived from one could be spent
// by anyone. No wallet makes one; refusing them here, before either the single or the batch
// path, keeps the two paths in agreement. (The list is ZIP-215's own test-vector key set.)
var smallOrderKeys = func() map[[32]byte]bool {
	m := make(map[[32]byte]bool, 14)
	for _, h := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000080",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	} {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			panic("state: bad small-order key constant " + h)
		}
		m[[32]byte(b)] = true
	}
	return m
}()

// sigItem is one signature to check; idx is the caller's.
type sigItem struct {
	pub, msg, sig []byte
	idx           int
}

// verifySigs reports, for each item, whether its signature is valid under sigOptions. Chunks are
// verified in parallel; the answer does not depend on the chunking or on the scheduling.
func verifySigs(items []sigItem) []bool {
	ok := make([]bool, len(items))
	n := len(items)
	if n == 0 {
		return ok
	}
	if n < minOneBatch {
		// Too few for a batch to pay off.
		for i := range items {
			it := &items[i]
			ok[i] = verifyOne(it.pub, it.msg, it.sig)
		}
		return ok
	}
	procs := runtime.GOMAXPROCS(0)
	chunks := (n + maxBatch - 1) / maxBatch
	if c := min(procs, (n+minBatch-1)/minBatch); c > chunks {
		chunks = c
	}
	size := (n + chunks - 1) / chunks
	if chunks == 1 {
		verifyChunk(items, ok)
		return ok
	}
	var wg sync.WaitGroup
	work := make(chan int, chunks)
	for start := 0; start < n; start += size {
		work <- start
	}
	close(work)
	for w := 0; w < min(procs, chunks); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range work {
				end := min(start+size, n)
				verifyChunk(items[start:end], ok[start:end])
			}
		}()
	}
	wg.Wait()
	return ok
}

// verifyChunk batch-verifies items, falling back to one-by-one checks inside voi's Verify when
// the batch equation fails.
func verifyChunk(items []sigItem, ok []bool) {
	bv := ed25519.NewBatchVerifierWithCapacity(len(items))
	for i := range items {
		it := &items[i]
		if e := expandedKeys.get(it.pub); e != nil {
			bv.AddExpandedWithOptions(e, it.msg, it.sig, sigOptions)
		} else {
			bv.AddWithOptions(it.pub, it.msg, it.sig, sigOptions)
		}
	}
	_, valid := bv.Verify(batchSeed(items))
	copy(ok, valid)
}

// batchSeed derives the batch equation's random coefficients from a hash of everything in the
// batch, instead of from a random source: the state machine must not use randomness, and
// Fiat-Shamir coefficients that depend on every key, message and signature are as good as random
// ones against a forger who cannot predict the hash (this is ed25519-dalek's deterministic batch
// verification). voi draws one 32-byte key from the reader and expands it with ChaCha20.
func batchSeed(items []sigItem) *bytes.Reader {
	h := sha256.New()
	h.Write([]byte(batchSeedTag))
	var n [8]byte
	for i := range items {
		it := &items[i]
		h.Write(it.pub)
		h.Write(it.sig)
		binary.BigEndian.PutUint64(n[:], uint64(len(it.msg)))
		h.Write(n[:])
		h.Write(it.msg)
	}
	return bytes.NewReader(h.Sum(nil))
}
