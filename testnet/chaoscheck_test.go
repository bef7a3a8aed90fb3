package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// The invariant checker against fake node APIs (httptest servers) serving crafted chains: a
// healthy one passes, and each crafted violation is caught by its invariant.

const fakeChainID = "chaos-test"

// craftedChain is a chain of blocks with real commit certificates from four validators, and the
// balances its transfers leave.
type craftedChain struct {
	keys     []ed25519.PrivateKey
	gen      *node.Genesis
	blocks   []*api.BlockResponse
	balances map[state.Address]uint64
	txAt     map[string]uint64
	senders  []ed25519.PrivateKey
}

func newCraftedChain(t *testing.T, heights int) *craftedChain {
	t.Helper()
	c := &craftedChain{gen: &node.Genesis{ChainID: fakeChainID, GenesisTime: time.Unix(1_700_000_000, 0)},
		balances: map[state.Address]uint64{}, txAt: map[string]uint64{}}
	for i := range 4 {
		pub, key, _ := ed25519.GenerateKey(nil)
		c.keys = append(c.keys, key)
		c.gen.Validators = append(c.gen.Validators, node.GenesisValidator{Name: "org" + strconv.Itoa(i+1),
			PubKey: hex.EncodeToString(pub), Power: 1})
	}
	for range 3 {
		pub, key, _ := ed25519.GenerateKey(nil)
		c.senders = append(c.senders, key)
		addr := state.AddressFromPubKey(pub)
		c.gen.Accounts = append(c.gen.Accounts, node.GenesisAccount{Address: addr, Balance: 1_000_000})
		c.balances[addr] = 1_000_000
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	fresh := state.AddressFromPubKey(pub) // funded only by transfers
	nonces := make([]uint64, len(c.senders))
	for h := 1; h <= heights; h++ {
		var txs [][]byte
		for s, key := range c.senders {
			from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
			to := fresh
			if h%2 == 0 {
				to = state.AddressFromPubKey(c.senders[(s+1)%len(c.senders)].Public().(ed25519.PublicKey))
			}
			raw, hash, err := signTx(state.TxBody{ChainID: fakeChainID, From: from, Nonce: nonces[s],
				Transfer: &state.Transfer{To: to, Amount: uint64(10 + h)}}, key)
			if err != nil {
				t.Fatal(err)
			}
			nonces[s]++
			txs = append(txs, raw)
			c.balances[from] -= uint64(10 + h)
			c.balances[to] += uint64(10 + h)
			c.txAt[hash.String()] = uint64(h)
		}
		c.blocks = append(c.blocks, c.seal(t, uint64(h), txs, 0))
	}
	return c
}

// seal makes the block at height h on top of the chain so far, certified by every validator.
func (c *craftedChain) seal(t *testing.T, h uint64, txs [][]byte, timeShift int64) *api.BlockResponse {
	t.Helper()
	if txs == nil {
		txs = [][]byte{} // as a node proposes an empty block
	}
	var prev state.Hash
	if h > 1 {
		p, err := state.ParseHash(c.blocks[h-2].Hash)
		if err != nil {
			t.Fatal(err)
		}
		prev = p
	}
	blk := node.Block{Header: node.Header{ChainID: fakeChainID, Height: h, Time: 1_700_000_000_000 + int64(h)*500 + timeShift,
		PrevHash: prev, TxsHash: node.TxsHash(txs), Proposer: uint32(h % 4), Leader: uint32(h % 4)}, Txs: txs}
	if h%3 == 0 { // a leader passed over: every header field the API shows must rebuild the hash
		blk.Header.Leader = uint32((h + 1) % 4)
		blk.Header.Skips = []node.LeaderSkip{{Validator: uint32((h + 1) % 4), Until: blk.Header.Time + 4000, Misses: 1}}
		blk.Header.ReceiptsRoot = state.Hash{byte(h), 1}
	}
	value, err := blk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d := consensus.DigestOf(value)
	resp := &api.BlockResponse{Height: h, Hash: d.String(),
		Header: api.HeaderJSON{ChainID: fakeChainID, Height: h, Time: time.UnixMilli(blk.Header.Time).UTC().Format(time.RFC3339Nano),
			PrevHash: prev.String(), StateRoot: blk.Header.StateRoot.String(), TxsHash: blk.Header.TxsHash.String(), Proposer: blk.Header.Proposer,
			Leader: blk.Header.Leader},
		Certificate: api.CertificateJSON{Height: h, Digest: d.String()}}
	if blk.Header.ReceiptsRoot != (state.Hash{}) {
		resp.Header.ReceiptsRoot = blk.Header.ReceiptsRoot.String()
	}
	for _, sk := range blk.Header.Skips {
		resp.Header.LeaderSkips = append(resp.Header.LeaderSkips, api.LeaderSkipJSON{Validator: sk.Validator,
			Until: time.UnixMilli(sk.Until).UTC().Format(time.RFC3339Nano), Misses: sk.Misses})
	}
	for _, tx := range txs {
		resp.Txs = append(resp.Txs, hex.EncodeToString(tx))
		resp.Results = append(resp.Results, api.TxResultJSON{Hash: state.HashTx(tx).String()})
	}
	for i, key := range c.keys[:3] { // 3 of 4: a quorum
		m := consensus.Message{Type: consensus.MsgCommit, Height: h, From: uint32(i), Digest: d}
		consensus.Sign(fakeChainID, key, &m)
		resp.Certificate.Votes = append(resp.Certificate.Votes, api.VoteJSON{Validator: uint32(i), Sig: hex.EncodeToString(m.Sig)})
	}
	return resp
}

// fakeAPI is one node serving a chain; the fields are what a test changes to make it lie.
type fakeAPI struct {
	blocks   []*api.BlockResponse
	balances map[state.Address]uint64
	txAt     map[string]uint64
	failed   map[string]bool
}

func (c *craftedChain) api() *fakeAPI {
	f := &fakeAPI{blocks: append([]*api.BlockResponse(nil), c.blocks...), balances: map[state.Address]uint64{}, txAt: map[string]uint64{}}
	for a, b := range c.balances {
		f.balances[a] = b
	}
	for h, at := range c.txAt {
		f.txAt[h] = at
	}
	return f
}

func (f *fakeAPI) serve(t *testing.T) string {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, api.StatusResponse{ChainID: fakeChainID, Height: uint64(len(f.blocks))})
	})
	mux.HandleFunc("GET /v1/blocks/{h}", func(w http.ResponseWriter, r *http.Request) {
		h, _ := strconv.Atoi(r.PathValue("h"))
		if h < 1 || h > len(f.blocks) {
			reply(w, 404, api.ErrorResponse{Error: "no such block"})
			return
		}
		reply(w, 200, f.blocks[h-1])
	})
	mux.HandleFunc("GET /v1/accounts/{a}", func(w http.ResponseWriter, r *http.Request) {
		a, err := state.ParseAddress(r.PathValue("a"))
		if err != nil {
			reply(w, 400, api.ErrorResponse{Error: err.Error()})
			return
		}
		reply(w, 200, api.AccountResponse{Address: a.String(), Balance: f.balances[a]})
	})
	mux.HandleFunc("GET /v1/txs/{hash}", func(w http.ResponseWriter, r *http.Request) {
		h := r.PathValue("hash")
		if at, ok := f.txAt[h]; ok {
			status := api.TxCommitted
			if f.failed[h] {
				status = api.TxRejected // in its block, but its execution failed
			}
			reply(w, 200, api.TxStatus{Hash: h, Status: status, Height: at})
			return
		}
		reply(w, 200, api.TxStatus{Hash: h, Status: api.TxUnknown})
	})
	mux.HandleFunc("GET /v1/validators", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, api.ValidatorsResponse{NextHeight: uint64(len(f.blocks) + 1), Current: api.ValidatorSetJSON{Height: 1}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// ackedAll is every transaction of the chain, as a load generator following it would have seen.
func (c *craftedChain) ackedAll(t *testing.T) map[state.Hash]uint64 {
	out := map[state.Hash]uint64{}
	for h, at := range c.txAt {
		th, err := state.ParseHash(h)
		if err != nil {
			t.Fatal(err)
		}
		out[th] = at
	}
	return out
}

func runCheck(t *testing.T, c *craftedChain, apis []*fakeAPI, acked map[state.Hash]uint64) *CheckReport {
	t.Helper()
	var urls []string
	for _, a := range apis {
		urls = append(urls, a.serve(t))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := CheckInvariants(ctx, CheckOptions{APIs: urls, Genesis: c.gen, Acked: acked, Settle: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckInvariantsHealthyChain(t *testing.T) {
	c := newCraftedChain(t, 8)
	// One transaction failed in its block (a wrong nonce, say): the API calls it rejected, at
	// its height, and it is still no violation.
	b := *c.blocks[2]
	b.Results = append([]api.TxResultJSON(nil), b.Results...)
	b.Results[0].Error = "state: wrong nonce"
	c.blocks[2] = &b
	apis := []*fakeAPI{c.api(), c.api(), c.api(), c.api()}
	for _, a := range apis {
		a.failed = map[string]bool{b.Results[0].Hash: true}
	}
	r := runCheck(t, c, apis, c.ackedAll(t))
	if !r.OK() {
		var sb strings.Builder
		r.WriteText(&sb)
		t.Fatalf("healthy chain fails:\n%s", sb.String())
	}
	if r.Checked != 8 {
		t.Fatalf("checked up to %d, want 8", r.Checked)
	}
	for _, name := range []string{InvSameBlocks, InvCertificates, InvHeaders} {
		if got := r.Invariant(name).Checked; got != 32 {
			t.Errorf("%s: %d checked, want 32 (8 heights on 4 nodes)", name, got)
		}
	}
	if got := r.Invariant(InvAckedKept).Checked; got != 24 {
		t.Errorf("acked: %d checked, want 24", got)
	}
	if r.LongestGap != 500*time.Millisecond {
		t.Errorf("longest gap %s, want 500ms", r.LongestGap)
	}
}

// TestCheckInvariantsCatchesEachViolation crafts one lie per case; the named invariant, and
// that one alone where the lie allows, must report it.
func TestCheckInvariantsCatchesEachViolation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inv   string
		craft func(t *testing.T, c *craftedChain, apis []*fakeAPI, acked map[state.Hash]uint64)
	}{
		{"fork at height 5", InvSameBlocks, func(t *testing.T, c *craftedChain, apis []*fakeAPI, _ map[state.Hash]uint64) {
			// Node 3 holds another block at height 5, properly certified: only comparing nodes finds it.
			other := *c
			other.blocks = c.blocks[:4]
			apis[2].blocks[4] = other.seal(t, 5, nil, 1)
		}},
		{"forged certificate", InvCertificates, func(t *testing.T, c *craftedChain, apis []*fakeAPI, _ map[state.Hash]uint64) {
			b := *apis[1].blocks[3]
			b.Certificate.Votes = append([]api.VoteJSON(nil), b.Certificate.Votes...)
			sig, _ := hex.DecodeString(b.Certificate.Votes[1].Sig)
			sig[0] ^= 1
			b.Certificate.Votes[1].Sig = hex.EncodeToString(sig)
			apis[1].blocks[3] = &b
		}},
		{"certificate short of a quorum", InvCertificates, func(t *testing.T, c *craftedChain, apis []*fakeAPI, _ map[state.Hash]uint64) {
			for _, a := range apis {
				b := *a.blocks[2]
				b.Certificate.Votes = b.Certificate.Votes[:2]
				a.blocks[2] = &b
			}
		}},
		{"broken parent link", InvHeaders, func(t *testing.T, c *craftedChain, apis []*fakeAPI, _ map[state.Hash]uint64) {
			// Node 1's block 7, sealed and certified, names block 5 as its parent.
			real6 := c.blocks[5]
			c.blocks[5] = c.blocks[4]
			apis[0].blocks[6] = c.seal(t, 7, nil, 0)
			c.blocks[5] = real6
		}},
		{"transaction committed twice", InvNoDuplicateTxs, func(t *testing.T, c *craftedChain, apis []*fakeAPI, acked map[state.Hash]uint64) {
			// Height 7 repeats a transaction of height 2, sealed and certified like any block,
			// identically on every node.
			raw, _ := hex.DecodeString(c.blocks[1].Txs[0])
			c.blocks = c.blocks[:6]
			b7 := c.seal(t, 7, [][]byte{raw}, 0)
			c.blocks = append(c.blocks, b7)
			b8 := c.seal(t, 8, nil, 0)
			for _, a := range apis {
				a.blocks[6], a.blocks[7] = b7, b8
			}
			for th, h := range acked {
				if h >= 7 {
					delete(acked, th) // the load never saw the replaced blocks
				}
			}
		}},
		{"supply changed", InvSupply, func(t *testing.T, c *craftedChain, apis []*fakeAPI, _ map[state.Hash]uint64) {
			a := state.AddressFromPubKey(c.senders[0].Public().(ed25519.PublicKey))
			apis[3].balances[a] += 5 // money from nowhere on node 4
		}},
		{"acknowledged transaction lost", InvAckedKept, func(t *testing.T, c *craftedChain, apis []*fakeAPI, acked map[state.Hash]uint64) {
			// The load saw a transaction committed at height 3 that no block holds (a node
			// acknowledged a block it then lost).
			_, key, _ := ed25519.GenerateKey(nil)
			_, th, _ := signTx(state.TxBody{ChainID: fakeChainID, Nonce: 99, Transfer: &state.Transfer{Amount: 1}}, key)
			acked[th] = 3
		}},
		{"acknowledged transaction moved", InvAckedKept, func(t *testing.T, c *craftedChain, apis []*fakeAPI, acked map[state.Hash]uint64) {
			// Seen at another height than it is now: one below the top, so that the height it
			// was seen at is still checked (a random pick at the top height moved it out of
			// reach, one run in eight).
			var moved state.Hash
			for th, h := range acked {
				if h < 8 && (moved == state.Hash{} || bytes.Compare(th[:], moved[:]) < 0) {
					moved = th
				}
			}
			acked[moved]++
		}},
		{"tx lookup disagrees", InvTxLookups, func(t *testing.T, c *craftedChain, apis []*fakeAPI, _ map[state.Hash]uint64) {
			for h := range apis[1].txAt {
				delete(apis[1].txAt, h) // node 2 forgot its index
				break
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCraftedChain(t, 8)
			apis := []*fakeAPI{c.api(), c.api(), c.api(), c.api()}
			acked := c.ackedAll(t)
			tc.craft(t, c, apis, acked)
			r := runCheck(t, c, apis, acked)
			var sb strings.Builder
			r.WriteText(&sb)
			if inv := r.Invariant(tc.inv); inv == nil || inv.Violations == 0 {
				t.Fatalf("%s not caught by %q:\n%s", tc.name, tc.inv, sb.String())
			}
			if r.OK() {
				t.Fatalf("report OK despite %s", tc.name)
			}
			t.Logf("caught:\n%s", sb.String())
		})
	}
}

func TestCheckInvariantsUnreachableNode(t *testing.T) {
	c := newCraftedChain(t, 3)
	urls := []string{c.api().serve(t), "http://127.0.0.1:1"}
	r, err := CheckInvariants(context.Background(), CheckOptions{APIs: urls, Genesis: c.gen, Settle: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Invariant(InvNodesAnswer).Violations != 1 || r.OK() {
		t.Fatalf("a silent node not reported: %+v", r.Invariant(InvNodesAnswer))
	}
}

func TestLivenessSplitsTheRun(t *testing.T) {
	c := newCraftedChain(t, 8) // block h at 1,700,000,000,000 ms + h × 500 ms, 3 txs each
	at := func(h int) time.Time { return time.UnixMilli(1_700_000_000_000 + int64(h)*500) }
	var r CheckReport
	r.liveness(&nodeChain{blocks: c.blocks}, at(2), at(5), at(8))
	if r.Before.Blocks != 3 || r.After.Blocks != 3 || r.Before.Txs != 9 {
		t.Fatalf("before %+v, after %+v: want blocks 2-4 and 5-7", r.Before, r.After)
	}
	if r.Before.Seconds() != 1.5 || r.After.Seconds() != 1.5 || r.After.BlocksPerSec() != 2 {
		t.Fatalf("spans %.1fs and %.1fs, %.1f blocks/s after: want 1.5s each, 2 blocks/s", r.Before.Seconds(), r.After.Seconds(), r.After.BlocksPerSec())
	}
	if r.LongestGap != 500*time.Millisecond || r.GapEnd != 2 {
		t.Fatalf("longest gap %s before %d, want 500ms before 2 (counted from block 1)", r.LongestGap, r.GapEnd)
	}
}

func TestLivenessCountsAStoppedChain(t *testing.T) {
	c := newCraftedChain(t, 4)
	at := func(h int) time.Time { return time.UnixMilli(1_700_000_000_000 + int64(h)*500) }
	var r CheckReport
	r.liveness(&nodeChain{blocks: c.blocks}, at(1), time.Time{}, at(4).Add(10*time.Second))
	if r.LongestGap != 10*time.Second || r.GapEnd != 0 {
		t.Fatalf("longest gap %s before %d: want 10s to the end of the run (0)", r.LongestGap, r.GapEnd)
	}
}

// A node far behind (a hostile one, stuck) is compared as far as it goes; the others' chain is
// judged whole, and the lag is no violation.
func TestCheckInvariantsLaggingNode(t *testing.T) {
	c := newCraftedChain(t, 8)
	apis := []*fakeAPI{c.api(), c.api(), c.api(), c.api()}
	apis[3].blocks = apis[3].blocks[:5]
	for h, at := range apis[3].txAt {
		if at > 5 {
			delete(apis[3].txAt, h)
		}
	}
	r := runCheck(t, c, apis, c.ackedAll(t))
	var sb strings.Builder
	r.WriteText(&sb)
	if !r.OK() || r.Checked != 5 || r.Top != 8 {
		t.Fatalf("checked %d, top %d, want 5 and 8, no violation:\n%s", r.Checked, r.Top, sb.String())
	}
	if got := r.Invariant(InvAckedKept).Checked; got != 24 {
		t.Fatalf("%d acknowledged txs judged, want all 24", got)
	}
	if got := r.Invariant(InvSameBlocks).Checked; got != 3*8+5 {
		t.Fatalf("%d blocks compared, want 29", got)
	}
}
