#!/usr/bin/env bash
# Runs Quire's whole test suite: starts the services the tests need if they are down, drops test
# databases left by earlier runs, then `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."

ops/services.sh

admin=${QUIRE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# Each test creates its own database named quire_t_<uuid>; remove the ones a killed run left.
leftovers=$(psql "$admin" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'quire\_t\_%'" || true)
for db in $leftovers; do
  psql "$admin" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
done

cargo test --workspace "$@"
