package consensus

import "fmt"

// MaxFutureHeights is how far above its current height the core buffers messages for replay when
// it gets there: a peer a commit or two ahead is normal (it simply got its quorum first), while
// anything further is refused so that no peer can make the core hold data without bound.
const MaxFutureHeights = 2

// pending holds authenticated messages for one height the core has not entered yet, one slot per
// validator and type, so the whole buffer holds at most MaxFutureHeights × (3n + 1) messages
// however Byzantine the senders are. All are for view 0, the view a height is entered in.
type pending struct {
	prePrepares slots // only the leader's slot, without a leader schedule
	prepares    slots
	commits     slots
	decision    *Message
}

// futureBuffer holds pending messages by height.
type futureBuffer struct {
	n       int
	heights map[uint64]*pending
}

func newFutureBuffer(n int) futureBuffer {
	return futureBuffer{n: n, heights: make(map[uint64]*pending)}
}

// add buffers m. Precondition: m is authenticated, within the buffering window, and a PrePrepare
// comes from the leader of (m.Height, 0) — or, under a leader schedule, from any validator: who
// leads is checked when the height opens and the message is replayed.
func (b *futureBuffer) add(m *Message) (*Evidence, error) {
	p := b.heights[m.Height]
	if p == nil {
		p = &pending{prePrepares: newSlots(b.n), prepares: newSlots(b.n), commits: newSlots(b.n)}
		b.heights[m.Height] = p
	}
	switch m.Type {
	case MsgPrePrepare:
		return p.prePrepares.put(m)
	case MsgPrepare:
		return p.prepares.put(m)
	case MsgCommit:
		return p.commits.put(m)
	case MsgDecision:
		// Any valid certificate proves the decision; a second one adds nothing.
		if p.decision != nil {
			return nil, fmt.Errorf("%w: decision for height %d already buffered", ErrDuplicate, m.Height)
		}
		p.decision = m
		return nil, nil
	}
	return nil, fmt.Errorf("%w: cannot buffer %v", ErrMalformed, m.Type)
}

// take removes and returns the messages buffered for height in the order that gets furthest
// fastest: a decision settles the height outright; otherwise the proposal, then prepares, then
// commits, each by validator index, so replay is deterministic.
func (b *futureBuffer) take(height uint64) []*Message {
	p := b.heights[height]
	if p == nil {
		return nil
	}
	delete(b.heights, height)
	var out []*Message
	if p.decision != nil {
		out = append(out, p.decision)
	}
	for _, s := range []slots{p.prePrepares, p.prepares, p.commits} {
		for _, m := range s.first {
			if m != nil {
				out = append(out, m)
			}
		}
	}
	return out
}

// dropBelow forgets heights that have been decided.
func (b *futureBuffer) dropBelow(height uint64) {
	for h := range b.heights {
		if h < height {
			delete(b.heights, h)
		}
	}
}

// size is the number of buffered messages, for tests.
func (b *futureBuffer) size() int {
	total := 0
	for _, p := range b.heights {
		if p.decision != nil {
			total++
		}
		for _, s := range []slots{p.prePrepares, p.prepares, p.commits} {
			for _, m := range s.first {
				if m != nil {
					total++
				}
			}
		}
	}
	return total
}
