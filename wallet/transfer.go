package wallet

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/state"
)

// NewTransfer builds and signs a transfer of amount from key's account to to, for chain chainID
// with the sender's nonce, and returns the encoded transaction and its hash (its ID). Submit raw
// with api.Client.SubmitTx. (This package does not import node, so that holding keys and signing
// do not pull in the node's networking and storage.)
func NewTransfer(chainID string, key ed25519.PrivateKey, to state.Address, amount, nonce uint64) (raw []byte, hash state.Hash, err error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, state.Hash{}, errors.New("wallet: not an ed25519 private key")
	}
	if chainID == "" {
		return nil, state.Hash{}, errors.New("wallet: empty chain ID")
	}
	if amount == 0 {
		return nil, state.Hash{}, state.ErrBadAmount
	}
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	if from == to {
		return nil, state.Hash{}, state.ErrSelfTransfer
	}
	tx, err := state.SignTx(state.TxBody{
		ChainID:  chainID,
		From:     from,
		Nonce:    nonce,
		Transfer: &state.Transfer{To: to, Amount: amount},
	}, key)
	if err != nil {
		return nil, state.Hash{}, fmt.Errorf("wallet: signing transfer: %w", err)
	}
	raw, err = tx.Encode()
	if err != nil {
		return nil, state.Hash{}, fmt.Errorf("wallet: encoding transfer: %w", err)
	}
	return raw, state.HashTx(raw), nil
}
