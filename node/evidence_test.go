package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// doublePrepare is evidence that the validator at index from, holding key, prepared two digests
// at (height, view).
func doublePrepare(chainID string, key ed25519.PrivateKey, from uint32, height, view uint64, tag string) consensus.Evidence {
	a := consensus.Message{Type: consensus.MsgPrepare, Height: height, View: view, From: from, Digest: consensus.DigestOf([]byte(tag + "a"))}
	b := a
	b.Digest = consensus.DigestOf([]byte(tag + "b"))
	consensus.Sign(chainID, key, &a)
	consensus.Sign(chainID, key, &b)
	return consensus.NewEvidence(a, b)
}

func encodeEvidence(t *testing.T, e consensus.Evidence) []byte {
	t.Helper()
	raw, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Valid evidence handed to a validator (POST /v1/evidence) is put in a block by the leader, committed, indexed,
// served by GET /v1/evidence and in its block, and counted; offered again it is refused.
func TestEvidenceReachesTheChain(t *testing.T) {
	n, c, _ := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ := c.Status(ctx)
	e := doublePrepare(n.chainID, n.valKey, 0, st.Height, 1, "x")
	if resp, err := c.SubmitEvidence(ctx, encodeEvidence(t, e)); err != nil || resp.Status != api.EvidencePending || resp.ID != e.ID().String() {
		t.Fatalf("valid evidence refused: %+v %v", resp, err)
	}
	var list api.EvidenceListResponse
	for {
		var err error
		if list, err = c.Evidence(ctx); err != nil {
			t.Fatal(err)
		}
		if len(list.Evidence) > 0 {
			break
		}
		// Each committed block is a chance for the evidence to appear: wait on the next one.
		if _, err := c.BlockWait(ctx, n.executedHeight()+1, 10*time.Second); err != nil {
			t.Fatalf("evidence never committed: %v", err)
		}
	}
	want := api.EvidenceJSON{
		ID: e.ID().String(), Validator: "solo", ValidatorIndex: 0,
		PubKey: hex.EncodeToString(n.valKey.Public().(ed25519.PublicKey)),
		Height: st.Height, View: 1, Type: "prepare",
		Digests: [2]string{e.First.Digest.String(), e.Second.Digest.String()},
	}
	got := list.Evidence[0]
	want.Included = got.Included
	if len(list.Evidence) != 1 || got != want || got.Included < st.Height {
		t.Fatalf("GET /v1/evidence = %+v, want %+v included at or after height %d", list.Evidence, want, st.Height)
	}
	b, err := c.Block(ctx, got.Included)
	if err != nil {
		t.Fatal(err)
	}
	value, _, _ := n.blocks.Block(got.Included)
	decoded, _ := DecodeBlock(value)
	if len(b.Evidence) != 1 || b.Evidence[0] != got || b.Header.EvidenceHash != EvidenceHash(decoded.Evidence).String() || b.Header.EvidenceHash == "" {
		t.Fatalf("block %d as served: evidence %+v, evidence_hash %q", got.Included, b.Evidence, b.Header.EvidenceHash)
	}
	if err := n.SubmitEvidence(&e); !errors.Is(err, ErrEvidenceKnown) {
		t.Fatalf("evidence on chain offered again: %v, want %v", err, ErrEvidenceKnown)
	}
	if v, _ := n.validateConsensus("another-peer", encodeEvidence(t, e)); v != p2p.Ignore {
		t.Fatalf("gossiped evidence already on chain: verdict %v, want Ignore", v)
	}
	if got := scrapeMetric(t, ctx, n, "guild_evidence_committed_total"); got != "1" {
		t.Fatalf("guild_evidence_committed_total = %q, want 1", got)
	}
	if got := scrapeMetric(t, ctx, n, "guild_consensus_rounds_per_height_count"); got == "" || got == "0" {
		t.Fatalf("rounds per height observed %q heights", got)
	}
	// Later blocks do not carry it again: the pool let go of it.
	h := n.executedHeight()
	for k := h + 1; k <= h+2; k++ {
		if b, err := c.BlockWait(ctx, k, 10*time.Second); err != nil || len(b.Evidence) != 0 {
			t.Fatalf("block %d: evidence %+v, err %v", k, b.Evidence, err)
		}
	}
}

// scrapeMetric reads one sample of the node's /metrics.
func scrapeMetric(t *testing.T, ctx context.Context, n *Node, name string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.APIAddr()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// Evidence that does not prove an equivocation of a validator is refused, by the pool and by the
// gossip validator (Reject: its sender is at fault), and leaves nothing behind.
func TestInvalidEvidenceRefused(t *testing.T) {
	n, c, _ := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	h := n.blocks.Height() + 1

	badSig := doublePrepare(n.chainID, n.valKey, 0, h, 0, "s")
	badSig.Second.Sig = append([]byte(nil), badSig.Second.Sig...)
	badSig.Second.Sig[5] ^= 1
	sameDigest := doublePrepare(n.chainID, n.valKey, 0, h, 0, "d")
	sameDigest.Second = sameDigest.First
	otherSlot := doublePrepare(n.chainID, n.valKey, 0, h, 0, "o")
	otherSlot.Second.View = 1
	consensus.Sign(n.chainID, n.valKey, &otherSlot.Second)
	for name, tc := range map[string]struct {
		e    consensus.Evidence
		want error
	}{
		"stranger's key":    {doublePrepare(n.chainID, stranger, 0, h, 0, "k"), consensus.ErrBadSignature},
		"unknown validator": {doublePrepare(n.chainID, stranger, 7, h, 0, "u"), consensus.ErrUnknownValidator},
		"other chain":       {doublePrepare("another-chain", n.valKey, 0, h, 0, "c"), consensus.ErrBadSignature},
		"corrupt signature": {badSig, consensus.ErrBadSignature},
		"same digest":       {sameDigest, consensus.ErrEvidenceNoConflict},
		"different slots":   {otherSlot, consensus.ErrEvidenceSlot},
		"far future":        {doublePrepare(n.chainID, n.valKey, 0, h+1000, 0, "f"), ErrEvidenceFuture},
	} {
		if err := n.SubmitEvidence(&tc.e); !errors.Is(err, tc.want) {
			t.Errorf("%s: SubmitEvidence = %v, want %v", name, err, tc.want)
		}
		want := p2p.Reject
		if errors.Is(tc.want, ErrEvidenceFuture) {
			want = p2p.Ignore // valid, but not for this node to judge yet
		}
		if v, _ := n.validateConsensus("another-peer", encodeEvidence(t, tc.e)); v != want {
			t.Errorf("%s: gossip verdict %v, want %v", name, v, want)
		}
		if _, err := c.SubmitEvidence(ctx, encodeEvidence(t, tc.e)); !isStatus(err, http.StatusBadRequest) {
			t.Errorf("%s: POST /v1/evidence: %v, want 400", name, err)
		}
	}
	validEv := doublePrepare(n.chainID, n.valKey, 0, h, 0, "v")
	valid := encodeEvidence(t, validEv)
	for name, raw := range map[string][]byte{
		"garbage array":  {0x82, 0x01, 0x02},
		"trailing bytes": append(append([]byte(nil), valid...), 0),
		"oversized":      append(append([]byte(nil), valid...), make([]byte, consensus.MaxEvidenceBytes)...),
	} {
		if v, _ := n.validateConsensus("another-peer", raw); v != p2p.Reject {
			t.Errorf("%s: gossip verdict %v, want Reject", name, v)
		}
		if _, err := c.SubmitEvidence(ctx, raw); !isStatus(err, http.StatusBadRequest) {
			t.Errorf("%s: POST /v1/evidence: %v, want 400", name, err)
		}
	}
	if n.evidence.Size() != 0 {
		t.Fatalf("refused evidence left %d pieces in the pool", n.evidence.Size())
	}
	// A valid piece, for contrast, is accepted once and then ignored as a duplicate.
	if v, _ := n.validateConsensus("another-peer", valid); v != p2p.Accept {
		t.Fatalf("valid evidence: verdict %v, want Accept", v)
	}
	if v, _ := n.validateConsensus("another-peer", valid); v != p2p.Ignore {
		t.Fatalf("duplicate evidence: verdict %v, want Ignore", v)
	}
	if resp, err := c.SubmitEvidence(ctx, valid); err != nil || resp.Status != api.EvidenceKnown || resp.ID != validEv.ID().String() {
		t.Fatalf("POST of known evidence: %+v %v", resp, err)
	}
	if _, err := c.BlockWait(ctx, h+1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	list, err := c.Evidence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Evidence {
		if e.ID != validEv.ID().String() {
			t.Fatalf("refused evidence on chain: %+v", e)
		}
	}
}

// soloNodeAtRest opens a solo validator's node without running it, so a test may call the loop's
// methods (CheckProposal, commit) from its own goroutine.
func soloNodeAtRest(t *testing.T) *Node {
	t.Helper()
	home, _ := soloHome(t, "memdb")
	n, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.closeStores)
	return n
}

// nextBlock is a valid block for the node's next height carrying evs.
func nextBlock(t *testing.T, n *Node, evs []consensus.Evidence) []byte {
	t.Helper()
	b := Block{Header: Header{ChainID: n.chainID, Height: n.blocks.Height() + 1, Time: n.lastTime + 1,
		PrevHash: n.lastHash, StateRoot: n.st.Root(), TxsHash: TxsHash(nil), EvidenceHash: EvidenceHash(evs)},
		Txs: [][]byte{}, Evidence: evs}
	value, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return value
}

// CheckProposal refuses a block whose evidence is invalid, too old, from a later height,
// repeated, already on chain, or not what the header commits to; the same block without it, or
// with valid evidence, passes.
func TestProposalWithBadEvidenceRejected(t *testing.T) {
	n := soloNodeAtRest(t)
	ev := func(h, v uint64, tag string) consensus.Evidence {
		return doublePrepare(n.chainID, n.valKey, 0, h, v, tag)
	}
	good := ev(1, 0, "g")
	forged := ev(1, 0, "x")
	forged.First.Sig = append([]byte(nil), forged.First.Sig...)
	forged.First.Sig[0] ^= 1

	if err := n.CheckProposal(1, nextBlock(t, n, nil)); err != nil {
		t.Fatalf("block without evidence: %v", err)
	}
	for name, tc := range map[string]struct {
		evs  []consensus.Evidence
		want error
	}{
		"forged signature": {[]consensus.Evidence{good, forged}, consensus.ErrBadSignature},
		"later height":     {[]consensus.Evidence{ev(2, 0, "l")}, ErrEvidenceFuture},
		"twice":            {[]consensus.Evidence{good, ev(1, 0, "g2")}, ErrEvidenceKnown},
	} {
		if err := n.CheckProposal(1, nextBlock(t, n, tc.evs)); !errors.Is(err, ErrBadBlock) || !errors.Is(err, tc.want) {
			t.Errorf("%s: CheckProposal = %v, want %v", name, err, tc.want)
		}
	}
	// The header must commit to the evidence the block carries.
	b, _ := DecodeBlock(nextBlock(t, n, []consensus.Evidence{good}))
	b.Header.EvidenceHash = state.Hash{}
	raw, _ := b.Encode()
	if err := n.CheckProposal(1, raw); !errors.Is(err, ErrBadBlock) || !strings.Contains(err.Error(), "evidence_hash") {
		t.Errorf("evidence without evidence_hash: %v", err)
	}
	b.Header.EvidenceHash, b.Evidence = EvidenceHash([]consensus.Evidence{good}), nil
	raw, _ = b.Encode()
	if err := n.CheckProposal(1, raw); !errors.Is(err, ErrBadBlock) {
		t.Errorf("evidence_hash without evidence: %v", err)
	}
	if err := n.checkBlockEvidence(1+MaxEvidenceAge+1, []consensus.Evidence{good}); !errors.Is(err, ErrEvidenceTooOld) {
		t.Errorf("evidence %d heights old: %v", MaxEvidenceAge+1, err)
	}
	if err := n.checkBlockEvidence(1+MaxEvidenceAge, []consensus.Evidence{good}); err != nil {
		t.Errorf("evidence %d heights old: %v", MaxEvidenceAge, err)
	}

	// Commit block 1 with the good evidence: it is indexed, and block 2 may not carry it again.
	value := nextBlock(t, n, []consensus.Evidence{good})
	if err := n.CheckProposal(1, value); err != nil {
		t.Fatalf("block with valid evidence: %v", err)
	}
	cert := consensus.Certificate{Height: 1, Digest: consensus.DigestOf(value)}
	if err := n.commit(consensus.Committed{Height: 1, Value: value, Certificate: cert}); err != nil {
		t.Fatal(err)
	}
	if ok, err := n.blocks.EvidenceCommitted(good.Slot()); !ok || err != nil {
		t.Fatalf("committed evidence not indexed: %v %v", ok, err)
	}
	list, err := n.blocks.Evidence(10, 1)
	if err != nil || len(list) != 1 || list[0].Included != 1 || list[0].Evidence.ID() != good.ID() {
		t.Fatalf("block store evidence: %+v %v", list, err)
	}
	// Another pair for the same slot is the same offence.
	for _, again := range []consensus.Evidence{good, ev(1, 0, "g3")} {
		if err := n.CheckProposal(2, nextBlock(t, n, []consensus.Evidence{again})); !errors.Is(err, ErrEvidenceKnown) {
			t.Errorf("evidence on chain proposed again: %v", err)
		}
	}
	if err := n.CheckProposal(2, nextBlock(t, n, []consensus.Evidence{ev(1, 1, "n")})); err != nil {
		t.Errorf("new evidence at height 2: %v", err)
	}
}

// What the core catches enters the pool and goes out on the consensus topic; the leader proposes
// pooled evidence that fits the block and is not on chain.
func TestCaughtEvidencePooledAndGossiped(t *testing.T) {
	n := soloNodeAtRest(t)
	e := doublePrepare(n.chainID, n.valKey, 0, 1, 0, "c")
	n.handleCaughtEvidence([]consensus.Evidence{e, e})
	if n.evidence.Size() != 1 {
		t.Fatalf("pool holds %d pieces, want 1", n.evidence.Size())
	}
	select {
	case raw := <-n.sendCh:
		got, err := consensus.DecodeEvidence(raw)
		if err != nil || got.ID() != e.ID() || !isEvidence(raw) {
			t.Fatalf("gossiped %x: %v", raw, err)
		}
	default:
		t.Fatal("caught evidence not gossiped")
	}
	if len(n.sendCh) != 0 {
		t.Fatal("the same evidence gossiped twice")
	}
	never := func(consensus.EvidenceSlot) bool { return false }
	if got := n.evidence.Pending(1, MaxBlockEvidence, never); len(got) != 1 {
		t.Fatalf("pending for block 1: %d", len(got))
	}
	if got := n.evidence.Pending(1, MaxBlockEvidence, func(consensus.EvidenceSlot) bool { return true }); len(got) != 0 {
		t.Fatalf("evidence on chain proposed: %d", len(got))
	}
}

func TestEvidencePoolBounds(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	p := NewEvidencePool()
	never := func(consensus.EvidenceSlot) bool { return false }
	var first consensus.Evidence
	for i := range maxPoolEvidence {
		// As many validators as it takes, each up to its own quota.
		e := doublePrepare("c", key, uint32(i/maxPoolEvidencePerValidator), 50, uint64(i), "p")
		if i == 0 {
			first = e
		}
		if err := p.add(e); err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
	}
	if err := p.add(doublePrepare("c", key, 1000, 50, maxPoolEvidence, "p")); !errors.Is(err, ErrEvidencePoolFull) {
		t.Fatalf("over the bound: %v", err)
	}
	if err := p.add(first); !errors.Is(err, ErrEvidenceKnown) {
		t.Fatalf("same evidence again: %v", err)
	}
	if err := p.add(doublePrepare("c", key, 0, 50, 0, "other pair")); !errors.Is(err, ErrEvidenceKnown) {
		t.Fatalf("another pair for the same slot: %v", err)
	}
	got := p.Pending(60, 3, never)
	if len(got) != 3 || got[0].ID() != first.ID() {
		t.Fatalf("pending: %d pieces, oldest first expected", len(got))
	}
	if len(p.Pending(49, MaxBlockEvidence, never)) != 0 || len(p.Pending(50+MaxEvidenceAge+1, MaxBlockEvidence, never)) != 0 {
		t.Fatal("evidence proposed for a block it does not fit")
	}
	p.Update(60, got)
	if p.Size() != maxPoolEvidence-3 || p.Has(first.ID()) {
		t.Fatalf("after a block with 3: %d pending", p.Size())
	}
	p.Update(50+MaxEvidenceAge, nil)
	if p.Size() != 0 || p.bytes != 0 {
		t.Fatalf("too old for the next block, yet %d pieces (%d bytes) kept", p.Size(), p.bytes)
	}
}

// Evidence handed to a node that never proposes (an observer) reaches the chain only through
// gossip: the validator receives it on the consensus topic, verifies it, pools it and proposes
// it, and both nodes then serve it from GET /v1/evidence.
func TestEvidenceGossipedToTheLeader(t *testing.T) {
	home, _ := soloHome(t, "memdb")
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.P2P.Permissioned = false // the observer is bound to no validator
	// Empty blocks a second apart: an observer hears each height's messages or, when it missed
	// them, the decision the validator rebroadcasts when idle (an observer never sends, so
	// nothing else would tell the validator it lags).
	cfg.Consensus.EmptyBlockMillis = 1000

	obsHome := t.TempDir()
	if _, err := InitHome(obsHome, "observer"); err != nil {
		t.Fatal(err)
	}
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Save(filepath.Join(obsHome, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	if err := SaveConfig(obsHome, cfg); err != nil {
		t.Fatal(err)
	}
	// The observer first, so that it is there from the first height on.
	obs, oc, _ := runNode(t, obsHome)
	if obs.self >= 0 {
		t.Fatal("the observer is a validator")
	}
	cfg.P2P.Bootstrap = obs.PeerAddrs()
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	val, vc, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Once the observer follows the chain, it is connected and subscribed.
	if _, err := oc.BlockWait(ctx, 1, 10*time.Second); err != nil {
		t.Fatalf("observer does not follow: %v", err)
	}
	e := doublePrepare(val.chainID, val.valKey, 0, obs.blocks.Height(), 0, "gossip")
	if err := obs.SubmitEvidence(&e); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*api.Client{vc, oc} {
		for {
			list, err := c.Evidence(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Evidence) == 1 && list.Evidence[0].ID == e.ID().String() {
				break
			}
			if len(list.Evidence) > 1 {
				t.Fatalf("%s lists %+v", c.Base(), list.Evidence)
			}
			next := val.executedHeight() + 1
			if _, err := c.BlockWait(ctx, next, 10*time.Second); err != nil {
				t.Fatalf("%s: evidence not committed by height %d: %v", c.Base(), next, err)
			}
		}
	}
}

// Evidence that somehow got into the pool unverified (a bug) costs the leader nothing: its own
// proposal is refused once, the evidence is dropped, and the chain goes on without it.
func TestBadPooledEvidenceDoesNotStallTheLeader(t *testing.T) {
	n, c, _ := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := doublePrepare(n.chainID, n.valKey, 0, n.blocks.Height()+1, 0, "bad")
	bad.First.Sig = append([]byte(nil), bad.First.Sig...)
	bad.First.Sig[1] ^= 1
	if err := n.evidence.add(bad); err != nil {
		t.Fatal(err)
	}
	target := n.executedHeight() + 3
	if _, err := c.BlockWait(ctx, target, 15*time.Second); err != nil {
		t.Fatalf("chain stalled: %v", err)
	}
	if n.evidence.Has(bad.ID()) {
		t.Fatal("the bad evidence is still pooled")
	}
	if list, err := c.Evidence(ctx); err != nil || len(list.Evidence) != 0 {
		t.Fatalf("evidence on chain: %+v %v", list, err)
	}
}

// One validator cannot fill the pool with evidence against itself: past its quota its evidence
// is refused while evidence against others still gets in.
func TestEvidencePoolQuotaPerValidator(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	p := NewEvidencePool()
	for v := range maxPoolEvidencePerValidator {
		if err := p.add(doublePrepare("c", key, 3, 9, uint64(v), "q")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.add(doublePrepare("c", key, 3, 9, 1<<40, "q")); !errors.Is(err, ErrEvidencePoolFull) {
		t.Fatalf("past the quota: %v", err)
	}
	if err := p.add(doublePrepare("c", key, 2, 9, 0, "q")); err != nil {
		t.Fatalf("another validator's evidence: %v", err)
	}
	p.Update(9, p.Pending(9, 1, func(consensus.EvidenceSlot) bool { return false }))
	if err := p.add(doublePrepare("c", key, 3, 9, 1<<40, "q")); err != nil {
		t.Fatalf("after one went on chain: %v", err)
	}
}
