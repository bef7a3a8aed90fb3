package kv

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	dbm "github.com/cometbft/cometbft-db"
)

// ExitStorageFatal is the exit code of a process stopped by a fatal error of the storage engine
// (EX_SOFTWARE in sysexits.h).
const ExitStorageFatal = 70

// Options tune OpenWith. The zero value is Open's behaviour.
type Options struct {
	// Logger, when set, receives the pebble engine's own messages instead of the standard library
	// logger: background errors at ERROR, slow disks and write stalls at WARN, routine ones at
	// DEBUG, and its fatal
	// errors at ERROR with what to do, before the process exits with ExitStorageFatal (pebble
	// cannot go on after one of those: a write it acknowledged may be lost).
	Logger *slog.Logger
}

func openPebble(dir, name string, log *slog.Logger) (dbm.DB, *pebbleLogger, error) {
	path := filepath.Join(dir, name+".db")
	pl := &pebbleLogger{log: log.With("component", "pebble", "store", path), path: path, exit: os.Exit}
	opts := tunedPebbleOptions()
	opts.Logger = pl
	opts.EventListener = pl.listener()
	db, err := dbm.NewPebbleDBWithOpts(name, dir, opts)
	if err != nil {
		return nil, nil, err
	}
	return db, pl, nil
}

// listener counts the engine's events for Stats and logs them: background errors at ERROR, slow
// disks and write stalls at WARN.
func (pl *pebbleLogger) listener() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			pl.backgroundErrors.Add(1)
			// Pebble retries some background work (table statistics) at once after a failure: on a
			// damaged table it would write this line thousands of times a second.
			if skipped, ok := pl.limit.allow(time.Now()); ok {
				// err.Error(), not err: pebble's errors print their stack traces in a log field.
				pl.log.Error("storage engine error: the store may be damaged or the disk full; check free "+
					"disk space and the disk's health (the kernel log)", "err", err.Error(), "not_logged_since", skipped)
			}
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			pl.slowDisk.Add(1)
			pl.log.Warn("disk is slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			pl.stallBegin(time.Now())
			pl.log.Warn("storage engine stalls writes (compaction is behind): the disk is too slow for the "+
				"load; if it lasts, move the data directory to a faster disk or offer the node less load",
				"reason", info.Reason)
		},
		WriteStallEnd: func() {
			d := pl.stallEnd(time.Now())
			pl.log.Info("storage engine write stall ended", "stalled", d)
		},
	}
}

// EngineStats is a pebble store's account of its own health: what its engine reported since the
// store opened, and the shape of its levels now.
type EngineStats struct {
	WriteStalls      uint64        // times the engine stopped writes because compaction was behind
	StalledSince     time.Time     // when the stall going on now began; zero when writes flow
	StalledFor       time.Duration // time writes were stopped in all, the stall going on now included
	SlowDiskOps      uint64        // disk operations the engine found slow
	BackgroundErrors uint64        // failed background work (compactions, flushes): see the log
	CompactionDebt   uint64        // bytes compactions estimate they must rewrite to settle the levels
	L0Sublevels      int           // level 0's depth: writes stop when it reaches the stop threshold
	// FlushedBytes and CompactedBytes are what the engine wrote to tables since the store opened:
	// memtables flushed, and tables rewritten by compactions (their ratio is the part of the
	// write amplification the store's key layout decides).
	FlushedBytes, CompactedBytes uint64
}

// Stats reports st's engine health, and false for a store that has none to report (memdb,
// goleveldb, or a pebble store opened without Options.Logger).
func Stats(st Store) (EngineStats, bool) {
	s, ok := st.(*store)
	if !ok || s.engine == nil || s.closed.Load() {
		return EngineStats{}, false
	}
	p, ok := s.db.(*dbm.PebbleDB)
	if !ok {
		return EngineStats{}, false
	}
	now := time.Now()
	pl := s.engine
	es := EngineStats{WriteStalls: pl.stalls.Load(), SlowDiskOps: pl.slowDisk.Load(),
		BackgroundErrors: pl.backgroundErrors.Load(), StalledFor: time.Duration(pl.stalledNanos.Load())}
	if since := pl.stalledSince.Load(); since != 0 {
		es.StalledSince = time.Unix(0, since)
		es.StalledFor += now.Sub(es.StalledSince)
	}
	m := p.DB().Metrics()
	es.CompactionDebt = m.Compact.EstimatedDebt
	es.L0Sublevels = int(m.Levels[0].Sublevels)
	for _, l := range m.Levels {
		es.FlushedBytes += l.BytesFlushed
		es.CompactedBytes += l.BytesCompacted
	}
	return es, true
}

// Memtable and level-0 sizing of the node's stores. Pebble's defaults (4 MiB memtables, a level-0
// compaction once 4 files or sublevels wait) made a validator at 3,000-4,000 tx/s spend about a
// seventh of its CPU compacting: the block store's indexes and pending-transaction log are keyed
// by hashes, so every level-0 compaction rewrote most of the level below it, every 16 MiB
// written. 8 MiB memtables and a compaction once 8 wait merge 64 MiB into the level below at a
// time, four times fewer rewrites of it; writes stop only at 24 waiting, pebble's ratio. 16 MiB
// memtables saved a little more CPU but added 30-40 MiB to each node's peak RSS. Memtables grow
// from 256 KiB as a store is written, so a quiet store stays small. Durability is unchanged:
// every write still goes through the WAL, synced as before.
const (
	memTableBytes         = 8 << 20
	l0CompactionThreshold = 8
	l0StopWritesThreshold = 24
)

func tunedPebbleOptions() *pebble.Options {
	return &pebble.Options{
		MemTableSize:          memTableBytes,
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: l0StopWritesThreshold,
	}
}

// pebbleLogger routes pebble's logger through slog. Pebble calls Fatalf when it cannot go on
// (a failed commit or manifest write, typically a full disk) and expects it not to return.
type pebbleLogger struct {
	log   *slog.Logger
	path  string
	exit  func(code int)
	limit limiter

	// What the engine's events said, for Stats.
	stalls, slowDisk, backgroundErrors atomic.Uint64
	stalledSince                       atomic.Int64 // unix nanoseconds; 0 when writes flow
	stalledNanos                       atomic.Int64 // ended stalls' time
}

func (l *pebbleLogger) stallBegin(now time.Time) {
	l.stalls.Add(1)
	l.stalledSince.CompareAndSwap(0, now.UnixNano())
}

// stallEnd ends the stall going on and says how long it lasted.
func (l *pebbleLogger) stallEnd(now time.Time) time.Duration {
	since := l.stalledSince.Swap(0)
	if since == 0 {
		return 0
	}
	d := max(0, now.Sub(time.Unix(0, since)))
	l.stalledNanos.Add(int64(d))
	return d
}

// backgroundErrorEvery spaces the log lines of repeated background errors.
const backgroundErrorEvery = 10 * time.Second

// limiter lets one event through per backgroundErrorEvery and counts those it held back.
type limiter struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (l *limiter) allow(now time.Time) (skipped int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < backgroundErrorEvery {
		l.skipped++
		return 0, false
	}
	skipped, l.skipped, l.last = l.skipped, 0, now
	return skipped, true
}

// Infof is pebble's routine chatter (log replay at open, and the like): debug level, where the
// standard library logger used to print it unasked.
func (l *pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l *pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("storage engine failed; the node stops to keep what it wrote consistent. If the disk "+
		"is full, free space on it and start the node again; otherwise check the disk (the kernel log) "+
		"and, if the store is damaged, move the data directory aside and start the node to resync from peers",
		"err", fmt.Sprintf(format, args...), "exit_code", ExitStorageFatal)
	l.exit(ExitStorageFatal)
}

// ErrNoCheckpoint is returned by Checkpoint for a backend that cannot take one.
var ErrNoCheckpoint = errors.New("kv: this storage backend cannot take a checkpoint (pebbledb can)")

// Checkpoint writes a consistent copy of s, as of the call, to the new directory dest: pebble's
// checkpoint, which hard-links the immutable tables and copies the rest, so it is quick and safe
// while the store is in use. Writes made meanwhile are either all in the copy or not at all, batch
// by batch. Only pebbledb stores can; others give ErrNoCheckpoint.
func Checkpoint(s Store, dest string) error {
	st, ok := s.(*store)
	if !ok {
		return ErrNoCheckpoint
	}
	if st.closed.Load() {
		return ErrClosed
	}
	p, ok := st.db.(*dbm.PebbleDB)
	if !ok {
		return ErrNoCheckpoint
	}
	if err := p.DB().Checkpoint(dest, pebble.WithFlushedWAL()); err != nil {
		return st.fail("checkpoint", err)
	}
	return nil
}
