#!/usr/bin/env bash
# The recommendation robustness table: every model and `auto` (what the trainer would serve) on
# goodbooks-10k and on the sets ops/recs-datasets.py makes from it.
#
#   ops/recs-robustness.sh GOODBOOKS_DIR [WORK_DIR]
#
# Builds the release `quire`, makes the sets under WORK_DIR (a temporary directory by default),
# runs `quire recs eval --data SET --json` on each (2 threads, seed 42) and prints one row per set:
# NDCG@10 of popularity, ALS, BM25, cosine, the fixed goodbooks blend and auto, auto's margin over
# the best fixed model (any of the five) and over popularity, what auto chose and how long choosing took.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${1:?usage: ops/recs-robustness.sh GOODBOOKS_DIR [WORK_DIR]}
work=${2:-$(mktemp -d)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

cargo build --quiet --release --bin quire
python3 ops/recs-datasets.py "$data" "$work"
mkdir -p "$work/goodbooks"
ln -sf "$(cd "$data" && pwd)/ratings.csv" "$work/goodbooks/ratings.csv"

for set in goodbooks dense sparse skewed implicit scale10 halfstar; do
  echo "evaluating $set" >&2
  QUIRE_RECS__THREADS=2 \
    "$CARGO_TARGET_DIR/release/quire" recs eval --data "$work/$set" --json \
    > "$work/$set.json" 2> "$work/$set.log"
done

python3 - "$work" <<'PY'
import json, sys, os
work = sys.argv[1]
print(f"{'set':<10}{'popularity':>11}{'als':>8}{'bm25':>8}{'cosine':>8}{'blend':>8}{'auto':>8}"
      f"{'vs best':>9}{'vs pop':>8}{'choose s':>9}  chosen")
for name in ["goodbooks", "dense", "sparse", "skewed", "implicit", "scale10", "halfstar"]:
    r = json.load(open(os.path.join(work, name + ".json")))
    m = {x["model"]: x["ndcg"] for x in r["models"]}
    best = max(m[k] for k in ["popularity", "als", "bm25", "cosine", "blend"])
    s = r["selection"]
    print(f"{name:<10}{m['popularity']:>11.4f}{m['als']:>8.4f}{m['bm25']:>8.4f}{m['cosine']:>8.4f}"
          f"{m['blend']:>8.4f}{m['auto']:>8.4f}{(m['auto'] / best - 1) * 100:>8.1f}%"
          f"{(m['auto'] / max(m['popularity'], 1e-9) - 1) * 100:>7.0f}%{s['secs']:>9.1f}  {s['chosen_name']}")
PY
