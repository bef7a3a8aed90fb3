package testnet

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestScheduleIsSeeded(t *testing.T) {
	o := ScheduleOptions{Seed: 7, Duration: 10 * time.Minute, Interval: 30 * time.Second, Downtime: 10 * time.Second,
		Faults: AllFaults, Nodes: 4}
	a, err := Schedule(o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Schedule(o)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different schedules:\n%v\n%v", a, b)
	}
	if len(a) != 19 { // at 30 s, 60 s, ... 570 s: each ends by 10 min
		t.Fatalf("%d faults, want 19: %v", len(a), a)
	}
	o.Seed = 8
	c, _ := Schedule(o)
	if reflect.DeepEqual(a, c) {
		t.Fatal("seeds 7 and 8 gave the same schedule")
	}
	nodes, faults := map[int]bool{}, map[string]bool{}
	for _, e := range a {
		nodes[e.Node], faults[e.Fault] = true, true
		if e.Downtime != o.Downtime || e.At%o.Interval != 0 {
			t.Fatalf("event %+v off the grid", e)
		}
	}
	if len(nodes) < 3 || len(faults) < 3 {
		t.Fatalf("19 draws hit nodes %v and faults %v: not drawn at random", nodes, faults)
	}
}

// downAt counts the nodes down at time at.
func downAt(events []ChaosEvent, at time.Duration) int {
	n := 0
	for _, e := range events {
		if e.At <= at && at < e.At+e.Downtime {
			n++
		}
	}
	return n
}

func TestScheduleNeverMoreThanMaxDown(t *testing.T) {
	for seed := range uint64(200) {
		for _, tc := range []struct {
			nodes, maxDown int
			interval, down time.Duration
		}{
			{4, 0, 30 * time.Second, 10 * time.Second}, // f = 1
			{4, 1, 5 * time.Second, 12 * time.Second},  // faults would overlap: some slots stay empty
			{7, 0, 3 * time.Second, 10 * time.Second},  // f = 2
			{10, 3, 1 * time.Second, 7 * time.Second},
		} {
			o := ScheduleOptions{Seed: seed, Duration: 5 * time.Minute, Interval: tc.interval, Downtime: tc.down,
				Faults: []string{FaultKill, FaultPause}, Nodes: tc.nodes, MaxDown: tc.maxDown}
			events, err := Schedule(o)
			if err != nil {
				t.Fatal(err)
			}
			limit := tc.maxDown
			if limit == 0 {
				limit = (tc.nodes - 1) / 3
			}
			for _, e := range events {
				if n := downAt(events, e.At); n > limit {
					t.Fatalf("seed %d %+v: %d nodes down at %s, limit %d", seed, tc, n, e.At, limit)
				}
				if e.Node < 1 || e.Node > tc.nodes {
					t.Fatalf("seed %d: node %d of %d", seed, e.Node, tc.nodes)
				}
				if e.At+e.Downtime > o.Duration {
					t.Fatalf("seed %d: fault at %s ends after the run", seed, e.At)
				}
			}
			if len(events) == 0 {
				t.Fatalf("seed %d %+v: no faults", seed, tc)
			}
		}
	}
}

func TestScheduleSparesTheHostileNode(t *testing.T) {
	for seed := range uint64(100) {
		o := ScheduleOptions{Seed: seed, Duration: 4 * time.Minute, Interval: 10 * time.Second, Downtime: 5 * time.Second,
			Faults: []string{FaultKill}, Nodes: 7, Hostile: 3, HostileAt: 2 * time.Minute}
		events, err := Schedule(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.At+e.Downtime > o.HostileAt && e.Node == 3 {
				t.Fatalf("seed %d: the hostile node faulted at %s", seed, e.At)
			}
			if e.At >= o.HostileAt && downAt(events, e.At)+1 > 2 {
				t.Fatalf("seed %d: %d down besides the hostile node at %s", seed, downAt(events, e.At), e.At)
			}
		}
	}
	// With n = 4 the hostile node is the one fault the chain can take: no other fault after it.
	events, _ := Schedule(ScheduleOptions{Seed: 1, Duration: 2 * time.Minute, Interval: 30 * time.Second,
		Downtime: 10 * time.Second, Faults: []string{FaultKill}, Nodes: 4, Hostile: 4, HostileAt: time.Minute})
	for _, e := range events {
		if e.At+e.Downtime > time.Minute {
			t.Fatalf("fault %+v while the hostile node runs", e)
		}
	}
}

func TestScheduleRefusesBadOptions(t *testing.T) {
	good := ScheduleOptions{Duration: time.Minute, Interval: time.Second, Downtime: time.Second, Faults: []string{FaultKill}, Nodes: 4}
	for name, mod := range map[string]func(*ScheduleOptions){
		"unknown fault": func(o *ScheduleOptions) { o.Faults = []string{"explode"} },
		"no interval":   func(o *ScheduleOptions) { o.Interval = 0 },
		"no nodes":      func(o *ScheduleOptions) { o.Nodes = 0 },
		"hostile 9":     func(o *ScheduleOptions) { o.Hostile = 9 },
	} {
		o := good
		mod(&o)
		if _, err := Schedule(o); !errors.Is(err, ErrBadSchedule) {
			t.Errorf("%s: err %v, want ErrBadSchedule", name, err)
		}
	}
	if f, err := ParseFaults("kill, pause,kill"); err != nil || !reflect.DeepEqual(f, []string{"kill", "pause"}) {
		t.Errorf("ParseFaults = %v, %v", f, err)
	}
	if _, err := ParseFaults("kill,melt"); !errors.Is(err, ErrBadSchedule) {
		t.Errorf("ParseFaults(melt): %v", err)
	}
}
