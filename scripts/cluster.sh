#!/usr/bin/env bash
# `make cluster`: one store server (redis-server, or PostgreSQL with STORE=postgres) and
# two gateway nodes (`serve`) on this machine, no containers. Runs in the foreground;
# Ctrl-C (or SIGTERM) stops all three.
#
#   STORE                  redis (default) or postgres
#   CLUSTER_REDIS_PORT     Redis port (default 6390; never 6379, the system Redis)
#   CLUSTER_POSTGRES_PORT  PostgreSQL port (default 5440; never 5432, the system PostgreSQL)
#   CLUSTER_PORT_A/B       gateway ports (default 8081, 8082)
#   CLUSTER_DIR            working directory: store data, logs, the service key (default: a temp dir)
#   GATEWAY_JWT_SECRET, GATEWAY_SERVICE_KEY  shared by both nodes (default: random for this run)
set -euo pipefail
cd "$(dirname "$0")/.."

store=${STORE:-redis}
redis_port=${CLUSTER_REDIS_PORT:-6390}
postgres_port=${CLUSTER_POSTGRES_PORT:-5440}
port_a=${CLUSTER_PORT_A:-8081}
port_b=${CLUSTER_PORT_B:-8082}
case $store in
  redis)
    if [[ $redis_port == 6379 ]]; then
      echo "cluster: refusing Redis port 6379 (kept for the system Redis); set CLUSTER_REDIS_PORT" >&2
      exit 2
    fi
    command -v redis-server >/dev/null || { echo "cluster: redis-server not found; run \`make system-deps\`" >&2; exit 1; } ;;
  postgres)
    if [[ $postgres_port == 5432 ]]; then
      echo "cluster: refusing PostgreSQL port 5432 (kept for the system PostgreSQL); set CLUSTER_POSTGRES_PORT" >&2
      exit 2
    fi
    # Debian keeps the server binaries off PATH.
    pg_bin=$(pg_config --bindir 2>/dev/null || true)
    if [[ ! -x $pg_bin/initdb ]]; then
      pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    fi
    [[ -n $pg_bin && -x $pg_bin/initdb ]] || { echo "cluster: PostgreSQL (initdb) not found; run \`make system-deps\`" >&2; exit 1; } ;;
  *)
    echo "cluster: STORE must be redis or postgres (got \"$store\")" >&2
    exit 2 ;;
esac
[[ -f dist/cli.js ]] || { echo "cluster: dist/cli.js missing; run \`make build\`" >&2; exit 1; }

dir=${CLUSTER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/auth-gateway-cluster.XXXXXX")}
mkdir -p "$dir"
random() { node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64url"))'; }
secret=${GATEWAY_JWT_SECRET:-$(random)}
service_key=${GATEWAY_SERVICE_KEY:-$(random)}
# The key goes to a private file, never to the terminal or a log.
(umask 077 && printf 'GATEWAY_SERVICE_KEY=%s\n' "$service_key" >"$dir/service-key.env")

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "cluster: stopped" >&2
}
trap stop EXIT
trap 'exit 0' INT TERM

if [[ $store == redis ]]; then
  # AOF (fsync every second): a restarted Redis keeps its sessions.
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync everysec \
    --save '' --loglevel warning >"$dir/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 || { echo "cluster: redis-server did not start on port $redis_port (see $dir/redis.log)" >&2; exit 1; }
  gateway_store="redis://127.0.0.1:$redis_port"
  store_where="redis 127.0.0.1:$redis_port"
else
  # initdb and postgres refuse to run as root: as root, they run as the postgres user.
  as_server=()
  if [[ $(id -u) == 0 ]]; then
    as_server=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    chown postgres: "$dir"
  fi
  if [[ ! -f $dir/pgdata/PG_VERSION ]]; then
    "${as_server[@]}" "$pg_bin/initdb" -D "$dir/pgdata" -U postgres -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
      || { echo "cluster: initdb failed (see $dir/initdb.log)" >&2; exit 1; }
  fi
  "${as_server[@]}" "$pg_bin/postgres" -D "$dir/pgdata" -p "$postgres_port" -k "$dir" -c listen_addresses=127.0.0.1 \
    >"$dir/postgres.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$postgres_port" && break
    sleep 0.05
  done
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$postgres_port" || { echo "cluster: postgres did not start on port $postgres_port (see $dir/postgres.log)" >&2; exit 1; }
  gateway_store="postgres://postgres@127.0.0.1:$postgres_port/postgres?schema=auth_gateway"
  store_where="postgres 127.0.0.1:$postgres_port"
fi

origins="http://127.0.0.1:$port_a,http://127.0.0.1:$port_b,http://localhost:$port_a,http://localhost:$port_b"
for node in a b; do
  port=port_$node
  GATEWAY_STORE="$gateway_store" GATEWAY_JWT_SECRET="$secret" GATEWAY_SERVICE_KEY="$service_key" \
    GATEWAY_DRAIN_DELAY="${GATEWAY_DRAIN_DELAY:-0}" GATEWAY_DRAIN_WINDOW="${GATEWAY_DRAIN_WINDOW:-0}" \
    GATEWAY_NODE_ID="node-$node" GATEWAY_HOST=127.0.0.1 GATEWAY_PORT="${!port}" GATEWAY_ALLOWED_ORIGINS="$origins" \
    node dist/cli.js serve 2>"$dir/node-$node.log" &
  pids+=($!)
done

ready() { node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"; }
for _ in $(seq 300); do
  ready "http://127.0.0.1:$port_a/readyz" && ready "http://127.0.0.1:$port_b/readyz" && break
  sleep 0.1
done
if ! { ready "http://127.0.0.1:$port_a/readyz" && ready "http://127.0.0.1:$port_b/readyz"; }; then
  echo "cluster: a gateway node did not become ready (see $dir/node-a.log, $dir/node-b.log)" >&2
  exit 1
fi

echo "cluster up: node-a ws://127.0.0.1:$port_a  node-b ws://127.0.0.1:$port_b  $store_where"
echo "cluster: service key in $dir/service-key.env; logs in $dir; Ctrl-C stops everything"
# Runs until a signal, or until one of the three dies (then the others are stopped too).
wait -n "${pids[@]}" || true
echo "cluster: a process exited; stopping the rest" >&2
exit 1
