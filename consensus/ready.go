package consensus

import (
	"fmt"
	"slices"
)

// readyMark records how much of each output the last Ready handed out, so that Advance
// acknowledges exactly that even if Step ran in between (raft's node loop steps messages while a
// Ready is being handled).
type readyMark struct {
	persist, msgs, committed, evidence int
	propose                            *ProposalRequest
}

// HasReady reports whether Ready has anything for the node.
func (c *Core) HasReady() bool {
	return len(c.persist) > 0 || len(c.msgs) > 0 || len(c.committed) > 0 || len(c.evidence) > 0 || c.propose != nil
}

// Ready returns the output accumulated since the last Advance. The node handles it in field order
// (persist, send, apply committed values, act on Propose) and then calls Advance once. The slices
// stay valid after Advance and must not be modified.
func (c *Core) Ready() Ready {
	c.mark = readyMark{persist: len(c.persist), msgs: len(c.msgs), committed: len(c.committed), evidence: len(c.evidence), propose: c.propose}
	rd := Ready{
		Persist:   clip(c.persist),
		Messages:  clip(c.msgs),
		Committed: clip(c.committed),
		Evidence:  clip(c.evidence),
		Status:    c.Status(),
	}
	if c.propose != nil {
		p := *c.propose
		rd.Propose = &p
	}
	return rd
}

// Advance tells the core that the node has handled the last Ready: messages persisted and sent,
// committed values stored and applied. Once every committed value is applied, the core enters the
// next height, which may produce a new Ready (a proposal request, or votes on messages that
// arrived early).
func (c *Core) Advance() {
	m := c.mark
	c.mark = readyMark{}
	c.persist = dropFront(c.persist, m.persist)
	c.msgs = dropFront(c.msgs, m.msgs)
	c.committed = dropFront(c.committed, m.committed)
	c.evidence = dropFront(c.evidence, m.evidence)
	if m.propose != nil && c.propose == m.propose {
		c.propose = nil
	}
	if !c.open && len(c.committed) == 0 {
		c.enterHeight()
	}
}

// Status is the core's position.
func (c *Core) Status() Status {
	st := Status{Height: c.height, View: c.view, Leader: c.leaderOf(c.view), Self: c.self,
		ViewChanges: c.viewChanges, LeftView: c.leftView, EvidenceCaught: c.evidenceCaught}
	if r := c.round; r != nil {
		st.Proposal = r.proposal != nil
		st.Prepares, st.Commits = r.prepares.count(), r.commits.count()
		st.ViewChangeVotes = r.viewChangeVotes.count()
	}
	return st
}

// signOnce signs and emits a message for the current slot, persisted before it is sent, and
// counts own votes. It is the only place the core signs, and it refuses to sign two different
// digests for one (height, view, type): PBFT's safety rests on that. Precondition: this node is
// a validator.
func (c *Core) signOnce(t MsgType, d Digest, value []byte) Message {
	r := c.round
	if prev, ok := r.signed[t]; ok {
		if prev != d {
			panic(fmt.Sprintf("consensus: refusing to sign a second %v for height %d view %d; this is a bug, stop the node and report it", t, r.height, r.view))
		}
		for _, m := range r.own {
			if m.Type == t {
				return m
			}
		}
	}
	m := Message{Type: t, Height: r.height, View: r.view, From: uint32(c.self), Digest: d, Value: value}
	Sign(c.chainID, c.key, &m)
	r.signed[t] = d
	r.own = append(r.own, m)
	c.persist = append(c.persist, m)
	c.msgs = append(c.msgs, m)
	power := c.vals.Validators[c.self].Power
	switch t {
	case MsgPrepare:
		vote := m
		_, _ = r.prepares.add(&vote, power) // first vote of ours in this tally: cannot conflict
	case MsgCommit:
		vote := m
		_, _ = r.commits.add(&vote, power)
	}
	return m
}

// sendDecision broadcasts a recent decision, at most once per retransmit period, so that neither
// many lagging peers nor a replaying Byzantine one can make this node flood blocks.
func (c *Core) sendDecision(d *decided) {
	if c.self < 0 || (d.sent && c.now-d.sentAt < uint64(c.retransmitTicks)) {
		return
	}
	d.sent, d.sentAt = true, c.now
	c.msgs = append(c.msgs, DecisionMessage(uint32(c.self), d.c))
}

// decidedAt is the kept decision for height, if any.
func (c *Core) decidedAt(height uint64) *decided {
	for i := range c.decided {
		if c.decided[i].c.Height == height {
			return &c.decided[i]
		}
	}
	return nil
}

// clip returns s with its capacity clipped, so that the caller's appends cannot touch the core's
// storage; nil when empty.
func clip[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s[:len(s):len(s)]
}

// dropFront removes the first n elements into a fresh slice, leaving slices already handed out
// intact.
func dropFront[T any](s []T, n int) []T {
	if n >= len(s) {
		return nil
	}
	return slices.Clone(s[n:])
}
