# auth-gateway: `make run` starts the gateway (in-memory store, dev login on);
# `make test` runs the whole suite. Every target installs what it needs.

SHELL := /bin/bash
NODE_MODULES := node_modules/.package-lock.json

.PHONY: install build run stdio typecheck lint format test test-unit conformance bench bench-quick cluster soak clean system-deps

install: $(NODE_MODULES)

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# dist/ is rebuilt only when a source or compiler setting is newer than its stamp: a `make lint`
# or `make test` after no change starts no compiler.
BUILD_INPUTS := $(shell node scripts/build-inputs.mjs)
BUILT := dist/.built

build: $(BUILT)

$(BUILT): $(NODE_MODULES) $(BUILD_INPUTS)
	npm run -s build

run: build
	@echo "== auth-gateway: serve --dev (POST /autosession dev login is ON: never use --dev in production)" >&2
	node dist/cli.js serve --dev

# stdout carries protocol messages only: the build's output and the recipe's echo go to stderr.
stdio:
	@$(MAKE) --no-print-directory build >&2
	@echo "node dist/cli.js stdio --fixtures test/fixtures/seed-fixtures.json" >&2
	@node dist/cli.js stdio --fixtures test/fixtures/seed-fixtures.json

# redis-server and chromium for the real-component tests (installed when missing).
system-deps:
	@bash scripts/system-deps.sh

# The compiler over every file: src, client, the tests, the benchmarks and the conformance runner
# (tsconfig.test.json, tsconfig.js.json); after build, since the benchmarks import dist/.
typecheck: build
	npm run -s typecheck

# ESLint (typescript-eslint, type-aware: floating and misused promises, exhaustive switches) and
# Prettier's check of the code (.prettierignore leaves prose and data alone), the two at once. Both
# keep a cache of files found clean (node_modules/.cache, Prettier's own there too): a clean clone
# checks everything.
lint: build
	npm run -s lint

# Rewrites the code in Prettier's style.
format: install
	npx prettier --write .

# The conformance cases run inside it, over stdio, WebSocket and HTTP
# (test/conformance/conformance.test.ts: every case passes, every message fits its schema).
test: build system-deps typecheck lint
	npx vitest run

# The cases of test/conformance/cases.json on stdio, over WebSocket (a server per case, driven
# through `connect`) and over HTTP (POST /v1/rpc, driven through http-bridge.mjs), the three at
# once; test/conformance/transports.mjs has each run's skips and why. Builds, installs nothing.
conformance:
	npm run -s build
	node test/conformance/all.mjs

# One store server and gateway nodes (two; CLUSTER_NODES=5 for five) on this machine, no containers (scripts/cluster.sh):
# Redis by default, PostgreSQL with `make cluster STORE=postgres`.
cluster: build system-deps
	STORE=$(STORE) bash scripts/cluster.sh

bench: build system-deps
	node bench/run.js

bench-quick: build system-deps
	node bench/run.js --quick

# Long fuzz and fault runs (100,000 random messages, 10,000 dropped connections, repeated
# kill -9 of Redis and of a gateway, clients that never read); prints their figures.
soak: build system-deps
	bash scripts/soak.sh

clean:
	rm -rf dist test/artifacts bench/results/*.tmp
