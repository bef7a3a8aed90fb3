package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// benchRef is the wire form of a proposal by reference of n transfers' hashes.
func benchRef(b *testing.B, n int) []byte {
	blk := &Block{Header: Header{ChainID: "bench", Height: 7, Time: 1}, Txs: make([][]byte, n)}
	for i := range blk.Txs {
		blk.Txs[i] = make([]byte, 184)
		blk.Txs[i][0], blk.Txs[i][1] = byte(i), byte(i>>8)
	}
	blk.Header.TxsHash = TxsHash(blk.Txs)
	value, err := blk.Encode()
	if err != nil {
		b.Fatal(err)
	}
	m := &consensus.Message{Type: consensus.MsgPrePrepare, Height: 7, View: 0, From: 1,
		Digest: consensus.DigestOf(value), Value: value, Sig: make([]byte, 64)}
	data, err := encodeProposalRef(m, blk, nil)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkProposalRefReceive is what a validator does with each copy of a proposal by reference
// of 1,440 transactions that reaches it, before its signature is checked: the flood inspector's
// and rate limiter's peeks at its author and height, and one full decode.
func BenchmarkProposalRefReceive(b *testing.B) {
	const txs = 1440
	data := benchRef(b, txs)
	b.Run("peek", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, ok := peekConsensus(data); !ok {
				b.Fatal("no header")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*txs), "ns/tx")
	})
	b.Run("decode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := decodeProposalRef(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*txs), "ns/tx")
	})

}

// BenchmarkFollowerBlock is a follower's work per block of 1,440 transfers it holds in its
// mempool already (verified when gossiped): the leader's proposal by reference through the
// consensus topic's validator (decode, signature), its rebuild from the mempool, the proposal
// check (execution), and the commit of the certified block with its indexes. Signing and pooling
// the transactions and encoding the leader's message are outside the timing; heights this node
// leads are committed outside it too.
func BenchmarkFollowerBlock(b *testing.B) {
	const txsPerBlock = 1440
	c, n := validatorOfSyncChain(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.verifier.run(ctx) }()
	b.Cleanup(func() { cancel(); wg.Wait(); n.wg.Wait() })
	n.fetcher = &fakeFetchNet{}
	nonce := uint64(0)
	block := func() ([][]byte, []state.Hash) {
		txs := make([][]byte, txsPerBlock)
		hashes := make([]state.Hash, txsPerBlock)
		for j := range txs {
			txs[j] = transfer(b, c.gen.ChainID, c.payer, nonce, state.Address{byte(j % 64), 1}, 1) // 64 accounts, as the network benchmark
			hashes[j] = state.HashTx(txs[j])
			tx, err := state.DecodeTx(txs[j])
			if err != nil {
				b.Fatal(err)
			}
			if err := n.pool.Add(txs[j], hashes[j], tx); err != nil {
				b.Fatal(err)
			}
			nonce++
		}
		n.sigs.add(hashes...)
		return txs, hashes
	}
	handle := func() {
		for n.core.HasReady() {
			if err := n.handleReady(n.core.Ready()); err != nil {
				b.Fatal(err)
			}
			n.advanceCore()
		}
		if err := n.recordResults(); err != nil {
			b.Fatal(err)
		}
	}
	decide := func(value []byte) {
		h := n.blocks.Height() + 1
		cert := certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))
		if err := n.stepMessage(ptr(consensus.DecisionMessage(3, consensus.Committed{Height: h, Value: value, Certificate: cert}))); err != nil {
			b.Fatal(err)
		}
		handle()
		if n.blocks.Height() != h {
			b.Fatalf("height %d not committed", h)
		}
	}
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; {
		b.StopTimer()
		h := n.blocks.Height() + 1
		leader := n.leadersAt(h).leader
		txs, _ := block()
		value := nextValue(b, n, leader, txs)
		if leader == 0 {
			decide(value) // this node's own turn: not a follower's work
			continue
		}
		m := prePrepare(n.chainID, c.valKeys[leader], leader, h, 0, value)
		blk, err := DecodeBlock(value)
		if err != nil {
			b.Fatal(err)
		}
		data, err := encodeProposalRef(m, blk, nil)
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := processCPU()
		b.StartTimer()
		verdict, decoded := n.validateConsensus("relay", data)
		if verdict != p2p.Accept {
			b.Fatalf("proposal by reference not accepted: %v", verdict)
		}
		n.takeProposalRef(ctx, "relay", decoded.(*proposalRef))
		r := <-n.resolvedCh
		if r.err != nil {
			b.Fatal(r.err)
		}
		n.finishProposalRef(r)
		handle()
		decide(value)
		b.StopTimer()
		cpu += processCPU() - cpu0
		b.StartTimer()
		i++
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*txsPerBlock), "cpu-ns/tx")
}
