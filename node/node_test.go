package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// startSolo runs a one-validator node in-process on loopback ports chosen by the kernel, with an
// account funded at genesis.
func startSolo(t *testing.T) (*Node, *api.Client, ed25519.PrivateKey) {
	t.Helper()
	home, key := soloHome(t, "memdb")
	n, c, _ := runNode(t, home)
	return n, c, key
}

// soloHome makes the home of a one-validator chain on backend, with an account funded at genesis.
func soloHome(t *testing.T, backend string) (string, ed25519.PrivateKey) {
	t.Helper()
	home := t.TempDir()
	if _, err := InitHome(home, "solo"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Storage.Backend = backend
	cfg.Consensus.EmptyBlockMillis = 200
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	gen.Accounts = append(gen.Accounts, GenesisAccount{Address: state.AddressFromPubKey(key.Public().(ed25519.PublicKey)), Balance: 1000})
	if err := gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	return home, key
}

// runNode starts the node in home and returns it with a client; stop ends it (also at cleanup).
func runNode(t *testing.T, home string) (*Node, *api.Client, func()) {
	t.Helper()
	n, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-n.Started():
	case err := <-done:
		t.Fatalf("node failed to start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node did not start")
	}
	return n, api.NewClient(n.APIAddr()), stop
}

// A validator stopped and started again on the same data resumes its chain: same blocks, same
// balances, and it goes on committing.
func TestSoloNodeResumesAfterRestart(t *testing.T) {
	home, key := soloHome(t, "pebbledb")
	n, c, stop := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var to state.Address
	to[0] = 5
	raw := transfer(t, n.chainID, key, 0, to, 30)
	resp, err := c.SubmitTx(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.WaitTx(ctx, resp.Hash)
	if err != nil || ts.Status != api.TxCommitted {
		t.Fatalf("%+v %v", ts, err)
	}
	before, _ := c.Block(ctx, ts.Height)
	stop()

	n, c, _ = runNode(t, home)
	if got, _ := c.Block(ctx, ts.Height); got.Hash != before.Hash {
		t.Fatalf("block %d after restart: %s, before %s", ts.Height, got.Hash, before.Hash)
	}
	if acc, err := c.Account(ctx, to.String()); err != nil || acc.Balance != 30 {
		t.Fatalf("recipient after restart: %+v %v", acc, err)
	}
	target := n.blocks.Height() + 2
	if _, err := c.BlockWait(ctx, target, 15*time.Second); err != nil {
		t.Fatalf("no block %d after restart: %v", target, err)
	}
}

func TestSoloNodeCommitsTransfers(t *testing.T) {
	n, c, key := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var to state.Address
	to[0] = 7
	var hashes []string
	for nonce := uint64(0); nonce < 5; nonce++ {
		resp, err := c.SubmitTx(ctx, transfer(t, st.ChainID, key, nonce, to, 10))
		if err != nil {
			t.Fatalf("submit nonce %d: %v", nonce, err)
		}
		hashes = append(hashes, resp.Hash)
	}
	for _, h := range hashes {
		ts, err := c.WaitTx(ctx, h)
		if err != nil || ts.Status != api.TxCommitted {
			t.Fatalf("tx %s: %+v %v", h, ts, err)
		}
	}
	acc, err := c.Account(ctx, to.String())
	if err != nil || acc.Balance != 50 {
		t.Fatalf("recipient: %+v %v", acc, err)
	}
	acc, err = c.Account(ctx, from.String())
	if err != nil || acc.Balance != 950 || acc.Nonce != 5 {
		t.Fatalf("sender: %+v %v", acc, err)
	}

	// Every block carries a certificate that checks against the validator set.
	b, err := c.Block(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	value, cert, err := n.blocks.Block(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := consensus.VerifyCertificate(n.chainID, n.validatorsAt(1), cert); err != nil {
		t.Fatalf("certificate of block 1: %v", err)
	}
	if b.Hash != consensus.DigestOf(value).String() || len(b.Certificate.Votes) != 1 {
		t.Fatalf("block 1 as served: %+v", b)
	}

	// ?txs=none serves the same block with its results, and no transactions.
	last, err := c.WaitTx(ctx, hashes[len(hashes)-1])
	if err != nil {
		t.Fatal(err)
	}
	full, err := c.Block(ctx, last.Height)
	if err != nil {
		t.Fatal(err)
	}
	var lean api.BlockResponse
	if code := getJSON(t, n, fmt.Sprintf("/v1/blocks/%d?txs=none", last.Height), &lean); code != http.StatusOK {
		t.Fatalf("?txs=none: %d", code)
	}
	if len(full.Txs) == 0 || len(lean.Txs) != 0 || !slices.Equal(lean.Results, full.Results) || lean.Hash != full.Hash {
		t.Fatalf("block %d: %d txs and results %v in full, %d txs and results %v with txs=none", last.Height,
			len(full.Txs), full.Results, len(lean.Txs), lean.Results)
	}

	// A replayed transaction is refused and changes nothing.
	if _, err := c.SubmitTx(ctx, transfer(t, st.ChainID, key, 0, to, 10)); !isStatus(err, 400) {
		t.Fatalf("replay: want 400, got %v", err)
	}
}

func TestAPIRefusesBadInput(t *testing.T) {
	_, c, key := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var to state.Address
	to[0] = 9

	st, _ := c.Status(ctx)
	rawWrong := transfer(t, "other-chain", key, 0, to, 1)
	rawBadSig := transfer(t, st.ChainID, key, 0, to, 1)
	rawBadSig[len(rawBadSig)-1] ^= 1 // the signature is the encoding's last field
	rawRich := transfer(t, st.ChainID, key, 0, to, 1<<40)

	for name, tc := range map[string]struct {
		raw  []byte
		code string
	}{
		"garbage":            {[]byte{0xff, 0x00, 0x13}, api.CodeBadRequest},
		"wrong chain":        {rawWrong, api.CodeWrongChain},
		"bad signature":      {rawBadSig, api.CodeBadSignature},
		"insufficient funds": {rawRich, api.CodeBadRequest},
	} {
		if _, err := c.SubmitTx(ctx, tc.raw); !isStatus(err, 400) || api.ErrorCode(err) != tc.code {
			t.Errorf("%s: want 400 %s, got %v (code %q)", name, tc.code, err, api.ErrorCode(err))
		}
	}
	if _, err := c.Account(ctx, "guild123"); !isStatus(err, 400) || api.ErrorCode(err) != api.CodeBadRequest {
		t.Errorf("bad address: want 400 bad_request, got %v", err)
	}
	if _, err := c.Tx(ctx, hex.EncodeToString(make([]byte, 32))); !errors.Is(err, api.ErrNotFound) || api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("unknown tx: want 404 not_found, got %v", err)
	}
	if _, err := c.Block(ctx, 1<<40); !errors.Is(err, api.ErrNotFound) || api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("future block: want 404 not_found, got %v", err)
	}
	acc, err := c.Account(ctx, from.String())
	if err != nil || acc.Balance != 1000 || acc.Nonce != 0 {
		t.Errorf("refused transactions changed the account: %+v %v", acc, err)
	}
}

// transfer signs and encodes a transfer of amount from key's account to to.
func transfer(t testing.TB, chainID string, key ed25519.PrivateKey, nonce uint64, to state.Address, amount uint64) []byte {
	t.Helper()
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	tx, err := state.SignTx(state.TxBody{ChainID: chainID, From: from, Nonce: nonce,
		Transfer: &state.Transfer{To: to, Amount: amount}}, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func isStatus(err error, code int) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Status == code
}

func TestBatchSubmitGivesEachTransactionItsOwnResult(t *testing.T) {
	_, c, key := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var to state.Address
	to[0] = 3
	good0, good1 := transfer(t, st.ChainID, key, 0, to, 5), transfer(t, st.ChainID, key, 1, to, 5)
	forged := transfer(t, st.ChainID, key, 2, to, 5)
	forged[len(forged)-1] ^= 1
	resp, err := c.SubmitTxs(ctx, [][]byte{good1, {0x01, 0x02}, good0, forged, good0})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{api.TxPending, api.TxRejected, api.TxPending, api.TxRejected, api.TxPending}
	if len(resp.Results) == len(want) && (resp.Results[1].Code != api.CodeBadRequest || resp.Results[3].Code != api.CodeBadSignature) {
		t.Errorf("codes of the refused: %+v", resp.Results)
	}
	if len(resp.Results) != len(want) {
		t.Fatalf("results: %+v", resp.Results)
	}
	for i, r := range resp.Results {
		// The repeated good0 is either still pending (deduplicated) or, on a node as fast as a
		// lone validator, already committed, which makes its nonce used.
		if i == 4 && r.Status == api.TxRejected && strings.Contains(r.Error, "nonce") {
			continue
		}
		if r.Status != want[i] {
			t.Errorf("tx %d: status %q (%s), want %q", i, r.Status, r.Error, want[i])
		}
	}
	for _, i := range []int{0, 2} {
		if ts, err := c.WaitTx(ctx, resp.Results[i].Hash); err != nil || ts.Status != api.TxCommitted {
			t.Fatalf("tx %d: %+v %v", i, ts, err)
		}
	}
	if acc, err := c.Account(ctx, to.String()); err != nil || acc.Balance != 10 {
		t.Fatalf("recipient: %+v %v", acc, err)
	}
	if _, err := c.SubmitTxs(ctx, nil); !isStatus(err, 400) {
		t.Errorf("empty batch: want 400, got %v", err)
	}
}

func TestNonceFarAheadRefused(t *testing.T) {
	_, c, key := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, _ := c.Status(ctx)
	var to state.Address
	to[0] = 4
	if _, err := c.SubmitTx(ctx, transfer(t, st.ChainID, key, MaxNonceAhead+1, to, 1)); !isStatus(err, 400) ||
		api.ErrorCode(err) != api.CodeNonceAhead {
		t.Fatalf("nonce %d ahead: want 400 nonce_ahead, got %v", MaxNonceAhead+1, err)
	}
	// A nonce already committed is used.
	first := transfer(t, st.ChainID, key, 0, to, 1)
	resp, err := c.SubmitTx(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := c.WaitTx(ctx, resp.Hash); err != nil || ts.Status != api.TxCommitted {
		t.Fatalf("first transfer: %+v %v", ts, err)
	}
	if _, err := c.SubmitTx(ctx, transfer(t, st.ChainID, key, 0, to, 2)); !isStatus(err, 400) || api.ErrorCode(err) != api.CodeNonceUsed {
		t.Fatalf("used nonce: want 400 nonce_used, got %v", err)
	}
}

// A proposal stamped far in the future is not relayed or voted on; one on time is.
func TestProposalFromTheFutureIgnored(t *testing.T) {
	n, _, _ := startSolo(t)
	proposal := func(at time.Time) []byte {
		// A height near the node's: one far from it is ignored before the clock is looked at.
		h := n.snapshot.Load().Height + 1
		b := Block{Header: Header{ChainID: n.chainID, Height: h, Time: at.UnixMilli(), TxsHash: TxsHash(nil)}, Txs: [][]byte{}}
		value, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		m := consensus.Message{Type: consensus.MsgPrePrepare, Height: h, From: 0, Value: value, Digest: consensus.DigestOf(value)}
		consensus.Sign(n.chainID, n.valKey, &m)
		raw, err := consensus.EncodeMessage(&m)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if v, _ := n.validateConsensus("another-peer", proposal(time.Now().Add(time.Hour))); v != p2p.Ignore {
		t.Errorf("proposal an hour ahead: verdict %v, want Ignore", v)
	}
	if v, _ := n.validateConsensus("another-peer", proposal(time.Now())); !admits(v) {
		t.Errorf("proposal on time: verdict %v, want Accept", v)
	}
	if v, _ := n.validateConsensus("another-peer", []byte{0xa1, 0x01}); v != p2p.Reject {
		t.Errorf("garbage: verdict %v, want Reject", v)
	}
}

func TestPermissionedNodeNeedsPeerIDs(t *testing.T) {
	home := t.TempDir()
	if _, err := InitHome(home, "open"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.API.Listen, cfg.P2P.Listen, cfg.Storage.Backend = "127.0.0.1:0", []string{"/ip4/127.0.0.1/tcp/0"}, "memdb"
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	gen, _ := LoadGenesis(filepath.Join(home, GenesisFile))
	gen.Validators[0].PeerID = ""
	if err := gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	n, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "peer_id") {
		t.Fatalf("Run = %v, want a refusal naming peer_id", err)
	}
}

// A crash after a block is applied but before its results are recorded loses nothing: on start
// the node records them from what the state kept.
func TestResultsRecoveredAfterCrashBeforeRecording(t *testing.T) {
	home, key := soloHome(t, "pebbledb")
	cfg, _ := LoadConfig(home)
	cfg.Consensus.EmptyBlockMillis = 3_600_000 // no empty blocks: the transfer's block stays the last
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	n, c, stop := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.SubmitTx(ctx, transfer(t, n.chainID, key, 0, state.Address{6}, 1))
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := c.WaitTx(ctx, resp.Hash); err != nil || ts.Status != api.TxCommitted {
		t.Fatalf("%+v %v", ts, err)
	}
	stop()

	// Make the last applied block look as if the crash came before its results were written.
	db, err := kv.Open("pebbledb", filepath.Join(home, DataDir), "blocks")
	if err != nil {
		t.Fatal(err)
	}
	bs, _ := OpenBlockStore(db)
	last := bs.Height()
	results, _ := bs.Results(last)
	if len(results) != 1 || results[0].Hash.String() != resp.Hash {
		t.Fatalf("last block %d holds %v, want the transfer", last, results)
	}
	// Results and indexes go in one batch: a crash loses them all, and the mark stays behind.
	sender := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	b := db.NewBatch()
	b.Delete(heightKey('r', last))
	b.Delete(accountBlockKey(sender, last))
	b.Set(keyIndexMark, encodeIndexMark(last-1))
	for _, r := range results {
		b.Delete(txKey(r.Hash))
	}
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	db.Close()

	n2, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.closeStores()
	got, err := n2.blocks.Results(last)
	if err != nil || len(got) != len(results) {
		t.Fatalf("results of block %d after recovery: %v %v, want %d", last, got, err, len(results))
	}
	for _, r := range results {
		if _, err := n2.blocks.TxLocation(r.Hash); err != nil {
			t.Errorf("tx %s not indexed after recovery: %v", r.Hash, err)
		}
	}
	if list, err := n2.blocks.AccountTxs(sender, last, TxPos{}, 1); err != nil || len(list) != 1 || list[0] != (TxPos{Height: last}) {
		t.Errorf("sender's history after recovery: %v %v", list, err)
	}
	if at, ok := n2.blocks.IndexedHeight(); !ok || at != last {
		t.Errorf("indexes complete up to %d (%v) after recovery, want %d", at, ok, last)
	}
}

// GET /v1/status gives the node's full p2p addresses, and GET /v1/peers each connected peer with
// its role, latency and score: here a configured observer.
func TestPeersAndStatusShowP2P(t *testing.T) {
	home, _ := soloHome(t, "memdb")
	_, obsKey, _ := ed25519.GenerateKey(rand.Reader)
	obsID, err := p2p.PeerIDFromKey(obsKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.P2P.Listen = append(cfg.P2P.Listen, "/ip4/127.0.0.1/udp/0/quic-v1")
	cfg.P2P.Observers = []string{obsID}
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	n, c, _ := runNode(t, home)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tcp, quic bool
	for _, a := range st.P2PAddrs {
		if !strings.HasSuffix(a, "/p2p/"+st.PeerID) {
			t.Errorf("p2p address %q does not end in /p2p/%s", a, st.PeerID)
		}
		tcp = tcp || strings.Contains(a, "/tcp/")
		quic = quic || strings.Contains(a, "/quic-v1/")
	}
	if !tcp || !quic {
		t.Fatalf("p2p_addrs %v: want a TCP and a QUIC address", st.P2PAddrs)
	}

	noop := func(string, []byte) (p2p.Verdict, any) { return p2p.Ignore, nil }
	obs, err := p2p.New(ctx, p2p.Config{
		Key: obsKey, ChainID: n.chainID, Bootstrap: st.P2PAddrs, Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		ValidateTxs: noop, ValidateConsensus: noop,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		res, err := c.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Peers) == 1 && res.Peers[0].Score != nil && res.Peers[0].LatencyMs > 0 {
			p := res.Peers[0]
			if p.PeerID != obsID || p.Role != api.PeerObserver || len(p.Addrs) == 0 {
				t.Fatalf("peer %+v, want observer %s with addresses", p, obsID)
			}
			resp, err := http.Get("http://" + n.APIAddr() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{"\nguild_p2p_peers 1\n", "\nguild_p2p_score_disconnects_total 0\n",
				"\nguild_p2p_link_resets_total 0\n"} {
				if !strings.Contains(string(body), want) {
					t.Errorf("metrics lack %q", strings.TrimSpace(want))
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peers never showed the scored observer: %+v", res.Peers)
		}
	}
}

// The binary form of a batch (a CBOR array of byte strings) gives each transaction its result
// like the JSON form; a batch over MaxSubmitBatch or with an empty element is refused whole.
func TestBatchSubmitInCBOR(t *testing.T) {
	_, c, key := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var to state.Address
	to[0] = 4
	good0, good1 := transfer(t, st.ChainID, key, 0, to, 7), transfer(t, st.ChainID, key, 1, to, 7)
	post := func(v any) (int, api.SubmitTxsResponse, string) {
		t.Helper()
		body, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Base()+"/v1/txs/batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cbor")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out api.SubmitTxsResponse
		_ = json.Unmarshal(data, &out)
		return resp.StatusCode, out, string(data)
	}
	code, resp, body := post([][]byte{good1, {0x01, 0x02}, good0})
	if code != http.StatusOK || len(resp.Results) != 3 {
		t.Fatalf("status %d: %s", code, body)
	}
	for i, want := range []string{api.TxPending, api.TxRejected, api.TxPending} {
		if resp.Results[i].Status != want {
			t.Errorf("tx %d: %q (%s), want %q", i, resp.Results[i].Status, resp.Results[i].Error, want)
		}
	}
	if ts, err := c.WaitTx(ctx, resp.Results[0].Hash); err != nil || ts.Status != api.TxCommitted {
		t.Fatalf("tx 0: %+v %v", ts, err)
	}
	tooMany := make([][]byte, api.MaxSubmitBatch+1)
	for i := range tooMany {
		tooMany[i] = []byte{1}
	}
	for name, v := range map[string]any{"over the limit": tooMany, "an empty element": [][]byte{good0, {}}, "not an array": good0} {
		if code, _, body := post(v); code != http.StatusBadRequest || !strings.Contains(body, "bad_request") {
			t.Errorf("%s: status %d %s, want 400 bad_request", name, code, body)
		}
	}
}

// editConfig changes HOME's config.toml.
func editConfig(t *testing.T, home string, change func(*Config)) {
	t.Helper()
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	change(&cfg)
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
}
