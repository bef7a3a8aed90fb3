package main

import (
	"strings"
	"testing"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// The hint about nonces follows the node's error code, not the words of its message.
func TestRefusedTxNonceHintByCode(t *testing.T) {
	client := api.NewClient("127.0.0.1:1")
	tx := &state.Tx{Body: state.TxBody{ChainID: "c", Nonce: 7}}
	for _, tc := range []struct {
		code, msg string
		hint      bool
	}{
		{api.CodeNonceUsed, "state: wrong nonce: 7, account is at 9", true},
		{api.CodeNonceAhead, "node: too far ahead", true},
		{api.CodeBadRequest, "state: memo mentions a nonce", false},
		{api.CodeBadSignature, "state: bad signature", false},
	} {
		err := refusedTx(client, nil, tx, &api.Error{Status: 400, Code: tc.code, Message: tc.msg})
		got := strings.Contains(err.Error(), "signed with nonce 7")
		if got != tc.hint || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s %q: hint %v, want %v: %v", tc.code, tc.msg, got, tc.hint, err)
		}
	}
}
