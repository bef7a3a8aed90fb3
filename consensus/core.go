package consensus

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
)

// DefaultRetransmitTicks is used when Config.RetransmitTicks is 0.
const DefaultRetransmitTicks = 25

// DefaultViewTimeoutTicks is used when Config.ViewTimeoutTicks is 0: two seconds at the node's
// 20 ms tick.
const DefaultViewTimeoutTicks = 100

// Config is what New needs.
type Config struct {
	// ChainID goes into every signature; it must be non-empty and contain no zero byte.
	ChainID    string
	Validators ValidatorSet
	// Key is this validator's consensus key; nil makes an observer, which follows the chain and
	// never signs or sends.
	Key ed25519.PrivateKey
	App Application
	// Height is the first height to decide: the last committed height + 1 (at least 1).
	Height uint64
	// RetransmitTicks: after this many ticks without a commit, resend own messages for the
	// current height (and recent decisions, for peers that lag). 0 means DefaultRetransmitTicks.
	RetransmitTicks int
	// ViewTimeoutTicks: a validator that has not decided its height this many ticks after
	// entering view 0 moves to view 1. The timeout doubles after each view whose leader
	// proposed (up to 8 times), and is a quarter of this in a view whose leader has been silent
	// for two of these (see viewTimeoutTicks). 0 means DefaultViewTimeoutTicks.
	ViewTimeoutTicks int
	// Recent holds the last decided values (those below Height, oldest first), so that a core
	// started on a node with a chain can answer peers still deciding them, as one that decided them
	// itself would. Only the last MaxFutureHeights are kept.
	Recent []Committed
	// Restore holds the messages this validator signed before it stopped, read back from its WAL
	// in the order they were written. Those for Height count as signed again — the core will
	// never sign anything different for their slot, and resends them — and older ones are
	// ignored (their heights are decided). The core resumes in the highest view of Height it
	// signed anything in, so a view change it sent stands.
	Restore []Message
	// Schedule, if set, says which validators are passed over as leaders at each height (see
	// LeaderSchedule); nil means plain round-robin, ValidatorSet.Leader.
	Schedule LeaderSchedule

	// Memo, if set, holds signatures already verified elsewhere on this node (its network
	// validator, VerifyMessageWith); the core skips those and adds the ones it verifies itself.
	// nil verifies every signature. See SignatureMemo for what an implementation must promise.
	Memo SignatureMemo

	// sigs, set only by the simulator in this package's tests, shares verified signatures across
	// simulated nodes. See sigCache.
	sigs *sigCache
}

// Core is the consensus state machine of one node. It is not safe for concurrent use: the node
// owns it from one goroutine (docs/architecture.md), and Step, Tick, Propose, Ready and Advance all run there.
type Core struct {
	chainID         string
	vals            ValidatorSet
	total           uint64
	key             ed25519.PrivateKey
	self            int // own validator index, -1 when observing
	app             Application
	retransmitTicks int
	viewTimeout     int
	sigs            *sigCache
	schedule        LeaderSchedule

	height uint64 // the height being decided
	view   uint64 // the view of c.height this core is in; 0 on entering a height
	// open is false from committing height-1 until the Advance after the node applied it:
	// Application.CheckProposal cannot judge a proposal for height before then, so messages for
	// height wait in the future buffer meanwhile.
	open   bool
	round  *round
	future futureBuffer
	// views buffers messages for views of c.height above c.view, up to MaxFutureViews.
	views viewBuffer
	// timer is the pending view timeout; it fires only for the (height, view) it was set for.
	timer viewTimer
	// timeoutShift doubles the view timeout: it grows by one after each view of c.height whose
	// leader proposed and still did not get the height decided (see leaveView).
	timeoutShift uint
	// heard is, per validator, the tick of the last message from it whose signature verified
	// (issue #9: a leader silent for a while gets a short view).
	heard []uint64
	// heardHeight is, per validator, the highest height of a message from it whose signature
	// verified (0: nothing since New); lagAt and lagTick the height this core was deciding and
	// the tick when it last got a signed message from it for a height it had decided a while
	// before, in a view above the one that decided it (stepStale): the validator was behind then.
	// They say whether a leader can propose at c.height (issue #9: a leader catching up after an
	// outage cost a whole view timeout; see away).
	heardHeight []uint64
	lagAt       []uint64
	lagTick     []uint64
	// downAt is, per validator, 1 + the tick at which the node reported its peer disconnected
	// (SetPeerDown), 0 while it is not reported down; any message from the validator itself, or
	// the node reporting it connected, clears it (see down).
	downAt []uint64
	// viewSince is the tick at which the core entered c.view (for view 0, opened c.height).
	viewSince uint64
	// prepared is this validator's highest-view prepared certificate for c.height, which its
	// view changes carry.
	prepared *PreparedProof
	// farViewChanges is, per validator, the highest view beyond MaxFutureViews it sent a view
	// change for at c.height (those are not buffered).
	farViewChanges []uint64
	// viewChanges counts the views moved to, for metrics; leftView says why the last was left.
	viewChanges uint64
	leftView    string
	// decided keeps the last few commits to hand to peers that lag behind (oldest first).
	decided []decided
	// evidence is caught equivocation not yet handed out in a Ready; evidenceSeen the slots
	// already reported at undecided heights, so each offence is reported once; evidenceCaught
	// counts all, for metrics.
	evidence       []Evidence
	evidenceSeen   map[EvidenceSlot]struct{}
	evidenceCaught uint64

	// leaders is the order in which validators lead the views of c.height (LeaderOrder), asked
	// of the schedule when the height opens; nil means round-robin. leadersFor is its height.
	leaders    []uint32
	leadersFor uint64

	now  uint64 // ticks since New
	idle int    // ticks since the last commit or full retransmission
	// backoff multiplies retransmitTicks for the next full retransmission at this height: it
	// doubles after each one, so a slow height (a big block on a busy machine) is not buried
	// under copies of its own proposal.
	backoff int
	// voteIdle is the ticks since the last retransmission of any kind: votes and view changes
	// without a block are small, and are resent every RetransmitTicks whatever the backoff, so
	// that one lost vote costs a retransmit period, not a view (issue #9).
	voteIdle int
	// resendSoon asks for a full retransmission at the next tick: a validator was heard from after
	// a silence (see noteHeard).
	resendSoon bool

	// Output accumulated since the last Advance, and what the last Ready handed out of it.
	persist   []Message
	msgs      []Message
	committed []Committed
	propose   *ProposalRequest
	mark      readyMark
}

// round is the state of one (height, view) slot.
type round struct {
	height, view uint64
	leader       uint32
	requested    bool     // the node was asked to Propose for this slot
	proposal     *Message // the accepted PrePrepare, whose value a commit needs
	caughtLeader bool     // the leader's conflicting proposals are already on record
	prepares     *tally
	commits      *tally
	prepared     bool
	// newView: the proposal for this view may be accepted. Always true in view 0; in a later
	// view it is set by a valid NewView (or by sending one), the only way a proposal arrives.
	newView bool
	// viewChangeVotes holds the view changes to this view, one per validator.
	viewChangeVotes slots
	// justification is the quorum of view changes a leader's NewView will carry.
	justification []Message
	// newViewMsg is the leader's NewView this node accepted, kept to relay (see relay).
	newViewMsg *Message
	// signed remembers what this node signed in the slot, so it never signs two different things
	// for one (height, view, type) and can retransmit them.
	signed map[MsgType]Digest
	own    []Message
}

func newRound(vals ValidatorSet, height, view uint64, leader uint32) *round {
	n := len(vals.Validators)
	return &round{
		height:   height,
		view:     view,
		leader:   leader,
		prepares: newTally(n),
		commits:  newTally(n),
		signed:   make(map[MsgType]Digest),
		newView:  view == 0,

		viewChangeVotes: newSlots(n),
	}
}

// decided is a recent commit kept for lagging peers, and when it was last broadcast.
type decided struct {
	c      Committed
	at     uint64 // tick at which the core decided it
	sent   bool
	sentAt uint64
}

// New validates cfg and returns a core about to decide cfg.Height. If this validator leads the
// first slot, the first Ready asks for a proposal.
func New(cfg Config) (*Core, error) {
	if err := cfg.Validators.validate(); err != nil {
		return nil, err
	}
	if cfg.ChainID == "" || strings.IndexByte(cfg.ChainID, 0) >= 0 {
		return nil, fmt.Errorf("%w: chain ID must be non-empty and contain no zero byte", ErrInvalidConfig)
	}
	if cfg.App == nil {
		return nil, fmt.Errorf("%w: no application", ErrInvalidConfig)
	}
	if cfg.Height == 0 {
		return nil, fmt.Errorf("%w: heights start at 1", ErrInvalidConfig)
	}
	if cfg.RetransmitTicks < 0 || cfg.ViewTimeoutTicks < 0 {
		return nil, fmt.Errorf("%w: negative tick count", ErrInvalidConfig)
	}
	vals := ValidatorSet{Validators: slices.Clone(cfg.Validators.Validators)}
	self := -1
	if cfg.Key != nil {
		if len(cfg.Key) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%w: key is %d bytes", ErrInvalidConfig, len(cfg.Key))
		}
		// The public half of a private key is stored, not derived: check it, or every signature
		// would be invalid for the key the validator set names.
		if !ed25519.NewKeyFromSeed(cfg.Key.Seed()).Equal(cfg.Key) {
			return nil, fmt.Errorf("%w: key's public half does not match its seed", ErrInvalidConfig)
		}
		pub := cfg.Key.Public().(ed25519.PublicKey)
		for i, v := range vals.Validators {
			if pub.Equal(v.PubKey) {
				self = i
			}
		}
		if self < 0 {
			return nil, fmt.Errorf("%w: key is not in the validator set", ErrInvalidConfig)
		}
	}
	c := &Core{
		chainID:         cfg.ChainID,
		vals:            vals,
		total:           vals.TotalPower(),
		key:             cfg.Key,
		self:            self,
		app:             cfg.App,
		retransmitTicks: cfg.RetransmitTicks,
		viewTimeout:     cfg.ViewTimeoutTicks,
		sigs:            cfg.sigs,
		schedule:        cfg.Schedule,
		height:          cfg.Height,
		future:          newFutureBuffer(len(vals.Validators)),
		views:           newViewBuffer(len(vals.Validators)),
		farViewChanges:  make([]uint64, len(vals.Validators)),
		heard:           make([]uint64, len(vals.Validators)),
		heardHeight:     make([]uint64, len(vals.Validators)),
		lagAt:           make([]uint64, len(vals.Validators)),
		lagTick:         make([]uint64, len(vals.Validators)),
		downAt:          make([]uint64, len(vals.Validators)),
		evidenceSeen:    make(map[EvidenceSlot]struct{}),
	}
	if c.sigs == nil {
		c.sigs = memoCache(cfg.Memo)
	}
	if c.retransmitTicks == 0 {
		c.retransmitTicks = DefaultRetransmitTicks
	}
	if c.viewTimeout == 0 {
		c.viewTimeout = DefaultViewTimeoutTicks
	}
	// A validator that sent a view change must not go back to an earlier view after a restart:
	// the new leader may have counted on it. Resume in the highest view it signed anything in.
	for _, m := range cfg.Restore {
		if m.Height == c.height && m.View > c.view {
			c.view = m.View
		}
	}
	c.round = newRound(vals, c.height, c.view, vals.Leader(c.height, c.view))
	c.openLeaders() // every height below cfg.Height is applied
	for _, r := range cfg.Recent {
		if r.Height < c.height && r.Height+MaxFutureHeights >= c.height {
			c.decided = append(c.decided, decided{c: r})
		}
	}
	for i := range cfg.Restore {
		if err := c.restore(&cfg.Restore[i]); err != nil {
			return nil, err
		}
	}
	c.enterHeight()
	return c, nil
}

// restore takes back one message this validator signed before a restart. Precondition: called
// from New, before the first height is entered.
func (c *Core) restore(m *Message) error {
	r := c.round
	switch {
	case m.Height < c.height:
		return nil // decided since; the block store has it
	case c.self < 0:
		return fmt.Errorf("%w: an observer has nothing to restore", ErrInvalidConfig)
	case m.Height > c.height:
		// Nothing is signed for a height before the previous one is stored, so a WAL ahead of
		// the block store is not this node's.
		return fmt.Errorf("%w: restored %v for height %d, but the next height to decide is %d", ErrInvalidConfig, m.Type, m.Height, c.height)
	case m.View != c.view:
		return nil // an earlier view, left behind
	case int64(m.From) != int64(c.self):
		return fmt.Errorf("%w: restored %v signed by validator %d, not this one (%d)", ErrInvalidConfig, m.Type, m.From, c.self)
	}
	// A commit is persisted with the prepared certificate behind it (see enterCommit).
	var proof *PreparedProof
	if m.Type == MsgCommit && m.Prepared != nil {
		plain := *m
		proof, plain.Prepared = plain.Prepared, nil
		m = &plain
		if err := c.checkRestoredProof(m, proof); err != nil {
			return fmt.Errorf("%w: restored commit's prepared certificate: %w", ErrInvalidConfig, err)
		}
	}
	if err := checkShape(c.vals, m); err != nil {
		return fmt.Errorf("%w: restored message: %w", ErrInvalidConfig, err)
	}
	if err := checkAuth(c.chainID, c.vals, m, c.sigs); err != nil {
		return fmt.Errorf("%w: restored message: %w", ErrInvalidConfig, err)
	}
	if err := c.checkLeaders(m); err != nil {
		return fmt.Errorf("%w: restored message: %w", ErrInvalidConfig, err)
	}
	if d, ok := r.signed[m.Type]; ok {
		if d != m.Digest {
			// The WAL itself proves an equivocation; refuse rather than pick one.
			return fmt.Errorf("%w: the WAL holds two different %vs for height %d view %d", ErrInvalidConfig, m.Type, m.Height, m.View)
		}
		return nil
	}
	power := c.vals.Validators[c.self].Power
	switch m.Type {
	case MsgPrePrepare:
		if r.leader != m.From {
			return fmt.Errorf("%w: restored pre-prepare for a slot led by validator %d", ErrInvalidConfig, r.leader)
		}
		r.proposal, r.requested = m, true
	case MsgPrepare:
		_, _ = r.prepares.add(m, power)
	case MsgCommit:
		_, _ = r.commits.add(m, power)
		r.prepared = true // a commit is only ever signed once prepared
		if proof != nil && (c.prepared == nil || c.prepared.PrePrepare.View < proof.PrePrepare.View) {
			c.prepared = proof
		}
	case MsgViewChange:
		_, _ = r.viewChangeVotes.put(m)
		if m.Prepared != nil {
			c.prepared = m.Prepared
		}
	case MsgNewView:
		r.proposal, r.requested, r.newView = m.Proposal, true, true
		r.signed[MsgPrePrepare] = m.Digest
	default:
		return fmt.Errorf("%w: restored %v: only pre-prepares, prepares, commits, view changes and new views are signed to a WAL", ErrInvalidConfig, m.Type)
	}
	r.signed[m.Type] = m.Digest
	if m.Type == MsgPrePrepare && m.View > 0 {
		return nil // sent only inside the NewView
	}
	r.own = append(r.own, *m)
	// Already durable: send again, so peers that heard it before the restart can finish.
	c.msgs = append(c.msgs, *m)
	return nil
}

// Step feeds the core one message from the network. The core takes ownership of m's slices. A
// non-nil error says why m was not used; it is never fatal to the core, and ErrStaleHeight,
// ErrFutureHeight and ErrDuplicate are what honest peers at other heights produce.
func (c *Core) Step(m Message) error {
	if err := checkShape(c.vals, &m); err != nil {
		return err
	}
	switch {
	case m.Height < c.height:
		return c.stepStale(&m)
	case m.Height-c.height > MaxFutureHeights:
		return fmt.Errorf("%w: %v for height %d, deciding %d", ErrFutureHeight, m.Type, m.Height, c.height)
	case m.Height > c.height || !c.open:
		return c.stepFuture(&m)
	}
	if err := c.checkLeaders(&m); err != nil {
		return err
	}
	// A decision settles the height whatever view produced it.
	if m.Type != MsgDecision && m.View != c.view {
		return c.stepOtherView(&m)
	}
	if err := checkAuth(c.chainID, c.vals, &m, c.sigs); err != nil {
		return err
	}
	c.noteHeard(&m)
	return c.process(&m)
}

// process dispatches a message for the current slot. Precondition: m is authenticated, for
// (c.height, c.view) (any view for a decision), and the core is open.
func (c *Core) process(m *Message) error {
	switch {
	case m.Type == MsgDecision:
		return c.stepDecision(m)
	case int64(m.From) == int64(c.self):
		return c.stepOwnEcho(m)
	case m.Type == MsgPrePrepare:
		return c.stepPrePrepare(m)
	case m.Type == MsgViewChange:
		return c.stepViewChange(m)
	case m.Type == MsgNewView:
		return c.stepNewView(m)
	default:
		return c.stepVote(m)
	}
}

// stepStale answers a validator that is behind with the decision it is missing. Precondition:
// m.Height < c.height.
func (c *Core) stepStale(m *Message) error {
	stale := fmt.Errorf("%w: %v for height %d, deciding %d", ErrStaleHeight, m.Type, m.Height, c.height)
	if m.Type == MsgDecision || c.self < 0 || int64(m.From) == int64(c.self) {
		return stale
	}
	d := c.decidedAt(m.Height)
	if d == nil {
		return stale // too old: the node's block sync serves it
	}
	// The slowest validator's votes routinely arrive just after the others decide; it will decide
	// from the same votes. Only a peer still voting for the height half a retransmit period later
	// lags, and only then is the whole block worth sending. A view change waits too: a validator
	// that timed out resends it within a retransmit period, while answering at once let a hostile
	// validator that sends view changes for its own height without pause (it is a moment behind
	// at every height) have every honest node broadcast every block twice.
	if c.now-d.at < uint64(max(c.retransmitTicks/2, 1)) {
		// Still, its author is alive. Not counting such votes made the validator that is always
		// heard last look silent after two view timeouts, and on an idle chain the others cut
		// its next turn short while it waited for transactions (4-slowest-idle). On a node the
		// topic validator has verified the signature already (Config.Memo).
		if checkAuth(c.chainID, c.vals, m, c.sigs) == nil {
			c.noteHeard(m)
		}
		return stale
	}
	// Only a signed message proves the peer lags; anything else could make us send a block for free.
	if err := checkAuth(c.chainID, c.vals, m, c.sigs); err != nil {
		return err
	}
	c.noteHeard(m)
	// Lag only if its author has left the view that decided the height: it cannot finish the
	// height from votes already on their way and waits on a decision. A message of that view or
	// an earlier one may have been sent just before its author decided and spent a hop or two
	// on the wire; counting it took an honest leader a few ticks late for one that lagged
	// (4-replay-idle, seed 331). A relayer behind passes on what its author sent before
	// catching up, so a relayed copy never counts.
	if !m.Relayed && m.View > d.c.Certificate.View {
		c.lagAt[m.From], c.lagTick[m.From] = c.height, c.now
	}
	c.sendDecision(d)
	return stale
}

// stepFuture buffers a message for a height the core has not entered. Precondition:
// c.height <= m.Height <= c.height+MaxFutureHeights, and m.Height > c.height or the core is not
// open yet.
func (c *Core) stepFuture(m *Message) error {
	if m.Type == MsgDecision {
		// One decision ahead is all a node that is about to catch up can use.
		if m.Height > c.height+1 {
			return fmt.Errorf("%w: decision for height %d, deciding %d", ErrFutureHeight, m.Height, c.height)
		}
	} else {
		// Every height is entered in view 0; a view change at a height this node has not
		// reached is settled by a decision (retransmitted to it) sooner than it could join.
		if m.View != 0 {
			return fmt.Errorf("%w: %v for future height %d view %d", ErrWrongView, m.Type, m.Height, m.View)
		}
		// Who leads a height a schedule decides is known only once the height opens; the
		// buffered proposal is checked then (stepPrePrepare), and one slot per validator
		// bounds what non-leaders can park here.
		if m.Type == MsgPrePrepare && c.schedule == nil && m.From != c.vals.Leader(m.Height, 0) {
			return fmt.Errorf("%w: pre-prepare for height %d from validator %d", ErrNotLeader, m.Height, m.From)
		}
		if int64(m.From) == int64(c.self) {
			return fmt.Errorf("%w: own %v echoed back", ErrDuplicate, m.Type)
		}
	}
	if err := checkAuth(c.chainID, c.vals, m, c.sigs); err != nil {
		return err
	}
	c.noteHeard(m)
	ev, err := c.future.add(m)
	c.recordEquivocation(ev)
	c.maybeCatchUp()
	return err
}

// maybeCatchUp: a validator without the proposal of its height that has heard, two heights or
// more above it, validators holding more than a third of the power knows the height is decided
// (an honest one among them moved on) and that the proposal will not come again (a block is
// resent only when the chain is idle). Instead of waiting out view 0 it moves to view 1 at once:
// its view change, stale for the others, gets it the decision (stepStale), and what it buffered
// for the next heights may then decide those too (issue #9: a validator that had just caught up
// by block sync, its core restarted mid-height, trailed a busy chain by a few blocks for 20 s).
// One height above is not enough: the slowest validator routinely sees the next height's first
// messages before its last commits, and its big proposal may come after small votes. Timing
// only: any validator may time out whenever it likes. Precondition: none.
func (c *Core) maybeCatchUp() {
	r := c.round
	if c.self < 0 || !c.open || r.view != 0 || r.proposal != nil || c.view != 0 {
		return
	}
	var power uint64
	for i, h := range c.heardHeight {
		if h > c.height+1 {
			power += c.vals.Validators[i].Power
		}
	}
	if power > c.total-power-power {
		c.startViewChange(1, LeftByAhead)
	}
}

// stepDecision adopts a certified value. Precondition: m is a decision for c.height whose
// certificate has been verified, and the core is open.
func (c *Core) stepDecision(m *Message) error {
	check := c.app.CheckProposal
	if d, ok := c.app.(DecisionChecker); ok {
		check = d.CheckDecision
	}
	if err := check(m.Height, m.Value); err != nil {
		// A quorum committed a value our application rejects: our state or software differs from
		// theirs. Nothing in consensus can fix that; the node should alert.
		return fmt.Errorf("%w: certified value for height %d: %w", ErrInvalidValue, m.Height, err)
	}
	c.commit(m.Value, *m.Certificate)
	return nil
}

// stepOwnEcho handles a message signed with this node's key, which gossip may echo back.
// Precondition: m is authenticated and m.From == c.self.
func (c *Core) stepOwnEcho(m *Message) error {
	if d, ok := c.round.signed[m.Type]; ok && d != m.Digest {
		// We never sign two digests for one slot, so another process holds our key.
		return fmt.Errorf("%w: a %v signed with this node's key that it did not sign; is the key in use elsewhere?", ErrEquivocation, m.Type)
	}
	// Not counted even if we signed nothing here: after a restart without the WAL (issue #3)
	// counting it could pair with a different vote we sign now.
	return fmt.Errorf("%w: own %v echoed back", ErrDuplicate, m.Type)
}

// stepPrePrepare accepts the leader's proposal. Precondition: m is an authenticated PrePrepare for
// the current slot from another validator.
func (c *Core) stepPrePrepare(m *Message) error {
	r := c.round
	if m.From != r.leader {
		return fmt.Errorf("%w: pre-prepare for height %d view %d from validator %d, leader is %d", ErrNotLeader, m.Height, m.View, m.From, r.leader)
	}
	if !r.newView {
		return fmt.Errorf("%w: a pre-prepare for view %d comes inside a new view", ErrMalformed, m.View)
	}
	if p := r.proposal; p != nil {
		if p.Digest == m.Digest {
			return fmt.Errorf("%w: pre-prepare for height %d view %d", ErrDuplicate, m.Height, m.View)
		}
		if !r.caughtLeader {
			r.caughtLeader = true
			c.recordEquivocation(&Evidence{First: *p, Second: *m})
		}
		return fmt.Errorf("%w: leader %d proposed two values for height %d view %d", ErrEquivocation, m.From, m.Height, m.View)
	}
	for _, t := range []MsgType{MsgPrepare, MsgCommit} {
		if d, ok := r.signed[t]; ok && d != m.Digest {
			// Before a restart this validator voted for another proposal of this leader: this one
			// is the leader's second, and voting for it would sign two things for one slot.
			return fmt.Errorf("%w: leader %d proposed %s for height %d view %d; this validator's %v is for %s", ErrEquivocation, m.From, m.Digest, m.Height, m.View, t, d)
		}
	}
	return c.acceptProposal(m, true)
}

// acceptProposal checks the leader's proposal with the application and prepares it; fresh says
// that the leader made the value (it is not re-proposed from a prepared certificate).
// Precondition: m is the leader's authenticated PrePrepare for the current slot, r.newView is
// set, and this validator signed nothing conflicting with it.
func (c *Core) acceptProposal(m *Message, fresh bool) error {
	if err := c.checkProposal(m.Height, m.From, fresh, m.Value); err != nil {
		err = fmt.Errorf("%w: proposal for height %d: %w", ErrInvalidValue, m.Height, err)
		if fresh && c.self >= 0 {
			// The leader signed a value of its own that the application refuses. Its checks are
			// deterministic over the chain, so every honest validator refuses it too, and none
			// will prepare in this view: leave it now instead of waiting out its timeout (issue
			// #9: a leader proposing each sender's transactions in descending nonce order cost a
			// whole view timeout at each of its turns). Leaving a view early is always safe; a
			// validator alone in leaving it waits for the others, or for the decision.
			c.startViewChange(c.view+1, LeftByInvalid)
		}
		return err
	}
	c.round.proposal = m
	c.enterPrepare()
	return nil
}

// checkProposal asks the application about a proposal by proposer: with the proposer if the
// value is fresh and the application checks proposers (ProposerChecker).
func (c *Core) checkProposal(height uint64, proposer uint32, fresh bool, value []byte) error {
	if pc, ok := c.app.(ProposerChecker); ok && fresh {
		return pc.CheckProposalBy(height, proposer, value)
	}
	return c.app.CheckProposal(height, value)
}

// stepVote counts a Prepare or Commit. Precondition: m is an authenticated vote for the current
// slot from another validator.
func (c *Core) stepVote(m *Message) error {
	t := c.round.prepares
	if m.Type == MsgCommit {
		t = c.round.commits
	}
	ev, err := t.add(m, c.vals.Validators[m.From].Power)
	if err != nil {
		c.recordEquivocation(ev)
		return err
	}
	if m.Type == MsgPrepare {
		c.maybePrepared()
	} else {
		c.maybeCommitted()
	}
	return nil
}

// enterHeight opens c.height: asks for a proposal if this node leads, then replays what arrived
// early. Precondition: every height below c.height is applied (at New, or at Advance after the
// node handled the last Committed), and c.round is the fresh round for (c.height, 0).
func (c *Core) enterHeight() {
	c.openLeaders()
	c.open = true
	c.viewSince = c.now
	c.maybeArmTimer()
	r := c.round
	if r.view == 0 && int64(r.leader) == int64(c.self) && r.proposal == nil { // a restored proposal stands
		r.requested = true
		c.propose = &ProposalRequest{Height: r.height, View: r.view}
	}
	h := c.height
	for _, m := range c.future.take(h) {
		if !c.open || c.height != h {
			return // decided by a buffered decision; the rest is stale
		}
		if m.Type != MsgDecision && m.View != c.view {
			continue // resumed in a later view after a restart
		}
		_ = c.process(m) // rejections of early messages matter to no one now
	}
	if c.open && c.height == h && r.view > 0 {
		c.maybeNewView() // resumed mid view change after a restart
	}
	if c.open && c.height == h {
		c.maybeCatchUp() // what arrived early may show the others are past this height
	}
}

// enterPrepare votes for the accepted proposal. Precondition: r.proposal is set.
func (c *Core) enterPrepare() {
	if c.self >= 0 {
		c.signOnce(MsgPrepare, c.round.proposal.Digest, nil)
	}
	c.maybePrepared()
}

// maybePrepared moves to commit once the proposal has a quorum of prepares. Precondition: none.
func (c *Core) maybePrepared() {
	r := c.round
	if r.prepared || r.proposal == nil || !isQuorum(r.prepares.power[r.proposal.Digest], c.total) {
		return
	}
	c.enterCommit()
}

// enterCommit commits to the prepared proposal. Precondition: the proposal holds a quorum of
// prepares (PBFT's "prepared" predicate).
func (c *Core) enterCommit() {
	r := c.round
	r.prepared = true
	c.recordPrepared()
	if c.self >= 0 {
		n := len(c.persist)
		c.signOnce(MsgCommit, r.proposal.Digest, nil)
		if len(c.persist) > n {
			// The WAL copy of the commit carries the prepared certificate, so that after a
			// restart this validator's view changes still carry it: a value it helped commit
			// must not be replaced for want of the proof (PBFT §4.4 keeps P in stable storage).
			c.persist[len(c.persist)-1].Prepared = c.prepared
		}
	}
	c.maybeCommitted()
}

// maybeCommitted decides once a quorum committed the proposal. A node that has not prepared may
// still decide: the honest validators in that quorum saw it prepared, and the certificate proves
// the decision to anyone. Precondition: none.
func (c *Core) maybeCommitted() {
	r := c.round
	if r.proposal == nil {
		return // without the value there is nothing to decide; a Decision will bring it
	}
	d := r.proposal.Digest
	if !isQuorum(r.commits.power[d], c.total) {
		return
	}
	c.commit(r.proposal.Value, r.commits.certificate(r.height, r.view, d))
}

// commit decides value for c.height and moves to the next height, closed until the node applied
// the value. Precondition: the core is open and cert proves value for c.height.
func (c *Core) commit(value []byte, cert Certificate) {
	done := Committed{Height: c.height, Value: value, Certificate: cert}
	c.committed = append(c.committed, done)
	c.decided = append(c.decided, decided{c: done, at: c.now})
	if len(c.decided) > MaxFutureHeights {
		c.decided = slices.Delete(c.decided, 0, len(c.decided)-MaxFutureHeights)
	}
	c.height++
	c.view = 0
	c.timeoutShift = 0
	c.prepared = nil
	c.views.clear()
	clear(c.farViewChanges)
	c.open = false
	c.idle, c.voteIdle = 0, 0
	c.backoff = 1
	// The next height's leaders are known once its parent is applied (openLeaders); until then
	// the round names the round-robin one, and nothing acts on it while the core is closed.
	c.leaders = nil
	c.round = newRound(c.vals, c.height, c.view, c.leaderOf(c.view))
	c.future.dropBelow(c.height)
	c.forgetEvidenceBelow(c.height)
	if c.propose != nil && c.propose.Height < c.height {
		c.propose = nil // decided without our proposal; Propose would now be refused
	}
}

// Propose supplies the value for a slot that a Ready asked for. It checks the value with the
// Application, then signs and emits the PrePrepare and this validator's own Prepare.
func (c *Core) Propose(height, view uint64, value []byte) error {
	r := c.round
	switch {
	case height < c.height:
		return fmt.Errorf("%w: proposal for height %d, deciding %d", ErrStaleHeight, height, c.height)
	case height > c.height:
		return fmt.Errorf("%w: proposal for height %d, deciding %d", ErrFutureHeight, height, c.height)
	case view != c.view:
		return fmt.Errorf("%w: proposal for view %d, in view %d", ErrWrongView, view, c.view)
	case c.self < 0 || int64(r.leader) != int64(c.self):
		return fmt.Errorf("%w: height %d view %d is led by validator %d", ErrNotLeader, height, view, r.leader)
	case !c.open || !r.requested:
		return fmt.Errorf("%w: height %d view %d", ErrNotRequested, height, view)
	case r.proposal != nil:
		return fmt.Errorf("%w: already proposed for height %d view %d", ErrDuplicate, height, view)
	case len(value) == 0:
		return fmt.Errorf("%w: empty value", ErrInvalidValue)
	}
	if err := c.checkProposal(height, uint32(c.self), true, value); err != nil {
		return fmt.Errorf("%w: own proposal for height %d: %w", ErrInvalidValue, height, err)
	}
	c.propose = nil
	if view > 0 {
		c.sendNewView(value)
		return nil
	}
	pp := c.signOnce(MsgPrePrepare, DigestOf(value), value)
	r.proposal = &pp
	c.enterPrepare()
	return nil
}

// maxRetransmitBackoff caps the retransmission interval at this many times RetransmitTicks.
const maxRetransmitBackoff = 8

// Tick advances the core's clock by one tick.
func (c *Core) Tick() {
	c.now++
	c.idle++
	c.voteIdle++
	if why := c.timer.fires(c); why != "" {
		c.startViewChange(c.view+1, why)
	}
	switch {
	case c.resendSoon:
		c.resendSoon = false
		c.idle, c.voteIdle = 0, 0
		c.retransmit(true)
	case c.idle >= c.retransmitTicks*max(c.backoff, 1):
		c.idle, c.voteIdle = 0, 0
		c.backoff = min(2*max(c.backoff, 1), maxRetransmitBackoff)
		c.retransmit(true)
	case c.voteIdle >= c.retransmitTicks:
		c.voteIdle = 0
		c.retransmit(false)
	}
}

// retransmit resends what this validator signed for the current slot, and relays what others
// signed for it, so that peers that started late or lost messages can finish the height; a full
// one also resends what carries a block and re-broadcasts recent decisions. Precondition: no
// commit for retransmitTicks ticks.
func (c *Core) retransmit(full bool) {
	if c.self < 0 {
		return
	}
	// Messages only: they are already durable.
	for _, m := range c.round.own {
		if (full || !carriesBlock(&m)) && !c.everyoneHas(&m) {
			c.msgs = append(c.msgs, m)
		}
	}
	c.relay(full)
	if !full {
		return
	}
	// A peer that missed the proposal of a height everyone else decided has nothing of its own
	// to retransmit, so nothing prompts stepStale to help it, and if it leads the next height
	// everyone waits for a view change. So a stalled node also offers its recent decisions
	// (rate-limited by sendDecision), which settles such a height sooner.
	for i := range c.decided {
		c.sendDecision(&c.decided[i])
	}
}

// maxRelayBytes bounds what one retransmission relays of other validators' messages (a proposal
// or a view change may carry a whole block).
const maxRelayBytes = 1 << 20

// relay resends, marked Relayed, the other validators' signed messages this node holds for the
// current slot: votes first, then view changes, then the proposal or NewView, within
// maxRelayBytes; only those without a block unless full. A message lost on its way to one validator is then not lost for good when its
// sender crashes or its link to that validator is down (issue #9): any validator that got it
// passes it on. Receivers check the author's signature as for any message. Precondition: this
// node is a validator.
func (c *Core) relay(full bool) {
	r := c.round
	budget := maxRelayBytes
	add := func(m *Message) {
		if m == nil || int64(m.From) == int64(c.self) || (!full && carriesBlock(m)) || c.everyoneHas(m) {
			return
		}
		if size := approxSize(m); size <= budget {
			budget -= size
			cp := *m
			cp.Relayed = true
			c.msgs = append(c.msgs, cp)
		}
	}
	for _, s := range []slots{r.prepares.slots, r.commits.slots, r.viewChangeVotes} {
		for _, m := range s.first {
			add(m)
		}
	}
	if r.newViewMsg != nil {
		add(r.newViewMsg)
	} else if r.view == 0 {
		add(r.proposal)
	}
}

// everyoneHas reports whether m is the current round's proposal (a PrePrepare, or the NewView
// carrying it) and every other validator has acknowledged it: a Prepare or Commit for its digest
// in this view means its sender holds the block. Resending a block they all hold only costs
// them: under load a retransmitted block of hundreds of KB arrived while they were still
// checking the first copy, and took the CPU that finishing the height needed (issue #10).
func (c *Core) everyoneHas(m *Message) bool {
	r := c.round
	if m.Height != r.height || m.View != r.view || (m.Type != MsgPrePrepare && m.Type != MsgNewView) {
		return false
	}
	for v := range c.vals.Validators {
		if int64(v) == int64(c.self) || uint32(v) == r.leader {
			continue
		}
		p, cm := r.prepares.first[v], r.commits.first[v]
		if (p == nil || p.Digest != m.Digest) && (cm == nil || cm.Digest != m.Digest) {
			return false
		}
	}
	return true
}

// carriesBlock reports whether m carries a proposed value: a proposal, a NewView, or a view change
// with its prepared certificate.
func carriesBlock(m *Message) bool {
	return len(m.Value) > 0 || m.Prepared != nil || m.Proposal != nil
}

// approxSize is roughly the encoded size of m, for relay's budget.
func approxSize(m *Message) int {
	n := 160 + len(m.Value)
	if p := m.Prepared; p != nil {
		n += 160 + len(p.PrePrepare.Value) + 80*len(p.Prepares)
	}
	if m.Proposal != nil {
		n += approxSize(m.Proposal)
	}
	for i := range m.ViewChanges {
		n += approxSize(&m.ViewChanges[i])
	}
	return n
}
