package node

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// memberHome is soloHome whose funded account controls the only member, "acme"; cfg adjusts the
// node's config.
func memberHome(t *testing.T, backend string, cfg func(*Config)) (string, ed25519.PrivateKey) {
	t.Helper()
	home, key := soloHome(t, backend)
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	gen.Members = []state.Member{{Name: "acme", Controller: state.AddressFromPubKey(key.Public().(ed25519.PublicKey))}}
	if err := gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		c, err := LoadConfig(home)
		if err != nil {
			t.Fatal(err)
		}
		cfg(&c)
		if err := SaveConfig(home, c); err != nil {
			t.Fatal(err)
		}
	}
	return home, key
}

// signedRaw is body from key's account at nonce, signed and encoded.
func signedRaw(t *testing.T, chainID string, key ed25519.PrivateKey, nonce uint64, b state.TxBody) []byte {
	t.Helper()
	b.ChainID, b.From, b.Nonce = chainID, state.AddressFromPubKey(key.Public().(ed25519.PublicKey)), nonce
	tx, err := state.SignTx(b, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// submitAll signs and submits bodies from key's account with consecutive nonces from nonce, and
// waits until each is in a block. It returns their hashes.
func submitAll(t *testing.T, ctx context.Context, c *api.Client, chainID string, key ed25519.PrivateKey, nonce uint64, bodies ...state.TxBody) []string {
	t.Helper()
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var hashes []string
	for i, b := range bodies {
		b.ChainID, b.From, b.Nonce = chainID, from, nonce+uint64(i)
		tx, err := state.SignTx(b, key)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.SubmitTx(ctx, raw)
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
		hashes = append(hashes, resp.Hash)
	}
	for i, h := range hashes {
		if ts, err := c.WaitTx(ctx, h); err != nil || ts.Height == 0 {
			t.Fatalf("op %d: %+v %v", i, ts, err)
		}
	}
	return hashes
}

var errEnough = errors.New("enough events")

// readEvents reads the stream of q until an event above height to arrives (so q must let block
// events through) or, with to 0, until n events came. It returns the events and the last ID.
func readEvents(t *testing.T, ctx context.Context, c *api.Client, q api.EventsQuery, to uint64, n int) ([]api.StreamEvent, string) {
	t.Helper()
	var got []api.StreamEvent
	last, err := c.Events(ctx, q, func(ev api.StreamEvent) error {
		id, err := api.ParseEventID(ev.ID)
		if err != nil {
			t.Fatalf("event %+v: %v", ev, err)
		}
		if to > 0 && id.Height > to {
			return errEnough
		}
		got = append(got, ev)
		if to == 0 && len(got) == n {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("event stream %+v: %v after %d events", q, err, len(got))
	}
	return got, last
}

func ids(evs []api.StreamEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func sameEvents(t *testing.T, what string, got, want []api.StreamEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d:\n got %v\nwant %v", what, len(got), len(want), ids(got), ids(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Type != want[i].Type || string(got[i].Data) != string(want[i].Data) {
			t.Fatalf("%s: event %d is %s %s %s, want %s %s %s", what, i, got[i].ID, got[i].Type, got[i].Data, want[i].ID, want[i].Type, want[i].Data)
		}
	}
}

func txEvents(evs []api.StreamEvent) map[string]api.TxEventJSON {
	out := map[string]api.TxEventJSON{}
	for _, e := range evs {
		if e.Type == api.EventTx || e.Type == api.EventGovernance {
			var tx api.TxEventJSON
			if err := json.Unmarshal(e.Data, &tx); err == nil {
				out[tx.Hash] = tx
			}
		}
	}
	return out
}

// The stream from height 1 holds every block, transaction and governance operation in chain
// order with IDs H-P; a reader cut off anywhere and resuming with its last ID gets exactly the
// rest; and each filter selects exactly the events it names.
func TestEventStream(t *testing.T) {
	home, key := memberHome(t, "memdb", nil)
	n, c, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	me := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var other, third state.Address
	other[0], third[0] = 42, 43
	doc := sha256.Sum256([]byte("doc"))
	h := submitAll(t, ctx, c, n.chainID, key, 0,
		state.TxBody{Transfer: &state.Transfer{To: other, Amount: 10}},
		state.TxBody{AssetCreate: &state.AssetCreate{Symbol: "PTS", Name: "Points"}},
		state.TxBody{AssetMint: &state.AssetMint{Symbol: "PTS", To: me, Amount: 100}},
		state.TxBody{AssetTransfer: &state.AssetTransfer{Symbol: "PTS", To: third, Amount: 5}},
		state.TxBody{ItemRegister: &state.ItemRegister{ID: "gem-1", MetadataHash: doc}},
		state.TxBody{ItemTransfer: &state.ItemTransfer{ID: "gem-1", To: third}},
		state.TxBody{EscrowCreate: &state.EscrowCreate{ID: "deal", Beneficiary: other, Asset: "PTS",
			Amount: 20, Arbiter: &me, Deadline: 1 << 40}},
		state.TxBody{EscrowRelease: &state.EscrowRelease{ID: "deal"}},
		state.TxBody{GovPropose: &state.GovPropose{ID: "p1", SetParam: &state.Param{Name: state.ParamMaxBlockTxs, Value: 900}}},
		state.TxBody{NotaryAnchor: &state.NotaryAnchor{Hash: doc}},
	)
	last, err := c.Tx(ctx, h[len(h)-1])
	if err != nil {
		t.Fatal(err)
	}
	top := last.Height
	// A transaction that would fail never reaches a block (the leader leaves it out): it reads
	// rejected, and the stream has no event for it. A certified block that holds one anyway
	// gives a "failed" event (TestCertifiedBlockWithFailingTxsExecuted).
	ghost := signedRaw(t, n.chainID, key, uint64(len(h)), state.TxBody{ItemTransfer: &state.ItemTransfer{ID: "ghost", To: third}})
	resp0, err := c.SubmitTx(ctx, ghost)
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := c.WaitTx(ctx, resp0.Hash); err != nil || ts.Status != api.TxRejected || ts.Height != 0 || !strings.Contains(ts.Error, "ghost") {
		t.Fatalf("a transfer of no such item: %+v %v, want rejected outside any block", ts, err)
	}

	// Everything from height 1, in order, each block whole.
	all, _ := readEvents(t, ctx, c, api.EventsQuery{FromHeight: 1}, top, 0)
	next := api.EventID{Height: 1, Pos: 0}
	var txsLeft int
	for _, e := range all {
		id, _ := api.ParseEventID(e.ID)
		if id != next {
			t.Fatalf("event %s follows %v: want %s", e.ID, next, next)
		}
		switch {
		case id.Pos == 0:
			var b api.BlockEventJSON
			if e.Type != api.EventBlock || json.Unmarshal(e.Data, &b) != nil || b.Height != id.Height || b.Proposer == "" {
				t.Fatalf("block event %s: %s %s", e.ID, e.Type, e.Data)
			}
			txsLeft = b.Txs
		default:
			txsLeft--
			if txsLeft < 0 || e.Type != api.EventTx && e.Type != api.EventGovernance {
				t.Fatalf("event %s: %s %s", e.ID, e.Type, e.Data)
			}
		}
		next = api.EventID{Height: id.Height, Pos: id.Pos + 1}
		if txsLeft == 0 {
			next = api.EventID{Height: id.Height + 1, Pos: 0}
		}
	}
	if next.Height != top+1 {
		t.Fatalf("stream ended before block %d: %v", top, ids(all))
	}
	txs := txEvents(all)
	if len(txs) != len(h) {
		t.Fatalf("%d transaction events, want %d", len(txs), len(h))
	}
	if _, ok := txs[resp0.Hash]; ok {
		t.Fatal("an event for a transaction no block holds")
	}
	want := []struct {
		op, status, item, asset string
		kind                    string
		touches                 []state.Address
	}{
		{"transfer", api.EventTxCommitted, "", "", api.EventTx, []state.Address{me, other}},
		{"asset_create", api.EventTxCommitted, "", "PTS", api.EventTx, []state.Address{me}},
		{"asset_mint", api.EventTxCommitted, "", "PTS", api.EventTx, []state.Address{me}},
		{"asset_transfer", api.EventTxCommitted, "", "PTS", api.EventTx, []state.Address{me, third}},
		{"item_register", api.EventTxCommitted, "gem-1", "", api.EventTx, []state.Address{me}},
		{"item_transfer", api.EventTxCommitted, "gem-1", "", api.EventTx, []state.Address{me, third}},
		{"escrow_create", api.EventTxCommitted, "", "PTS", api.EventTx, []state.Address{me, other}},
		{"escrow_release", api.EventTxCommitted, "", "PTS", api.EventTx, []state.Address{me, other}},
		{"gov_propose", api.EventTxCommitted, "", "", api.EventGovernance, []state.Address{me}},
		{"notary_anchor", api.EventTxCommitted, "", "", api.EventTx, []state.Address{me}},
	}
	kindOf := map[string]string{}
	for _, e := range all {
		kindOf[e.ID] = e.Type
	}
	for i, w := range want {
		ev := txs[h[i]]
		var touches []string
		for _, a := range w.touches {
			touches = append(touches, a.String())
		}
		if ev.Op != w.op || ev.Status != w.status || ev.Item != w.item || ev.Asset != w.asset || ev.From != me.String() ||
			!slices.Equal(ev.Accounts, touches) || kindOf[api.EventID{Height: ev.Height, Pos: uint64(ev.Index) + 1}.String()] != w.kind ||
			(w.status == api.EventTxFailed) != (ev.Error != "") {
			t.Errorf("tx %d: %+v, want %+v", i, ev, w)
		}
	}

	// Cut off after any number of events, a reader resumes with its last ID: no gap, no duplicate.
	for _, k := range []int{1, 2, len(all) / 2, len(all) - 1} {
		part, lastID := readEvents(t, ctx, c, api.EventsQuery{FromHeight: 1}, 0, k)
		if lastID != part[len(part)-1].ID {
			t.Fatalf("last ID %q, last event %s", lastID, part[len(part)-1].ID)
		}
		rest, _ := readEvents(t, ctx, c, api.EventsQuery{After: lastID, FromHeight: 1}, top, 0)
		sameEvents(t, fmt.Sprintf("resumed after %d events", k), append(part, rest...), all)
	}
	// ?from=ID is the same as Last-Event-ID.
	resp, err := http.Get(c.Base() + "/v1/events?from=" + all[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	nr, _ := io.ReadAtLeast(resp.Body, buf, 200)
	resp.Body.Close()
	if !strings.Contains(string(buf[:nr]), "id: "+all[3].ID+"\n") || strings.Contains(string(buf[:nr]), "id: "+all[2].ID+"\n") {
		t.Fatalf("from=%s: %s", all[2].ID, buf[:nr])
	}

	// Filters select exactly the events they name. With kinds=block besides, block events mark
	// the end; without kinds, an account filter gives transactions only.
	filtered := func(f func(api.TxEventJSON, string) bool) []api.StreamEvent {
		var out []api.StreamEvent
		for _, e := range all {
			if e.Type == api.EventBlock {
				continue
			}
			var tx api.TxEventJSON
			_ = json.Unmarshal(e.Data, &tx)
			if f(tx, e.Type) {
				out = append(out, e)
			}
		}
		return out
	}
	noBlocks := func(evs []api.StreamEvent) []api.StreamEvent {
		return slices.DeleteFunc(slices.Clone(evs), func(e api.StreamEvent) bool { return e.Type == api.EventBlock })
	}
	blocksAnd := []string{api.EventBlock, api.EventTx, api.EventGovernance}
	for _, tc := range []struct {
		name string
		q    api.EventsQuery
		want []api.StreamEvent
	}{
		{"account=other", api.EventsQuery{Account: other.String(), Kinds: blocksAnd},
			filtered(func(tx api.TxEventJSON, _ string) bool { return slices.Contains(tx.Accounts, other.String()) })},
		{"account=third", api.EventsQuery{Account: third.String(), Kinds: blocksAnd},
			filtered(func(tx api.TxEventJSON, _ string) bool { return slices.Contains(tx.Accounts, third.String()) })},
		{"item=gem-1", api.EventsQuery{Item: "gem-1", Kinds: blocksAnd},
			filtered(func(tx api.TxEventJSON, _ string) bool { return tx.Item == "gem-1" })},
		{"asset=PTS", api.EventsQuery{Asset: "PTS", Kinds: blocksAnd},
			filtered(func(tx api.TxEventJSON, _ string) bool { return tx.Asset == "PTS" })},
		{"kinds=block,governance", api.EventsQuery{Kinds: []string{api.EventBlock, api.EventGovernance}},
			filtered(func(_ api.TxEventJSON, kind string) bool { return kind == api.EventGovernance })},
	} {
		tc.q.FromHeight = 1
		got, _ := readEvents(t, ctx, c, tc.q, top, 0)
		blocks := 0
		for _, e := range got {
			if e.Type == api.EventBlock {
				blocks++
			}
		}
		if blocks != int(top) {
			t.Errorf("%s: %d block events, want %d", tc.name, blocks, top)
		}
		sameEvents(t, tc.name, noBlocks(got), tc.want)
	}
	if n := len(filtered(func(tx api.TxEventJSON, _ string) bool { return slices.Contains(tx.Accounts, other.String()) })); n != 3 {
		t.Errorf("other is touched by %d transactions, want 3 (transfer, escrow create and release)", n)
	}
	// The account filter alone: transactions only.
	wantOther := filtered(func(tx api.TxEventJSON, _ string) bool { return slices.Contains(tx.Accounts, other.String()) })
	got, _ := readEvents(t, ctx, c, api.EventsQuery{FromHeight: 1, Account: other.String()}, 0, len(wantOther))
	sameEvents(t, "account only", got, wantOther)

	// Bad filters are refused with 400 and a message that says what is wrong.
	for q, want := range map[string]string{
		"kinds=block,foo":        "unknown kind",
		"account=guild123":       "account",
		"item=bad%20id":          "item ID",
		"asset=pts":              "asset symbol",
		"from=12":                "HEIGHT-POSITION",
		"from=1-0&from_height=1": "not both",
		"from_height=0":          "positive block height",
		"height=3":               "unknown parameter",
		"from_height=" + "x1":    "positive block height",
		"from=18446744073709551615-18446744073709551615": "HEIGHT-POSITION",
	} {
		resp, err := http.Get(c.Base() + "/v1/events?" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e api.ErrorResponse
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, want) {
			t.Errorf("%s: %d %s, want 400 saying %q", q, resp.StatusCode, body, want)
		}
	}
}

// A stream that starts at the next block (no starting point given) tells the subscriber where
// it starts, so that a reconnect before any event resumes there, not at a later "next block".
func TestEventStreamLiveStartIsResumable(t *testing.T) {
	home, _ := memberHome(t, "memdb", nil)
	_, c, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	start, err := c.Events(ctx, api.EventsQuery{}, func(api.StreamEvent) error { return errEnough })
	if !errors.Is(err, errEnough) {
		t.Fatal(err)
	}
	id, err := api.ParseEventID(start)
	if err != nil || id.Height < 2 {
		t.Fatalf("start %q: %v", start, err)
	}
	// Resuming from it gives the next block first.
	got, _ := readEvents(t, ctx, c, api.EventsQuery{After: start}, 0, 1)
	if got[0].ID != fmt.Sprintf("%d-0", id.Height+1) {
		t.Fatalf("after %s came %s", start, got[0].ID)
	}
}

// Beyond [api] max_event_subscribers, a subscriber gets 503 with a JSON error; when one leaves,
// another may come.
func TestEventSubscriberLimit(t *testing.T) {
	home, _ := memberHome(t, "memdb", func(c *Config) { c.API.MaxEventSubscribers = 2 })
	_, c, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := make([]context.CancelFunc, 2)
	done := make(chan error, 2)
	for i := range held {
		sctx, stop := context.WithCancel(ctx)
		held[i] = stop
		first := make(chan struct{})
		go func() {
			_, err := c.Events(sctx, api.EventsQuery{FromHeight: 1}, func(api.StreamEvent) error {
				select {
				case <-first:
				default:
					close(first)
				}
				return nil
			})
			done <- err
		}()
		select {
		case <-first:
		case <-ctx.Done():
			t.Fatal("subscriber got no event")
		}
	}
	_, err := c.Events(ctx, api.EventsQuery{FromHeight: 1}, func(api.StreamEvent) error { return errEnough })
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(ae.Message, "max_event_subscribers") {
		t.Fatalf("third subscriber: %v", err)
	}
	held[0]()
	<-done
	// The slot is free once the node's handler noticed; wait for that, not for a fixed time.
	for {
		_, err := c.Events(ctx, api.EventsQuery{FromHeight: 1}, func(api.StreamEvent) error { return errEnough })
		if errors.Is(err, errEnough) {
			break
		}
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ctx.Err() != nil {
			t.Fatalf("after one left: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for correctness
	}
	held[1]()
	<-done
}

// Event IDs are the chain's, not the process's: after a restart on the same data the stream is
// the same, and a reader resumes across the restart with no gap and no duplicate.
func TestEventIDsSurviveRestart(t *testing.T) {
	home, key := memberHome(t, "pebbledb", nil)
	n, c, stop := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var other state.Address
	other[0] = 9
	var bodies []state.TxBody
	for i := 0; i < 6; i++ {
		bodies = append(bodies, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
	}
	h := submitAll(t, ctx, c, n.chainID, key, 0, bodies...)
	ts, err := c.Tx(ctx, h[len(h)-1])
	if err != nil {
		t.Fatal(err)
	}
	before, _ := readEvents(t, ctx, c, api.EventsQuery{FromHeight: 1}, ts.Height, 0)
	part, lastID := readEvents(t, ctx, c, api.EventsQuery{FromHeight: 1}, 0, len(before)/2)
	stop()

	_, c, _ = runNode(t, home)
	after, _ := readEvents(t, ctx, c, api.EventsQuery{FromHeight: 1}, ts.Height, 0)
	sameEvents(t, "after restart", after, before)
	rest, _ := readEvents(t, ctx, c, api.EventsQuery{After: lastID}, ts.Height, 0)
	sameEvents(t, "resumed across the restart", append(part, rest...), before)
}

// An idle stream gets keep-alive comments; a filtered one also gets checkpoints (an id with no
// data) so that a reconnect does not scan again the blocks that matched nothing.
func TestEventStreamKeepAliveCheckpoints(t *testing.T) {
	home, _ := memberHome(t, "memdb", func(c *Config) { c.API.EventsKeepaliveMillis = 50 })
	_, c, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 3, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var nobody state.Address
	nobody[0] = 77
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Base()+"/v1/events?from_height=1&account="+nobody.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	keepAlive := false
	for sc.Scan() {
		line := sc.Text()
		if line == ": keep-alive" {
			keepAlive = true
		}
		if strings.HasPrefix(line, "data:") {
			t.Fatalf("an event for an account nothing touches: %s", line)
		}
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			cp, err := api.ParseEventID(id)
			if err != nil || !keepAlive || cp.Height < 3 {
				t.Fatalf("checkpoint %q (%v) after keep-alive %v", id, err, keepAlive)
			}
			return
		}
	}
	t.Fatalf("stream ended without a checkpoint: %v", sc.Err())
}

// Evidence committed in a block is an event after the block's transactions, with the
// validator named.
func TestEventStreamEvidence(t *testing.T) {
	n, c, _ := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ := c.Status(ctx)
	e := doublePrepare(n.chainID, n.valKey, 0, st.Height, 1, "x")
	if _, err := c.SubmitEvidence(ctx, encodeEvidence(t, e)); err != nil {
		t.Fatal(err)
	}
	got, _ := readEvents(t, ctx, c, api.EventsQuery{FromHeight: 1, Kinds: []string{api.EventEvidence}}, 0, 1)
	var ev api.EvidenceJSON
	if err := json.Unmarshal(got[0].Data, &ev); err != nil || got[0].Type != api.EventEvidence || ev.ID != e.ID().String() ||
		ev.Validator != "solo" || ev.Type != "prepare" || ev.Height != st.Height {
		t.Fatalf("evidence event %s %s: %v", got[0].ID, got[0].Data, err)
	}
	b, err := c.Block(ctx, ev.Included)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d-%d", ev.Included, len(b.Txs)+1); got[0].ID != want {
		t.Fatalf("evidence event ID %s, want %s (after the block's %d transactions)", got[0].ID, want, len(b.Txs))
	}
}

// stallingWriter is a connection whose subscriber stops reading once budget bytes went through:
// from then on each write waits for the deadline the handler set and fails as a socket does.
// If blocked is set, it is closed at the first write that waits; if release is set, closing it
// ends a waiting write before its deadline.
type stallingWriter struct {
	mu       sync.Mutex
	header   http.Header
	budget   int
	deadline time.Time
	blocked  chan struct{}
	release  chan struct{}
	once     sync.Once
}

func (w *stallingWriter) Header() http.Header { return w.header }
func (w *stallingWriter) WriteHeader(int)     {}
func (w *stallingWriter) Flush()              {}

func (w *stallingWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = t
	return nil
}

func (w *stallingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if len(p) <= w.budget {
		w.budget -= len(p)
		w.mu.Unlock()
		return len(p), nil
	}
	d := w.deadline
	w.mu.Unlock()
	if d.IsZero() {
		return 0, errors.New("test: a write that would block for ever: the handler set no deadline")
	}
	if w.blocked != nil {
		w.once.Do(func() { close(w.blocked) })
	}
	select { // the socket's buffers stay full until the deadline
	case <-w.release: // nil: never
	case <-time.After(time.Until(d)):
	}
	return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
}

// A subscriber that stops reading holds nothing of the node's but its socket buffers: once they
// are full and it took nothing for events_write_timeout_ms, it is cut off and counted, and its
// slot is free again.
func TestSlowEventSubscriberIsCutOff(t *testing.T) {
	n, c, _ := startSolo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 3, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	es := newEventServer(n)
	es.writeTimeout = 100 * time.Millisecond
	w := &stallingWriter{header: http.Header{}, budget: 300}
	req := httptest.NewRequest(http.MethodGet, "/v1/events?from_height=1", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		es.serve(w, req)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the subscriber that does not read was never cut off")
	}
	var m dto.Metric
	if err := es.cut.WithLabelValues("slow").Write(&m); err != nil {
		t.Fatal(err)
	}
	if cut := m.GetCounter().GetValue(); cut != 1 || es.subscribers.Load() != 0 || ctx.Err() != nil {
		t.Fatalf("cut %v, subscribers %d, ctx %v", cut, es.subscribers.Load(), ctx.Err())
	}
}

// BenchmarkBlockEvents measures how fast one subscriber turns stored blocks holding 1,000
// transfers into events (decode, touched accounts, JSON): the rate at which it catches up
// through history.
func BenchmarkBlockEvents(b *testing.B) {
	home := b.TempDir()
	if _, err := InitHome(home, "solo"); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.API.Listen, cfg.P2P.Listen, cfg.Storage.Backend = "127.0.0.1:0", []string{"/ip4/127.0.0.1/tcp/0"}, "memdb"
	if err := SaveConfig(home, cfg); err != nil {
		b.Fatal(err)
	}
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		b.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	gen.Accounts = append(gen.Accounts, GenesisAccount{Address: from, Balance: 1 << 30})
	if err := gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		b.Fatal(err)
	}
	n, err := New(home, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-n.Started()
	c := api.NewClient(n.APIAddr())
	var to state.Address
	to[0] = 3
	raws := make([][]byte, 1000)
	for i := range raws {
		tx, _ := state.SignTx(state.TxBody{ChainID: n.chainID, From: from, Nonce: uint64(i), Transfer: &state.Transfer{To: to, Amount: 1}}, key)
		raws[i], _ = tx.Encode()
	}
	resp, err := c.SubmitTxs(ctx, raws)
	if err != nil {
		b.Fatal(err)
	}
	ts, err := c.WaitTx(ctx, resp.Results[len(raws)-1].Hash)
	if err != nil {
		b.Fatal(err)
	}
	events := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for h := uint64(1); h <= ts.Height; h++ {
			if _, err := n.blockEvents(h, 0, true, func(ev *streamEvent) error {
				_, err := json.Marshal(ev.data)
				events++
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// liveHeap is the heap still reachable after a full collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// medianHeap is the median of liveHeap sampled 5 times 50 ms apart.
func medianHeap() uint64 {
	var s []uint64
	for range 5 {
		s = append(s, liveHeap())
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(s)
	return s[len(s)/2]
}

// stalledHeapSlack is the most heap a stalled subscriber may hold: its handler is writing one
// block's events (here at most 200 transactions, ~70 KB of event text) when it stalls.
const stalledHeapSlack = 512 << 10

// A subscriber that stops reading holds, on the node, the block its handler was writing and no
// more, however far behind it is: its events are read from the block store as it takes them,
// never queued ahead. Here it stalls at the start of a history of ~8,000 events (~2.6 MB of event
// text): the heap it holds stays under stalledHeapSlack. A node that
// queued its events ahead of a blocked write holds the whole history and fails.
func TestStalledEventSubscriberHoldsNoBacklog(t *testing.T) {
	const txs, perBlock = 8000, 200
	home := t.TempDir()
	if _, err := InitHome(home, "solo"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.API.Listen, cfg.P2P.Listen, cfg.Storage.Backend = "127.0.0.1:0", []string{"/ip4/127.0.0.1/tcp/0"}, "memdb"
	// No empty blocks: the node stays idle while the heap is measured.
	cfg.Consensus.EmptyBlockMillis = 600_000
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	gen.Accounts = append(gen.Accounts, GenesisAccount{Address: from, Balance: 1 << 30})
	if err := gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	n, c, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Batches of perBlock, each committed before the next: small blocks, so that the one block a
	// stalled handler holds is small next to the history.
	var to state.Address
	to[0] = 3
	var last string
	for b := 0; b < txs/perBlock; b++ {
		raws := make([][]byte, perBlock)
		for i := range raws {
			raws[i] = signedRaw(t, n.chainID, key, uint64(b*perBlock+i), state.TxBody{Transfer: &state.Transfer{To: to, Amount: 1}})
		}
		resp, err := c.SubmitTxs(ctx, raws)
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Results[len(raws)-1].Hash
		if ts, err := c.WaitTx(ctx, last); err != nil || ts.Height == 0 {
			t.Fatalf("batch %d: %+v %v", b, ts, err)
		}
	}
	ts, err := c.Tx(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	backlog := 0
	for h := uint64(1); h <= ts.Height; h++ {
		if _, err := n.blockEvents(h, 0, true, func(ev *streamEvent) error {
			b, err := json.Marshal(ev.data)
			backlog += len(b)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if backlog < 4*stalledHeapSlack {
		t.Fatalf("a history of %d bytes of events is too small to tell a backlog from the slack %d", backlog, stalledHeapSlack)
	}

	// Measured against the heap before it subscribes: memory other tests leave to be freed can
	// only lower the difference, not fake a backlog.
	before := medianHeap()
	es := newEventServer(n)
	es.writeTimeout = time.Minute // not cut off while measured
	w := &stallingWriter{header: http.Header{}, budget: 1024, blocked: make(chan struct{}), release: make(chan struct{})}
	req := httptest.NewRequest(http.MethodGet, "/v1/events?from_height=1", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		es.serve(w, req)
	}()
	select {
	case <-w.blocked:
	case <-ctx.Done():
		t.Fatal("the subscriber's handler never wrote past its budget")
	}
	// The handler blocks at once; a node that read ahead into a queue would need a moment to do
	// so: the median of samples over a quarter second is taken, so that such a node is caught,
	// not raced, and a passing allocation of the node's is not counted.
	stalled := medianHeap()
	close(w.release)
	<-done
	held := int64(stalled) - int64(before)
	t.Logf("history of %d blocks, %d transactions, %d bytes of event data; the stalled subscriber held %d bytes of heap (slack %d)",
		ts.Height, txs, backlog, held, stalledHeapSlack)
	if held > stalledHeapSlack {
		t.Fatalf("a stalled subscriber held %d bytes of heap, more than %d: it queues events it cannot send (history %d bytes)", held, stalledHeapSlack, backlog)
	}
}
