package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
)

// A block store need not start at block 1. A node that joined by state sync holds the blocks
// from the snapshot's height on (its base), and one that prunes (storage.keep_blocks) moves its
// base up as it goes. Below the base, Block answers ErrBlockPruned, and the API 410.
//
//	m/base  u64 big endian: the first block held (absent: 1, every block)

var keyBase = []byte("m/base")

// ErrBlockPruned is a block below the store's base: pruned, or before the snapshot this node
// joined from.
var ErrBlockPruned = errors.New("node: block pruned or before state sync")

func (bs *BlockStore) loadBase() error {
	v, err := bs.db.Get(keyBase)
	if err != nil {
		return fmt.Errorf("node: block store: %w", err)
	}
	if v != nil {
		if len(v) != 8 {
			return fmt.Errorf("%w: the block store's base record", ErrStoreCorrupt)
		}
		bs.base.Store(binary.BigEndian.Uint64(v))
	}
	return nil
}

// Base is the first block held: 0 when the store keeps every block from 1.
func (bs *BlockStore) Base() uint64 { return bs.base.Load() }

// Earliest is the height of the first block the store can serve (1 for a full store).
func (bs *BlockStore) Earliest() uint64 { return max(1, bs.Base()) }

// SetBase starts an empty store at block height (a state-synced node's snapshot height): the
// block, its certificate and results, and indexes marked complete up to it: its transactions
// were executed elsewhere, and nothing up to it is indexed here.
func (bs *BlockStore) SetBase(height uint64, value []byte, cert *consensus.Certificate, results []StoredResult) error {
	if bs.Height() != 0 {
		return fmt.Errorf("node: block store: setting base %d on a store holding blocks up to %d", height, bs.Height())
	}
	if height == 0 {
		return errors.New("node: block store: base 0")
	}
	certBytes, err := state.Marshal(cert)
	if err != nil {
		return err
	}
	resBytes, err := state.Marshal(results)
	if err != nil {
		return err
	}
	b := bs.db.NewBatch()
	defer b.Close()
	var hb [8]byte
	binary.BigEndian.PutUint64(hb[:], height)
	for _, kvp := range [][2][]byte{
		{heightKey('b', height), value},
		{heightKey('c', height), certBytes},
		{heightKey('r', height), resBytes},
		{keyHeight, hb[:]},
		{keyBase, hb[:]},
		{keyIndexMark, encodeIndexMark(height)},
	} {
		if err := b.Set(kvp[0], kvp[1]); err != nil {
			return err
		}
	}
	if err := b.Write(); err != nil {
		return fmt.Errorf("node: block store write: %w", err)
	}
	bs.base.Store(height)
	bs.height.Store(height)
	bs.indexMark.Store(&indexMark{version: indexVersion, height: height})
	return nil
}

// Prune deletes the blocks below height `below`, at most max of them from the base up, with their
// certificates, results and transaction index entries, and moves the base to the first block
// left. Entries of the account index are left (history stops at the base); committed evidence is
// kept, so that CheckProposal still refuses evidence already on chain. Only the loop calls it.
func (bs *BlockStore) Prune(below uint64, max int) (int, error) {
	from := bs.Earliest()
	if below > bs.Height() {
		below = bs.Height() // the last block always stays
	}
	if below <= from || max <= 0 {
		return 0, nil
	}
	to := min(below, from+uint64(max))
	b := bs.db.NewBatch()
	defer b.Close()
	for h := from; h < to; h++ {
		results, err := bs.Results(h)
		if err != nil {
			return 0, err
		}
		for _, r := range results {
			loc, err := bs.TxLocation(r.Hash)
			if errors.Is(err, ErrBlockNotFound) {
				continue
			}
			if err != nil {
				return 0, err
			}
			if loc.Height == h {
				if err := b.Delete(txKey(r.Hash)); err != nil {
					return 0, err
				}
			}
		}
		for _, k := range [][]byte{heightKey('b', h), heightKey('c', h), heightKey('r', h)} {
			if err := b.Delete(k); err != nil {
				return 0, err
			}
		}
	}
	var hb [8]byte
	binary.BigEndian.PutUint64(hb[:], to)
	if err := b.Set(keyBase, hb[:]); err != nil {
		return 0, err
	}
	if err := b.Write(); err != nil {
		return 0, fmt.Errorf("node: block store write: %w", err)
	}
	bs.base.Store(to)
	return int(to - from), nil
}
