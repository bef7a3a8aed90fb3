package state

import (
	"fmt"
	"slices"
	"strings"
)

// Governance of the consortium: members, validators and parameters, changed only by proposals
// that members vote on.
//
// Members are organizations, each with a controller account that acts for it: proposing and
// voting, and (membership's other powers) creating asset classes, registering organization
// identities and issuing claims. A proposal passes when the yes votes of current members reach
// the threshold (yes*Den >= Num*members; genesis sets it, two thirds by default), and is
// rejected as soon as the no votes make that impossible.
//
// Validator sets are kept as snapshots r/vals/<height>: the set in force from that height on.
// Genesis writes the one at height 0; a passed validator change writes the one at its effective
// height, built on the latest snapshot, which is why changes must be passed in the order of their
// heights (a change for a height before an already scheduled one is refused, ErrBadHeight). The
// validators that decide block h are ValidatorsAt(h).

// Parameter names, their allowed ranges and defaults. The node reads them with Params; they
// change by proposal and take effect from the block after the one that passed them.
const (
	ParamMaxBlockTxs   = "max_block_txs"
	ParamViewTimeoutMs = "view_timeout_ms"
	ParamEmptyBlockMs  = "empty_block_ms"
)

var paramRanges = map[string][2]uint64{
	ParamMaxBlockTxs:   {1, 100_000},
	ParamViewTimeoutMs: {100, 600_000},
	ParamEmptyBlockMs:  {1, 600_000},
}

// DefaultParams are the parameters of a genesis that sets none, sorted by name.
func DefaultParams() []Param {
	return []Param{{ParamEmptyBlockMs, 1000}, {ParamMaxBlockTxs, 2000}, {ParamViewTimeoutMs, 2000}}
}

// DefaultThreshold is two thirds of the members.
var DefaultThreshold = Threshold{Num: 2, Den: 3}

// govState is the r/gov record.
type govState struct {
	Members   []Member  `cbor:"1,keyasint"` // sorted by name
	Params    []Param   `cbor:"2,keyasint"` // sorted by name
	Threshold Threshold `cbor:"3,keyasint"`
	// LastValidatorHeight is the height of the latest validator snapshot.
	LastValidatorHeight uint64 `cbor:"4,keyasint"`
	// Upgrades are the protocol upgrades scheduled, in force or not, in the order they passed
	// (upgrade.go). Left out of the encoding while there are none, so the record of a chain that
	// never scheduled one keeps its bytes and the state root its value.
	Upgrades []Upgrade `cbor:"5,keyasint,omitempty"`
}

func checkParam(p Param) error {
	r, ok := paramRanges[p.Name]
	if !ok {
		return fmt.Errorf("%w: unknown parameter %q", ErrBadField, p.Name)
	}
	if p.Value < r[0] || p.Value > r[1] {
		return fmt.Errorf("%w: %s = %d, allowed %d..%d", ErrBadField, p.Name, p.Value, r[0], r[1])
	}
	return nil
}

func checkThreshold(t Threshold) error {
	if t.Den == 0 || t.Num == 0 || t.Num > t.Den {
		return fmt.Errorf("%w: threshold %d/%d", ErrBadField, t.Num, t.Den)
	}
	return nil
}

func checkMember(m *Member) error {
	if !validName(m.Name) {
		return fmt.Errorf("%w: member name %q", ErrBadField, m.Name)
	}
	if m.Controller.IsZero() {
		return fmt.Errorf("%w: member %q has no controller", ErrBadField, m.Name)
	}
	return nil
}

// checkValidatorSet is what every validator set must be: not empty, names, keys and peer IDs
// distinct, every power positive, the total not overflowing.
func checkValidatorSet(vs []Validator) error {
	if len(vs) == 0 {
		return fmt.Errorf("%w: no validators would be left", ErrBadField)
	}
	names, keys, peers := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var total uint64
	for _, v := range vs {
		if !validName(v.Name) || !validPubKey(v.PubKey) || len(v.PeerID) > 128 || v.Power == 0 {
			return fmt.Errorf("%w: validator %q", ErrBadField, v.Name)
		}
		if names[v.Name] || keys[string(v.PubKey)] || v.PeerID != "" && peers[v.PeerID] {
			return fmt.Errorf("%w: validator %q repeats a name, key or peer ID", ErrBadField, v.Name)
		}
		names[v.Name], keys[string(v.PubKey)], peers[v.PeerID] = true, true, true
		if total+v.Power < total {
			return fmt.Errorf("%w: total voting power overflows", ErrBadField)
		}
		total += v.Power
	}
	return nil
}

// withValidator is vs with the validator named v.Name set to v, or removed when v.Power is 0.
func withValidator(vs []Validator, v Validator) ([]Validator, error) {
	out := make([]Validator, 0, len(vs)+1)
	found := false
	for _, old := range vs {
		if old.Name == v.Name {
			found = true
			if v.Power > 0 {
				out = append(out, v)
			}
			continue
		}
		out = append(out, old)
	}
	if !found {
		if v.Power == 0 {
			return nil, fmt.Errorf("%w: no validator %q to remove", ErrUnknown, v.Name)
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Validator) int { return strings.Compare(a.Name, b.Name) })
	return out, checkValidatorSet(out)
}

func (ov *overlay) gov() (*govState, error) {
	if _, ok := ov.recs[keyGov]; !ok {
		// Through the memo rather than the store (issue #10); decoded afresh below all the same,
		// since callers change the record.
		e, err := ov.s.govEntry()
		if err != nil {
			ov.err = err
			return nil, err
		}
		ov.recs[keyGov] = &record{val: e.raw, orig: e.raw}
	}
	var g govState
	ok, err := ov.load(keyGov, &g)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no governance record", ErrCorrupt)
	}
	return &g, nil
}

func (g *govState) memberByController(a Address) (Member, bool) {
	for _, m := range g.Members {
		if m.Controller == a {
			return m, true
		}
	}
	return Member{}, false
}

func (g *govState) memberByName(name string) (Member, bool) {
	for _, m := range g.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// requireMember fails with ErrNotMember unless a is a member's controller.
func (ov *overlay) requireMember(a Address) error {
	g, err := ov.gov()
	if err != nil {
		return err
	}
	if _, ok := g.memberByController(a); !ok {
		return fmt.Errorf("%w: %s", ErrNotMember, a)
	}
	return nil
}

func (ov *overlay) latestValidators(g *govState) ([]Validator, error) {
	var vs ValidatorSetAt
	if _, err := ov.load(keyValidators(g.LastValidatorHeight), &vs); err != nil {
		return nil, err
	}
	return vs.Validators, nil
}

// checkValidatorHeight: a validator change must be far enough in the future and not before one
// already scheduled.
func (ov *overlay) checkValidatorHeight(g *govState, h uint64) error {
	if h < ov.blk.Height+MinValidatorDelay {
		return fmt.Errorf("%w: validator change at %d, earliest is %d", ErrBadHeight, h, ov.blk.Height+MinValidatorDelay)
	}
	if h < g.LastValidatorHeight {
		return fmt.Errorf("%w: validator change at %d, before the one scheduled at %d", ErrBadHeight, h, g.LastValidatorHeight)
	}
	return nil
}

func (ov *overlay) govPropose(from Address, op *GovPropose) error {
	if err := checkID(op.ID); err != nil {
		return err
	}
	if ok, err := ov.exists(keyProposal(op.ID)); err != nil || ok {
		return existsErr(err, "proposal "+op.ID)
	}
	g, err := ov.gov()
	if err != nil {
		return err
	}
	proposer, ok := g.memberByController(from)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotMember, from)
	}
	changes := 0
	for _, set := range []bool{op.AddMember != nil, op.RemoveMember != "", op.SetValidator != nil, op.SetParam != nil,
		op.Upgrade != nil, op.CancelUpgrade != ""} {
		if set {
			changes++
		}
	}
	if changes != 1 {
		return fmt.Errorf("%w: a proposal makes exactly one change, this has %d", ErrBadField, changes)
	}
	if op.EffectiveHeight != 0 && op.SetValidator == nil {
		return fmt.Errorf("%w: an effective height is only for a validator change", ErrBadField)
	}
	switch {
	case op.AddMember != nil:
		if err := checkMember(op.AddMember); err != nil {
			return err
		}
		if err := g.canAdd(op.AddMember); err != nil {
			return err
		}
	case op.RemoveMember != "":
		if _, ok := g.memberByName(op.RemoveMember); !ok {
			return fmt.Errorf("%w: member %q", ErrUnknown, op.RemoveMember)
		}
	case op.SetValidator != nil:
		if err := ov.checkValidatorHeight(g, op.EffectiveHeight); err != nil {
			return err
		}
		vs, err := ov.latestValidators(g)
		if err != nil {
			return err
		}
		if _, err := withValidator(vs, *op.SetValidator); err != nil {
			return err
		}
	case op.SetParam != nil:
		if err := checkParam(*op.SetParam); err != nil {
			return err
		}
	case op.Upgrade != nil:
		if op.Upgrade.Proposal != "" {
			return fmt.Errorf("%w: an upgrade's proposal is set when it passes", ErrBadField)
		}
		if err := g.checkUpgrade(op.Upgrade, ov.blk.Height); err != nil {
			return err
		}
	case op.CancelUpgrade != "":
		if _, err := g.checkCancel(op.CancelUpgrade, ov.blk.Height); err != nil {
			return err
		}
	}
	p := &Proposal{ID: op.ID, Proposer: proposer.Name, AddMember: op.AddMember,
		RemoveMember: op.RemoveMember, SetValidator: op.SetValidator,
		EffectiveHeight: op.EffectiveHeight, SetParam: op.SetParam, Height: ov.blk.Height,
		Yes: []string{proposer.Name}, Status: ProposalOpen,
		Upgrade: op.Upgrade, CancelUpgrade: op.CancelUpgrade}
	return ov.decide(p, g)
}

func (g *govState) canAdd(m *Member) error {
	if _, ok := g.memberByName(m.Name); ok {
		return fmt.Errorf("%w: member %q", ErrExists, m.Name)
	}
	if old, ok := g.memberByController(m.Controller); ok {
		return fmt.Errorf("%w: %s already controls member %q", ErrExists, m.Controller, old.Name)
	}
	return nil
}

func (ov *overlay) govVote(from Address, op *GovVote) error {
	var p Proposal
	ok, err := ov.load(keyProposal(op.ID), &p)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: proposal %q", ErrUnknown, op.ID)
	}
	if st := p.statusAt(ov.blk.Height); st != ProposalOpen {
		return fmt.Errorf("%w: %q is %s", ErrProposalClosed, op.ID, st)
	}
	g, err := ov.gov()
	if err != nil {
		return err
	}
	m, ok := g.memberByController(from)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotMember, from)
	}
	if slices.Contains(p.Yes, m.Name) || slices.Contains(p.No, m.Name) {
		return fmt.Errorf("%w: %q on proposal %q", ErrDoubleVote, m.Name, op.ID)
	}
	if op.Yes {
		p.Yes = append(p.Yes, m.Name)
	} else {
		p.No = append(p.No, m.Name)
	}
	return ov.decide(&p, g)
}

// statusAt is p's status as seen in block h: an open validator change or upgrade whose height is
// too near to be scheduled any more reads as expired. (An open cancellation that passes too late
// fails, with the reason.)
func (p *Proposal) statusAt(h uint64) string {
	if p.Status != ProposalOpen {
		return p.Status
	}
	switch {
	case p.SetValidator != nil && p.EffectiveHeight < h+MinValidatorDelay,
		p.Upgrade != nil && p.Upgrade.Height < h+MinUpgradeDelay:
		return ProposalExpired
	}
	return p.Status
}

// decide counts p's votes by current members, executes it if it has passed, and stores it.
func (ov *overlay) decide(p *Proposal, g *govState) error {
	n := uint64(len(g.Members))
	var yes, no uint64
	for _, m := range g.Members {
		if slices.Contains(p.Yes, m.Name) {
			yes++
		} else if slices.Contains(p.No, m.Name) {
			no++
		}
	}
	num, den := uint64(g.Threshold.Num), uint64(g.Threshold.Den)
	switch {
	case yes*den >= num*n:
		p.Status, p.DecidedAt = ProposalPassed, ov.blk.Height
		if err := ov.execute(p, g); err != nil {
			p.Status, p.Reason = ProposalFailed, err.Error()
		}
	case (n-no)*den < num*n:
		p.Status, p.DecidedAt = ProposalRejected, ov.blk.Height
	}
	return ov.store(keyProposal(p.ID), p)
}

// execute applies a passed proposal's change. An error leaves state as it was (nothing is
// written before the last check) and marks the proposal failed.
func (ov *overlay) execute(p *Proposal, g *govState) error {
	switch {
	case p.AddMember != nil:
		if err := g.canAdd(p.AddMember); err != nil {
			return err
		}
		g.Members = append(g.Members, *p.AddMember)
		slices.SortFunc(g.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	case p.RemoveMember != "":
		i := slices.IndexFunc(g.Members, func(m Member) bool { return m.Name == p.RemoveMember })
		switch {
		case i < 0:
			return fmt.Errorf("%w: member %q", ErrUnknown, p.RemoveMember)
		case len(g.Members) == 1:
			return fmt.Errorf("%w: the last member cannot be removed", ErrBadField)
		}
		g.Members = slices.Delete(g.Members, i, i+1)
	case p.SetParam != nil:
		i := slices.IndexFunc(g.Params, func(q Param) bool { return q.Name == p.SetParam.Name })
		if i < 0 {
			g.Params = append(g.Params, *p.SetParam)
			slices.SortFunc(g.Params, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
		} else {
			g.Params[i] = *p.SetParam
		}
	case p.SetValidator != nil:
		if err := ov.checkValidatorHeight(g, p.EffectiveHeight); err != nil {
			return err
		}
		vs, err := ov.latestValidators(g)
		if err != nil {
			return err
		}
		next, err := withValidator(vs, *p.SetValidator)
		if err != nil {
			return err
		}
		if err := ov.store(keyValidators(p.EffectiveHeight), &ValidatorSetAt{Height: p.EffectiveHeight, Validators: next, Prev: g.LastValidatorHeight}); err != nil {
			return err
		}
		g.LastValidatorHeight = p.EffectiveHeight
	case p.Upgrade != nil:
		if err := g.checkUpgrade(p.Upgrade, ov.blk.Height); err != nil {
			return err
		}
		u := *p.Upgrade
		u.Proposal = p.ID
		g.Upgrades = append(g.Upgrades, u)
	case p.CancelUpgrade != "":
		i, err := g.checkCancel(p.CancelUpgrade, ov.blk.Height)
		if err != nil {
			return err
		}
		g.Upgrades = slices.Delete(g.Upgrades, i, i+1)
	}
	return ov.store(keyGov, g)
}
