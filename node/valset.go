package node

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
)

// The validator set is state: genesis puts the first one there and governance schedules changes
// at future heights (state.ValidatorsAt). The node follows it from that one source — the
// consensus core of each height, the certificates block sync accepts, the evidence it verifies,
// the proposer index of a block and the p2p allowlist all use the set in force at that height.

// epoch is a validator set in the form the node uses, in force from height From on.
type epoch struct {
	From  uint64
	Set   consensus.ValidatorSet
	Names []string // by validator index
	Peers []string // libp2p peer IDs by validator index ("" when not bound)
}

// schedule is every validator set the chain has had or has scheduled, oldest first. It is
// immutable once published, so readers on any goroutine share it through an atomic pointer.
type schedule struct {
	epochs []epoch
	// asOf is the state height the schedule was read at. The set of a height up to
	// asOf+state.MinValidatorDelay is final: a change passed in block asOf+1 or later takes
	// effect at asOf+1+MinValidatorDelay at the earliest.
	asOf uint64
}

// final reports whether the set of height h can no longer change.
func (s *schedule) final(h uint64) bool { return h <= s.asOf+state.MinValidatorDelay }

// at returns the epoch that decides height h (the genesis one for anything before the first).
func (s *schedule) at(h uint64) *epoch {
	i, found := slices.BinarySearchFunc(s.epochs, h, func(e epoch, h uint64) int {
		switch {
		case e.From < h:
			return -1
		case e.From > h:
			return 1
		}
		return 0
	})
	if !found {
		i--
	}
	return &s.epochs[max(i, 0)]
}

// peerIDs is every peer ID bound to a validator of a current or scheduled set from height h on:
// a validator stays allowed while it validates, and one scheduled to join is allowed at once, so
// that it can sync and be connected when its first height starts.
func (s *schedule) peerIDs(h uint64) []string {
	var out []string
	for i := range s.epochs {
		e := &s.epochs[i]
		if i+1 < len(s.epochs) && s.epochs[i+1].From <= h {
			continue // over before h
		}
		for _, p := range e.Peers {
			if p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// loadSchedule reads the validator schedule from state.
func loadSchedule(st *state.State) (*schedule, error) {
	sets, err := st.ValidatorSchedule()
	if err != nil {
		return nil, fmt.Errorf("node: reading the validator schedule: %w", err)
	}
	if len(sets) == 0 {
		return nil, fmt.Errorf("node: the state holds no validator set")
	}
	s := &schedule{epochs: make([]epoch, len(sets)), asOf: st.Height()}
	for i, vs := range sets {
		e := epoch{From: vs.Height, Names: make([]string, len(vs.Validators)), Peers: make([]string, len(vs.Validators))}
		for j, v := range vs.Validators {
			e.Set.Validators = append(e.Set.Validators, consensus.Validator{PubKey: ed25519.PublicKey(v.PubKey), Power: v.Power})
			e.Names[j], e.Peers[j] = v.Name, v.PeerID
		}
		s.epochs[i] = e
	}
	return s, nil
}

// validatorsAt is the validator set in force at height (final up to the executed height +
// state.MinValidatorDelay - 1; beyond that, as scheduled so far). Safe on any goroutine.
func (n *Node) validatorsAt(height uint64) consensus.ValidatorSet {
	return n.sched.Load().at(height).Set
}

// validatorsFinal is validatorsAt, and whether that set is final (see schedule.final), both
// from one snapshot of the schedule.
func (n *Node) validatorsFinal(height uint64) (consensus.ValidatorSet, bool) {
	s := n.sched.Load()
	return s.at(height).Set, s.final(height)
}

// validatorName names validator index i of the set at height, or "" when there is none.
func (n *Node) validatorName(height uint64, i uint32) string {
	e := n.sched.Load().at(height)
	if int(i) < len(e.Names) {
		return e.Names[i]
	}
	return ""
}

// selfIndex is this node's index in the set at height, or -1.
func (n *Node) selfIndex(height uint64) int {
	if n.valPub == nil {
		return -1
	}
	for i, v := range n.validatorsAt(height).Validators {
		if v.PubKey.Equal(n.valPub) {
			return i
		}
	}
	return -1
}

// refreshSchedule reloads the schedule after a block was applied. It reports whether the set of
// the next height differs from the one the running core was built with, so that the loop
// restarts the core before it enters that height; and it keeps the p2p allowlist on the
// validators of now and of the future.
func (n *Node) refreshSchedule() (coreStale bool, err error) {
	s, err := loadSchedule(n.st)
	if err != nil {
		return false, err
	}
	old := n.sched.Load()
	n.sched.Store(s)
	next := n.blocks.Height() + 1
	// The allowlist changes with the schedule and also when the chain passes the first height of
	// a set that drops a validator, although the schedule itself did not change then.
	n.updateAllowlist()
	if !s.equal(old) {
		n.log.Info("validator schedule changed", "epochs", len(s.epochs), "next_height", next,
			"validators_at_next", len(s.at(next).Set.Validators))
	}
	// Compared after every block, not only when the schedule changes: the chain reaching the
	// first height of a set scheduled long ago needs a new core too.
	return !s.at(next).equal(&n.coreEpoch), nil
}

func (s *schedule) equal(o *schedule) bool {
	return slices.EqualFunc(s.epochs, o.epochs, func(a, b epoch) bool { return a.equal(&b) })
}

func (e *epoch) equal(o *epoch) bool {
	return e.From == o.From && slices.Equal(e.Names, o.Names) && slices.Equal(e.Peers, o.Peers) &&
		slices.EqualFunc(e.Set.Validators, o.Set.Validators, func(a, b consensus.Validator) bool {
			return a.Power == b.Power && a.PubKey.Equal(b.PubKey)
		})
}

// updateAllowlist points the p2p gater at the validators of now and of the future, when that
// set of peers differs from the one it was last given (n.allowed, owned by the loop).
func (n *Node) updateAllowlist() {
	if n.host == nil || !n.cfg.P2P.Permissioned {
		return
	}
	ids := n.sched.Load().peerIDs(n.blocks.Height() + 1)
	if slices.Equal(ids, n.allowed) {
		return
	}
	if err := n.host.SetAllowedPeers(ids); err != nil {
		n.log.Warn("updating the p2p allowlist", "err", err)
		return
	}
	n.log.Info("p2p allowlist follows the validator schedule", "height", n.blocks.Height()+1,
		"peers", len(ids), "was", len(n.allowed))
	n.allowed = ids
}

// params are the consortium parameters in force for the next block, with this node's local
// overrides (config values other than 0).
type params struct {
	maxBlockTxs int           // the most transactions a valid block holds (consortium rule)
	proposeTxs  int           // the most this node puts in a block it proposes
	emptyAfter  time.Duration // how long a leader waits for transactions before proposing an empty block
	viewTimeout time.Duration
}

func (n *Node) loadParams() (params, error) {
	var p params
	// One read of the parameters, not one per name: this runs after every block.
	all, err := n.st.Params()
	if err != nil {
		return p, fmt.Errorf("node: reading the consortium's parameters: %w", err)
	}
	get := func(name string) (uint64, error) {
		for _, q := range all {
			if q.Name == name {
				return q.Value, nil
			}
		}
		return 0, fmt.Errorf("node: the state has no parameter %s", name)
	}
	maxTxs, err := get(state.ParamMaxBlockTxs)
	if err != nil {
		return p, err
	}
	empty, err := get(state.ParamEmptyBlockMs)
	if err != nil {
		return p, err
	}
	view, err := get(state.ParamViewTimeoutMs)
	if err != nil {
		return p, err
	}
	c := n.cfg.Consensus
	p.maxBlockTxs = int(min(maxTxs, MaxBlockTxsLimit))
	p.proposeTxs = p.maxBlockTxs
	if c.MaxBlockTxs > 0 {
		p.proposeTxs = min(p.proposeTxs, c.MaxBlockTxs)
	}
	p.emptyAfter = time.Duration(empty) * time.Millisecond
	if c.EmptyBlockMillis > 0 {
		p.emptyAfter = time.Duration(c.EmptyBlockMillis) * time.Millisecond
	}
	p.viewTimeout = time.Duration(view) * time.Millisecond
	if c.ViewTimeoutMillis > 0 {
		p.viewTimeout = time.Duration(c.ViewTimeoutMillis) * time.Millisecond
	}
	return p, nil
}

// followGovernance runs on the loop after each applied block: it picks up validator changes and
// parameters the block passed, and marks the core stale when the next height needs another one.
func (n *Node) followGovernance() error {
	stale, err := n.refreshSchedule()
	if err != nil {
		return err
	}
	p, err := n.loadParams()
	if err != nil {
		return err
	}
	if p.viewTimeout != n.params.viewTimeout {
		stale = true
	}
	n.params = p
	n.gate.setParams(n.cfg.Mempool, p)
	n.coreStale = n.coreStale || stale
	return nil
}

func sameValidators(a, b consensus.ValidatorSet) bool {
	return slices.EqualFunc(a.Validators, b.Validators, func(x, y consensus.Validator) bool {
		return x.Power == y.Power && x.PubKey.Equal(y.PubKey)
	})
}
