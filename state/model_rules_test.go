package state

import (
	"bytes"
	"crypto/sha256"
	"maps"
	"math"
	"math/big"
	"slices"
)

// model is the ledger's rules written as plainly as possible, to check State against: plain maps,
// no overlay, no journal (a rejected operation is undone by restoring a copy of the whole model),
// no encoding. Its records reuse the exported record types, but every rule is written again here.
type model struct {
	accts    map[Address]Account
	signers  map[Address]SignerSet
	assets   map[string]Asset
	bals     map[Address]map[string]uint64
	items    map[string]Item
	notary   map[Hash]NotaryRecord
	escrows  map[string]Escrow
	idents   map[string]Identity
	claims   map[string]Claim
	ballots  map[string]Ballot
	votes    map[string]uint32 // ballot + "\x00" + identity
	members  []Member
	params   map[string]uint64
	thr      Threshold
	props    map[string]Proposal
	vals     map[uint64][]Validator // the validator schedule
	lastValH uint64
}

func newModel() *model {
	m := &model{accts: map[Address]Account{}, signers: map[Address]SignerSet{}, assets: map[string]Asset{},
		bals: map[Address]map[string]uint64{}, items: map[string]Item{}, notary: map[Hash]NotaryRecord{},
		escrows: map[string]Escrow{}, idents: map[string]Identity{}, claims: map[string]Claim{},
		ballots: map[string]Ballot{}, votes: map[string]uint32{}, props: map[string]Proposal{},
		params: map[string]uint64{}, vals: map[uint64][]Validator{0: nil}, thr: Threshold{2, 3}}
	for _, p := range DefaultParams() {
		m.params[p.Name] = p.Value
	}
	return m
}

// clone copies every map; records are values whose slices are never changed in place.
func (m *model) clone() *model {
	c := *m
	c.accts, c.signers, c.assets = maps.Clone(m.accts), maps.Clone(m.signers), maps.Clone(m.assets)
	c.bals = map[Address]map[string]uint64{}
	for a, b := range m.bals {
		c.bals[a] = maps.Clone(b)
	}
	c.items, c.notary, c.escrows = maps.Clone(m.items), maps.Clone(m.notary), maps.Clone(m.escrows)
	c.idents, c.claims, c.ballots = maps.Clone(m.idents), maps.Clone(m.claims), maps.Clone(m.ballots)
	c.votes, c.props, c.params, c.vals = maps.Clone(m.votes), maps.Clone(m.props), maps.Clone(m.params), maps.Clone(m.vals)
	c.members = slices.Clone(m.members)
	return &c
}

// modelTx is a generated transaction and what the model needs to judge it.
type modelTx struct {
	raw       []byte
	hash      Hash
	decodeErr error // the sentinel DecodeTx must return, if the bytes are not a transaction
	chainID   string
	sigOK     bool
	body      TxBody
	signers   [][]byte // public keys that signed
}

func (tx *modelTx) selfSigned() bool {
	return len(tx.signers) == 1 && AddressFromPubKey(tx.signers[0]) == tx.body.From
}

// apply judges tx the way the spec orders the checks, and applies it if it passes.
func (m *model) apply(tx *modelTx, seen map[Hash]bool, blk BlockInfo) error {
	if seen[tx.hash] {
		return ErrDuplicateTx
	}
	seen[tx.hash] = true
	switch {
	case tx.decodeErr != nil:
		return tx.decodeErr
	case tx.chainID != testChain:
		return ErrWrongChain
	case !tx.sigOK:
		return ErrBadSignature
	}
	b := &tx.body
	from := m.accts[b.From]
	if !from.Multisig {
		if !tx.selfSigned() {
			return ErrNotAuthorized
		}
	} else {
		set := m.signers[b.From]
		for _, k := range tx.signers {
			if !slices.ContainsFunc(set.Signers, func(s []byte) bool { return bytes.Equal(s, k) }) {
				return ErrNotAuthorized
			}
		}
		if uint32(len(tx.signers)) < set.Quorum {
			return ErrNotAuthorized
		}
	}
	if b.Nonce != from.Nonce {
		return ErrBadNonce
	}
	if tr := b.Transfer; tr != nil {
		switch {
		case tr.Amount == 0:
			return ErrBadAmount
		case tr.To == b.From:
			return ErrSelfTransfer
		case from.Balance < tr.Amount:
			return ErrNoFunds
		}
		to := m.accts[tr.To]
		if to.Balance > math.MaxUint64-tr.Amount {
			return ErrOverflow
		}
		from.Balance -= tr.Amount
		from.Nonce++
		to.Balance += tr.Amount
		m.accts[b.From], m.accts[tr.To] = from, to
		return nil
	}
	saved := m.clone()
	if err := m.op(b, blk, tx.hash); err != nil {
		*m = *saved
		return err
	}
	a := m.accts[b.From]
	a.Nonce++
	m.accts[b.From] = a
	return nil
}

func (m *model) isMember(a Address) (Member, bool) {
	for _, mb := range m.members {
		if mb.Controller == a {
			return mb, true
		}
	}
	return Member{}, false
}

func (m *model) bal(a Address, sym string) uint64 { return m.bals[a][sym] }

func (m *model) setBal(a Address, sym string, v uint64) {
	if m.bals[a] == nil {
		m.bals[a] = map[string]uint64{}
	}
	if v == 0 {
		delete(m.bals[a], sym)
	} else {
		m.bals[a][sym] = v
	}
}

func (m *model) native(a Address, delta int64) error {
	acct := m.accts[a]
	if delta < 0 {
		if acct.Balance < uint64(-delta) {
			return ErrNoFunds
		}
		acct.Balance -= uint64(-delta)
	} else {
		if acct.Balance > math.MaxUint64-uint64(delta) {
			return ErrOverflow
		}
		acct.Balance += uint64(delta)
	}
	m.accts[a] = acct
	return nil
}

func (m *model) op(b *TxBody, blk BlockInfo, txHash Hash) error {
	from := b.From
	switch {
	case b.SetSigners != nil:
		op := b.SetSigners
		acct := m.accts[from]
		if len(op.Signers) == 0 {
			if op.Quorum != 0 {
				return ErrBadSigners
			}
			acct.Multisig = false
			delete(m.signers, from)
		} else {
			if len(op.Signers) > MaxSigners || !distinctKeys(op.Signers) || op.Quorum == 0 || int(op.Quorum) > len(op.Signers) {
				return ErrBadSigners
			}
			for _, k := range op.Signers {
				if !validPubKey(k) {
					return ErrBadSigners
				}
			}
			acct.Multisig = true
			m.signers[from] = SignerSet{Signers: op.Signers, Quorum: op.Quorum}
		}
		m.accts[from] = acct

	case b.AssetCreate != nil:
		op := b.AssetCreate
		switch {
		case !ValidSymbol(op.Symbol):
			return ErrBadSymbol
		case !validName(op.Name), op.Decimals > MaxDecimals:
			return ErrBadField
		}
		if _, ok := m.isMember(from); !ok {
			return ErrNotMember
		}
		if _, ok := m.assets[op.Symbol]; ok {
			return ErrExists
		}
		m.assets[op.Symbol] = Asset{Symbol: op.Symbol, Name: op.Name, Decimals: op.Decimals, MaxSupply: op.MaxSupply, Issuer: from, Height: blk.Height}

	case b.AssetMint != nil:
		op := b.AssetMint
		a, ok := m.assets[op.Symbol]
		switch {
		case !ok:
			return ErrUnknown
		case a.Issuer != from:
			return ErrNotIssuer
		case op.Amount == 0:
			return ErrBadAmount
		case a.Supply > math.MaxUint64-op.Amount:
			return ErrOverflow
		case a.MaxSupply != 0 && a.Supply+op.Amount > a.MaxSupply:
			return ErrMaxSupply
		}
		a.Supply += op.Amount
		m.assets[op.Symbol] = a
		m.setBal(op.To, op.Symbol, m.bal(op.To, op.Symbol)+op.Amount)

	case b.AssetBurn != nil:
		op := b.AssetBurn
		a, ok := m.assets[op.Symbol]
		switch {
		case !ok:
			return ErrUnknown
		case op.Amount == 0:
			return ErrBadAmount
		case m.bal(from, op.Symbol) < op.Amount:
			return ErrNoFunds
		}
		m.setBal(from, op.Symbol, m.bal(from, op.Symbol)-op.Amount)
		a.Supply -= op.Amount
		m.assets[op.Symbol] = a

	case b.AssetTransfer != nil:
		op := b.AssetTransfer
		_, ok := m.assets[op.Symbol]
		switch {
		case !ok:
			return ErrUnknown
		case op.Amount == 0:
			return ErrBadAmount
		case op.To == from:
			return ErrSelfTransfer
		case m.bal(from, op.Symbol) < op.Amount:
			return ErrNoFunds
		}
		m.setBal(from, op.Symbol, m.bal(from, op.Symbol)-op.Amount)
		m.setBal(op.To, op.Symbol, m.bal(op.To, op.Symbol)+op.Amount)

	case b.ItemRegister != nil:
		op := b.ItemRegister
		if !ValidID(op.ID) {
			return ErrBadID
		}
		if _, ok := m.items[op.ID]; ok {
			return ErrExists
		}
		owner := from
		if op.Owner != nil {
			owner = *op.Owner
		}
		m.items[op.ID] = Item{ID: op.ID, MetadataHash: op.MetadataHash, Owner: owner, Registrar: from, Height: blk.Height, Events: 1}

	case b.ItemTransfer != nil:
		op := b.ItemTransfer
		it, ok := m.items[op.ID]
		switch {
		case !ok:
			return ErrUnknown
		case it.Owner != from:
			return ErrNotOwner
		case op.To == from:
			return ErrSelfTransfer
		}
		it.Owner = op.To
		it.Events++
		m.items[op.ID] = it

	case b.NotaryAnchor != nil:
		h := b.NotaryAnchor.Hash
		if h == (Hash{}) {
			return ErrBadField
		}
		if _, ok := m.notary[h]; ok {
			return ErrExists
		}
		m.notary[h] = NotaryRecord{Hash: h, By: from, Height: blk.Height, TimeMs: blk.TimeMs, Tx: txHash}

	case b.EscrowCreate != nil:
		op := b.EscrowCreate
		if !ValidID(op.ID) {
			return ErrBadID
		}
		if _, ok := m.escrows[op.ID]; ok {
			return ErrExists
		}
		switch {
		case op.Arbiter == nil && op.HashLock == nil:
			return ErrBadField
		case op.Beneficiary == from:
			return ErrSelfTransfer
		case op.Deadline <= blk.Height:
			return ErrBadHeight
		case op.Amount == 0:
			return ErrBadAmount
		}
		if op.Asset == "" {
			if err := m.native(from, -int64(op.Amount)); err != nil {
				return err
			}
		} else {
			if _, ok := m.assets[op.Asset]; !ok {
				return ErrUnknown
			}
			if m.bal(from, op.Asset) < op.Amount {
				return ErrNoFunds
			}
			m.setBal(from, op.Asset, m.bal(from, op.Asset)-op.Amount)
		}
		m.escrows[op.ID] = Escrow{ID: op.ID, Depositor: from, Beneficiary: op.Beneficiary, Asset: op.Asset,
			Amount: op.Amount, Arbiter: op.Arbiter, HashLock: op.HashLock, Deadline: op.Deadline, Status: EscrowOpen}

	case b.EscrowRelease != nil:
		op := b.EscrowRelease
		e, ok := m.escrows[op.ID]
		switch {
		case !ok:
			return ErrUnknown
		case e.Status != EscrowOpen:
			return ErrEscrowClosed
		case blk.Height >= e.Deadline:
			return ErrEscrowExpired
		}
		byArbiter := e.Arbiter != nil && *e.Arbiter == from
		if !byArbiter {
			switch {
			case op.Preimage == nil:
				return ErrNotArbiter
			case e.HashLock == nil || sha256.Sum256(op.Preimage) != *e.HashLock:
				return ErrBadPreimage
			}
		}
		if err := m.payOut(&e, e.Beneficiary); err != nil {
			return err
		}
		e.Status = EscrowReleased
		m.escrows[op.ID] = e

	case b.EscrowRefund != nil:
		op := b.EscrowRefund
		e, ok := m.escrows[op.ID]
		switch {
		case !ok:
			return ErrUnknown
		case e.Status != EscrowOpen:
			return ErrEscrowClosed
		case from != e.Depositor:
			return ErrNotDepositor
		case blk.Height < e.Deadline:
			return ErrEscrowNotExpired
		}
		if err := m.payOut(&e, e.Depositor); err != nil {
			return err
		}
		e.Status = EscrowRefunded
		m.escrows[op.ID] = e

	case b.IdentityRegister != nil:
		op := b.IdentityRegister
		if !ValidID(op.ID) {
			return ErrBadID
		}
		if _, ok := m.idents[op.ID]; ok {
			return ErrExists
		}
		if op.Name != "" && !validName(op.Name) || len(op.Keys) > MaxIdentityKeys || !distinctKeys(op.Keys) {
			return ErrBadField
		}
		for _, k := range op.Keys {
			if !validPubKey(k) {
				return ErrBadField
			}
		}
		switch op.Kind {
		case KindPerson, KindOrganization:
			if op.Owner != "" {
				return ErrBadField
			}
			if _, ok := m.isMember(from); op.Kind == KindOrganization && !ok {
				return ErrNotMember
			}
		case KindDevice:
			if op.Owner == "" {
				return ErrBadField
			}
			org, ok := m.idents[op.Owner]
			switch {
			case !ok:
				return ErrUnknown
			case org.Kind != KindOrganization:
				return ErrBadField
			case org.Controller != from:
				return ErrNotController
			}
		default:
			return ErrBadField
		}
		m.idents[op.ID] = Identity{ID: op.ID, Kind: op.Kind, Name: op.Name, Controller: from, Keys: op.Keys, Owner: op.Owner, Height: blk.Height}

	case b.ClaimIssue != nil:
		op := b.ClaimIssue
		if !ValidID(op.ID) {
			return ErrBadID
		}
		if _, ok := m.claims[op.ID]; ok {
			return ErrExists
		}
		if !validName(op.Schema) || op.ExpiresMs != 0 && op.ExpiresMs <= blk.TimeMs {
			return ErrBadField
		}
		if _, ok := m.isMember(from); !ok {
			return ErrNotMember
		}
		iss, ok := m.idents[op.Issuer]
		if !ok {
			return ErrUnknown
		}
		if iss.Controller != from {
			return ErrNotController
		}
		if _, ok := m.idents[op.Subject]; !ok {
			return ErrUnknown
		}
		m.claims[op.ID] = Claim{ID: op.ID, Issuer: op.Issuer, Subject: op.Subject, Schema: op.Schema,
			ContentHash: op.ContentHash, IssuedBy: from, Height: blk.Height, TimeMs: blk.TimeMs, ExpiresMs: op.ExpiresMs}

	case b.ClaimRevoke != nil:
		c, ok := m.claims[b.ClaimRevoke.ID]
		switch {
		case !ok:
			return ErrUnknown
		case m.idents[c.Issuer].Controller != from:
			return ErrNotIssuer
		case c.Revoked:
			return ErrClaimRevoked
		}
		c.Revoked, c.RevokedHeight = true, blk.Height
		m.claims[c.ID] = c

	case b.BallotCreate != nil:
		op := b.BallotCreate
		if !ValidID(op.ID) {
			return ErrBadID
		}
		if _, ok := m.ballots[op.ID]; ok {
			return ErrExists
		}
		if op.Title != "" && !validName(op.Title) || len(op.Options) < 2 || len(op.Options) > MaxBallotOptions ||
			len(op.Eligible) == 0 || len(op.Eligible) > MaxBallotEligible {
			return ErrBadField
		}
		if !distinctStrings(op.Options, validName) || !distinctStrings(op.Eligible, ValidID) {
			return ErrBadField
		}
		if op.Closes <= blk.Height {
			return ErrBadHeight
		}
		for _, id := range op.Eligible {
			if _, ok := m.idents[id]; !ok {
				return ErrUnknown
			}
		}
		m.ballots[op.ID] = Ballot{ID: op.ID, Title: op.Title, Creator: from, Options: op.Options,
			Eligible: op.Eligible, Closes: op.Closes, Tally: make([]uint64, len(op.Options)), Height: blk.Height}

	case b.BallotVote != nil:
		op := b.BallotVote
		bl, ok := m.ballots[op.ID]
		switch {
		case !ok:
			return ErrUnknown
		case blk.Height >= bl.Closes:
			return ErrBallotClosed
		case !slices.Contains(bl.Eligible, op.Identity):
			return ErrNotEligible
		}
		idn, ok := m.idents[op.Identity]
		switch {
		case !ok:
			return ErrUnknown
		case idn.Controller != from:
			return ErrNotController
		case int(op.Option) >= len(bl.Options):
			return ErrBadField
		}
		vk := op.ID + "\x00" + op.Identity
		if _, ok := m.votes[vk]; ok {
			return ErrDoubleVote
		}
		m.votes[vk] = op.Option
		bl.Tally = slices.Clone(bl.Tally)
		bl.Tally[op.Option]++
		m.ballots[op.ID] = bl

	case b.GovPropose != nil:
		return m.propose(from, b.GovPropose, blk)
	case b.GovVote != nil:
		return m.vote(from, b.GovVote, blk)
	default:
		return ErrNoOperation
	}
	return nil
}

func distinctStrings(ss []string, valid func(string) bool) bool {
	seen := map[string]bool{}
	for _, s := range ss {
		if !valid(s) || seen[s] {
			return false
		}
		seen[s] = true
	}
	return true
}

func (m *model) payOut(e *Escrow, to Address) error {
	if e.Asset == "" {
		return m.native(to, int64(e.Amount))
	}
	m.setBal(to, e.Asset, m.bal(to, e.Asset)+e.Amount)
	return nil
}

func (m *model) memberNamed(name string) bool {
	return slices.ContainsFunc(m.members, func(mb Member) bool { return mb.Name == name })
}

func (m *model) canAdd(mb *Member) error {
	if m.memberNamed(mb.Name) {
		return ErrExists
	}
	if _, ok := m.isMember(mb.Controller); ok {
		return ErrExists
	}
	return nil
}

// validatorsWith is the latest scheduled set with v applied, or why it cannot be.
func (m *model) validatorsWith(v Validator) ([]Validator, error) {
	cur := m.vals[m.lastValH]
	var out []Validator
	found := false
	for _, old := range cur {
		if old.Name == v.Name {
			found = true
			if v.Power > 0 {
				out = append(out, v)
			}
		} else {
			out = append(out, old)
		}
	}
	if !found {
		if v.Power == 0 {
			return nil, ErrUnknown
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Validator) int { return cmpString(a.Name, b.Name) })
	if len(out) == 0 {
		return nil, ErrBadField
	}
	keys, peers := map[string]bool{}, map[string]bool{}
	for _, x := range out {
		if !validName(x.Name) || !validPubKey(x.PubKey) || x.Power == 0 || keys[string(x.PubKey)] || x.PeerID != "" && peers[x.PeerID] {
			return nil, ErrBadField
		}
		keys[string(x.PubKey)], peers[x.PeerID] = true, true
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *model) propose(from Address, op *GovPropose, blk BlockInfo) error {
	if !ValidID(op.ID) {
		return ErrBadID
	}
	if _, ok := m.props[op.ID]; ok {
		return ErrExists
	}
	me, ok := m.isMember(from)
	if !ok {
		return ErrNotMember
	}
	n := 0
	for _, set := range []bool{op.AddMember != nil, op.RemoveMember != "", op.SetValidator != nil, op.SetParam != nil} {
		if set {
			n++
		}
	}
	if n != 1 || op.EffectiveHeight != 0 && op.SetValidator == nil {
		return ErrBadField
	}
	switch {
	case op.AddMember != nil:
		if !validName(op.AddMember.Name) || op.AddMember.Controller.IsZero() {
			return ErrBadField
		}
		if err := m.canAdd(op.AddMember); err != nil {
			return err
		}
	case op.RemoveMember != "":
		if !m.memberNamed(op.RemoveMember) {
			return ErrUnknown
		}
	case op.SetValidator != nil:
		if op.EffectiveHeight < blk.Height+MinValidatorDelay || op.EffectiveHeight < m.lastValH {
			return ErrBadHeight
		}
		if _, err := m.validatorsWith(*op.SetValidator); err != nil {
			return err
		}
	case op.SetParam != nil:
		r, ok := paramRanges[op.SetParam.Name]
		if !ok || op.SetParam.Value < r[0] || op.SetParam.Value > r[1] {
			return ErrBadField
		}
	}
	p := Proposal{ID: op.ID, Proposer: me.Name, AddMember: op.AddMember, RemoveMember: op.RemoveMember,
		SetValidator: op.SetValidator, EffectiveHeight: op.EffectiveHeight, SetParam: op.SetParam,
		Height: blk.Height, Yes: []string{me.Name}, Status: ProposalOpen}
	m.decide(&p, blk)
	return nil
}

func (m *model) vote(from Address, op *GovVote, blk BlockInfo) error {
	p, ok := m.props[op.ID]
	if !ok {
		return ErrUnknown
	}
	if p.Status != ProposalOpen || p.SetValidator != nil && p.EffectiveHeight < blk.Height+MinValidatorDelay {
		return ErrProposalClosed
	}
	me, ok := m.isMember(from)
	if !ok {
		return ErrNotMember
	}
	if slices.Contains(p.Yes, me.Name) || slices.Contains(p.No, me.Name) {
		return ErrDoubleVote
	}
	if op.Yes {
		p.Yes = append(slices.Clone(p.Yes), me.Name)
	} else {
		p.No = append(slices.Clone(p.No), me.Name)
	}
	m.decide(&p, blk)
	return nil
}

// decide: yes votes of current members against the threshold, in exact rational arithmetic.
func (m *model) decide(p *Proposal, blk BlockInfo) {
	var yes, no int64
	for _, mb := range m.members {
		if slices.Contains(p.Yes, mb.Name) {
			yes++
		} else if slices.Contains(p.No, mb.Name) {
			no++
		}
	}
	n := int64(len(m.members))
	need := big.NewRat(int64(m.thr.Num)*n, int64(m.thr.Den))
	switch {
	case big.NewRat(yes, 1).Cmp(need) >= 0:
		p.Status, p.DecidedAt = ProposalPassed, blk.Height
		if err := m.execute(p, blk); err != nil {
			p.Status, p.Reason = ProposalFailed, err.Error()
		}
	case big.NewRat(n-no, 1).Cmp(need) < 0:
		p.Status, p.DecidedAt = ProposalRejected, blk.Height
	}
	m.props[p.ID] = *p
}

func (m *model) execute(p *Proposal, blk BlockInfo) error {
	switch {
	case p.AddMember != nil:
		if err := m.canAdd(p.AddMember); err != nil {
			return err
		}
		m.members = append(m.members, *p.AddMember)
		slices.SortFunc(m.members, func(a, b Member) int { return cmpString(a.Name, b.Name) })
	case p.RemoveMember != "":
		if !m.memberNamed(p.RemoveMember) {
			return ErrUnknown
		}
		if len(m.members) == 1 {
			return ErrBadField
		}
		m.members = slices.DeleteFunc(m.members, func(mb Member) bool { return mb.Name == p.RemoveMember })
	case p.SetParam != nil:
		m.params[p.SetParam.Name] = p.SetParam.Value
	case p.SetValidator != nil:
		if p.EffectiveHeight < blk.Height+MinValidatorDelay || p.EffectiveHeight < m.lastValH {
			return ErrBadHeight
		}
		vs, err := m.validatorsWith(*p.SetValidator)
		if err != nil {
			return err
		}
		m.vals[p.EffectiveHeight] = vs
		m.lastValH = p.EffectiveHeight
	}
	return nil
}
