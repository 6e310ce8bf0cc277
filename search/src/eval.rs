//! Offline evaluation of search quality: query sets generated from a catalogue with a fixed
//! seed, and the figures `quire search eval` reports for Quire and for a baseline engine.
//!
//! **Known-item queries** look for one book, typed as people type: the exact title (without a
//! series note), with one or two typos, a prefix cut mid-word, the author's surname and a title
//! word, lowercased without punctuation, and an ISBN in either form. A hit counts if it is the
//! book or another edition of it (same title and first author). **Genre queries** name one or
//! two genres ("young adult fantasy"); each book's grade comes from how many readers shelved it
//! under every named genre, so nDCG rewards the books readers most associate with them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::index::BookDoc;
use crate::text::{normalized, tokens, without_series};

/// A book of the evaluation catalogue with the readers' shelf counts per genre.
#[derive(Debug, Clone)]
pub struct EvalBook {
    pub doc: BookDoc,
    /// Genre → how many readers shelved the book under it.
    pub genre_counts: HashMap<String, u64>,
}

/// The query classes.
pub const CLASSES: [&str; 7] = [
    "exact",
    "typo1",
    "typo2",
    "prefix",
    "author_title",
    "lowercase",
    "isbn",
];

/// One generated query.
#[derive(Debug, Clone)]
pub struct EvalQuery {
    pub class: &'static str,
    pub text: String,
    /// Book id → grade (1 for the sought book and its other editions; 1..=3 for genre queries).
    pub relevant: HashMap<String, u32>,
}

/// Deterministic numbers (SplitMix64), so a seed always gives the same query set.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Generates `per_class` known-item queries of every class and up to `genre_queries` genre
/// queries from `books`.
pub fn generate(
    books: &[EvalBook],
    per_class: usize,
    genre_queries: usize,
    seed: u64,
) -> Vec<EvalQuery> {
    let mut rng = Rng::new(seed);
    // Editions: books with the same bare title and first author are the same book to a reader.
    let mut editions: HashMap<String, Vec<&str>> = HashMap::new();
    for b in books {
        editions
            .entry(edition_key(&b.doc))
            .or_default()
            .push(&b.doc.book_id);
    }
    let relevant_for = |doc: &BookDoc| -> HashMap<String, u32> {
        editions[&edition_key(doc)]
            .iter()
            .map(|id| (id.to_string(), 1))
            .collect()
    };
    let mut out = Vec::new();
    for class in CLASSES {
        let mut made = 0;
        let mut attempts = 0;
        while made < per_class && attempts < per_class * 50 {
            attempts += 1;
            let book = &books[rng.below(books.len())].doc;
            if let Some(text) = make_query(class, book, &mut rng) {
                out.push(EvalQuery {
                    class,
                    text,
                    relevant: relevant_for(book),
                });
                made += 1;
            }
        }
    }
    out.extend(genre_set(books, genre_queries));
    out
}

fn edition_key(doc: &BookDoc) -> String {
    format!(
        "{}|{}",
        normalized(without_series(&doc.title)),
        doc.authors
            .first()
            .map(|a| normalized(a))
            .unwrap_or_default()
    )
}

fn make_query(class: &str, book: &BookDoc, rng: &mut Rng) -> Option<String> {
    let title = without_series(&book.title).to_string();
    match class {
        "exact" => Some(title),
        "typo1" => typo_words(&title, 1, rng),
        "typo2" => typo_words(&title, 2, rng),
        "prefix" => {
            let chars: Vec<char> = title.chars().collect();
            if chars.len() < 5 {
                return None;
            }
            // At least half the title and four characters: typing stops once the title is
            // told apart, and a shorter prefix ("Red" for "Redshirts") has no single answer.
            let lo = chars.len().div_ceil(2).max(4);
            let hi = (chars.len() * 9 / 10).max(lo + 1);
            let cut = lo + rng.below(hi - lo);
            let typed: String = chars[..cut].iter().collect();
            // Cut inside a word, as typing is caught mid-word.
            let next = chars.get(cut).copied();
            if typed.ends_with(char::is_whitespace)
                || next.is_none_or(|c| !c.is_alphanumeric())
                || !typed.chars().last().is_some_and(char::is_alphanumeric)
            {
                return None;
            }
            Some(typed)
        }
        "author_title" => {
            let surname = book.authors.first().and_then(|a| tokens(a).pop())?;
            let words: Vec<String> = tokens(&title)
                .into_iter()
                .filter(|w| w.chars().count() >= 4)
                .collect();
            if words.is_empty() || surname.chars().count() < 3 {
                return None;
            }
            let word = &words[rng.below(words.len())];
            Some(format!("{surname} {word}"))
        }
        "lowercase" => {
            let text: String = title
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || c.is_whitespace())
                .collect();
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            (!text.is_empty() && text != title).then_some(text)
        }
        "isbn" => {
            let forms = crate::isbn::index_forms(book.isbn.as_deref()?);
            Some(forms[rng.below(forms.len())].clone())
        }
        _ => None,
    }
}

/// `title` with `typos` edits: two in one word of 9+ letters, or one in each of two words of
/// 5+ letters, or one in a word of 5+.
fn typo_words(title: &str, typos: usize, rng: &mut Rng) -> Option<String> {
    let mut words: Vec<String> = title.split(' ').map(str::to_string).collect();
    let long = |min: usize, words: &[String]| -> Vec<usize> {
        words
            .iter()
            .enumerate()
            .filter(|(_, w)| w.chars().filter(|c| c.is_alphabetic()).count() >= min)
            .map(|(i, _)| i)
            .collect()
    };
    if typos == 1 {
        let candidates = long(5, &words);
        let i = *candidates.get(rng.below(candidates.len()))?;
        words[i] = typo(&words[i], rng);
    } else {
        let nine = long(9, &words);
        let five = long(5, &words);
        if !nine.is_empty() && (five.len() < 2 || rng.below(2) == 0) {
            let i = nine[rng.below(nine.len())];
            let once = typo(&words[i], rng);
            words[i] = typo(&once, rng);
        } else if five.len() >= 2 {
            let a = rng.below(five.len());
            let mut b = rng.below(five.len() - 1);
            if b >= a {
                b += 1;
            }
            words[five[a]] = typo(&words[five[a]], rng);
            words[five[b]] = typo(&words[five[b]], rng);
        } else {
            return None;
        }
    }
    let typed = words.join(" ");
    (typed != title).then_some(typed)
}

/// One edit of a word's letters: a substitution, deletion, insertion or swap of neighbours.
fn typo(word: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let letters: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_alphabetic())
        .map(|(i, _)| i)
        .collect();
    if letters.len() < 2 {
        return word.to_string();
    }
    // Never the first letter: people rarely mistype it, and every engine relies on it.
    let at = letters[1 + rng.below(letters.len() - 1)];
    let random = (b'a' + rng.below(26) as u8) as char;
    match rng.below(4) {
        0 => {
            let replacement = if chars[at].to_ascii_lowercase() == random {
                if random == 'z' {
                    'a'
                } else {
                    (random as u8 + 1) as char
                }
            } else {
                random
            };
            chars[at] = replacement;
        }
        1 => {
            chars.remove(at);
        }
        2 => chars.insert(at, random),
        _ => {
            if at + 1 < chars.len() && chars[at + 1].is_alphabetic() && chars[at] != chars[at + 1] {
                chars.swap(at, at + 1);
            } else {
                chars.swap(at - 1, at);
            }
        }
    }
    chars.into_iter().collect()
}

/// Genre queries: every genre alone, and the most common pairs, each graded by shelf counts.
fn genre_set(books: &[EvalBook], limit: usize) -> Vec<EvalQuery> {
    let mut totals: HashMap<&str, u64> = HashMap::new();
    let mut pairs: HashMap<(&str, &str), u64> = HashMap::new();
    for b in books {
        let mut genres: Vec<&str> = b.doc.genres.iter().map(String::as_str).collect();
        genres.sort_unstable();
        for (i, g) in genres.iter().enumerate() {
            *totals.entry(g).or_default() += 1;
            for h in &genres[i + 1..] {
                *pairs.entry((g, h)).or_default() += 1;
            }
        }
    }
    let mut singles: Vec<(&str, u64)> = totals.into_iter().collect();
    singles.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut pairs: Vec<((&str, &str), u64)> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut queries: Vec<Vec<&str>> = Vec::new();
    for (i, (g, _)) in singles.iter().enumerate() {
        queries.push(vec![g]);
        if let Some(((a, b), _)) = pairs.get(i) {
            queries.push(vec![a, b]);
        }
    }
    queries.truncate(limit);
    queries
        .into_iter()
        .map(|genres| {
            let relevant = books
                .iter()
                .filter_map(|b| {
                    let least = genres
                        .iter()
                        .map(|g| b.genre_counts.get(*g).copied().unwrap_or(0))
                        .min()
                        .unwrap_or(0);
                    // 1 for a few readers, 2 from 100, 3 from 1,000.
                    let grade = match least {
                        0 => 0,
                        1..=99 => 1,
                        100..=999 => 2,
                        _ => 3,
                    };
                    (grade > 0).then(|| (b.doc.book_id.clone(), grade))
                })
                .collect();
            EvalQuery {
                class: "genre",
                text: genres.join(" ").replace('-', " "),
                relevant,
            }
        })
        .collect()
}

/// One query's reciprocal rank, success at 1, nDCG@10 and time.
type QueryFigures = (f64, f64, f64, Duration);

/// The figures of one engine on one class.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClassFigures {
    pub class: String,
    pub queries: usize,
    pub mrr10: f64,
    pub success1: f64,
    pub ndcg10: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Scores ranked ids against the queries: per class, then `overall` over the known-item classes.
pub fn score(queries: &[EvalQuery], ranked: &[(Vec<String>, Duration)]) -> Vec<ClassFigures> {
    let mut by_class: Vec<(String, Vec<QueryFigures>)> = Vec::new();
    for (query, (ids, took)) in queries.iter().zip(ranked) {
        let rr = ids
            .iter()
            .take(10)
            .position(|id| query.relevant.contains_key(id))
            .map_or(0.0, |i| 1.0 / (i + 1) as f64);
        let s1 = f64::from(u8::from(
            ids.first()
                .is_some_and(|id| query.relevant.contains_key(id)),
        ));
        let ndcg = ndcg10(ids, &query.relevant);
        let entry = match by_class.iter_mut().find(|(c, _)| c == query.class) {
            Some(e) => e,
            None => {
                by_class.push((query.class.to_string(), Vec::new()));
                by_class.last_mut().expect("pushed")
            }
        };
        entry.1.push((rr, s1, ndcg, *took));
    }
    let known: Vec<QueryFigures> = by_class
        .iter()
        .filter(|(c, _)| c != "genre")
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let mut out: Vec<ClassFigures> = by_class
        .iter()
        .map(|(class, v)| figures(class, v))
        .collect();
    out.insert(0, figures("overall", &known));
    out
}

fn figures(class: &str, rows: &[QueryFigures]) -> ClassFigures {
    let n = rows.len().max(1) as f64;
    let mut times: Vec<f64> = rows.iter().map(|r| r.3.as_secs_f64() * 1e3).collect();
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if times.is_empty() {
            0.0
        } else {
            times[((times.len() - 1) as f64 * p).round() as usize]
        }
    };
    ClassFigures {
        class: class.to_string(),
        queries: rows.len(),
        mrr10: rows.iter().map(|r| r.0).sum::<f64>() / n,
        success1: rows.iter().map(|r| r.1).sum::<f64>() / n,
        ndcg10: rows.iter().map(|r| r.2).sum::<f64>() / n,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

/// nDCG@10 of one ranking.
pub fn ndcg10(ids: &[String], relevant: &HashMap<String, u32>) -> f64 {
    let gain = |g: u32| f64::from((1u32 << g) - 1);
    // `+ 0.0`: the sum of nothing is -0.0, which would print as "-0.000".
    let dcg: f64 = ids
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, id)| gain(relevant.get(id).copied().unwrap_or(0)) / ((i + 2) as f64).log2())
        .sum::<f64>()
        + 0.0;
    let mut ideal: Vec<u32> = relevant.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, &g)| gain(g) / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Times `f` over every query, returning its ranked ids.
pub fn run_queries(
    queries: &[EvalQuery],
    mut f: impl FnMut(&str) -> Vec<String>,
) -> Vec<(Vec<String>, Duration)> {
    queries
        .iter()
        .map(|q| {
            let started = Instant::now();
            let ids = f(&q.text);
            (ids, started.elapsed())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(id: &str, title: &str, author: &str, genres: &[&str]) -> EvalBook {
        EvalBook {
            doc: BookDoc {
                book_id: id.into(),
                title: title.into(),
                authors: vec![author.into()],
                genres: genres.iter().map(|g| g.to_string()).collect(),
                isbn: Some("9780441172719".into()),
                ..BookDoc::default()
            },
            genre_counts: genres.iter().map(|g| (g.to_string(), 150)).collect(),
        }
    }

    #[test]
    fn generated_queries_are_deterministic_and_of_their_class() {
        let books = vec![
            book(
                "1",
                "The Fellowship of the Ring (The Lord of the Rings, #1)",
                "J.R.R. Tolkien",
                &["fantasy"],
            ),
            book(
                "2",
                "Harry Potter and the Sorcerer's Stone",
                "J.K. Rowling",
                &["fantasy", "young-adult"],
            ),
        ];
        let a = generate(&books, 5, 10, 7);
        let b = generate(&books, 5, 10, 7);
        assert_eq!(
            a.iter().map(|q| q.text.clone()).collect::<Vec<_>>(),
            b.iter().map(|q| q.text.clone()).collect::<Vec<_>>()
        );
        for q in a.iter().filter(|q| q.class == "exact") {
            assert!(
                !q.text.contains("#1"),
                "series notes are not typed: {}",
                q.text
            );
        }
        for q in a.iter().filter(|q| q.class == "typo1") {
            let original = if q.relevant.contains_key("1") {
                "The Fellowship of the Ring"
            } else {
                "Harry Potter and the Sorcerer's Stone"
            };
            assert_ne!(q.text, original);
        }
        assert!(
            a.iter()
                .any(|q| q.class == "genre" && q.text == "fantasy young adult")
        );
    }

    #[test]
    fn figures_are_mean_reciprocal_rank_and_ndcg() {
        let q = |class, id: &str| EvalQuery {
            class,
            text: String::new(),
            relevant: [(id.to_string(), 1)].into(),
        };
        let queries = [q("exact", "a"), q("exact", "b")];
        let ranked = vec![
            (vec!["a".to_string()], Duration::ZERO),
            (vec!["x".to_string(), "b".to_string()], Duration::ZERO),
        ];
        let figures = score(&queries, &ranked);
        assert_eq!(figures[0].class, "overall");
        assert!((figures[0].mrr10 - 0.75).abs() < 1e-9);
        assert!((figures[0].success1 - 0.5).abs() < 1e-9);
    }
}
