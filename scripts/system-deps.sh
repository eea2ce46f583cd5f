#!/usr/bin/env bash
# Installs the system binaries the tests drive for real: redis-server (store and
# multi-node tests), Debian's postgresql (the tests run initdb and postgres themselves,
# on a free port, and never use the packaged service), Debian's chromium (browser
# end-to-end test), openssl (the TLS browser test makes a throwaway certificate), PyYAML
# (the compose file test reads it as YAML) and iproute2 (`ss`: the listener test reads
# the accept queue's length). Idempotent.
set -euo pipefail
has_postgres() {
  local dir
  dir=$(pg_config --bindir 2>/dev/null || true)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
has_postgres || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
python3 -c 'import yaml' >/dev/null 2>&1 || need+=(python3-yaml)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "system-deps: please install: ${need[*]} (apt-get install ${need[*]})" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Keep the packaged services from starting (the tests start their own servers), unless the
# machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  own_policy=1
fi
trap '[ "$own_policy" -eq 1 ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
