package node

import (
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
)

// BenchmarkBlockCheckAndCommit measures a validator's work per block of 2,000 transfers whose
// signatures the mempool verified already: "commit" executes the block at commit (a block that
// arrives certified, or the work before proposals were executed), "check+commit" judges the
// proposal by executing it and commits that execution. The two should cost the same: a proposal
// is executed once.
func BenchmarkBlockCheckAndCommit(b *testing.B) {
	const txsPerBlock = 2000
	for _, check := range []bool{false, true} {
		name := "commit"
		if check {
			name = "check+commit"
		}
		b.Run(name, func(b *testing.B) {
			c, n := validatorOfSyncChain(b)
			signed := make([][][]byte, b.N)
			nonce := uint64(0)
			for i := range signed {
				signed[i] = make([][]byte, txsPerBlock)
				for j := range signed[i] {
					signed[i][j] = transfer(b, c.gen.ChainID, c.payer, nonce, state.Address{byte(j), byte(j >> 8), 1}, 1)
					n.sigs.add(state.HashTx(signed[i][j]))
					nonce++
				}
			}
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Built here: each block's header names the state after the last.
				b.StopTimer()
				value := nextValue(b, n, n.leadersAt(n.blocks.Height()+1).leader, signed[i])
				h := n.blocks.Height() + 1
				cert := certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))
				cpu0 := processCPU()
				b.StartTimer()
				if check {
					if err := n.CheckProposal(h, value); err != nil {
						b.Fatal(err)
					}
				}
				if err := n.commit(consensus.Committed{Height: h, Value: value, Certificate: cert}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += processCPU() - cpu0
				b.StartTimer()
			}
			b.StopTimer()
			// CPU time: the shared machines are loaded, which inflates wall time far more.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*txsPerBlock), "cpu-µs/tx")
		})
	}
}
