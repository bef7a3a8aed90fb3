package node

import "github.com/guild-ledger/guild/state"

// JSON shapes of the state queries of issue 4 (GET /v1/assets, /v1/items, ...). Records are the
// state package's own (their JSON tags are the API's keys), except that byte strings (public
// keys, preimages) are hex here, as everywhere in the API, rather than encoding/json's base64:
// the types below shadow those fields.

// SignersJSON is a multi-signature account's signatories (hex ed25519 public keys) and quorum.
type SignersJSON struct {
	Signers []string `json:"signers"`
	Quorum  uint32   `json:"quorum"`
}

// ItemResponse answers GET /v1/items/{id}: the item and its whole history, oldest first.
type ItemResponse struct {
	state.Item
	History []state.ItemEvent `json:"history"`
}

// IdentityResponse answers GET /v1/identities/{id}.
type IdentityResponse struct {
	state.Identity
	Keys []string `json:"keys,omitempty"` // hex ed25519 public keys
}

// ClaimResponse answers GET /v1/claims/{id}: the claim and whether it is valid, expired or
// revoked as of the latest block (AsOfHeight, at its time AsOfTimeMs). IssuerName and
// IssuerKind describe the issuer identity.
type ClaimResponse struct {
	state.Claim
	Status     state.ClaimStatus `json:"status"`
	IssuerName string            `json:"issuer_name,omitempty"`
	IssuerKind string            `json:"issuer_kind,omitempty"`
	AsOfHeight uint64            `json:"as_of_height"`
	AsOfTimeMs int64             `json:"as_of_time_ms"`
}

// EscrowResponse answers GET /v1/escrows/{id}.
type EscrowResponse struct {
	state.Escrow
	Preimage string `json:"preimage,omitempty"` // hex, revealed by a release
}

// BallotResponse answers GET /v1/ballots/{id}: the ballot with its tally (Tally[i] counts votes
// for Options[i]), the number of votes cast, and whether voting has closed.
type BallotResponse struct {
	state.Ballot
	Votes  uint64 `json:"votes"`
	Closed bool   `json:"closed"`
}

// ValidatorJSON is a validator with its consensus key in hex.
type ValidatorJSON struct {
	Name   string `json:"name"`
	PubKey string `json:"pub_key"`
	PeerID string `json:"peer_id,omitempty"`
	Power  uint64 `json:"power"`
}

// ValidatorSetJSON is the validator set in force from block Height on.
type ValidatorSetJSON struct {
	Height     uint64          `json:"height"`
	Validators []ValidatorJSON `json:"validators"`
	TotalPower uint64          `json:"total_power"`
}

// ValidatorsResponse answers GET /v1/validators: the set deciding the next block (Current, in
// force since Current.Height) and the sets that passed proposals have scheduled for later
// heights, in height order.
type ValidatorsResponse struct {
	NextHeight uint64             `json:"next_height"`
	Current    ValidatorSetJSON   `json:"current"`
	Scheduled  []ValidatorSetJSON `json:"scheduled"`
}

// ProposalJSON is a governance proposal as the API shows it.
type ProposalJSON struct {
	state.Proposal
	SetValidator *ValidatorJSON `json:"set_validator,omitempty"`
}

// ProposalsResponse answers GET /v1/proposals[?status=S]: proposals oldest first, with the
// threshold that passes one (yes*den >= num*members) and the number of members.
type ProposalsResponse struct {
	Proposals []ProposalJSON  `json:"proposals"`
	Threshold state.Threshold `json:"threshold"`
	Members   int             `json:"members"`
}

// MembersResponse answers GET /v1/members.
type MembersResponse struct {
	Members   []state.Member  `json:"members"`
	Threshold state.Threshold `json:"threshold"`
}

// ParamsResponse answers GET /v1/params: the parameters in force for the next block, by name.
type ParamsResponse struct {
	Params []state.Param `json:"params"`
}

// AssetResponse answers GET /v1/assets/{symbol}.
type AssetResponse = state.Asset

// NotaryResponse answers GET /v1/notary/{hash}: who anchored it, at which height and time, in
// which transaction.
type NotaryResponse = state.NotaryRecord
