package api

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a node's HTTP API. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client
}

// NewClient makes a client for the node at base, e.g. "http://127.0.0.1:8645".
func NewClient(base string) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{
		base: strings.TrimRight(base, "/"),
		http: &http.Client{
			Timeout:   15 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		},
	}
}

// NewClientWith is NewClient over hc: its transport (dialer, socket buffers) carries every
// request, event streams included; its Timeout applies to all but event streams.
func NewClientWith(base string, hc *http.Client) *Client {
	c := NewClient(base)
	c.http = hc
	return c
}

// Base is the node URL the client talks to.
func (c *Client) Base() string { return c.base }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

// send makes a prepared request and decodes its JSON answer into out (nil: ignored).
func (c *Client) send(req *http.Request, out any) error {
	method, path := req.Method, req.URL.Path
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		return errorFrom(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("node API: bad response to %s %s: %w", method, path, err)
	}
	return nil
}

// SubmitTx sends an encoded signed transaction.
func (c *Client) SubmitTx(ctx context.Context, raw []byte) (SubmitTxResponse, error) {
	var out SubmitTxResponse
	err := c.do(ctx, http.MethodPost, "/v1/txs", SubmitTxRequest{Tx: hex.EncodeToString(raw)}, &out)
	return out, err
}

// SubmitTxs sends up to MaxSubmitBatch encoded transactions in one request; each gets its own
// result.
func (c *Client) SubmitTxs(ctx context.Context, raws [][]byte) (SubmitTxsResponse, error) {
	req := SubmitTxsRequest{Txs: make([]string, len(raws))}
	for i, raw := range raws {
		req.Txs[i] = hex.EncodeToString(raw)
	}
	var out SubmitTxsResponse
	err := c.do(ctx, http.MethodPost, "/v1/txs/batch", req, &out)
	return out, err
}

// Tx asks for a transaction's status by hash (hex).
func (c *Client) Tx(ctx context.Context, hash string) (TxStatus, error) {
	var out TxStatus
	err := c.do(ctx, http.MethodGet, "/v1/txs/"+url.PathEscape(hash), nil, &out)
	return out, err
}

// WaitTx polls until the transaction is committed or rejected, or ctx ends.
func (c *Client) WaitTx(ctx context.Context, hash string) (TxStatus, error) {
	delay := 20 * time.Millisecond
	for {
		st, err := c.Tx(ctx, hash)
		if err == nil && (st.Status == TxCommitted || st.Status == TxRejected) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("transaction %s still %s: %w", hash, st.Status, ctx.Err())
			}
			return st, err
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

// Account reads an account by its text address.
func (c *Client) Account(ctx context.Context, address string) (AccountResponse, error) {
	var out AccountResponse
	err := c.do(ctx, http.MethodGet, "/v1/accounts/"+url.PathEscape(address), nil, &out)
	return out, err
}

// Block reads a committed block with its certificate.
func (c *Client) Block(ctx context.Context, height uint64) (BlockResponse, error) {
	var out BlockResponse
	err := c.do(ctx, http.MethodGet, "/v1/blocks/"+strconv.FormatUint(height, 10), nil, &out)
	return out, err
}

// BlockWait reads a block, waiting up to wait for it to be committed (GET /v1/blocks/{h}?wait=ms).
func (c *Client) BlockWait(ctx context.Context, height uint64, wait time.Duration) (BlockResponse, error) {
	var out BlockResponse
	path := fmt.Sprintf("/v1/blocks/%d?wait=%d", height, wait.Milliseconds())
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Status reads the node's status.
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var out StatusResponse
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
	return out, err
}

// Evidence lists the evidence of equivocation committed on chain.
func (c *Client) Evidence(ctx context.Context) (EvidenceListResponse, error) {
	var out EvidenceListResponse
	err := c.do(ctx, http.MethodGet, "/v1/evidence", nil, &out)
	return out, err
}

// Offences lists the invalid proposals the node refused (GET /v1/offences).
func (c *Client) Offences(ctx context.Context) (OffencesResponse, error) {
	var out OffencesResponse
	err := c.do(ctx, http.MethodGet, "/v1/offences", nil, &out)
	return out, err
}

// Peers lists the node's connected peers (GET /v1/peers).
func (c *Client) Peers(ctx context.Context) (PeersResponse, error) {
	var out PeersResponse
	err := c.do(ctx, http.MethodGet, "/v1/peers", nil, &out)
	return out, err
}

// SubmitEvidence sends encoded evidence of equivocation (consensus.Evidence.Encode).
func (c *Client) SubmitEvidence(ctx context.Context, raw []byte) (SubmitEvidenceResponse, error) {
	var out SubmitEvidenceResponse
	err := c.do(ctx, http.MethodPost, "/v1/evidence", SubmitEvidenceRequest{Evidence: hex.EncodeToString(raw)}, &out)
	return out, err
}

// Ready asks GET /readyz. A 503 is an answer, not an error: Ready is false and Reasons says why.
func (c *Client) Ready(ctx context.Context) (ReadyResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
	if err != nil {
		return ReadyResponse{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ReadyResponse{}, err
	}
	defer resp.Body.Close()
	var out ReadyResponse
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return out, errorFrom(resp.StatusCode, data)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return out, fmt.Errorf("node API: bad response to GET /readyz: %w", err)
	}
	if out.Ready != (resp.StatusCode == http.StatusOK) {
		return out, fmt.Errorf("node API: GET /readyz answered %d with ready=%v", resp.StatusCode, out.Ready)
	}
	return out, nil
}
