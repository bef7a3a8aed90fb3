package testnet

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
)

// Evidence that org2's validator signed two different prepares for one slot, submitted to one
// node of a real 4-process testnet, is gossiped, put in a block by a leader, and served the same
// by every node; a forged copy is refused by every node.
func TestEvidenceOnChainEndToEnd(t *testing.T) {
	tn := startTestnet(t, 90*time.Second)
	ctx, m, clients := tn.ctx, tn.m, tn.clients
	waitHeights(t, ctx, clients, 2)
	gen, err := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	// org2's key, misused as a Byzantine org2 would.
	key, err := node.LoadKeyFile(filepath.Join(m.Nodes[1].Home, node.ValidatorKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	vals := gen.ValidatorSet()
	idx := -1
	for i, v := range vals.Validators {
		if v.PubKey.Equal(key.Public().(ed25519.PublicKey)) {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatal("org2's validator key is not in genesis")
	}
	st, err := clients[0].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := consensus.Message{Type: consensus.MsgPrepare, Height: st.Height, From: uint32(idx), Digest: consensus.DigestOf([]byte("one"))}
	b := a
	b.Digest = consensus.DigestOf([]byte("two"))
	consensus.Sign(gen.ChainID, key, &a)
	consensus.Sign(gen.ChainID, key, &b)
	ev := consensus.NewEvidence(a, b)
	raw, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	forged := ev
	forged.Second.Sig = append([]byte(nil), ev.Second.Sig...)
	forged.Second.Sig[0] ^= 1
	rawForged, _ := forged.Encode()
	for i, c := range clients {
		var ae *api.Error
		if _, err := c.SubmitEvidence(ctx, rawForged); !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("node%d took forged evidence: %v", i+1, err)
		}
	}
	if resp, err := clients[2].SubmitEvidence(ctx, raw); err != nil || resp.Status != api.EvidencePending {
		t.Fatalf("evidence refused: %+v %v", resp, err)
	}

	var included uint64
	var hash string
	for i, c := range clients {
		got := waitEvidence(t, c, ev.ID().String())
		if got.Validator != gen.Validators[idx].Name || got.ValidatorIndex != uint32(idx) || got.Height != st.Height ||
			got.Type != "prepare" || got.Digests != [2]string{ev.First.Digest.String(), ev.Second.Digest.String()} {
			t.Fatalf("node%d lists %+v", i+1, got)
		}
		blk, err := c.Block(ctx, got.Included)
		if err != nil {
			t.Fatal(err)
		}
		if len(blk.Evidence) != 1 || blk.Evidence[0] != got {
			t.Fatalf("node%d: block %d carries %+v", i+1, got.Included, blk.Evidence)
		}
		if i == 0 {
			included, hash = got.Included, blk.Hash
		} else if got.Included != included || blk.Hash != hash {
			t.Fatalf("node%d: evidence in block %d (%s), node1 has it in block %d (%s)", i+1, got.Included, blk.Hash, included, hash)
		}
	}
	t.Logf("evidence against %s submitted to node3 at height %d, on chain in block %d on every node", gen.Validators[idx].Name, st.Height, included)
}

// waitEvidence waits, within the test's deadline, until c lists the evidence with this ID.
func waitEvidence(t *testing.T, c *api.Client, id string) api.EvidenceJSON {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		list, err := c.Evidence(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Evidence {
			if e.ID == id {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not list evidence %s after 20s: %+v", c.Base(), id, list.Evidence)
		}
		// Each block is a chance for it to be committed: wait for the next one.
		st, err := c.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.BlockWait(t.Context(), st.Height+1, time.Until(deadline))
	}
}
