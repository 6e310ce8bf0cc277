#!/usr/bin/env bash
# Checks the architecture invariants stated in ARCHITECTURE.md against the real dependency graph.
# Fails (exit 1) on the first crate that depends on something it must not.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0

# deps CRATE [--depth N]: the names of the packages in CRATE's normal (non-dev, non-build)
# dependency tree, one per line.
deps() {
  local crate=$1
  shift
  cargo tree -p "$crate" -e normal --prefix none --no-dedupe --all-features "$@" 2>/dev/null \
    | awk '{print $1}' | sort -u
}

# forbid CRATE REASON PKG...: CRATE's tree must contain none of PKG.
forbid() {
  local crate=$1 reason=$2
  shift 2
  local tree
  tree=$(deps "$crate")
  if [ -z "$tree" ]; then
    echo "architecture: cannot read the dependency tree of $crate" >&2
    failed=1
    return
  fi
  for pkg in "$@"; do
    if grep -qx "$pkg" <<<"$tree"; then
      echo "architecture invariant broken: $crate depends on $pkg ($reason)" >&2
      failed=1
    fi
  done
}

forbid quire-domain "domain does no IO" \
  tokio sqlx async-nats axum reqwest hyper ractor tonic eventstore mio
# (axum is absent from this list on purpose: the KurrentDB gRPC client, tonic, pulls it in.)
forbid quire-store "the store knows events, not the domain or the actors" \
  quire-domain quire-actors quire-api ractor async-nats
forbid quire-texts "the text store keeps bytes: no domain, events, actors or HTTP server" \
  quire-domain quire-store quire-actors quire-projections quire-api sqlx axum ractor async-nats
forbid quire-actors "actors know no HTTP" \
  axum hyper reqwest quire-api
forbid quire-summarize "the summary engine does no storage and sends no commands" \
  sqlx eventstore async-nats quire-store quire-actors quire-projections quire-domain quire-api
forbid quire-recs "the recommendation engine is pure computation" \
  tokio sqlx eventstore async-nats axum reqwest quire-store quire-actors quire-projections quire-domain quire-api
forbid quire-projections "projections read the log and write read models, nothing else" \
  axum hyper quire-api quire-actors ractor async-nats

# The API reaches storage only through the ports of quire-store and quire-actors, and commands
# only through the CommandBus trait (it does not know whether they cross NATS).
direct=$(deps quire-api --depth 1)
for pkg in sqlx eventstore object_store async-nats; do
  if grep -qx "$pkg" <<<"$direct"; then
    echo "architecture invariant broken: quire-api depends on $pkg directly" >&2
    failed=1
  fi
done

if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "architecture invariants hold"
