package state

import (
	"fmt"
	"slices"
	"strings"
)

// genesis seeds ov with g; see Genesis.
func (ov *overlay) genesis(g *Genesis) error {
	seen := make(map[Address]bool, len(g.Accounts))
	var supply uint64
	for _, ga := range g.Accounts {
		if seen[ga.Address] {
			return fmt.Errorf("%w: account %s funded twice", ErrBadGenesis, ga.Address)
		}
		seen[ga.Address] = true
		if supply+ga.Balance < supply {
			return fmt.Errorf("%w: total supply overflows", ErrBadGenesis)
		}
		supply += ga.Balance
		if ga.Balance != 0 {
			i, err := ov.account(ga.Address)
			if err != nil {
				return err
			}
			ov.touch(i).Balance = ga.Balance
		}
	}

	gs := govState{Threshold: g.Threshold}
	if gs.Threshold == (Threshold{}) {
		gs.Threshold = DefaultThreshold
	}
	if err := checkThreshold(gs.Threshold); err != nil {
		return fmt.Errorf("%w: %w", ErrBadGenesis, err)
	}
	for _, m := range g.Members {
		if err := checkMember(&m); err != nil {
			return fmt.Errorf("%w: %w", ErrBadGenesis, err)
		}
		if err := gs.canAdd(&m); err != nil {
			return fmt.Errorf("%w: %w", ErrBadGenesis, err)
		}
		gs.Members = append(gs.Members, m)
	}
	slices.SortFunc(gs.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	gs.Params = DefaultParams()
	for _, p := range g.Params {
		if err := checkParam(p); err != nil {
			return fmt.Errorf("%w: %w", ErrBadGenesis, err)
		}
		i := slices.IndexFunc(gs.Params, func(q Param) bool { return q.Name == p.Name })
		gs.Params[i] = p // checkParam knows only the names DefaultParams has
	}
	vals := slices.Clone(g.Validators)
	slices.SortFunc(vals, func(a, b Validator) int { return strings.Compare(a.Name, b.Name) })
	if len(vals) > 0 {
		if err := checkValidatorSet(vals); err != nil {
			return fmt.Errorf("%w: %w", ErrBadGenesis, err)
		}
	}
	if err := ov.store(keyValidators(0), &ValidatorSetAt{Height: 0, Validators: vals}); err != nil {
		return err
	}
	if err := ov.store(keyGov, &gs); err != nil {
		return err
	}

	for i := range g.Ops {
		body := &g.Ops[i]
		raw, err := Marshal(body)
		if err != nil {
			return fmt.Errorf("%w: op %d: %v", ErrBadGenesis, i, err)
		}
		// A genesis op's "transaction hash", for records that name one (item history, anchors).
		ov.txHash = HashTx(raw)
		if n := body.opCount(); n != 1 {
			return fmt.Errorf("%w: op %d has %d operations", ErrBadGenesis, i, n)
		}
		if err := ov.genesisOp(body); err != nil {
			return fmt.Errorf("%w: op %d: %w", ErrBadGenesis, i, err)
		}
	}
	ov.journal = ov.journal[:0]
	return nil
}

func (ov *overlay) genesisOp(body *TxBody) error {
	if tr := body.Transfer; tr != nil {
		if tr.Amount == 0 {
			return ErrBadAmount
		}
		if tr.To == body.From {
			return ErrSelfTransfer
		}
		if err := ov.debitNative(body.From, tr.Amount); err != nil {
			return err
		}
		return ov.creditNative(tr.To, tr.Amount)
	}
	return ov.applyOp(&Tx{Body: *body})
}
