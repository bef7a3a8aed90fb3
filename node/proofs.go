package node

import (
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/node/light"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/merkle"
)

// Proofs to carry away (issue 12): a state entry at a height, or a transaction's receipt, with
// everything a light client needs to check it offline against the genesis alone (node/light).

var (
	// ErrNotProvable: the height asked for has no certified successor yet (its state root and
	// receipts are certified by the next block's header), or is past the chain.
	ErrNotProvable = errors.New("node: not provable yet: the next block is not committed")
	// ErrNoReceipts: the block's stored results do not give the receipts root its successor
	// carries (a block committed before headers had one).
	ErrNoReceipts = errors.New("node: the block's receipts are not certified")
)

// StateProof is the proof of a state entry (state.StateKey(kind, args...)) after block height,
// or after the last block that has a certified successor when latest.
func (n *Node) StateProof(key []byte, height uint64, latest bool) (*light.File, error) {
	top := n.blocks.Height()
	if latest {
		if top == 0 {
			return nil, ErrNotProvable
		}
		height = top - 1
	}
	if height >= top {
		return nil, fmt.Errorf("%w: state after block %d needs block %d, the chain is at %d", ErrNotProvable, height, height+1, top)
	}
	f, root, err := n.anchoredFile(light.TypeState, height+1)
	if err != nil {
		return nil, err
	}
	p, err := n.st.ProveAt(height, root, key)
	if err != nil {
		return nil, err
	}
	e := light.FromStateProof(p)
	f.State = &e
	return f, nil
}

// TxProof is the proof of a committed transaction's outcome (its receipt).
func (n *Node) TxProof(h state.Hash) (*light.File, error) {
	loc, err := n.blocks.TxLocation(h)
	if err != nil {
		return nil, err
	}
	if loc.Height >= n.blocks.Height() {
		return nil, fmt.Errorf("%w: transaction in block %d, whose receipts block %d certifies", ErrNotProvable, loc.Height, loc.Height+1)
	}
	f, _, err := n.anchoredFile(light.TypeTx, loc.Height+1)
	if err != nil {
		return nil, err
	}
	results, err := n.blocks.Results(loc.Height)
	if err != nil {
		return nil, err
	}
	leaves := make([][]byte, len(results))
	for i, r := range results {
		leaves[i] = merkle.ReceiptLeaf(r.Hash, r.Error == "")
	}
	hdr, err := n.blocks.Header(loc.Height + 1)
	if err != nil {
		return nil, err
	}
	if int(loc.Index) >= len(results) || results[loc.Index].Hash != h || merkle.ReceiptsRoot(leaves) != hdr.Header.ReceiptsRoot {
		return nil, fmt.Errorf("%w: block %d", ErrNoReceipts, loc.Height)
	}
	path, err := merkle.ReceiptPath(leaves, int(loc.Index))
	if err != nil {
		return nil, err
	}
	_, _, txs, err := n.blocks.BlockTxs(loc.Height, []uint32{loc.Index})
	if err != nil {
		return nil, err
	}
	block, _, err := n.blocks.Block(loc.Height)
	if err != nil {
		return nil, err
	}
	t := &light.TxProof{Hash: light.Hash(h), Raw: txs[loc.Index], Applied: results[loc.Index].Error == "",
		Index: uint64(loc.Index), Count: uint64(len(results)), Path: make([]light.Hash, len(path)), Block: block}
	for i := range path {
		t.Path[i] = path[i]
	}
	f.Tx = t
	return f, nil
}

// anchoredFile starts a proof file anchored at block anchor: that block and its certificate, the
// validator set changes from genesis up to it, and the schedule entry that closes them. It
// returns the anchor's state root.
func (n *Node) anchoredFile(typ string, anchor uint64) (*light.File, state.Hash, error) {
	f := &light.File{Version: light.Version, Type: typ, ChainID: n.chainID, Height: anchor - 1}
	c, hdr, err := certifiedBlock(n.blocks, anchor)
	if err != nil {
		return nil, state.Hash{}, err
	}
	f.Anchor = c
	root := hdr.StateRoot
	f.Validators, f.Schedule, err = validatorProof(n.st, n.blocks, anchor, root)
	if err != nil {
		return nil, root, err
	}
	return f, root, nil
}

// validatorProof is what shows a light client (or a node that state-syncs) the validator set of
// block anchor: every change from genesis that takes effect at or before it, and the schedule
// entry, proven against root (the anchor's state root), that closes them.
func validatorProof(st *state.State, blocks *BlockStore, anchor uint64, root state.Hash) ([]light.Change, light.EntryProof, error) {
	changes := []light.Change{}
	sets, err := st.ValidatorSchedule()
	if err != nil {
		return nil, light.EntryProof{}, err
	}
	// Every change that takes effect at or before the anchor, each proven against the block just
	// before it: decided by the set it replaces, with the change already in its state (a change
	// is passed at least state.MinValidatorDelay blocks before it takes effect).
	last := uint64(0)
	var next *state.ValidatorSetAt
	for i := range sets {
		vs := &sets[i]
		if vs.Height == 0 {
			continue
		}
		if vs.Height > anchor {
			next = vs
			break
		}
		ch, err := validatorChange(st, blocks, vs.Height)
		if err != nil {
			return nil, light.EntryProof{}, err
		}
		changes = append(changes, ch)
		last = vs.Height
	}
	// Then the anchor's own state shows that no other set was scheduled after the last one by
	// then, or names the next one, which starts after the anchor.
	gov, err := st.ProveAt(anchor-1, root, []byte("r/gov"))
	if err != nil {
		return nil, light.EntryProof{}, err
	}
	lh, err := state.GovValidatorHeight(gov.Value)
	if err != nil {
		return nil, light.EntryProof{}, err
	}
	if lh == last || next == nil {
		return changes, light.FromStateProof(gov), nil
	}
	p, err := st.ProveAt(anchor-1, root, []byte(keyValidatorsAt(next.Height)))
	if err != nil {
		return nil, light.EntryProof{}, err
	}
	return changes, light.FromStateProof(p), nil
}

// validatorChange is the proof of the set that takes effect at height h: block h-1 and its
// certificate, and the set's snapshot proven against its state root; or, on a node that joined
// by state sync after h (it holds neither), the proof it verified when it joined.
func validatorChange(st *state.State, blocks *BlockStore, h uint64) (light.Change, error) {
	if c, ok, err := blocks.ValidatorChange(h); ok || err != nil {
		return c, err
	}
	cb, hdr, err := certifiedBlock(blocks, h-1)
	if err != nil {
		return light.Change{}, err
	}
	p, err := st.ProveAt(h-2, hdr.StateRoot, []byte(keyValidatorsAt(h)))
	if err != nil {
		return light.Change{}, err
	}
	return light.Change{Certified: cb, Proof: light.FromStateProof(p)}, nil
}

func keyValidatorsAt(h uint64) string {
	k, _ := state.StateKey(state.KindValidators, fmt.Sprint(h))
	return string(k)
}

// certifiedBlock is a stored block with its certificate, in proof form, and its header.
func certifiedBlock(blocks *BlockStore, h uint64) (light.Certified, *Header, error) {
	value, cert, err := blocks.Block(h)
	if err != nil {
		return light.Certified{}, nil, err
	}
	cb, err := state.Marshal(cert)
	if err != nil {
		return light.Certified{}, nil, err
	}
	var skim blockHeaderOnly
	if err := skimMode.Unmarshal(value, &skim); err != nil {
		return light.Certified{}, nil, fmt.Errorf("%w: header of block %d: %w", ErrStoreCorrupt, h, err)
	}
	return light.Certified{Block: value, Certificate: cb}, &skim.Header, nil
}
