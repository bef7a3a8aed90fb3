package p2p

import (
	"net"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Gossipsub peer scoring for a small permissioned mesh (a consortium of a few to a few dozen
// members, each normally connected to all others).
//
// The thinking behind the numbers:
//   - Every peer is a known organization, so there is no Sybil horde to out-vote and no need for
//     the mesh-delivery penalties (P3, P3b) that public networks use to evict lazy peers: with a
//     handful of peers, flood publishing and direct peering among validators, those penalties
//     mostly fire on honest peers in quiet periods. They are off.
//   - What a member can do wrong is send what honest nodes never relay: messages our validators
//     Reject, forged signatures, messages over the size limit. Each one costs heavily (P4:
//     invalidWeight × count², count decaying with a ~45 s half-life), so a few mistakes are
//     forgiven and a burst is not: 5 invalid messages in quick succession put a peer below
//     DisconnectScore whatever positive score it had built up.
//   - Positive score is small and capped (time in mesh P1, first deliveries P2, at most
//     topicScoreCap over all topics, plus validatorScore from the application): enough to order
//     honest peers, never enough to buy more than a message or two of abuse.
//   - Validators get validatorScore from the application (P5), so the consensus mesh prefers them.
//     A peer that keeps exceeding a topic's rate limit with its own messages loses application
//     score (see rate.go), and so does one the node Penalizes (flood.go).
//   - Colocation (P6) penalises more than colocationThreshold peers on one IP, except on loopback,
//     which the testnet and tests share (whitelisted).
//   - Behaviour penalties (P7: broken IWANT promises, GRAFT during backoff) count mildly, past a
//     threshold.
//   - Below DisconnectScore a peer is disconnected and refused for Config.CoolOff; pubsub keeps its
//     (decaying) score for retainScore, so a peer that comes back still misbehaving goes again.
const (
	invalidWeight       = -20.0
	validatorScore      = 20.0
	topicScoreCap       = 20.0
	colocationWeight    = -5.0
	colocationThreshold = 3
	behaviourWeight     = -1.0
	behaviourThreshold  = 6.0
	retainScore         = 10 * time.Minute

	// Thresholds, all ≤ 0 and ordered as pubsub requires. Below gossipThreshold no IHAVE/IWANT
	// with the peer, below publishThreshold our own messages are not flooded to it, below
	// graylistThreshold its RPCs are ignored.
	gossipThreshold   = -100.0
	publishThreshold  = -200.0
	graylistThreshold = -400.0

	// DisconnectScore is the score below which a peer is disconnected and refused for the
	// cool-off period.
	DisconnectScore = graylistThreshold
	// DefaultCoolOff is how long a peer disconnected for its score is refused by default.
	DefaultCoolOff = time.Minute
	// scoreInspectPeriod is how often scores are read for disconnection and status.
	scoreInspectPeriod = time.Second
)

func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.1,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  50, // +5 after ~1 minute in the mesh
		FirstMessageDeliveriesWeight:   0.5,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      20, // +10
		InvalidMessageDeliveriesWeight: invalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(5 * time.Minute),
		// P3, P3b off (see above): their weights are zero.
	}
}

func peerScoreParams(topics []string, appScore func(peer.ID) float64) *pubsub.PeerScoreParams {
	ts := make(map[string]*pubsub.TopicScoreParams, len(topics))
	for _, t := range topics {
		ts[t] = topicScoreParams()
	}
	_, lo4, _ := net.ParseCIDR("127.0.0.0/8")
	_, lo6, _ := net.ParseCIDR("::1/128")
	return &pubsub.PeerScoreParams{
		Topics:                      ts,
		TopicScoreCap:               topicScoreCap,
		AppSpecificScore:            appScore,
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    colocationWeight,
		IPColocationFactorThreshold: colocationThreshold,
		IPColocationFactorWhitelist: []*net.IPNet{lo4, lo6},
		BehaviourPenaltyWeight:      behaviourWeight,
		BehaviourPenaltyThreshold:   behaviourThreshold,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               pubsub.DefaultDecayInterval,
		DecayToZero:                 pubsub.DefaultDecayToZero,
		RetainScore:                 retainScore,
		SeenMsgTTL:                  seenTTL,
	}
}

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:   gossipThreshold,
		PublishThreshold:  publishThreshold,
		GraylistThreshold: graylistThreshold,
		// No peer exchange in a permissioned network; opportunistic grafting is for large meshes.
		AcceptPXThreshold:           1e9,
		OpportunisticGraftThreshold: 0,
	}
}

// scorekeeper holds the latest scores, computes the application score, and disconnects peers
// whose score falls below DisconnectScore.
type scorekeeper struct {
	h       *Host
	coolOff time.Duration

	mu         sync.Mutex
	scores     map[peer.ID]float64
	validators map[peer.ID]struct{}
}

// appScore is pubsub's application-specific score (P5). Pubsub calls it under its own lock.
func (s *scorekeeper) appScore(p peer.ID) float64 {
	score := -s.h.flood.penalty(p, time.Now())
	s.mu.Lock()
	_, v := s.validators[p]
	s.mu.Unlock()
	if v {
		score += validatorScore
	}
	return score
}

// inspect receives pubsub's periodic scores. Pubsub runs it on a goroutine of its own each time.
func (s *scorekeeper) inspect(scores map[peer.ID]float64) {
	s.mu.Lock()
	s.scores = scores
	s.mu.Unlock()
	for p, score := range scores {
		if score >= DisconnectScore || s.h.host.Network().Connectedness(p) != network.Connected {
			continue
		}
		s.h.gater.block(p, s.coolOff)
		s.h.log.Warn("peer score below threshold: disconnecting and refusing it for the cool-off",
			"peer", p, "score", score, "threshold", DisconnectScore, "cool_off", s.coolOff)
		s.h.scoreDrops.Add(1)
		_ = s.h.host.Network().ClosePeer(p)
	}
}

// score is p's last known score and whether one is known.
func (s *scorekeeper) score(p peer.ID) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.scores[p]
	return v, ok
}
