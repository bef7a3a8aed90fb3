package p2p

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// libp2pKey wraps a node's ed25519 key as a libp2p identity.
func libp2pKey(priv ed25519.PrivateKey) (crypto.PrivKey, error) {
	k, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p: node key: %w", err)
	}
	return k, nil
}

// PeerIDFromKey gives the libp2p peer ID of the node whose key is priv; genesis binds it to a
// validator.
func PeerIDFromKey(priv ed25519.PrivateKey) (string, error) {
	k, err := libp2pKey(priv)
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("p2p: peer ID: %w", err)
	}
	return id.String(), nil
}
