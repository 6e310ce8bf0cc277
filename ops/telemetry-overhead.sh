#!/usr/bin/env bash
# What telemetry costs a serving node: one embedded `quire serve` per configuration (off, /metrics
# on, OTLP with every trace recorded, OTLP at a 10% sampling ratio), each measured with wrk on
# loopback: 10 s of GET /books/{id}, then 10 s of PUT /books/{id} (one book, so one actor
# serializes them). The OTLP collector is a small local HTTP sink that accepts and drops exports.
#
#   ops/telemetry-overhead.sh [QUIRE_BIN]     # default target/release/quire; needs wrk, curl, python3
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/quire}")
port=18090
sink_port=18318
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The OTLP/HTTP sink: 200 to every export, nothing kept.
cat >"$work/sink.py" <<'PY'
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
python3 "$work/sink.py" "$sink_port" &
pids+=($!)

admin=admin password=admin-password-long
run() { # LABEL [SETTING=VALUE...]
  local label=$1 dir
  shift
  dir=$(mktemp -d "$work/node.XXXX")
  env -i PATH="$PATH" "$@" QUIRE_ADMIN_USER=$admin QUIRE_ADMIN_PASSWORD=$password \
    QUIRE_API__RATE_LIMIT_PER_SECOND=0 QUIRE_LOG=warn \
    "$bin" --data-dir "$dir" serve --listen "127.0.0.1:$port" >"$dir/out.log" 2>"$dir/err.log" &
  local pid=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/status" >/dev/null && break; sleep 0.1; done
  local book token
  book=$(curl -sf -u "$admin:$password" -H 'content-type: application/json' \
    -d '{"title":"Bench","author":"A. Writer"}' "127.0.0.1:$port/books" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  token=$(curl -sf -u "$admin:$password" -X POST "127.0.0.1:$port/auth/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  cat >"$dir/put.lua" <<LUA
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"title":"Bench ' .. n .. '"}')
end
LUA
  wrk -t2 -c32 -d3s "http://127.0.0.1:$port/books/$book" >/dev/null   # warm-up
  summary() { awk '/Requests\/sec/ {r=$2} / 99%/ {p=$2} /Non-2xx/ {e=$NF} END {printf "%10s req/s  p99 %8s  non-2xx %s", r, p, (e ? e : 0)}'; }
  printf '%-14s GET %s\n' "$label" "$(wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$port/books/$book" | summary)"
  printf '%-14s PUT %s\n' "$label" "$(wrk -t2 -c32 -d10s --latency -s "$dir/put.lua" "http://127.0.0.1:$port/books/$book" | summary)"
  kill -INT "$pid"
  wait "$pid" || true
}

run off
run metrics QUIRE_TELEMETRY__PROMETHEUS=true
run otlp-all QUIRE_TELEMETRY__OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
run otlp-10pct QUIRE_TELEMETRY__OTLP_ENDPOINT="http://127.0.0.1:$sink_port" QUIRE_TELEMETRY__SAMPLING_RATIO=0.1
