#!/usr/bin/env python3
"""Makes the recommendation robustness sets from goodbooks-10k's ratings.csv.

    ops/recs-datasets.py GOODBOOKS_DIR OUT_DIR [--seed N]

Writes one directory per set under OUT_DIR, each holding a ratings.csv in the goodbooks layout
(and nothing else: the models need no books.csv). The sets stress what goodbooks does not:

- dense:     the 1,000 most-rated books x the 2,000 members who rated most of them;
- sparse:    a random quarter of every member's ratings (many members left with one or two);
- skewed:    popularity as real catalogues have it (goodbooks sampled about 100 ratings per book,
             so its counts are flat): a rating of the book ranked r by count is kept with
             probability 1 / (1 + r / 50);
- implicit:  likes only: every rating of 4 or 5 becomes a row without a rating column;
- scale10:   ratings on 1-10 (each star r becomes 2r-1 or 2r at random), normalised on reading;
- halfstar:  ratings on 0.5-5 in half stars (r or r-0.5 at random), normalised on reading.

Seeded: the same seed gives the same files.
"""
import csv
import os
import random
import sys
from collections import Counter, defaultdict


def read(path):
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        return [(int(r["book_id"]), int(r["user_id"]), int(r["rating"])) for r in rows]


def write(out_dir, name, rows, header=("book_id", "user_id", "rating")):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "ratings.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    users = len({r[1] for r in rows})
    books = len({r[0] for r in rows})
    print(f"{name:<9} {len(rows):>8} rows, {users:>6} members, {books:>6} books, "
          f"density {len(rows) / max(1, users * books):.4f}", file=sys.stderr)


def main():
    args = sys.argv[1:]
    seed = 7
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    source, out_dir = args
    rows = read(os.path.join(source, "ratings.csv"))
    rng = random.Random(seed)

    book_counts = Counter(b for b, _, _ in rows)
    top_books = {b for b, _ in book_counts.most_common(1000)}
    in_top = [r for r in rows if r[0] in top_books]
    user_counts = Counter(u for _, u, _ in in_top)
    top_users = {u for u, _ in user_counts.most_common(2000)}
    write(out_dir, "dense", [r for r in in_top if r[1] in top_users])

    by_user = defaultdict(list)
    for r in rows:
        by_user[r[1]].append(r)
    sparse = []
    for user in sorted(by_user):
        mine = by_user[user]
        keep = max(1, round(len(mine) / 4))
        sparse.extend(rng.sample(mine, keep))
    write(out_dir, "sparse", sparse)

    rank = {b: i for i, (b, _) in enumerate(book_counts.most_common())}
    write(out_dir, "skewed", [r for r in rows if rng.random() < 1 / (1 + rank[r[0]] / 50)])

    write(out_dir, "implicit", [(b, u) for b, u, r in rows if r >= 4], ("book_id", "user_id"))
    write(out_dir, "scale10", [(b, u, 2 * r - rng.randint(0, 1)) for b, u, r in rows])
    write(out_dir, "halfstar", [(b, u, r - 0.5 * rng.randint(0, 1)) for b, u, r in rows])


if __name__ == "__main__":
    main()
