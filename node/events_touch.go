package node

import (
	"crypto/ed25519"
	"reflect"
	"strings"
	"unicode"

	"github.com/guild-ledger/guild/node/api"
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

// txTouches fills ev.Accounts, ev.Item and ev.Asset for tx, committed at height (ok: without error).
func (n *Node) txTouches(tx *state.Tx, op reflect.Value, height uint64, ok bool, ev *api.TxEventJSON) {
	seen := map[state.Address]bool{}
	var accounts []state.Address
	add := func(a state.Address) {
		if !a.IsZero() && !seen[a] {
			seen[a] = true
			accounts = append(accounts, a)
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
	controller := func(identity string) {
		if id, err := n.st.Identity(identity); err == nil && id.Height <= height {
			add(id.Controller)
		}
	}
	switch o := opv.(type) {
	case *state.SetSigners:
		for _, k := range o.Signers {
			if len(k) == ed25519.PublicKeySize {
				add(state.AddressFromPubKey(k))
			}
		}
	case *state.AssetCreate:
		ev.Asset = o.Symbol
	case *state.AssetMint:
		ev.Asset = o.Symbol
	case *state.AssetBurn:
		ev.Asset = o.Symbol
	case *state.AssetTransfer:
		ev.Asset = o.Symbol
	case *state.ItemRegister:
		ev.Item = o.ID
	case *state.ItemTransfer:
		ev.Item = o.ID
	case *state.EscrowCreate:
		ev.Asset = o.Asset
	case *state.EscrowRelease:
		ev.Asset = n.escrowParties(o.ID, height, ok, add)
	case *state.EscrowRefund:
		ev.Asset = n.escrowParties(o.ID, height, ok, add)
	case *state.ClaimIssue:
		if ok {
			controller(o.Issuer)
			controller(o.Subject)
		}
	case *state.ClaimRevoke:
		if c, err := n.st.Claim(o.ID); ok && err == nil && c.Height <= height {
			controller(c.Issuer)
			controller(c.Subject)
		}
	case *state.IdentityRegister:
		if ok && o.Owner != "" {
			controller(o.Owner)
		}
	}
	ev.Accounts = make([]string, len(accounts))
	for i, a := range accounts {
		ev.Accounts[i] = a.String()
	}
}

// escrowParties adds an escrow's parties and returns its asset ("" for the native currency).
func (n *Node) escrowParties(id string, height uint64, ok bool, add func(state.Address)) string {
	if !ok {
		return ""
	}
	e, err := n.st.Escrow(id)
	if err != nil || e.Height > height {
		return ""
	}
	add(e.Depositor)
	add(e.Beneficiary)
	if e.Arbiter != nil {
		add(*e.Arbiter)
	}
	return e.Asset
}
