#!/usr/bin/env bash
# From an empty data directory to a server whose read models hold all of goodbooks-10k: times
# `quire import goodbooks` (wall clock, peak RSS), then starts `quire serve` on the result and
# polls /status until every projection has applied the whole log, printing the time that took,
# the events per second it amounts to and the server's peak RSS.
#
#   ops/goodbooks-ready.sh GOODBOOKS_DIR [QUIRE_BIN]   # default target/release/quire; needs curl, python3
#
# It measures the embedded default (SQLite) only.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(realpath "${1:?usage: ops/goodbooks-ready.sh GOODBOOKS_DIR [QUIRE_BIN]}")
bin=$(realpath "${2:-target/release/quire}")
port=${PORT:-18091}
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
data="$work/data"

now() { date +%s.%N; }
t0=$(now)
/usr/bin/time -f '%M' -o "$work/import.rss" "$bin" --data-dir "$data" import goodbooks "$src" \
  >"$work/import.out" 2>"$work/import.err"
t1=$(now)
printf 'import      %6.1f s  peak RSS %4d MB\n' "$(echo "$t1 - $t0" | bc)" $(($(cat "$work/import.rss") / 1024))

QUIRE_LOG=warn "$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
status() { curl -sf "127.0.0.1:$port/status" 2>/dev/null || true; }
# Ready once every projection has applied the log as the server found it (the head of its first
# answer): waiting for zero lag could wait for ever, since the summary jobs that the imported books
# start keep appending events for a while.
ready=
goal=
while kill -0 "$pid" 2>/dev/null; do
  s=$(status)
  if [ -n "$s" ]; then
    [ -n "$goal" ] || goal=$(python3 -c 'import json, sys
print(json.loads(sys.argv[1])["event_store"]["head_position"])' "$s")
    caught=$(python3 -c 'import json, sys
ps = json.loads(sys.argv[1])["read_models"]["projections"]
print(int(bool(ps) and min(p["position"] for p in ps) >= int(sys.argv[2])))' "$s" "$goal")
    if [ "$caught" = 1 ]; then ready=$(now); break; fi
  fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "the server stopped:"; tail -20 "$work/serve.err"; exit 1; }
head=$goal
rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
catch=$(echo "$ready - $t1" | bc)
printf 'catch-up    %6.1f s  %d events, %.0f events/s per projection; server peak RSS %d MB\n' \
  "$catch" "$head" "$(echo "$head / $catch" | bc -l)" "$rss"
printf 'total       %6.1f s  (empty directory to every projection at the head)\n' "$(echo "$ready - $t0" | bc)"
