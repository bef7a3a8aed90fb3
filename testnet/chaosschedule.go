package testnet

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Faults a chaos run injects. Each takes a node down for the run's downtime and brings it back.
const (
	FaultKill    = "kill"    // SIGKILL, then start it again from its data
	FaultPause   = "pause"   // SIGSTOP, then SIGCONT
	FaultWipe    = "wipe"    // SIGKILL, delete its chain data (keys kept), start it empty
	FaultRestart = "restart" // SIGTERM (clean stop), then start it again
	// FaultKillLeader is kill on the validator leading the height being decided when the fault
	// starts (the drawn node if no node answers, or the leader is the hostile one).
	FaultKillLeader = "kill-leader"
	// FaultPartition cuts a node off the network. A real partition needs root (network
	// namespaces: make netns); a chaos run, which runs rootless, pauses the node instead, which
	// its peers cannot tell from a partition (it neither sends nor answers).
	FaultPartition = "partition"
)

// AllFaults are the faults a chaos run knows, in the order the flags list them.
var AllFaults = []string{FaultKill, FaultPause, FaultWipe, FaultRestart, FaultPartition, FaultKillLeader}

// ErrBadSchedule is a chaos schedule that cannot be made from its options.
var ErrBadSchedule = errors.New("testnet: bad chaos schedule")

// ChaosEvent is one fault of a schedule: at At after the run starts, Fault goes to node Node
// (from 1), which comes back Downtime later.
type ChaosEvent struct {
	At       time.Duration `json:"at"`
	Node     int           `json:"node"`
	Fault    string        `json:"fault"`
	Downtime time.Duration `json:"downtime"`
}

// ScheduleOptions say which faults to draw and when.
type ScheduleOptions struct {
	Seed     uint64
	Duration time.Duration // faults start before Duration - Downtime, so each ends within the run
	Interval time.Duration // one fault every Interval, from Interval on
	Downtime time.Duration
	Faults   []string // drawn uniformly
	Nodes    int      // nodes 1..Nodes
	// MaxDown bounds the nodes down at once, counting the hostile node once it is hostile; 0
	// means f = (Nodes-1)/3, the most a BFT chain survives.
	MaxDown int
	// Hostile, if not 0, is a node that turns Byzantine at HostileAt: it counts as faulty from
	// then on and is never picked.
	Hostile   int
	HostileAt time.Duration
}

// Schedule draws a chaos schedule. The same options (seed included) give the same schedule, and
// it never has more than MaxDown nodes faulty at once: a slot whose fault would exceed that is
// left empty.
func Schedule(o ScheduleOptions) ([]ChaosEvent, error) {
	if o.Nodes < 1 || o.Interval <= 0 || o.Downtime <= 0 || len(o.Faults) == 0 {
		return nil, fmt.Errorf("%w: need nodes, a positive interval and downtime, and a fault", ErrBadSchedule)
	}
	for _, f := range o.Faults {
		if !slices.Contains(AllFaults, f) {
			return nil, fmt.Errorf("%w: unknown fault %q (know %s)", ErrBadSchedule, f, strings.Join(AllFaults, ", "))
		}
	}
	maxDown := o.MaxDown
	if maxDown <= 0 {
		maxDown = (o.Nodes - 1) / 3
	}
	if o.Hostile != 0 && (o.Hostile < 1 || o.Hostile > o.Nodes) {
		return nil, fmt.Errorf("%w: hostile node %d of %d", ErrBadSchedule, o.Hostile, o.Nodes)
	}
	rng := mrand.New(mrand.NewPCG(o.Seed, 0x6775696c64)) // "guild": a fixed stream per seed
	var out []ChaosEvent
	for at := o.Interval; at+o.Downtime <= o.Duration; at += o.Interval {
		busy := map[int]bool{} // down at some moment of [at, at+Downtime)
		for _, e := range out {
			if e.At < at+o.Downtime && at < e.At+e.Downtime {
				busy[e.Node] = true
			}
		}
		if o.Hostile != 0 && at+o.Downtime > o.HostileAt {
			busy[o.Hostile] = true
		}
		if len(busy)+1 > maxDown {
			continue
		}
		var free []int
		for k := 1; k <= o.Nodes; k++ {
			if !busy[k] {
				free = append(free, k)
			}
		}
		if len(free) == 0 {
			continue
		}
		out = append(out, ChaosEvent{At: at, Node: free[rng.IntN(len(free))],
			Fault: o.Faults[rng.IntN(len(o.Faults))], Downtime: o.Downtime})
	}
	return out, nil
}

// ParseFaults reads a comma-separated fault list ("kill,pause"); "all" is every fault.
func ParseFaults(spec string) ([]string, error) {
	if spec == "all" {
		return slices.Clone(AllFaults), nil
	}
	var out []string
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(AllFaults, f) {
			return nil, fmt.Errorf("%w: unknown fault %q (know %s, or all)", ErrBadSchedule, f, strings.Join(AllFaults, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no fault in %q", ErrBadSchedule, spec)
	}
	return out, nil
}
