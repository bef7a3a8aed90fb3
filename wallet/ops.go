package wallet

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/state"
)

// Builders for the operations of issue 4. Each takes the Header (chain, sending account, nonce)
// and the operation, makes the cheap checks a wallet can make without state (positive amounts,
// well-formed IDs and symbols, one change per proposal) so that a mistake is caught before
// anyone types a passphrase, and returns the unsigned body. The state machine makes every check
// again, and the ones that need state. Sign the body with Sign (several keys for a
// multi-signature account) or save it for co-signing with WriteTxFile.

// Header says which chain a transaction is for, which account sends it, and with which nonce
// (the account's next, from the node). For a multi-signature account From is the account, not
// any signer's address.
type Header struct {
	ChainID string
	From    state.Address
	Nonce   uint64
}

// ErrNoChainID is a Header without a chain ID.
var ErrNoChainID = errors.New("wallet: empty chain ID")

func (h Header) body() (state.TxBody, error) {
	if h.ChainID == "" {
		return state.TxBody{}, ErrNoChainID
	}
	if h.From.IsZero() {
		return state.TxBody{}, fmt.Errorf("%w: no sending account", state.ErrBadField)
	}
	return state.TxBody{ChainID: h.ChainID, From: h.From, Nonce: h.Nonce}, nil
}

// CheckID reports whether id is an ID as the state machine defines it (1 to state.MaxIDLen of
// A-Z a-z 0-9 . _ : -), wrapping state.ErrBadID if not.
func CheckID(id string) error {
	if !state.ValidID(id) {
		return fmt.Errorf("%w: %q", state.ErrBadID, id)
	}
	return nil
}

// CheckSymbol reports whether s is an asset symbol (2-12 of A-Z 0-9), wrapping
// state.ErrBadSymbol if not.
func CheckSymbol(s string) error {
	if !state.ValidSymbol(s) {
		return fmt.Errorf("%w: %q", state.ErrBadSymbol, s)
	}
	return nil
}

func checkAmount(a uint64) error {
	if a == 0 {
		return state.ErrBadAmount
	}
	return nil
}

func checkTo(h Header, to state.Address) error {
	if to.IsZero() {
		return fmt.Errorf("%w: no recipient", state.ErrBadField)
	}
	if to == h.From {
		return state.ErrSelfTransfer
	}
	return nil
}

// build fills h into a body after check passes.
func build(h Header, check error, set func(*state.TxBody)) (state.TxBody, error) {
	if check != nil {
		return state.TxBody{}, check
	}
	b, err := h.body()
	if err != nil {
		return b, err
	}
	set(&b)
	return b, nil
}

// Transfer moves native currency.
func Transfer(h Header, op state.Transfer) (state.TxBody, error) {
	return build(h, errors.Join(checkAmount(op.Amount), checkTo(h, op.To)), func(b *state.TxBody) { b.Transfer = &op })
}

// SetSigners gives the sending account signatories and a quorum (or, empty, removes them).
func SetSigners(h Header, op state.SetSigners) (state.TxBody, error) {
	var err error
	switch {
	case len(op.Signers) == 0 && op.Quorum != 0:
		err = fmt.Errorf("%w: a quorum without signatories", state.ErrBadSigners)
	case len(op.Signers) > state.MaxSigners:
		err = fmt.Errorf("%w: %d signatories, limit %d", state.ErrBadSigners, len(op.Signers), state.MaxSigners)
	case len(op.Signers) > 0 && (op.Quorum == 0 || int(op.Quorum) > len(op.Signers)):
		err = fmt.Errorf("%w: quorum %d of %d signatories", state.ErrBadSigners, op.Quorum, len(op.Signers))
	}
	seen := map[string]bool{}
	for _, k := range op.Signers {
		if len(k) != ed25519.PublicKeySize {
			err = fmt.Errorf("%w: a signatory is not a 32-byte ed25519 public key", state.ErrBadSigners)
		} else if seen[string(k)] {
			err = fmt.Errorf("%w: a signatory appears twice", state.ErrBadSigners)
		}
		seen[string(k)] = true
	}
	return build(h, err, func(b *state.TxBody) { b.SetSigners = &op })
}

// AssetCreate creates a fungible asset class issued by the sender.
func AssetCreate(h Header, op state.AssetCreate) (state.TxBody, error) {
	err := CheckSymbol(op.Symbol)
	if err == nil && op.Decimals > state.MaxDecimals {
		err = fmt.Errorf("%w: decimals %d, at most %d", state.ErrBadField, op.Decimals, state.MaxDecimals)
	}
	if err == nil && op.Name == "" {
		err = fmt.Errorf("%w: an asset needs a name", state.ErrBadField)
	}
	return build(h, err, func(b *state.TxBody) { b.AssetCreate = &op })
}

// AssetMint mints units of an asset the sender issues.
func AssetMint(h Header, op state.AssetMint) (state.TxBody, error) {
	err := errors.Join(CheckSymbol(op.Symbol), checkAmount(op.Amount))
	if op.To.IsZero() {
		err = errors.Join(err, fmt.Errorf("%w: no recipient", state.ErrBadField))
	}
	return build(h, err, func(b *state.TxBody) { b.AssetMint = &op })
}

// AssetBurn destroys units of an asset from the sender's balance.
func AssetBurn(h Header, op state.AssetBurn) (state.TxBody, error) {
	return build(h, errors.Join(CheckSymbol(op.Symbol), checkAmount(op.Amount)), func(b *state.TxBody) { b.AssetBurn = &op })
}

// AssetTransfer moves units of an asset.
func AssetTransfer(h Header, op state.AssetTransfer) (state.TxBody, error) {
	err := errors.Join(CheckSymbol(op.Symbol), checkAmount(op.Amount), checkTo(h, op.To))
	return build(h, err, func(b *state.TxBody) { b.AssetTransfer = &op })
}

// ItemRegister registers a unique item.
func ItemRegister(h Header, op state.ItemRegister) (state.TxBody, error) {
	return build(h, CheckID(op.ID), func(b *state.TxBody) { b.ItemRegister = &op })
}

// ItemTransfer gives an item to another account.
func ItemTransfer(h Header, op state.ItemTransfer) (state.TxBody, error) {
	return build(h, errors.Join(CheckID(op.ID), checkTo(h, op.To)), func(b *state.TxBody) { b.ItemTransfer = &op })
}

// NotaryAnchor anchors a document hash.
func NotaryAnchor(h Header, op state.NotaryAnchor) (state.TxBody, error) {
	var err error
	if op.Hash == (state.Hash{}) {
		err = fmt.Errorf("%w: the all-zero hash", state.ErrBadField)
	}
	return build(h, err, func(b *state.TxBody) { b.NotaryAnchor = &op })
}

// EscrowCreate locks an amount for a beneficiary.
func EscrowCreate(h Header, op state.EscrowCreate) (state.TxBody, error) {
	err := errors.Join(CheckID(op.ID), checkAmount(op.Amount), checkTo(h, op.Beneficiary))
	if op.Asset != "" {
		err = errors.Join(err, CheckSymbol(op.Asset))
	}
	if op.Arbiter == nil && op.HashLock == nil {
		err = errors.Join(err, fmt.Errorf("%w: an escrow needs an arbiter, a hash-lock or both", state.ErrBadField))
	}
	if op.Deadline == 0 {
		err = errors.Join(err, fmt.Errorf("%w: an escrow needs a deadline height", state.ErrBadHeight))
	}
	return build(h, err, func(b *state.TxBody) { b.EscrowCreate = &op })
}

// EscrowRelease pays an escrow to its beneficiary (by its arbiter, or with the preimage).
func EscrowRelease(h Header, op state.EscrowRelease) (state.TxBody, error) {
	return build(h, CheckID(op.ID), func(b *state.TxBody) { b.EscrowRelease = &op })
}

// EscrowRefund returns an expired escrow to its depositor.
func EscrowRefund(h Header, op state.EscrowRefund) (state.TxBody, error) {
	return build(h, CheckID(op.ID), func(b *state.TxBody) { b.EscrowRefund = &op })
}

// IdentityRegister registers a person, organization or device controlled by the sender.
func IdentityRegister(h Header, op state.IdentityRegister) (state.TxBody, error) {
	err := CheckID(op.ID)
	switch op.Kind {
	case state.KindPerson, state.KindOrganization:
		if op.Owner != "" {
			err = errors.Join(err, fmt.Errorf("%w: only a device has an owner", state.ErrBadField))
		}
	case state.KindDevice:
		if op.Owner == "" {
			err = errors.Join(err, fmt.Errorf("%w: a device needs its owner organization", state.ErrBadField))
		}
	default:
		err = errors.Join(err, fmt.Errorf("%w: kind %q: want person, organization or device", state.ErrBadField, op.Kind))
	}
	for _, k := range op.Keys {
		if len(k) != ed25519.PublicKeySize {
			err = errors.Join(err, fmt.Errorf("%w: a key is not a 32-byte ed25519 public key", state.ErrBadField))
		}
	}
	return build(h, err, func(b *state.TxBody) { b.IdentityRegister = &op })
}

// ClaimIssue records an attestation by an issuer identity about a subject identity.
func ClaimIssue(h Header, op state.ClaimIssue) (state.TxBody, error) {
	err := errors.Join(CheckID(op.ID), CheckID(op.Issuer), CheckID(op.Subject))
	if op.Schema == "" {
		err = errors.Join(err, fmt.Errorf("%w: a claim needs a schema name", state.ErrBadField))
	}
	return build(h, err, func(b *state.TxBody) { b.ClaimIssue = &op })
}

// ClaimRevoke revokes a claim.
func ClaimRevoke(h Header, op state.ClaimRevoke) (state.TxBody, error) {
	return build(h, CheckID(op.ID), func(b *state.TxBody) { b.ClaimRevoke = &op })
}

// BallotCreate opens a ballot.
func BallotCreate(h Header, op state.BallotCreate) (state.TxBody, error) {
	err := CheckID(op.ID)
	if len(op.Options) < 2 || len(op.Options) > state.MaxBallotOptions {
		err = errors.Join(err, fmt.Errorf("%w: %d options, want 2..%d", state.ErrBadField, len(op.Options), state.MaxBallotOptions))
	}
	if len(op.Eligible) == 0 {
		err = errors.Join(err, fmt.Errorf("%w: nobody is eligible", state.ErrBadField))
	}
	for _, id := range op.Eligible {
		err = errors.Join(err, CheckID(id))
	}
	return build(h, err, func(b *state.TxBody) { b.BallotCreate = &op })
}

// BallotVote casts an identity's vote.
func BallotVote(h Header, op state.BallotVote) (state.TxBody, error) {
	return build(h, errors.Join(CheckID(op.ID), CheckID(op.Identity)), func(b *state.TxBody) { b.BallotVote = &op })
}

// GovPropose puts one change to the members' vote.
func GovPropose(h Header, op state.GovPropose) (state.TxBody, error) {
	err := CheckID(op.ID)
	changes := 0
	for _, set := range []bool{op.AddMember != nil, op.RemoveMember != "", op.SetValidator != nil, op.SetParam != nil,
		op.Upgrade != nil, op.CancelUpgrade != ""} {
		if set {
			changes++
		}
	}
	if changes != 1 {
		err = errors.Join(err, fmt.Errorf("%w: a proposal makes exactly one change, this one %d", state.ErrBadField, changes))
	}
	if op.Upgrade != nil && op.Upgrade.Height == 0 {
		err = errors.Join(err, fmt.Errorf("%w: an upgrade needs the height it takes effect at", state.ErrBadHeight))
	}
	if op.SetValidator != nil {
		if op.EffectiveHeight == 0 {
			err = errors.Join(err, fmt.Errorf("%w: a validator change needs the height it takes effect at", state.ErrBadHeight))
		}
		if op.SetValidator.Power > 0 && len(op.SetValidator.PubKey) != ed25519.PublicKeySize {
			err = errors.Join(err, fmt.Errorf("%w: a validator needs its 32-byte ed25519 consensus key", state.ErrBadField))
		}
	}
	return build(h, err, func(b *state.TxBody) { b.GovPropose = &op })
}

// GovVote is a member's vote on a proposal.
func GovVote(h Header, op state.GovVote) (state.TxBody, error) {
	return build(h, CheckID(op.ID), func(b *state.TxBody) { b.GovVote = &op })
}

// Sign signs body with every key (one for a plain account; a quorum of signatories for a
// multi-signature account) and returns the transaction.
func Sign(body state.TxBody, keys ...ed25519.PrivateKey) (*state.Tx, error) {
	if len(keys) == 0 {
		return nil, errors.New("wallet: no key to sign with")
	}
	tx := &state.Tx{Body: body}
	for _, k := range keys {
		if err := AddSignature(tx, k); err != nil {
			return nil, err
		}
	}
	return tx, nil
}

// AddSignature adds key's signature to tx (an officer co-signing). A key that already signed is
// refused.
func AddSignature(tx *state.Tx, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("wallet: not an ed25519 private key")
	}
	if tx.Body.ChainID == "" {
		return ErrNoChainID
	}
	if err := state.CoSign(tx, key); err != nil {
		return fmt.Errorf("wallet: signing: %w", err)
	}
	return nil
}

// Encode gives a signed transaction's bytes, to submit with api.Client.SubmitTx, and its hash
// (its ID).
func Encode(tx *state.Tx) ([]byte, state.Hash, error) {
	if len(tx.Sigs) == 0 {
		return nil, state.Hash{}, errors.New("wallet: the transaction is not signed")
	}
	raw, err := tx.Encode()
	if err != nil {
		return nil, state.Hash{}, fmt.Errorf("wallet: encoding transaction: %w", err)
	}
	return raw, state.HashTx(raw), nil
}
