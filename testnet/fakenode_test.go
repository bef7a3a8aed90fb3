package testnet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// The unit tests run the testnet machinery against a fake node: this test binary, started as
// `<test binary> node start --home HOME` with fakeNodeEnv set, serves a tiny single-node chain on
// the API address of HOME/config.toml. That exercises process handling, Up, Status, Down and the
// load generator without the real node; e2e_test.go runs the real one.
const fakeNodeEnv = "GUILD_TESTNET_FAKE_NODE"

// Fake node modes.
const (
	fakeServe    = "serve"    // serve the API until SIGTERM
	fakeCrash    = "crash"    // print a line and exit 3 at once
	fakeStubborn = "stubborn" // serve the API and ignore SIGTERM
	fakeIdle     = "idle"     // serve nothing (needs no config); exit on SIGTERM
	fakeLossy    = "lossy"    // as serve, but load transfers (amount 1) with odd nonces never commit
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeNodeEnv); mode != "" {
		os.Exit(runFakeNode(mode, os.Args[1:]))
	}
	code := m.Run()
	removeBuilds()
	os.Exit(code)
}

func runFakeNode(mode string, args []string) int {
	if len(args) != 4 || args[0] != "node" || args[1] != "start" || args[2] != "--home" {
		fmt.Fprintln(os.Stderr, "fake node: want node start --home HOME, got", args)
		return 2
	}
	home := args[3]
	switch mode {
	case fakeCrash:
		fmt.Fprintln(os.Stderr, "fake node: crashing on purpose")
		return 3
	case fakeStubborn:
		signal.Ignore(syscall.SIGTERM) // before the API answers, so Up's return means it is ignored
	case fakeIdle:
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		return 0
	}
	cfg, err := node.LoadConfig(home)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake node:", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake node:", err)
		return 1
	}
	chain := &fakeChain{moniker: cfg.Moniker, lossy: mode == fakeLossy, where: map[state.Hash]uint64{}, nonces: map[state.Address]uint64{}, grown: make(chan struct{})}
	go chain.produce(20 * time.Millisecond)
	go http.Serve(ln, chain.mux())
	fmt.Fprintln(os.Stderr, "fake node: serving on", cfg.API.Listen)
	if mode == fakeStubborn {
		select {}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	fmt.Fprintln(os.Stderr, "fake node: stopping")
	return 0
}

// fakeChain commits every pending transaction in a block each period, checking nothing but the
// encoding.
type fakeChain struct {
	moniker string
	lossy   bool
	mu      sync.Mutex
	pending [][]byte
	blocks  [][][]byte  // blocks[h-1] holds the transactions of height h
	times   []time.Time // times[h-1] is when height h was made: its header time
	where   map[state.Hash]uint64
	nonces  map[state.Address]uint64
	grown   chan struct{} // closed when a block is added
}

func (c *fakeChain) produce(period time.Duration) {
	for range time.Tick(period) {
		c.mu.Lock()
		txs := c.pending
		c.pending = nil
		if c.lossy {
			txs = slices.DeleteFunc(txs, func(raw []byte) bool {
				tx, err := state.DecodeTx(raw)
				return err == nil && tx.Body.Transfer != nil && tx.Body.Transfer.Amount == 1 && tx.Body.Nonce%2 == 1
			})
		}
		c.blocks = append(c.blocks, txs)
		c.times = append(c.times, time.Now())
		for _, raw := range txs {
			c.where[state.HashTx(raw)] = uint64(len(c.blocks))
			tx, _ := state.DecodeTx(raw)
			c.nonces[tx.Body.From] = max(c.nonces[tx.Body.From], tx.Body.Nonce+1)
		}
		close(c.grown)
		c.grown = make(chan struct{})
		c.mu.Unlock()
	}
}

func (c *fakeChain) mux() *http.ServeMux {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /v1/txs", func(w http.ResponseWriter, r *http.Request) {
		var req api.SubmitTxRequest
		json.NewDecoder(r.Body).Decode(&req)
		raw, err := hex.DecodeString(req.Tx)
		if err == nil {
			_, err = state.DecodeTx(raw)
		}
		if err != nil {
			reply(w, http.StatusBadRequest, api.ErrorResponse{Error: fmt.Sprint("bad tx: ", err)})
			return
		}
		c.mu.Lock()
		c.pending = append(c.pending, raw)
		c.mu.Unlock()
		reply(w, http.StatusAccepted, api.SubmitTxResponse{Hash: state.HashTx(raw).String(), Status: api.TxPending})
	})
	mux.HandleFunc("POST /v1/txs/batch", func(w http.ResponseWriter, r *http.Request) {
		raws, err := batchOf(r)
		if err != nil {
			reply(w, http.StatusBadRequest, api.ErrorResponse{Error: err.Error()})
			return
		}
		resp := api.SubmitTxsResponse{Results: make([]api.SubmitTxResult, len(raws))}
		c.mu.Lock()
		for i, raw := range raws {
			_, err := state.DecodeTx(raw)
			if err != nil {
				resp.Results[i] = api.SubmitTxResult{Status: api.TxRejected, Error: fmt.Sprint("bad tx: ", err)}
				continue
			}
			c.pending = append(c.pending, raw)
			resp.Results[i] = api.SubmitTxResult{Hash: state.HashTx(raw).String(), Status: api.TxPending}
		}
		c.mu.Unlock()
		reply(w, http.StatusOK, resp)
	})
	mux.HandleFunc("GET /v1/txs/{hash}", func(w http.ResponseWriter, r *http.Request) {
		h, _ := state.ParseHash(r.PathValue("hash"))
		c.mu.Lock()
		height, ok := c.where[h]
		c.mu.Unlock()
		if !ok {
			reply(w, http.StatusOK, api.TxStatus{Hash: h.String(), Status: api.TxPending})
			return
		}
		reply(w, http.StatusOK, api.TxStatus{Hash: h.String(), Status: api.TxCommitted, Height: height})
	})
	mux.HandleFunc("GET /v1/accounts/{address}", func(w http.ResponseWriter, r *http.Request) {
		a, err := state.ParseAddress(r.PathValue("address"))
		if err != nil {
			reply(w, http.StatusBadRequest, api.ErrorResponse{Error: err.Error()})
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		reply(w, http.StatusOK, api.AccountResponse{Address: a.String(), Balance: 1 << 50, Nonce: c.nonces[a]})
	})
	mux.HandleFunc("GET /v1/blocks/{height}", func(w http.ResponseWriter, r *http.Request) {
		height, _ := strconv.ParseUint(r.PathValue("height"), 10, 64)
		ms, _ := strconv.Atoi(r.URL.Query().Get("wait"))
		deadline := time.After(time.Duration(ms) * time.Millisecond)
		c.mu.Lock()
		for uint64(len(c.blocks)) < height {
			grown := c.grown
			c.mu.Unlock()
			select {
			case <-grown:
			case <-deadline:
				reply(w, http.StatusNotFound, api.ErrorResponse{Error: "not yet"})
				return
			}
			c.mu.Lock()
		}
		txs, made := c.blocks[height-1], c.times[height-1]
		c.mu.Unlock()
		b := api.BlockResponse{Height: height, Hash: hex.EncodeToString(sha256.New().Sum([]byte(strconv.FormatUint(height, 10)))),
			Header: api.HeaderJSON{Time: made.UTC().Format(time.RFC3339Nano)}}
		lean := r.URL.Query().Get("txs") == api.BlockTxsNone
		for _, raw := range txs {
			if !lean {
				b.Txs = append(b.Txs, hex.EncodeToString(raw))
			}
			b.Results = append(b.Results, api.TxResultJSON{Hash: state.HashTx(raw).String()})
		}
		reply(w, http.StatusOK, b)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		reply(w, http.StatusOK, api.StatusResponse{Moniker: c.moniker, Height: uint64(len(c.blocks)), Peers: 3, View: 0, Leader: uint32(len(c.blocks) % 4)})
	})
	return mux
}

// batchOf reads a batch submission in either of its forms: JSON with hex, or a CBOR array of
// byte strings (what the load generator sends).
func batchOf(r *http.Request) ([][]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if r.Header.Get("Content-Type") == "application/cbor" {
		var raws [][]byte
		return raws, cbor.Unmarshal(body, &raws)
	}
	var req api.SubmitTxsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	raws := make([][]byte, len(req.Txs))
	for i, s := range req.Txs {
		if raws[i], err = hex.DecodeString(s); err != nil {
			return nil, err
		}
	}
	return raws, nil
}
