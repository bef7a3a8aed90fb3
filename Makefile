# Guild. `make testnet` builds and runs a local 4-validator testnet; `make test` runs the tests.
GO       ?= go
BIN      := bin/guild
DIR      ?= guild-testnet
N        ?= 4
# Packages where goroutines meet run under the race detector; the pure cores run without it, fast.
RACE_PKGS := ./node/... ./p2p/... ./wallet/... ./testnet/... ./cmd/...
PURE_PKGS := ./consensus/... ./state/...

.PHONY: build test bench testnet down status load clean fmt vet

build:
	$(GO) build -o $(BIN) ./cmd/guild

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 8m $(PURE_PKGS)
	$(GO) test -count=1 -race -timeout 8m $(RACE_PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PURE_PKGS) ./p2p/...

testnet: build
	./$(BIN) testnet up --validators $(N) --dir $(DIR)

status: build
	./$(BIN) testnet status --dir $(DIR)

load: build
	./$(BIN) testnet load --dir $(DIR)

down: build
	./$(BIN) testnet down --dir $(DIR)

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
