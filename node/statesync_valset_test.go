package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/light"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// valsetSnapshotChain is snapshotChain on a chain whose validator set governance changed twice
// before the snapshot at height 10: validator "e", with power 10, joins at height 4 (from then
// on the genesis validators sign 4 of 14, no quorum), and "a" leaves at height 7. Each block is
// certified by every validator of the set in force at its height.
func valsetSnapshotChain(t *testing.T) (*syncChain, *Node) {
	t.Helper()
	c := newSyncChain(t)
	payer := state.AddressFromPubKey(c.payer.Public().(ed25519.PublicKey))
	c.gen.Members = []state.Member{{Name: "org", Controller: payer}}
	if err := c.gen.Validate(); err != nil {
		t.Fatal(err)
	}
	src := snapshotSource(t, c)

	keys := map[string]ed25519.PrivateKey{}
	for _, k := range c.valKeys {
		keys[string(k.Public().(ed25519.PublicKey))] = k
	}
	ePub, eKey, _ := ed25519.GenerateKey(rand.Reader)
	keys[string(ePub)] = eKey
	aPub := c.valKeys[0].Public().(ed25519.PublicKey)
	gov := map[uint64]state.TxBody{
		1: {GovPropose: &state.GovPropose{ID: "e-joins", EffectiveHeight: 4,
			SetValidator: &state.Validator{Name: "e", PubKey: ePub, Power: 10}}},
		2: {GovPropose: &state.GovPropose{ID: "a-leaves", EffectiveHeight: 7,
			SetValidator: &state.Validator{Name: "a", PubKey: aPub, Power: 0}}},
	}
	nonce := uint64(0)
	for h := uint64(1); h <= 12; h++ {
		var txs [][]byte
		if body, ok := gov[h]; ok {
			txs = append(txs, signedRaw(t, c.gen.ChainID, c.payer, nonce, body))
			nonce++
		}
		for range 5 {
			txs = append(txs, transfer(t, c.gen.ChainID, c.payer, nonce, state.Address{byte(nonce)}, 1))
			nonce++
		}
		b := Block{Header: ledBy(src, Header{ChainID: c.gen.ChainID, Height: h, Time: src.lastTime + 10, PrevHash: src.lastHash,
			StateRoot: src.st.Root(), TxsHash: TxsHash(txs), ReceiptsRoot: src.st.ReceiptsRoot()}), Txs: txs}
		value, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var signers []ed25519.PrivateKey
		for _, v := range src.validatorsAt(h).Validators {
			signers = append(signers, keys[string(v.PubKey)])
		}
		cert := certify(c.gen.ChainID, signers, h, consensus.DigestOf(value))
		if err := src.commit(consensus.Committed{Height: h, Value: value, Certificate: cert}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(src.validatorsAt(11).Validators); got != 4 || src.validatorsAt(11).Validators[3].Power != 10 {
		t.Fatalf("validator set of height 11: %+v, want b, c, d, e (governance did not pass)", src.validatorsAt(11))
	}
	waitSnapshot(t, src, 10)
	return c, src
}

func waitSnapshot(t *testing.T, src *Node, height uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		src.snaps.mu.Lock()
		n := len(src.snaps.list)
		top := uint64(0)
		if n > 0 {
			top = src.snaps.list[n-1].m.Height
		}
		src.snaps.mu.Unlock()
		if top == height {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot at height %d after 20 s (%d kept, newest %d)", height, n, top)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After governance replaced the genesis validators' quorum, a new node state-syncs: it follows
// the two changes from genesis, checks the snapshot's header against the set of its height, and
// keeps the proofs, from which it can serve the same chain of changes to the next joiner.
func TestStateSyncFollowsValidatorChanges(t *testing.T) {
	c, src := valsetSnapshotChain(t)
	net := &fakeSnapshotNet{peers: map[string]p2p.SnapshotSource{"honest": src.snaps}, penalized: map[string]int{}}
	ss, db := newTestStateSyncer(t, c, net)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, offer, err := ss.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Height != 10 || offer.epochs != 3 || len(offer.changes) != 2 || offer.changes[4] == nil || offer.changes[7] == nil {
		t.Fatalf("restored height %d following %d sets (changes at %v), want 10 following 3 (changes at 4 and 7)",
			res.Height, offer.epochs, mapKeys(offer.changes))
	}
	if len(net.penalized) != 0 {
		t.Fatalf("honest peer penalized: %v", net.penalized)
	}
	st, err := state.Open(db, c.gen.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := src.blocks.Header(11)
	if err != nil {
		t.Fatal(err)
	}
	if st.Height() != 10 || st.Root() != hdr.Header.StateRoot {
		t.Fatalf("restored state at %d root %s, want 10 %s", st.Height(), st.Root(), hdr.Header.StateRoot)
	}

	// What StateSync then stores: the joiner, holding no block before 10 and no state before
	// it, serves the chain of changes from the proofs it kept, and they verify.
	bdb, _ := kv.Open(kv.MemDB, "", "")
	bs, err := OpenBlockStore(bdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.SaveValidatorChanges(offer.changes); err != nil {
		t.Fatal(err)
	}
	if err := bs.SetBase(10, offer.block, offer.cert, offer.results); err != nil {
		t.Fatal(err)
	}
	changes, sched, err := validatorProof(st, bs, 11, st.Root())
	if err != nil {
		t.Fatalf("a state-synced node proving its validator sets: %v", err)
	}
	chain, err := light.Follow(mustLightGenesis(t, c.gen), changes)
	if err != nil {
		t.Fatal(err)
	}
	if err := chain.CheckSchedule(&light.Header{Height: 11, StateRoot: st.Root()}, &sched); err != nil || chain.Epochs() != 3 {
		t.Fatalf("served chain of changes: %d sets, %v", chain.Epochs(), err)
	}
}

func mapKeys[V any](m map[uint64]V) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	return out
}

// forgedChanges serves its source's snapshot with the chain of validator set changes tampered.
type forgedChanges struct {
	p2p.SnapshotSource
	offer  func([]byte) []byte
	change func(i uint32, raw []byte) []byte
}

func (f forgedChanges) SnapshotOffer() ([]byte, error) {
	b, err := f.SnapshotSource.SnapshotOffer()
	if err == nil && f.offer != nil {
		b = f.offer(b)
	}
	return b, err
}

func (f forgedChanges) SnapshotValidatorChange(h uint64, i uint32) ([]byte, error) {
	b, err := f.SnapshotSource.SnapshotValidatorChange(h, i)
	if err == nil && b != nil && f.change != nil {
		b = f.change(i, b)
	}
	return b, err
}

// A peer that serves a forged or incomplete chain of validator set changes is refused before
// anything is written, with the reason, and penalized; the node restores from an honest peer.
func TestStateSyncRefusesForgedValidatorChanges(t *testing.T) {
	c, src := valsetSnapshotChain(t)
	g := mustLightGenesis(t, c.gen)
	editChange := func(edit func(*light.Change)) func(uint32, []byte) []byte {
		return func(i uint32, raw []byte) []byte {
			if i != 1 {
				return raw
			}
			ch, err := decodeValidatorChange(raw)
			if err != nil {
				t.Fatal(err)
			}
			edit(ch)
			out, err := encodeValidatorChange(ch)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	editOffer := func(edit func(*snapshotOffer)) func([]byte) []byte {
		return func(raw []byte) []byte {
			var o snapshotOffer
			if err := state.Unmarshal(raw, &o); err != nil {
				t.Fatal(err)
			}
			edit(&o)
			out, err := state.Marshal(&o)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	for _, tc := range []struct {
		name string
		liar forgedChanges
		want error
	}{
		// The second set proven with another power for one validator: its path no longer
		// leads to the certified root.
		{"tampered set", forgedChanges{change: editChange(func(ch *light.Change) {
			ch.Proof.Value = bytes.Clone(ch.Proof.Value)
			ch.Proof.Value[len(ch.Proof.Value)-1] ^= 1
		})}, light.ErrPathMismatch},
		// The second change proven against a block its predecessor did not certify.
		{"uncertified block", forgedChanges{change: editChange(func(ch *light.Change) {
			ch.Block = append(bytes.Clone(ch.Block[:len(ch.Block)-1]), ch.Block[len(ch.Block)-1]^1)
		})}, light.ErrBadSignature},
		// The last change left out: block 11 is checked against the set before it, which does
		// not certify it (a set that still did would fail the schedule proof: light's tests).
		{"incomplete", forgedChanges{offer: editOffer(func(o *snapshotOffer) { o.Changes-- })}, consensus.ErrNoQuorum},
		// No change at all, as a node that checks against the genesis set alone would take it.
		{"none", forgedChanges{offer: editOffer(func(o *snapshotOffer) { o.Changes = 0 })}, errBadOffer},
		{"garbage", forgedChanges{change: func(uint32, []byte) []byte { return []byte{0xa1, 0x01} }}, errBadOffer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			liar := tc.liar
			liar.SnapshotSource = src.snaps
			raw, err := liar.SnapshotOffer()
			if err != nil {
				t.Fatal(err)
			}
			_, err = verifyOffer(g, raw, func(h uint64, i uint32) ([]byte, error) { return liar.SnapshotValidatorChange(h, i) })
			if !errors.Is(err, errBadOffer) || !errors.Is(err, tc.want) {
				t.Fatalf("forged chain of changes: %v, want %v", err, tc.want)
			}
		})
	}

	// End to end: the liar's offer is refused, nothing of it is restored, and the honest peer's
	// snapshot is.
	liar := forgedChanges{SnapshotSource: src.snaps, offer: editOffer(func(o *snapshotOffer) { o.Changes-- })}
	net := &fakeSnapshotNet{peers: map[string]p2p.SnapshotSource{"honest": src.snaps, "liar": liar}, penalized: map[string]int{}}
	ss, _ := newTestStateSyncer(t, c, net)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, _, err := ss.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Height != 10 || net.penalized["liar"] == 0 || net.penalized["honest"] != 0 {
		t.Fatalf("restored %d, penalized %v; want 10 and the liar only", res.Height, net.penalized)
	}
	if v := counterValueOf(t, ss.metrics.failures.WithLabelValues("bad_offer")); v == 0 {
		t.Error("the liar's offer was not counted as bad")
	}
}

// A node that prunes the blocks its validator set changes are proven against keeps the proofs
// first, so that it still offers snapshots (and proof files) with the whole chain of changes.
func TestPruneKeepsValidatorChangeProofs(t *testing.T) {
	c, src := valsetSnapshotChain(t)
	src.cfg.Storage.KeepBlocks = 5
	src.pruneBlocks(12) // blocks 1..7 go (the snapshot at 10 is kept): those of both changes
	if got := src.blocks.Earliest(); got != 8 {
		t.Fatalf("earliest block %d, want 8", got)
	}
	src.snaps.mu.Lock()
	src.snaps.offer.height = 0 // no cached offer: build it from the pruned store
	src.snaps.mu.Unlock()
	raw, err := src.snaps.SnapshotOffer()
	if err != nil || raw == nil {
		t.Fatalf("offer of a pruned node: %v", err)
	}
	o, err := verifyOffer(mustLightGenesis(t, c.gen), raw, func(h uint64, i uint32) ([]byte, error) {
		return src.snaps.SnapshotValidatorChange(h, i)
	})
	if err != nil || o.epochs != 3 {
		t.Fatalf("offer of a pruned node: %v", err)
	}
}
