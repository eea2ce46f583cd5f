#!/usr/bin/env bash
# `make cluster`: one store server (redis-server, or PostgreSQL with STORE=postgres) and
# N gateway nodes (`serve`, two by default) on this machine, no containers, each on its own
# port and with its open-file limit raised to the hard limit (one socket per connection).
# Runs in the foreground; Ctrl-C (or SIGTERM) stops them all.
#
#   STORE                  redis (default) or postgres
#   CLUSTER_NODES          how many gateway nodes (default 2, at most 26): node-a, node-b, ...
#   CLUSTER_PORT           the first node's port (default 8081); the others follow (8082, ...)
#   CLUSTER_PORT_A/B       the first two nodes' ports, if set (they override CLUSTER_PORT)
#   CLUSTER_REDIS_PORT     Redis port (default 6390; never 6379, the system Redis)
#   CLUSTER_POSTGRES_PORT  PostgreSQL port (default 5440; never 5432, the system PostgreSQL)
#   CLUSTER_DIR            working directory: store data, logs, the service key (default: a temp dir)
#   GATEWAY_JWT_SECRET, GATEWAY_SERVICE_KEY  shared by all nodes (default: random for this run)
#   other GATEWAY_* variables (GATEWAY_MAX_CONNECTIONS_PER_ADDRESS...) pass to every node
set -euo pipefail
cd "$(dirname "$0")/.."

store=${STORE:-redis}
redis_port=${CLUSTER_REDIS_PORT:-6390}
postgres_port=${CLUSTER_POSTGRES_PORT:-5440}
nodes=${CLUSTER_NODES:-2}
first_port=${CLUSTER_PORT:-8081}
if ! [[ $nodes =~ ^[0-9]+$ ]] || ((nodes < 1 || nodes > 26)); then
  echo "cluster: CLUSTER_NODES must be a number from 1 to 26 (got \"$nodes\")" >&2
  exit 2
fi
if ! [[ $first_port =~ ^[0-9]+$ ]] || ((first_port < 1 || first_port + nodes - 1 > 65535)); then
  echo "cluster: CLUSTER_PORT must be a port number with room for $nodes nodes (got \"$first_port\")" >&2
  exit 2
fi
names=() ports=()
letters=(a b c d e f g h i j k l m n o p q r s t u v w x y z)
for ((i = 0; i < nodes; i++)); do
  names+=("node-${letters[i]}")
  ports+=($((first_port + i)))
done
[[ -n ${CLUSTER_PORT_A:-} ]] && ports[0]=$CLUSTER_PORT_A
[[ -n ${CLUSTER_PORT_B:-} && $nodes -ge 2 ]] && ports[1]=$CLUSTER_PORT_B
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

origins=""
for port in "${ports[@]}"; do origins+="${origins:+,}http://127.0.0.1:$port,http://localhost:$port"; done
# One socket per connection: each node may hold up to the hard limit of open files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for ((i = 0; i < nodes; i++)); do
  GATEWAY_STORE="$gateway_store" GATEWAY_JWT_SECRET="$secret" GATEWAY_SERVICE_KEY="$service_key" \
    GATEWAY_DRAIN_DELAY="${GATEWAY_DRAIN_DELAY:-0}" GATEWAY_DRAIN_WINDOW="${GATEWAY_DRAIN_WINDOW:-0}" \
    GATEWAY_NODE_ID="${names[i]}" GATEWAY_HOST=127.0.0.1 GATEWAY_PORT="${ports[i]}" GATEWAY_ALLOWED_ORIGINS="$origins" \
    node dist/cli.js serve 2>"$dir/${names[i]}.log" &
  pids+=($!)
done

ready() { node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"; }
all_ready() {
  for port in "${ports[@]}"; do ready "http://127.0.0.1:$port/readyz" || return 1; done
}
for _ in $(seq 300); do
  all_ready && break
  sleep 0.1
done
if ! all_ready; then
  echo "cluster: a gateway node did not become ready (see the node-*.log files in $dir)" >&2
  exit 1
fi

up=""
for ((i = 0; i < nodes; i++)); do up+="${names[i]} ws://127.0.0.1:${ports[i]}  "; done
echo "cluster up: $up$store_where"
echo "cluster: service key in $dir/service-key.env; logs in $dir; open files per node: $(ulimit -n); Ctrl-C stops everything"
# Runs until a signal, or until one of the processes dies (then the others are stopped too).
wait -n "${pids[@]}" || true
echo "cluster: a process exited; stopping the rest" >&2
exit 1
