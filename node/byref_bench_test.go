package node

import (
	"testing"

	"github.com/guild-ledger/guild/consensus"
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
