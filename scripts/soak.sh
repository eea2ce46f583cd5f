#!/usr/bin/env bash
# `make soak`: the long versions of the fuzz, fault and history tests (SOAK=1), one file at a time
# (they spawn servers and Redis; the machine may be small), then a table of their figures.
# test/faults/abuse.test.ts runs the issue-14 attacks for SOAK_ABUSE_SECONDS (default 300).
set -uo pipefail
cd "$(dirname "$0")/.."
FIGURES=test/artifacts/figures.jsonl
mkdir -p test/artifacts
rm -f "$FIGURES"
status=0
for f in test/fuzz/*.test.ts test/faults/*.test.ts test/history/*.test.ts; do
  echo "== soak: $f" >&2
  SOAK=1 npx vitest run "$f" --testTimeout=900000 --hookTimeout=120000 || status=1
done
echo
echo "== soak figures (also in $FIGURES)"
node -e '
const fs = require("node:fs");
const lines = fs.existsSync(process.argv[1]) ? fs.readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean) : [];
for (const l of lines) {
  const { name, soak, ...fig } = JSON.parse(l);
  console.log(`\n${name}`);
  for (const [k, v] of Object.entries(fig)) console.log(`  ${k.padEnd(34)} ${typeof v === "object" ? JSON.stringify(v) : v}`);
}
' "$FIGURES"
exit $status
