package state

import "fmt"

// Ballots among identities. Each eligible identity votes once, through its controller; the vote
// is a record r/vote/<ballot>\x00<identity> (which is what makes a second vote detectable) and
// the running tally is kept in the ballot, so the tally query reads one record.

func (ov *overlay) ballot(id string) (*Ballot, error) {
	var b Ballot
	ok, err := ov.load(keyBallot(id), &b)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: ballot %q", ErrUnknown, id)
	}
	return &b, nil
}

func (ov *overlay) ballotCreate(from Address, op *BallotCreate) error {
	if err := checkID(op.ID); err != nil {
		return err
	}
	if ok, err := ov.exists(keyBallot(op.ID)); err != nil || ok {
		return existsErr(err, "ballot "+op.ID)
	}
	if op.Title != "" && !validName(op.Title) {
		return fmt.Errorf("%w: title %q", ErrBadField, op.Title)
	}
	if limit := maxBallotOptions(ov.blk.version()); len(op.Options) < 2 || len(op.Options) > limit {
		return fmt.Errorf("%w: %d options, want 2..%d", ErrBadField, len(op.Options), limit)
	}
	seen := map[string]bool{}
	for _, o := range op.Options {
		if !validName(o) || seen[o] {
			return fmt.Errorf("%w: option %q invalid or repeated", ErrBadField, o)
		}
		seen[o] = true
	}
	if len(op.Eligible) == 0 || len(op.Eligible) > MaxBallotEligible {
		return fmt.Errorf("%w: %d eligible identities, want 1..%d", ErrBadField, len(op.Eligible), MaxBallotEligible)
	}
	seen = map[string]bool{}
	for _, id := range op.Eligible {
		if !ValidID(id) || seen[id] {
			return fmt.Errorf("%w: eligible identity %q invalid or repeated", ErrBadField, id)
		}
		seen[id] = true
	}
	if op.Closes <= ov.blk.Height {
		return fmt.Errorf("%w: closes at %d, not after block %d", ErrBadHeight, op.Closes, ov.blk.Height)
	}
	for _, id := range op.Eligible {
		if _, err := ov.identity(id); err != nil {
			return err
		}
	}
	return ov.store(keyBallot(op.ID), &Ballot{ID: op.ID, Title: op.Title, Creator: from,
		Options: op.Options, Eligible: op.Eligible, Closes: op.Closes,
		Tally: make([]uint64, len(op.Options)), Height: ov.blk.Height})
}

func (ov *overlay) ballotVote(from Address, op *BallotVote) error {
	b, err := ov.ballot(op.ID)
	if err != nil {
		return err
	}
	if ov.blk.Height >= b.Closes {
		return fmt.Errorf("%w: closed at %d", ErrBallotClosed, b.Closes)
	}
	eligible := false
	for _, id := range b.Eligible {
		if id == op.Identity {
			eligible = true
			break
		}
	}
	if !eligible {
		return fmt.Errorf("%w: %q", ErrNotEligible, op.Identity)
	}
	idn, err := ov.identity(op.Identity)
	if err != nil {
		return err
	}
	if idn.Controller != from {
		return fmt.Errorf("%w: of %q", ErrNotController, op.Identity)
	}
	if int(op.Option) >= len(b.Options) {
		return fmt.Errorf("%w: option %d of %d", ErrBadField, op.Option, len(b.Options))
	}
	vk := keyVote(op.ID, op.Identity)
	if ok, err := ov.exists(vk); err != nil || ok {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %q in ballot %q", ErrDoubleVote, op.Identity, op.ID)
	}
	b.Tally[op.Option]++
	if err := ov.store(vk, op.Option); err != nil {
		return err
	}
	return ov.store(keyBallot(op.ID), b)
}
