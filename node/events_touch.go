package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"github.com/guild-ledger/guild/state"
)

// What a committed transaction touches, for the filters of GET /v1/events.
//
// The accounts a transaction touches are: its sender; every key that signed it (the officers of a
// multi-signature account); every address named anywhere in its operation (found by reflection,
// so an operation added later is covered without a change here); the new signatories of
// set_signers; and, for an operation that acts on a record by ID, the parties of that record:
// an escrow's depositor, beneficiary and arbiter (release, refund), the controllers of a claim's
// issuer and subject identities (issue, revoke), and the controller of a device's organization
// (identity registration).
//
// Records are read from the current state, so they are used only when the transaction succeeded
// (the record then existed at its height) and the record was created at or before that height:
// parties of a record never change once it exists, so every read, live or replayed, gives the
// same answer. Not covered, because the transaction alone cannot name them stably: the members a
// governance proposal removes (gone from state once it passes) and the identities eligible to
// vote in a ballot.

var (
	addressType = reflect.TypeOf(state.Address{})
	bodyType    = reflect.TypeOf(state.TxBody{})
)

// txOp returns the operation set in body and its name in snake case ("asset_transfer").
func txOp(body *state.TxBody) (reflect.Value, string) {
	v := reflect.ValueOf(body).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.Struct {
			return f, snakeCase(bodyType.Field(i).Name)
		}
	}
	return reflect.Value{}, ""
}

func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isGovernanceOp: these transactions are sent as "governance" events rather than "tx".
func isGovernanceOp(op any) bool {
	switch op.(type) {
	case *state.GovPropose, *state.GovVote:
		return true
	}
	return false
}

// collectAddresses calls add for every state.Address reachable from v (fields, pointers, slices).
func collectAddresses(v reflect.Value, add func(state.Address)) {
	if v.Type() == addressType {
		add(v.Interface().(state.Address))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			collectAddresses(v.Elem(), add)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				collectAddresses(v.Field(i), add)
			}
		}
	case reflect.Slice, reflect.Array:
		switch e := v.Type().Elem(); {
		case e == addressType, e.Kind() == reflect.Struct, e.Kind() == reflect.Pointer, e.Kind() == reflect.Slice && e.Elem().Kind() != reflect.Uint8:
			for i := 0; i < v.Len(); i++ {
				collectAddresses(v.Index(i), add)
			}
		}
	}
}

// touchRecords reads the records whose parties a transaction touches; *state.State is one.
type touchRecords interface {
	Identity(id string) (state.Identity, error)
	Claim(id string) (state.Claim, error)
	Escrow(id string) (state.Escrow, error)
	PrivateEscrow(id string) (state.PrivateEscrow, error)
}

// txTouch is what a transaction touches: accounts (sender first, no repeats), and the item or
// asset it acts on.
type txTouch struct {
	accounts    []state.Address
	item, asset string
}

// txTouches says what tx, committed at height (ok: without error), touches, reading records
// from st. A record that is absent is no party; any other read error is returned, so that an
// index is never written from a store that failed.
func txTouches(st touchRecords, tx *state.Tx, op reflect.Value, height uint64, ok bool) (txTouch, error) {
	var t txTouch
	add := func(a state.Address) { // a transaction names a handful of accounts: a scan beats a map
		if !a.IsZero() && !slices.Contains(t.accounts, a) {
			t.accounts = append(t.accounts, a)
		}
	}
	add(tx.Body.From)
	for _, s := range tx.Sigs {
		if len(s.PubKey) == ed25519.PublicKeySize {
			add(state.AddressFromPubKey(s.PubKey))
		}
	}
	var opv any
	if op.IsValid() {
		collectAddresses(op, add)
		opv = op.Interface()
	}
	var readErr error
	absent := func(err error, notFound error) bool {
		if err != nil && !errors.Is(err, notFound) && readErr == nil {
			readErr = err
		}
		return err != nil
	}
	controller := func(identity string) {
		id, err := st.Identity(identity)
		if !absent(err, state.ErrIdentityNotFound) && id.Height <= height {
			add(id.Controller)
		}
	}
	escrow := func(id string) {
		if !ok {
			return
		}
		e, err := st.Escrow(id)
		if absent(err, state.ErrEscrowNotFound) || e.Height > height {
			return
		}
		add(e.Depositor)
		add(e.Beneficiary)
		if e.Arbiter != nil {
			add(*e.Arbiter)
		}
		t.asset = e.Asset
	}
	switch o := opv.(type) {
	case *state.SetSigners:
		for _, k := range o.Signers {
			if len(k) == ed25519.PublicKeySize {
				add(state.AddressFromPubKey(k))
			}
		}
	case *state.AssetCreate:
		t.asset = o.Symbol
	case *state.AssetMint:
		t.asset = o.Symbol
	case *state.AssetBurn:
		t.asset = o.Symbol
	case *state.AssetTransfer:
		t.asset = o.Symbol
	case *state.ItemRegister:
		t.item = o.ID
	case *state.ItemTransfer:
		t.item = o.ID
	case *state.EscrowCreate:
		t.asset = o.Asset
	case *state.EscrowRelease:
		escrow(o.ID)
	case *state.EscrowRefund:
		escrow(o.ID)
	case *state.PrivateEscrowClose:
		if !ok {
			break
		}
		if e, err := st.PrivateEscrow(o.ID); !absent(err, state.ErrPrivateEscrowNotFound) && e.Height <= height {
			add(e.Depositor)
			add(e.Beneficiary)
			if e.Arbiter != nil {
				add(*e.Arbiter)
			}
		}
	case *state.PrivateClaimIssue:
		if ok {
			controller(o.Issuer)
			controller(o.Subject)
		}
	case *state.ClaimIssue:
		if ok {
			controller(o.Issuer)
			controller(o.Subject)
		}
	case *state.ClaimRevoke:
		if !ok {
			break
		}
		if c, err := st.Claim(o.ID); !absent(err, state.ErrClaimNotFound) && c.Height <= height {
			controller(c.Issuer)
			controller(c.Subject)
		}
	case *state.IdentityRegister:
		if ok && o.Owner != "" {
			controller(o.Owner)
		}
	}
	return t, readErr
}

// blockTouches lists the accounts each transaction of a block executed at height touches, for
// the account index; a transaction that does not decode (execution refused it) touches none.
// decoded, if not nil, holds the transactions as execution decoded them (nil entries decoded
// here).
func blockTouches(st touchRecords, height uint64, txs [][]byte, decoded []*state.Tx, results []StoredResult) ([][]state.Address, error) {
	out := make([][]state.Address, len(txs))
	for i, raw := range txs {
		ok := i < len(results) && results[i].Error == ""
		var tx *state.Tx
		if i < len(decoded) {
			tx = decoded[i]
		}
		if tx == nil {
			var err error
			if tx, err = decodeExecutedTx(raw, ok); err != nil {
				continue
			}
		}
		op, _ := txOp(&tx.Body)
		t, err := txTouches(st, tx, op, height, ok)
		if err != nil {
			return nil, fmt.Errorf("node: indexing transaction %d of block %d: %w", i, height, err)
		}
		out[i] = t.accounts
	}
	return out, nil
}

// decodeExecutedTx decodes a transaction of an executed block. One that was applied passed
// DecodeTx then, so its checks (canonical encoding, one operation) are not paid again on the
// commit path.
func decodeExecutedTx(raw []byte, applied bool) (*state.Tx, error) {
	if !applied {
		return state.DecodeTx(raw)
	}
	var tx state.Tx
	if err := state.Unmarshal(raw, &tx); err != nil {
		return nil, err
	}
	return &tx, nil
}
