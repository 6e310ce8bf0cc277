//! Serving recommendations: the [`Recommender`] holds the newest trained model (loaded from the
//! read-model database and swapped atomically when a newer one appears) and a catalogue snapshot
//! for cold start and reasons. It does no HTTP: the API's `GET /recommendations` calls
//! [`Recommender::recommend`] and maps its answer and its [`RecsError`] onto the wire.
//!
//! A member with interactions on the model's books gets collaborative recommendations from the
//! hybrid model (implicit ALS blended with BM25 item-item): their ALS factor is folded in and their
//! item-item scores summed from their current interactions (so a like counts at once, without
//! retraining), every model book is scored, and each recommendation is explained by the member's
//! book that contributes most to it. A member without any gets the cold-start list: their favourite genres
//! first, then everything, each by its Bayesian average rating (damped toward the catalogue's mean,
//! so a book with one 5-star review does not top a classic).
//!
//! Pages are keyset pages over one ranking: the cursor carries the strategy, the model version and
//! the last (score, index) returned, so books the member rates or likes between pages drop out
//! without shifting the others. A collaborative cursor from a model that has since been replaced
//! is refused ([`RecsError::StaleCursor`]): the ranking it continues no longer exists.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use quire_domain::ids::{BookId, UserId};
use quire_recs::{HybridModel, Signals, Weights};
use serde::{Deserialize, Serialize};

use super::storage::{CatalogBook, StoredModel};
use super::training::{HYBRID, LEGACY_HYBRID, TrainOptions};
use crate::{InteractionRow, ProjectionName, ReadModelError, ReadModels, cursor};

/// How recommendations are served.
#[derive(Debug, Clone)]
pub struct RecsOptions {
    /// How often to look for a newer model and a changed catalogue.
    pub refresh: Duration,
    /// The weight, in ratings, of the prior in the Bayesian average (the catalogue's mean rating).
    pub prior_weight: f64,
    /// Signal weights for members when the stored model does not record its own.
    pub weights: Weights,
}

impl Default for RecsOptions {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(30),
            prior_weight: 25.0,
            weights: Weights::default(),
        }
    }
}

/// A loaded model.
struct Served {
    version: u64,
    covers: u64,
    trained_at: i64,
    algorithm: String,
    chosen: String,
    validation_ndcg: Option<f64>,
    hybrid: HybridModel,
    weights: Weights,
    books: Vec<BookId>,
    index: HashMap<BookId, u32>,
}

impl Served {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            version: self.version,
            algorithm: self.algorithm.clone(),
            chosen: self.chosen.clone(),
            validation_ndcg: self.validation_ndcg,
            trained_at: self.trained_at,
            covers_position: self.covers,
        }
    }
}

/// The catalogue as recommendations see it.
#[derive(Default)]
struct Catalog {
    books: Vec<CatalogBook>,
    index: HashMap<BookId, usize>,
    /// Bayesian average rating per book.
    bayes: Vec<f64>,
    /// The books/reviews checkpoints it was read at.
    read_at: (u64, u64),
}

impl Catalog {
    fn new(books: Vec<CatalogBook>, prior_weight: f64, read_at: (u64, u64)) -> Self {
        let (sum, count) = books
            .iter()
            .fold((0u64, 0u64), |(s, c), b| (s + b.rating_sum, c + b.ratings));
        let mean = if count == 0 {
            3.0
        } else {
            sum as f64 / count as f64
        };
        let bayes = books
            .iter()
            .map(|b| {
                quire_recs::bayesian_average(b.rating_sum as f64, b.ratings, mean, prior_weight)
            })
            .collect();
        let index = books.iter().enumerate().map(|(i, b)| (b.id, i)).collect();
        Self {
            books,
            index,
            bayes,
            read_at,
        }
    }

    fn in_genres(&self, book: usize, genres: &[String]) -> Option<&str> {
        self.books[book]
            .genres
            .iter()
            .find(|g| genres.iter().any(|want| want.eq_ignore_ascii_case(g)))
            .map(String::as_str)
    }
}

struct Snapshot {
    model: Option<Arc<Served>>,
    catalog: Arc<Catalog>,
    checked: Option<Instant>,
}

/// Why a recommendation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonCode {
    BecauseRated,
    BecauseLiked,
    BecauseViewed,
    PopularInGenre,
    HighlyRated,
    /// A book nobody has rated yet, in a genre the member favours (or asked for).
    InGenre,
    /// A book nobody has rated yet, outside the member's genres.
    NewInCatalogue,
}

/// One recommended book.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub book_id: BookId,
    pub title: String,
    pub genres: Vec<String>,
    pub score: f32,
    /// Readable: "because you rated Dune", "popular in fantasy".
    pub reason: String,
    pub reason_code: ReasonCode,
    /// The member's book that explains a collaborative recommendation.
    pub because_book_id: Option<BookId>,
}

/// Which ranking a page comes from (named in cursors as `collaborative` and `cold_start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Collaborative,
    ColdStart,
}

/// The model a page was ranked with.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub version: u64,
    pub algorithm: String,
    /// The blend served, e.g. `0.70 bm25(k1 5, b 1, 400 nn) + 0.30 als(alpha 30, λ 1, 64 f)`.
    pub chosen: String,
    /// Its NDCG@10 on the validation split it was chosen on (`None`: fixed parameters).
    pub validation_ndcg: Option<f64>,
    /// Microseconds since the epoch.
    pub trained_at: i64,
    /// The event-log position whose interactions it was trained on.
    pub covers_position: u64,
}

/// One page of recommendations.
#[derive(Debug, Clone, PartialEq)]
pub struct RecsPage {
    pub user_id: UserId,
    pub strategy: Strategy,
    pub items: Vec<Recommendation>,
    pub next_cursor: Option<String>,
    pub model: Option<ModelInfo>,
}

/// What a page asks for.
#[derive(Debug, Clone)]
pub struct RecsRequest {
    pub user: UserId,
    /// The member's favourite genres (cold start starts with them).
    pub favourite_genres: Vec<String>,
    /// Only books in one of these genres, when not empty.
    pub genres: Vec<String>,
    pub limit: usize,
    pub cursor: Option<String>,
    /// The caller's consistency token: the catalogue must reflect the log up to here.
    pub consistency: Option<u64>,
}

/// Why a page cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RecsError {
    #[error("the cursor is not one this API issued")]
    BadCursor,
    #[error(
        "the recommendations were retrained since this cursor was issued (model {was}, now {now}); start again from the first page"
    )]
    StaleCursor { was: u64, now: u64 },
    #[error(transparent)]
    Read(#[from] ReadModelError),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// Strategy.
    t: Strategy,
    /// Model version (collaborative).
    v: u64,
    /// Last score returned.
    s: f32,
    /// Last index returned (model item or catalogue position).
    i: u32,
}

impl Cursor {
    fn encode(&self) -> String {
        cursor::encode(self)
    }

    fn decode(text: &str) -> Result<Self, RecsError> {
        cursor::decode::<Self>(text)
            .filter(|c| c.s.is_finite())
            .ok_or(RecsError::BadCursor)
    }

    /// Whether `(score, index)` comes after the cursor in the ranking (score descending, then
    /// index ascending).
    fn before(&self, score: f32, index: u32) -> bool {
        score < self.s || (score == self.s && index > self.i)
    }
}

/// The youngest a catalogue snapshot is replaced at when the catalogue moves.
const CATALOG_MIN_AGE: Duration = Duration::from_secs(1);

/// Serves recommendations; cheap to share.
pub struct Recommender {
    read: ReadModels,
    options: RecsOptions,
    snapshot: RwLock<Arc<Snapshot>>,
    loading: tokio::sync::Mutex<()>,
}

impl Recommender {
    pub fn new(read: ReadModels, options: RecsOptions) -> Self {
        Self {
            read,
            options,
            snapshot: RwLock::new(Arc::new(Snapshot {
                model: None,
                catalog: Arc::new(Catalog::default()),
                checked: None,
            })),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// When the model being served was trained, microseconds since the epoch.
    pub fn trained_at(&self) -> Option<i64> {
        self.current().model.as_ref().map(|m| m.trained_at)
    }

    /// The version of the model being served.
    pub fn model_version(&self) -> Option<u64> {
        self.current().model.as_ref().map(|m| m.version)
    }

    /// Refreshes in the background every `refresh` (the first request refreshes too).
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::downgrade(self);
        let every = self.options.refresh;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = this.upgrade() else { return };
                if let Err(error) = this.refresh().await {
                    tracing::warn!(%error, "refreshing recommendations failed; serving the previous model");
                }
            }
        })
    }

    /// Loads a newer model and a changed catalogue, if any, and swaps them in.
    #[tracing::instrument(name = "recs.refresh", skip(self))]
    pub async fn refresh(&self) -> Result<(), ReadModelError> {
        let _one_at_a_time = self.loading.lock().await;
        let old = self.current();
        let statuses = self.read.statuses().await?;
        let at = |name: ProjectionName| {
            statuses
                .iter()
                .find(|s| s.name == name)
                .map_or(0, |s| s.position)
        };
        let read_at = (at(ProjectionName::Books), at(ProjectionName::Reviews));
        let catalog = if old.checked.is_none() || old.catalog.read_at != read_at {
            let books = self.read.recs_catalog().await?;
            Arc::new(Catalog::new(books, self.options.prior_weight, read_at))
        } else {
            old.catalog.clone()
        };
        let newest = self.read.newest_recs_model_version().await?;
        let model = match (newest, &old.model) {
            (Some(v), Some(m)) if m.version == v => Some(m.clone()),
            (Some(v), _) => match self.read.recs_model(v).await? {
                Some(stored) => match self.load(stored) {
                    Ok(served) => {
                        tracing::info!(
                            version = served.version,
                            covers = served.covers,
                            "serving a new recommendation model"
                        );
                        Some(Arc::new(served))
                    }
                    Err(error) => {
                        tracing::error!(version = v, %error, "a stored recommendation model does not load; keeping the previous one");
                        old.model.clone()
                    }
                },
                None => old.model.clone(),
            },
            (None, _) => None,
        };
        let next = Arc::new(Snapshot {
            model,
            catalog,
            checked: Some(Instant::now()),
        });
        *self
            .snapshot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
        Ok(())
    }

    fn load(&self, stored: StoredModel) -> Result<Served, String> {
        if stored.algorithm != HYBRID && stored.algorithm != LEGACY_HYBRID {
            return Err(format!("unknown algorithm {:?}", stored.algorithm));
        }
        let hybrid = HybridModel::from_bytes(&stored.model).map_err(|e| e.to_string())?;
        if hybrid.n_items() != stored.books.len() {
            return Err(format!(
                "a model of {} items for {} books",
                hybrid.n_items(),
                stored.books.len()
            ));
        }
        // Read once: the training options, and what was chosen with its validation NDCG when it
        // was selected.
        let params: serde_json::Value =
            serde_json::from_str(&stored.params).unwrap_or(serde_json::Value::Null);
        let options = TrainOptions::deserialize(&params).ok();
        let weights = options
            .as_ref()
            .map_or_else(|| self.options.weights.clone(), |p| p.weights.clone());
        let chosen = params["model"]
            .as_str()
            .map(str::to_string)
            .or_else(|| options.map(|o| o.choice().name()))
            .unwrap_or_default();
        let validation_ndcg = params["selection"]["validation_ndcg"].as_f64();
        let index = stored
            .books
            .iter()
            .enumerate()
            .map(|(i, b)| (*b, i as u32))
            .collect();
        Ok(Served {
            version: stored.version,
            covers: stored.covers,
            trained_at: stored.trained_at,
            algorithm: stored.algorithm,
            chosen,
            validation_ndcg,
            hybrid,
            weights,
            books: stored.books,
            index,
        })
    }

    /// One page of recommendations for a member.
    #[tracing::instrument(name = "recs.recommend", skip(self, request), fields(user = %request.user, limit = request.limit))]
    pub async fn recommend(&self, request: &RecsRequest) -> Result<RecsPage, RecsError> {
        let snapshot = self.current();
        let (books, reviews) = snapshot.catalog.read_at;
        let behind = request
            .consistency
            .is_some_and(|token| books.min(reviews) < token);
        // The catalogue moved since it was read (books added, reviews changed): reload it, at most
        // once a second, so new books show up at once without a reload per request under load.
        let moved = [
            (ProjectionName::Books, books),
            (ProjectionName::Reviews, reviews),
        ]
        .into_iter()
        .any(|(name, read_at)| *self.read.checkpoint_watch(name).borrow() > read_at);
        let snapshot = match snapshot.checked {
            Some(at)
                if at.elapsed() < self.options.refresh * 2
                    && !behind
                    && !(moved && at.elapsed() >= CATALOG_MIN_AGE) =>
            {
                snapshot
            }
            // Never loaded, the background refresh is not running (tests, tools), or the caller
            // wrote something the catalogue does not show yet.
            _ => {
                self.refresh().await?;
                self.current()
            }
        };
        let cursor = request.cursor.as_deref().map(Cursor::decode).transpose()?;
        let interactions = self.read.user_interactions(request.user).await?;
        let catalog = &snapshot.catalog;
        let excluded: HashSet<BookId> = interactions
            .iter()
            .filter(|r| r.rating.is_some() || r.liked)
            .map(|r| r.book_id)
            .collect();
        let collaborative = match (&snapshot.model, cursor.map(|c| c.t)) {
            (_, Some(Strategy::ColdStart)) => None,
            (Some(model), Some(Strategy::Collaborative)) => {
                let was = cursor.map_or(0, |c| c.v);
                if was != model.version {
                    return Err(RecsError::StaleCursor {
                        was,
                        now: model.version,
                    });
                }
                Some(model)
            }
            (None, Some(Strategy::Collaborative)) => {
                return Err(RecsError::StaleCursor {
                    was: cursor.map_or(0, |c| c.v),
                    now: 0,
                });
            }
            (Some(model), None) => Some(model),
            (None, None) => None,
        };
        let folded = collaborative.and_then(|model| {
            let (items, values) = signals(model, &interactions);
            (!items.is_empty())
                .then(|| (model, model.hybrid.scores(&items, &values), items, values))
        });
        let limit = request.limit.max(1);
        let (strategy, model_info, items, next) = match folded {
            Some((model, scores, mine, values)) => {
                let ranked = rank(
                    scores.iter().enumerate().filter_map(|(i, score)| {
                        let book = model.books[i];
                        let position = *catalog.index.get(&book)?;
                        let wanted = request.genres.is_empty()
                            || catalog.in_genres(position, &request.genres).is_some();
                        (wanted && !excluded.contains(&book)).then_some((i as u32, *score))
                    }),
                    cursor.as_ref(),
                    limit,
                );
                let next = next_cursor(&ranked, limit, Strategy::Collaborative, model.version);
                let items = ranked
                    .into_iter()
                    .take(limit)
                    .map(|(i, score)| {
                        let book = model.books[i as usize];
                        let position = catalog.index[&book];
                        let (code, because) = explain(model, &interactions, &mine, &values, i);
                        let reason = match because {
                            Some(b) => {
                                let title = catalog
                                    .index
                                    .get(&b)
                                    .map_or("a book you read", |p| &catalog.books[*p].title);
                                match code {
                                    ReasonCode::BecauseRated => {
                                        format!("because you rated {title}")
                                    }
                                    ReasonCode::BecauseLiked => {
                                        format!("because you liked {title}")
                                    }
                                    _ => format!("because you viewed {title}"),
                                }
                            }
                            None => "recommended for you".to_string(),
                        };
                        Recommendation {
                            book_id: book,
                            title: catalog.books[position].title.clone(),
                            genres: catalog.books[position].genres.clone(),
                            score,
                            reason,
                            reason_code: code,
                            because_book_id: because,
                        }
                    })
                    .collect();
                (Strategy::Collaborative, Some(model.info()), items, next)
            }
            None => {
                let favourites: &[String] = if request.genres.is_empty() {
                    &request.favourite_genres
                } else {
                    &request.genres
                };
                let ranked = rank(
                    (0..catalog.books.len()).filter_map(|p| {
                        let book = &catalog.books[p];
                        let in_genre = catalog.in_genres(p, favourites).is_some();
                        let wanted = request.genres.is_empty() || in_genre;
                        let boost = if in_genre { 5.0 } else { 0.0 };
                        (wanted && !excluded.contains(&book.id))
                            .then_some((p as u32, (catalog.bayes[p] + boost) as f32))
                    }),
                    cursor.as_ref(),
                    limit,
                );
                let next = next_cursor(&ranked, limit, Strategy::ColdStart, 0);
                let items = ranked
                    .into_iter()
                    .take(limit)
                    .map(|(p, score)| {
                        let p = p as usize;
                        let book = &catalog.books[p];
                        // Say only what is true: a book nobody has rated is neither popular
                        // nor highly rated (its score is the prior alone).
                        let rated = book.ratings > 0;
                        let (reason, code) = match catalog.in_genres(p, favourites) {
                            Some(genre) if rated => {
                                (format!("popular in {genre}"), ReasonCode::PopularInGenre)
                            }
                            Some(genre) if request.genres.is_empty() => (
                                format!("in your favourite genres ({genre})"),
                                ReasonCode::InGenre,
                            ),
                            Some(genre) => (format!("in {genre}"), ReasonCode::InGenre),
                            None if rated => (
                                format!(
                                    "highly rated ({:.2} from {} ratings)",
                                    catalog.bayes[p], book.ratings
                                ),
                                ReasonCode::HighlyRated,
                            ),
                            None => (
                                "new in the catalogue".to_string(),
                                ReasonCode::NewInCatalogue,
                            ),
                        };
                        Recommendation {
                            book_id: book.id,
                            title: book.title.clone(),
                            genres: book.genres.clone(),
                            score,
                            reason,
                            reason_code: code,
                            because_book_id: None,
                        }
                    })
                    .collect();
                let info = snapshot.model.as_ref().map(|m| m.info());
                (Strategy::ColdStart, info, items, next)
            }
        };
        Ok(RecsPage {
            user_id: request.user,
            strategy,
            items,
            next_cursor: next,
            model: model_info,
        })
    }
}

/// The member's signals on the model's books, as the model's weights value them.
fn signals(model: &Served, interactions: &[InteractionRow]) -> (Vec<u32>, Vec<f32>) {
    let mut pairs: Vec<(u32, f32)> = interactions
        .iter()
        .filter_map(|r| {
            let item = *model.index.get(&r.book_id)?;
            let value = model.weights.value(&Signals {
                rating: r.rating,
                liked: r.liked,
                views: r.views,
            });
            (value > 0.0).then_some((item, value))
        })
        .collect();
    pairs.sort_by_key(|(item, _)| *item);
    pairs.into_iter().unzip()
}

/// The member's book that contributes most to recommending `item`, and how they know it.
fn explain(
    model: &Served,
    interactions: &[InteractionRow],
    mine: &[u32],
    values: &[f32],
    item: u32,
) -> (ReasonCode, Option<BookId>) {
    let Some(j) = model.hybrid.explain(item, mine, values) else {
        return (ReasonCode::HighlyRated, None);
    };
    let book = model.books[j as usize];
    let code = match interactions.iter().find(|r| r.book_id == book) {
        Some(r) if r.rating.is_some() => ReasonCode::BecauseRated,
        Some(r) if r.liked => ReasonCode::BecauseLiked,
        _ => ReasonCode::BecauseViewed,
    };
    (code, Some(book))
}

/// The first `limit + 1` candidates after the cursor, best first (score descending, then index
/// ascending, so equal scores have one order).
fn rank(
    candidates: impl Iterator<Item = (u32, f32)>,
    after: Option<&Cursor>,
    limit: usize,
) -> Vec<(u32, f32)> {
    let mut kept: Vec<(u32, f32)> = candidates
        .filter(|(i, s)| s.is_finite() && after.is_none_or(|c| c.before(*s, *i)))
        .collect();
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let wanted = limit + 1;
    if kept.len() > wanted {
        kept.select_nth_unstable_by(wanted - 1, order);
        kept.truncate(wanted);
    }
    kept.sort_unstable_by(order);
    kept
}

fn next_cursor(ranked: &[(u32, f32)], limit: usize, t: Strategy, v: u64) -> Option<String> {
    if ranked.len() <= limit {
        return None;
    }
    let (i, s) = ranked[limit - 1];
    Some(Cursor { t, v, s, i }.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_pages_by_keyset_without_repeats_or_gaps() {
        let candidates: Vec<(u32, f32)> = (0..25u32).map(|i| (i, (i % 7) as f32)).collect();
        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = rank(candidates.iter().copied(), cursor.as_ref(), 4);
            let next = next_cursor(&page, 4, Strategy::ColdStart, 0);
            seen.extend(page.iter().take(4).map(|(i, _)| *i));
            match next {
                Some(text) => cursor = Some(Cursor::decode(&text).unwrap()),
                None => break,
            }
        }
        let mut expected = candidates.clone();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(seen, expected.iter().map(|(i, _)| *i).collect::<Vec<_>>());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            t: Strategy::Collaborative,
            v: 3,
            s: 0.125,
            i: 9,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(matches!(
            Cursor::decode("not-a-cursor"),
            Err(RecsError::BadCursor)
        ));
        assert!(matches!(
            Cursor::decode(&cursor::encode(&serde_json::json!({"t": "x"}))),
            Err(RecsError::BadCursor)
        ));
    }

    #[test]
    fn bayesian_average_damps_few_ratings() {
        let book = |ratings, sum| CatalogBook {
            id: BookId::new(),
            title: "t".into(),
            genres: vec![],
            ratings,
            rating_sum: sum,
        };
        // A classic (1,000 ratings, 4.5 on average), a mediocre bestseller (2,000 ratings, 3.5), a
        // book with a single 5-star rating, and one nobody rated.
        let catalog = Catalog::new(
            vec![book(1000, 4500), book(2000, 7000), book(1, 5), book(0, 0)],
            25.0,
            (0, 0),
        );
        let mean = 11_505.0 / 3_001.0;
        let b = &catalog.bayes;
        assert!(
            b[0] > b[2],
            "one 5-star rating does not beat a classic: {b:?}"
        );
        assert!(b[2] > b[1], "but it beats a mediocre average: {b:?}");
        assert!((b[2] - (25.0 * mean + 5.0) / 26.0).abs() < 1e-9, "{b:?}");
        assert!((b[3] - mean).abs() < 1e-9, "no ratings: the mean: {b:?}");
    }
}
