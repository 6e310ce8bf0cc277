//! Reading the goodbooks-10k data set (Zajac 2017): `ratings.csv` with the header
//! `book_id,user_id,rating` (the first release) or `user_id,book_id,rating` (the second).
//!
//! The one reader of that file: the importer (`quire import goodbooks`), the offline evaluation
//! (`quire recs eval`, the examples) and the benches all read it here, so they see the same ratings.
//!
//! **Other data in the same layout.** The `rating` column may be missing (or a row's rating
//! empty): the row is a like, an implicit signal without stars (rating 0 in [`Rating`]). Ratings
//! on another scale (0.5–5 in half stars, 1–10, …) are normalised to 1–5 stars on reading: when
//! any rating is not a whole number within 1..=5, the file's range maps linearly onto 1..=5
//! (rounded); a file whose ratings are all the same value holds likes. [`RatingStats`] says
//! what was done.
//!
//! **Duplicates.** The first release rates some (book, user) pairs on more than one row, sometimes
//! with different ratings. The last row of a pair wins: a pair is one rating, placed where its
//! first row was, with the rating of its last row. [`RatingStats`] counts what was resolved.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One rating, with dense 0-based user and item indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rating {
    /// Dense user index (into [`Ratings::user_ids`]).
    pub user: u32,
    /// Dense item index (into [`Ratings::item_ids`]).
    pub item: u32,
    /// Stars, `1..=5`; 0 for a like (no stars).
    pub rating: u8,
}

/// The ratings of a file, with the mapping from dense indices back to the file's ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ratings {
    /// One rating per (user, item) pair, in the order of the pair's first row, with its last
    /// row's rating (see the module documentation).
    pub ratings: Vec<Rating>,
    /// `user_ids[u]` is the file's `user_id` of dense user `u` (increasing).
    pub user_ids: Vec<u32>,
    /// `item_ids[i]` is the file's `book_id` of dense item `i` (increasing).
    pub item_ids: Vec<u32>,
}

impl Ratings {
    /// Number of distinct users.
    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    /// Number of distinct items (books).
    pub fn n_items(&self) -> usize {
        self.item_ids.len()
    }

    /// Dense indices for `rows` (ids in increasing order), keeping their order.
    pub fn from_rows(rows: &[RatingRow]) -> Self {
        let dense = |ids: Vec<u32>| {
            let mut ids = ids;
            ids.sort_unstable();
            ids.dedup();
            let index: HashMap<u32, u32> = ids
                .iter()
                .enumerate()
                .map(|(i, &id)| (id, i as u32))
                .collect();
            (ids, index)
        };
        let (user_ids, user_index) = dense(rows.iter().map(|r| r.user_id).collect());
        let (item_ids, item_index) = dense(rows.iter().map(|r| r.book_id).collect());
        let ratings = rows
            .iter()
            .map(|r| Rating {
                user: user_index[&r.user_id],
                item: item_index[&r.book_id],
                rating: r.rating,
            })
            .collect();
        Ratings {
            ratings,
            user_ids,
            item_ids,
        }
    }
}

/// One rating with the file's ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RatingRow {
    /// The goodbooks `book_id`.
    pub book_id: u32,
    /// The goodbooks `user_id`.
    pub user_id: u32,
    /// Stars, `1..=5`; 0 for a like (no stars).
    pub rating: u8,
}

/// What reading `ratings.csv` found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RatingStats {
    /// Rows read.
    pub rows: u64,
    /// Rows of books the caller did not keep (the importer's `--limit-books`, or books missing
    /// from its books.csv).
    pub skipped_rows: u64,
    /// Kept (book, user) pairs that occur on more than one row.
    pub duplicate_pairs: u64,
    /// Of those, pairs whose rows disagree on the rating.
    pub conflicting_pairs: u64,
    /// Rows dropped because a later row for the same pair wins.
    pub duplicate_rows_dropped: u64,
    /// Distinct (book, user) ratings kept.
    pub unique: u64,
    /// Kept rows without stars (likes): no rating column, an empty rating, or one value for all.
    pub likes: u64,
    /// The file's rating range when it was normalised onto 1..=5 (`None`: already 1–5 stars).
    pub normalised_from: Option<[f64; 2]>,
}

/// The distinct ratings of a file, with the file's ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RatingRows {
    /// One per kept (book, user) pair, in the order of the pair's first row, with the rating of
    /// its last row.
    pub rows: Vec<RatingRow>,
    pub stats: RatingStats,
}

/// A malformed ratings file: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ratings line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number (the header is line 1).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A ratings file that cannot be read: the path, and the line when it is malformed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("opening {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} line {line}: {message}", path.display())]
    Malformed {
        path: PathBuf,
        /// 1-based line number (the header is line 1).
        line: usize,
        message: String,
    },
}

/// Which ratings a reader takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalePolicy {
    /// Whole stars within 1..=5 and a rating on every row; anything else is an error with its
    /// line (the importer posts reviews, which need stars, and a stray `9` must not rescale a
    /// whole catalogue).
    Stars,
    /// Any scale, normalised onto stars, and likes without ratings (see the module
    /// documentation): what the evaluation and other data sets need.
    Normalise,
}

/// Reads a ratings file in the goodbooks layout from a reader into dense indices (ids in
/// increasing order; the mapping back is kept), one rating per (user, book) pair, normalising
/// other scales ([`ScalePolicy::Normalise`]). See [`read_rating_rows`] for what is malformed.
pub fn read_ratings(r: impl BufRead) -> Result<Ratings, ParseError> {
    Ok(Ratings::from_rows(
        &read_rating_rows(r, ScalePolicy::Normalise, |_| true)?.rows,
    ))
}

/// [`read_ratings`] of the file at `path`.
pub fn read_ratings_file(path: &Path) -> Result<Ratings, ReadError> {
    Ok(Ratings::from_rows(
        &read_rating_rows_file(path, ScalePolicy::Normalise, |_| true)?.rows,
    ))
}

/// [`read_rating_rows`] of the file at `path`.
pub fn read_rating_rows_file(
    path: &Path,
    policy: ScalePolicy,
    keep_book: impl FnMut(u32) -> bool,
) -> Result<RatingRows, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    read_rating_rows(BufReader::with_capacity(1 << 16, file), policy, keep_book).map_err(|e| {
        ReadError::Malformed {
            path: path.to_path_buf(),
            line: e.line,
            message: e.message,
        }
    })
}

/// Reads goodbooks-10k `ratings.csv` from a reader: the ratings of the books `keep_book` accepts,
/// one per (book, user) pair (the last row of a pair wins), with the file's ids, ratings as stars
/// (see the module documentation). Empty lines are skipped; anything else malformed (wrong number
/// of fields, a non-numeric id or rating, an unknown header) is an error with its line number,
/// whatever the book.
pub fn read_rating_rows(
    r: impl BufRead,
    policy: ScalePolicy,
    mut keep_book: impl FnMut(u32) -> bool,
) -> Result<RatingRows, ParseError> {
    let mut stats = RatingStats::default();
    let mut kept: Vec<(u32, u32, Option<f64>)> = Vec::new();
    parse(r, policy, |book, user, rating| {
        stats.rows += 1;
        if keep_book(book) {
            kept.push((book, user, rating));
        } else {
            stats.skipped_rows += 1;
        }
    })?;
    let scale = match policy {
        ScalePolicy::Stars => Scale::Stars,
        ScalePolicy::Normalise => Scale::of(kept.iter().filter_map(|k| k.2)),
    };
    if let Scale::Linear { min, max } = scale {
        stats.normalised_from = Some([min, max]);
    }
    let rows: Vec<RatingRow> = kept
        .into_iter()
        .map(|(book_id, user_id, rating)| RatingRow {
            book_id,
            user_id,
            rating: scale.stars(rating),
        })
        .collect();
    let rows = last_row_wins(rows, &mut stats);
    stats.likes = rows.iter().filter(|r| r.rating == 0).count() as u64;
    Ok(RatingRows { rows, stats })
}

/// How a file's ratings become stars.
#[derive(Clone, Copy)]
enum Scale {
    /// Whole numbers within 1..=5 already.
    Stars,
    /// One value for every row (e.g. all 1): interactions without a scale, likes.
    Likes,
    /// The file's range, mapped linearly onto 1..=5.
    Linear { min: f64, max: f64 },
}

impl Scale {
    /// The scale of these ratings (see the module documentation).
    fn of(ratings: impl Iterator<Item = f64>) -> Scale {
        let (mut min, mut max, mut all_stars) = (f64::INFINITY, f64::NEG_INFINITY, true);
        for r in ratings {
            min = min.min(r);
            max = max.max(r);
            all_stars &= r.fract() == 0.0 && (1.0..=5.0).contains(&r);
        }
        if min == max {
            Scale::Likes
        } else if all_stars {
            Scale::Stars
        } else {
            Scale::Linear { min, max }
        }
    }

    fn stars(self, rating: Option<f64>) -> u8 {
        match (self, rating) {
            (_, None) | (Scale::Likes, _) => 0,
            (Scale::Stars, Some(r)) => r as u8,
            (Scale::Linear { min, max }, Some(r)) => {
                (1.0 + ((r - min) / (max - min) * 4.0).round()).clamp(1.0, 5.0) as u8
            }
        }
    }
}

/// One rating per (book, user) pair of `rows` (in file order): at the pair's first row, with its
/// last row's rating. Counts the duplicates into `stats`.
fn last_row_wins(rows: Vec<RatingRow>, stats: &mut RatingStats) -> Vec<RatingRow> {
    // Sorted by (book, user, row): a pair's rows are adjacent, first to last.
    let mut sorted: Vec<(u32, u32, u32, u8)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| (r.book_id, r.user_id, i as u32, r.rating))
        .collect();
    sorted.sort_unstable();
    let mut pairs: Vec<(u32, RatingRow)> = Vec::with_capacity(sorted.len());
    for group in sorted.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let (book_id, user_id, first, _) = group[0];
        let rating = group[group.len() - 1].3;
        if group.len() > 1 {
            stats.duplicate_pairs += 1;
            stats.duplicate_rows_dropped += group.len() as u64 - 1;
            if group.iter().any(|r| r.3 != rating) {
                stats.conflicting_pairs += 1;
            }
        }
        pairs.push((
            first,
            RatingRow {
                book_id,
                user_id,
                rating,
            },
        ));
    }
    pairs.sort_unstable_by_key(|(first, _)| *first);
    stats.unique = pairs.len() as u64;
    pairs.into_iter().map(|(_, row)| row).collect()
}

/// Parses the header and hands every row, in file order, to `row` as (book, user, rating; `None`
/// when the file has no rating column or the row's rating is empty).
fn parse(
    r: impl BufRead,
    policy: ScalePolicy,
    mut row: impl FnMut(u32, u32, Option<f64>),
) -> Result<(), ParseError> {
    let mut lines = r.lines();
    let err = |line: usize, message: String| ParseError { line, message };
    let header = match lines.next() {
        Some(h) => h.map_err(|e| err(1, e.to_string()))?,
        None => return Err(err(1, "empty input, expected a header".into())),
    };
    let columns: Vec<&str> = header
        .trim()
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    let position = |name: &str| columns.iter().position(|c| *c == name);
    let rating_col = position("rating");
    if policy == ScalePolicy::Stars && rating_col.is_none() {
        return Err(err(
            1,
            format!("expected the header book_id,user_id,rating (in any order), got {header:?}"),
        ));
    }
    let (Some(book_col), Some(user_col), true) = (
        position("book_id"),
        position("user_id"),
        columns.len() == 2 + usize::from(rating_col.is_some()),
    ) else {
        return Err(err(
            1,
            format!(
                "expected the header book_id,user_id,rating or book_id,user_id (in any order), \
                 got {header:?}"
            ),
        ));
    };

    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let line = line.map_err(|e| err(number, e.to_string()))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(err(
                number,
                format!(
                    "expected {} fields, got {}: {line:?}",
                    columns.len(),
                    fields.len()
                ),
            ));
        }
        let id = |col: usize, name: &str| {
            fields[col].parse::<u32>().map_err(|_| {
                err(
                    number,
                    format!("{name} {:?} is not a non-negative integer", fields[col]),
                )
            })
        };
        let book = id(book_col, "book_id")?;
        let user = id(user_col, "user_id")?;
        let rating = match rating_col.map(|c| fields[c]) {
            Some(text) if policy == ScalePolicy::Stars => Some(
                text.parse::<u8>()
                    .ok()
                    .filter(|r| (1..=5).contains(r))
                    .map(f64::from)
                    .ok_or_else(|| err(number, format!("rating {text:?} is not 1..=5")))?,
            ),
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite())
                    .ok_or_else(|| err(number, format!("rating {text:?} is not a number")))?,
            ),
        };
        row(book, user, rating);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_densifies() {
        let csv = "book_id,user_id,rating\n10,7,5\n3,7,4\n10,2,1\n\n3,2,3\n";
        let r = read_ratings(csv.as_bytes()).unwrap();
        assert_eq!(r.user_ids, vec![2, 7]);
        assert_eq!(r.item_ids, vec![3, 10]);
        assert_eq!((r.n_users(), r.n_items()), (2, 2));
        assert_eq!(
            r.ratings,
            vec![
                Rating {
                    user: 1,
                    item: 1,
                    rating: 5
                },
                Rating {
                    user: 1,
                    item: 0,
                    rating: 4
                },
                Rating {
                    user: 0,
                    item: 1,
                    rating: 1
                },
                Rating {
                    user: 0,
                    item: 0,
                    rating: 3
                },
            ]
        );
        // The second release's column order.
        let r2 = read_ratings("user_id,book_id,rating\n7,10,5\n".as_bytes()).unwrap();
        assert_eq!((r2.user_ids[0], r2.item_ids[0]), (7, 10));
    }

    #[test]
    fn the_last_row_of_a_duplicated_pair_wins_at_its_first_place() {
        // (book 1, user 9) three times, the last saying 2; (book 2, user 9) twice, agreeing.
        let csv = "book_id,user_id,rating\n1,9,5\n2,9,4\n1,9,3\n3,8,1\n2,9,4\n1,9,2\n";
        let read = read_rating_rows(csv.as_bytes(), ScalePolicy::Normalise, |_| true).unwrap();
        let row = |book_id, user_id, rating| RatingRow {
            book_id,
            user_id,
            rating,
        };
        assert_eq!(read.rows, vec![row(1, 9, 2), row(2, 9, 4), row(3, 8, 1)]);
        assert_eq!(
            read.stats,
            RatingStats {
                rows: 6,
                skipped_rows: 0,
                duplicate_pairs: 2,
                conflicting_pairs: 1,
                duplicate_rows_dropped: 3,
                unique: 3,
                likes: 0,
                normalised_from: None,
            }
        );
        // The dense form has one rating per pair too.
        let dense = read_ratings(csv.as_bytes()).unwrap();
        assert_eq!(dense.ratings.len(), 3);
        assert_eq!(dense.ratings[0].rating, 2);

        // Rows of books not kept are counted apart and take no part in the duplicates.
        let read = read_rating_rows(csv.as_bytes(), ScalePolicy::Stars, |book| book != 1).unwrap();
        assert_eq!(read.rows, vec![row(2, 9, 4), row(3, 8, 1)]);
        assert_eq!(
            (
                read.stats.rows,
                read.stats.skipped_rows,
                read.stats.duplicate_pairs,
                read.stats.conflicting_pairs,
                read.stats.duplicate_rows_dropped,
                read.stats.unique
            ),
            (6, 3, 1, 0, 1, 2)
        );
    }

    #[test]
    fn file_errors_name_the_path_and_line() {
        let dir = std::env::temp_dir().join(format!("quire-goodbooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ratings.csv");
        std::fs::write(&path, "book_id,user_id,rating\n1,2,3\n1,x,3\n").unwrap();
        let e = read_ratings_file(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("ratings.csv line 3: user_id \"x\" is not a non-negative integer"),
            "{e}"
        );
        std::fs::write(&path, "user_id,book_id,rating\n7,10,5\n").unwrap();
        assert_eq!(read_ratings_file(&path).unwrap().item_ids, vec![10]);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = read_ratings_file(&dir.join("ratings.csv")).unwrap_err();
        assert!(matches!(e, ReadError::Open { .. }), "{e}");
    }

    #[test]
    fn other_scales_become_stars_and_missing_ratings_likes() {
        let stars = |csv: &str| -> (Vec<u8>, RatingStats) {
            let read = read_rating_rows(csv.as_bytes(), ScalePolicy::Normalise, |_| true).unwrap();
            (read.rows.iter().map(|r| r.rating).collect(), read.stats)
        };
        // Half stars 0.5–5: the range maps onto 1–5.
        let (r, st) = stars("book_id,user_id,rating\n1,1,0.5\n2,1,5\n3,1,3.5\n4,1,2.75\n");
        assert_eq!(r, vec![1, 5, 4, 3]);
        assert_eq!(st.normalised_from, Some([0.5, 5.0]));
        // 1–10.
        let (r, _) = stars("book_id,user_id,rating\n1,1,1\n2,1,10\n3,1,8\n4,1,5\n");
        assert_eq!(r, vec![1, 5, 4, 3]);
        // 1–5 whole stars are kept as they are, even if some values are missing.
        let (r, st) = stars("book_id,user_id,rating\n1,1,2\n2,1,4\n");
        assert_eq!((r, st.normalised_from), (vec![2, 4], None));
        // No rating column, an empty rating, or one value for every row: likes.
        let (r, st) = stars("user_id,book_id\n1,1\n1,2\n");
        assert_eq!((r, st.likes), (vec![0, 0], 2));
        let (r, _) = stars("book_id,user_id,rating\n1,1,1\n2,1,1\n");
        assert_eq!(r, vec![0, 0]);
        let (r, st) = stars("book_id,user_id,rating\n1,1,\n2,1,4\n3,1,5\n");
        assert_eq!((r, st.likes), (vec![0, 4, 5], 1));
    }

    #[test]
    fn stars_only_refuses_other_scales_and_likes_by_line() {
        let read = |csv: &str| read_rating_rows(csv.as_bytes(), ScalePolicy::Stars, |_| true);
        assert_eq!(
            read("book_id,user_id,rating\n1,1,4\n2,1,9\n")
                .unwrap_err()
                .line,
            3
        );
        assert_eq!(
            read("book_id,user_id,rating\n1,1,4.5\n").unwrap_err().line,
            2
        );
        assert_eq!(read("book_id,user_id,rating\n1,1,\n").unwrap_err().line, 2);
        assert_eq!(read("book_id,user_id\n1,1\n").unwrap_err().line, 1);
        // One star value for every row is still stars here, not likes.
        let one = read("book_id,user_id,rating\n1,1,5\n2,1,5\n").unwrap();
        assert_eq!(
            one.rows.iter().map(|r| r.rating).collect::<Vec<_>>(),
            [5, 5]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = read_ratings("book_id,user_id,rating\n1,2,3\n1,x,3\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("user_id \"x\""), "{e}");
        let e = read_ratings("book_id,user_id,rating\n1,2,good\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string().contains("rating \"good\" is not a number"),
            "{e}"
        );
        let e = read_ratings("book_id,user_id\n1,2,3\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = read_ratings("book_id,user_id,rating\n1,2\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = read_ratings("a,b,c\n1,2,3\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(read_ratings("".as_bytes()).unwrap_err().line, 1);
    }
}
