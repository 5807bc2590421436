# Tandem — make targets. `make run` and `make test` are the two commands a
# newcomer needs; both install what they need through `make deps`.
SHELL := /bin/bash
GO ?= go
DEPS := $(CURDIR)/.deps
ONNXRUNTIME_LIB ?= $(DEPS)/onnxruntime/libonnxruntime.so.1
export ONNXRUNTIME_LIB
MODEL_DIR ?= $(CURDIR)/models/default
# The public datasets (../shared/datasets; optional: training and tests use
# them when present). scripts/datasets-dir.sh also finds them for a clone of
# a local checkout.
TANDEM_DATASETS ?= $(shell bash scripts/datasets-dir.sh)
export TANDEM_DATASETS
BIN := $(CURDIR)/bin/tandem
GOFLAGS_TEST ?= -count=1

.PHONY: help deps deps-onnxruntime deps-postgres deps-tools build run test lint bench models eval eval-bot clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## deps: install ONNX Runtime, PostgreSQL+pgvector for tests, Chromium and staticcheck (idempotent)
deps: deps-onnxruntime deps-postgres deps-tools

deps-onnxruntime:
	@bash scripts/deps-onnxruntime.sh

deps-postgres:
	@bash scripts/deps-postgres.sh

deps-tools:
	@bash scripts/deps-tools.sh

## build: compile the tandem binary into bin/
build:
	$(GO) build -o "$(BIN)" ./cmd/tandem

## models: train the default demo models into models/default (reproducible, fixed seed)
models: build deps-onnxruntime
	@bash scripts/models.sh "$(BIN)" "$(MODEL_DIR)"

## run: start the server with the embedded default (in-memory stores, demo knowledge, default models)
run: deps-onnxruntime models
	"$(BIN)" serve --models "$(MODEL_DIR)" --onnxruntime-lib "$(ONNXRUNTIME_LIB)"

## test: install what is needed, then run every test against the real components
test: deps models
	TANDEM_REQUIRE_REAL=1 TANDEM_MODEL_DIR="$(MODEL_DIR)" TEST_DATABASE_URL="$$(cat "$(DEPS)/test-database-url")" \
	  $(GO) test $(GOFLAGS_TEST) -race -timeout 20m ./...

## lint: go vet and staticcheck
lint: deps-tools
	$(GO) vet ./...
	"$(DEPS)/bin/staticcheck" ./...

## bench: run the Go benchmarks (figures go to docs/benchmarks.md by hand, with the machine and date)
bench: deps models
	TANDEM_MODEL_DIR="$(MODEL_DIR)" TEST_DATABASE_URL="$$(cat "$(DEPS)/test-database-url")" \
	  $(GO) test -run '^$$' -bench . -benchmem ./...

## eval: evaluate the default models on the held-out public datasets
eval: build models
	@bash scripts/eval.sh "$(BIN)" "$(MODEL_DIR)"

## eval-bot: the whole demo bot (answers, handoffs, latency) on held-out messages
eval-bot: build models
	"$(BIN)" eval-bot --models "$(MODEL_DIR)" --onnxruntime-lib "$(ONNXRUNTIME_LIB)" --log-level error --data tandem:eval/data/demo-bot.yml

clean:
	rm -rf bin models/default models/build
