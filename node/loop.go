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
		case ev := <-n.host.PeerEvents():
			n.peerChanged(ev)
		case r := <-n.resolvedCh:
			n.finishProposalRef(r)
		case req := <-n.checkpoints:
			cp, err := n.checkpoint()
			req.reply <- checkpointRes{cp: cp, err: err} // buffered
			continue
		case reply := <-n.health.probes:
			reply <- n.probe() // buffered: never blocks
			continue
		case req := <-n.syncCh:
			applied, local, err := n.applySynced(req.blocks)
			if applied > 0 {
				// The chain moved past the core's height: start a core at the new tip. What it
				// signed below that height is settled, and the WAL was reset with each block.
				slot = nil
				if err := n.startCore(nil); err != nil {
					req.done <- err
					return err
				}
			}
			if err != nil {
				req.done <- err
				return err // lost durability, as in handleReady
			}
			req.done <- local
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
	if peers[msg.From] != from {
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
	var txs [][]byte
	if n.pool.Size() > 0 {
		txs = n.pool.Reap(n.params.proposeTxs, MaxBlockBytes-64<<10, n.nonceOf)
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
	txs, staged, err := n.leaveOutFailing(state.BlockInfo{Height: slot.Height, TimeMs: t, Version: version}, txs)
	if err != nil {
		return err
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
			TxsHash:      TxsHash(txs),
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
	n.executed.put(executedBlock{digest: consensus.DigestOf(value), block: &b, staged: staged, failed: failure(staged)})
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
		if err := n.commit(c); err != nil {
			// The block is decided by a quorum; failing to store or execute it is lost durability.
			return fmt.Errorf("node: committing height %d: %w", c.Height, err)
		}
	}
	st := rd.Status
	n.snapshot.Store(&st)
	n.metrics.view.Set(float64(st.View))
	n.metrics.viewChanges.Set(float64(st.ViewChanges))
	return nil
}

// commit stores a decided block (before executing it: see recover), executes it and tells waiters.
func (n *Node) commit(c consensus.Committed) error { return n.commitBlock(c, true) }

// commitBlock is commit; resetWAL is false for a block of a sync run, which resets the WAL once
// its blocks are on disk (endSyncRun).
func (n *Node) commitBlock(c consensus.Committed, resetWAL bool) error {
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
	if err := n.execute(c.Height, c.Value, n.executed.take(c.Value, c.Height)); err != nil {
		return err
	}
	n.commits.publish()
	n.snaps.committed(c.Height, n.st.Root())
	n.pruneBlocks(c.Height)
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

// execute applies a stored block to the state, records the results and settles the mempool. When
// the block was executed already (ex, by CheckProposal or maybePropose) on this tip, that result
// is committed instead of executing the block again.
func (n *Node) execute(height uint64, value []byte, ex *executedBlock) error {
	var (
		b   *Block
		res *state.BlockResult
		err error
	)
	if ex != nil {
		b = ex.block
		res, err = n.st.CommitStaged(ex.staged)
		if errors.Is(err, state.ErrStaleStaged) {
			res, err = nil, nil // not this tip's after all: execute it below
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
	touched, err := blockTouches(n.st, height, b.Txs, stored)
	if err != nil {
		return err
	}
	if err := n.blocks.SaveResults(height, stored, touched); err != nil {
		return err
	}
	// Served before the mempool lets go of the block's transactions: a reader always finds each
	// one pending or committed, never neither.
	n.served.Store(height)
	n.health.blockApplied(b.Header.Time)
	n.pool.Update(settled, n.nonceOf)
	gapped := n.pool.Gapped(n.nonceOf)
	n.gate.gapped.Store(int64(gapped))
	n.metrics.mempoolGapped.Set(float64(gapped))
	n.gate.finalized(time.Now(), len(b.Txs))
	n.evidence.Update(height, b.Evidence)
	n.metrics.evidenceCommitted.Add(float64(len(b.Evidence)))
	n.metrics.evidencePending.Set(float64(n.evidence.Size()))
	n.lastHash = state.Hash(consensus.DigestOf(value))
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
