package consensus

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"math/bits"
)

// MaxValidators bounds the validator set, so that a certificate (at most one vote per validator)
// always fits the decoder's array limit and a peer cannot make a node verify more signatures than
// there are validators.
const MaxValidators = 1024

// TotalPower is the sum of the validators' voting power. For a set whose sum overflows it
// saturates at the largest uint64; New and VerifyCertificate reject such sets.
func (vs ValidatorSet) TotalPower() uint64 {
	total, _ := vs.totalPower()
	return total
}

// totalPower reports the sum and whether it fits in a uint64.
func (vs ValidatorSet) totalPower() (uint64, bool) {
	var total uint64
	for _, v := range vs.Validators {
		sum, carry := bits.Add64(total, v.Power, 0)
		if carry != 0 {
			return math.MaxUint64, false
		}
		total = sum
	}
	return total, true
}

// IsQuorum reports whether power is more than two thirds of the total. Two such quorums overlap in
// more than a third of the power, hence in an honest validator while faulty power stays below a
// third (PBFT §4, weighted by power).
func (vs ValidatorSet) IsQuorum(power uint64) bool { return isQuorum(power, vs.TotalPower()) }

// isQuorum is power*3 > total*2, computed in 128 bits because powers are arbitrary uint64s.
func isQuorum(power, total uint64) bool {
	ph, pl := bits.Mul64(power, 3)
	th, tl := bits.Mul64(total, 2)
	return ph > th || (ph == th && pl > tl)
}

// Leader is the index of the leader of (height, view): (height + view) mod n, so leadership
// rotates every height and no single organization can censor for long. 0 for an empty set.
func (vs ValidatorSet) Leader(height, view uint64) uint32 {
	n := uint64(len(vs.Validators))
	if n == 0 {
		return 0
	}
	// Reduce first: height + view itself may overflow.
	return uint32((height%n + view%n) % n)
}

// validate checks what New needs of a validator set: usable keys, positive powers, no key twice
// (it would count one signer's power twice), and a total that fits in a uint64.
func (vs ValidatorSet) validate() error {
	n := len(vs.Validators)
	if n == 0 {
		return fmt.Errorf("%w: empty validator set", ErrInvalidConfig)
	}
	if n > MaxValidators {
		return fmt.Errorf("%w: %d validators, at most %d", ErrInvalidConfig, n, MaxValidators)
	}
	seen := make(map[string]int, n)
	for i, v := range vs.Validators {
		if len(v.PubKey) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: validator %d: public key is %d bytes", ErrInvalidConfig, i, len(v.PubKey))
		}
		if v.Power == 0 {
			return fmt.Errorf("%w: validator %d has zero power", ErrInvalidConfig, i)
		}
		if j, dup := seen[string(v.PubKey)]; dup {
			return fmt.Errorf("%w: validators %d and %d share a key", ErrInvalidConfig, j, i)
		}
		seen[string(v.PubKey)] = i
	}
	if _, ok := vs.totalPower(); !ok {
		return fmt.Errorf("%w: total voting power overflows", ErrInvalidConfig)
	}
	return nil
}

// VerifyCertificate checks a commit certificate offline: every vote names a validator of vals, in
// strictly ascending index order (so no validator counts twice and a certificate has one
// encoding), carries a valid signature over SignBytes of MsgCommit{Height, View, From: index,
// Digest}, and the voters hold more than two thirds of the power. Every vote must be valid, not
// just a quorum of them, so a certificate cannot be padded with junk.
func VerifyCertificate(chainID string, vals ValidatorSet, cert *Certificate) error {
	return verifyCertificate(chainID, vals, cert, nil)
}

func verifyCertificate(chainID string, vals ValidatorSet, cert *Certificate, sigs *sigCache) error {
	if cert == nil {
		return fmt.Errorf("%w: %w: no certificate", ErrInvalidCertificate, ErrMalformed)
	}
	n := len(vals.Validators)
	total, ok := vals.totalPower()
	if n == 0 || !ok {
		return fmt.Errorf("%w: unusable validator set", ErrInvalidCertificate)
	}
	if len(cert.Votes) > n {
		return fmt.Errorf("%w: %w: %d votes for %d validators", ErrInvalidCertificate, ErrDuplicate, len(cert.Votes), n)
	}
	// Power first: it is cheap, and a certificate short of a quorum is rejected without
	// verifying a single signature.
	var power uint64
	prev := int64(-1)
	for i, v := range cert.Votes {
		idx := int64(v.Validator)
		switch {
		case idx >= int64(n):
			return fmt.Errorf("%w: vote %d: %w: index %d of %d", ErrInvalidCertificate, i, ErrUnknownValidator, idx, n)
		case idx == prev:
			return fmt.Errorf("%w: vote %d: %w: validator %d votes twice", ErrInvalidCertificate, i, ErrDuplicate, idx)
		case idx < prev:
			return fmt.Errorf("%w: vote %d: %w: votes not in ascending validator order", ErrInvalidCertificate, i, ErrMalformed)
		}
		prev = idx
		power += vals.Validators[idx].Power // distinct validators: bounded by total, no overflow
	}
	if !isQuorum(power, total) {
		return fmt.Errorf("%w: %w: %d of %d", ErrInvalidCertificate, ErrNoQuorum, power, total)
	}
	m := Message{Type: MsgCommit, Height: cert.Height, View: cert.View, Digest: cert.Digest}
	for i, v := range cert.Votes {
		m.From = v.Validator
		if !sigs.verify(vals.Validators[v.Validator].PubKey, SignBytes(chainID, &m), v.Sig) {
			return fmt.Errorf("%w: vote %d: %w: validator %d", ErrInvalidCertificate, i, ErrBadSignature, v.Validator)
		}
	}
	return nil
}

// SignatureMemo remembers ed25519 signatures that verified, so that a node checks each consensus
// signature once although both its network validator (VerifyMessageWith, off the loop) and its
// core (Step) look at it. Contract: Verified answers true only for a triple that was passed to
// Add, and Add is only called after ed25519.Verify returned true for that very triple; a memo may
// forget (it is bounded) but never invents. Found or verified afresh, the answer is then
// ed25519.Verify's, so what the core does never depends on what the memo remembers: it stays
// deterministic. The node shares one between goroutines, so an implementation given to the node
// must be safe for concurrent use.
type SignatureMemo interface {
	Verified(pub ed25519.PublicKey, msg, sig []byte) bool
	Add(pub ed25519.PublicKey, msg, sig []byte)
}

// sigCache remembers signature checks. In the simulator (results), N cores in one process would
// otherwise verify every signature N times and ed25519 verification dominates the run time (about
// 0.1 ms each here, 1 ms under -race); on a node (memo, Config.Memo), the topic validator has
// usually verified a message already when Step sees it. A nil cache verifies every time.
// ed25519.Verify is a pure function of (key, message, signature), and both forms are keyed by all
// three, so they answer exactly what Verify would.
type sigCache struct {
	results map[string]bool
	memo    SignatureMemo
}

func newSigCache() *sigCache { return &sigCache{results: make(map[string]bool)} }

// memoCache is the cache over a node's memo; nil when there is none.
func memoCache(m SignatureMemo) *sigCache {
	if m == nil {
		return nil
	}
	return &sigCache{memo: m}
}

// verify is ed25519.Verify that never panics on a malformed key and consults the cache if any.
func (c *sigCache) verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	if c == nil {
		return ed25519.Verify(pub, msg, sig)
	}
	if c.memo != nil {
		if c.memo.Verified(pub, msg, sig) {
			return true
		}
		// Only successes are remembered: a forged triple costs its sender a verify each time,
		// and cannot push out anything but other valid ones.
		ok := ed25519.Verify(pub, msg, sig)
		if ok {
			c.memo.Add(pub, msg, sig)
		}
		return ok
	}
	key := string(pub) + string(msg) + string(sig)
	ok, seen := c.results[key]
	if !seen {
		ok = ed25519.Verify(pub, msg, sig)
		c.results[key] = ok
	}
	return ok
}
