package node

import (
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
)

// A leader whose signed proposal holds a transaction that would fail (ErrTxWouldFail) proposed
// what a correct leader could not have made. Nothing conflicts, so it is no equivocation to put
// on chain; but the signed proposal proves the offence to anyone holding the chain up to its
// parent, who can execute the block again. The node keeps the last maxOffences, logs each at
// WARN, counts them by validator and serves them at GET /v1/offences.

// maxOffences and maxOffenceBytes (of the blocks they carry) bound the invalid proposals kept for
// GET /v1/offences; the oldest go first.
const (
	maxOffences     = 64
	maxOffenceBytes = 64 << 20
)

// maxEarlyProposals bounds the signed proposals kept while the core buffers them for a height it
// has not entered: a leader may propose a moment before this node has committed the height below.
const maxEarlyProposals = 8

// refusal is a proposal CheckProposal refused for a failing transaction.
type refusal struct {
	height uint64
	digest consensus.Digest
	err    error
}

// Offence is a signed proposal this node refused because a transaction in it would fail.
type Offence struct {
	Validator      string
	ValidatorIndex uint32
	Height, View   uint64
	Reason         string
	Message        consensus.Message // the leader's signed PrePrepare, with the block
	Seen           time.Time
}

// offenceLog keeps the last offences, newest last. The loop adds, the API reads.
type offenceLog struct {
	mu         sync.Mutex
	list       []Offence
	bytes      int // of the kept proposals' values
	limit      int
	limitBytes int
}

func newOffenceLog(limit, limitBytes int) *offenceLog {
	return &offenceLog{limit: limit, limitBytes: limitBytes}
}

// add keeps o unless the same leader's offence for its slot is kept already.
func (l *offenceLog) add(o Offence) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.caughtLocked(o.Height, o.View, o.ValidatorIndex) {
		return false
	}
	l.list = append(l.list, o)
	l.bytes += len(o.Message.Value)
	for len(l.list) > l.limit || len(l.list) > 1 && l.bytes > l.limitBytes {
		l.bytes -= len(l.list[0].Message.Value)
		l.list = slices.Delete(l.list, 0, 1)
	}
	return true
}

// caught reports whether the leader of (height, view) is on record for an invalid proposal there.
func (l *offenceLog) caught(height, view uint64, leader uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.caughtLocked(height, view, leader)
}

func (l *offenceLog) caughtLocked(height, view uint64, leader uint32) bool {
	for i := len(l.list) - 1; i >= 0; i-- {
		if o := &l.list[i]; o.Height == height && o.View == view && o.ValidatorIndex == leader {
			return true
		}
	}
	return false
}

func (l *offenceLog) all() []Offence {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

// signedProposal is the leader's signed PrePrepare that m carries: m itself, or a NewView's.
func signedProposal(m *consensus.Message) *consensus.Message {
	switch {
	case m.Type == consensus.MsgPrePrepare:
		return m
	case m.Type == consensus.MsgNewView && m.Proposal != nil:
		return m.Proposal
	}
	return nil
}

// stepMessage steps a consensus message from the network into the core, and records the leader
// of a proposal refused because a transaction in it would fail.
func (n *Node) stepMessage(msg *consensus.Message) error {
	p := signedProposal(msg)
	if p != nil && n.badProposals.caught(p.Height, p.View, p.From) {
		// This leader already signed an invalid proposal for the slot; another one from it is
		// not worth executing. Its view will time out.
		return errCaughtLeader
	}
	height := n.core.Status().Height
	n.refusals = n.refusals[:0]
	err := n.core.Step(*msg)
	switch {
	case p == nil:
	case errors.Is(err, ErrTxWouldFail):
		// The core authenticated the message before asking CheckProposal about it.
		reason := err
		for _, r := range n.refusals {
			if r.digest == p.Digest {
				reason = r.err // the application's words, without the core's wrapping
			}
		}
		n.recordOffence(p, reason)
	case err == nil && msg.Height > height:
		// Authenticated and buffered: CheckProposal sees it after a later Advance.
		n.early = append(n.early, *p)
		if len(n.early) > maxEarlyProposals {
			n.early = slices.Delete(n.early, 0, len(n.early)-maxEarlyProposals)
		}
	}
	n.refusals = n.refusals[:0]
	return err
}

var errCaughtLeader = errors.New("node: the leader of this slot already proposed an invalid block")

// advanceCore calls the core's Advance, which replays buffered messages for the new height, and
// records the leaders of buffered proposals it refused.
func (n *Node) advanceCore() {
	n.refusals = n.refusals[:0]
	n.core.Advance()
	for _, r := range n.refusals {
		for i := range n.early {
			if p := &n.early[i]; p.Height == r.height && p.Digest == r.digest {
				n.recordOffence(p, r.err)
			}
		}
	}
	n.refusals = n.refusals[:0]
	height := n.core.Status().Height
	n.early = slices.DeleteFunc(n.early, func(m consensus.Message) bool { return m.Height < height })
}

// recordOffence puts a leader's refused signed proposal on record: log, metric, GET /v1/offences.
func (n *Node) recordOffence(p *consensus.Message, reason error) {
	o := Offence{
		Validator:      n.validatorName(p.Height, p.From),
		ValidatorIndex: p.From,
		Height:         p.Height,
		View:           p.View,
		Reason:         reason.Error(),
		Message:        *p,
		Seen:           time.Now(),
	}
	if !n.badProposals.add(o) {
		return
	}
	n.metrics.invalidProposals.WithLabelValues(o.Validator).Inc()
	n.log.Warn("refused a proposal that a correct leader could not have made; the signed proposal is "+
		"kept at GET /v1/offences as proof for the consortium", "validator", o.Validator,
		"index", o.ValidatorIndex, "height", o.Height, "view", o.View, "reason", o.Reason)
}

// handleOffences lists the last invalid proposals this node refused, oldest first.
func (n *Node) handleOffences(w http.ResponseWriter, r *http.Request) {
	list := n.badProposals.all()
	resp := api.OffencesResponse{Offences: make([]api.OffenceJSON, 0, len(list))}
	for i := range list {
		o := &list[i]
		raw, err := consensus.EncodeMessage(&o.Message)
		if err != nil {
			writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
			return
		}
		resp.Offences = append(resp.Offences, api.OffenceJSON{
			Validator: o.Validator, ValidatorIndex: o.ValidatorIndex, Height: o.Height, View: o.View,
			Digest: o.Message.Digest.String(), Reason: o.Reason, Message: hex.EncodeToString(raw),
			Seen: o.Seen.UTC().Format(time.RFC3339Nano),
		})
	}
	writeJSON(w, http.StatusOK, resp)
}
