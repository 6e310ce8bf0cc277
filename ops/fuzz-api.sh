#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis: starts a release `quire serve`
# on a throwaway data directory, then checks that no generated request (valid or not) gets a 5xx,
# and that every response matches the documented schema and content type.
#   ops/fuzz-api.sh [max-examples per operation, default 100]
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-100}
command -v st >/dev/null 2>&1 || pip install -q schemathesis
cargo build --release -q
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
QUIRE_ADMIN_USER=admin QUIRE_ADMIN_PASSWORD=fuzz-admin-password QUIRE_API__RATE_LIMIT_PER_SECOND=0 \
  target/release/quire --data-dir "$dir/data" serve --listen "127.0.0.1:$port" >"$dir/out.log" 2>"$dir/err.log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening" "$dir/out.log" 2>/dev/null && break
  sleep 0.1
done
st run "http://127.0.0.1:$port/openapi.json" --auth admin:fuzz-admin-password \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "$examples"
