package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// The decoders a node runs on bytes from the network: blocks (in proposals and decisions), gossiped
// transaction batches, and consensus messages, each through the pubsub validator that sees them
// first. No input may panic, and a verdict is one of the three.

const fuzzChain = "fuzz-chain"

func fuzzKey(i byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{i + 1}, ed25519.SeedSize))
}

// fuzzNode is just enough of a Node for its gossip validators: chain, validators and caches.
func fuzzNode(tb testing.TB) *Node {
	n := &Node{chainID: fuzzChain, peerID: "self", self: -1, sigs: newSigCache(1 << 10), stopping: make(chan struct{})}
	// The transaction topic's validator hands its signatures to the node's verifier.
	n.verifier = newVerifier(fuzzChain, n.sigs, nil, n.stopping)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.verifier.run(ctx) }()
	tb.Cleanup(func() { cancel(); close(n.stopping); <-done })
	var ep epoch
	for i := range byte(4) {
		ep.Set.Validators = append(ep.Set.Validators,
			consensus.Validator{PubKey: fuzzKey(i).Public().(ed25519.PublicKey), Power: 1})
	}
	n.sched.Store(&schedule{epochs: []epoch{ep}})
	return n
}

func fuzzTx(tb testing.TB, nonce uint64) []byte {
	key := fuzzKey(9)
	tx, err := state.SignTx(state.TxBody{ChainID: fuzzChain, From: state.AddressFromPubKey(key.Public().(ed25519.PublicKey)),
		Nonce: nonce, Transfer: &state.Transfer{To: state.Address{1}, Amount: 1}}, key)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func fuzzBlock(tb testing.TB, txs [][]byte) []byte {
	b := Block{Header: Header{ChainID: fuzzChain, Height: 2, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
		TxsHash: TxsHash(txs)}, Txs: txs}
	raw, err := b.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

var cborSeeds = []string{"", "a0", "f6", "80", "81 40", "a2 01 a0 02 80", "bf ff", "9f ff", "5f ff", "c1 00", "a1 02 81 40"}

func addCBORSeeds(f *testing.F) {
	for _, s := range cborSeeds {
		b, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		f.Add(b)
	}
}

func checkVerdict(t *testing.T, v p2p.Verdict, decoded any) {
	t.Helper()
	switch v {
	case p2p.Accept, p2p.Deliver:
	case p2p.Reject, p2p.Ignore:
		if decoded != nil {
			t.Fatalf("verdict %v with a decoded value %#v", v, decoded)
		}
	default:
		t.Fatalf("unknown verdict %v", v)
	}
}

func FuzzDecodeBlock(f *testing.F) {
	for _, txs := range [][][]byte{nil, {fuzzTx(f, 1)}, {fuzzTx(f, 1), fuzzTx(f, 2)}} {
		raw := fuzzBlock(f, txs)
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	addCBORSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = blockTime(raw)
		b, err := DecodeBlock(raw)
		if err != nil {
			return
		}
		again, err := b.Encode()
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("decoded block re-encodes to %x (%v)", again, err)
		}
		if _, err := blockTime(raw); err != nil {
			t.Fatalf("a valid block's time does not decode: %v", err)
		}
	})
}

// FuzzGossipTxBatch: the transaction topic's validator (a CBOR array of encoded transactions).
func FuzzGossipTxBatch(f *testing.F) {
	for _, batch := range [][][]byte{{fuzzTx(f, 1)}, {fuzzTx(f, 1), fuzzTx(f, 2)}, {{0xa0}}} {
		raw, err := state.Marshal(batch)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)-1])
	}
	addCBORSeeds(f)
	n := fuzzNode(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, decoded := n.validateTxBatch("peer", data)
		checkVerdict(t, v, decoded)
		if v == p2p.Accept {
			txs, ok := decoded.([]decodedTx)
			if !ok || len(txs) == 0 {
				t.Fatalf("accepted batch decoded to %#v", decoded)
			}
			for _, d := range txs {
				if d.tx == nil || d.hash != state.HashTx(d.raw) || !n.sigs.Verified(d.hash) {
					t.Fatalf("accepted transaction %x not decoded and verified", d.raw)
				}
			}
		}
	})
}

// FuzzGossipConsensus: the consensus topic's validator (decode with limits, verify against the
// validator set, read a proposal's block time).
func FuzzGossipConsensus(f *testing.F) {
	value := fuzzBlock(f, [][]byte{fuzzTx(f, 1)})
	msgs := []consensus.Message{
		{Type: consensus.MsgPrePrepare, Height: 2, View: 0, From: 2, Value: value, Digest: consensus.DigestOf(value)},
		{Type: consensus.MsgPrepare, Height: 2, View: 0, From: 1, Digest: consensus.DigestOf(value)},
		{Type: consensus.MsgCommit, Height: 2, View: 0, From: 3, Digest: consensus.DigestOf(value)},
	}
	for _, m := range msgs {
		consensus.Sign(fuzzChain, fuzzKey(byte(m.From)), &m)
		raw, err := consensus.EncodeMessage(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	addCBORSeeds(f)
	n := fuzzNode(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, decoded := n.validateConsensus("peer", data)
		checkVerdict(t, v, decoded)
		if admits(v) {
			if _, ok := decoded.(*consensus.Message); !ok {
				t.Fatalf("accepted message decoded to %#v", decoded)
			}
		}
	})
}

// A node's own transaction batch, validated inside its PublishTxs, is built from transactions
// its admission verified and pooled already: the validator accepts it without decoding or
// verifying them again (it used to, a quarter of all the decoding a node did), while the same
// bytes from a peer are decoded and verified.
func TestValidateTxBatchTakesOwnWithoutDecoding(t *testing.T) {
	n := fuzzNode(t)
	raw := fuzzTx(t, 1)
	data := encodeTxBatch(nil, [][]byte{raw})
	if v, decoded := n.validateTxBatch(n.peerID, data); v != p2p.Accept {
		t.Fatalf("own batch: %v", v)
	} else if txs, ok := decoded.([]decodedTx); !ok || len(txs) != 0 {
		t.Fatalf("own batch decoded to %#v, want an empty batch", decoded)
	}
	if n.sigs.Verified(state.HashTx(raw)) {
		t.Fatal("own batch was verified again")
	}
	if v, decoded := n.validateTxBatch("peer", data); v != p2p.Accept {
		t.Fatalf("a peer's batch: %v", v)
	} else if txs, ok := decoded.([]decodedTx); !ok || len(txs) != 1 || !n.sigs.Verified(txs[0].hash) {
		t.Fatalf("a peer's batch decoded to %#v", decoded)
	}
}

// encodeTxBatch writes what the generic encoder writes, for every length of head.
func TestEncodeTxBatchMatchesGeneric(t *testing.T) {
	for _, sizes := range [][]int{{0}, {1}, {23, 24}, {255, 256}, {70000}, make([]int, 300)} {
		raws := make([][]byte, len(sizes))
		for i, s := range sizes {
			raws[i] = bytes.Repeat([]byte{byte(i)}, s)
		}
		want, err := state.Marshal(raws)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeTxBatch([]byte{9}, raws); !bytes.Equal(got[1:], want) || got[0] != 9 {
			t.Fatalf("sizes %v: %x, generic %x", sizes, got, want)
		}
	}
}
