# Ragplane. `make demo` runs the whole story; `make test` runs every test against real servers.
SHELL := /bin/bash
.DEFAULT_GOAL := help
GO ?= go
STACK := ops/stack.sh
ENV := .ragplane/stack.env
BIN := bin/ragplane

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/ragplane
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/ragplane

up: ## start the local stack (PostgreSQL 17 + pgvector, Redis; installs Prometheus); writes .ragplane/stack.env
	@$(STACK) up

models: ## fetch and verify the local embedding models into the cache outside the clone (ops/models.sh; `up` does it too)
	@ops/models.sh

down: ## stop what `make up` started
	@$(STACK) down

status: ## show the local stack
	@$(STACK) status

# The tests make hundreds of databases: they run the stack in its fast, undurable mode (ops/stack.sh),
# and the services they start in-process allow it (RAGPLANE_ALLOW_UNDURABLE, set in e2etest).
test: ## run every test (unit and integration) against the local stack in its fast mode; a skip fails
	@RAGPLANE_STACK_FAST=1 $(STACK) up
	@source $(ENV) && RAGPLANE_REQUIRE_STACK=1 ops/gotest.sh -race -count=1 -timeout 15m ./...
	@# The 100,000-tenant xDS tests are built without -race only (under it they take minutes).
	@source $(ENV) && RAGPLANE_REQUIRE_STACK=1 ops/gotest.sh -count=1 -timeout 10m -run 'TestColdProxy100k|TestXDSFeedFromCatalog' ./controlplane/...

bench: up ## run the benchmarks (figures and commands in BENCHMARKS.md)
	@source $(ENV) && $(GO) test -run '^$$' -bench . -benchtime 20x -count 1 ./controlplane/provision/local/
	@source $(ENV) && $(GO) test -run '^$$' -bench . -benchtime 3x -count 1 ./controlplane/provision/

bench-propagation: up ## PATCH -> proxy enforcement, cold proxy start, RSS and idle CPU at 100/10k/100k tenants, vs BASELINE_REV (ops/bench/propagation.sh)
	@source $(ENV) && ops/bench/propagation.sh

bench-proxy: ## proxy rps, p50/p99, CPU per request: direct vs nginx vs Ragplane proxy vs BASELINE_REV, added p50 at half load (ops/bench/proxy.sh)
	@ops/bench/proxy.sh

# BENCH_SEARCH_FLAGS passes more flags (go run ./ops/bench/search -h), e.g. '-chunks 20000 -ingest=false -json out.json'.
bench-search: up ## search p50/p95/p99 per mode at 100k chunks of natural text with natural questions vs the old keyword search, ingestion chunks/s vs raw COPY (ops/bench/search)
	@source $(ENV) && $(GO) run ./ops/bench/search -dbpedia '$(EVAL_DATA)/corpus.jsonl' $(BENCH_SEARCH_FLAGS)
.PHONY: bench-search

# A BEIR-format folder outside the clone (never copied into it); EVAL_FLAGS passes more flags
# (go run ./ops/eval -h), e.g. EVAL_FLAGS='-modes keyword,hybrid -limit-queries 10'.
EVAL_DATA ?= ../shared/eval/dbpedia-5k
eval: build up ## retrieval quality: every mode through the real API over EVAL_DATA, nDCG@10 and Recall@100 next to BM25 (ops/eval)
	@source $(ENV) && $(GO) run ./ops/eval -data '$(EVAL_DATA)' -bin $(BIN) $(EVAL_FLAGS)
.PHONY: eval

demo: build ## from nothing: stack, control plane, proxy, two workers, three tenants end to end; stops cleanly
	@ops/demo.sh

demo-up: build ## the demo, then leave everything running for exploring (Ctrl-C stops it)
	@RAGPLANE_DEMO_KEEP=1 ops/demo.sh

prometheus: up ## run Prometheus on 127.0.0.1:9090 scraping the services at their default addresses (ops/prometheus)
	@source $(ENV) && mkdir -p .ragplane/prometheus && "$${PROMETHEUS_BIN:-prometheus}" --config.file=ops/prometheus/prometheus.yml \
		--storage.tsdb.path=.ragplane/prometheus --web.listen-address=127.0.0.1:9090

alerts: up ## check the Prometheus config and alert rules, and run their unit tests (also part of make test)
	@source $(ENV) && "$${PROMTOOL_BIN:-promtool}" check config ops/prometheus/prometheus.yml && \
		"$${PROMTOOL_BIN:-promtool}" test rules ops/prometheus/alerts_test.yml

vet: ## go vet and gofmt
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# staticcheck is pinned here and installed outside the clone, one directory per version (a bump
# installs the new one; nothing is committed or built into the tree). TOOLS may point elsewhere.
STATICCHECK_VERSION := v0.8.2
TOOLS ?= $(shell $(GO) env GOPATH)/tools
STATICCHECK = $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck

$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# The neo4j tag adds the Neo4j integration test (it needs a server to run, not to be checked).
lint: vet $(STATICCHECK) ## go vet, gofmt and staticcheck (installed at the pinned version if missing); what CI checks before the tests
	$(STATICCHECK) -tags neo4j ./...

.PHONY: help build up models down status test bench bench-propagation bench-proxy demo demo-up prometheus alerts vet lint
