package node

import (
	"testing"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
)

// BenchmarkPrivateWorkerBlock is what the private-payload worker does with each committed block
// of 1,440 transfers (no private operation among them): every validator follows every block.
func BenchmarkPrivateWorkerBlock(b *testing.B) {
	const txsPerBlock = 1440
	c, n := validatorOfSyncChain(b)
	txs := make([][]byte, txsPerBlock)
	for j := range txs {
		txs[j] = transfer(b, c.gen.ChainID, c.payer, uint64(j), state.Address{byte(j % 64), 1}, 1)
		n.sigs.add(state.HashTx(txs[j]))
	}
	value := nextValue(b, n, n.leadersAt(n.blocks.Height()+1).leader, txs)
	h := n.blocks.Height() + 1
	cert := certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))
	if err := n.commit(consensus.Committed{Height: h, Value: value, Certificate: cert}); err != nil {
		b.Fatal(err)
	}
	if err := n.recordResults(); err != nil {
		b.Fatal(err)
	}
	w := &privateWorker{n: n, log: n.log, tasks: map[state.Hash]*privateTask{}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.block(h); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*txsPerBlock), "ns/tx")
}
