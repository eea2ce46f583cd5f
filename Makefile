# auth-gateway: `make run` starts the gateway (in-memory store, dev login on);
# `make test` runs the whole suite. Every target installs what it needs.

SHELL := /bin/bash
NODE_MODULES := node_modules/.package-lock.json
CONFORMANCE := node test/conformance/run.mjs

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

stdio: build
	node dist/cli.js stdio --fixtures test/fixtures/seed-fixtures.json

# redis-server and chromium for the real-component tests (installed when missing).
system-deps:
	@bash scripts/system-deps.sh

# The compiler over every file: src, client, the tests, the benchmarks and the conformance runner
# (tsconfig.test.json, tsconfig.js.json); after build, since the benchmarks import dist/.
typecheck: build
	npm run -s typecheck

# ESLint (typescript-eslint, type-aware: floating and misused promises, exhaustive switches) and
# Prettier's check of the code (.prettierignore leaves prose and data alone). Both keep a cache of
# files found clean (node_modules/.cache, Prettier's own there too): a clean clone checks everything.
lint: build
	npm run -s lint

# Rewrites the code in Prettier's style.
format: install
	npx prettier --write .

test: build system-deps typecheck lint
	npx vitest run
	$(MAKE) -s conformance

# The cases of test/conformance/cases.json on stdio, then over WebSocket (a server per case,
# driven through `connect`), then over HTTP (POST /v1/rpc, driven through http-bridge.mjs).
# Skipped over ws: the stdio rule for a line 200 times the limit (ws closes such a frame with
# 1009; test/ws/limits.test.ts checks that). Builds, installs nothing.
conformance:
	npm run -s build
	$(CONFORMANCE) -- node dist/cli.js stdio
	$(CONFORMANCE) --skip 'an oversized line' -- test/transport-contract/serve-and-connect.sh
	$(CONFORMANCE) $(HTTP_SKIPS) -- test/transport-contract/serve-and-post.sh

# Skipped over HTTP, which has no connection to push to (subscribe/unsubscribe are error 1001
# there: the cases that subscribe, or wait for a push), no envelope (the bridge writes the
# ends, so envelope errors cannot be sent), an optional msg_id (read as 0), and refuses an
# oversized body unread with 413 (no msg_id from its head). test/http/rpc.test.ts covers each.
HTTP_SKIPS := --skip 'subscri' --skip '^project: idle timeout' --skip '^project: list_sessions: handles' \
	--skip '^project: revoke_user_sessions: counts' --skip '^project: 400 mixed' --skip '^project: envelope errors' \
	--skip 'missing or unreadable msg_id' --skip 'an oversized line is error 12'

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
