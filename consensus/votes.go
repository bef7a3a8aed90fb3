package consensus

import "fmt"

// slots holds at most one message per validator: the first one seen, which is the one that
// counts. It is how both the vote tallies and the future buffer stay bounded under Byzantine
// senders: a validator can only ever occupy its own slot.
type slots struct {
	first  []*Message
	caught []bool // already reported as equivocating here; one record per validator is enough
}

func newSlots(n int) slots { return slots{first: make([]*Message, n), caught: make([]bool, n)} }

// count is how many validators have a message here.
func (s *slots) count() int {
	n := 0
	for _, m := range s.first {
		if m != nil {
			n++
		}
	}
	return n
}

// put stores m in its sender's slot if the slot is empty. The same digest again is ErrDuplicate;
// a different digest is ErrEquivocation, and the first such conflict also returns the pair.
// Precondition: m is authenticated and m.From is in range.
func (s *slots) put(m *Message) (*Evidence, error) {
	prev := s.first[m.From]
	if prev == nil {
		s.first[m.From] = m
		return nil, nil
	}
	if prev.Digest == m.Digest {
		return nil, fmt.Errorf("%w: %v from validator %d for height %d view %d", ErrDuplicate, m.Type, m.From, m.Height, m.View)
	}
	err := fmt.Errorf("%w: validator %d sent two different %vs for height %d view %d", ErrEquivocation, m.From, m.Type, m.Height, m.View)
	if s.caught[m.From] {
		return nil, err
	}
	s.caught[m.From] = true
	return &Evidence{First: *prev, Second: *m}, err
}

// tally counts one kind of vote (Prepare or Commit) for one (height, view): a validator's first
// vote counts, and the power behind each digest is kept as votes arrive, so a quorum check is a
// lookup.
type tally struct {
	slots
	power map[Digest]uint64
}

func newTally(n int) *tally { return &tally{slots: newSlots(n), power: make(map[Digest]uint64)} }

// add counts m with its sender's power unless the sender has voted already in this tally.
// Precondition: m is an authenticated vote for this tally's (height, view, type).
func (t *tally) add(m *Message, power uint64) (*Evidence, error) {
	ev, err := t.put(m)
	if err != nil {
		return ev, err
	}
	// Distinct validators of a set whose total fits in a uint64: no overflow.
	t.power[m.Digest] += power
	return nil, nil
}

// certificate collects the commit votes for d, in validator order, as VerifyCertificate wants them.
// Precondition: t counts commits for (height, view).
func (t *tally) certificate(height, view uint64, d Digest) Certificate {
	cert := Certificate{Height: height, View: view, Digest: d}
	for i, m := range t.first {
		if m != nil && m.Digest == d {
			cert.Votes = append(cert.Votes, Vote{Validator: uint32(i), Sig: m.Sig})
		}
	}
	return cert
}
