//go:build !byzantine

package node

import (
	"context"

	"github.com/guild-ledger/guild/consensus"
)

// byzantine is empty in a release build: a node built without -tags byzantine has no way to
// misbehave, and `guild node start` has no --byzantine flag. n.byz is always nil here; these
// methods exist only so that the hooks in the loop compile.
type byzantine struct{}

func (*byzantine) outgoing(*Node, *consensus.Message) bool { return false }
func (*byzantine) observe(*consensus.Message)              {}
func (*byzantine) run(context.Context, *Node)              {}
