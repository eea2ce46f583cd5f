#!/usr/bin/env bash
# Runs a conformance case over HTTP: starts `serve` on a free port with this process's
# environment (the case's GATEWAY_* settings; extra arguments go to serve), then turns
# stdin/stdout into POST /v1/rpc requests with http-bridge.mjs, and exits with its code. The
# server is stopped on the way out.
#   node test/conformance/run.mjs -- test/transport-contract/serve-and-post.sh
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cli="$root/dist/cli.js"
key="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
log="$(mktemp)"
GATEWAY_SERVICE_KEY="$key" GATEWAY_PORT=0 GATEWAY_HOST=127.0.0.1 GATEWAY_LOG_LEVEL=info \
  GATEWAY_DRAIN_DELAY="${GATEWAY_DRAIN_DELAY:-0}" GATEWAY_DRAIN_WINDOW="${GATEWAY_DRAIN_WINDOW:-0}" \
  node "$cli" serve "$@" 2>"$log" </dev/null &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT

# The server logs {"msg":"listening","url":"ws://127.0.0.1:PORT/"} once the port is open.
url=""
for _ in $(seq 1 400); do
  url="$(grep -o '"url":"ws://[^"]*"' "$log" | head -n 1 | cut -d'"' -f4)"
  [ -n "$url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "serve-and-post: serve exited before listening:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.025
done
if [ -z "$url" ]; then
  echo "serve-and-post: serve did not start within 10 s" >&2
  exit 1
fi
code=0
GATEWAY_SERVICE_KEY="$key" node "$root/test/transport-contract/http-bridge.mjs" "${url/#ws:/http:}" || code=$?
exit "$code"
