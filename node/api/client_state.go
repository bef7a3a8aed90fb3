package api

import (
	"context"
	"net/http"
	"net/url"
)

// Client methods for the state queries of issue 4. A record that does not exist is an *Error
// matching ErrNotFound; a malformed ID is an *Error with status 400 and code bad_request.

func (c *Client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// Asset reads a fungible asset class by symbol.
func (c *Client) Asset(ctx context.Context, symbol string) (AssetResponse, error) {
	var out AssetResponse
	err := c.get(ctx, "/v1/assets/"+url.PathEscape(symbol), &out)
	return out, err
}

// Item reads a unique item with its history.
func (c *Client) Item(ctx context.Context, id string) (ItemResponse, error) {
	var out ItemResponse
	err := c.get(ctx, "/v1/items/"+url.PathEscape(id), &out)
	return out, err
}

// Identity reads a registered identity.
func (c *Client) Identity(ctx context.Context, id string) (IdentityResponse, error) {
	var out IdentityResponse
	err := c.get(ctx, "/v1/identities/"+url.PathEscape(id), &out)
	return out, err
}

// Claim reads a claim and its status (valid, expired, revoked) as of the latest block.
func (c *Client) Claim(ctx context.Context, id string) (ClaimResponse, error) {
	var out ClaimResponse
	err := c.get(ctx, "/v1/claims/"+url.PathEscape(id), &out)
	return out, err
}

// Notary reads who anchored a document hash (64 hex characters), and when.
func (c *Client) Notary(ctx context.Context, hash string) (NotaryResponse, error) {
	var out NotaryResponse
	err := c.get(ctx, "/v1/notary/"+url.PathEscape(hash), &out)
	return out, err
}

// Escrow reads an escrow.
func (c *Client) Escrow(ctx context.Context, id string) (EscrowResponse, error) {
	var out EscrowResponse
	err := c.get(ctx, "/v1/escrows/"+url.PathEscape(id), &out)
	return out, err
}

// Ballot reads a ballot with its tally.
func (c *Client) Ballot(ctx context.Context, id string) (BallotResponse, error) {
	var out BallotResponse
	err := c.get(ctx, "/v1/ballots/"+url.PathEscape(id), &out)
	return out, err
}

// Proposals lists governance proposals, oldest first; status ("" for all) filters them.
func (c *Client) Proposals(ctx context.Context, status string) (ProposalsResponse, error) {
	path := "/v1/proposals"
	if status != "" {
		path += "?status=" + url.QueryEscape(status)
	}
	var out ProposalsResponse
	err := c.get(ctx, path, &out)
	return out, err
}

// Proposal reads one governance proposal.
func (c *Client) Proposal(ctx context.Context, id string) (ProposalJSON, error) {
	var out ProposalJSON
	err := c.get(ctx, "/v1/proposals/"+url.PathEscape(id), &out)
	return out, err
}

// Validators reads the current validator set and the scheduled ones.
func (c *Client) Validators(ctx context.Context) (ValidatorsResponse, error) {
	var out ValidatorsResponse
	err := c.get(ctx, "/v1/validators", &out)
	return out, err
}

// Upgrades reads the protocol version in force and the upgrade schedule.
func (c *Client) Upgrades(ctx context.Context) (UpgradesResponse, error) {
	var out UpgradesResponse
	err := c.get(ctx, "/v1/upgrades", &out)
	return out, err
}

// Members reads the consortium's members and the threshold that passes a proposal.
func (c *Client) Members(ctx context.Context) (MembersResponse, error) {
	var out MembersResponse
	err := c.get(ctx, "/v1/members", &out)
	return out, err
}

// Params reads the consortium's parameters.
func (c *Client) Params(ctx context.Context) (ParamsResponse, error) {
	var out ParamsResponse
	err := c.get(ctx, "/v1/params", &out)
	return out, err
}
