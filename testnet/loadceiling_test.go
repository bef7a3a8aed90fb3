package testnet

import (
	"io"
	"testing"
	"time"
)

// BenchmarkLoadGeneratorCeiling measures what the load generator offers when nothing holds it
// back: one fake node (fakenode_test.go, another process: it decodes each CBOR batch and answers
// at once, verifying nothing) and a target far above what a testnet takes. Issue #10 wants one
// process to offer ≥ 30,000 tx/s, so that the generator never limits a measurement. Reported:
// offered (submitted per second of the window) and the releases dropped because every worker
// was busy (behind). Run it alone:
//
//	go test -run '^$' -bench LoadGeneratorCeiling -benchtime 1x ./testnet/
func BenchmarkLoadGeneratorCeiling(b *testing.B) {
	dir, ctx := upFakeNode(b, fakeServe)
	const rate, window = 60000, 5 * time.Second
	b.ResetTimer()
	for range b.N {
		r, err := RunLoad(ctx, LoadOptions{Dir: dir, Passphrase: testPassphrase, Rate: rate, Duration: window,
			Accounts: 256, Stragglers: 10 * time.Second, Progress: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		if r.Rejected != 0 || r.Errors != 0 {
			b.Fatalf("the fake node refused %d and failed %d of %d", r.Rejected, r.Errors, r.Submitted)
		}
		b.ReportMetric(r.SubmitRate, "offered_tx/s")
		b.ReportMetric(float64(r.Behind)/window.Seconds(), "behind_tx/s")
	}
}
