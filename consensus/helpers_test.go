package consensus

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
)

const testChain = "guild-test"

var (
	testKeysMu sync.Mutex
	testKeys   []ed25519.PrivateKey
)

// keyFor is a deterministic validator key, so runs reproduce exactly.
func keyFor(i int) ed25519.PrivateKey {
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	for len(testKeys) <= i {
		seed := sha256.Sum256(fmt.Appendf(nil, "guild consensus test key %d", len(testKeys)))
		testKeys = append(testKeys, ed25519.NewKeyFromSeed(seed[:]))
	}
	return testKeys[i]
}

// testSet is a validator set with the given powers and keys keyFor(0..n-1).
func testSet(powers ...uint64) ValidatorSet {
	var vs ValidatorSet
	for i, p := range powers {
		vs.Validators = append(vs.Validators, Validator{PubKey: keyFor(i).Public().(ed25519.PublicKey), Power: p})
	}
	return vs
}

func equalSet(n int) ValidatorSet {
	powers := make([]uint64, n)
	for i := range powers {
		powers[i] = 1
	}
	return testSet(powers...)
}

// testApp accepts exactly the values that start with "h=<height>;", and only on top of the last
// height the node applied, which also checks that the core never asks about a height before the
// node has applied the one below (the Ready/Advance contract).
type testApp struct {
	applied uint64
}

var errWrongBlock = errors.New("test app: wrong block")

func (a *testApp) CheckProposal(height uint64, value []byte) error {
	if height != a.applied+1 {
		return fmt.Errorf("%w: asked about height %d with %d applied", errWrongBlock, height, a.applied)
	}
	if !bytes.HasPrefix(value, fmt.Appendf(nil, "h=%d;", height)) {
		return fmt.Errorf("%w: value %q is not for height %d", errWrongBlock, value, height)
	}
	return nil
}

// proposerApp is the simulator's application: a testApp that is also a ProposerChecker. A value
// that names its proposer ("by=N", as the simulator's do) must be proposed fresh by validator N.
// A value re-proposed from a prepared certificate keeps its first proposer's name, so checking it
// against the new leader would refuse it; the view-change scenarios fail if the core ever does.
type proposerApp struct{ *testApp }

func (a proposerApp) CheckProposalBy(height uint64, proposer uint32, value []byte) error {
	if err := a.CheckProposal(height, value); err != nil {
		return err
	}
	if _, rest, ok := bytes.Cut(value, []byte(";by=")); ok {
		by, _, _ := bytes.Cut(rest, []byte(";"))
		if string(by) != fmt.Sprint(proposer) {
			return fmt.Errorf("%w: value %q proposed by validator %d", errWrongBlock, value, proposer)
		}
	}
	return nil
}

func valueFor(height uint64, tag string) []byte { return fmt.Appendf(nil, "h=%d;%s", height, tag) }

// signed builds a message from validator from, signed with its key.
func signed(t MsgType, height, view uint64, from int, value []byte, d Digest) Message {
	m := Message{Type: t, Height: height, View: view, From: uint32(from), Value: value, Digest: d}
	if value != nil {
		m.Digest = DigestOf(value)
	}
	Sign(testChain, keyFor(from), &m)
	return m
}

// certFor is a valid certificate for value at (height, view) signed by the given validators.
func certFor(height, view uint64, value []byte, voters ...int) Certificate {
	cert := Certificate{Height: height, View: view, Digest: DigestOf(value)}
	for _, i := range voters {
		m := signed(MsgCommit, height, view, i, nil, cert.Digest)
		cert.Votes = append(cert.Votes, Vote{Validator: uint32(i), Sig: m.Sig})
	}
	return cert
}
