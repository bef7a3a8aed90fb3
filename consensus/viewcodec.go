package consensus

import "fmt"

// Shape and signature checks of the view-change messages. Like the rest of VerifyMessage they need
// no consensus state, only the validator set (who leads a view depends on the height's leader
// schedule, so that check is the core's: checkLeaders): every embedded message and signature is checked,
// at most one embedded view change or vote per validator, so the work a peer can cause is
// bounded by the validator set's size.

// checkPlain checks that an embedded message carries nothing but its own fields.
func checkPlain(m *Message) error {
	if m.Certificate != nil || m.Prepared != nil || m.PreparedView != 0 || m.ViewChanges != nil || m.Proposal != nil {
		return fmt.Errorf("%w: embedded %v carries nested fields", ErrMalformed, m.Type)
	}
	return nil
}

// checkVotes checks that votes name distinct validators of vals in ascending order and hold more
// than two thirds of the power.
func checkVotes(vals ValidatorSet, votes []Vote) error {
	n := len(vals.Validators)
	if len(votes) > n {
		return fmt.Errorf("%w: %d votes for %d validators", ErrDuplicate, len(votes), n)
	}
	var power uint64
	prev := int64(-1)
	for i, v := range votes {
		idx := int64(v.Validator)
		switch {
		case idx >= int64(n):
			return fmt.Errorf("vote %d: %w: index %d of %d", i, ErrUnknownValidator, idx, n)
		case idx == prev:
			return fmt.Errorf("vote %d: %w: validator %d votes twice", i, ErrDuplicate, idx)
		case idx < prev:
			return fmt.Errorf("vote %d: %w: votes not in ascending validator order", i, ErrMalformed)
		}
		prev = idx
		power += vals.Validators[idx].Power
	}
	if !isQuorum(power, vals.TotalPower()) {
		return fmt.Errorf("%w: %d of %d", ErrNoQuorum, power, vals.TotalPower())
	}
	return nil
}

// checkViewChange checks a ViewChange's form, and that its prepared certificate, if any, is for
// the digest and view it signs, in an earlier view of the same height, with a quorum of distinct
// prepares (that its pre-prepare is from that view's leader is the core's checkLeaders). needValue says whether the prepared value must be present:
// it must on the wire, and is left out inside a NewView.
func checkViewChange(vals ValidatorSet, m *Message, needValue bool) error {
	if m.View == 0 {
		return fmt.Errorf("%w: view change to view 0", ErrMalformed)
	}
	p := m.Prepared
	if p == nil {
		if m.Digest != (Digest{}) || m.PreparedView != 0 {
			return fmt.Errorf("%w: view change claims a prepared value without a certificate", ErrMalformed)
		}
		return nil
	}
	pp := &p.PrePrepare
	switch {
	case pp.Type != MsgPrePrepare:
		return fmt.Errorf("%w: prepared certificate holds a %v, not a pre-prepare", ErrMalformed, pp.Type)
	case pp.Height != m.Height || pp.View != m.PreparedView || pp.Digest != m.Digest:
		return fmt.Errorf("%w: prepared certificate is not for the slot and digest the view change signs", ErrMalformed)
	case pp.View >= m.View:
		return fmt.Errorf("%w: prepared in view %d, changing to view %d", ErrMalformed, pp.View, m.View)
	case needValue && len(pp.Value) == 0:
		return fmt.Errorf("%w: prepared certificate without its value", ErrMalformed)
	case len(pp.Value) != 0 && DigestOf(pp.Value) != pp.Digest:
		return fmt.Errorf("%w: prepared value does not match its digest", ErrMalformed)
	}
	if err := checkPlain(pp); err != nil {
		return err
	}
	if err := checkVotes(vals, p.Prepares); err != nil {
		return fmt.Errorf("%w: prepared certificate: %w", ErrMalformed, err)
	}
	return nil
}

// checkNewView checks a NewView's form (that it is from the leader of its slot is the core's
// checkLeaders, which knows the height's leader schedule): view changes for the
// same slot from distinct validators in ascending order holding more than two thirds of the power,
// and a proposal for the slot that re-proposes the highest prepared certificate among them, if
// any (PBFT §4.4: a value that may have been committed is re-proposed, never replaced).
func checkNewView(vals ValidatorSet, m *Message) error {
	n := len(vals.Validators)
	switch {
	case m.View == 0:
		return fmt.Errorf("%w: new view for view 0", ErrMalformed)
	case len(m.ViewChanges) > n:
		return fmt.Errorf("%w: %d view changes for %d validators", ErrDuplicate, len(m.ViewChanges), n)
	}
	var power uint64
	prev := int64(-1)
	for i := range m.ViewChanges {
		vc := &m.ViewChanges[i]
		switch {
		case vc.Type != MsgViewChange || vc.Height != m.Height || vc.View != m.View:
			return fmt.Errorf("%w: new view's entry %d is not a view change for its slot", ErrMalformed, i)
		case uint64(vc.From) >= uint64(n):
			return fmt.Errorf("%w: new view's entry %d: index %d of %d", ErrUnknownValidator, i, vc.From, n)
		case int64(vc.From) == prev:
			return fmt.Errorf("%w: new view holds two view changes from validator %d", ErrDuplicate, vc.From)
		case int64(vc.From) < prev:
			return fmt.Errorf("%w: new view's view changes not in ascending validator order", ErrMalformed)
		case len(vc.Value) != 0 || vc.Certificate != nil || vc.ViewChanges != nil || vc.Proposal != nil:
			return fmt.Errorf("%w: new view's entry %d carries nested fields", ErrMalformed, i)
		}
		prev = int64(vc.From)
		if err := checkViewChange(vals, vc, false); err != nil {
			return fmt.Errorf("new view's entry %d: %w", i, err)
		}
		power += vals.Validators[vc.From].Power
	}
	if !isQuorum(power, vals.TotalPower()) {
		return fmt.Errorf("%w: new view justified by %d of %d", ErrNoQuorum, power, vals.TotalPower())
	}
	p := m.Proposal
	switch {
	case p == nil:
		return fmt.Errorf("%w: new view without a proposal", ErrMalformed)
	case p.Type != MsgPrePrepare || p.Height != m.Height || p.View != m.View || p.From != m.From || p.Digest != m.Digest:
		return fmt.Errorf("%w: new view's proposal is not the leader's pre-prepare for its slot", ErrMalformed)
	case len(p.Value) == 0 || DigestOf(p.Value) != p.Digest:
		return fmt.Errorf("%w: new view's proposal value missing or not matching its digest", ErrMalformed)
	case len(m.Value) != 0:
		return fmt.Errorf("%w: new view with a value outside its proposal", ErrMalformed)
	}
	if err := checkPlain(p); err != nil {
		return err
	}
	if best := highestPrepared(m.ViewChanges); best != nil && best.Digest != m.Digest {
		return fmt.Errorf("%w: new view proposes %s, but %s was prepared in view %d", ErrInvalidValue, m.Digest, best.Digest, best.PreparedView)
	}
	return nil
}

// highestPrepared is the view change with the highest-view prepared certificate, the first by
// sender order among equals; nil if none has one. Precondition: each passed checkViewChange.
func highestPrepared(vcs []Message) *Message {
	var best *Message
	for i := range vcs {
		if vc := &vcs[i]; vc.Prepared != nil && (best == nil || vc.PreparedView > best.PreparedView) {
			best = vc
		}
	}
	return best
}

// verifyPrepared verifies a prepared certificate's signatures. p is nil or passed checkViewChange.
func verifyPrepared(chainID string, vals ValidatorSet, p *PreparedProof, sigs *sigCache) error {
	if p == nil {
		return nil
	}
	pp := &p.PrePrepare
	if !sigs.verify(vals.Validators[pp.From].PubKey, SignBytes(chainID, pp), pp.Sig) {
		return fmt.Errorf("%w: prepared certificate's pre-prepare from validator %d", ErrBadSignature, pp.From)
	}
	m := Message{Type: MsgPrepare, Height: pp.Height, View: pp.View, Digest: pp.Digest}
	for _, v := range p.Prepares {
		m.From = v.Validator
		if !sigs.verify(vals.Validators[v.Validator].PubKey, SignBytes(chainID, &m), v.Sig) {
			return fmt.Errorf("%w: prepared certificate's prepare from validator %d", ErrBadSignature, v.Validator)
		}
	}
	return nil
}

// verifyNewView verifies every signature a NewView embeds. m passed checkNewView.
func verifyNewView(chainID string, vals ValidatorSet, m *Message, sigs *sigCache) error {
	p := m.Proposal
	if !sigs.verify(vals.Validators[p.From].PubKey, SignBytes(chainID, p), p.Sig) {
		return fmt.Errorf("%w: new view's proposal", ErrBadSignature)
	}
	for i := range m.ViewChanges {
		vc := &m.ViewChanges[i]
		if !sigs.verify(vals.Validators[vc.From].PubKey, SignBytes(chainID, vc), vc.Sig) {
			return fmt.Errorf("%w: new view's view change from validator %d", ErrBadSignature, vc.From)
		}
		if err := verifyPrepared(chainID, vals, vc.Prepared, sigs); err != nil {
			return fmt.Errorf("new view's view change from validator %d: %w", vc.From, err)
		}
	}
	return nil
}

// checkLeaders checks what checkShape cannot without the height's leader schedule: that a NewView
// comes from its view's leader, and that the pre-prepare of every prepared certificate, on a view
// change or inside a new view, comes from the leader of the view it was proposed in (a prepared
// certificate must be for the proposal honest validators could have prepared). PrePrepares are
// checked against r.leader where they are taken up. Precondition: m passed checkShape and is for
// c.height, whose leaders are open (openLeaders).
func (c *Core) checkLeaders(m *Message) error {
	switch m.Type {
	case MsgViewChange:
		return c.checkPreparedLeader(m.Prepared)
	case MsgNewView:
		if l := c.leaderOf(m.View); m.From != l {
			return fmt.Errorf("%w: new view for height %d view %d from validator %d, leader is %d", ErrNotLeader, m.Height, m.View, m.From, l)
		}
		for i := range m.ViewChanges {
			if err := c.checkPreparedLeader(m.ViewChanges[i].Prepared); err != nil {
				return fmt.Errorf("new view's entry %d: %w", i, err)
			}
		}
	}
	return nil
}

// checkPreparedLeader checks that a prepared certificate (nil: none) of c.height was proposed by
// the leader of its view.
func (c *Core) checkPreparedLeader(p *PreparedProof) error {
	if p == nil {
		return nil
	}
	if l := c.leaderOf(p.PrePrepare.View); p.PrePrepare.From != l {
		return fmt.Errorf("%w: prepared certificate's pre-prepare for view %d is from validator %d, leader is %d", ErrNotLeader, p.PrePrepare.View, p.PrePrepare.From, l)
	}
	return nil
}
