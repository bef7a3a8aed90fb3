package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// AccountTxs reads one page of the transactions touching address, newest first: limit of them
// (0: the node's default), after cursor (the previous page's NextCursor; "" for the newest).
func (c *Client) AccountTxs(ctx context.Context, address string, limit int, cursor string) (AccountTxsResponse, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out AccountTxsResponse
	err := c.do(ctx, http.MethodGet, "/v1/accounts/"+url.PathEscape(address)+"/txs"+encodeQuery(q), nil, &out)
	return out, err
}

// Blocks reads block headers from height from (0: block 1, or the last block when desc), limit
// of them (0: the node's default), ascending or, with desc, descending. The next page starts
// at NextFrom.
func (c *Client) Blocks(ctx context.Context, from uint64, limit int, desc bool) (BlocksResponse, error) {
	q := url.Values{}
	if from > 0 {
		q.Set("from", strconv.FormatUint(from, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if desc {
		q.Set("order", "desc")
	}
	var out BlocksResponse
	err := c.do(ctx, http.MethodGet, "/v1/blocks"+encodeQuery(q), nil, &out)
	return out, err
}

func encodeQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
