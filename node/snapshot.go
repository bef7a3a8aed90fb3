package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/state"
)

// State snapshots (issue 13). Every statesync.snapshot_interval blocks the node writes the state
// after that block, as state.WriteSnapshot cuts it, into data/snapshots/<height>/ (a manifest and
// one file per chunk), off the loop: the walk reads the state tree of that block's root, which
// later blocks never overwrite. It keeps the last snapshot_keep of them and serves the newest one
// whose next block it holds to joining peers (statesync.go): the next block's header carries the
// snapshot's root, and its certificate is what a joining node checks the snapshot against.
const snapshotsDir = "snapshots" // inside DataDir

// snapshotOffer is what a node offers a joining peer: a manifest, the block at its height (the
// joiner's first block) and the next block, whose certified header carries the manifest's root.
type snapshotOffer struct {
	Manifest []byte `cbor:"1,keyasint"`
	Block    []byte `cbor:"2,keyasint"`
	Cert     []byte `cbor:"3,keyasint"`
	Next     []byte `cbor:"4,keyasint"`
	NextCert []byte `cbor:"5,keyasint"`
	// Results are block h's results ([]StoredResult): block h+1 certifies their receipts root,
	// which the joiner's state must know to judge block h+1's header.
	Results []byte `cbor:"6,keyasint"`
	// Changes counts the validator set changes from genesis up to block h+1, which the joiner
	// fetches one by one (p2p's validator change requests) and follows as a light client does;
	// Schedule (a light.EntryProof against block h+1's state root) shows that none is left out.
	Changes  uint32 `cbor:"7,keyasint,omitempty"`
	Schedule []byte `cbor:"8,keyasint"`
}

type localSnapshot struct {
	m   *state.SnapshotManifest
	raw []byte // the encoded manifest
	dir string
}

// snapshotter takes, keeps and serves snapshots. take runs on its own goroutine, one at a time;
// the list is read by libp2p's stream goroutines.
type snapshotter struct {
	dir        string
	st         *state.State
	blocks     *BlockStore
	interval   uint64
	keep       int
	chunkBytes int
	log        *slog.Logger
	busy       atomic.Bool
	stop       <-chan struct{}
	wg         *sync.WaitGroup

	mu    sync.Mutex
	list  []*localSnapshot // by height, ascending
	offer struct {
		height  uint64
		raw     []byte
		changes [][]byte // the validator set changes it counts, encoded
	}

	taken   prometheus.Counter
	failed  prometheus.Counter
	last    prometheus.Gauge
	seconds prometheus.Gauge
	served  *prometheus.CounterVec
	oldest  atomic.Uint64
	// pending is the height of the snapshot being written (0: none), which pruning keeps too.
	pending atomic.Uint64
	// Pruning (storage.keep_blocks): blocks deleted, and the first block held.
	pruned   prometheus.Counter
	earliest prometheus.Gauge
	// And the state tree's records deleted with them, and the earliest height it proves.
	treePruned   prometheus.Counter
	treeEarliest prometheus.Gauge
}

var errSnapshotStopping = errors.New("node: snapshot interrupted: the node is stopping")

func newSnapshotter(home string, cfg StateSyncConfig, st *state.State, blocks *BlockStore, log *slog.Logger, reg prometheus.Registerer) (*snapshotter, error) {
	s := &snapshotter{
		dir: filepath.Join(home, DataDir, snapshotsDir), st: st, blocks: blocks,
		interval: cfg.SnapshotInterval, keep: cfg.SnapshotKeep, chunkBytes: cfg.ChunkBytes, log: log,
		taken: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_snapshots_taken_total",
			Help: "State snapshots written (statesync.snapshot_interval)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_snapshot_failures_total",
			Help: "State snapshots that failed or were skipped (see the node's WARN log)."}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_snapshot_height",
			Help: "Height of the newest state snapshot kept on disk (0: none)."}),
		seconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_snapshot_seconds",
			Help: "Time the last state snapshot took to write."}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_snapshot_served_total",
			Help: "State sync requests served to peers, by kind (offer, chunk, validator_change)."}, []string{"kind"}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_blocks_pruned_total",
			Help: "Blocks deleted from the block store by storage.keep_blocks."}),
		earliest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_block_store_earliest_height",
			Help: "First block the block store holds (1 unless pruned or state-synced)."}),
		treePruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_state_tree_pruned_records_total",
			Help: "State tree records (of heights before the first block held) deleted by storage.keep_blocks."}),
		treeEarliest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_state_tree_earliest_height",
			Help: "Earliest height whose state the node can prove or snapshot (0 unless pruned or state-synced)."}),
	}
	s.earliest.Set(float64(blocks.Earliest()))
	s.treeEarliest.Set(float64(st.TreeEarliest()))
	for _, c := range []prometheus.Collector{s.taken, s.failed, s.last, s.seconds, s.served, s.pruned, s.earliest, s.treePruned, s.treeEarliest} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the snapshots kept on disk and removes what an interrupted snapshot left.
func (s *snapshotter) load() error {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: reading %s: %w", s.dir, err)
	}
	for _, e := range entries {
		path := filepath.Join(s.dir, e.Name())
		if _, err := strconv.ParseUint(e.Name(), 10, 64); err != nil || !e.IsDir() {
			if err := os.RemoveAll(path); err != nil {
				s.log.Warn("removing an unfinished snapshot", "path", path, "err", err)
			}
			continue
		}
		raw, err := os.ReadFile(filepath.Join(path, "manifest"))
		if err != nil {
			s.log.Warn("a kept snapshot has no manifest; removing it", "path", path, "err", err)
			_ = os.RemoveAll(path)
			continue
		}
		m, err := state.DecodeSnapshotManifest(raw, s.st.ChainID())
		if err != nil {
			s.log.Warn("a kept snapshot is unreadable; removing it", "path", path, "err", err)
			_ = os.RemoveAll(path)
			continue
		}
		s.list = append(s.list, &localSnapshot{m: m, raw: raw, dir: path})
	}
	slices.SortFunc(s.list, func(a, b *localSnapshot) int { return cmpUint(a.m.Height, b.m.Height) })
	s.published()
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// published updates the metrics and the lowest height the block store must keep. Caller holds
// mu, or is the only user.
func (s *snapshotter) published() {
	if len(s.list) == 0 {
		s.last.Set(0)
		s.oldest.Store(0)
		return
	}
	s.last.Set(float64(s.list[len(s.list)-1].m.Height))
	s.oldest.Store(s.list[0].m.Height)
}

// oldestKept is the height of the oldest snapshot kept or being written (0: none): pruning keeps
// its block and the next, which a joining node needs with it.
func (s *snapshotter) oldestKept() uint64 {
	o, p := s.oldest.Load(), s.pending.Load()
	if o == 0 || (p != 0 && p < o) {
		return p
	}
	return o
}

// committed is called on the loop after block height was applied, root being the state root after
// it. At a multiple of the interval it starts a snapshot, unless one is still being written.
func (s *snapshotter) committed(height uint64, root state.Hash) {
	if s == nil || s.interval == 0 || height%s.interval != 0 {
		return
	}
	if !s.busy.CompareAndSwap(false, true) {
		s.failed.Inc()
		s.log.Warn("state snapshot skipped: the previous one is still being written; raise "+
			"statesync.snapshot_interval if this repeats", "height", height)
		return
	}
	s.pending.Store(height)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.busy.Store(false)
		defer s.pending.Store(0)
		start := time.Now()
		m, err := s.take(height, root)
		if err != nil {
			if !errors.Is(err, errSnapshotStopping) {
				s.failed.Inc()
				s.log.Warn("state snapshot failed; joining nodes are offered the previous one. Check the "+
					"disk space and permissions of the data directory", "height", height, "err", err)
			}
			return
		}
		s.taken.Inc()
		s.seconds.Set(time.Since(start).Seconds())
		s.log.Info("state snapshot taken", "height", height, "root", root, "entries", m.Entries,
			"chunks", len(m.Chunks), "bytes", m.Bytes, "took", time.Since(start).Round(time.Millisecond))
	}()
}

// take writes the snapshot of root (the state after block height) into a temporary directory,
// renames it into place, and drops the oldest beyond the number to keep.
func (s *snapshotter) take(height uint64, root state.Hash) (*state.SnapshotManifest, error) {
	final := filepath.Join(s.dir, fmt.Sprintf("%020d", height))
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	m, err := s.st.WriteSnapshot(height, root, s.chunkBytes, func(i int, chunk []byte) error {
		select {
		case <-s.stop:
			return errSnapshotStopping
		default:
		}
		// Synced like the manifest: a snapshot directory that survived its rename is whole after
		// a power loss too, not a manifest naming chunks the disk never got.
		return writeFileSync(filepath.Join(tmp, chunkName(i)), chunk)
	})
	if err == nil {
		var raw []byte
		if raw, err = state.Marshal(m); err == nil {
			err = writeFileSync(filepath.Join(tmp, "manifest"), raw)
		}
		if err == nil {
			_ = os.RemoveAll(final)
			err = os.Rename(tmp, final)
		}
		if err == nil {
			err = syncDir(s.dir) // the rename itself
		}
		if err == nil {
			s.add(&localSnapshot{m: m, raw: raw, dir: final})
			return m, nil
		}
	}
	_ = os.RemoveAll(tmp)
	return nil, err
}

func chunkName(i int) string { return fmt.Sprintf("chunk-%06d", i) }

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes the entries of directory dir (a rename into it) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *snapshotter) add(ls *localSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = slices.DeleteFunc(s.list, func(o *localSnapshot) bool { return o.m.Height == ls.m.Height })
	s.list = append(s.list, ls)
	slices.SortFunc(s.list, func(a, b *localSnapshot) int { return cmpUint(a.m.Height, b.m.Height) })
	for len(s.list) > s.keep {
		old := s.list[0]
		s.list = s.list[1:]
		if err := os.RemoveAll(old.dir); err != nil {
			s.log.Warn("removing an old snapshot", "path", old.dir, "err", err)
		}
	}
	s.published()
}

// SnapshotOffer implements p2p.SnapshotSource: the newest snapshot whose next block is stored.
func (s *snapshotter) SnapshotOffer() ([]byte, error) {
	s.served.WithLabelValues("offer").Inc()
	s.mu.Lock()
	var pick *localSnapshot
	for i := len(s.list) - 1; i >= 0; i-- {
		if h := s.list[i].m.Height; h+1 <= s.blocks.Height() && h >= s.blocks.Earliest() {
			pick = s.list[i]
			break
		}
	}
	if pick == nil {
		s.mu.Unlock()
		return nil, nil
	}
	if s.offer.height == pick.m.Height {
		raw := s.offer.raw
		s.mu.Unlock()
		return raw, nil
	}
	s.mu.Unlock()
	h := pick.m.Height
	o := snapshotOffer{Manifest: pick.raw}
	var err error
	for _, b := range []struct {
		height      uint64
		value, cert *[]byte
	}{{h, &o.Block, &o.Cert}, {h + 1, &o.Next, &o.NextCert}} {
		value, cert, err := s.blocks.Block(b.height)
		if err != nil {
			return nil, err
		}
		if *b.cert, err = state.Marshal(cert); err != nil {
			return nil, err
		}
		*b.value = value
	}
	results, err := s.blocks.Results(h)
	if err != nil {
		return nil, err
	}
	if results == nil {
		// Not known here (the base block of a node that joined by state sync itself and has not
		// kept them): nothing to offer at this height.
		return nil, nil
	}
	if o.Results, err = state.Marshal(results); err != nil {
		return nil, err
	}
	changes, sched, err := validatorProof(s.st, s.blocks, h+1, pick.m.Root)
	if err != nil {
		return nil, fmt.Errorf("node: proving the validator sets up to block %d: %w", h+1, err)
	}
	encoded := make([][]byte, len(changes))
	for i := range changes {
		if encoded[i], err = encodeValidatorChange(&changes[i]); err != nil {
			return nil, err
		}
	}
	o.Changes = uint32(len(changes))
	if o.Schedule, err = state.Marshal(&sched); err != nil {
		return nil, err
	}
	raw, err := state.Marshal(&o)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.offer.height, s.offer.raw, s.offer.changes = h, raw, encoded
	s.mu.Unlock()
	return raw, nil
}

// SnapshotValidatorChange implements p2p.SnapshotSource: change i of those the offer at height
// counts, while that is the offer served.
func (s *snapshotter) SnapshotValidatorChange(height uint64, i uint32) ([]byte, error) {
	s.served.WithLabelValues("validator_change").Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offer.height != height || int(i) >= len(s.offer.changes) {
		return nil, nil
	}
	return s.offer.changes[i], nil
}

// SnapshotChunk implements p2p.SnapshotSource from the snapshots kept on disk.
func (s *snapshotter) SnapshotChunk(height uint64, i uint32) ([]byte, error) {
	s.served.WithLabelValues("chunk").Inc()
	s.mu.Lock()
	var dir string
	for _, ls := range s.list {
		if ls.m.Height == height && int(i) < len(ls.m.Chunks) {
			dir = ls.dir
		}
	}
	s.mu.Unlock()
	if dir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, chunkName(int(i))))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // removed since: the peer asks another
	}
	return b, err
}

// pruneBlocks runs on the loop after block height is applied: with storage.keep_blocks = K it
// deletes blocks before height-K+1, a few per block so that no commit waits long, and never
// those a kept (or pending) snapshot needs.
func (n *Node) pruneBlocks(height uint64) {
	k := n.cfg.Storage.KeepBlocks
	if k == 0 || height < k || n.snaps == nil {
		return
	}
	below := height - k + 1
	if o := n.snaps.oldestKept(); o > 0 && o < below {
		below = o
	}
	if err := n.keepValidatorChanges(below); err != nil {
		n.log.Warn("keeping the proofs of validator set changes before pruning failed; no block is pruned, "+
			"and pruning is tried again after the next block", "err", err)
		return
	}
	pruned, err := n.blocks.Prune(below, pruneBatch)
	if err != nil {
		if isStoreFault(err) {
			n.storeFailed("pruning old blocks", err)
		} else {
			n.log.Warn("pruning old blocks failed; they are kept, and pruning is tried again after the next block", "err", err)
		}
		return
	}
	if pruned > 0 {
		n.snaps.pruned.Add(float64(pruned))
		n.snaps.earliest.Set(float64(n.blocks.Earliest()))
		n.log.Debug("pruned old blocks", "blocks", pruned, "earliest", n.blocks.Earliest())
	}
	n.pruneTree()
}

// pruneTree deletes the state tree of the heights no held block can prove: a proof of the
// state after block h is anchored at block h+1, which must be held (and a validator change's
// proof is taken from the tree before its block is pruned), so the trees from the first held
// block's predecessor on stay; as do those of kept and pending snapshots, whose blocks
// pruneBlocks keeps. At most treePruneBudget records a block, or twice what the block dropped
// from the tree if more, in small batches: a node that turned pruning on catches up over some
// blocks, no commit waits long, and pruning keeps up with blocks of any size. Loop only.
func (n *Node) pruneTree() {
	e := n.blocks.Earliest()
	if e < 2 {
		return
	}
	deleted, err := n.st.PruneTree(e-1, max(treePruneBudget, 2*n.st.TreeDropped()))
	if err != nil {
		if isStoreFault(err) {
			n.storeFailed("pruning the old state tree", err)
		} else {
			n.log.Warn("pruning the old state tree failed; it is kept, and pruning is tried again after the next block", "err", err)
		}
		return
	}
	if deleted > 0 {
		n.snaps.treePruned.Add(float64(deleted))
		n.snaps.treeEarliest.Set(float64(n.st.TreeEarliest()))
		n.log.Debug("pruned the old state tree", "records", deleted, "earliest", n.st.TreeEarliest())
	}
}

// keepValidatorChanges stores the proof of every validator set change whose block (the one
// before the set takes effect) the next Prune(below, pruneBatch) deletes, so that the node can
// still prove its validator sets (state sync offers, proof files) once it is gone. Loop only.
func (n *Node) keepValidatorChanges(below uint64) error {
	from := n.blocks.Earliest()
	to := min(below, n.blocks.Height(), from+pruneBatch) // as Prune bounds it
	for _, e := range n.sched.Load().epochs {
		if e.From == 0 || e.From-1 < from || e.From-1 >= to {
			continue
		}
		if _, ok, err := n.blocks.ValidatorChange(e.From); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		ch, err := validatorChange(n.st, n.blocks, e.From)
		if err != nil {
			return err
		}
		raw, err := encodeValidatorChange(&ch)
		if err != nil {
			return err
		}
		if err := n.blocks.SaveValidatorChanges(map[uint64][]byte{e.From: raw}); err != nil {
			return err
		}
	}
	return nil
}

// pruneBatch is the most blocks pruned after one commit: more than one, so that a node that
// turned pruning on catches up, and few, so that the commit is not held up.
const pruneBatch = 16

// treePruneBudget is the fewest state tree records pruned after one commit, if there are as many
// to prune: a block of 4,000 changed keys of a million-entry state drops about 12,700, which take
// about 21 ms of CPU to delete (BenchmarkTreeUpdate's grow-pruning), so a prune after it takes
// twice that (its budget, twice what it dropped) at most.
const treePruneBudget = 1 << 14
