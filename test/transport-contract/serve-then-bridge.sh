#!/usr/bin/env bash
# Runs a conformance case over the network: starts `serve` on a free port with this process's
# environment (the case's GATEWAY_* settings; the arguments after MODE go to serve), then
# bridges stdin/stdout to it and exits with the bridge's code. The server is stopped on the
# way out. MODE is the bridge:
#   connect  `connect` as a service (WebSocket): serve-and-connect.sh
#   post     POST /v1/rpc requests with http-bridge.mjs (HTTP): serve-and-post.sh
#   test/transport-contract/serve-then-bridge.sh connect|post [serve arguments]
set -uo pipefail
mode="${1:-}"
shift || true
case "$mode" in
  connect | post) ;;
  *)
    echo "usage: serve-then-bridge.sh connect|post [serve arguments]" >&2
    exit 2
    ;;
esac
name="serve-and-$mode"
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
    echo "$name: serve exited before listening:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.025
done
if [ -z "$url" ]; then
  echo "$name: serve did not start within 10 s" >&2
  exit 1
fi
code=0
if [ "$mode" = connect ]; then
  GATEWAY_SERVICE_KEY="$key" node "$cli" connect "$url" || code=$?
else
  GATEWAY_SERVICE_KEY="$key" node "$root/test/transport-contract/http-bridge.mjs" "${url/#ws:/http:}" || code=$?
fi
exit "$code"
