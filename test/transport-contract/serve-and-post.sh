#!/usr/bin/env bash
# Runs a conformance case over HTTP: `serve`, then each line POSTed to /v1/rpc by
# http-bridge.mjs (serve-then-bridge.sh; extra arguments go to serve).
#   node test/conformance/run.mjs -- test/transport-contract/serve-and-post.sh
exec "$(dirname "$0")/serve-then-bridge.sh" post "$@"
