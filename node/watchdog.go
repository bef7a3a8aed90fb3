package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/guild-ledger/guild/consensus"
)

// The stall watchdog: when no block has been finalized for consensus.stall_warn_ms, the node says
// so at WARN every stall_warn_ms, with what it sees (height, view, leader, when each validator
// was last heard from and whether its peer is connected), what it waits for, and what to do; and
// at INFO when the chain moves again. It runs on its own goroutine and asks the loop for the
// core's position over a channel, so a stuck loop is noticed too.

// loopAnswerTimeout is how long a probe waits for the loop (GET /healthz, the watchdog).
const loopAnswerTimeout = 2 * time.Second

func (n *Node) watchdog(ctx context.Context) {
	warnEvery := time.Duration(n.cfg.Consensus.StallWarnMillis) * time.Millisecond
	t := time.NewTicker(min(time.Second, warnEvery/4))
	defer t.Stop()
	w := stallWatch{warnEvery: warnEvery}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p, ok := n.probeLoop(ctx, loopAnswerTimeout)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if !ok {
			if now.Sub(w.lastLoopWarn) >= warnEvery {
				w.lastLoopWarn = now
				n.log.Error("the node's event loop has not answered for "+loopAnswerTimeout.String()+
					": it may be stuck on a slow or failing disk; check the disk, and if this lasts, "+
					"stop the node and report it with its log", "since_last_answer",
					now.Sub(time.UnixMilli(n.health.loopAnswer.Load())).Round(time.Millisecond))
			}
			continue
		}
		w.observe(n, p, now)
	}
}

// stallWatch is the watchdog's memory between checks.
type stallWatch struct {
	warnEvery    time.Duration
	lastWarn     time.Time
	lastLoopWarn time.Time
	began        time.Time // when the last block before the stall was applied
}

// stallThreshold is how long without a block makes a stall: stall_warn_ms, but never less than
// twice the consortium's empty-block interval, since an idle chain commits only that often.
func stallThreshold(warnEvery, emptyAfter time.Duration) time.Duration {
	return max(warnEvery, 2*emptyAfter)
}

func (w *stallWatch) observe(n *Node, p loopProbe, now time.Time) {
	since := n.health.sinceLastBlock(now)
	if since < stallThreshold(w.warnEvery, p.emptyAfter) {
		if n.health.stalled.Swap(false) {
			lasted := time.UnixMilli(n.health.lastBlockMs.Load()).Sub(w.began)
			n.log.Info("consensus stall ended: blocks are finalized again", "height", p.status.Height-1,
				"lasted", lasted.Round(time.Millisecond))
		}
		return
	}
	if !n.health.stalled.Swap(true) {
		w.began, w.lastWarn = now.Add(-since), time.Time{}
	}
	if now.Sub(w.lastWarn) < w.warnEvery {
		return
	}
	w.lastWarn = now
	r := n.stallReport(p, now)
	n.log.Warn("consensus stalled: no block finalized for "+since.Round(100*time.Millisecond).String(),
		"height", p.status.Height, "view", p.status.View, "leader", r.leader,
		"waiting_for", r.waitingFor, "validators", r.validators, "action", r.action)
}

// stallInput is everything a stall report is made from, gathered off the loop.
type stallInput struct {
	status     consensus.Status
	names      []string
	set        consensus.ValidatorSet
	peerIDs    []string // "" when a validator has no bound peer ID
	connected  map[string]bool
	peers      int             // connected peers of any kind
	heardAgo   []time.Duration // -1: never heard since the node started
	silent     time.Duration   // not heard for this long counts as silent
	catchingUp bool
}

// stallReportLines is the text of a stall report.
type stallReportLines struct {
	leader, waitingFor, validators, action string
}

func (n *Node) stallReport(p loopProbe, now time.Time) stallReportLines {
	in := stallInput{
		status:     p.status,
		names:      p.epoch.Names,
		peerIDs:    p.epoch.Peers,
		connected:  map[string]bool{},
		silent:     time.Duration(n.cfg.Consensus.StallWarnMillis) * time.Millisecond,
		catchingUp: n.health.catchingUp.Load(),
	}
	in.set = p.epoch.Set
	if n.host != nil {
		for _, id := range n.host.ConnectedPeers() {
			in.connected[id] = true
		}
		in.peers = len(in.connected)
	}
	hs := n.health.heard.Load()
	for i := range in.names {
		ago := time.Duration(-1)
		if hs != nil && hs.from == p.epoch.From && i < len(hs.at) {
			if ms := hs.at[i].Load(); ms > 0 {
				ago = now.Sub(time.UnixMilli(ms))
			}
		}
		in.heardAgo = append(in.heardAgo, ago)
	}
	return diagnoseStall(in)
}

// quorumCount is the fewest validators of vs whose power makes a quorum (more than two thirds).
func quorumCount(vs consensus.ValidatorSet) int {
	powers := make([]uint64, len(vs.Validators))
	for i, v := range vs.Validators {
		powers[i] = v.Power
	}
	slices.Sort(powers)
	slices.Reverse(powers)
	var sum uint64
	for i, p := range powers {
		sum += p
		if vs.IsQuorum(sum) {
			return i + 1
		}
	}
	return len(powers)
}

// diagnoseStall says what a stalled node waits for and what its operator should do. Pure, so that
// each situation is a table test.
func diagnoseStall(in stallInput) stallReportLines {
	st := in.status
	name := func(i int) string {
		if i >= 0 && i < len(in.names) && in.names[i] != "" {
			return in.names[i]
		}
		return fmt.Sprintf("#%d", i)
	}
	q, total := quorumCount(in.set), len(in.names)
	var out stallReportLines
	out.leader = name(int(st.Leader))

	var vals, silent []string
	alive := 0
	for i := range in.names {
		var s string
		switch {
		case i == st.Self:
			s, alive = name(i)+": this node", alive+1
		case in.heardAgo[i] < 0:
			s = name(i) + ": never heard"
		default:
			s = fmt.Sprintf("%s: heard %s ago", name(i), in.heardAgo[i].Round(100*time.Millisecond))
		}
		if i != st.Self {
			if in.heardAgo[i] >= 0 && in.heardAgo[i] < in.silent {
				alive++
			} else {
				silent = append(silent, name(i))
			}
			switch {
			case i >= len(in.peerIDs) || in.peerIDs[i] == "":
				s += " (no peer ID in genesis)"
			case in.connected[in.peerIDs[i]]:
				s += " (connected)"
			default:
				s += " (not connected)"
			}
		}
		vals = append(vals, s)
	}
	out.validators = strings.Join(vals, "; ")

	self := "this node"
	if st.Self < 0 {
		self = "this node (an observer)"
	}
	quorum := fmt.Sprintf("a quorum needs %d of %d validators and %s hears from %d (itself included)", q, total, self, alive)
	if st.Self < 0 {
		quorum = fmt.Sprintf("a quorum needs %d of %d validators and %s hears from %d", q, total, self, alive)
	}
	switch {
	case in.catchingUp:
		out.waitingFor = "catching up by block sync: peers are ahead and this node is fetching their blocks"
		out.action = "let it catch up (guild_height rises); if it does not, check the block sync lines in this log"
		return out
	case st.View > 0 && !st.Proposal && st.ViewChangeVotes < q:
		out.waitingFor = fmt.Sprintf("view changes: %d of %d validators moved to view %d, a quorum needs %d",
			st.ViewChangeVotes, total, st.View, q)
	case !st.Proposal && st.Self == int(st.Leader):
		out.waitingFor = fmt.Sprintf("its own turn to propose: this node leads view %d", st.View)
	case !st.Proposal:
		out.waitingFor = fmt.Sprintf("the proposal of leader %s for view %d", out.leader, st.View)
	case st.Prepares < q:
		out.waitingFor = fmt.Sprintf("prepares: %d of %d validators, a quorum needs %d", st.Prepares, total, q)
	case st.Commits < q:
		out.waitingFor = fmt.Sprintf("commits: %d of %d validators, a quorum needs %d", st.Commits, total, q)
	default:
		out.waitingFor = "applying the decided block"
	}
	var todo []string
	if in.peers == 0 && total > 1 {
		todo = append(todo, "this node is connected to no peer: check p2p.bootstrap, the network and firewalls "+
			"(the validators must reach each other's p2p ports)")
	}
	switch {
	case len(silent) > 0:
		todo = append(todo, fmt.Sprintf("check that the node of validator %s is running and reachable from this one",
			strings.Join(silent, ", ")))
	case !st.Proposal && st.Self == int(st.Leader):
		todo = append(todo, "this node should propose: look for 'proposing failed' in its log; the others replace it after their view timeout")
	case in.peers > 0:
		todo = append(todo, "every validator is heard from, yet no quorum forms: look for refused messages in the validators' "+
			"logs at debug level (a different genesis or chain ID?) and compare their GET /v1/status")
	}
	out.action = strings.Join(append(todo, quorum), "; ")
	return out
}
