// Package consensus is Guild's PBFT engine as a pure, deterministic state machine (after etcd-io/raft):
// messages and ticks go in through Step and Tick, and a Ready batch of what to persist, send and
// apply comes out. It has no goroutines, clock, randomness or I/O, and imports nothing of Guild's.
package consensus

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
)

// Digest identifies a proposed value (the block hash): SHA-256 of the value bytes.
type Digest [32]byte

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// DigestOf is the digest consensus uses for a value.
func DigestOf(value []byte) Digest { return sha256.Sum256(value) }

// MsgType names a consensus message kind.
type MsgType uint8

const (
	MsgPrePrepare MsgType = 1 // leader's proposal of a value for (height, view)
	MsgPrepare    MsgType = 2 // "I accept the leader's proposal D for (height, view)"
	MsgCommit     MsgType = 3 // "2f+1 prepared D for (height, view); I commit to it"
	MsgDecision   MsgType = 4 // a decided value with its commit certificate, for nodes that lag
	MsgViewChange MsgType = 5 // "I leave view View-1 or lower of Height for View", with my prepared certificate
	MsgNewView    MsgType = 6 // the leader of (Height, View): a quorum of view changes and its proposal
)

func (t MsgType) String() string {
	switch t {
	case MsgPrePrepare:
		return "pre-prepare"
	case MsgPrepare:
		return "prepare"
	case MsgCommit:
		return "commit"
	case MsgDecision:
		return "decision"
	case MsgViewChange:
		return "view-change"
	case MsgNewView:
		return "new-view"
	}
	return "unknown"
}

// Validator is one member of the validator set, in the order genesis gives.
type Validator struct {
	PubKey ed25519.PublicKey `cbor:"1,keyasint"`
	Power  uint64            `cbor:"2,keyasint"`
}

// ValidatorSet is ordered; a validator is named by its index in it.
type ValidatorSet struct {
	Validators []Validator `cbor:"1,keyasint"`
}

// Vote is one validator's signature inside a Certificate.
type Vote struct {
	Validator uint32 `cbor:"1,keyasint"`
	Sig       []byte `cbor:"2,keyasint"`
}

// Certificate proves that validators holding more than 2/3 of the voting power signed a Commit for
// Digest at (Height, View). Anyone with the validator set can check it offline.
type Certificate struct {
	Height uint64 `cbor:"1,keyasint"`
	View   uint64 `cbor:"2,keyasint"`
	Digest Digest `cbor:"3,keyasint"`
	Votes  []Vote `cbor:"4,keyasint"`
}

// Message is a signed consensus message. Sig covers SignBytes(chainID, m): type, height, view,
// sender and digest (and, on a ViewChange, PreparedView) — never Value, Certificate, Prepared,
// ViewChanges or Proposal, which the digest and their own signatures already bind. A MsgDecision needs no Sig (its certificate is the proof); its From only
// says which validator sent it. Messages handed to Step, and those in a Ready, share their slices
// with the core: treat them as read-only.
type Message struct {
	Type   MsgType `cbor:"1,keyasint"`
	Height uint64  `cbor:"2,keyasint"`
	View   uint64  `cbor:"3,keyasint"`
	From   uint32  `cbor:"4,keyasint"` // validator index
	Digest Digest  `cbor:"5,keyasint"`
	// Value is the proposed block, on MsgPrePrepare and MsgDecision only.
	Value []byte `cbor:"6,keyasint,omitempty"`
	// Certificate is the commit certificate, on MsgDecision only.
	Certificate *Certificate `cbor:"7,keyasint,omitempty"`
	Sig         []byte       `cbor:"8,keyasint"`
	// Prepared is a ViewChange's prepared certificate for Height, if its sender has one; Digest
	// is then the prepared digest and PreparedView the view it was prepared in (both signed),
	// and both are zero without one.
	Prepared     *PreparedProof `cbor:"9,keyasint,omitempty"`
	PreparedView uint64         `cbor:"10,keyasint,omitempty"`
	// ViewChanges and Proposal are a NewView's justification: view changes for (Height, View)
	// from more than two thirds of the power, in ascending sender order (their prepared values
	// left out: the proposal carries the one that matters), and the leader's signed PrePrepare
	// for (Height, View), with its value, whose Digest is the NewView's.
	ViewChanges []Message `cbor:"11,keyasint,omitempty"`
	Proposal    *Message  `cbor:"12,keyasint,omitempty"`
	// Relayed marks another validator's message that a core resends on its retransmission
	// (issue #9): in a Ready, so that the node does not take it for its own (it was never
	// persisted here), and on receipt, so that a crashed validator's messages passed on by others
	// do not make it look alive (see Core.silent). It is a hint, outside the signed bytes: the
	// author's signature is what a receiver checks, and a false hint changes only how long a view
	// lasts.
	Relayed bool `cbor:"13,keyasint,omitempty"`
}

// PreparedProof is PBFT's prepared certificate: the leader's signed PrePrepare for (Height, View)
// and Prepare signatures for its digest from more than two thirds of the power, in ascending
// validator order. Each Vote signs MsgPrepare{Height, View, From: Validator, Digest}.
type PreparedProof struct {
	PrePrepare Message `cbor:"1,keyasint"`
	Prepares   []Vote  `cbor:"2,keyasint"`
}

// Application is what the core asks of the ledger. It is called synchronously from Step and must be
// deterministic: the same height and value give the same answer on every honest node.
type Application interface {
	// CheckProposal returns nil if value is a valid block for height on top of the last committed
	// block (decodes, right height and parent, right state root, within limits).
	CheckProposal(height uint64, value []byte) error
}

// DecisionChecker is an Application that judges a certified value (a Decision's, which a quorum
// has committed) by its own rule, instead of CheckProposal's: a proposal may be refused for what
// a correct leader would not propose, but a decided value is final, and refusing it only leaves
// this node behind. Optional; without it a Decision's value goes through CheckProposal.
type DecisionChecker interface {
	CheckDecision(height uint64, value []byte) error
}

// ProposerChecker is an Application that also judges a fresh proposal by the validator that made
// it: a block names its proposer, and a leader that names another (to hide whose turn was missed)
// is refused. Optional; without it CheckProposal alone judges proposals. A value re-proposed in a
// later view from a prepared certificate is checked with CheckProposal only: the quorum that
// prepared it checked its proposer when it was fresh, and its header names the leader of that
// earlier view.
type ProposerChecker interface {
	CheckProposalBy(height uint64, proposer uint32, value []byte) error
}

// Committed is a decided value with the certificate that proves it.
type Committed struct {
	Height      uint64
	Value       []byte
	Certificate Certificate
}

// ProposalRequest tells the node that this validator leads (Height, View) and must supply a value
// through Propose.
type ProposalRequest struct {
	Height uint64
	View   uint64
}

// Status is the core's position, for the API and metrics.
type Status struct {
	Height uint64 // the height being decided (last committed + 1)
	View   uint64
	Leader uint32 // index of the leader of (Height, View)
	Self   int    // own validator index, or -1 when observing
	// ViewChanges counts the views this core has moved to (by timeout or by joining others), and
	// LeftView says why it left its last view (one of the LeftBy constants), for the node's log.
	ViewChanges uint64
	LeftView    string
	// EvidenceCaught counts the equivocations this core has reported in Ready.Evidence.
	EvidenceCaught uint64
	// Progress of (Height, View), for the node's stall report: whether a proposal was accepted,
	// and how many validators' prepares, commits and view changes to View the core holds.
	Proposal                           bool
	Prepares, Commits, ViewChangeVotes int
}

// Ready is a batch of work for the node, handled in field order (raft's Ready loop): persist, then
// send, then apply, then Advance.
type Ready struct {
	// Persist holds messages this validator signed; they must be durable (the node's WAL) BEFORE
	// Messages are sent, so that a restart never signs something conflicting.
	// Write them as they are: a Commit here carries the prepared certificate behind it
	// (Prepared), which only Config.Restore reads back; the copy in Messages does not.
	Persist []Message
	// Messages are to be broadcast to all validators, after Persist is durable.
	Messages []Message
	// Committed values in height order, each with its certificate, to be stored and executed before
	// Advance; Application.CheckProposal for the next height sees their effects. The core does not
	// touch the next height (messages for it wait in a buffer) until that Advance.
	Committed []Committed
	// Propose, when set, asks the node for a value for this slot (see Core.Propose). After a
	// commit it comes in the Ready that follows the Advance, once the new height is open.
	Propose *ProposalRequest
	// Evidence holds conflicting signed messages this core caught in Step, in canonical form and
	// verified, each handed out once, for the node's evidence pool and gossip. Nothing else in
	// the Ready waits on it, and Advance acknowledges it like the rest.
	Evidence []Evidence
	Status   Status
}

// Why a core left a view (Status.LeftView).
const (
	LeftByTimeout      = "view timeout"
	LeftBySilentLeader = "leader silent for two view timeouts"
	LeftByAwayLeader   = "leader away (behind the height)"
	LeftByDownLeader   = "leader's connection closed"
	LeftByInvalid      = "invalid proposal"
	LeftByJoining      = "more than a third of the power in a later view"
	LeftByAhead        = "more than a third of the power two heights on"
)
