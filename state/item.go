package state

import "fmt"

// Unique items with provenance. Each item's history is append-only: event n of item id is the
// record r/ihist/<id>\x00<n>, written once and never changed, so a history query is one ordered
// scan and a block that transfers an item writes one new event, not the whole history.

func (ov *overlay) item(id string) (*Item, error) {
	var it Item
	ok, err := ov.load(keyItem(id), &it)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: item %q", ErrUnknown, id)
	}
	return &it, nil
}

func (ov *overlay) appendItemEvent(it *Item, event string, from, to Address) error {
	ev := ItemEvent{Seq: it.Events, Event: event, From: from, To: to, Tx: ov.txHash,
		Height: ov.blk.Height, TimeMs: ov.blk.TimeMs}
	it.Events++
	if err := ov.store(keyItemEvent(it.ID, ev.Seq), &ev); err != nil {
		return err
	}
	return ov.store(keyItem(it.ID), it)
}

func (ov *overlay) itemRegister(from Address, op *ItemRegister) error {
	if err := checkID(op.ID); err != nil {
		return err
	}
	if ok, err := ov.exists(keyItem(op.ID)); err != nil || ok {
		return existsErr(err, "item "+op.ID)
	}
	owner := from
	if op.Owner != nil {
		owner = *op.Owner
	}
	it := &Item{ID: op.ID, MetadataHash: op.MetadataHash, Owner: owner, Registrar: from, Height: ov.blk.Height}
	return ov.appendItemEvent(it, EventRegister, from, owner)
}

func (ov *overlay) itemTransfer(from Address, op *ItemTransfer) error {
	it, err := ov.item(op.ID)
	if err != nil {
		return err
	}
	switch {
	case it.Owner != from:
		return fmt.Errorf("%w of item %q", ErrNotOwner, op.ID)
	case op.To == from:
		return ErrSelfTransfer
	}
	it.Owner = op.To
	return ov.appendItemEvent(it, EventTransfer, from, op.To)
}
