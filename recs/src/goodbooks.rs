//! Reading the goodbooks-10k data set (Zajac 2017): `ratings.csv` with the header
//! `book_id,user_id,rating` (the first release) or `user_id,book_id,rating` (the second).

use std::collections::HashMap;
use std::io::BufRead;

/// One rating, with dense 0-based user and item indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rating {
    /// Dense user index (into [`Ratings::user_ids`]).
    pub user: u32,
    /// Dense item index (into [`Ratings::item_ids`]).
    pub item: u32,
    /// Stars, `1..=5`.
    pub rating: u8,
}

/// The ratings of a file, with the mapping from dense indices back to the file's ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ratings {
    /// Every row of the file, in file order (a pair rated twice appears twice).
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

/// Reads goodbooks-10k `ratings.csv` from a reader. Ids become dense 0-based indices in increasing
/// id order; the mapping back is kept. Empty lines are skipped; anything else malformed (wrong
/// number of fields, a non-numeric id, a rating outside 1..=5, an unknown header) is an error with
/// its line number.
pub fn read_ratings(r: impl BufRead) -> Result<Ratings, ParseError> {
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
    let (Some(book_col), Some(user_col), Some(rating_col), 3) = (
        position("book_id"),
        position("user_id"),
        position("rating"),
        columns.len(),
    ) else {
        return Err(err(
            1,
            format!("expected the header book_id,user_id,rating (in any order), got {header:?}"),
        ));
    };

    let mut raw: Vec<(u32, u32, u8)> = Vec::new();
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let line = line.map_err(|e| err(number, e.to_string()))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 3 {
            return Err(err(
                number,
                format!("expected 3 fields, got {}: {line:?}", fields.len()),
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
        let rating = fields[rating_col]
            .parse::<u8>()
            .ok()
            .filter(|r| (1..=5).contains(r))
            .ok_or_else(|| {
                err(
                    number,
                    format!("rating {:?} is not 1..=5", fields[rating_col]),
                )
            })?;
        raw.push((user, book, rating));
    }

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
    let (user_ids, user_index) = dense(raw.iter().map(|r| r.0).collect());
    let (item_ids, item_index) = dense(raw.iter().map(|r| r.1).collect());
    let ratings = raw
        .into_iter()
        .map(|(u, b, rating)| Rating {
            user: user_index[&u],
            item: item_index[&b],
            rating,
        })
        .collect();
    Ok(Ratings {
        ratings,
        user_ids,
        item_ids,
    })
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
    fn errors_name_the_line() {
        let e = read_ratings("book_id,user_id,rating\n1,2,3\n1,x,3\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("user_id \"x\""), "{e}");
        let e = read_ratings("book_id,user_id,rating\n1,2,6\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = read_ratings("book_id,user_id,rating\n1,2\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = read_ratings("a,b,c\n1,2,3\n".as_bytes()).unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(read_ratings("".as_bytes()).unwrap_err().line, 1);
    }
}
