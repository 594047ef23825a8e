# Chasqui — store-and-forward of observatory operations records.
# `make help` lists the targets. Everything the project needs is installed
# into bin/ by the targets themselves.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

MODULES      := gen internal central edge systest
# deploy/test is a module of its own (outside go.work): Prometheus'
# rule parser and compose-go must not move the services' dependencies.
ALL_MODULES  := $(MODULES) deploy/test
TOOLS        := $(CURDIR)/bin/tools
BUF_VERSION  := v1.75.0
PGG_VERSION  := v1.36.12
PGGG_VERSION := v1.6.2
GO_TEST_FLAGS ?= -race -count=1 -timeout 15m
export PATH := $(TOOLS):$(PATH)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(TOOLS)/buf:
	GOBIN=$(TOOLS) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PGG_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PGGG_VERSION)

.PHONY: tools
tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc ## install buf and the protoc plugins (pinned) into bin/tools

PY_GEN       := clients/python/chasqui

.PHONY: generate
generate: tools ## regenerate gen/ (Go) and the Python client's stubs from proto/
	find gen -name '*.pb.go' -delete
	buf generate
	cd gen && go mod tidy
	./scripts/gen-python.sh

.PHONY: verify-generated
verify-generated: generate ## fail when gen/ or the Python stubs are stale
	@git diff --exit-code --stat -- gen $(PY_GEN) || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen $(PY_GEN))" || { git status --porcelain -- gen $(PY_GEN); echo "generated code has untracked files: run 'make generate' and commit"; exit 1; }

.PHONY: build
build: ## build chasqui-central, chasqui-edge and chasqui into bin/
	cd central && go build -o ../bin/ ./cmd/...
	cd edge && go build -o ../bin/ ./cmd/...

.PHONY: lint
lint: $(TOOLS)/buf ## buf lint, go vet and gofmt
	buf lint
	for m in $(MODULES); do (cd $$m && go vet ./...); done
	cd deploy/test && GOWORK=off go vet ./...
	@out=$$(gofmt -l $(MODULES)); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }

.PHONY: breaking
breaking: $(TOOLS)/buf ## buf breaking against the newest release tag (v*); nothing to do before the first release
	./scripts/buf-breaking.sh

.PHONY: verify-modules
verify-modules: ## each module is tidy and builds on its own (GOWORK=off)
	for m in $(ALL_MODULES); do (cd $$m && GOWORK=off go mod tidy -diff && GOWORK=off go build ./... && GOWORK=off go vet ./...); done

.PHONY: test
test: ## run all tests against a throwaway PostgreSQL (started by the tests), fault suite short form and Python client included
	./scripts/check-postgres.sh
	./scripts/check-python.sh
	for m in $(MODULES); do (cd $$m && go test $(GO_TEST_FLAGS) ./...); done
	$(MAKE) test-deploy

.PHONY: test-python
test-python: ## the Python client's tests (pytest against a real edge, central and PostgreSQL, driven by systest/e2e)
	./scripts/check-postgres.sh
	./scripts/check-python.sh
	cd systest && go test -count=1 -timeout 15m -run '^TestPythonClient$$' -v ./e2e/

.PHONY: test-deploy
test-deploy: ## check docker-compose.yml, alert rules, systemd units and env examples against the real binaries
	cd deploy/test && GOWORK=off go test $(GO_TEST_FLAGS) ./...

.PHONY: test-faults
test-faults: ## the long fault suite (outages of minutes, many kills); the short form runs in `make test`
	./scripts/check-postgres.sh
	cd systest && CHASQUI_FAULTS=long go test -race -count=1 -timeout 60m -v ./e2e/
	cd systest && CHASQUI_FAULTS=long go test -race -count=1 -timeout 60m -v ./powercut/ | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|POWERCUT|history:'

.PHONY: bench
bench: ## benchmarks with their reference points in the same run; prints `BENCH <name> <value> <unit>` lines
	./scripts/check-postgres.sh
	cd central && go run ./bench | grep '^BENCH'
	cd edge && go run ./bench | grep '^BENCH'

.PHONY: dist
dist: ## versioned release tarball dist/chasqui-<version>-linux-amd64.tar.gz (static, stamped binaries, systemd units)
	./scripts/dist.sh

.PHONY: run
run: build ## start PostgreSQL, central and edge locally (data in run/); Ctrl-C stops
	./scripts/run.sh
