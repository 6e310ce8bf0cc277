//! `quire search eval`: search quality on query sets generated from goodbooks-10k, Quire's
//! index beside a SQLite FTS5 baseline in the same run.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use quire_search::eval::{self, ClassFigures, EvalBook};
use quire_search::{BookDoc, SearchIndex, SearchRequest, Weights};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use crate::cli::import::goodbooks;

#[derive(Subcommand)]
pub(crate) enum SearchCommand {
    /// Generate known-item and genre queries from goodbooks-10k in DIR (books.csv, tags.csv,
    /// book_tags.csv, ratings.csv) with a fixed seed, and report MRR@10, Success@1 and nDCG@10
    /// per query class for Quire's index and for SQLite FTS5 (bm25), with query latencies.
    Eval {
        /// The goodbooks-10k directory.
        #[arg(long)]
        data: PathBuf,
        /// Known-item queries per class.
        #[arg(long, default_value_t = 500)]
        per_class: usize,
        /// Genre queries.
        #[arg(long, default_value_t = 60)]
        genre_queries: usize,
        /// Seed of the query generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Print each query Quire ranked the sought book below first, for looking into misses.
        #[arg(long)]
        misses: bool,
        /// Try another ranking weight (`--weight popularity=0.3`; repeatable; the names are the
        /// fields of `quire_search::Weights`).
        #[arg(long = "weight")]
        weights: Vec<String>,
    },
}

pub(crate) async fn run(command: SearchCommand) -> anyhow::Result<()> {
    match command {
        SearchCommand::Eval {
            data,
            per_class,
            genre_queries,
            seed,
            json,
            misses,
            weights,
        } => {
            let mut w = Weights::default();
            for assignment in &weights {
                w.set(assignment)
                    .map_err(|e| anyhow::anyhow!("--weight: {e}"))?;
            }
            evaluate(data, per_class, genre_queries, seed, json, misses, w).await
        }
    }
}

async fn evaluate(
    dir: PathBuf,
    per_class: usize,
    genre_queries: usize,
    seed: u64,
    json: bool,
    misses: bool,
    weights: Weights,
) -> anyhow::Result<()> {
    let books = goodbooks_eval_books(&dir)?;
    let queries = eval::generate(&books, per_class, genre_queries, seed);

    // Quire: the same index the server keeps, built straight from the documents.
    let dir = tempfile::tempdir().context("creating a temporary index directory")?;
    let started = std::time::Instant::now();
    let index = SearchIndex::open(dir.path())?;
    for book in &books {
        index.upsert(&book.doc)?;
    }
    index.commit(1)?;
    let build = started.elapsed();
    let quire_ranked = eval::run_queries(&queries, |q| {
        let request = SearchRequest {
            q: q.to_string(),
            limit: 10,
            ..SearchRequest::default()
        };
        index
            .search(&request, &weights)
            .map(|r| r.hits.into_iter().map(|h| h.book.book_id).collect())
            .unwrap_or_default()
    });
    let quire = eval::score(&queries, &quire_ranked);

    let fts = Fts5::build(&books).await?;
    let mut fts_ranked = Vec::with_capacity(queries.len());
    for q in &queries {
        let started = std::time::Instant::now();
        let ids = fts.search(&q.text).await?;
        fts_ranked.push((ids, started.elapsed()));
    }
    let baseline = eval::score(&queries, &fts_ranked);

    if misses {
        for (q, (ids, _)) in queries.iter().zip(&quire_ranked) {
            if q.class == "genre" {
                eprintln!(
                    "[genre] {:?}: nDCG@10 {:.3}, grades of the top 10: {:?}",
                    q.text,
                    eval::ndcg10(ids, &q.relevant),
                    ids.iter()
                        .take(10)
                        .map(|id| q.relevant.get(id).copied().unwrap_or(0))
                        .collect::<Vec<_>>()
                );
            }
            if q.class != "genre" && !ids.first().is_some_and(|id| q.relevant.contains_key(id)) {
                let title = |id: &String| {
                    books
                        .iter()
                        .find(|b| &b.doc.book_id == id)
                        .map(|b| b.doc.title.clone())
                        .unwrap_or_default()
                };
                let wanted = q.relevant.keys().next().map(title).unwrap_or_default();
                let got = ids.first().map(title).unwrap_or_else(|| "-".into());
                let rank = ids
                    .iter()
                    .position(|id| q.relevant.contains_key(id))
                    .map_or("-".to_string(), |i| (i + 1).to_string());
                eprintln!(
                    "[{}] {:?} → wanted {wanted:?} (rank {rank}), got {got:?}",
                    q.class, q.text
                );
            }
        }
    }

    if json {
        println!(
            "{}",
            serde_json::json!({
                "books": books.len(),
                "queries": queries.len(),
                "seed": seed,
                "index_build_ms": build.as_millis(),
                "index_bytes": index.size_bytes(),
                "quire": quire,
                "sqlite_fts5": baseline,
            })
        );
        return Ok(());
    }
    println!(
        "{} books, {} queries (seed {seed}); Quire's index built in {:.1} s, {:.1} MB",
        books.len(),
        queries.len(),
        build.as_secs_f64(),
        index.size_bytes() as f64 / 1e6
    );
    print_table("quire (tantivy)", &quire);
    print_table("sqlite fts5 (bm25)", &baseline);
    Ok(())
}

/// The goodbooks-10k catalogue in DIR as search documents, each with its ratings count and
/// average from ratings.csv and its readers' shelf counts per genre: what `quire search eval`
/// and the search bench index.
pub fn goodbooks_eval_books(dir: &Path) -> anyhow::Result<Vec<EvalBook>> {
    let data = goodbooks::load(dir, None, true)
        .with_context(|| format!("reading goodbooks-10k in {}", dir.display()))?;
    Ok(data
        .books
        .iter()
        .zip(&data.ratings)
        .zip(&data.genre_counts)
        .map(|((b, ratings), counts)| {
            let count = ratings.len() as u64;
            let sum: u64 = ratings.iter().map(|(_, r)| u64::from(r.value())).sum();
            EvalBook {
                doc: BookDoc {
                    book_id: goodbooks::book_id(b.id).to_string(),
                    title: b.title.as_str().to_string(),
                    authors: b.authors.iter().map(|a| a.as_str().to_string()).collect(),
                    genres: b.genres.iter().map(|g| g.as_str().to_string()).collect(),
                    year: b.year.map(|y| y.value()),
                    isbn: b.isbn.as_ref().map(|i| i.as_str().to_string()),
                    description: None,
                    summary: None,
                    ratings_count: count,
                    rating_average: if count == 0 {
                        0.0
                    } else {
                        sum as f64 / count as f64
                    },
                },
                genre_counts: counts
                    .iter()
                    .map(|(g, n)| (g.to_string(), (*n).max(0) as u64))
                    .collect(),
            }
        })
        .collect())
}

fn print_table(name: &str, figures: &[ClassFigures]) {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "class", "queries", "MRR@10", "S@1", "nDCG@10", "p50 ms", "p99 ms",
        ]);
    for f in figures {
        table.add_row([
            f.class.clone(),
            f.queries.to_string(),
            format!("{:.3}", f.mrr10),
            format!("{:.3}", f.success1),
            format!("{:.3}", f.ndcg10),
            format!("{:.2}", f.p50_ms),
            format!("{:.2}", f.p99_ms),
        ]);
    }
    println!("{name}\n{table}");
}

/// The baseline: an FTS5 table over the same fields, every token required, the last one as a
/// prefix (as a search box would), ranked by bm25 with title and authors weighted up.
struct Fts5 {
    pool: SqlitePool,
    ids: Vec<String>,
}

impl Fts5 {
    async fn build(books: &[EvalBook]) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE VIRTUAL TABLE books USING fts5(title, authors, genres, isbn, \
             tokenize = 'unicode61 remove_diacritics 2')",
        )
        .execute(&pool)
        .await?;
        let mut tx = pool.begin().await?;
        for (i, b) in books.iter().enumerate() {
            let isbn = b
                .doc
                .isbn
                .as_deref()
                .map(|i| quire_search::isbn::index_forms(i).join(" "))
                .unwrap_or_default();
            sqlx::query(
                "INSERT INTO books (rowid, title, authors, genres, isbn) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(i as i64)
            .bind(&b.doc.title)
            .bind(b.doc.authors.join(", "))
            .bind(b.doc.genres.join(" ").replace('-', " "))
            .bind(isbn)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Self {
            pool,
            ids: books.iter().map(|b| b.doc.book_id.clone()).collect(),
        })
    }

    async fn search(&self, q: &str) -> anyhow::Result<Vec<String>> {
        let compact: String = q.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
        let tokens = if quire_search::isbn::isbn_forms(q).is_some() {
            vec![compact.to_ascii_lowercase()]
        } else {
            quire_search::text::tokens(q)
        };
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let last = tokens.len() - 1;
        let expression = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i == last && !q.ends_with(' ') {
                    format!("\"{t}\"*")
                } else {
                    format!("\"{t}\"")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let rows = sqlx::query(
            "SELECT rowid FROM books WHERE books MATCH ? \
             ORDER BY bm25(books, 10.0, 5.0, 2.0, 1.0) LIMIT 10",
        )
        .bind(expression)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| self.ids[r.get::<i64, _>(0) as usize].clone())
            .collect())
    }
}
