package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// TestEndToEnd builds guild, runs a 4-validator testnet of real processes on loopback, and judges
// it only by black-box invariants over the API: every node has the same block with a commit
// certificate at every height, every transaction is committed exactly once, balances agree on
// every node and match the transfers, and the supply is conserved. Then it runs the load
// generator briefly.
func TestEndToEnd(t *testing.T) {
	tn := startTestnet(t, 90*time.Second)
	ctx, dir, m, clients := tn.ctx, tn.dir, tn.m, tn.clients
	gen, err := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}

	// 200 transfers from the faucet and the four organizations to a mix of wallet and fresh
	// addresses. Each sender submits in nonce order, but transfer k goes to node k%4, so every
	// sender's consecutive nonces reach different nodes and meet only through gossip.
	var senders []sender
	for _, name := range m.WalletKeys() {
		key, addr, err := m.LoadWalletKey(name, testPassphrase)
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, sender{name: name, key: key, addr: addr})
	}
	recipients := make([]state.Address, 0, len(senders)+10)
	for _, s := range senders {
		recipients = append(recipients, s.addr)
	}
	var fresh []state.Address
	for range 10 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		fresh = append(fresh, state.AddressFromPubKey(pub))
	}
	recipients = append(recipients, fresh...)

	const numTxs = 200
	rng := mrand.New(mrand.NewPCG(1, 2))
	txs := make([]plannedTx, numTxs)
	for k := range txs {
		s := k % len(senders)
		to := recipients[rng.IntN(len(recipients))]
		for to == senders[s].addr {
			to = recipients[rng.IntN(len(recipients))]
		}
		txs[k] = plannedTx{sender: s, to: to, amount: 1 + rng.Uint64N(1000), node: k % len(m.Nodes)}
	}
	startNonce := make([]uint64, len(senders))
	for s := range senders {
		a, err := clients[0].Account(ctx, senders[s].addr.String())
		if err != nil {
			t.Fatal(err)
		}
		startNonce[s] = a.Nonce
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(senders))
	for s := range senders {
		wg.Go(func() {
			nonce := startNonce[s]
			for k := range txs {
				if txs[k].sender != s {
					continue
				}
				raw, hash, err := signTx(state.TxBody{ChainID: m.ChainID, From: senders[s].addr, Nonce: nonce,
					Transfer: &state.Transfer{To: txs[k].to, Amount: txs[k].amount}}, senders[s].key)
				if err != nil {
					errs <- err
					return
				}
				resp, err := clients[txs[k].node].SubmitTx(ctx, raw)
				if err != nil {
					errs <- fmt.Errorf("submitting transfer %d (%s nonce %d) to %s: %w", k, senders[s].name, nonce, m.Nodes[txs[k].node].Name, err)
					return
				}
				if resp.Hash != hash.String() {
					errs <- fmt.Errorf("transfer %d: node says hash %s, we computed %s", k, resp.Hash, hash)
					return
				}
				txs[k].hash = hash
				nonce++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Wait for every transfer to commit, asking the node it was submitted to.
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	var maxHeight uint64
	var mu sync.Mutex
	err = forEach(len(txs), 16, func(k int) error {
		st, err := clients[txs[k].node].WaitTx(waitCtx, txs[k].hash.String())
		if err != nil {
			return fmt.Errorf("transfer %d: %w", k, err)
		}
		if st.Status != api.TxCommitted || st.Error != "" {
			return fmt.Errorf("transfer %d: %s at height %d: %s", k, st.Status, st.Height, st.Error)
		}
		mu.Lock()
		maxHeight = max(maxHeight, st.Height)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Every node reaches the last height holding one of them.
	heights := waitHeights(t, ctx, clients, maxHeight)
	minHeight := heights[0]
	for _, h := range heights {
		minHeight = min(minHeight, h)
	}
	t.Logf("all %d transfers committed by height %d; nodes at heights %v", numTxs, maxHeight, heights)

	// The same chain everywhere: one block hash per height, each block carrying a certificate of a
	// quorum (2f+1 = 3 of 4), chained by prev_hash; and every transaction in it exactly once.
	gen, gerr := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if gerr != nil {
		t.Fatal(gerr)
	}
	vals := gen.ValidatorSet()
	seen := map[string]int{} // tx hash → times seen in the chain
	var prevHash string
	for h := uint64(1); h <= minHeight; h++ {
		var first *api.BlockResponse
		for i, c := range clients {
			b, err := c.Block(ctx, h)
			if err != nil {
				t.Fatalf("%s: block %d: %v", m.Nodes[i].Name, h, err)
			}
			if len(b.Certificate.Votes) < 3 || b.Certificate.Height != h {
				t.Errorf("%s: block %d has a certificate for height %d with %d votes, want >= 3", m.Nodes[i].Name, h, b.Certificate.Height, len(b.Certificate.Votes))
			}
			// Finality you can carry: the served certificate checks offline against genesis.
			if err := verifyServedCertificate(m.ChainID, vals, &b); err != nil {
				t.Errorf("%s: block %d: %v", m.Nodes[i].Name, h, err)
			}
			if first == nil {
				first = &b
				continue
			}
			if b.Hash != first.Hash {
				t.Fatalf("block %d: %s has hash %s, %s has %s", h, m.Nodes[0].Name, first.Hash, m.Nodes[i].Name, b.Hash)
			}
		}
		if h > 1 && first.Header.PrevHash != prevHash {
			t.Errorf("block %d: prev_hash %s, block %d has hash %s", h, first.Header.PrevHash, h-1, prevHash)
		}
		prevHash = first.Hash
		if len(first.Results) != len(first.Txs) {
			t.Errorf("block %d: %d results for %d transactions", h, len(first.Results), len(first.Txs))
		}
		for _, tx := range first.Txs {
			raw, err := hex.DecodeString(tx)
			if err != nil {
				t.Fatalf("block %d: transaction not hex: %v", h, err)
			}
			seen[state.HashTx(raw).String()]++
		}
	}
	for k, tx := range txs {
		if n := seen[tx.hash.String()]; n != 1 {
			t.Errorf("transfer %d (%s) appears %d times in the chain, want once", k, tx.hash, n)
		}
	}
	for hash, n := range seen {
		if n != 1 {
			t.Errorf("transaction %s appears %d times in the chain", hash, n)
		}
	}

	// Balances agree everywhere, match the transfers, and conserve the supply.
	want := map[state.Address]uint64{}
	var supply uint64
	for _, a := range gen.Accounts {
		want[a.Address] = a.Balance
		supply += a.Balance
	}
	for _, addr := range fresh {
		want[addr] = 0
	}
	for _, tx := range txs {
		want[senders[tx.sender].addr] -= tx.amount
		want[tx.to] += tx.amount
	}
	for i, c := range clients {
		var total uint64
		for addr, balance := range want {
			a, err := c.Account(ctx, addr.String())
			if err != nil {
				t.Fatalf("%s: account %s: %v", m.Nodes[i].Name, addr, err)
			}
			if a.Balance != balance {
				t.Errorf("%s: %s has %d, want %d", m.Nodes[i].Name, addr, a.Balance, balance)
			}
			if total+a.Balance < total {
				t.Fatalf("%s: balances overflow", m.Nodes[i].Name)
			}
			total += a.Balance
		}
		if total != supply {
			t.Errorf("%s: supply %d, genesis had %d", m.Nodes[i].Name, total, supply)
		}
		sentBy := make([]uint64, len(senders))
		for _, tx := range txs {
			sentBy[tx.sender]++
		}
		for s := range senders {
			a, err := c.Account(ctx, senders[s].addr.String())
			if err != nil {
				t.Fatal(err)
			}
			if a.Nonce != startNonce[s]+sentBy[s] {
				t.Errorf("%s: %s nonce %d, want %d", m.Nodes[i].Name, senders[s].name, a.Nonce, startNonce[s]+sentBy[s])
			}
		}
	}
	if t.Failed() {
		return
	}

	// The load generator, briefly, at a modest rate.
	loadCtx, loadCancel := context.WithTimeout(ctx, 40*time.Second)
	defer loadCancel()
	r, err := RunLoad(loadCtx, LoadOptions{
		Dir: dir, Passphrase: testPassphrase, Rate: 300, Duration: 3 * time.Second,
		Accounts: 16, Stragglers: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: submitted %d, accepted %d, rejected %d, finalized %d in %d blocks, %.0f tx/s, latency p50 %s p99 %s",
		r.Submitted, r.Accepted, r.Rejected, r.Finalized, r.Blocks, r.FinalizedRate, r.Latency.P50, r.Latency.P99)
	if r.Finalized == 0 {
		t.Errorf("load: nothing finalized: %+v", r)
	}
	if r.Rejected != 0 {
		t.Errorf("load: %d transfers rejected, first: %s", r.Rejected, r.FirstRejection)
	}
}

type sender struct {
	name string
	key  ed25519.PrivateKey
	addr state.Address
}

type plannedTx struct {
	sender int
	to     state.Address
	amount uint64
	node   int
	hash   state.Hash
}

// waitHeights waits until every node has committed height at least h, and returns their heights.
// liveTestnet is a 4-validator testnet of real guild processes in a temporary directory.
type liveTestnet struct {
	ctx     context.Context // bounds the whole test
	dir     string
	bin     string // the guild binary the nodes run
	m       *Manifest
	clients []*api.Client
}

// startTestnet starts one for an end-to-end test: skipped with -short, stopped at cleanup (with
// the nodes' last log lines if the test failed).
func startTestnet(t *testing.T, limit time.Duration) *liveTestnet {
	t.Helper()
	return startTestnetWith(t, limit, nil)
}

// startTestnetWith is startTestnet with each node's config changed by configure before start.
func startTestnetWith(t *testing.T, limit time.Duration, configure func(*node.Config)) *liveTestnet {
	t.Helper()
	if testing.Short() {
		t.Skip("builds guild and runs a 4-node testnet; skipped with -short")
	}
	bin := buildGuild(t)
	dir := t.TempDir()
	t.Cleanup(func() {
		if t.Failed() {
			for i := 1; i <= 4; i++ {
				home := filepath.Join(dir, NodeName(i))
				t.Logf("last lines of %s/%s:\n%s", home, LogFile, logTail(home, 30))
			}
		}
	})
	t.Cleanup(func() {
		if _, err := Down(dir); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	upCtx, upCancel := context.WithTimeout(ctx, 30*time.Second)
	defer upCancel()
	create := CreateOptions{Dir: dir, Validators: 4, Backend: "pebbledb", Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}
	if configure != nil {
		m, err := Create(create)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range m.Nodes {
			cfg, err := node.LoadConfig(n.Home)
			if err != nil {
				t.Fatal(err)
			}
			configure(&cfg)
			if err := node.SaveConfig(n.Home, cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	m, err := Up(upCtx, dir, UpOptions{Create: create, Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*api.Client, len(m.Nodes))
	for i, n := range m.Nodes {
		clients[i] = api.NewClient(n.API)
	}
	return &liveTestnet{ctx: ctx, dir: dir, bin: bin, m: m, clients: clients}
}

func waitHeights(t *testing.T, ctx context.Context, clients []*api.Client, h uint64) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	heights := make([]uint64, len(clients))
	for {
		low := uint64(math.MaxUint64)
		for i, c := range clients {
			st, err := c.Status(ctx)
			if err == nil {
				heights[i] = st.Height
			}
			low = min(low, heights[i])
		}
		if low >= h {
			return heights
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nodes at heights %v, want all >= %d: %v", heights, h, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ldflagsEnv, when set, is passed to go build as -ldflags: for experiments that switch off a
// mechanism to show what a test guards against (see TestTourNoStall).
const ldflagsEnv = "GUILD_TEST_LDFLAGS"

// buildGuild builds ./cmd/guild from the module root, once per test binary run.
func buildGuild(t *testing.T) string {
	t.Helper()
	bin, err := buildCached("")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Binaries are built once per run, by build tags, into one directory that TestMain removes:
// every real-process test used to link its own (seconds each on two busy cores).
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*builtBinary
}

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

// buildCached builds ./cmd/guild with tags (none: "") the first time it is asked for, and
// returns the same binary afterwards. Safe for concurrent use.
func buildCached(tags string) (string, error) {
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*builtBinary{}
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "guild-test-bin-")
		if err != nil {
			builds.mu.Unlock()
			return "", err
		}
		builds.dir = dir
	}
	b := builds.bins[tags]
	if b == nil {
		b = &builtBinary{}
		builds.bins[tags] = b
	}
	dir := builds.dir
	builds.mu.Unlock()
	b.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			b.err = err
			return
		}
		name, args := "guild", []string{"build"}
		if tags != "" {
			name += "-" + tags
			args = append(args, "-tags", tags)
		}
		b.path = filepath.Join(dir, name)
		cmd := exec.Command("go", append(args, "-o", b.path, "-ldflags", os.Getenv(ldflagsEnv), "./cmd/guild")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build -tags %q ./cmd/guild: %v\n%s", tags, err, out)
		}
	})
	return b.path, b.err
}

// removeBuilds deletes the binaries built for this run.
func removeBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
}

// moduleRoot is the nearest directory at or above the working directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// verifyServedCertificate rebuilds a block's certificate from the API's JSON and checks it with
// consensus.VerifyCertificate, and that it certifies the block hash the node served.
func verifyServedCertificate(chainID string, vals consensus.ValidatorSet, b *api.BlockResponse) error {
	digest, err := hex.DecodeString(b.Certificate.Digest)
	if err != nil || len(digest) != len(consensus.Digest{}) {
		return fmt.Errorf("certificate digest %q is not 32 bytes of hex", b.Certificate.Digest)
	}
	if b.Certificate.Digest != b.Hash {
		return fmt.Errorf("certificate is for %s, block hash is %s", b.Certificate.Digest, b.Hash)
	}
	cert := consensus.Certificate{Height: b.Certificate.Height, View: b.Certificate.View}
	copy(cert.Digest[:], digest)
	for _, v := range b.Certificate.Votes {
		sig, err := hex.DecodeString(v.Sig)
		if err != nil {
			return fmt.Errorf("vote of validator %d: %w", v.Validator, err)
		}
		cert.Votes = append(cert.Votes, consensus.Vote{Validator: v.Validator, Sig: sig})
	}
	return consensus.VerifyCertificate(chainID, vals, &cert)
}
