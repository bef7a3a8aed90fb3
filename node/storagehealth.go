package node

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/state/kv"
)

// A store whose engine stops writes (compaction behind the load: too slow a disk, or too much
// load for it) holds the node's loop at its next block write, so it is a stall like any other:
// logged at WARN by the store (state/kv), exported per store here, and, once it lasts
// storageStallNotReady, a reason the node is not ready.
const storageStallNotReady = 2 * time.Second

// engineStats reports each of the node's stores' engine health by store name; stores without
// one (memdb, goleveldb) are left out.
func (n *Node) engineStats() map[string]kv.EngineStats {
	if n.engineStatsFn != nil {
		return n.engineStatsFn()
	}
	out := map[string]kv.EngineStats{}
	for name, db := range map[string]kv.Store{"blocks": n.blockDB, "state": n.stateDB} {
		if db == nil {
			continue
		}
		if es, ok := kv.Stats(db); ok {
			out[name] = es
		}
	}
	return out
}

// storageStalls lists the stores whose writes have been stopped for storageStallNotReady or more.
func (n *Node) storageStalls(now time.Time) []string {
	var reasons []string
	for name, es := range n.engineStats() {
		if !es.StalledSince.IsZero() && now.Sub(es.StalledSince) >= storageStallNotReady {
			reasons = append(reasons, fmt.Sprintf("the %s store has stopped writes for %s: its compactions are behind "+
				"(%d MB of debt); the disk is too slow for the load: move the data directory to a faster disk or offer less load",
				name, now.Sub(es.StalledSince).Round(time.Second), es.CompactionDebt>>20))
		}
	}
	return reasons
}

// storageCollector exports engineStats as guild_storage_* metrics, labelled by store.
type storageCollector struct {
	n                                                   *Node
	stalls, stalled, stalledSeconds, slowDisk, bgErrors *prometheus.Desc
	debt, l0Sublevels, flushed, compacted               *prometheus.Desc
}

func newStorageCollector(n *Node) *storageCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"store"}, nil)
	}
	return &storageCollector{n: n,
		stalls: d("guild_storage_write_stalls_total",
			"Times the store's engine stopped writes because its compactions were behind (the disk is too slow for the load)."),
		stalled: d("guild_storage_write_stalled",
			"1 while the store's engine stops writes; the node is not ready once it lasts 2 s."),
		stalledSeconds: d("guild_storage_write_stall_seconds_total",
			"Seconds the store's engine has stopped writes in all, the stall going on included."),
		slowDisk: d("guild_storage_slow_disk_ops_total",
			"Disk operations the store's engine found slow (logged at WARN)."),
		bgErrors: d("guild_storage_background_errors_total",
			"Background work of the store's engine (flushes, compactions) that failed (logged at ERROR)."),
		debt: d("guild_storage_compaction_debt_bytes",
			"Bytes the store's compactions estimate they must rewrite to settle its levels: growing without end means the disk cannot keep up."),
		flushed: d("guild_storage_flushed_bytes_total",
			"Bytes the store's engine wrote to tables from its memtables."),
		compacted: d("guild_storage_compacted_bytes_total",
			"Bytes the store's engine rewrote in compactions: against guild_storage_flushed_bytes_total, its write amplification."),
		l0Sublevels: d("guild_storage_l0_sublevels",
			"Depth of the store's level 0: the engine stops writes when it grows past its stop threshold."),
	}
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.stalls, c.stalled, c.stalledSeconds, c.slowDisk, c.bgErrors, c.debt, c.l0Sublevels, c.flushed, c.compacted} {
		ch <- d
	}
}

func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	for name, es := range c.n.engineStats() {
		stalled := 0.0
		if !es.StalledSince.IsZero() {
			stalled = 1
		}
		for _, m := range []struct {
			d *prometheus.Desc
			t prometheus.ValueType
			v float64
		}{
			{c.stalls, prometheus.CounterValue, float64(es.WriteStalls)},
			{c.stalled, prometheus.GaugeValue, stalled},
			{c.stalledSeconds, prometheus.CounterValue, es.StalledFor.Seconds()},
			{c.slowDisk, prometheus.CounterValue, float64(es.SlowDiskOps)},
			{c.bgErrors, prometheus.CounterValue, float64(es.BackgroundErrors)},
			{c.debt, prometheus.GaugeValue, float64(es.CompactionDebt)},
			{c.l0Sublevels, prometheus.GaugeValue, float64(es.L0Sublevels)},
			{c.flushed, prometheus.CounterValue, float64(es.FlushedBytes)},
			{c.compacted, prometheus.CounterValue, float64(es.CompactedBytes)},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v, name)
		}
	}
}
