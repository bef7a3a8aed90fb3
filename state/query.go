package state

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Queries of committed state. Each is safe from any goroutine at any time, and reads the state
// as of the last committed block (a batch is atomic, so a query never sees half a block; a query
// that reads twice may straddle two blocks). Not-found answers are the ErrXNotFound sentinels,
// which are also ErrUnknown.

// getRecord decodes key's committed value into v and reports whether it exists.
func (s *State) getRecord(key string, v any) (bool, error) {
	b, err := s.db.Get([]byte(key))
	if err != nil {
		return false, fmt.Errorf("state: reading %q: %w", key, err)
	}
	if b == nil {
		return false, nil
	}
	if err := Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%w: %q: %v", ErrCorrupt, key, err)
	}
	return true, nil
}

func getOr[T any](s *State, key string, notFound error) (T, error) {
	var v T
	ok, err := s.getRecord(key, &v)
	if err == nil && !ok {
		err = notFound
	}
	return v, err
}

// scan calls fn with each committed key and value under prefix, in key order.
func (s *State) scan(prefix string, fn func(k, v []byte) error) error {
	start := []byte(prefix)
	it, err := s.db.Iterator(start, prefixEnd(start))
	if err != nil {
		return fmt.Errorf("state: scanning %q: %w", prefix, err)
	}
	defer it.Close()
	for ; it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// prefixEnd is the first key after every key starting with prefix (nil: none, scan to the end).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func scanAll[T any](s *State, prefix string) ([]T, error) {
	var out []T
	err := s.scan(prefix, func(k, v []byte) error {
		var x T
		if err := Unmarshal(v, &x); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrCorrupt, k, err)
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// Signers returns a's signer set, or nil if it has none (it is controlled by its own key).
func (s *State) Signers(a Address) (*SignerSet, error) {
	var set SignerSet
	ok, err := s.getRecord(keySigners(a), &set)
	if err != nil || !ok {
		return nil, err
	}
	return &set, nil
}

// Asset returns the asset class with symbol sym.
func (s *State) Asset(sym string) (Asset, error) {
	return getOr[Asset](s, keyAsset(sym), ErrAssetNotFound)
}

// AssetBalance returns a's balance of sym (0 for an unknown asset or account).
func (s *State) AssetBalance(a Address, sym string) (uint64, error) {
	var v uint64
	_, err := s.getRecord(keyBalance(a, sym), &v)
	return v, err
}

// AssetBalances returns a's nonzero asset balances, by symbol.
func (s *State) AssetBalances(a Address) ([]AssetBalance, error) {
	prefix := keyBalance(a, "")
	var out []AssetBalance
	err := s.scan(prefix, func(k, v []byte) error {
		var amt uint64
		if err := Unmarshal(v, &amt); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrCorrupt, k, err)
		}
		out = append(out, AssetBalance{Symbol: string(k[len(prefix):]), Amount: amt})
		return nil
	})
	return out, err
}

// Item returns the unique item id.
func (s *State) Item(id string) (Item, error) { return getOr[Item](s, keyItem(id), ErrItemNotFound) }

// ItemHistory returns item id's events, oldest first.
func (s *State) ItemHistory(id string) ([]ItemEvent, error) {
	if !ValidID(id) {
		return nil, ErrItemNotFound
	}
	evs, err := scanAll[ItemEvent](s, recKey("ihist", []byte(id), sep))
	if err == nil && len(evs) == 0 {
		err = ErrItemNotFound
	}
	return evs, err
}

// Identity returns the identity id.
func (s *State) Identity(id string) (Identity, error) {
	return getOr[Identity](s, keyIdentity(id), ErrIdentityNotFound)
}

// Claim returns the claim id.
func (s *State) Claim(id string) (Claim, error) {
	return getOr[Claim](s, keyClaim(id), ErrClaimNotFound)
}

// ClaimStatus answers "is claim id valid at time nowMs, and who issued it": the status, and the
// claim (with its issuer identity and the account that signed it) unless it is unknown. Pass
// TimeMs() to judge it as of the last block.
func (s *State) ClaimStatus(id string, nowMs int64) (ClaimStatus, *Claim, error) {
	c, err := s.Claim(id)
	switch {
	case err == ErrClaimNotFound:
		return ClaimUnknown, nil, nil
	case err != nil:
		return "", nil, err
	}
	return c.statusAt(nowMs), &c, nil
}

// NotaryRecord returns who anchored document hash h, and when.
func (s *State) NotaryRecord(h Hash) (NotaryRecord, error) {
	return getOr[NotaryRecord](s, keyNotary(h), ErrNotaryNotFound)
}

// Escrow returns the escrow id.
func (s *State) Escrow(id string) (Escrow, error) {
	return getOr[Escrow](s, keyEscrow(id), ErrEscrowNotFound)
}

// Ballot returns the ballot id.
func (s *State) Ballot(id string) (Ballot, error) {
	return getOr[Ballot](s, keyBallot(id), ErrBallotNotFound)
}

// Tally returns ballot id's count. Closed says no further vote can be accepted: the next block's
// height has reached the ballot's closing height.
func (s *State) Tally(id string) (Tally, error) {
	b, err := s.Ballot(id)
	if err != nil {
		return Tally{}, err
	}
	t := Tally{Ballot: b.ID, Options: b.Options, Counts: b.Tally, Eligible: len(b.Eligible),
		Closed: s.Height()+1 >= b.Closes}
	for _, c := range b.Tally {
		t.Votes += c
	}
	return t, nil
}

// Vote returns the option identity voted for in ballot id, and whether it voted.
func (s *State) Vote(ballot, identity string) (uint32, bool, error) {
	var opt uint32
	ok, err := s.getRecord(keyVote(ballot, identity), &opt)
	return opt, ok, err
}

// Proposal returns the governance proposal id, its Status as of the next block (an open
// validator change too near its height reads as expired).
func (s *State) Proposal(id string) (Proposal, error) {
	p, err := getOr[Proposal](s, keyProposal(id), ErrProposalNotFound)
	p.Status = p.statusAt(s.Height() + 1)
	return p, err
}

// Proposals returns every proposal, oldest first (by height, then ID).
func (s *State) Proposals() ([]Proposal, error) {
	ps, err := scanAll[Proposal](s, recKey("prop"))
	next := s.Height() + 1
	for i := range ps {
		ps[i].Status = ps[i].statusAt(next)
	}
	slices.SortStableFunc(ps, func(a, b Proposal) int {
		if a.Height != b.Height {
			return cmpUint(a.Height, b.Height)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ps, err
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// gov is the committed governance record, shared with the memo (govmemo.go): what a query
// returns of it, it copies.
func (s *State) gov() (*govState, error) {
	e, err := s.govEntry()
	if err != nil {
		return nil, err
	}
	if e.raw == nil {
		return nil, ErrNotInitialised
	}
	return &e.g, nil
}

// Members returns the consortium's members, by name.
func (s *State) Members() ([]Member, error) {
	g, err := s.gov()
	if err != nil {
		return nil, err
	}
	return slices.Clone(g.Members), nil
}

// IsMember reports whether a is a member's controller, and which member.
func (s *State) IsMember(a Address) (Member, bool, error) {
	g, err := s.gov()
	if err != nil {
		return Member{}, false, err
	}
	m, ok := g.memberByController(a)
	return m, ok, nil
}

// Params returns the consortium's parameters in force for the next block, by name (every name
// of DefaultParams is present).
func (s *State) Params() ([]Param, error) {
	g, err := s.gov()
	if err != nil {
		return nil, err
	}
	return slices.Clone(g.Params), nil
}

// Param returns one parameter's value in force for the next block.
func (s *State) Param(name string) (uint64, error) {
	ps, err := s.Params()
	if err != nil {
		return 0, err
	}
	for _, p := range ps {
		if p.Name == name {
			return p.Value, nil
		}
	}
	return 0, fmt.Errorf("%w: parameter %q", ErrUnknown, name)
}

// Threshold returns the fraction of members that passes a proposal.
func (s *State) Threshold() (Threshold, error) {
	g, err := s.gov()
	if err != nil {
		return Threshold{}, err
	}
	return g.Threshold, nil
}

// ValidatorSchedule returns every validator set the chain has had or has scheduled, by height:
// entry i is in force from its Height until the next entry's. Those above Height()+1 are
// scheduled by passed proposals and cannot be withdrawn.
func (s *State) ValidatorSchedule() ([]ValidatorSetAt, error) {
	sets, err := s.validatorSchedule()
	if err != nil {
		return nil, err
	}
	out := make([]ValidatorSetAt, len(sets))
	for i, vs := range sets {
		out[i] = vs
		out[i].Validators = slices.Clone(vs.Validators)
	}
	return out, nil
}

// ValidatorsAt returns the validator set that decides block h (and the height it has been in
// force from). It is final for every h up to Height()+MinValidatorDelay-1: no later block can
// change it, since a change passed in block Height()+1 takes effect at Height()+1+MinValidatorDelay
// at the earliest. For higher h it is the set as scheduled so far.
//
// The node calls ValidatorsAt(h+1) after applying block h, before it starts height h+1, and
// rebuilds its consensus core and p2p allowlist when the result differs from the set of h.
func (s *State) ValidatorsAt(h uint64) (ValidatorSetAt, error) {
	sets, err := s.validatorSchedule()
	if err != nil {
		return ValidatorSetAt{}, err
	}
	// The last set from h or before.
	i := sort.Search(len(sets), func(i int) bool { return sets[i].Height > h })
	if i == 0 {
		return ValidatorSetAt{}, ErrNotInitialised
	}
	out := sets[i-1]
	out.Validators = slices.Clone(out.Validators)
	return out, nil
}

// Validators returns the validator set of the next block, Height()+1.
func (s *State) Validators() (ValidatorSetAt, error) { return s.ValidatorsAt(s.Height() + 1) }
