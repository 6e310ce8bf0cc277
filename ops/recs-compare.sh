#!/usr/bin/env bash
# Compares quire-recs with Python `implicit` on the identical goodbooks-10k split.
#
#   ops/recs-compare.sh DATA_DIR      (DATA_DIR holds goodbooks-10k's ratings.csv)
#
# Builds and runs the quire-recs eval example (2 rayon threads), which dumps its split and options,
# then runs ops/recs-implicit.py (implicit with 2 threads) on that split, and prints both tables.
# The Python environment is a venv under ~/.cache/quire/recs-venv, created on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${1:?usage: ops/recs-compare.sh DATA_DIR}
threads=${RECS_THREADS:-2}
venv=${RECS_VENV:-$HOME/.cache/quire/recs-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  # Wheels only: implicit 0.7.x ships CPython 3.11 wheels with its OpenMP kernels built in.
  "$venv/bin/pip" install --quiet --only-binary=:all: implicit==0.7.3 numpy scipy threadpoolctl
fi

split=$(mktemp -d)
trap 'rm -rf "$split"' EXIT

cargo build --quiet --release -p quire-recs --example eval
echo "== quire-recs ($threads threads) =="
"$CARGO_TARGET_DIR/release/examples/eval" --data "$data" --threads "$threads" \
  --dump-split "$split" 2> >(grep -v $'\r' >&2)
echo
echo "== implicit ($threads threads) =="
# Some machines set OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for old OpenBLAS builds; they slow a
# current numpy/scipy, so implicit runs without them (its BLAS kernel is printed to stderr).
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
  "$venv/bin/python" ops/recs-implicit.py "$split" --threads "$threads" | grep -v '^{'
