package api

// JSON shapes of the state queries of issue 4 (GET /v1/assets, /v1/items, ...). They mirror the
// state package's records field for field, with the JSON keys the node has always used: hashes
// are 64 hex characters, addresses their checksummed text form ("guild..."), and byte strings
// (public keys, preimages) hex. This package keeps its own copies so that a client of the API
// does not link the store.

// SignersJSON is a multi-signature account's signatories (hex ed25519 public keys) and quorum.
type SignersJSON struct {
	Signers []string `json:"signers"`
	Quorum  uint32   `json:"quorum"`
}

// ItemResponse answers GET /v1/items/{id}: the item and its whole history, oldest first.
type ItemResponse struct {
	Item
	History []ItemEvent `json:"history"`
}

// IdentityResponse answers GET /v1/identities/{id}.
type IdentityResponse struct {
	Identity
	Keys []string `json:"keys,omitempty"` // hex ed25519 public keys
}

// ClaimResponse answers GET /v1/claims/{id}: the claim and whether it is valid, expired or
// revoked as of the latest block (AsOfHeight, at its time AsOfTimeMs). IssuerName and
// IssuerKind describe the issuer identity.
type ClaimResponse struct {
	Claim
	Status     string `json:"status"` // one of the Claim* statuses
	IssuerName string `json:"issuer_name,omitempty"`
	IssuerKind string `json:"issuer_kind,omitempty"`
	AsOfHeight uint64 `json:"as_of_height"`
	AsOfTimeMs int64  `json:"as_of_time_ms"`
}

// EscrowResponse answers GET /v1/escrows/{id}.
type EscrowResponse struct {
	Escrow
	Preimage string `json:"preimage,omitempty"` // hex, revealed by a release
}

// BallotResponse answers GET /v1/ballots/{id}: the ballot with its tally (Tally[i] counts votes
// for Options[i]), the number of votes cast, and whether voting has closed.
type BallotResponse struct {
	Ballot
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
	Proposal
	SetValidator *ValidatorJSON `json:"set_validator,omitempty"`
}

// ProposalsResponse answers GET /v1/proposals[?status=S]: proposals oldest first, with the
// threshold that passes one (yes*den >= num*members) and the number of members.
type ProposalsResponse struct {
	Proposals []ProposalJSON `json:"proposals"`
	Threshold Threshold      `json:"threshold"`
	Members   int            `json:"members"`
}

// MembersResponse answers GET /v1/members.
type MembersResponse struct {
	Members   []Member  `json:"members"`
	Threshold Threshold `json:"threshold"`
}

// ParamsResponse answers GET /v1/params: the parameters in force for the next block, by name.
type ParamsResponse struct {
	Params []Param `json:"params"`
}

// AssetResponse answers GET /v1/assets/{symbol}: a fungible asset class. Supply is what exists:
// minted minus burned, including what escrows hold.
type AssetResponse struct {
	Symbol    string `json:"symbol"`
	Name      string `json:"name"`
	Decimals  uint8  `json:"decimals"`
	MaxSupply uint64 `json:"max_supply"` // 0: unlimited
	Supply    uint64 `json:"supply"`
	Issuer    string `json:"issuer"`
	Height    uint64 `json:"height"` // created at
}

// NotaryResponse answers GET /v1/notary/{hash}: who anchored it, at which height and time, in
// which transaction.
type NotaryResponse struct {
	Hash   string `json:"hash"`
	By     string `json:"by"`
	Height uint64 `json:"height"`
	TimeMs int64  `json:"time_ms"`
	Tx     string `json:"tx"`
}

// AssetBalance is an account's holding of one asset.
type AssetBalance struct {
	Symbol string `json:"symbol"`
	Amount uint64 `json:"amount"`
}

// Item is a unique asset. Events counts its history's entries.
type Item struct {
	ID           string `json:"id"`
	MetadataHash string `json:"metadata_hash"`
	Owner        string `json:"owner"`
	Registrar    string `json:"registrar"`
	Height       uint64 `json:"height"`
	Events       uint64 `json:"events"`
}

// Item history events.
const (
	ItemEventRegister = "register"
	ItemEventTransfer = "transfer"
)

// ItemEvent is one entry of an item's history: the Seq-th (from 0) thing that happened to it.
// For a registration, From is the registrar.
type ItemEvent struct {
	Seq    uint64 `json:"seq"`
	Event  string `json:"event"`
	From   string `json:"from"`
	To     string `json:"to"`
	Tx     string `json:"tx"`
	Height uint64 `json:"height"`
	TimeMs int64  `json:"time_ms"`
}

// Identity is a registered person, organization or device (its keys are IdentityResponse's).
type Identity struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Name       string `json:"name,omitempty"`
	Controller string `json:"controller"`
	Owner      string `json:"owner,omitempty"` // a device's organization
	Height     uint64 `json:"height"`
}

// Claim statuses as of a given time.
const (
	ClaimValid   = "valid"
	ClaimExpired = "expired"
	ClaimRevoked = "revoked"
	ClaimUnknown = "unknown"
)

// Claim is an attestation by an issuer identity about a subject identity.
type Claim struct {
	ID            string `json:"id"`
	Issuer        string `json:"issuer"`
	Subject       string `json:"subject"`
	Schema        string `json:"schema"`
	ContentHash   string `json:"content_hash"`
	IssuedBy      string `json:"issued_by"` // the issuer's controller that signed
	Height        uint64 `json:"height"`
	TimeMs        int64  `json:"time_ms"`
	ExpiresMs     int64  `json:"expires_ms,omitempty"` // 0: never
	Revoked       bool   `json:"revoked,omitempty"`
	RevokedHeight uint64 `json:"revoked_height,omitempty"`
	Private       bool   `json:"private,omitempty"` // content_hash commits to a private payload
}

// Escrow states.
const (
	EscrowOpen     = "open"
	EscrowReleased = "released"
	EscrowRefunded = "refunded"
)

// Escrow is locked value (its revealed preimage is EscrowResponse's).
type Escrow struct {
	ID          string `json:"id"`
	Depositor   string `json:"depositor"`
	Beneficiary string `json:"beneficiary"`
	Asset       string `json:"asset,omitempty"` // "": native
	Amount      uint64 `json:"amount"`
	Arbiter     string `json:"arbiter,omitempty"`
	HashLock    string `json:"hash_lock,omitempty"`
	Deadline    uint64 `json:"deadline"`
	Status      string `json:"status"`
	Height      uint64 `json:"height"`                  // created at
	ClosedAt    uint64 `json:"closed_height,omitempty"` // released or refunded at
	ClosedBy    string `json:"closed_by,omitempty"`     // who released or refunded
}

// Ballot is a vote among identities. Tally[i] counts the votes for Options[i].
type Ballot struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Creator  string   `json:"creator"`
	Options  []string `json:"options"`
	Eligible []string `json:"eligible"`
	Closes   uint64   `json:"closes"`
	Tally    []uint64 `json:"tally"`
	Height   uint64   `json:"height"`
}

// Member is a consortium member: an organization and the account that acts for it.
type Member struct {
	Name       string `json:"name"`
	Controller string `json:"controller"`
}

// Param is one consortium parameter.
type Param struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// Threshold is the fraction of members whose yes votes pass a proposal: yes*Den >= Num*members.
type Threshold struct {
	Num uint32 `json:"num"`
	Den uint32 `json:"den"`
}

// Proposal states.
const (
	ProposalOpen     = "open"
	ProposalPassed   = "passed"
	ProposalRejected = "rejected"
	ProposalFailed   = "failed"  // passed, but the change could no longer be applied (see Reason)
	ProposalExpired  = "expired" // a validator change or upgrade whose height came too near before it passed
)

// Proposal is a governance proposal with its votes (member names); its validator change is
// ProposalJSON's.
type Proposal struct {
	ID              string   `json:"id"`
	Proposer        string   `json:"proposer"`
	AddMember       *Member  `json:"add_member,omitempty"`
	RemoveMember    string   `json:"remove_member,omitempty"`
	EffectiveHeight uint64   `json:"effective_height,omitempty"`
	SetParam        *Param   `json:"set_param,omitempty"`
	Height          uint64   `json:"height"`
	Yes             []string `json:"yes,omitempty"`
	No              []string `json:"no,omitempty"`
	Status          string   `json:"status"`
	Reason          string   `json:"reason,omitempty"`
	DecidedAt       uint64   `json:"decided_height,omitempty"`
	Upgrade         *Upgrade `json:"upgrade,omitempty"`
	CancelUpgrade   string   `json:"cancel_upgrade,omitempty"`
}

// Upgrade is a protocol upgrade scheduled by governance: from block Height on, blocks are made
// and executed under protocol Version. Proposal is the proposal that scheduled it (absent in a
// proposal's own upgrade); Status, in GET /v1/upgrades, is active (in force at the next block) or
// scheduled.
type Upgrade struct {
	Name     string `json:"name"`
	Height   uint64 `json:"height"`
	Version  uint32 `json:"version"`
	Info     string `json:"info,omitempty"`
	Proposal string `json:"proposal,omitempty"`
	Status   string `json:"status,omitempty"`
}

// Upgrade statuses in GET /v1/upgrades.
const (
	UpgradeActive    = "active"
	UpgradeScheduled = "scheduled"
)

// UpgradesResponse answers GET /v1/upgrades: the protocol version in force for the next block
// (NextHeight), the newest version the answering node's binary supports, and every upgrade
// scheduled, in force or not, oldest first (a cancelled one is gone; its proposal stays).
type UpgradesResponse struct {
	NextHeight       uint64    `json:"next_height"`
	ProtocolVersion  uint32    `json:"protocol_version"`
	SupportedVersion uint32    `json:"supported_version"`
	Upgrades         []Upgrade `json:"upgrades"`
}
