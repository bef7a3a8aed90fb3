package node

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// ReindexResult is what Reindex did.
type ReindexResult struct {
	Height  uint64        // the indexes are complete up to this block
	Entries int           // index entries written
	Took    time.Duration // wall time
}

// Reindex rebuilds, from scratch, the block store's transaction and account indexes of the node
// at home from its stored blocks and results (see blockstore_index.go). The node must be stopped:
// a running node holds its stores' locks, and then opening them fails. progress, if not nil, is
// called after each batch is written; logger (nil: slog's default) gets the storage engine's messages.
func Reindex(home string, logger *slog.Logger, progress func(height, of uint64, entries int)) (ReindexResult, error) {
	start := time.Now()
	if logger == nil {
		logger = slog.Default()
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return ReindexResult{}, err
	}
	backend := kv.Backend(cfg.Storage.Backend)
	if backend == kv.MemDB {
		return ReindexResult{}, errors.New("node: reindex: the node's storage backend is memdb, which keeps nothing on disk")
	}
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		return ReindexResult{}, err
	}
	dir := filepath.Join(home, DataDir)
	open := func(name string) (kv.Store, error) {
		db, err := kv.OpenWith(backend, dir, name, kv.Options{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("node: reindex: opening the %s store (is the node still running? stop it first): %w", name, err)
		}
		return db, nil
	}
	blockDB, err := open("blocks")
	if err != nil {
		return ReindexResult{}, err
	}
	defer blockDB.Close()
	stateDB, err := open("state")
	if err != nil {
		return ReindexResult{}, err
	}
	defer stateDB.Close()
	blocks, err := OpenBlockStore(blockDB)
	if err != nil {
		return ReindexResult{}, err
	}
	st, err := state.Open(stateDB, gen.ChainID)
	if err != nil {
		return ReindexResult{}, fmt.Errorf("node: reindex: opening state: %w", err)
	}
	// Blocks stored but not yet executed are indexed when the node executes them at its next
	// start; so is the last executed block if a crash came before its results were recorded.
	to := min(st.Height(), blocks.Height())
	if to > 0 {
		if res, err := blocks.Results(to); err != nil {
			return ReindexResult{}, err
		} else if res == nil {
			to--
		}
	}
	touches := func(h uint64, txs [][]byte, results []StoredResult) ([][]state.Address, error) {
		return blockTouches(st, h, txs, nil, results)
	}
	entries, err := blocks.RebuildIndexes(to, true, touches, func(h uint64, entries int) {
		if progress != nil {
			progress(h, to, entries)
		}
	})
	if err != nil {
		return ReindexResult{}, fmt.Errorf("node: reindex: %w", err)
	}
	return ReindexResult{Height: to, Entries: entries, Took: time.Since(start)}, nil
}
