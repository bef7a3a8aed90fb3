package api

import (
	"context"
	"net/url"
	"strconv"
	"strings"
)

// StateProof fetches the proof file of a state entry (kind and its arguments, as the node's
// /v1/proofs/state/{kind}/... routes take them) after block height, or at the latest provable
// height when height is nil. The bytes are the file, exactly as `guild verify` reads it.
func (c *Client) StateProof(ctx context.Context, kind string, args []string, height *uint64) ([]byte, error) {
	parts := []string{"/v1/proofs/state", url.PathEscape(kind)}
	for _, a := range args {
		parts = append(parts, url.PathEscape(a))
	}
	path := strings.Join(parts, "/")
	if height != nil {
		path += "?height=" + strconv.FormatUint(*height, 10)
	}
	var out []byte
	err := c.do(ctx, "GET", path, nil, &out)
	return out, err
}

// TxProof fetches the proof file of a committed transaction's receipt.
func (c *Client) TxProof(ctx context.Context, hash string) ([]byte, error) {
	var out []byte
	err := c.do(ctx, "GET", "/v1/proofs/tx/"+url.PathEscape(hash), nil, &out)
	return out, err
}
