package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// loop is the one goroutine that owns the consensus core (docs/architecture.md, after raft's node.go): it feeds
// the core network messages, ticks and proposals, and handles each Ready in order — persist, send,
// apply — before calling Advance.
func (n *Node) loop(ctx context.Context) error {
	ticker := time.NewTicker(n.cfg.tick())
	defer ticker.Stop()
	var (
		slot      *consensus.ProposalRequest // a slot this node leads and has not proposed for
		slotSince time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			n.core.Tick()
			n.metrics.mempool.Set(float64(n.pool.Size()))
		case <-n.pool.Notify():
		case m := <-n.host.Consensus():
			switch msg := m.Decoded.(type) {
			case *consensus.Message:
				if msg.Type == consensus.MsgPrePrepare {
					n.phases.mark(msg.Height, phaseProposal, time.Now())
				}
				n.stepConsensus(m.From, msg)
			case *proposalRef:
				n.markRelayed(m.From, &msg.Message)
				n.phases.mark(msg.Message.Height, phaseProposal, time.Now())
				n.noteHeard(&msg.Message)
				n.takeProposalRef(ctx, m.From, msg)
			default:
				continue
			}
		case m := <-n.authorDups:
			// Counted as heard; the core has the first copy already and refuses this one.
			n.stepConsensus(m.From, m.Decoded.(*consensus.Message))
		case ev := <-n.host.PeerEvents():
			n.peerChanged(ev)
		case r := <-n.resolvedCh:
			n.finishProposalRef(r)
		case req := <-n.checkpoints:
			if err := n.recordResults(); err != nil {
				req.reply <- checkpointRes{err: err}
				return err
			}
			cp, err := n.checkpoint()
			req.reply <- checkpointRes{cp: cp, err: err} // buffered
			continue
		case reply := <-n.health.probes:
			reply <- n.probe() // buffered: never blocks
			continue
		case req := <-n.syncCh:
			applied, err := n.serveSyncApply(req)
			if applied > 0 {
				slot = nil
			}
			if err != nil {
				return err
			}
		}
		// Propose as soon as a slot is ours and there is something to propose — including right
		// after the Ready that handed us the slot, not a tick later — and drain the core.
		for {
			if st := n.core.Status(); slot != nil && (slot.Height != st.Height || slot.View != st.View) {
				slot = nil // the slot passed (decided, or its view timed out) before we proposed
			}
			if slot != nil {
				if err := n.maybePropose(slot, slotSince, n.params.emptyAfter); err == nil {
					slot = nil
				} else if !errors.Is(err, errNothingToPropose) {
					n.log.Warn("proposing failed", "height", slot.Height, "err", err)
					slot = nil
				}
			}
			if !n.core.HasReady() {
				break
			}
			rd := n.core.Ready()
			if err := n.handleReady(rd); err != nil {
				return err
			}
			if rd.Propose != nil {
				slot, slotSince = rd.Propose, time.Now()
			}
			if n.coreStale {
				// The block just applied changed the validator set (or the view timeout) of the
				// next height: a core built for the new one takes over before anything is signed
				// there. The old core has decided and signed nothing beyond its height.
				n.coreStale, slot = false, nil
				if err := n.startCore(nil); err != nil {
					return err
				}
				continue
			}
			n.advanceCore()
			// Entering the next height names its leader by the schedule, which the Ready
			// before it could not; the API reads the status from the snapshot.
			st := n.core.Status()
			n.snapshot.Store(&st)
			n.phases.enter(st.Height, time.Now())
		}
		// The last block's results and indexes, now that the next proposal (if this node
		// leads) is on its way: nothing of the next height waits on them.
		if err := n.recordResults(); err != nil {
			return fmt.Errorf("node: recording results: %w", err)
		}
	}
}

// stepConsensus steps a verified consensus message from peer from into the core. On the loop.
func (n *Node) stepConsensus(from string, msg *consensus.Message) {
	if n.byz != nil {
		n.byz.observe(msg)
	}
	n.markRelayed(from, msg)
	if msg.Type == consensus.MsgPrePrepare {
		n.log.Debug("pre-prepare received", "height", msg.Height, "bytes", len(msg.Value))
	}
	n.noteHeard(msg)
	if err := n.stepMessage(msg); err != nil {
		n.log.Debug("consensus message refused", "type", msg.Type, "height", msg.Height,
			"from", msg.From, "err", err)
		if errors.Is(err, consensus.ErrFutureHeight) {
			n.syncer.wake() // peers are further ahead than consensus catches up
		}
		n.noteRefused(from, msg, err)
	}
}

// markRelayed marks msg relayed unless it reached this node from its author's own peer. Only
// such a copy says that its author is alive, or lags at an old height: any peer can pass on, or
// replay, a validator's signed messages, and a hostile one replaying an honest validator's vote
// for the last height made the others take it for lagging and give up on it when it next led
// and waited for transactions (issue #9; the simulator's 4-replay-idle). Honest validators
// publish their own messages straight to every peer (flood publish), so the first copy of an
// author's message comes from the author. A decision speaks for its certificate, not a sender;
// a validator bound to no peer cannot be told apart and is left as it is.
func (n *Node) markRelayed(from string, msg *consensus.Message) {
	if msg.Relayed || msg.Type == consensus.MsgDecision {
		return
	}
	peers := n.sched.Load().at(msg.Height).Peers
	if int(msg.From) >= len(peers) || peers[msg.From] == "" {
		return // no node bound to the validator: nothing to tell its copies from others'
	}
	if peers[msg.From] != from || n.peersDown[from] {
		// Another peer's copy; or one read from the author's peer before its connection closed,
		// stepped after the loop heard of the close: the core must not take it as a sign of
		// life, or it forgets that a leader just killed is down and waits out its view
		// (consensus TestSimulatorKilledLeaderProposedToSome).
		msg.Relayed = true
	}
}

// peerChanged tells the core that a validator's node lost its last connection to this node, or
// has one again: a leader killed before it proposed is then given up a quarter view timeout later,
// not a whole one (consensus.Core.SetPeerDown). A killed process's TCP connections close at once;
// a link repair's brief reconnect costs at most an early view change, never safety.
func (n *Node) peerChanged(ev p2p.PeerEvent) {
	v, ok := n.tellCorePeer(ev.Peer, ev.Connected)
	if !ok || ev.Connected {
		delete(n.peersDown, ev.Peer) // only validators' nodes are remembered, while down
		return
	}
	if n.peersDown[ev.Peer] {
		return
	}
	if n.peersDown == nil {
		n.peersDown = make(map[string]bool)
	}
	n.peersDown[ev.Peer] = true
	n.metrics.peersDown.Inc()
	n.log.Info("lost the connection to a validator's node", "validator", v, "peer", ev.Peer)
}

// tellCorePeer marks the validators whose node is peer down (or up) in the core; it returns the
// name of the first, and whether there was one.
func (n *Node) tellCorePeer(peer string, up bool) (string, bool) {
	if n.core == nil {
		return "", false // startCore tells the first core
	}
	height := n.core.Status().Height
	name, found := "", false
	for i, p := range n.sched.Load().at(height).Peers {
		if p != peer {
			continue
		}
		n.core.SetPeerDown(uint32(i), !up)
		if !found {
			name, found = n.validatorName(height, uint32(i)), true
		}
	}
	return name, found
}

var errNothingToPropose = errors.New("node: nothing to propose yet")

// maybePropose builds a block for slot from the mempool. With nothing ready it waits, up to the
// empty-block interval: the chain never idles on a fixed interval while there is work.
func (n *Node) maybePropose(slot *consensus.ProposalRequest, since time.Time, emptyAfter time.Duration) error {
	var (
		txs    [][]byte
		hashes []state.Hash
	)
	if n.pool.Size() > 0 {
		txs, hashes = n.pool.ReapHashed(n.params.proposeTxs, MaxBlockBytes-64<<10, n.nonceOf)
	}
	evs := n.evidence.Pending(slot.Height, MaxBlockEvidence, n.evidenceOnChain)
	if len(txs) == 0 && len(evs) == 0 && time.Since(since) < emptyAfter {
		return errNothingToPropose
	}
	n.phases.mark(slot.Height, phaseWait, time.Now())
	turn := n.leadersAt(slot.Height)
	t := time.Now().UnixMilli()
	if t <= n.lastTime {
		if n.lastTime == math.MaxInt64 {
			return errors.New("node: parent block time is at the end of time; cannot propose")
		}
		t = n.lastTime + 1
	}
	version := n.versionAt(slot.Height)
	txs, staged, err := n.leaveOutFailing(state.BlockInfo{Height: slot.Height, TimeMs: t, Version: version}, txs, hashes)
	if err != nil {
		return err
	}
	// The execution's results carry each kept transaction's hash, in block order.
	hashes = make([]state.Hash, len(txs))
	for i := range hashes {
		hashes[i] = staged.Result.Results[i].Hash
	}
	if len(txs) == 0 && len(evs) == 0 && time.Since(since) < emptyAfter {
		return errNothingToPropose
	}
	b := Block{
		Header: Header{
			ChainID:      n.chainID,
			Height:       slot.Height,
			Time:         t,
			PrevHash:     n.lastHash,
			StateRoot:    n.st.Root(),
			TxsHash:      txsHashOf(hashes),
			ReceiptsRoot: n.st.ReceiptsRoot(),
			Proposer:     uint32(n.self),
			// Evidence is proposed by whoever leads next: leaders rotate, so an equivocating
			// leader cannot keep its own offence off the chain for long.
			EvidenceHash: EvidenceHash(evs),
			Leader:       turn.leader,
			Skips:        turn.skips,
			Version:      version,
		},
		Txs:      txs,
		Evidence: evs,
		hashes:   hashes,
	}
	if b.Txs == nil {
		b.Txs = [][]byte{}
	}
	value, err := b.Encode()
	if err != nil {
		return err
	}
	// The execution just done is the block's: CheckProposal (in Propose) checks the rest, and
	// commit reuses it.
	n.executed.put(executedBlock{digest: consensus.DigestOf(value), value: value, block: &b, staged: staged, failed: failure(staged)})
	n.log.Debug("proposing", "height", slot.Height, "txs", len(txs), "bytes", len(value),
		"waited", time.Since(since))
	err = n.core.Propose(slot.Height, slot.View, value)
	if err == nil {
		n.phases.mark(slot.Height, phaseBuild, time.Now())
	}
	if err != nil && len(evs) > 0 && errors.Is(err, consensus.ErrInvalidValue) {
		// Pooled evidence was checked when it came in, so this is a bug; still, never let it
		// cost this validator its turn: drop it and propose again without it.
		n.log.Error("own proposal refused with evidence; evidence dropped", "height", slot.Height, "err", err)
		n.evidence.discard(evs)
		return errNothingToPropose
	}
	return err
}

func (n *Node) send(m *consensus.Message) {
	if n.byz != nil && n.byz.outgoing(n, m) {
		return
	}
	b, err := n.encodeOutgoing(m)
	if err != nil {
		n.log.Error("encoding consensus message", "err", err)
		return
	}
	select {
	case n.sendCh <- b:
		n.metrics.sent.WithLabelValues(m.Type.String()).Inc()
	default:
		// Never block the loop on the network; retransmission recovers a dropped message.
		n.metrics.sendDropped.Inc()
	}
}

// handleReady does what the core asked, in the order Ready documents.
func (n *Node) handleReady(rd consensus.Ready) error {
	n.phases.sent(rd.Status.Self, rd.Messages, time.Now())
	// Persist before send: once a signed message may have left, a restart must remember it.
	if len(rd.Persist) > 0 {
		if n.wal == nil {
			return errors.New("node: the core signed a message but this node has no WAL")
		}
		if err := n.wal.Append(rd.Persist); err != nil {
			return err // lost durability: stop rather than send what a restart would forget
		}
	}
	for i := range rd.Messages {
		n.send(&rd.Messages[i])
	}
	// Evidence waits on nothing: pooled for this node's next proposal, gossiped for the others.
	n.handleCaughtEvidence(rd.Evidence)
	for _, c := range rd.Committed {
		if err := n.commitBlock(c, true, true); err != nil {
			// The block is decided by a quorum; failing to store or execute it is lost durability.
			return fmt.Errorf("node: committing height %d: %w", c.Height, err)
		}
	}
	st := rd.Status
	n.snapshot.Store(&st)
	n.metrics.view.Set(float64(st.View))
	n.metrics.viewChanges.Set(float64(st.ViewChanges))
	if st.ViewChanges > n.viewChangesSeen {
		n.log.Info("view change", "height", st.Height, "view", st.View, "why", st.LeftView,
			"leader", n.validatorName(st.Height, st.Leader))
	}
	n.viewChangesSeen = st.ViewChanges
	return nil
}

// commit stores a decided block (before executing it: see recover), executes it and tells waiters.
func (n *Node) commit(c consensus.Committed) error { return n.commitBlock(c, true, false) }

// commitBlock is commit; resetWAL is false for a block of a sync run, which resets the WAL once
// its blocks are on disk (endSyncRun). With deferRecord the block's results, indexes and pruning
// wait for recordResults, which the loop calls once it has handled what the commit let the core do
// next (the leader of the next height proposes first): they are not needed to build or check the
// next block, and they were a fifth of a height on the leader's path to its proposal (issue #10).
func (n *Node) commitBlock(c consensus.Committed, resetWAL, deferRecord bool) error {
	// The previous block's results go to disk before this block is stored and the state moves
	// past it: recovery rewrites the results of the state's last block only (recoverResults).
	if err := n.recordResults(); err != nil {
		return err
	}
	start := time.Now()
	n.phases.mark(c.Height, phaseCommit, start)
	if err := n.blocks.SaveBlock(c.Height, c.Value, &c.Certificate); err != nil {
		return err
	}
	if resetWAL && n.wal != nil {
		// The height is decided and stored; what was signed for it can never conflict again.
		if err := n.wal.Reset(); err != nil {
			return err
		}
	}
	saved := time.Since(start)
	n.phases.mark(c.Height, phaseStore, time.Now())
	if err := n.executeBlock(c.Height, c.Value, n.executed.take(c.Value, c.Height)); err != nil {
		return err
	}
	n.unrecorded.prune = true
	if !deferRecord {
		if err := n.recordResults(); err != nil {
			return err
		}
	}
	n.snaps.committed(c.Height, n.st.Root())
	if err := n.followGovernance(); err != nil {
		return err
	}
	n.phases.mark(c.Height, phaseResults, time.Now())
	n.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	n.metrics.roundsPerHeight.Observe(float64(c.Certificate.View) + 1)
	if !n.lastCommit.IsZero() {
		n.metrics.heightSeconds.Observe(time.Since(n.lastCommit).Seconds())
	}
	n.lastCommit = time.Now()
	n.gate.committed(n.lastCommit)
	n.log.Debug("block committed", "height", c.Height, "bytes", len(c.Value), "store", saved,
		"total", time.Since(start))
	// Before the core enters the next height (Advance) and can sign anything there: a binary
	// that cannot execute its version stops here.
	return n.upgradeCheck(c.Height + 1)
}

// execute applies a stored block to the state, records the results and settles the mempool.
func (n *Node) execute(height uint64, value []byte, ex *executedBlock) error {
	if err := n.executeBlock(height, value, ex); err != nil {
		return err
	}
	return n.recordResults()
}

// unrecordedBlock is a block whose state is committed and whose transactions left the mempool,
// but whose results and indexes are not written yet (recordResults). Owned by the loop.
type unrecordedBlock struct {
	height uint64
	txs    [][]byte
	// decoded are txs as execution decoded them (nil when it was not staged here; nil entries
	// for those it refused): the index reads them instead of decoding again.
	decoded []*state.Tx
	stored  []StoredResult
	prune   bool // prune old blocks once recorded (a live commit, not recovery)
}

// settlingTxs are the transactions of the block between executeBlock and recordResults: no
// longer in the mempool, not yet in the tx index. The API reads them as pending.
type settlingTxs struct {
	height uint64
	hashes map[state.Hash]struct{}
}

// settling reports whether h is a transaction of the block being recorded.
func (n *Node) settling(h state.Hash) bool {
	s := n.settlingTxs.Load()
	if s == nil {
		return false
	}
	_, ok := s.hashes[h]
	return ok
}

// executeBlock applies a stored block to the state and settles the mempool; its results are left
// for recordResults. When the block was executed already (ex, by CheckProposal or maybePropose)
// on this tip, that result is committed instead of executing the block again.
func (n *Node) executeBlock(height uint64, value []byte, ex *executedBlock) error {
	if n.unrecorded != nil {
		return fmt.Errorf("node: executing block %d before the results of block %d are recorded", height, n.unrecorded.height)
	}
	var (
		b       *Block
		res     *state.BlockResult
		err     error
		decoded []*state.Tx
	)
	if ex != nil {
		b = ex.block
		res, err = n.st.CommitStaged(ex.staged)
		decoded = ex.staged.Txs()
		if errors.Is(err, state.ErrStaleStaged) {
			res, err, decoded = nil, nil, nil // not this tip's after all: execute it below
		}
	} else if b, err = DecodeBlock(value); err != nil {
		return err
	}
	if err == nil && res == nil {
		res, err = n.st.ApplyBlock(state.BlockInfo{Height: height, TimeMs: b.Header.Time, Version: b.Header.ProtocolVersion()}, b.Txs, n.sigs)
	}
	if err != nil {
		return err
	}
	n.phases.mark(height, phaseExecute, time.Now())
	// Kept for peers a block behind that still rebuild it from its hashes (tx fetch).
	committedHashes := make([]state.Hash, len(res.Results))
	for i, r := range res.Results {
		committedHashes[i] = r.Hash
	}
	if len(b.Txs) == len(committedHashes) {
		n.recent.putAll(b.Txs, committedHashes)
	}
	stored := make([]StoredResult, len(res.Results))
	settled := make([]state.Hash, 0, len(res.Results))
	applied := 0
	for i, r := range res.Results {
		stored[i].Hash = r.Hash
		switch {
		case r.Err == nil:
			applied++
			settled = append(settled, r.Hash)
		case errors.Is(r.Err, state.ErrNonceAhead):
			// Only a certified block can hold one (a correct leader leaves it out): it may
			// still pass once the nonce before it is used, so it stays pending.
			stored[i].Error = r.Err.Error()
		default:
			stored[i].Error = r.Err.Error()
			settled = append(settled, r.Hash)
		}
	}
	if len(decoded) != len(b.Txs) {
		decoded = nil
	}
	n.unrecorded = &unrecordedBlock{height: height, txs: b.Txs, decoded: decoded, stored: stored}
	// The mempool lets go of the block's transactions now (the next proposal must not hold them
	// again), before the tx index has them: until then the API reads them as pending, so a
	// reader always finds each one pending or committed, never neither.
	hashes := make(map[state.Hash]struct{}, len(settled))
	for _, h := range settled {
		hashes[h] = struct{}{}
	}
	n.settlingTxs.Store(&settlingTxs{height: height, hashes: hashes})
	n.health.blockApplied(b.Header.Time)
	n.pool.Update(settled, n.nonceOf)
	gapped := n.pool.Gapped(n.nonceOf)
	n.gate.gapped.Store(int64(gapped))
	n.metrics.mempoolGapped.Set(float64(gapped))
	n.gate.finalized(time.Now(), len(b.Txs))
	n.evidence.Update(height, b.Evidence)
	n.metrics.evidenceCommitted.Add(float64(len(b.Evidence)))
	n.metrics.evidencePending.Set(float64(n.evidence.Size()))
	if ex != nil {
		n.lastHash = state.Hash(ex.digest) // that of value: take matched it
	} else {
		n.lastHash = state.Hash(consensus.DigestOf(value))
	}
	n.lastTime = b.Header.Time
	n.lastHeader = b.Header
	n.metrics.height.Set(float64(height))
	n.metrics.blocks.Inc()
	n.metrics.txsApplied.Add(float64(applied))
	n.metrics.txsRejected.Add(float64(len(res.Results) - applied))
	n.log.Debug("block executed", "height", height, "txs", len(b.Txs), "applied", applied,
		"hash", n.lastHash)
	return nil
}

// recordResults writes the results and indexes of the block executeBlock left unrecorded, if
// any, then serves it (the API and waiters see it committed) and prunes old blocks. It reads the
// state at that block (the accounts and items its transactions touched), so it runs before the
// next block is executed. Not synced on its own (SaveResults): the next block's synced write
// carries it, and recovery rewrites the last block's.
func (n *Node) recordResults() error {
	u := n.unrecorded
	if u == nil {
		return nil
	}
	if h := n.st.Height(); h != u.height {
		return fmt.Errorf("node: recording the results of block %d with the state at %d", u.height, h)
	}
	touched, err := blockTouches(n.st, u.height, u.txs, u.decoded, u.stored)
	if err != nil {
		return err
	}
	if err := n.blocks.SaveResults(u.height, u.stored, touched); err != nil {
		return err
	}
	n.unrecorded = nil
	n.served.Store(u.height)
	n.settlingTxs.Store(nil)
	n.commits.publish()
	if u.prune {
		n.pruneBlocks(u.height)
	}
	return nil
}
