# highwater — build, test, demo, bench.
GO        ?= go
BIN       ?= bin/highwater
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Each fuzz target runs this long in `make test` (CI); run `make fuzz FUZZTIME=10m` for more.
FUZZTIME  ?= 10s

.PHONY: build test unit race fuzz demo bench vet fmt clean check-deploy

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/highwater

## test: vet, the whole test suite (unit + end-to-end, real Kafka wire protocol,
## DuckDB and a throwaway PostgreSQL), the race detector over the packages where
## it is affordable, then a short run of every fuzz target.
test: vet unit race fuzz

unit:
	$(GO) test -count=1 -timeout 20m ./...

## race: every test of these packages under the race detector (cgo DuckDB
## included), and the end-to-end tests that run members in-process (the
## others run the highwater binary as a subprocess, which -race does not
## reach, and take minutes). About 2.5 min on 2 cores once compiled; see
## docs/TESTING.md.
RACE_PKGS ?= ./schemas/ ./hlc/ ./model/ ./buffer/ ./processor/ ./sinks/... ./simulator/ ./metrics/ ./config/ ./internal/...
RACE_E2E  ?= ^(TestMirrorEqualsSourceAsOfFrontier|TestTwoMembersShareTheFeed|TestPostgresDownMidFeed|TestFilesSinkLatestPerKeyEqualsSource|TestPoisonRecordStopsWithItsLocation)$$
race:
	$(GO) test -race -count=1 -timeout 15m $(RACE_PKGS)
	$(GO) test -race -count=1 -timeout 15m -run '$(RACE_E2E)' ./integration/

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRow$$' -fuzztime $(FUZZTIME) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzNameEscapeRoundTrip$$' -fuzztime $(FUZZTIME) ./model
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBudget$$' -fuzztime $(FUZZTIME) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzDifferential$$' -fuzztime $(FUZZTIME) ./schemas

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

## check-deploy: validate docker-compose.yml (Debian's docker-compose; no Docker
## engine needed) and every examples/*.yaml with `highwater config check` (with
## no HIGHWATER_* env, so that each file is checked alone).
DOCKER_COMPOSE ?= docker-compose
check-deploy: build
	$(DOCKER_COMPOSE) -f docker-compose.yml config -q
	@for f in examples/*.yaml; do \
	  echo "highwater config check --config $$f"; \
	  env -i PATH="$$PATH" $(BIN) config check --config $$f >/dev/null || exit 1; \
	done

## demo: the whole pipeline on an embedded broker, registry and DuckDB file.
## The first build compiles DuckDB's C++ through cgo: say so before it starts.
demo:
	@echo "Building $(BIN). The first build compiles DuckDB (C++, cgo) and takes 3-4 minutes on 2 cores; later builds take seconds."
	@$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/highwater
	$(BIN) demo

## bench: component benchmarks, then the end-to-end bench, which ends with one
## screen of issue 12's targets (measured, ratio to the raw rates, met or not)
## and the machine's load; figures go to docs/BENCHMARKS.md.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./schemas ./buffer ./sinks/... ./simulator > bin/bench-components.txt || (cat bin/bench-components.txt; exit 1)
	cat bin/bench-components.txt
	$(BIN) bench --components bin/bench-components.txt

clean:
	rm -rf bin highwater-demo highwater-buffer
