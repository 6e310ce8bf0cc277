#!/usr/bin/env bash
# Cuts tests/fixtures/goodbooks-mini/ from the full goodbooks-10k dataset (Zygmunt Zając,
# github.com/zygmuntz/goodbooks-10k, CC BY-SA 4.0): the first 50 books of books.csv, the
# book_tags.csv rows of those books, the tags.csv rows those reference, and ratings.csv rows of
# those books (the first 40 of each book, plus every row of a duplicated (book_id, user_id) pair,
# so the fixture keeps the dataset's real duplicates, some with conflicting ratings).
#
# Usage: ops/make-goodbooks-fixture.sh GOODBOOKS_DIR [OUT_DIR]
set -euo pipefail
src=${1:?usage: ops/make-goodbooks-fixture.sh GOODBOOKS_DIR [OUT_DIR]}
out=${2:-"$(dirname "$0")/../tests/fixtures/goodbooks-mini"}
mkdir -p "$out"
python3 - "$src" "$out" <<'PY'
import csv, collections, sys
src, out = sys.argv[1], sys.argv[2]
BOOKS, PER_BOOK = 50, 40

with open(f"{src}/books.csv", newline="") as f:
    rows = list(csv.reader(f))
header, books = rows[0], rows[1:BOOKS + 1]
with open(f"{out}/books.csv", "w", newline="") as f:
    csv.writer(f, lineterminator="\n").writerows([header] + books)
book_ids = {r[0] for r in books}
goodreads_ids = {r[1] for r in books}

tag_ids = set()
with open(f"{src}/book_tags.csv", newline="") as f, open(f"{out}/book_tags.csv", "w", newline="") as o:
    reader, writer = csv.reader(f), csv.writer(o, lineterminator="\n")
    writer.writerow(next(reader))
    for r in reader:
        if r[0] in goodreads_ids:
            writer.writerow(r)
            tag_ids.add(r[1])

with open(f"{src}/tags.csv", newline="") as f, open(f"{out}/tags.csv", "w", newline="") as o:
    reader, writer = csv.reader(f), csv.writer(o, lineterminator="\n")
    writer.writerow(next(reader))
    writer.writerows(r for r in reader if r[0] in tag_ids)

with open(f"{src}/ratings.csv", newline="") as f:
    reader = csv.reader(f)
    rheader = next(reader)
    ratings = [r for r in reader if r[0] in book_ids]
pairs = collections.Counter((r[0], r[1]) for r in ratings)
seen = collections.Counter()
kept = []
for r in ratings:
    seen[r[0]] += 1
    if seen[r[0]] <= PER_BOOK or pairs[(r[0], r[1])] > 1:
        kept.append(r)
with open(f"{out}/ratings.csv", "w", newline="") as o:
    csv.writer(o, lineterminator="\n").writerows([rheader] + kept)
PY
wc -l "$out"/*.csv
