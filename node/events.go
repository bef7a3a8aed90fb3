package node

// GET /v1/events: committed blocks, transactions and evidence as a resumable stream of
// Server-Sent Events.
//
// Every event has an ID "H-P": the height H of its block and its position P in that block. 0 is
// the block itself, 1..n are its n transactions in block order, and n+1.. the evidence it carries,
// in order. Positions follow from the block's bytes alone, so an ID names the same event on every
// node of the chain and across restarts. A subscriber that reconnects with the header
// Last-Event-ID: H-P (or ?from=H-P) gets exactly the events after that one; ?from_height=H starts
// at block H; with neither, the stream starts at the next block.
//
// Each subscriber's own goroutine pulls its events from the block store: history first, then
// each block as soon as the node has executed it (the commit feed of the ?wait= long poll wakes
// it). No event is buffered for a subscriber, so a slow one only falls behind and never makes the
// node hold or drop anything; one that reads nothing for [api] events_write_timeout_ms is cut off (WARN,
// guild_events_cut_total) and resumes from its last ID.
//
// A line "id: H-P" with no data is a checkpoint: with filters, it tells the subscriber (an
// EventSource records it as its last event ID) that everything up to H-P was looked at, so that a
// reconnect does not scan again what matched nothing. It comes with the keep-alive comment.
//
// When the node ends a stream (it is stopping, or its store failed) its last message is an event
// of kind "cutoff" with data {"error": why} and no ID.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// eventsRetryMs is the reconnection delay an EventSource is told to use.
const eventsRetryMs = 2000

// streamEvent is one event before filtering: kind, ID and data (*BlockEventJSON, *TxEventJSON or
// *EvidenceJSON).
type streamEvent struct {
	id   api.EventID
	kind string
	data any
	tx   *api.TxEventJSON
}

// blockEvents calls fn for each event of stored block h at a position from on, in order; txs
// false skips decoding transactions (no tx or governance event is wanted). It returns the last
// position of the block.
func (n *Node) blockEvents(h, from uint64, txs bool, fn func(*streamEvent) error) (uint64, error) {
	value, _, err := n.blocks.Block(h)
	if err != nil {
		return 0, storeErr{err}
	}
	b, err := DecodeBlock(value)
	if err != nil {
		return 0, storeErr{fmt.Errorf("node: stored block %d: %w", h, err)}
	}
	last := uint64(len(b.Txs) + len(b.Evidence))
	if from == 0 {
		err := fn(&streamEvent{id: api.EventID{Height: h, Pos: 0}, kind: api.EventBlock, data: &api.BlockEventJSON{
			Height: h, Hash: consensus.DigestOf(value).String(), TimeMs: b.Header.Time,
			Proposer: n.validatorName(h, b.Header.Proposer), ProposerIndex: b.Header.Proposer,
			Txs: len(b.Txs), Evidence: len(b.Evidence),
		}})
		if err != nil {
			return last, err
		}
	}
	if txs && from <= uint64(len(b.Txs)) {
		results, err := n.blocks.Results(h)
		if err != nil {
			return last, storeErr{err}
		}
		for i := max(from, 1) - 1; i < uint64(len(b.Txs)); i++ {
			ev := n.txEvent(h, int(i), b.Txs[i], results)
			kind := api.EventTx
			if ev.Op == "gov_propose" || ev.Op == "gov_vote" {
				kind = api.EventGovernance
			}
			if err := fn(&streamEvent{id: api.EventID{Height: h, Pos: i + 1}, kind: kind, data: ev, tx: ev}); err != nil {
				return last, err
			}
		}
	}
	for i := range b.Evidence {
		pos := uint64(len(b.Txs) + 1 + i)
		if pos < from {
			continue
		}
		ej := n.evidenceJSON(&b.Evidence[i], h)
		if err := fn(&streamEvent{id: api.EventID{Height: h, Pos: pos}, kind: api.EventEvidence, data: &ej}); err != nil {
			return last, err
		}
	}
	return last, nil
}

func (n *Node) txEvent(h uint64, i int, raw []byte, results []StoredResult) *api.TxEventJSON {
	ev := &api.TxEventJSON{Height: h, Index: i, Hash: state.HashTx(raw).String(), Status: api.EventTxCommitted, Accounts: []string{}}
	if i < len(results) && results[i].Error != "" {
		ev.Status, ev.Error = api.EventTxFailed, results[i].Error
	}
	tx, err := state.DecodeTx(raw)
	if err != nil { // execution refused it too; there is nothing more to say
		ev.Status = api.EventTxFailed
		if ev.Error == "" {
			ev.Error = err.Error()
		}
		return ev
	}
	op, name := txOp(&tx.Body)
	ev.From, ev.Op = tx.Body.From.String(), name
	// A record the store fails to read leaves its parties out: the event is still worth sending.
	t, _ := txTouches(n.st, tx, op, h, ev.Status == api.EventTxCommitted)
	ev.Item, ev.Asset = t.item, t.asset
	ev.Accounts = make([]string, len(t.accounts))
	for i, a := range t.accounts {
		ev.Accounts[i] = a.String()
	}
	return ev
}

// eventQuery is a parsed GET /v1/events request.
type eventQuery struct {
	next api.EventID // the first event to send
	// start is, for a stream that starts at the next block, the ID of the last event before it,
	// sent at once as a checkpoint so that a reconnect resumes from there.
	start   string
	kinds   map[string]bool
	account string // text address, "" for any
	item    string
	asset   string
}

func (q *eventQuery) wantTxs() bool { return q.kinds[api.EventTx] || q.kinds[api.EventGovernance] }

// match reports whether ev passes the filters: account, item and asset select transactions only.
func (q *eventQuery) match(ev *streamEvent) bool {
	if !q.kinds[ev.kind] {
		return false
	}
	if ev.tx == nil {
		return true
	}
	if q.item != "" && ev.tx.Item != q.item || q.asset != "" && ev.tx.Asset != q.asset {
		return false
	}
	return q.account == "" || slices.Contains(ev.tx.Accounts, q.account)
}

// parseEventQuery reads the filters and the starting point; the error says what is wrong.
func (n *Node) parseEventQuery(r *http.Request) (*eventQuery, error) {
	v := r.URL.Query()
	for k := range v {
		switch k {
		case "kinds", "account", "item", "asset", "from", "from_height":
		default:
			return nil, fmt.Errorf("unknown parameter %q: want kinds, account, item, asset, from or from_height", k)
		}
	}
	q := &eventQuery{kinds: map[string]bool{}, item: v.Get("item"), asset: v.Get("asset")}
	if a := v.Get("account"); a != "" {
		addr, err := state.ParseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("account: %v", err)
		}
		q.account = addr.String()
	}
	if q.item != "" && !state.ValidID(q.item) {
		return nil, fmt.Errorf("item ID %q is malformed: want 1-%d of A-Z a-z 0-9 . _ : -", q.item, state.MaxIDLen)
	}
	if q.asset != "" && !state.ValidSymbol(q.asset) {
		return nil, fmt.Errorf("asset symbol %q is malformed: want 2-12 of A-Z 0-9", q.asset)
	}
	if ks := v.Get("kinds"); ks != "" {
		for _, k := range strings.Split(ks, ",") {
			switch k = strings.TrimSpace(k); k {
			case api.EventBlock, api.EventTx, api.EventGovernance, api.EventEvidence:
				q.kinds[k] = true
			default:
				return nil, fmt.Errorf("kinds: unknown kind %q: want a comma-separated list of block, tx, governance, evidence", k)
			}
		}
	} else if q.account != "" || q.item != "" || q.asset != "" {
		q.kinds[api.EventTx], q.kinds[api.EventGovernance] = true, true // blocks and evidence touch no account
	} else {
		for _, k := range []string{api.EventBlock, api.EventTx, api.EventGovernance, api.EventEvidence} {
			q.kinds[k] = true
		}
	}
	from, fromHeight, last := v.Get("from"), v.Get("from_height"), r.Header.Get("Last-Event-ID")
	if from != "" && fromHeight != "" {
		return nil, errors.New("give from (an event ID to resume after) or from_height, not both")
	}
	switch {
	case last != "" || from != "": // a reconnecting EventSource repeats the URL: its header wins
		id, err := api.ParseEventID(cmpOr(last, from))
		if err != nil {
			return nil, err
		}
		q.next = api.EventID{Height: id.Height, Pos: id.Pos + 1}
	case fromHeight != "":
		h, err := strconv.ParseUint(fromHeight, 10, 64)
		if err != nil || h == 0 {
			return nil, fmt.Errorf("from_height must be a positive block height, got %q", fromHeight)
		}
		q.next = api.EventID{Height: h, Pos: 0}
	default:
		q.next = api.EventID{Height: n.executedHeight() + 1, Pos: 0}
		if h := q.next.Height - 1; h > 0 {
			value, _, err := n.blocks.Block(h)
			if err != nil {
				return nil, storeErr{err}
			}
			b, err := DecodeBlock(value)
			if err != nil {
				return nil, storeErr{err}
			}
			last := api.EventID{Height: h, Pos: uint64(len(b.Txs) + len(b.Evidence))}
			q.next, q.start = api.EventID{Height: h, Pos: last.Pos + 1}, last.String()
		}
	}
	if q.next.Height == 0 { // "0-P": before the first block
		q.next = api.EventID{Height: 1, Pos: 0}
	}
	if e := n.blocks.Earliest(); q.next.Height < e {
		return nil, fmt.Errorf("events from height %d are not held here: the earliest block is %d (pruned, or "+
			"before this node's state sync); resume from there or ask a node that keeps every block", q.next.Height, e)
	}
	return q, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// eventServer serves GET /v1/events: it counts subscribers against the limit and keeps the
// stream's metrics.
type eventServer struct {
	n            *Node
	max          int64
	keepalive    time.Duration
	writeTimeout time.Duration
	subscribers  atomic.Int64
	lastRefusal  atomic.Int64 // unix nanoseconds of the last refusal logged
	sent         prometheus.Counter
	refused      prometheus.Counter
	cut          *prometheus.CounterVec
}

func (n *Node) eventRoutes(mux *http.ServeMux) {
	es := newEventServer(n)
	for _, c := range []prometheus.Collector{es.sent, es.refused, es.cut,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "guild_events_subscribers", Help: "Connected subscribers of GET /v1/events."},
			func() float64 { return float64(es.subscribers.Load()) }),
	} {
		if err := n.metrics.reg.Register(c); err != nil {
			n.log.Warn("registering event stream metrics", "err", err)
		}
	}
	mux.HandleFunc("GET /v1/events", es.serve)
}

func newEventServer(n *Node) *eventServer {
	return &eventServer{
		n:            n,
		max:          int64(n.cfg.API.MaxEventSubscribers),
		keepalive:    time.Duration(n.cfg.API.EventsKeepaliveMillis) * time.Millisecond,
		writeTimeout: time.Duration(n.cfg.API.EventsWriteTimeoutMillis) * time.Millisecond,
		sent:         prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_events_sent_total", Help: "Events sent to subscribers of GET /v1/events."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_events_refused_total",
			Help: "Subscriptions to GET /v1/events refused (503) because [api] max_event_subscribers were connected."}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_events_cut_total",
			Help: "Event subscribers cut off by the node: slow (took nothing for [api] events_write_timeout_ms) or error (the block store failed)."}, []string{"reason"}),
	}
}

func (es *eventServer) serve(w http.ResponseWriter, r *http.Request) {
	q, err := es.n.parseEventQuery(r)
	if err != nil {
		if isStoreErr(err) { // logged and counted; the client gets no engine internals
			es.n.writeInternalError(w, "reading stored blocks for an event subscription", err)
			return
		}
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	if es.subscribers.Add(1) > es.max {
		es.subscribers.Add(-1)
		es.refused.Inc()
		if now := time.Now().UnixNano(); now-es.lastRefusal.Load() > int64(time.Minute) {
			es.lastRefusal.Store(now)
			es.n.log.Warn("event subscriber refused: the limit is reached; raise [api] max_event_subscribers if more are expected",
				"limit", es.max, "remote", r.RemoteAddr)
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, api.CodeTooManySubscribers, fmt.Sprintf(
			"this node already serves %d event subscribers (its [api] max_event_subscribers): retry later or use another node", es.max))
		return
	}
	defer es.subscribers.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold events back
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead { // a stream with no body would only hold a slot
		return
	}
	s := &eventStream{es: es, q: q, w: w, rc: http.NewResponseController(w)}
	// A stream must not inherit the server's write timeout: its own deadline is per write.
	defer s.rc.SetWriteDeadline(time.Time{})
	err = s.run(r.Context())
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		es.cut.WithLabelValues("slow").Inc()
		es.n.log.Warn("event subscriber cut off: it took nothing for [api] events_write_timeout_ms; it resumes from its last event ID when it reconnects",
			"remote", r.RemoteAddr, "timeout", es.writeTimeout, "last_id", s.lastSent)
	case errors.Is(err, errStoreFailed):
		es.cut.WithLabelValues("error").Inc()
		es.n.storeFailed("event stream: reading a stored block", err)
	}
}

// stoppingReason: the request's context ends when the node stops (or the subscriber left, and
// then nobody reads it).
const stoppingReason = "the node is stopping: resume from your last event ID, here later or on another node"

var errStoreFailed = errors.New("node: event stream: block store read failed")

// eventStream is one subscriber's stream.
type eventStream struct {
	es       *eventServer
	q        *eventQuery
	w        http.ResponseWriter
	rc       *http.ResponseController
	lastSent string // the ID last written (an event's or a checkpoint's)
	// checkpoint is the ID of the last position looked at, whether sent or filtered out.
	checkpoint string
	wrote      time.Time
}

func (s *eventStream) run(ctx context.Context) error {
	n := s.es.n
	open := fmt.Sprintf("retry: %d\n: guild events from %s\n\n", eventsRetryMs, s.q.next)
	if s.q.start != "" {
		open = fmt.Sprintf("retry: %d\n: guild events after %s\nid: %s\n\n", eventsRetryMs, s.q.start, s.q.start)
		s.checkpoint, s.lastSent = s.q.start, s.q.start
	}
	if err := s.write(open); err != nil {
		return err
	}
	if err := s.rc.Flush(); err != nil {
		return err
	}
	tick := time.NewTicker(s.es.keepalive)
	defer tick.Stop()
	for h := s.q.next.Height; ; h++ {
		for n.executedHeight() < h {
			woken := n.commits.wait() // before the check, so a commit in between is not missed
			if n.executedHeight() >= h {
				break
			}
			select {
			case <-woken:
			case <-tick.C:
				if err := s.keepAlive(); err != nil {
					return err
				}
			case <-ctx.Done():
				// The subscriber left, or the node is stopping: say so to one that is still there.
				_ = s.rc.SetWriteDeadline(time.Now().Add(time.Second))
				_ = s.cutoff(api.CodeUnavailable, stoppingReason)
				return ctx.Err()
			}
		}
		from := uint64(0)
		if h == s.q.next.Height {
			from = s.q.next.Pos
		}
		last, err := n.blockEvents(h, from, s.q.wantTxs(), func(ev *streamEvent) error {
			if !s.q.match(ev) {
				return nil
			}
			return s.send(ev)
		})
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil || !isStoreErr(err) {
				return err
			}
			// The engine's message (paths, table names) is for the operator's log, not subscribers.
			_ = s.cutoff(api.CodeStoreFault, fmt.Sprintf("reading block %d failed on this node (%s): resume from your last event ID on another node", h, storeFaultMessage))
			return fmt.Errorf("%w: %w", errStoreFailed, err)
		}
		s.checkpoint = api.EventID{Height: h, Pos: last}.String()
		if err := s.rc.Flush(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			_ = s.rc.SetWriteDeadline(time.Now().Add(time.Second))
			_ = s.cutoff(api.CodeUnavailable, stoppingReason)
			return ctx.Err()
		}
		if time.Since(s.wrote) >= s.es.keepalive { // catching up through history matching nothing
			if err := s.keepAlive(); err != nil {
				return err
			}
		}
	}
}

// storeErr marks errors of the store (not of the subscriber's connection).
type storeErr struct{ error }

func (e storeErr) Unwrap() error { return e.error }

func isStoreErr(err error) bool {
	var se storeErr
	return errors.As(err, &se)
}

func (s *eventStream) send(ev *streamEvent) error {
	data, err := json.Marshal(ev.data)
	if err != nil {
		return storeErr{err}
	}
	id := ev.id.String()
	if err := s.write(fmt.Sprintf("id: %s\nevent: %s\ndata: %s\n\n", id, ev.kind, data)); err != nil {
		return err
	}
	s.lastSent = id
	s.es.sent.Inc()
	return nil
}

// keepAlive writes a comment, and a checkpoint if events were looked at since the last ID sent.
func (s *eventStream) keepAlive() error {
	msg := ": keep-alive\n\n"
	if s.checkpoint != "" && s.checkpoint != s.lastSent {
		msg = ": keep-alive\nid: " + s.checkpoint + "\n\n"
		s.lastSent = s.checkpoint
	}
	if err := s.write(msg); err != nil {
		return err
	}
	return s.rc.Flush()
}

// write sends msg with a fresh deadline, so that a subscriber that stops reading is cut off
// rather than holding its goroutine and slot for ever.
func (s *eventStream) write(msg string) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.es.writeTimeout))
	_, err := s.w.Write([]byte(msg))
	s.wrote = time.Now()
	return err
}

// cutoff tells the subscriber why its stream ends, in an event of kind "cutoff" with data
// {"error": reason, "code": code} and no ID, so that its last event ID stays the one to resume
// from.
func (s *eventStream) cutoff(code, reason string) error {
	b, _ := json.Marshal(api.ErrorResponse{Error: reason, Code: code})
	if err := s.write("event: " + api.EventCutoff + "\ndata: " + string(b) + "\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}
