package api

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EventsQuery selects the events of GET /v1/events (see events.go).
type EventsQuery struct {
	Kinds   []string // block, tx, governance, evidence; none: all (tx and governance with a filter below)
	Account string   // text address
	Item    string
	Asset   string
	// FromHeight starts at that block; After resumes after that event ID (sent as Last-Event-ID,
	// which wins). With neither, the stream starts at the node's next block.
	FromHeight uint64
	After      string
	// IdleTimeout ends the stream with ErrEventStreamIdle when nothing at all (not even a
	// keep-alive) arrives for this long, so that a node that hangs is left for another. 0: never.
	IdleTimeout time.Duration
}

// StreamEvent is one event of GET /v1/events: its ID, kind and JSON data (BlockEventJSON,
// TxEventJSON or EvidenceJSON by kind).
type StreamEvent struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

var (
	ErrEventStreamIdle  = errors.New("node API: event stream: nothing received, not even a keep-alive")
	ErrEventStreamEnded = errors.New("node API: event stream ended")
	// ErrEventStreamCut: the node ended the stream and said why (a "cutoff" event).
	ErrEventStreamCut = errors.New("node API: event stream cut off by the node")
)

// maxEventLine bounds one line of the stream; the node's events are far smaller.
const maxEventLine = 1 << 20

// Events reads the event stream and calls fn with each event, in order, until ctx ends, fn
// returns an error (returned as is), or the stream breaks. It returns the last event ID the node
// sent (an event's or a checkpoint's, else q.After): a new call with After set to it resumes with
// no gap and no duplicate, on this node or another of the chain.
func (c *Client) Events(ctx context.Context, q EventsQuery, fn func(StreamEvent) error) (string, error) {
	last := q.After
	v := url.Values{}
	if len(q.Kinds) > 0 {
		v.Set("kinds", strings.Join(q.Kinds, ","))
	}
	for k, s := range map[string]string{"account": q.Account, "item": q.Item, "asset": q.Asset} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.FromHeight > 0 {
		v.Set("from_height", strconv.FormatUint(q.FromHeight, 10))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events?"+v.Encode(), nil)
	if err != nil {
		return last, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if q.After != "" {
		req.Header.Set("Last-Event-ID", q.After)
	}
	var idle *time.Timer
	if q.IdleTimeout > 0 {
		idle = time.AfterFunc(q.IdleTimeout, func() { cancel(ErrEventStreamIdle) })
		defer idle.Stop()
	}
	// The stream has no end: the client's overall timeout must not apply.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return last, streamErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return last, errorFrom(resp.StatusCode, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	var id, kind string
	var data strings.Builder
	for sc.Scan() {
		if idle != nil {
			idle.Reset(q.IdleTimeout)
		}
		line := sc.Text()
		if line == "" { // dispatch
			if id != "" {
				last = id
			}
			if data.Len() > 0 {
				if kind == EventCutoff {
					var e ErrorResponse
					_ = json.Unmarshal([]byte(data.String()), &e)
					return last, fmt.Errorf("%w: %s", ErrEventStreamCut, cmp.Or(e.Error, data.String()))
				}
				if err := fn(StreamEvent{ID: id, Type: cmp.Or(kind, "message"), Data: json.RawMessage(data.String())}); err != nil {
					return last, err
				}
			}
			id, kind = "", ""
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			kind = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	if err := sc.Err(); err != nil {
		return last, streamErr(ctx, err)
	}
	return last, streamErr(ctx, ErrEventStreamEnded)
}

// streamErr prefers the reason the stream's context ended (idle, or the caller's) to the read
// error it caused.
func streamErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}
