package node

import (
	"context"
	"log/slog"
	"time"
)

// diskState is how full the data directory's filesystem is.
type diskState int32

const (
	diskOK       diskState = iota
	diskLow                // below storage.min_free_mb: WARN
	diskCritical           // below diskCriticalBytes: ERROR, not ready
)

const (
	diskCheckEvery = 10 * time.Second
	// diskCriticalBytes: below this much free space pebble may soon fail a write, and a node that
	// cannot write stops (see kv's fatal handler); an operator must act before that.
	diskCriticalBytes = 100 << 20
	// diskRepeatEvery spaces repeated WARN and ERROR lines while the disk stays low.
	diskRepeatEvery = time.Minute
)

// diskMonitor checks the free space on the data directory's filesystem.
type diskMonitor struct {
	dir          string
	warn, crit   int64 // thresholds in bytes; warn 0 turns the monitor off
	statfs       func(dir string) (free int64, err error)
	log          *slog.Logger
	h            *nodeHealth
	level        diskState
	lastLog      time.Time
	failedLogged bool
}

func newDiskMonitor(dir string, minFreeMB int, statfs func(string) (int64, error), log *slog.Logger, h *nodeHealth) *diskMonitor {
	warn := int64(minFreeMB) << 20
	return &diskMonitor{dir: dir, warn: warn, crit: min(warn, diskCriticalBytes), statfs: statfs, log: log, h: h}
}

func (d *diskMonitor) run(ctx context.Context) {
	if d.warn == 0 {
		return
	}
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.check(now)
		}
	}
}

// check reads the free space once, updates the metric and readiness, and logs a change of level
// (and the low levels again every diskRepeatEvery).
func (d *diskMonitor) check(now time.Time) {
	if d.warn == 0 {
		return
	}
	free, err := d.statfs(d.dir)
	if err != nil {
		if !d.failedLogged {
			d.log.Warn("cannot read the free disk space of the data directory; the low-disk check is off", "dir", d.dir, "err", err)
			d.failedLogged = true
		}
		return
	}
	d.h.diskFree.Store(free)
	level := diskOK
	switch {
	case free < d.crit:
		level = diskCritical
	case free < d.warn:
		level = diskLow
	}
	d.h.diskLevel.Store(int32(level))
	changed := level != d.level
	d.level = level
	if !changed && (level == diskOK || now.Sub(d.lastLog) < diskRepeatEvery) {
		return
	}
	d.lastLog = now
	mb := free >> 20
	switch level {
	case diskCritical:
		d.log.Error("disk nearly full: the node stops when a write fails; free space now (or move the "+
			"data directory to a larger disk); the node reports not ready until then",
			"dir", d.dir, "free_mb", mb, "critical_below_mb", d.crit>>20)
	case diskLow:
		d.log.Warn("disk space low: free space on it, or move the data directory to a larger disk",
			"dir", d.dir, "free_mb", mb, "warn_below_mb", d.warn>>20)
	default:
		d.log.Info("disk space is sufficient again", "dir", d.dir, "free_mb", mb)
	}
}
