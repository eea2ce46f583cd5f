#!/usr/bin/env bash
# Runs a conformance case over WebSocket: `serve`, then `connect` as a service
# (serve-then-bridge.sh; extra arguments go to serve).
#   node test/conformance/run.mjs -- test/transport-contract/serve-and-connect.sh
exec "$(dirname "$0")/serve-then-bridge.sh" connect "$@"
