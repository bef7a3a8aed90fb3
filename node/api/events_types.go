package api

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Event kinds, the SSE "event:" field of each event.
const (
	EventBlock      = "block"
	EventTx         = "tx"
	EventGovernance = "governance" // a transaction whose operation is gov_propose or gov_vote
	EventEvidence   = "evidence"
	// EventCutoff is the last message of a stream the node ends (it is stopping, or its store
	// failed): data {"error": why, "code": unavailable or store_fault}. It has no ID; the
	// subscriber resumes from its last one.
	EventCutoff = "cutoff"
)

// Transaction statuses in tx and governance events.
const (
	EventTxCommitted = "committed"
	EventTxFailed    = "failed" // in a block, but execution refused it: it changed nothing
)

var ErrBadEventID = errors.New("node API: malformed event ID")

// EventID is an event's place in the chain: block height and position within the block.
type EventID struct {
	Height uint64
	Pos    uint64
}

func (id EventID) String() string { return fmt.Sprintf("%d-%d", id.Height, id.Pos) }

// ParseEventID reads "H-P".
func ParseEventID(s string) (EventID, error) {
	hs, ps, ok := strings.Cut(strings.TrimSpace(s), "-")
	h, err1 := strconv.ParseUint(hs, 10, 64)
	p, err2 := strconv.ParseUint(ps, 10, 64)
	if !ok || err1 != nil || err2 != nil || p == math.MaxUint64 {
		return EventID{}, fmt.Errorf("%w: %q: want HEIGHT-POSITION, e.g. 42-0", ErrBadEventID, s)
	}
	return EventID{Height: h, Pos: p}, nil
}

// BlockEventJSON is the data of a block event (position 0).
type BlockEventJSON struct {
	Height        uint64 `json:"height"`
	Hash          string `json:"hash"`
	TimeMs        int64  `json:"time_ms"`
	Proposer      string `json:"proposer"` // the validator's name
	ProposerIndex uint32 `json:"proposer_index"`
	Txs           int    `json:"txs"`
	Evidence      int    `json:"evidence"`
}

// TxEventJSON is the data of a tx or governance event.
type TxEventJSON struct {
	Height uint64 `json:"height"`
	Index  int    `json:"index"` // in the block, from 0 (the event's position is Index+1)
	Hash   string `json:"hash"`
	From   string `json:"from"`
	Op     string `json:"op"`     // the operation, e.g. transfer, asset_mint, gov_propose
	Status string `json:"status"` // committed or failed
	Error  string `json:"error,omitempty"`
	// Accounts are the addresses the transaction touches (see events_touch.go), sender first.
	Accounts []string `json:"accounts"`
	Item     string   `json:"item,omitempty"`  // the item an item operation acts on
	Asset    string   `json:"asset,omitempty"` // the asset an asset or escrow operation moves
}
