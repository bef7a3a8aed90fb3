# Guild. `make testnet` builds and runs a local 4-validator testnet; `make test` runs the tests.
SHELL    := /bin/bash
GO       ?= go
BIN      := bin/guild
DIR      ?= guild-testnet
N        ?= 4
# Packages where goroutines meet run under the race detector; the pure cores (and the check of
# the deployment files) run without it, fast.
RACE_PKGS := ./node/... ./p2p/... ./wallet/... ./testnet/... ./cmd/...
PURE_PKGS := ./consensus/... ./state/... ./deploy/...

.PHONY: build test bench bench-net bench-statesync soak netns events-load fuzz testnet down status load chaos byzantine-bin byzantine-test v2-bin upgrade-test clean fmt vet

build:
	$(GO) build -ldflags "-X main.commit=$$(git rev-parse HEAD 2>/dev/null)$$(git diff --quiet HEAD 2>/dev/null || echo -modified)" -o $(BIN) ./cmd/guild

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 8m $(PURE_PKGS)
	$(GO) test -count=1 -race -timeout 8m $(RACE_PKGS)

# soak runs the consensus simulator's seeded scenarios many times (SOAK_RUNS main-scenario runs;
# the others scale with it, about 3.6 runs in all per SOAK_RUNS) and prints
# "N runs, 0 safety violations, 0 liveness failures". A failure prints the seed that reproduces it.
SOAK_RUNS ?= 35000
soak:
	set -o pipefail; $(GO) test -count=1 -timeout 0 -run '^TestSimulator$$' -v ./consensus/ -sim.runs=$(SOAK_RUNS) 2>&1 \
		| grep -E '^[0-9]+ runs, |FAIL|seed [0-9]+|reproduce:'

# netns runs 4 validators in their own network namespaces on a bridge, with delay and loss on every
# link, partitions them 2|2 and heals (root and iproute2 needed; nftables for loss where the kernel
# has no netem).
netns:
	set -o pipefail; GUILD_NETNS=1 $(GO) test -count=1 -timeout 10m -run '^TestNetnsPartition$$' -v ./testnet/ 2>&1 \
		| grep -E '^(netns:|--- |PASS|FAIL|ok )|_test.go:[0-9]+:'

# events-load starts a 4-node testnet, puts 2,000 tx/s on it for 60 s while a deliberately slow
# subscriber reads node1's /v1/events (cut off at each stall, it resumes from its last event ID),
# and checks that it gets every event exactly once and that node1's RSS stays under a stated bound
# (about 2 minutes once guild is built).
events-load:
	GUILD_LONG=1 $(GO) test -count=1 -timeout 15m -run '^TestSlowEventSubscriberUnderLoad$$' -v ./testnet/

# fuzz runs every native fuzz target of the module (each decoder of network bytes), one after
# the other, FUZZTIME each, one worker each (the machines are shared). New inputs that widen
# coverage land in the Go build cache; a crasher is written to the package's testdata/fuzz and
# then fails `make test` until fixed. Keep worthwhile new inputs by copying them from
# $(go env GOCACHE)/fuzz into testdata/fuzz/<Target>/.
FUZZTIME ?= 10m
fuzz:
	set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -parallel=1 $$pkg; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PURE_PKGS) ./p2p/...

# bench-net sweeps offered rates on a fresh 4-validator testnet each and prints one table beside the
# ed25519 verify ceiling (guild testnet bench --help); the table also goes to BENCH_OUT as JSON.
BENCH_RATES    ?= 1000,2000,4000,8000,16000
BENCH_DURATION ?= 20s
BENCH_OUT      ?= bench.json
bench-net: build
	./$(BIN) testnet bench --dir guild-bench --rates $(BENCH_RATES) --duration $(BENCH_DURATION) --out $(BENCH_OUT)

# bench-statesync joins a chain of ACCOUNTS accounts (made by transfers) by state sync and by full
# block sync, in process on pebble, and prints the time and bytes of each.
ACCOUNTS ?= 1000000
bench-statesync:
	GUILD_BENCH_ACCOUNTS=$(ACCOUNTS) $(GO) test -run '^$$' -bench JoinStateSyncVsBlockSync -benchtime 1x -timeout 2h ./node/

testnet: build
	./$(BIN) testnet up --validators $(N) --dir $(DIR)

status: build
	./$(BIN) testnet status --dir $(DIR)

load: build
	./$(BIN) testnet load --dir $(DIR)

down: build
	./$(BIN) testnet down --dir $(DIR)

# chaos runs load on the testnet in CHAOS_DIR (made if absent) while, on the schedule CHAOS_SEED
# draws, a node is killed or paused every 30 s and brought back 10 s later; then it checks every
# invariant over the nodes' APIs and exits 1 on a violation. The same seed repeats the run.
# CHAOS_ARGS adds flags (guild testnet chaos --help), e.g. CHAOS_ARGS="--faults all --max-gap 4s".
# The nodes keep running afterwards: make down DIR=$(CHAOS_DIR).
CHAOS_SEED     ?= 1
CHAOS_DURATION ?= 5m
CHAOS_RATE     ?= 1000
CHAOS_DIR      ?= guild-chaos
CHAOS_ARGS     ?=
chaos: build
	./$(BIN) testnet chaos --dir $(CHAOS_DIR) --seed $(CHAOS_SEED) --duration $(CHAOS_DURATION) \
		--rate $(CHAOS_RATE) $(CHAOS_ARGS)

# byzantine-bin builds a guild that can misbehave on purpose (guild node start --byzantine MODE),
# for tests only; the release build (make build) has no such flag.
byzantine-bin:
	$(GO) build -tags byzantine -o bin/guild-byzantine ./cmd/guild

# byzantine-test starts a testnet with one misbehaving validator per mode, briefly each, and checks
# that the chain keeps finalizing and every invariant holds. Not part of make test.
byzantine-test:
	$(GO) test -count=1 -tags byzantine -timeout 20m -run '^TestByzantine' -v ./testnet/

# v2-bin builds a guild that also supports protocol version 2, the test upgrade (docs/operations.md,
# "Rolling upgrades"); upgrade-test performs that upgrade on a 4-node testnet of real processes.
v2-bin:
	$(GO) build -tags guild_v2 -o bin/guild-v2 ./cmd/guild

upgrade-test:
	$(GO) test -count=1 -race -timeout 5m -run '^TestRollingUpgrade$$' -v ./testnet/

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
