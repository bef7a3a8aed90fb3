package state

import "fmt"

// Identities and claims.
//
// Who may do what (the consortium's rule, from issue 4): anyone registers a person; only a
// member's controller registers an organization; a device is registered by the controller of the
// organization identity that owns it. Claims are issued only by a member's controller acting as
// the controller of the issuer identity, and revoked only by the issuer identity's controller.
// Claims expire by block time (Claim.ExpiresMs): see ClaimStatus.

func (ov *overlay) identity(id string) (*Identity, error) {
	var idn Identity
	ok, err := ov.load(keyIdentity(id), &idn)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: identity %q", ErrUnknown, id)
	}
	return &idn, nil
}

func (ov *overlay) identityRegister(from Address, op *IdentityRegister) error {
	if err := checkID(op.ID); err != nil {
		return err
	}
	if ok, err := ov.exists(keyIdentity(op.ID)); err != nil || ok {
		return existsErr(err, "identity "+op.ID)
	}
	if op.Name != "" && !validName(op.Name) {
		return fmt.Errorf("%w: identity name %q", ErrBadField, op.Name)
	}
	if len(op.Keys) > MaxIdentityKeys {
		return fmt.Errorf("%w: %d keys, limit %d", ErrBadField, len(op.Keys), MaxIdentityKeys)
	}
	for _, k := range op.Keys {
		if !validPubKey(k) {
			return fmt.Errorf("%w: identity key is not a usable ed25519 public key", ErrBadField)
		}
	}
	if !distinctKeys(op.Keys) {
		return fmt.Errorf("%w: identity key repeated", ErrBadField)
	}
	switch op.Kind {
	case KindPerson:
		if op.Owner != "" {
			return fmt.Errorf("%w: only a device has an owner", ErrBadField)
		}
	case KindOrganization:
		if op.Owner != "" {
			return fmt.Errorf("%w: only a device has an owner", ErrBadField)
		}
		if err := ov.requireMember(from); err != nil {
			return err
		}
	case KindDevice:
		if op.Owner == "" {
			return fmt.Errorf("%w: a device needs an owner organization", ErrBadField)
		}
		org, err := ov.identity(op.Owner)
		if err != nil {
			return err
		}
		if org.Kind != KindOrganization {
			return fmt.Errorf("%w: owner %q is a %s, not an organization", ErrBadField, op.Owner, org.Kind)
		}
		if org.Controller != from {
			return fmt.Errorf("%w: of organization %q", ErrNotController, op.Owner)
		}
	default:
		return fmt.Errorf("%w: identity kind %q", ErrBadField, op.Kind)
	}
	return ov.store(keyIdentity(op.ID), &Identity{ID: op.ID, Kind: op.Kind, Name: op.Name,
		Controller: from, Keys: op.Keys, Owner: op.Owner, Height: ov.blk.Height})
}

func (ov *overlay) claimIssue(from Address, op *ClaimIssue) error {
	if err := checkID(op.ID); err != nil {
		return err
	}
	if ok, err := ov.exists(keyClaim(op.ID)); err != nil || ok {
		return existsErr(err, "claim "+op.ID)
	}
	if !validName(op.Schema) {
		return fmt.Errorf("%w: schema %q", ErrBadField, op.Schema)
	}
	if op.ExpiresMs != 0 && op.ExpiresMs <= ov.blk.TimeMs {
		return fmt.Errorf("%w: expiry %d is not after the block time %d", ErrBadField, op.ExpiresMs, ov.blk.TimeMs)
	}
	if err := ov.requireMember(from); err != nil {
		return err
	}
	issuer, err := ov.identity(op.Issuer)
	if err != nil {
		return err
	}
	if issuer.Controller != from {
		return fmt.Errorf("%w: of issuer %q", ErrNotController, op.Issuer)
	}
	if _, err := ov.identity(op.Subject); err != nil {
		return err
	}
	return ov.store(keyClaim(op.ID), &Claim{ID: op.ID, Issuer: op.Issuer, Subject: op.Subject,
		Schema: op.Schema, ContentHash: op.ContentHash, IssuedBy: from, Height: ov.blk.Height,
		TimeMs: ov.blk.TimeMs, ExpiresMs: op.ExpiresMs})
}

func (ov *overlay) claimRevoke(from Address, op *ClaimRevoke) error {
	var c Claim
	ok, err := ov.load(keyClaim(op.ID), &c)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: claim %q", ErrUnknown, op.ID)
	}
	issuer, err := ov.identity(c.Issuer)
	if err != nil {
		return err
	}
	switch {
	case issuer.Controller != from:
		return fmt.Errorf("%w of claim %q", ErrNotIssuer, op.ID)
	case c.Revoked:
		return ErrClaimRevoked
	}
	c.Revoked, c.RevokedHeight = true, ov.blk.Height
	return ov.store(keyClaim(op.ID), &c)
}

// statusAt is a claim's status at block time nowMs.
func (c *Claim) statusAt(nowMs int64) ClaimStatus {
	switch {
	case c.Revoked:
		return ClaimRevoked
	case c.ExpiresMs != 0 && nowMs >= c.ExpiresMs:
		return ClaimExpired
	}
	return ClaimValid
}
