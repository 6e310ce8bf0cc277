//! Reading the goodbooks-10k CSV files (Zygmunt Zając, CC BY-SA 4.0) into Quire's domain values.
//!
//! Everything here is pure apart from reading the files: ids are UUIDv5 of a fixed namespace and a
//! name that says what they identify, so a second import addresses the same streams and sends
//! identical commands.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::Context;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::values::{AuthorName, Genre, Isbn, Rating, Title, Year};
use quire_recs::goodbooks;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// The namespace of every id the importer derives. Fixed forever: stored streams and command
/// records are named after the ids it produces.
const NAMESPACE: Uuid = Uuid::from_u128(0x5d2a_8c3e_41f7_4b09_9e6d_0a7c_b3f1_2e84);

/// How many genres a book gets: its most-used allowlisted tags.
pub(crate) const MAX_GENRES: usize = 3;

/// Goodreads shelf names that are genres, and the genre each stands for. Everything else people
/// shelve books under (`to-read`, `owned`, `kindle`, `favorites`, author names, years) is ignored.
/// Variants are merged: their counts add up under the canonical name.
pub(crate) const GENRE_TAGS: &[(&str, &str)] = &[
    ("fiction", "fiction"),
    ("fantasy", "fantasy"),
    ("young-adult", "young-adult"),
    ("ya", "young-adult"),
    ("ya-fiction", "young-adult"),
    ("young-adult-fiction", "young-adult"),
    ("teen", "young-adult"),
    ("teen-fiction", "young-adult"),
    ("classics", "classics"),
    ("classic", "classics"),
    ("classic-literature", "classics"),
    ("romance", "romance"),
    ("mystery", "mystery"),
    ("mysteries", "mystery"),
    ("non-fiction", "non-fiction"),
    ("nonfiction", "non-fiction"),
    ("historical-fiction", "historical-fiction"),
    ("historical", "historical-fiction"),
    ("science-fiction", "science-fiction"),
    ("sci-fi", "science-fiction"),
    ("scifi", "science-fiction"),
    ("sf", "science-fiction"),
    ("paranormal", "paranormal"),
    ("contemporary", "contemporary"),
    ("horror", "horror"),
    ("urban-fantasy", "urban-fantasy"),
    ("children", "children"),
    ("childrens", "children"),
    ("children-s", "children"),
    ("children-s-books", "children"),
    ("childrens-books", "children"),
    ("kids", "children"),
    ("picture-books", "children"),
    ("middle-grade", "middle-grade"),
    ("graphic-novels", "graphic-novels"),
    ("graphic-novel", "graphic-novels"),
    ("comics", "graphic-novels"),
    ("comic", "graphic-novels"),
    ("manga", "manga"),
    ("thriller", "thriller"),
    ("thrillers", "thriller"),
    ("suspense", "thriller"),
    ("adventure", "adventure"),
    ("history", "history"),
    ("dystopian", "dystopian"),
    ("dystopia", "dystopian"),
    ("post-apocalyptic", "dystopian"),
    ("humor", "humor"),
    ("humour", "humor"),
    ("comedy", "humor"),
    ("chick-lit", "chick-lit"),
    ("chicklit", "chick-lit"),
    ("crime", "crime"),
    ("memoir", "memoir"),
    ("memoirs", "memoir"),
    ("biography", "biography"),
    ("biographies", "biography"),
    ("autobiography", "biography"),
    ("philosophy", "philosophy"),
    ("science", "science"),
    ("poetry", "poetry"),
    ("plays", "plays"),
    ("drama", "plays"),
    ("short-stories", "short-stories"),
    ("psychology", "psychology"),
    ("business", "business"),
    ("economics", "business"),
    ("war", "war"),
    ("religion", "religion"),
    ("christian", "religion"),
    ("spirituality", "religion"),
    ("self-help", "self-help"),
    ("travel", "travel"),
    ("lgbt", "lgbt"),
    ("mythology", "mythology"),
    ("magical-realism", "magical-realism"),
    ("politics", "politics"),
    ("steampunk", "steampunk"),
    ("new-adult", "new-adult"),
    ("erotica", "erotica"),
];

/// The id of goodbooks book `book_id`.
pub(crate) fn book_id(book_id: u32) -> BookId {
    derive(&format!("goodbooks:book:{book_id}")).into()
}

/// The id of goodbooks rater `user_id`.
pub(crate) fn user_id(user_id: u32) -> UserId {
    derive(&format!("goodbooks:user:{user_id}")).into()
}

/// The id of `user_id`'s review of `book_id`.
pub(crate) fn review_id(book_id: u32, user_id: u32) -> ReviewId {
    derive(&format!("goodbooks:review:{book_id}:{user_id}")).into()
}

/// A command id derived from a name such as `goodbooks:cmd:add-book:17`.
pub(crate) fn derive(name: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// One catalogue entry, ready to become an `AddBook`.
#[derive(Debug, Clone)]
pub(crate) struct GbBook {
    /// The goodbooks `book_id` (1..10000).
    pub id: u32,
    pub title: Title,
    pub authors: Vec<AuthorName>,
    pub genres: Vec<Genre>,
    pub year: Option<Year>,
    pub isbn: Option<Isbn>,
}

/// How the books' ISBNs were resolved.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct IsbnStats {
    /// From an `isbn13` written out in full.
    pub from_isbn13: u64,
    /// The ISBN-13 of a valid `isbn` (ISBN-10) column.
    pub from_isbn10: u64,
    /// Some column held a value, but none gave a valid ISBN.
    pub invalid: u64,
    /// Both columns were empty.
    pub missing: u64,
}

/// Everything the import sends, with the counts the summary reports.
#[derive(Debug, Default)]
pub(crate) struct Dataset {
    pub books: Vec<GbBook>,
    /// Rows of books.csv that could not become a book (no usable title or author).
    pub books_skipped: Vec<String>,
    pub isbn: IsbnStats,
    /// Goodbooks user ids of the raters of the imported books, ascending.
    pub users: Vec<u32>,
    /// Ratings per imported book (same order as `books`): (user, rating), duplicates collapsed.
    pub ratings: Vec<Vec<(u32, Rating)>>,
    pub rating_stats: RatingStats,
    /// How many readers shelved each imported book (same order as `books`) under each genre:
    /// what search evaluation grades genre queries by.
    pub genre_counts: Vec<HashMap<&'static str, i64>>,
}

// What reading ratings.csv found: the counts of the one goodbooks ratings reader.
pub(crate) use quire_recs::goodbooks::RatingStats;

#[derive(Deserialize)]
struct BookRow {
    book_id: u32,
    goodreads_book_id: u64,
    isbn: String,
    isbn13: String,
    authors: String,
    original_publication_year: String,
    original_title: String,
    title: String,
}

#[derive(Deserialize)]
struct TagRow {
    tag_id: u32,
    tag_name: String,
}

#[derive(Deserialize)]
struct BookTagRow {
    goodreads_book_id: u64,
    tag_id: u32,
    count: i64,
}

/// Reads the dataset in `dir`: the first `limit_books` books of books.csv (all if `None`), their
/// genres, and unless `with_ratings` is false their ratings and raters.
pub(crate) fn load(
    dir: &Path,
    limit_books: Option<usize>,
    with_ratings: bool,
) -> anyhow::Result<Dataset> {
    let mut data = Dataset::default();
    let mut goodreads_ids = Vec::new();
    let mut seen = HashSet::new();
    read_csv(&dir.join("books.csv"), |row: BookRow, line| {
        if limit_books.is_some_and(|limit| data.books.len() + data.books_skipped.len() >= limit) {
            return Ok(());
        }
        anyhow::ensure!(
            seen.insert(row.book_id),
            "book_id {} appears twice",
            row.book_id
        );
        match book_from_row(&row, &mut data.isbn) {
            Ok(book) => {
                data.books.push(book);
                goodreads_ids.push(row.goodreads_book_id);
            }
            Err(reason) => data
                .books_skipped
                .push(format!("line {line} (book_id {}): {reason}", row.book_id)),
        }
        Ok(())
    })?;

    let mut counts = genre_counts(dir, &goodreads_ids)?;
    for (book, goodreads_id) in data.books.iter_mut().zip(&goodreads_ids) {
        let by_genre = counts.remove(goodreads_id).unwrap_or_default();
        book.genres = top_genres(by_genre.clone());
        data.genre_counts.push(by_genre);
    }

    data.ratings = vec![Vec::new(); data.books.len()];
    if with_ratings {
        load_ratings(dir, &mut data)?;
    }
    Ok(data)
}

fn book_from_row(row: &BookRow, isbn_stats: &mut IsbnStats) -> Result<GbBook, String> {
    let title = Title::parse(row.title.as_str())
        .or_else(|_| Title::parse(row.original_title.as_str()))
        .map_err(|e| format!("no usable title: {e}"))?;
    let authors = parse_authors(&row.authors);
    if authors.is_empty() {
        return Err(format!("no usable author in {:?}", row.authors));
    }
    Ok(GbBook {
        id: row.book_id,
        title,
        authors,
        genres: Vec::new(),
        year: parse_year(&row.original_publication_year),
        isbn: resolve_isbn(&row.isbn13, &row.isbn, isbn_stats),
    })
}

/// Splits goodbooks' comma-separated author list; unusable names are dropped.
pub(crate) fn parse_authors(raw: &str) -> Vec<AuthorName> {
    let mut authors: Vec<AuthorName> = Vec::new();
    for name in raw.split(',') {
        if let Ok(author) = AuthorName::parse(name.trim())
            && !authors.contains(&author)
        {
            authors.push(author);
        }
    }
    authors
}

/// `original_publication_year` is a float such as `2008.0` (or `-720.0`); empty, fractional or
/// implausible years give `None`.
pub(crate) fn parse_year(raw: &str) -> Option<Year> {
    let value: f64 = raw.trim().parse().ok()?;
    if !value.is_finite() || value.fract() != 0.0 || value.abs() > 1e6 {
        return None;
    }
    Year::parse(value as i32).ok()
}

/// Picks the book's ISBN, as an ISBN-13 where possible.
///
/// The `isbn13` column went through a float on its way into the CSV: most values read like
/// `9.78043902348e+12`, twelve significant digits of thirteen, so the check digit is gone and a
/// rounded value can still pass the checksum by chance (about one in ten). Such values are never
/// trusted. The `isbn` column kept every digit except leading zeros, so it is left-padded to ten
/// and checksum-validated, and its ISBN-13 (the same book's, by the 978 rule) is stored.
pub(crate) fn resolve_isbn(isbn13: &str, isbn10: &str, stats: &mut IsbnStats) -> Option<Isbn> {
    let isbn13 = isbn13.trim();
    let isbn10 = isbn10.trim();
    if isbn13.len() == 13
        && isbn13.bytes().all(|b| b.is_ascii_digit())
        && let Ok(isbn) = Isbn::parse(isbn13)
    {
        stats.from_isbn13 += 1;
        return Some(isbn);
    }
    if !isbn10.is_empty()
        && isbn10.len() <= 10
        && let Ok(isbn) = Isbn::parse(format!("{isbn10:0>10}"))
    {
        stats.from_isbn10 += 1;
        return Some(isbn.to_isbn13());
    }
    if isbn13.is_empty() && isbn10.is_empty() {
        stats.missing += 1;
    } else {
        stats.invalid += 1;
    }
    None
}

/// The canonical genre of a goodreads shelf name, if it is one.
pub(crate) fn genre_of_tag(tag: &str) -> Option<&'static str> {
    GENRE_TAGS
        .iter()
        .find(|(name, _)| *name == tag)
        .map(|(_, genre)| *genre)
}

/// How many readers shelved each book under each genre, keyed by goodreads book id.
fn genre_counts(
    dir: &Path,
    goodreads_ids: &[u64],
) -> anyhow::Result<HashMap<u64, HashMap<&'static str, i64>>> {
    let mut genre_of: HashMap<u32, &'static str> = HashMap::new();
    read_csv(&dir.join("tags.csv"), |row: TagRow, _| {
        if let Some(genre) = genre_of_tag(row.tag_name.trim()) {
            genre_of.insert(row.tag_id, genre);
        }
        Ok(())
    })?;
    let wanted: HashSet<u64> = goodreads_ids.iter().copied().collect();
    let mut counts: HashMap<u64, HashMap<&'static str, i64>> = HashMap::new();
    read_csv(&dir.join("book_tags.csv"), |row: BookTagRow, _| {
        if row.count > 0
            && wanted.contains(&row.goodreads_book_id)
            && let Some(genre) = genre_of.get(&row.tag_id)
        {
            *counts
                .entry(row.goodreads_book_id)
                .or_default()
                .entry(genre)
                .or_default() += row.count;
        }
        Ok(())
    })?;
    Ok(counts)
}

/// The `MAX_GENRES` most counted genres, ties broken by name so the result is deterministic.
pub(crate) fn top_genres(by_genre: HashMap<&'static str, i64>) -> Vec<Genre> {
    let mut ranked: Vec<_> = by_genre.into_iter().collect();
    ranked.sort_by(|(a, x), (b, y)| y.cmp(x).then(a.cmp(b)));
    ranked
        .into_iter()
        .filter_map(|(genre, _)| Genre::parse(genre).ok())
        .take(MAX_GENRES)
        .collect()
}

/// Reads ratings.csv with the one goodbooks ratings reader, keeping the imported books' rows: the
/// last row of a duplicated (book, user) pair wins, so each pair becomes one `PostReview` with the
/// final rating. A book's ratings keep the order of their pairs' first rows.
fn load_ratings(dir: &Path, data: &mut Dataset) -> anyhow::Result<()> {
    let index: HashMap<u32, usize> = data
        .books
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id, i))
        .collect();
    let read = goodbooks::read_rating_rows_file(
        &dir.join("ratings.csv"),
        goodbooks::ScalePolicy::Stars,
        |book| index.contains_key(&book),
    )?;
    let mut users = HashSet::new();
    for row in read.rows {
        let rating = Rating::parse(row.rating).map_err(|e| anyhow::anyhow!("{e}"))?;
        data.ratings[index[&row.book_id]].push((row.user_id, rating));
        users.insert(row.user_id);
    }
    data.users = users.into_iter().collect();
    data.users.sort_unstable();
    data.rating_stats = read.stats;
    Ok(())
}

/// Reads every row of a CSV file with headers into `T`, handing each to `f` with its line number.
/// Any failure names the file and line.
fn read_csv<T: DeserializeOwned>(
    path: &Path,
    mut f: impl FnMut(T, u64) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new().from_reader(BufReader::with_capacity(1 << 16, file));
    let headers = reader
        .headers()
        .with_context(|| format!("{}: reading the header line", path.display()))?
        .clone();
    let mut record = csv::StringRecord::new();
    loop {
        let next_line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(error) => {
                let line = error.position().map_or(next_line, |p| p.line());
                return Err(anyhow::anyhow!("{error}"))
                    .with_context(|| format!("{} line {line}: malformed CSV", path.display()));
            }
        }
        let line = record.position().map_or(next_line, |p| p.line());
        let row: T = record
            .deserialize(Some(&headers))
            .map_err(|e| describe(&e, &headers, &record))
            .with_context(|| format!("{} line {line}: malformed row", path.display()))?;
        f(row, line).with_context(|| format!("{} line {line}", path.display()))?;
    }
}

/// Says which column held what, instead of csv's "record 4 (line 5, byte 80): field 1: …".
fn describe(
    error: &csv::Error,
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
) -> anyhow::Error {
    if let csv::ErrorKind::Deserialize { err, .. } = error.kind() {
        return match err.field().map(|i| i as usize) {
            Some(i) => anyhow::anyhow!(
                "column {} = {:?}: {}",
                headers.get(i).unwrap_or("?"),
                record.get(i).unwrap_or(""),
                err.kind()
            ),
            None => anyhow::anyhow!("{}", err.kind()),
        };
    }
    anyhow::anyhow!("{error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_come_from_floats() {
        assert_eq!(parse_year("2008.0").map(Year::value), Some(2008));
        assert_eq!(parse_year("-720.0").map(Year::value), Some(-720));
        assert_eq!(parse_year(""), None);
        assert_eq!(parse_year("1999.5"), None);
        assert_eq!(parse_year("-17500.0"), None);
    }

    #[test]
    fn authors_are_split_and_trimmed() {
        let authors = parse_authors("J.K. Rowling, Mary GrandPré, ,J.K. Rowling");
        let names: Vec<_> = authors.iter().map(|a| a.as_str()).collect();
        assert_eq!(names, ["J.K. Rowling", "Mary GrandPré"]);
    }

    #[test]
    fn isbns_prefer_exact_values_and_never_trust_rounded_floats() {
        let mut stats = IsbnStats::default();
        // The Hunger Games: the float lost the check digit; the ISBN-10 is exact.
        let isbn = resolve_isbn("9.78043902348e+12", "439023483", &mut stats).unwrap();
        assert_eq!(isbn.as_str(), "9780439023481");
        // A rounded float that happens to pass the checksum is still not used alone.
        assert!(Isbn::parse("9780000000200").is_ok());
        assert_eq!(resolve_isbn("9.7800000002e+12", "", &mut stats), None);
        // Written out in full, an ISBN-13 is used as is.
        let exact = resolve_isbn("9780439023481", "", &mut stats).unwrap();
        assert_eq!(exact.as_str(), "9780439023481");
        // A bad checksum is counted as invalid.
        assert_eq!(resolve_isbn("", "812971060", &mut stats), None);
        assert_eq!(resolve_isbn("", "", &mut stats), None);
        assert_eq!(stats.from_isbn10, 1);
        assert_eq!(stats.from_isbn13, 1);
        assert_eq!(stats.invalid, 2);
        assert_eq!(stats.missing, 1);
    }

    #[test]
    fn genres_merge_variants_and_keep_the_top_three() {
        let mut counts = HashMap::new();
        for (tag, n) in [
            ("ya", 50),
            ("young-adult", 60),
            ("sci-fi", 100),
            ("fantasy", 30),
        ] {
            *counts.entry(genre_of_tag(tag).unwrap()).or_insert(0) += n;
        }
        counts.insert("fiction", 30);
        let genres: Vec<_> = top_genres(counts)
            .into_iter()
            .map(|g| g.as_str().to_string())
            .collect();
        assert_eq!(genres, ["young-adult", "science-fiction", "fantasy"]);
        assert_eq!(genre_of_tag("to-read"), None);
    }

    #[test]
    fn every_allowlisted_genre_is_a_valid_genre() {
        for (tag, genre) in GENRE_TAGS {
            let parsed = Genre::parse(*genre).unwrap();
            assert_eq!(parsed.as_str(), *genre, "{tag}");
        }
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(book_id(1), book_id(1));
        assert_ne!(book_id(1), book_id(2));
        assert_ne!(Uuid::from(user_id(1)), Uuid::from(book_id(1)));
        assert_eq!(
            derive("goodbooks:book:1"),
            Uuid::new_v5(&NAMESPACE, b"goodbooks:book:1")
        );
    }
}
