package api

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// SubmitPrivate sends a signed transaction with a private operation and the ciphertext it
// commits to (POST /v1/private). The node keeps the ciphertext and hands it to the recipients'
// nodes once the transaction commits.
func (c *Client) SubmitPrivate(ctx context.Context, raw, ciphertext []byte) (SubmitPrivateResponse, error) {
	var out SubmitPrivateResponse
	err := c.do(ctx, http.MethodPost, "/v1/private",
		SubmitPrivateRequest{Tx: hex.EncodeToString(raw), Ciphertext: hex.EncodeToString(ciphertext)}, &out)
	return out, err
}

// PrivateList lists the public part of the private payloads (GET /v1/private); member, if set,
// keeps those it holds.
func (c *Client) PrivateList(ctx context.Context, member string) (PrivateListResponse, error) {
	var out PrivateListResponse
	path := "/v1/private"
	if member != "" {
		path += "?member=" + url.QueryEscape(member)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// PrivateRecord reads the public part of one payload (GET /v1/private/{commitment}).
func (c *Client) PrivateRecord(ctx context.Context, commitment string) (PrivateRecord, error) {
	var out PrivateRecord
	err := c.do(ctx, http.MethodGet, "/v1/private/"+url.PathEscape(commitment), nil, &out)
	return out, err
}

// PrivateCiphertext reads a payload's ciphertext, signing the request with key (which must
// control a recipient member's account) for chainID. It does not check the commitment: the
// caller does (and decrypts).
func (c *Client) PrivateCiphertext(ctx context.Context, chainID string, commitment [32]byte, key ed25519.PrivateKey) ([]byte, error) {
	h := hex.EncodeToString(commitment[:])
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/private/"+h+"/ciphertext", nil)
	if err != nil {
		return nil, err
	}
	SignPrivateRead(req.Header, key, chainID, commitment, time.Now().UnixMilli())
	var out PrivateCiphertext
	if err := c.send(req, &out); err != nil {
		return nil, err
	}
	ct, err := hex.DecodeString(out.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("node API: ciphertext is not hex: %w", err)
	}
	return ct, nil
}

// EncryptionKey reads owner's key ("member:NAME" or "identity:ID").
func (c *Client) EncryptionKey(ctx context.Context, owner string) (EncryptionKey, error) {
	var out EncryptionKey
	err := c.do(ctx, http.MethodGet, "/v1/encryption-keys/"+url.PathEscape(owner), nil, &out)
	return out, err
}

// EncryptionKeys lists every registered encryption key.
func (c *Client) EncryptionKeys(ctx context.Context) (EncryptionKeysResponse, error) {
	var out EncryptionKeysResponse
	err := c.do(ctx, http.MethodGet, "/v1/encryption-keys", nil, &out)
	return out, err
}

// PrivateEscrow reads the public part of a private escrow.
func (c *Client) PrivateEscrow(ctx context.Context, id string) (PrivateEscrow, error) {
	var out PrivateEscrow
	err := c.do(ctx, http.MethodGet, "/v1/private-escrows/"+url.PathEscape(id), nil, &out)
	return out, err
}
