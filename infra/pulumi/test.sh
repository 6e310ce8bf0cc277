#!/usr/bin/env bash
# Unit tests of the Pulumi program under Pulumi's mocks: no AWS account, no Pulumi backend.
# Installs the locked dependencies (when node_modules is not already in step with
# package-lock.json), type-checks, runs the tests. Exits non-zero on any failure.
set -euo pipefail

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "infra/pulumi/test.sh: node and npm are required (Node.js 20 or later)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "infra/pulumi/test.sh: Node.js 20 or later is required (found $(node --version))" >&2
  exit 1
fi

cd "$(dirname "${BASH_SOURCE[0]}")"

# npm writes node_modules/.package-lock.json when it installs; if it matches the committed lock
# file, the tree is what `npm ci` would make.
if [ -f node_modules/.package-lock.json ] &&
   node -e '
     const fs = require("fs");
     const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
     const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages;
     for (const [p, v] of Object.entries(want)) {
       if (p === "") continue;
       if (!have[p] && v.optional) continue; // a binary for another platform
       if (!have[p] || have[p].version !== v.version || have[p].integrity !== v.integrity) process.exit(1);
     }
     for (const p of Object.keys(have)) if (!(p in want)) process.exit(1);
   '; then
  echo "== dependencies: node_modules matches package-lock.json"
else
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi

echo "== tsc --noEmit"
npx --no-install tsc --noEmit

echo "== tests (node:test, Pulumi mocks)"
# A backstop: a test that never ends must fail the run, not hold it.
timeout 600 node --import tsx --test tests/*.test.ts
