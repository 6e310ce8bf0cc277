#!/usr/bin/env python3
"""Python `implicit` on the split the Rust evaluation dumped: the reference for quire-recs.

Reads DIR/train.csv, DIR/test.csv (user,item,rating with the original goodbooks ids) and
DIR/options.json (the Rust EvalOptions), trains implicit's ALS (the same confidence convention,
C = alpha * value, and the same parameters), its BM25 and cosine item-item recommenders, and scores
them with exactly the metrics of quire_recs::eval (see recs/src/eval.rs):

  P@k = hits / k; R@k = hits / #relevant; NDCG@k = DCG / ideal DCG of min(#relevant, k) hits,
  binary relevance, DCG = sum of 1/log2(rank + 1) over hits at 1-based ranks; macro-averaged over
  users with a relevant (held out, rated >= relevant_min_rating) item; items rated in training are
  never recommended; coverage = distinct recommended items / catalog items.

Models: als and bm25 use the Rust options (alpha, regularization, K1, B, neighbours...);
als-defaults and bm25-defaults use implicit's own defaults; cosine uses the Rust neighbours.

Usage: recs-implicit.py DIR [--threads 2] [--models als,als-defaults,bm25,bm25-defaults,cosine]
                        [--json FILE]
"""

import os

# implicit's own advice: its threads, not BLAS's (must be set before numpy is imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import implicit  # noqa: E402
from implicit.cpu.als import AlternatingLeastSquares  # noqa: E402
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender  # noqa: E402


def read_csv(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    return data[:, 0], data[:, 1], data[:, 2]


def user_metrics(recommended, relevant, k):
    """The metrics of one ranked list, exactly as quire_recs::eval::user_metrics."""
    if not relevant or k == 0:
        return 0.0, 0.0, 0.0
    hits = 0
    dcg = 0.0
    for rank0, item in enumerate(recommended[:k]):
        if item in relevant:
            hits += 1
            dcg += 1.0 / math.log2(rank0 + 2)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
    return hits / k, hits / len(relevant), dcg / ideal


def evaluate(name, lists, users, relevant, k, n_items, train_secs, recommend_secs):
    p = r = n = 0.0
    recommended = set()
    for row, u in zip(lists, users):
        items = [int(i) for i in row if i >= 0]
        mp, mr, mn = user_metrics(items, relevant[u], k)
        p += mp
        r += mr
        n += mn
        recommended.update(items)
    count = max(len(users), 1)
    return {
        "model": name,
        "precision": p / count,
        "recall": r / count,
        "ndcg": n / count,
        "coverage": len(recommended) / max(n_items, 1),
        "train_secs": train_secs,
        "recommend_secs": recommend_secs,
        "users": len(users),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="als,als-defaults,bm25,bm25-defaults,cosine")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    args = parser.parse_args()

    with open(os.path.join(args.dir, "options.json")) as f:
        opts = json.load(f)
    tu, ti, tr = read_csv(os.path.join(args.dir, "train.csv"))
    su, si, sr = read_csv(os.path.join(args.dir, "test.csv"))
    # Dense indices in increasing id order, as quire_recs::goodbooks does (every user and item of
    # the data is in one of the two parts).
    user_ids = np.unique(np.concatenate([tu, su]))
    item_ids = np.unique(np.concatenate([ti, si]))
    n_users, n_items = len(user_ids), len(item_ids)
    tu, ti = np.searchsorted(user_ids, tu), np.searchsorted(item_ids, ti)
    su, si = np.searchsorted(user_ids, su), np.searchsorted(item_ids, si)

    weights = np.asarray(opts["weights"]["rating"], dtype=np.float32)
    values = weights[tr - 1]
    user_items = sp.csr_matrix((values, (tu, ti)), shape=(n_users, n_items), dtype=np.float32)
    user_items.sum_duplicates()
    user_items.eliminate_zeros()
    if user_items.nnz != len(tr):
        sys.exit("a rating weight is zero: implicit would not filter those training items")

    k = opts["k"]
    relevant = [set() for _ in range(n_users)]
    for u, i, r in zip(su, si, sr):
        if r >= opts["relevant_min_rating"]:
            relevant[u].add(int(i))
    users = np.array([u for u in range(n_users) if relevant[u]], dtype=np.int32)
    als = opts["als"]

    print(
        f"implicit {implicit.__version__}, numpy {np.__version__}; {n_users} users, {n_items} items; "
        f"{len(tr)} training / {len(sr)} held-out ratings; {args.threads} threads",
        file=sys.stderr,
    )
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            print(
                f"  BLAS: {pool.get('internal_api')} {pool.get('version')} "
                f"{pool.get('architecture')} threads={pool.get('num_threads')}",
                file=sys.stderr,
            )
    except ImportError:
        pass

    # implicit's item-item fit transposes internally and warns about its own COO matrix.
    warnings.filterwarnings("ignore", message="Method expects CSR input")
    reports = []
    for name in args.models.split(","):
        if name in ("als", "als-defaults"):
            params = dict(factors=als["factors"], iterations=als["iterations"])
            if name == "als":
                params.update(regularization=als["regularization"], alpha=als["alpha"])
            model = AlternatingLeastSquares(
                **params,
                use_cg=True,
                use_native=True,
                calculate_training_loss=False,
                num_threads=args.threads,
                random_state=als["seed"],
            )
            model.cg_steps = als["cg_steps"]
        elif name == "bm25":
            model = BM25Recommender(
                K=opts["neighbours"], K1=opts["bm25_k1"], B=opts["bm25_b"], num_threads=args.threads
            )
        elif name == "bm25-defaults":
            # implicit's own defaults (K=20, K1=1.2, B=0.75).
            model = BM25Recommender(num_threads=args.threads)
        elif name == "cosine":
            model = CosineRecommender(K=opts["neighbours"], num_threads=args.threads)
        else:
            sys.exit(f"unknown model {name}")
        started = time.perf_counter()
        model.fit(user_items, show_progress=False)
        train_secs = time.perf_counter() - started
        started = time.perf_counter()
        ids, _ = model.recommend(users, user_items[users], N=k, filter_already_liked_items=True)
        recommend_secs = time.perf_counter() - started
        report = evaluate(name, ids, users, relevant, k, n_items, train_secs, recommend_secs)
        reports.append(report)
        print(f"{name}: trained in {train_secs:.2f} s", file=sys.stderr)

    print(f"implicit {implicit.__version__} on the same split ({args.threads} threads)")
    print(
        f"{'model':<14} {'P@' + str(k):>8} {'R@' + str(k):>8} {'NDCG@' + str(k):>8} "
        f"{'coverage':>9} {'train s':>9} {'rank s':>8} {'users':>7}"
    )
    for m in reports:
        print(
            f"{m['model']:<14} {m['precision']:>8.4f} {m['recall']:>8.4f} {m['ndcg']:>8.4f} "
            f"{m['coverage']:>9.4f} {m['train_secs']:>9.2f} {m['recommend_secs']:>8.2f} {m['users']:>7}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"peak RSS: {peak / 2**20:.1f} MiB")
    out = {"implicit": implicit.__version__, "threads": args.threads, "peak_rss_bytes": peak, "models": reports}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
