package state

// Transaction operations beyond Transfer. Each is one optional field of TxBody (field numbers are
// fixed forever: see TxBody); exactly one is set in a transaction. Every operation is subject,
// before its own checks, to the checks of every transaction: right chain, valid signatures, the
// sender's authorisation (ErrNotAuthorized: see SetSigners) and exactly the sender's next nonce
// (ErrBadNonce). A rejected operation changes nothing, not even the nonce; an applied one
// increments the sender's nonce. Each operation's own checks run in the order its comment lists
// them, and the first that fails is the transaction's error.
//
// Identifiers chosen by the sender (asset symbols aside) are IDs: 1 to MaxIDLen characters of
// A-Z a-z 0-9 and . _ : - (so that they are safe in URLs, file names and store keys). Free-text
// fields (names, options, schema names) are 1 to MaxNameLen bytes of printable UTF-8.

// Limits on operation fields.
const (
	MaxIDLen          = 64
	MaxNameLen        = 64
	MaxSigners        = 16  // signatories of one account, and signatures on one transaction
	MaxIdentityKeys   = 8   // public keys bound to one identity
	MaxBallotOptions  = 16  // options of one ballot
	MaxBallotEligible = 128 // identities eligible in one ballot (the transaction size limit binds first)
	MaxDecimals       = 18
	// MinValidatorDelay: a validator change passed in block h takes effect at a height of at least
	// h+MinValidatorDelay, so every node has applied the block that passed it before the consensus
	// core for the new set must exist.
	MinValidatorDelay = 2
)

// SetSigners (field 5) gives the sender's account a set of signatories and a quorum: from the
// next transaction on, a transaction from the account must carry valid signatures of at least
// Quorum distinct signatories, and no signature by anyone else. The transaction setting them must
// itself be authorised under the rule in force before it (the account's own key, or the current
// quorum of the current signatories). Checks: Signers holds 1..MaxSigners distinct 32-byte ed25519
// public keys, none of small order, and 1 <= Quorum <= len(Signers) (else ErrBadSigners); or
// Signers is empty and Quorum is 0, which removes the set and returns control to the key whose
// hash is the address.
type SetSigners struct {
	Signers [][]byte `cbor:"1,keyasint,omitempty"`
	Quorum  uint32   `cbor:"2,keyasint,omitempty"`
}

// AssetCreate (field 6) creates a fungible asset class whose issuer is the sender. Checks, in
// order: Symbol is 2..12 characters of A-Z 0-9 (ErrBadSymbol); Name is a valid name and Decimals
// <= MaxDecimals (ErrBadField); the sender is a member's controller (ErrNotMember); the symbol is
// not taken (ErrExists). MaxSupply 0 means unlimited (up to 2^64-1).
type AssetCreate struct {
	Symbol    string `cbor:"1,keyasint"`
	Name      string `cbor:"2,keyasint"`
	Decimals  uint8  `cbor:"3,keyasint,omitempty"`
	MaxSupply uint64 `cbor:"4,keyasint,omitempty"`
}

// AssetMint (field 7) creates Amount new units of Symbol in To's balance. Checks: the asset exists
// (ErrUnknown), the sender is its issuer (ErrNotIssuer), Amount > 0 (ErrBadAmount), and the new
// supply neither overflows (ErrOverflow) nor exceeds MaxSupply (ErrMaxSupply).
type AssetMint struct {
	Symbol string  `cbor:"1,keyasint"`
	To     Address `cbor:"2,keyasint"`
	Amount uint64  `cbor:"3,keyasint"`
}

// AssetBurn (field 8) destroys Amount units of Symbol from the sender's own balance, reducing the
// supply. Checks: the asset exists (ErrUnknown), Amount > 0 (ErrBadAmount), and the sender holds
// Amount (ErrNoFunds).
type AssetBurn struct {
	Symbol string `cbor:"1,keyasint"`
	Amount uint64 `cbor:"2,keyasint"`
}

// AssetTransfer (field 9) moves Amount units of Symbol from the sender to To. Checks: the asset
// exists (ErrUnknown), Amount > 0 (ErrBadAmount), To is not the sender (ErrSelfTransfer), and the
// sender holds Amount (ErrNoFunds). No balance can overflow: the supply fits in a uint64.
type AssetTransfer struct {
	Symbol string  `cbor:"1,keyasint"`
	To     Address `cbor:"2,keyasint"`
	Amount uint64  `cbor:"3,keyasint"`
}

// ItemRegister (field 10) registers a unique item (a diamond, a medicine batch, a land title).
// Owner is the sender unless set. Anyone may register. Checks: ID is an ID (ErrBadID) not
// registered before (ErrExists). The item's history starts with a "register" event.
type ItemRegister struct {
	ID           string   `cbor:"1,keyasint"`
	MetadataHash Hash     `cbor:"2,keyasint"`
	Owner        *Address `cbor:"3,keyasint,omitempty"`
}

// ItemTransfer (field 11) gives an item to To and appends a "transfer" event to its history.
// Checks: the item exists (ErrUnknown), the sender owns it (ErrNotOwner), and To is not the
// current owner (ErrSelfTransfer).
type ItemTransfer struct {
	ID string  `cbor:"1,keyasint"`
	To Address `cbor:"2,keyasint"`
}

// NotaryAnchor (field 12) records that the sender anchored a document's hash at this block's
// height and time. Anyone may anchor. Checks: the hash is not all zeros (ErrBadField) and has
// never been anchored (ErrExists: the first anchor is the one that proves priority).
type NotaryAnchor struct {
	Hash Hash `cbor:"1,keyasint"`
}

// EscrowCreate (field 13) locks Amount of the native currency (Asset "") or of an asset, taken
// from the sender (the depositor), for Beneficiary. It is released to the beneficiary by the
// Arbiter, or by anyone presenting a preimage whose SHA-256 is HashLock, at heights below
// Deadline; from height Deadline on, only a refund to the depositor is possible. Checks: ID is an
// ID not used before (ErrBadID, ErrExists); at least one of Arbiter and HashLock is set
// (ErrBadField); Beneficiary is not the depositor (ErrSelfTransfer); Deadline is above this
// block's height (ErrBadHeight); Amount > 0 (ErrBadAmount); the asset exists (ErrUnknown) and the
// depositor holds Amount (ErrNoFunds).
type EscrowCreate struct {
	ID          string   `cbor:"1,keyasint"`
	Beneficiary Address  `cbor:"2,keyasint"`
	Asset       string   `cbor:"3,keyasint,omitempty"`
	Amount      uint64   `cbor:"4,keyasint"`
	Arbiter     *Address `cbor:"5,keyasint,omitempty"`
	HashLock    *Hash    `cbor:"6,keyasint,omitempty"`
	Deadline    uint64   `cbor:"7,keyasint"`
}

// EscrowRelease (field 14) pays an open escrow to its beneficiary. Checks: the escrow exists
// (ErrUnknown) and is open (ErrEscrowClosed), this block's height is below its deadline
// (ErrEscrowExpired), and either the sender is its arbiter or Preimage hashes to its hash-lock
// (ErrNotArbiter otherwise; a preimage given to an escrow without a lock is ErrBadPreimage, as
// is a wrong one). The beneficiary's balance must not overflow (ErrOverflow).
type EscrowRelease struct {
	ID       string `cbor:"1,keyasint"`
	Preimage []byte `cbor:"2,keyasint,omitempty"`
}

// EscrowRefund (field 15) returns an open escrow to its depositor. Checks: the escrow exists
// (ErrUnknown) and is open (ErrEscrowClosed), the sender is the depositor (ErrNotDepositor), and
// this block's height is at or past the deadline (ErrEscrowNotExpired).
type EscrowRefund struct {
	ID string `cbor:"1,keyasint"`
}

// Identity kinds.
const (
	KindPerson       = "person"
	KindOrganization = "organization"
	KindDevice       = "device"
)

// IdentityRegister (field 16) registers an identity whose controller is the sender. Checks: ID is
// an ID not registered before (ErrBadID, ErrExists); Kind is one of person, organization, device
// (ErrBadField); Keys holds at most MaxIdentityKeys distinct 32-byte keys (ErrBadField);
// Name, if set, is a valid name. An organization may only be registered by a member's
// controller (ErrNotMember). A device names its Owner, an organization identity (ErrUnknown if
// there is none, ErrBadField if it is not an organization) whose controller must be the sender
// (ErrNotController); Owner must be empty for the other kinds (ErrBadField).
type IdentityRegister struct {
	ID    string   `cbor:"1,keyasint"`
	Kind  string   `cbor:"2,keyasint"`
	Name  string   `cbor:"3,keyasint,omitempty"`
	Keys  [][]byte `cbor:"4,keyasint,omitempty"`
	Owner string   `cbor:"5,keyasint,omitempty"`
}

// ClaimIssue (field 17) records an attestation by the Issuer identity about the Subject identity:
// a schema name (e.g. "kyc/v1") and the hash of the claim's content, which stays off chain.
// ExpiresMs, if nonzero, is the block time (unix milliseconds) from which the claim reads as
// expired: block time, not height, because attestations expire on calendar dates. Checks: ID is
// an ID not used before (ErrBadID, ErrExists); Schema is a valid name and ExpiresMs, if set, is
// after this block's time (ErrBadField); the sender is a member's controller (ErrNotMember: only
// consortium members attest) and the controller of Issuer (ErrUnknown, ErrNotController); Subject
// exists (ErrUnknown).
type ClaimIssue struct {
	ID          string `cbor:"1,keyasint"`
	Issuer      string `cbor:"2,keyasint"`
	Subject     string `cbor:"3,keyasint"`
	Schema      string `cbor:"4,keyasint"`
	ContentHash Hash   `cbor:"5,keyasint"`
	ExpiresMs   int64  `cbor:"6,keyasint,omitempty"`
}

// ClaimRevoke (field 18) revokes a claim for good. Checks: the claim exists (ErrUnknown), the
// sender is the controller of its issuer identity (ErrNotIssuer), and it is not already revoked
// (ErrClaimRevoked). An expired claim may still be revoked.
type ClaimRevoke struct {
	ID string `cbor:"1,keyasint"`
}

// BallotCreate (field 19) opens a ballot. Anyone may create one. Checks: ID is an ID not used
// before (ErrBadID, ErrExists); Title, if set, is a valid name, there are 2..MaxBallotOptions
// distinct valid option names and 1..MaxBallotEligible distinct identity IDs (ErrBadField);
// Closes is above this block's height (ErrBadHeight); each eligible identity is registered
// (ErrUnknown). Votes are accepted in blocks below Closes.
type BallotCreate struct {
	ID       string   `cbor:"1,keyasint"`
	Title    string   `cbor:"2,keyasint"`
	Options  []string `cbor:"3,keyasint"`
	Eligible []string `cbor:"4,keyasint"`
	Closes   uint64   `cbor:"5,keyasint"`
}

// BallotVote (field 20) casts Identity's vote for option index Option. Checks: the ballot exists
// (ErrUnknown) and this block's height is below its Closes (ErrBallotClosed); Identity is
// eligible (ErrNotEligible) and the sender is its controller (ErrNotController); Option is an
// index of the ballot's options (ErrBadField); the identity has not voted in it (ErrDoubleVote).
type BallotVote struct {
	ID       string `cbor:"1,keyasint"`
	Identity string `cbor:"2,keyasint"`
	Option   uint32 `cbor:"3,keyasint"`
}

// GovPropose (field 21) puts one change to the consortium to its members' vote. Exactly one of
// AddMember, RemoveMember, SetValidator and SetParam is set. Checks: ID is an ID not used before
// (ErrBadID, ErrExists); the sender is a member's controller (ErrNotMember); the change is well
// formed (ErrBadField: see Member, Validator, Param) and makes sense now (AddMember: name and
// controller not already a member's, ErrExists; RemoveMember: a member, ErrUnknown;
// SetValidator: EffectiveHeight at least this block's height plus MinValidatorDelay and not
// before a validator change already passed, ErrBadHeight). The proposer's yes vote is counted at
// once, so with a threshold a single member meets, the proposal passes in its own transaction.
// A validator change with Power 0 removes the validator of that name.
//
// Upgrade schedules a protocol upgrade (upgrade.go): a valid name not used by an earlier upgrade
// (ErrBadField, ErrExists), info of at most MaxUpgradeInfoLen printable bytes, Version the next
// version after the last one scheduled (ErrBadField), Height at least this block's height plus
// MinUpgradeDelay (ErrBadHeight), and no other upgrade pending (ErrExists: cancel it first);
// checked again when it passes, and an open upgrade proposal expires once its height is too near.
// CancelUpgrade names a scheduled upgrade not yet in force (ErrUnknown, ErrBadHeight) and removes
// it from the schedule when it passes.
type GovPropose struct {
	ID              string     `cbor:"1,keyasint"`
	AddMember       *Member    `cbor:"2,keyasint,omitempty"`
	RemoveMember    string     `cbor:"3,keyasint,omitempty"`
	SetValidator    *Validator `cbor:"4,keyasint,omitempty"`
	EffectiveHeight uint64     `cbor:"5,keyasint,omitempty"`
	SetParam        *Param     `cbor:"6,keyasint,omitempty"`
	Upgrade         *Upgrade   `cbor:"7,keyasint,omitempty"`
	CancelUpgrade   string     `cbor:"8,keyasint,omitempty"`
}

// GovVote (field 22) is a member's vote on an open proposal. Checks: the proposal exists
// (ErrUnknown) and is open (ErrProposalClosed; a validator change also closes, as expired, once
// its EffectiveHeight is less than MinValidatorDelay blocks away); the sender is a member's
// controller (ErrNotMember) who has not voted on it (ErrDoubleVote). The proposal passes when the
// yes votes of current members reach the threshold, and is rejected when the no votes make that
// impossible. A passed change that can no longer be applied (say, the member it adds was added by
// another proposal meanwhile) leaves the proposal "failed" with the reason; the vote itself is
// applied either way.
type GovVote struct {
	ID  string `cbor:"1,keyasint"`
	Yes bool   `cbor:"2,keyasint,omitempty"`
}
