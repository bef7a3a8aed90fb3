package state

import "fmt"

// Notarization: the first anchor of a document hash is kept forever; anchoring it again is
// refused, so the record proves who had the document first, and when.

func (ov *overlay) notaryAnchor(from Address, op *NotaryAnchor) error {
	if op.Hash == (Hash{}) {
		return fmt.Errorf("%w: zero document hash", ErrBadField)
	}
	k := keyNotary(op.Hash)
	if ok, err := ov.exists(k); err != nil || ok {
		return existsErr(err, "anchor of "+op.Hash.String())
	}
	return ov.store(k, &NotaryRecord{Hash: op.Hash, By: from, Height: ov.blk.Height, TimeMs: ov.blk.TimeMs, Tx: ov.txHash})
}
