package consensus

import (
	"fmt"
	"slices"
)

// View change (PBFT §4.4). A validator that has not decided its height within the view's timeout
// moves to the next view and signs a ViewChange carrying its highest prepared certificate for the
// height. The new view's leader, once it holds view changes from more than two thirds of the
// power, re-proposes the value of the highest prepared certificate among them, or a fresh value if
// there is none, inside a NewView that carries those view changes as its justification; followers
// check the justification and then prepare and commit as in view 0.

// MaxFutureViews is how far above its current view the core buffers messages for the current
// height; anything further is refused, so that no peer can make the core hold data without bound.
const MaxFutureViews = 4

// maxTimeoutShift caps the doubling of the view timeout at 8 times ViewTimeoutTicks: enough for
// a slow network to finish a big block, and a crashed leader's view still ends within seconds
// (issue #9: at 64 times, two crashed leaders in a row stalled a 7-validator chain for minutes).
const maxTimeoutShift = 3

// silentAfter is, in view timeouts, how long a validator must have sent nothing before a view it
// leads is cut short.
const silentAfter = 2

// viewTimer is a view timeout, typed and keyed by the (height, view) it was set for, so a timeout
// of a height or view the core has left does nothing (CometBFT's timeoutInfo).
type viewTimer struct {
	height, view uint64
	at           uint64 // tick at which it fires
	armed        uint64 // tick at which it was set
	set          bool
}

// fires says why the timer is due for the core's current slot, or "" if it is not: at its time;
// a quarter timeout after it was set if the view's leader has fallen silent since (a leader that
// crashed just before its view began is silent only later); if the leader is away (see away), a
// quarter timeout after the core entered the view, and at once if the timer was set later; or if
// the leader's connection closed before its proposal came (see SetPeerDown), an eighth of a
// timeout after that, or after it came, a quarter of a timeout after that.
func (t *viewTimer) fires(c *Core) string {
	if !t.set || !c.open || t.height != c.height || t.view != c.view {
		return ""
	}
	quarter := uint64(max(c.viewTimeout/4, 1))
	// A closed connection is firmer evidence than silence: the peer's kernel closed it, so the
	// process died or its host is cut off. The grace only lets a proposal already sent through
	// other peers' relays arrive, or a link repair's redial come back (loopback: milliseconds).
	eighth := uint64(max(c.viewTimeout/8, 1))
	l := c.round.leader
	switch {
	case c.now >= t.at:
		return LeftByTimeout
	case c.silent(l) && c.now >= t.armed+quarter:
		return LeftBySilentLeader
	case c.away(l) && c.now >= max(t.armed, c.viewSince+quarter):
		return LeftByAwayLeader
	case c.down(l) && c.round.proposal == nil && c.now >= max(t.armed, c.downAt[l]-1)+eighth:
		return LeftByDownLeader
	case c.down(l) && c.now >= max(t.armed, c.downAt[l]-1)+quarter:
		// Its proposal is in, but the height is still open a quarter timeout after the leader's
		// connection closed: the others who hold it make no quorum without the leader's votes
		// or a validator that never got it (one still catching up, or cut from the leader), and
		// only a new view can bring it to them (it carries what was prepared).
		return LeftByDownLeader
	}
	return ""
}

// SetPeerDown tells the core that the node of validator v has lost (down) or regained its
// connection to v's node: a leader killed during its view, whose peers' connections closed with
// it, is given up an eighth of a timeout after that (or after the timer was set, if later) instead
// of a whole view timeout; if its proposal arrived first (the others may decide without it), a
// quarter of a timeout after that, should the height still be open.
// It is a hint, like silent and away: it only brings this validator's own view change forward,
// views still move on a quorum's timeouts or f+1 view changes, so a wrong report costs a view,
// never safety. Any message heard from v itself clears it.
func (c *Core) SetPeerDown(v uint32, down bool) {
	if int(v) >= len(c.downAt) || int64(v) == int64(c.self) {
		return
	}
	switch {
	case !down:
		c.downAt[v] = 0
	case c.downAt[v] == 0:
		c.downAt[v] = c.now + 1
	}
}

// down reports whether validator v's node was reported disconnected since v was last heard.
func (c *Core) down(v uint32) bool { return c.downAt[v] != 0 }

// maybeArmTimer sets the timeout of the current (height, view), viewTimeoutTicks from now,
// unless it is set already. View 0's starts when the height opens; a later view's
// only once view changes to it from more than two thirds of the power are in, or its NewView is
// (PBFT §4.5.2): a validator that timed out alone waits in its view for others to join, or for
// a decision, instead of running ahead through views no one else is in. Observers never time out
// on their own: they follow the validators' view changes.
func (c *Core) maybeArmTimer() {
	t := &c.timer
	if c.self < 0 || (t.set && t.height == c.height && t.view == c.view) {
		return
	}
	if r := c.round; r.view > 0 && !r.newView && !isQuorum(c.viewChangePower(), c.total) {
		return
	}
	c.timer = viewTimer{height: c.height, view: c.view, at: c.now + c.viewTimeoutTicks(), armed: c.now, set: true}
}

// viewTimeoutTicks is the current view's timeout: a quarter of ViewTimeoutTicks if its leader has
// been silent for silentAfter view timeouts (crashed, or cut off: waiting longer for it only
// stalls the chain, and its view still ends only on a quorum's timeouts), and otherwise
// ViewTimeoutTicks doubled once per earlier view of the height whose leader proposed.
func (c *Core) viewTimeoutTicks() uint64 {
	if c.silent(c.round.leader) {
		return uint64(max(c.viewTimeout/4, 1))
	}
	return uint64(c.viewTimeout) << c.timeoutShift
}

// silent reports whether validator v, another one, has sent nothing that verified for
// silentAfter view timeouts (since New, for a core that just started).
func (c *Core) silent(v uint32) bool {
	return int64(v) != int64(c.self) && c.now-c.heard[v] > silentAfter*uint64(c.viewTimeout)
}

// away reports whether validator v, another one, shows no sign of being at c.height, where it
// leads the current view, when it was heard from lately: it cannot propose here before it catches
// up, and waiting a whole view timeout for it only stalls the chain (issue #9: a validator back
// from an outage, still catching up, led view 0; then the leader of view 1, just killed, was not
// silent yet; the chain waited two view timeouts). In a view above 0, a leader at c.height has
// sent something here by the time a quorum has timed out with it: a prepare, or its own view
// change. In view 0 the leader may wait for transactions before it proposes, and one that was a
// little late at the last height catches up by itself, so only persistent lag counts: a message
// it signed for a height this core decided a while before, in a view above the one that decided
// it (it left that view, so it waits on a decision: a validator catching up after an outage,
// or one that hears nobody), arriving a quarter timeout or more after this core opened c.height
// (a validator behind resends its messages every retransmit period). A vote of the deciding view
// is no such sign, however late: it may have been sent just before its author decided and been
// on the wire since. Any message from it at c.height ends it. Only the timing of this validator's own view
// change depends on it: views still move on a quorum's timeouts or f+1 view changes, so a wrong
// guess costs a view, never safety.
func (c *Core) away(v uint32) bool {
	switch {
	case int64(v) == int64(c.self) || c.heardHeight[v] >= c.height:
		return false
	case c.view > 0:
		return true
	}
	return c.lagAt[v] == c.height && c.lagTick[v] >= c.viewSince+uint64(max(c.viewTimeout/4, 1))
}

// noteHeard records that m, whose signature verified, came from its sender now. A decision is
// signed by its certificate, not by its sender, and a relayed copy may be passed on long after
// its author crashed: neither says who is alive. A relayed copy still shows that its author
// reached m.Height (see away): a leader's view change that reached this node only through a
// relay is no sign that the leader is away.
func (c *Core) noteHeard(m *Message) {
	if m.Type == MsgDecision {
		return
	}
	c.heardHeight[m.From] = max(c.heardHeight[m.From], m.Height)
	if m.Relayed {
		return
	}
	if c.self >= 0 && c.silent(m.From) {
		// Back after a silence (restarted, or reconnected): it has likely missed this slot's
		// messages, and retransmissions may have backed off far; resend them at the next tick.
		c.resendSoon = true
	}
	c.heard[m.From] = c.now
	c.downAt[m.From] = 0
}

// leaveView doubles the view timeout if the current view's leader proposed: the network was too
// slow for the view, and another as short would fail the same way. A view whose leader never
// proposed (crashed, or cut off) says nothing of the network, and doubling would only make the
// next crashed leader's view longer. Precondition: called before the core moves to a later view.
func (c *Core) leaveView() {
	if c.round.proposal != nil && c.timeoutShift < maxTimeoutShift {
		c.timeoutShift++
	}
}

// viewChangePower is the power that has left the views below the current one: validators with a
// view change to the current view, or to a later one. It only arms the timer (liveness); a
// NewView still needs a quorum of view changes to exactly its view. Counting the later ones keeps
// validators spread over neighbouring views (after lost view changes) from each waiting for a
// quorum that never forms in its own view.
func (c *Core) viewChangePower() uint64 {
	higher := c.views.highestViewChanges(c.view)
	var power uint64
	for i, m := range c.round.viewChangeVotes.first {
		if m != nil || higher[i] > c.view || c.farViewChanges[i] > c.view {
			power += c.vals.Validators[i].Power
		}
	}
	return power
}

// startViewChange moves to view for the current height and signs a ViewChange for it.
// Precondition: view > c.view and the core is open.
func (c *Core) startViewChange(view uint64, why string) {
	c.leaveView()
	c.leftView = why
	c.view = view
	c.viewSince = c.now
	c.round = newRound(c.vals, c.height, view, c.leaderOf(view))
	c.viewChanges++
	c.idle, c.voteIdle, c.backoff = 0, 0, 1
	if c.propose != nil && c.propose.Height == c.height && c.propose.View < view {
		c.propose = nil // the slot is gone; Propose would now be refused
	}
	c.timer = viewTimer{}
	if c.self >= 0 {
		vc := Message{Type: MsgViewChange, Height: c.height, View: view, From: uint32(c.self)}
		if p := c.prepared; p != nil {
			vc.Prepared, vc.Digest, vc.PreparedView = p, p.PrePrepare.Digest, p.PrePrepare.View
		}
		c.emit(&vc, true)
		_, _ = c.round.viewChangeVotes.put(&vc)
	}
	h := c.height
	for _, m := range c.views.take(view) {
		if !c.open || c.height != h || c.view != view {
			return // decided, or moved on, by a buffered message
		}
		_ = c.process(m)
	}
	if c.open && c.height == h && c.view == view {
		c.maybeArmTimer()
		c.maybeNewView()
	}
}

// emit signs m (its fields other than Sig set), records it as this validator's for the current
// slot, and queues it to be persisted and, if send, broadcast. Precondition: this node is a
// validator and has signed no other m.Type in the slot.
func (c *Core) emit(m *Message, send bool) {
	r := c.round
	if prev, ok := r.signed[m.Type]; ok && prev != m.Digest {
		panic(fmt.Sprintf("consensus: refusing to sign a second %v for height %d view %d; this is a bug, stop the node and report it", m.Type, r.height, r.view))
	}
	Sign(c.chainID, c.key, m)
	r.signed[m.Type] = m.Digest
	c.persist = append(c.persist, *m)
	if send {
		r.own = append(r.own, *m)
		c.msgs = append(c.msgs, *m)
	}
}

// stepOtherView handles a message for the current height but another view. Earlier views are
// over for this node; later ones, within MaxFutureViews, are buffered until it gets there, and
// view changes for them may make it join (PBFT §4.5.2: f+1 view changes for higher views mean an
// honest validator has timed out there, so waiting for one's own timeout only delays the change).
func (c *Core) stepOtherView(m *Message) error {
	switch {
	case m.View < c.view:
		if m.From == c.round.leader && c.heardHeight[m.From] < c.height && checkAuth(c.chainID, c.vals, m, c.sigs) == nil {
			// The leader is at the height, only a view or so behind: it is not away (once
			// per height, so the signature check is bounded).
			c.noteHeard(m)
		}
		return fmt.Errorf("%w: %v for view %d, in view %d", ErrWrongView, m.Type, m.View, c.view)
	case m.View-c.view > MaxFutureViews:
		err := fmt.Errorf("%w: %v for view %d, in view %d", ErrFutureView, m.Type, m.View, c.view)
		if m.Type == MsgViewChange && int64(m.From) != int64(c.self) && checkAuth(c.chainID, c.vals, m, c.sigs) == nil {
			c.noteHeard(m)
			// Not buffered, but remembered (one view per validator): if more than a third of
			// the power is that far ahead, this node must be able to join them.
			if m.View > c.farViewChanges[m.From] {
				c.farViewChanges[m.From] = m.View
			}
			c.maybeJoinView()
			if c.open {
				c.maybeArmTimer() // a later view's support counts toward this view's timer
			}
		}
		return err
	case m.Type == MsgPrePrepare:
		return fmt.Errorf("%w: a pre-prepare for view %d comes inside a new view", ErrMalformed, m.View)
	case int64(m.From) == int64(c.self):
		return fmt.Errorf("%w: own %v for a view this node has not entered", ErrEquivocation, m.Type)
	}
	if err := checkAuth(c.chainID, c.vals, m, c.sigs); err != nil {
		return err
	}
	c.noteHeard(m)
	ev, err := c.views.add(m)
	c.recordEquivocation(ev)
	if err != nil {
		return err
	}
	if m.Type == MsgViewChange {
		c.maybeJoinView()
		if c.open {
			c.maybeArmTimer() // a later view's support counts toward this view's timer
		}
	}
	return nil
}

// maybeJoinView moves to a higher view once validators holding more than a third of the power
// have sent view changes for views above the current one: to the smallest view among the highest
// each of them asked for. Precondition: the core is open.
func (c *Core) maybeJoinView() {
	var power uint64
	target := uint64(0)
	for i, v := range c.views.highestViewChanges(c.view) {
		v = max(v, c.farViewChanges[i])
		if v <= c.view {
			continue
		}
		power += c.vals.Validators[i].Power
		if target == 0 || v < target {
			target = v
		}
	}
	// More than a third: at least one honest validator among them.
	if target > c.view && power > c.total-power-power {
		c.startViewChange(target, LeftByJoining)
	}
}

// stepViewChange collects a view change for the current view. Precondition: m is an
// authenticated ViewChange for (c.height, c.view) from another validator.
func (c *Core) stepViewChange(m *Message) error {
	ev, err := c.round.viewChangeVotes.put(m)
	if err != nil {
		c.recordEquivocation(ev)
		return err
	}
	c.maybeArmTimer()
	c.maybeNewView()
	return nil
}

// maybeNewView: as the leader of the current view, once view changes from more than two thirds of
// the power are in, re-propose the highest prepared value among them, or ask the node for a
// fresh one. Precondition: none.
func (c *Core) maybeNewView() {
	r := c.round
	if r.view == 0 || r.newView || r.requested || c.self < 0 || int64(r.leader) != int64(c.self) {
		return
	}
	vcs := r.viewChangeVotes.collect()
	var power uint64
	for i := range vcs {
		power += c.vals.Validators[vcs[i].From].Power
	}
	if !isQuorum(power, c.total) {
		return
	}
	// The justification is fixed now: a view change that arrives while the node builds a value
	// could carry a prepared certificate the value would then have to yield to.
	r.justification = vcs
	if best := highestPrepared(vcs); best != nil {
		c.sendNewView(best.Prepared.PrePrepare.Value)
		return
	}
	r.requested = true
	c.propose = &ProposalRequest{Height: r.height, View: r.view}
}

// sendNewView signs a PrePrepare for value in the current view and broadcasts it inside a NewView
// with r.justification, then prepares it. Precondition: this validator leads the current view
// (> 0), r.justification holds a quorum of view changes, and it has proposed nothing in the view;
// value is the highest prepared value among them, or any value if none is prepared.
func (c *Core) sendNewView(value []byte) {
	r := c.round
	pp := Message{Type: MsgPrePrepare, Height: r.height, View: r.view, From: uint32(c.self), Digest: DigestOf(value), Value: value}
	c.emit(&pp, false) // sent only inside the NewView
	vcs := slices.Clone(r.justification)
	for i := range vcs {
		if p := vcs[i].Prepared; p != nil {
			// The proposal carries the only value that matters; the digests are signed.
			stripped := *p
			stripped.PrePrepare.Value = nil
			vcs[i].Prepared = &stripped
		}
	}
	nv := Message{Type: MsgNewView, Height: r.height, View: r.view, From: uint32(c.self), Digest: pp.Digest, ViewChanges: vcs, Proposal: &pp}
	c.emit(&nv, true)
	r.newView, r.requested = true, true
	r.proposal = &pp
	c.enterPrepare()
}

// stepNewView accepts the leader's NewView for the current view: its justification was checked
// by checkShape and checkAuth (a quorum of valid view changes, the highest prepared value
// re-proposed), so what is left is this node's own state. Precondition: m is an authenticated
// NewView for (c.height, c.view) from its leader, another validator.
func (c *Core) stepNewView(m *Message) error {
	r := c.round
	if r.newView {
		if r.proposal != nil && r.proposal.Digest == m.Digest {
			return fmt.Errorf("%w: new view for height %d view %d", ErrDuplicate, m.Height, m.View)
		}
		if r.proposal != nil && !r.caughtLeader {
			// Two signed pre-prepares for one slot: the evidence, without the justifications.
			r.caughtLeader = true
			c.recordEquivocation(&Evidence{First: *r.proposal, Second: *m.Proposal})
		}
		return fmt.Errorf("%w: leader %d sent two new views for height %d view %d", ErrEquivocation, m.From, m.Height, m.View)
	}
	for _, t := range []MsgType{MsgPrepare, MsgCommit} {
		if d, ok := r.signed[t]; ok && d != m.Digest {
			return fmt.Errorf("%w: leader %d proposed %s for height %d view %d; this validator's %v is for %s", ErrEquivocation, m.From, m.Digest, m.Height, m.View, t, d)
		}
	}
	r.newView = true
	// A NewView re-proposes the highest prepared value of its view changes if any holds one
	// (checkShape made sure of it), else a value of the leader's own.
	if err := c.acceptProposal(m.Proposal, highestPrepared(m.ViewChanges) == nil); err != nil {
		r.newView = false
		return err
	}
	r.newViewMsg = m
	if c.open && c.round == r {
		c.maybeArmTimer()
	}
	return nil
}

// recordPrepared keeps the current round's prepared certificate as the height's highest.
// Precondition: the round's proposal holds a quorum of prepares.
func (c *Core) recordPrepared() {
	r := c.round
	if c.prepared != nil && c.prepared.PrePrepare.View >= r.view {
		return
	}
	d := r.proposal.Digest
	p := &PreparedProof{PrePrepare: *r.proposal}
	p.PrePrepare.ViewChanges, p.PrePrepare.Proposal = nil, nil
	for i, m := range r.prepares.first {
		if m != nil && m.Digest == d {
			p.Prepares = append(p.Prepares, Vote{Validator: uint32(i), Sig: m.Sig})
		}
	}
	c.prepared = p
}

// checkRestoredProof checks the prepared certificate a restored commit carries: for the commit's
// slot and digest, well formed and correctly signed. Precondition: m is the commit, without it.
func (c *Core) checkRestoredProof(m *Message, p *PreparedProof) error {
	if p.PrePrepare.View != m.View || p.PrePrepare.Digest != m.Digest {
		return fmt.Errorf("%w: for another slot or digest than its commit", ErrMalformed)
	}
	// The certificate a view change to the next view would carry.
	vc := Message{Type: MsgViewChange, Height: m.Height, View: m.View + 1, Digest: m.Digest, PreparedView: m.View, Prepared: p}
	if err := checkViewChange(c.vals, &vc, true); err != nil {
		return err
	}
	if err := c.checkPreparedLeader(p); err != nil {
		return err
	}
	return verifyPrepared(c.chainID, c.vals, p, c.sigs)
}

// collect returns copies of the messages held, in validator order.
func (s *slots) collect() []Message {
	var out []Message
	for _, m := range s.first {
		if m != nil {
			out = append(out, *m)
		}
	}
	return out
}

// viewPending holds authenticated messages for one future view of the current height, one slot
// per validator and type, so the buffer holds at most MaxFutureViews × (3n + 1) messages.
type viewPending struct {
	viewChanges, prepares, commits slots
	newView                        *Message
}

// viewBuffer holds messages for views above the current one, by view.
type viewBuffer struct {
	n     int
	views map[uint64]*viewPending
}

func newViewBuffer(n int) viewBuffer { return viewBuffer{n: n, views: make(map[uint64]*viewPending)} }

// add buffers m. Precondition: m is authenticated, not a PrePrepare, and for a view within the
// buffering window of the current height (a NewView's sender is its view's leader).
func (b *viewBuffer) add(m *Message) (*Evidence, error) {
	p := b.views[m.View]
	if p == nil {
		p = &viewPending{viewChanges: newSlots(b.n), prepares: newSlots(b.n), commits: newSlots(b.n)}
		b.views[m.View] = p
	}
	switch m.Type {
	case MsgViewChange:
		return p.viewChanges.put(m)
	case MsgPrepare:
		return p.prepares.put(m)
	case MsgCommit:
		return p.commits.put(m)
	case MsgNewView:
		if p.newView != nil {
			return nil, fmt.Errorf("%w: new view for view %d already buffered", ErrDuplicate, m.View)
		}
		p.newView = m
		return nil, nil
	}
	return nil, fmt.Errorf("%w: cannot buffer %v", ErrMalformed, m.Type)
}

// highestViewChanges is, per validator, the highest view above view it sent a view change for
// (0 if none).
func (b *viewBuffer) highestViewChanges(view uint64) []uint64 {
	out := make([]uint64, b.n)
	for v, p := range b.views {
		if v <= view {
			continue
		}
		for i, m := range p.viewChanges.first {
			if m != nil && v > out[i] {
				out[i] = v
			}
		}
	}
	return out
}

// take removes and returns the messages buffered for view, dropping those of lower views, in the
// order that gets furthest fastest: view changes, the new view, prepares, commits.
func (b *viewBuffer) take(view uint64) []*Message {
	p := b.views[view]
	for v := range b.views {
		if v <= view {
			delete(b.views, v)
		}
	}
	if p == nil {
		return nil
	}
	var out []*Message
	for _, m := range p.viewChanges.first {
		if m != nil {
			out = append(out, m)
		}
	}
	if p.newView != nil {
		out = append(out, p.newView)
	}
	for _, s := range []slots{p.prepares, p.commits} {
		for _, m := range s.first {
			if m != nil {
				out = append(out, m)
			}
		}
	}
	return out
}

func (b *viewBuffer) clear() { clear(b.views) }

// size is the number of buffered messages, for tests.
func (b *viewBuffer) size() int {
	total := 0
	for _, p := range b.views {
		if p.newView != nil {
			total++
		}
		for _, s := range []slots{p.viewChanges, p.prepares, p.commits} {
			total += len(slices.DeleteFunc(slices.Clone(s.first), func(m *Message) bool { return m == nil }))
		}
	}
	return total
}
