package state

import (
	"errors"
	"fmt"
)

// Records of the consortium's state, as queries return them and as they are stored (the
// deterministic CBOR of each is the stored value the state root commits to). JSON tags are for
// the node's API.

// Rejections of operations. Every rejected transaction's error wraps one of these (or one of the
// transfer errors in tx.go), so that errors.Is tells a client why.
var (
	ErrBadField   = errors.New("state: invalid field")
	ErrBadID      = errors.New("state: invalid ID (1-64 of A-Z a-z 0-9 . _ : -)")
	ErrBadSymbol  = errors.New("state: invalid asset symbol (2-12 of A-Z 0-9)")
	ErrBadSigners = errors.New("state: invalid signatories or quorum")
	ErrBadHeight  = errors.New("state: height not acceptable")
	ErrExists     = errors.New("state: already exists")
	ErrUnknown    = errors.New("state: does not exist")
	// ErrNotAuthorized: valid signatures, but not enough of the right ones for the sender. It is
	// a kind of ErrBadSignature.
	ErrNotAuthorized    = fmt.Errorf("%w: signatures do not authorise the sender", ErrBadSignature)
	ErrNotMember        = errors.New("state: sender is not a consortium member's controller")
	ErrNotIssuer        = errors.New("state: sender is not the issuer")
	ErrNotOwner         = errors.New("state: sender is not the owner")
	ErrNotController    = errors.New("state: sender is not the identity's controller")
	ErrNotArbiter       = errors.New("state: sender is not the arbiter and no valid preimage was given")
	ErrNotDepositor     = errors.New("state: sender is not the depositor")
	ErrNotEligible      = errors.New("state: identity is not eligible in this ballot")
	ErrMaxSupply        = errors.New("state: mint would exceed the maximum supply")
	ErrBadPreimage      = errors.New("state: preimage does not match the hash-lock")
	ErrEscrowClosed     = errors.New("state: escrow already released or refunded")
	ErrEscrowExpired    = errors.New("state: escrow deadline has passed")
	ErrEscrowNotExpired = errors.New("state: escrow deadline has not passed")
	ErrClaimRevoked     = errors.New("state: claim already revoked")
	ErrBallotClosed     = errors.New("state: ballot is closed")
	ErrDoubleVote       = errors.New("state: already voted")
	ErrProposalClosed   = errors.New("state: proposal is no longer open")
)

// Not-found answers of the queries. Each wraps ErrUnknown as well.
var (
	ErrAssetNotFound    = notFound("asset")
	ErrItemNotFound     = notFound("item")
	ErrIdentityNotFound = notFound("identity")
	ErrClaimNotFound    = notFound("claim")
	ErrNotaryNotFound   = notFound("notarized hash")
	ErrEscrowNotFound   = notFound("escrow")
	ErrBallotNotFound   = notFound("ballot")
	ErrProposalNotFound = notFound("proposal")
)

type notFoundError struct{ what string }

func (e *notFoundError) Error() string        { return "state: " + e.what + " not found" }
func (e *notFoundError) Is(target error) bool { return target == ErrUnknown }

func notFound(what string) error { return &notFoundError{what} }

// SignerSet is a multi-signature account's signatories (ed25519 public keys) and quorum.
type SignerSet struct {
	Signers [][]byte `cbor:"1,keyasint" json:"signers"`
	Quorum  uint32   `cbor:"2,keyasint" json:"quorum"`
}

// Asset is a fungible asset class. Supply is what exists: minted minus burned, including what
// escrows hold.
type Asset struct {
	Symbol    string  `cbor:"1,keyasint" json:"symbol"`
	Name      string  `cbor:"2,keyasint" json:"name"`
	Decimals  uint8   `cbor:"3,keyasint" json:"decimals"`
	MaxSupply uint64  `cbor:"4,keyasint" json:"max_supply"` // 0: unlimited
	Supply    uint64  `cbor:"5,keyasint" json:"supply"`
	Issuer    Address `cbor:"6,keyasint" json:"issuer"`
	Height    uint64  `cbor:"7,keyasint" json:"height"` // created at
}

// AssetBalance is an account's holding of one asset.
type AssetBalance struct {
	Symbol string `json:"symbol"`
	Amount uint64 `json:"amount"`
}

// Item is a unique asset. Events counts its history's entries.
type Item struct {
	ID           string  `cbor:"1,keyasint" json:"id"`
	MetadataHash Hash    `cbor:"2,keyasint" json:"metadata_hash"`
	Owner        Address `cbor:"3,keyasint" json:"owner"`
	Registrar    Address `cbor:"4,keyasint" json:"registrar"`
	Height       uint64  `cbor:"5,keyasint" json:"height"`
	Events       uint64  `cbor:"6,keyasint" json:"events"`
}

// Item history events.
const (
	EventRegister = "register"
	EventTransfer = "transfer"
)

// ItemEvent is one entry of an item's append-only history: the Seq-th (from 0) thing that
// happened to it. For a registration, From is the registrar.
type ItemEvent struct {
	Seq    uint64  `cbor:"1,keyasint" json:"seq"`
	Event  string  `cbor:"2,keyasint" json:"event"`
	From   Address `cbor:"3,keyasint" json:"from"`
	To     Address `cbor:"4,keyasint" json:"to"`
	Tx     Hash    `cbor:"5,keyasint" json:"tx"`
	Height uint64  `cbor:"6,keyasint" json:"height"`
	TimeMs int64   `cbor:"7,keyasint" json:"time_ms"`
}

// Identity is a registered person, organization or device.
type Identity struct {
	ID         string   `cbor:"1,keyasint" json:"id"`
	Kind       string   `cbor:"2,keyasint" json:"kind"`
	Name       string   `cbor:"3,keyasint,omitempty" json:"name,omitempty"`
	Controller Address  `cbor:"4,keyasint" json:"controller"`
	Keys       [][]byte `cbor:"5,keyasint,omitempty" json:"keys,omitempty"`
	Owner      string   `cbor:"6,keyasint,omitempty" json:"owner,omitempty"` // a device's organization
	Height     uint64   `cbor:"7,keyasint" json:"height"`
}

// Claim is an attestation by an issuer identity about a subject identity.
type Claim struct {
	ID            string  `cbor:"1,keyasint" json:"id"`
	Issuer        string  `cbor:"2,keyasint" json:"issuer"`
	Subject       string  `cbor:"3,keyasint" json:"subject"`
	Schema        string  `cbor:"4,keyasint" json:"schema"`
	ContentHash   Hash    `cbor:"5,keyasint" json:"content_hash"`
	IssuedBy      Address `cbor:"6,keyasint" json:"issued_by"` // the issuer's controller that signed
	Height        uint64  `cbor:"7,keyasint" json:"height"`
	TimeMs        int64   `cbor:"8,keyasint" json:"time_ms"`
	ExpiresMs     int64   `cbor:"9,keyasint,omitempty" json:"expires_ms,omitempty"` // 0: never
	Revoked       bool    `cbor:"10,keyasint,omitempty" json:"revoked,omitempty"`
	RevokedHeight uint64  `cbor:"11,keyasint,omitempty" json:"revoked_height,omitempty"`
	// Private: the content is a private payload (PrivateClaimIssue) and ContentHash is its
	// commitment.
	Private bool `cbor:"12,keyasint,omitempty" json:"private,omitempty"`
}

// ClaimStatus is what a verifier learns about a claim at a given time.
type ClaimStatus string

const (
	ClaimValid   ClaimStatus = "valid"
	ClaimExpired ClaimStatus = "expired"
	ClaimRevoked ClaimStatus = "revoked"
	ClaimUnknown ClaimStatus = "unknown"
)

// NotaryRecord says who anchored a document hash, and when.
type NotaryRecord struct {
	Hash   Hash    `cbor:"1,keyasint" json:"hash"`
	By     Address `cbor:"2,keyasint" json:"by"`
	Height uint64  `cbor:"3,keyasint" json:"height"`
	TimeMs int64   `cbor:"4,keyasint" json:"time_ms"`
	Tx     Hash    `cbor:"5,keyasint" json:"tx"`
}

// Escrow states.
const (
	EscrowOpen     = "open"
	EscrowReleased = "released"
	EscrowRefunded = "refunded"
)

// Escrow is locked value; see EscrowCreate for its rules.
type Escrow struct {
	ID          string   `cbor:"1,keyasint" json:"id"`
	Depositor   Address  `cbor:"2,keyasint" json:"depositor"`
	Beneficiary Address  `cbor:"3,keyasint" json:"beneficiary"`
	Asset       string   `cbor:"4,keyasint,omitempty" json:"asset,omitempty"` // "": native
	Amount      uint64   `cbor:"5,keyasint" json:"amount"`
	Arbiter     *Address `cbor:"6,keyasint,omitempty" json:"arbiter,omitempty"`
	HashLock    *Hash    `cbor:"7,keyasint,omitempty" json:"hash_lock,omitempty"`
	Deadline    uint64   `cbor:"8,keyasint" json:"deadline"`
	Status      string   `cbor:"9,keyasint" json:"status"`
	Height      uint64   `cbor:"10,keyasint" json:"height"`                            // created at
	ClosedAt    uint64   `cbor:"11,keyasint,omitempty" json:"closed_height,omitempty"` // released or refunded at
	ClosedBy    *Address `cbor:"12,keyasint,omitempty" json:"closed_by,omitempty"`     // who released or refunded
	Preimage    []byte   `cbor:"13,keyasint,omitempty" json:"preimage,omitempty"`      // revealed by a release
}

// Ballot is a vote among identities. Tally[i] counts the votes for Options[i].
type Ballot struct {
	ID       string   `cbor:"1,keyasint" json:"id"`
	Title    string   `cbor:"2,keyasint" json:"title"`
	Creator  Address  `cbor:"3,keyasint" json:"creator"`
	Options  []string `cbor:"4,keyasint" json:"options"`
	Eligible []string `cbor:"5,keyasint" json:"eligible"`
	Closes   uint64   `cbor:"6,keyasint" json:"closes"`
	Tally    []uint64 `cbor:"7,keyasint" json:"tally"`
	Height   uint64   `cbor:"8,keyasint" json:"height"`
}

// Tally is a ballot's count as of the last applied block.
type Tally struct {
	Ballot   string   `json:"ballot"`
	Options  []string `json:"options"`
	Counts   []uint64 `json:"counts"`
	Votes    uint64   `json:"votes"`
	Eligible int      `json:"eligible"`
	Closed   bool     `json:"closed"`
}

// Member is a consortium member: an organization and the account that acts for it.
type Member struct {
	Name       string  `cbor:"1,keyasint" json:"name"`
	Controller Address `cbor:"2,keyasint" json:"controller"`
}

// Validator is a member of the consensus committee: a consensus key, the libp2p peer ID of the
// node that runs it (for the p2p allowlist), and its voting power.
type Validator struct {
	Name   string `cbor:"1,keyasint" json:"name"`
	PubKey []byte `cbor:"2,keyasint" json:"pub_key"`
	PeerID string `cbor:"3,keyasint,omitempty" json:"peer_id,omitempty"`
	Power  uint64 `cbor:"4,keyasint" json:"power"`
}

// ValidatorSetAt is the validator set in force from block Height on (until the next one).
// Prev is the Height of the set it follows (0 for the first change, and for genesis): the
// snapshots form a chain, which lets a light client prove that a change is the very next one.
type ValidatorSetAt struct {
	Height     uint64      `cbor:"1,keyasint" json:"height"`
	Validators []Validator `cbor:"2,keyasint" json:"validators"`
	Prev       uint64      `cbor:"3,keyasint,omitempty" json:"prev,omitempty"`
}

// Param is one consortium parameter; see Params for the set.
type Param struct {
	Name  string `cbor:"1,keyasint" json:"name"`
	Value uint64 `cbor:"2,keyasint" json:"value"`
}

// Threshold is the fraction of members whose yes votes pass a proposal: yes*Den >= Num*members.
type Threshold struct {
	Num uint32 `cbor:"1,keyasint" json:"num"`
	Den uint32 `cbor:"2,keyasint" json:"den"`
}

// Proposal states.
const (
	ProposalOpen     = "open"
	ProposalPassed   = "passed"
	ProposalRejected = "rejected"
	ProposalFailed   = "failed"  // passed, but the change could no longer be applied (see Reason)
	ProposalExpired  = "expired" // a validator change or upgrade whose height came too near before it passed
)

// Proposal is a governance proposal with its votes (member names).
type Proposal struct {
	ID              string     `cbor:"1,keyasint" json:"id"`
	Proposer        string     `cbor:"2,keyasint" json:"proposer"`
	AddMember       *Member    `cbor:"3,keyasint,omitempty" json:"add_member,omitempty"`
	RemoveMember    string     `cbor:"4,keyasint,omitempty" json:"remove_member,omitempty"`
	SetValidator    *Validator `cbor:"5,keyasint,omitempty" json:"set_validator,omitempty"`
	EffectiveHeight uint64     `cbor:"6,keyasint,omitempty" json:"effective_height,omitempty"`
	SetParam        *Param     `cbor:"7,keyasint,omitempty" json:"set_param,omitempty"`
	Height          uint64     `cbor:"8,keyasint" json:"height"`
	Yes             []string   `cbor:"9,keyasint,omitempty" json:"yes,omitempty"`
	No              []string   `cbor:"10,keyasint,omitempty" json:"no,omitempty"`
	Status          string     `cbor:"11,keyasint" json:"status"`
	Reason          string     `cbor:"12,keyasint,omitempty" json:"reason,omitempty"`
	DecidedAt       uint64     `cbor:"13,keyasint,omitempty" json:"decided_height,omitempty"`
	Upgrade         *Upgrade   `cbor:"14,keyasint,omitempty" json:"upgrade,omitempty"`
	CancelUpgrade   string     `cbor:"15,keyasint,omitempty" json:"cancel_upgrade,omitempty"`
}
