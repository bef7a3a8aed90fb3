package node

import (
	"fmt"

	"github.com/guild-ledger/guild/node/light"
	"github.com/guild-ledger/guild/state"
)

// A node that joined by state sync holds neither the blocks before its snapshot nor the state
// they certify, so it cannot prove the validator set changes before it from its own stores. It
// keeps the proofs it verified when it joined, and serves them to the nodes that join from it.
//
//	v/<height>  a light.Change (canonical CBOR): the proof of the set in force from height

// encodeValidatorChange is the wire and store form of a validator set change's proof.
func encodeValidatorChange(c *light.Change) ([]byte, error) { return state.Marshal(c) }

// decodeValidatorChange reads what encodeValidatorChange wrote; the proof is unverified.
func decodeValidatorChange(raw []byte) (*light.Change, error) {
	var c light.Change
	if err := state.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// SaveValidatorChanges keeps verified proofs of validator set changes, by the height each set
// takes effect at.
func (bs *BlockStore) SaveValidatorChanges(changes map[uint64][]byte) error {
	if len(changes) == 0 {
		return nil
	}
	b := bs.db.NewBatch()
	defer b.Close()
	for h, raw := range changes {
		if err := b.Set(heightKey('v', h), raw); err != nil {
			return err
		}
	}
	if err := b.Write(); err != nil {
		return fmt.Errorf("node: block store write: %w", err)
	}
	return nil
}

// ValidatorChange is the kept proof of the set that takes effect at height h (ok false: none).
func (bs *BlockStore) ValidatorChange(h uint64) (c light.Change, ok bool, err error) {
	raw, err := bs.db.Get(heightKey('v', h))
	if err != nil || raw == nil {
		return c, false, err
	}
	p, err := decodeValidatorChange(raw)
	if err != nil {
		return c, false, fmt.Errorf("%w: validator change %d: %w", ErrStoreCorrupt, h, err)
	}
	return *p, true, nil
}
