package state

import (
	"fmt"
	"math"
)

// Fungible assets. An asset class is created by a member (its issuer), who alone mints; any
// holder transfers or burns its own units. Balances are records r/bal/<address><symbol>, absent
// when zero. Supply is conserved: for every asset, Supply equals the sum of all balances plus
// what open escrows hold, and only mint and burn change it. The native currency is not an asset
// class: it lives in Account.Balance and its supply is fixed at genesis.

func (ov *overlay) asset(sym string) (*Asset, error) {
	var a Asset
	ok, err := ov.load(keyAsset(sym), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: asset %q", ErrUnknown, sym)
	}
	return &a, nil
}

func (ov *overlay) balance(a Address, sym string) (uint64, error) {
	var v uint64
	_, err := ov.load(keyBalance(a, sym), &v)
	return v, err
}

func (ov *overlay) setBalance(a Address, sym string, v uint64) error {
	if v == 0 {
		return ov.del(keyBalance(a, sym))
	}
	return ov.store(keyBalance(a, sym), v)
}

func (ov *overlay) debitAsset(a Address, sym string, amount uint64) error {
	bal, err := ov.balance(a, sym)
	if err != nil {
		return err
	}
	if bal < amount {
		return fmt.Errorf("%w: %s balance %d, amount %d", ErrNoFunds, sym, bal, amount)
	}
	return ov.setBalance(a, sym, bal-amount)
}

func (ov *overlay) creditAsset(a Address, sym string, amount uint64) error {
	bal, err := ov.balance(a, sym)
	if err != nil {
		return err
	}
	// Cannot happen while supply is conserved (a balance never exceeds the supply), but a
	// ledger checks rather than assumes.
	if bal > math.MaxUint64-amount {
		return fmt.Errorf("%w: %s balance %d, amount %d", ErrOverflow, sym, bal, amount)
	}
	return ov.setBalance(a, sym, bal+amount)
}

func (ov *overlay) assetCreate(from Address, op *AssetCreate) error {
	if !ValidSymbol(op.Symbol) {
		return fmt.Errorf("%w: %q", ErrBadSymbol, op.Symbol)
	}
	if !validName(op.Name) {
		return fmt.Errorf("%w: asset name %q", ErrBadField, op.Name)
	}
	if op.Decimals > MaxDecimals {
		return fmt.Errorf("%w: %d decimals, limit %d", ErrBadField, op.Decimals, MaxDecimals)
	}
	if err := ov.requireMember(from); err != nil {
		return err
	}
	k := keyAsset(op.Symbol)
	if ok, err := ov.exists(k); err != nil || ok {
		return existsErr(err, "asset "+op.Symbol)
	}
	return ov.store(k, &Asset{Symbol: op.Symbol, Name: op.Name, Decimals: op.Decimals,
		MaxSupply: op.MaxSupply, Issuer: from, Height: ov.blk.Height})
}

func (ov *overlay) assetMint(from Address, op *AssetMint) error {
	a, err := ov.asset(op.Symbol)
	if err != nil {
		return err
	}
	switch {
	case a.Issuer != from:
		return fmt.Errorf("%w of %s", ErrNotIssuer, op.Symbol)
	case op.Amount == 0:
		return ErrBadAmount
	case a.Supply > math.MaxUint64-op.Amount:
		return fmt.Errorf("%w: supply %d, mint %d", ErrOverflow, a.Supply, op.Amount)
	case a.MaxSupply != 0 && a.Supply+op.Amount > a.MaxSupply:
		return fmt.Errorf("%w: supply %d, mint %d, maximum %d", ErrMaxSupply, a.Supply, op.Amount, a.MaxSupply)
	}
	a.Supply += op.Amount
	if err := ov.creditAsset(op.To, op.Symbol, op.Amount); err != nil {
		return err
	}
	return ov.store(keyAsset(op.Symbol), a)
}

func (ov *overlay) assetBurn(from Address, op *AssetBurn) error {
	a, err := ov.asset(op.Symbol)
	if err != nil {
		return err
	}
	if op.Amount == 0 {
		return ErrBadAmount
	}
	if err := ov.debitAsset(from, op.Symbol, op.Amount); err != nil {
		return err
	}
	a.Supply -= op.Amount
	return ov.store(keyAsset(op.Symbol), a)
}

func (ov *overlay) assetTransfer(from Address, op *AssetTransfer) error {
	if _, err := ov.asset(op.Symbol); err != nil {
		return err
	}
	switch {
	case op.Amount == 0:
		return ErrBadAmount
	case op.To == from:
		return ErrSelfTransfer
	}
	if err := ov.debitAsset(from, op.Symbol, op.Amount); err != nil {
		return err
	}
	return ov.creditAsset(op.To, op.Symbol, op.Amount)
}

// existsErr turns the result of an existence check that found something (or failed) into the
// operation's error.
func existsErr(err error, what string) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrExists, what)
}
