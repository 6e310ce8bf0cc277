//! Offline evaluation on explicit ratings, the protocol that chose the defaults.
//!
//! - **Split**: for every user with at least `min_ratings` distinct rated items, a random
//!   `holdout` share of them (rounded, at least one stays in training) is held out; users with
//!   fewer ratings go wholly to training. Seeded per user: the same seed gives the same split on
//!   every run and machine. A (user, item) pair rated more than once keeps its last rating.
//! - **Training**: the models see the training ratings through [`Weights`] (rating values).
//! - **Ranking**: the top `k` items per user, excluding every item the user rated in training.
//! - **Relevant**: held-out items rated at least `relevant_min_rating`. Users without one are
//!   not scored.
//! - **Metrics** (macro-averaged over the scored users): P@k = hits / k; R@k = hits / #relevant;
//!   NDCG@k with binary relevance, `DCG = Σ 1/log2(rank + 1)` over hits at 1-based ranks, divided
//!   by the ideal DCG of `min(#relevant, k)` hits; coverage = distinct recommended items / catalog.
//!   (`implicit.evaluation.ranking_metrics` divides its "precision" by `min(#relevant, k)`; ours
//!   are the textbook definitions, and `ops/recs-implicit.py` computes exactly these.)

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::goodbooks::{Rating, Ratings};
use crate::itemitem::DEFAULT_NEIGHBOURS;
use crate::rng::SplitMix64;
use crate::select::{Selection, SelectionOptions};
use crate::{
    AlsModel, AlsParams, DEFAULT_BLEND_ALS_WEIGHT, HybridModel, ItemItemModel, ItemItemWeighting,
    Matrix, Popularity, Progress, Signals, Weights, top_n,
};

/// A model the evaluation can train and score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModelKind {
    /// Most-rated items first (the baseline).
    #[serde(rename = "popularity")]
    Popularity,
    /// [`AlsModel`] with [`EvalOptions::als`].
    #[serde(rename = "als")]
    Als,
    /// [`ItemItemModel`] with cosine similarity.
    #[serde(rename = "cosine")]
    ItemItemCosine,
    /// [`ItemItemModel`] with BM25 weighting ([`EvalOptions::bm25_k1`], [`EvalOptions::bm25_b`]).
    #[serde(rename = "bm25")]
    ItemItemBm25,
    /// BM25 item-item and ALS scores blended by [`crate::blend_scores`] with
    /// [`EvalOptions::blend_als_weight`]: a [`HybridModel`] of the `als` and `bm25` models,
    /// ranking every user through [`HybridModel::scores`] (the served computation: the user's ALS
    /// factor folded in from their training interactions).
    #[serde(rename = "blend")]
    Blend,
    /// What the trainer would serve: [`crate::select()`] on the training part alone (its own
    /// validation split carved out of it, never the held-out ratings), the chosen model retrained
    /// on the whole training part, ranked through [`HybridModel::scores`].
    #[serde(rename = "auto")]
    Auto,
}

impl ModelKind {
    /// Every model, baseline first.
    pub const ALL: [ModelKind; 6] = [
        ModelKind::Popularity,
        ModelKind::Als,
        ModelKind::ItemItemBm25,
        ModelKind::ItemItemCosine,
        ModelKind::Blend,
        ModelKind::Auto,
    ];

    /// The short name used in reports and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Popularity => "popularity",
            ModelKind::Als => "als",
            ModelKind::ItemItemCosine => "cosine",
            ModelKind::ItemItemBm25 => "bm25",
            ModelKind::Blend => "blend",
            ModelKind::Auto => "auto",
        }
    }

    fn eval_stage(self) -> &'static str {
        match self {
            ModelKind::Popularity => "evaluate popularity",
            ModelKind::Als => "evaluate als",
            ModelKind::ItemItemCosine => "evaluate cosine",
            ModelKind::ItemItemBm25 => "evaluate bm25",
            ModelKind::Blend => "evaluate blend",
            ModelKind::Auto => "evaluate auto",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                format!("unknown model {s:?} (known: popularity, als, bm25, cosine, blend, auto)")
            })
    }
}

/// What to evaluate and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Share of each eligible user's ratings held out (0.2).
    pub holdout: f64,
    /// Users with fewer distinct rated items are not split (5).
    pub min_ratings: usize,
    /// A held-out item is relevant when rated at least this (4).
    pub relevant_min_rating: u8,
    /// Length of the ranked lists (10).
    pub k: usize,
    /// Seed of the split.
    pub seed: u64,
    /// ALS parameters.
    pub als: AlsParams,
    /// How ratings become matrix values.
    pub weights: Weights,
    /// Neighbours kept per item by the item-item models ([`DEFAULT_NEIGHBOURS`]).
    pub neighbours: usize,
    /// BM25 saturation `k1` (5, as [`ItemItemWeighting::default`]).
    pub bm25_k1: f32,
    /// BM25 length normalisation `b` (1, as [`ItemItemWeighting::default`]).
    pub bm25_b: f32,
    /// The share of ALS in the blend (`0..=1`, [`DEFAULT_BLEND_ALS_WEIGHT`]; the rest is BM25
    /// item-item). [`run`] panics on a weight outside `0..=1` when it evaluates the blend.
    pub blend_als_weight: f32,
    /// The models to evaluate, in report order.
    pub models: Vec<ModelKind>,
    /// How `auto` selects (its seed is this evaluation's `seed`; its relevance threshold the
    /// value of a `relevant_min_rating` rating).
    pub selection: SelectionOptions,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            holdout: 0.2,
            min_ratings: 5,
            relevant_min_rating: 4,
            k: 10,
            seed: 42,
            als: AlsParams::default(),
            weights: Weights::default(),
            neighbours: DEFAULT_NEIGHBOURS,
            bm25_k1: 5.0,
            bm25_b: 1.0,
            blend_als_weight: DEFAULT_BLEND_ALS_WEIGHT,
            models: ModelKind::ALL.to_vec(),
            selection: SelectionOptions::default(),
        }
    }
}

/// Training and held-out ratings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// What the models learn from, sorted by (user, item).
    pub train: Vec<Rating>,
    /// Held out, sorted by (user, item).
    pub test: Vec<Rating>,
}

/// Per-user random holdout of `opts.holdout` of each user's ratings, for users with at least
/// `opts.min_ratings` distinct rated items (others go wholly to training). A pair rated more than
/// once keeps its last rating. A fixed `opts.seed` gives an identical split on every run.
pub fn split(ratings: &[Rating], opts: &EvalOptions) -> Split {
    let n_users = ratings
        .iter()
        .map(|r| r.user as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_user: Vec<Vec<(u32, u8)>> = vec![Vec::new(); n_users];
    for r in ratings {
        by_user[r.user as usize].push((r.item, r.rating));
    }
    let mut out = Split::default();
    for (user, mut rated) in by_user.into_iter().enumerate() {
        // Stable: among a pair's duplicates the file's last comes last; keep that one.
        rated.sort_by_key(|&(item, _)| item);
        let mut distinct: Vec<(u32, u8)> = Vec::with_capacity(rated.len());
        for (item, rating) in rated {
            match distinct.last_mut() {
                Some(last) if last.0 == item => last.1 = rating,
                _ => distinct.push((item, rating)),
            }
        }
        let n = distinct.len();
        let held = if n >= opts.min_ratings.max(2) {
            let n_test = ((n as f64 * opts.holdout).round() as usize).min(n - 1);
            held_out_mask(n, n_test, opts.seed, user as u64)
        } else {
            vec![false; n]
        };
        for ((item, rating), held) in distinct.into_iter().zip(held) {
            let r = Rating {
                user: user as u32,
                item,
                rating,
            };
            if held {
                out.test.push(r);
            } else {
                out.train.push(r);
            }
        }
    }
    out
}

/// Which `n_test` of a user's `n` items are held out: a partial Fisher–Yates shuffle on the
/// user's own stream of `seed` (`key` = the user), so the same seed holds out the same items on
/// every run and machine. The evaluation's split and the trainer's validation split share it.
pub(crate) fn held_out_mask(n: usize, n_test: usize, seed: u64, key: u64) -> Vec<bool> {
    let mut held = vec![false; n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::for_stream(seed, key);
    for t in 0..n_test.min(n) {
        let j = t + rng.below((n - t) as u64) as usize;
        order.swap(t, j);
        held[order[t]] = true;
    }
    held
}

/// One user's ranking metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct UserMetrics {
    /// Hits in the top k / k.
    pub precision: f64,
    /// Hits in the top k / number of relevant items.
    pub recall: f64,
    /// DCG of the top k / ideal DCG of `min(#relevant, k)` hits (binary relevance).
    pub ndcg: f64,
}

/// The metrics of one ranked list (`recommended`, best first; only its first `k` count) against a
/// set of relevant items. All zero when nothing is relevant or `k` is 0.
pub fn user_metrics(recommended: &[u32], relevant: &[u32], k: usize) -> UserMetrics {
    if relevant.is_empty() || k == 0 {
        return UserMetrics::default();
    }
    let relevant: HashSet<u32> = relevant.iter().copied().collect();
    let discount = |rank0: usize| 1.0 / ((rank0 + 2) as f64).log2();
    let mut hits = 0usize;
    let mut dcg = 0.0;
    for (rank0, item) in recommended.iter().take(k).enumerate() {
        if relevant.contains(item) {
            hits += 1;
            dcg += discount(rank0);
        }
    }
    let ideal: f64 = (0..relevant.len().min(k)).map(discount).sum();
    UserMetrics {
        precision: hits as f64 / k as f64,
        recall: hits as f64 / relevant.len() as f64,
        ndcg: dcg / ideal,
    }
}

/// One model's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelReport {
    /// The model's name ([`ModelKind::name`]).
    pub model: String,
    /// Mean P@k.
    pub precision: f64,
    /// Mean R@k.
    pub recall: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Distinct recommended items / items in the catalog.
    pub coverage: f64,
    /// Seconds to train (wall clock).
    pub train_secs: f64,
    /// Seconds to rank every scored user's top k (wall clock).
    pub recommend_secs: f64,
    /// Users scored (those with a relevant held-out item).
    pub users: usize,
}

/// Everything one evaluation run measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// The options it ran with.
    pub options: EvalOptions,
    /// Ratings in the training part (distinct pairs).
    pub train_ratings: usize,
    /// Ratings held out.
    pub test_ratings: usize,
    /// Users in the data.
    pub users: usize,
    /// Items in the catalog.
    pub items: usize,
    /// One report per model, in the order asked.
    pub models: Vec<ModelReport>,
    /// What `auto` chose and why (when it was evaluated).
    pub selection: Option<Selection>,
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "{} users, {} items; {} training / {} held-out ratings (holdout {:.0}% of users with \
             >= {} ratings, seed {}); relevant = held out with >= {} stars",
            self.users,
            self.items,
            self.train_ratings,
            self.test_ratings,
            o.holdout * 100.0,
            o.min_ratings,
            o.seed,
            o.relevant_min_rating
        )?;
        let k = o.k;
        writeln!(
            f,
            "{:<12} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>7}",
            "model",
            format!("P@{k}"),
            format!("R@{k}"),
            format!("NDCG@{k}"),
            "coverage",
            "train s",
            "rank s",
            "users"
        )?;
        for m in &self.models {
            writeln!(
                f,
                "{:<12} {:>8.4} {:>8.4} {:>8.4} {:>9.4} {:>9.2} {:>8.2} {:>7}",
                m.model,
                m.precision,
                m.recall,
                m.ndcg,
                m.coverage,
                m.train_secs,
                m.recommend_secs,
                m.users
            )?;
        }
        if let Some(s) = &self.selection {
            writeln!(
                f,
                "auto chose {} (validation NDCG@{} {} on {} users; {} candidates in {:.1} s{})",
                s.chosen_name,
                s.k,
                s.validation_ndcg
                    .map_or_else(|| "-".to_string(), |n| format!("{n:.4}")),
                s.validation.users,
                s.candidates.iter().filter(|c| c.ndcg.is_some()).count(),
                s.secs,
                if s.budget_exhausted {
                    ", budget spent: some skipped"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// A trained model of any kind.
enum Trained<'a> {
    Popularity(Popularity),
    Als(&'a AlsModel),
    ItemItem(&'a ItemItemModel),
    Blend(&'a HybridModel),
}

/// The matrix signals of one rating: its stars, or a like when it has none (`rating` 0, an
/// implicit-only data set).
fn rating_signals(rating: u8) -> Signals {
    Signals {
        rating: (rating > 0).then_some(rating),
        liked: rating == 0,
        ..Signals::default()
    }
}

/// Users ranked per progress step.
const EVAL_BLOCK: usize = 4096;
/// Users scored in one matrix product by ALS.
const ALS_BATCH: usize = 256;

/// Splits `ratings`, trains every model of `opts.models` on the training part and scores it on the
/// held-out part (see the module documentation for the protocol).
pub fn run(
    ratings: &Ratings,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(Progress),
) -> EvalReport {
    let (n_users, n_items) = (ratings.n_users(), ratings.n_items());
    let split = split(&ratings.ratings, opts);
    let train = Matrix::from_triplets(
        n_users,
        n_items,
        split.train.iter().map(|r| {
            (
                r.user,
                r.item,
                opts.weights.value(&rating_signals(r.rating)),
            )
        }),
    );
    let seen = Matrix::from_triplets(
        n_users,
        n_items,
        split.train.iter().map(|r| (r.user, r.item, 1.0)),
    );
    let mut relevant: Vec<Vec<u32>> = vec![Vec::new(); n_users];
    for r in &split.test {
        // A like (no rating) is relevant.
        if r.rating == 0 || r.rating >= opts.relevant_min_rating {
            relevant[r.user as usize].push(r.item);
        }
    }
    let users: Vec<usize> = (0..n_users).filter(|&u| !relevant[u].is_empty()).collect();

    // Each underlying model is trained once: the blend is a `HybridModel` of the ALS and BM25
    // models that the `als` and `bm25` rows evaluate (what `HybridModel::train` does).
    let wanted = |kinds: &[ModelKind]| kinds.iter().any(|k| opts.models.contains(k));
    let mut als = wanted(&[ModelKind::Als, ModelKind::Blend]).then(|| {
        let started = Instant::now();
        let model = AlsModel::train(&train, &opts.als, progress);
        (model, started.elapsed().as_secs_f64())
    });
    let mut bm25 = wanted(&[ModelKind::ItemItemBm25, ModelKind::Blend]).then(|| {
        let started = Instant::now();
        let weighting = ItemItemWeighting::Bm25 {
            k1: opts.bm25_k1,
            b: opts.bm25_b,
        };
        let model = ItemItemModel::train(&train, weighting, opts.neighbours, progress);
        (model, started.elapsed().as_secs_f64())
    });
    let cosine = wanted(&[ModelKind::ItemItemCosine]).then(|| {
        let started = Instant::now();
        let weighting = ItemItemWeighting::Cosine;
        let model = ItemItemModel::train(&train, weighting, opts.neighbours, progress);
        (model, started.elapsed().as_secs_f64())
    });
    let hybrid = wanted(&[ModelKind::Blend]).then(|| {
        let (a, a_secs) = als.take().expect("ALS is trained for the blend");
        let (b, b_secs) = bm25.take().expect("BM25 is trained for the blend");
        (
            HybridModel::new(a, b, opts.blend_als_weight),
            a_secs,
            b_secs,
        )
    });
    let als: Option<(&AlsModel, f64)> = match (&hybrid, &als) {
        (Some((h, secs, _)), _) => Some((h.als(), *secs)),
        (None, Some((m, secs))) => Some((m, *secs)),
        (None, None) => None,
    };
    let bm25: Option<(&ItemItemModel, f64)> = match (&hybrid, &bm25) {
        (Some((h, _, secs)), _) => Some((h.item_item(), *secs)),
        (None, Some((m, secs))) => Some((m, *secs)),
        (None, None) => None,
    };

    // `auto`: chosen on the training part only, then retrained on all of it.
    let auto = wanted(&[ModelKind::Auto]).then(|| {
        let started = Instant::now();
        let selection_options = SelectionOptions {
            seed: opts.seed,
            k: opts.k,
            relevant_min_value: opts
                .weights
                .value(&rating_signals(opts.relevant_min_rating)),
            ..opts.selection.clone()
        };
        let selection = crate::select::select(&train, &selection_options, progress);
        let model = selection.chosen.train(&train, progress);
        (model, selection, started.elapsed().as_secs_f64())
    });

    let mut reports = Vec::new();
    for &kind in &opts.models {
        let (model, train_secs) = match (kind, als, bm25, &cosine, &hybrid) {
            (ModelKind::Popularity, ..) => {
                let started = Instant::now();
                let model = Trained::Popularity(Popularity::from_matrix(&seen));
                (model, started.elapsed().as_secs_f64())
            }
            (ModelKind::Als, Some((m, secs)), ..) => (Trained::Als(m), secs),
            (ModelKind::ItemItemBm25, _, Some((m, secs)), ..) => (Trained::ItemItem(m), secs),
            (ModelKind::ItemItemCosine, _, _, Some((m, secs)), _) => (Trained::ItemItem(m), *secs),
            (ModelKind::Blend, .., Some((h, a_secs, b_secs))) => {
                (Trained::Blend(h), a_secs + b_secs)
            }
            (ModelKind::Auto, ..) => {
                let (model, _, secs) = auto.as_ref().expect("auto was selected above");
                (Trained::Blend(model), *secs)
            }
            _ => unreachable!("every model the report needs was trained above"),
        };

        let started = Instant::now();
        let k = opts.k;
        let popular: Vec<f32> = match &model {
            Trained::Popularity(p) => p.counts().iter().map(|&c| c as f32).collect(),
            _ => Vec::new(),
        };
        let blocks: Vec<&[usize]> = users.chunks(EVAL_BLOCK).collect();
        let mut lists: Vec<Vec<u32>> = Vec::with_capacity(users.len());
        for (b, block) in blocks.iter().enumerate() {
            let part: Vec<Vec<u32>> = match &model {
                Trained::Popularity(_) => block
                    .par_iter()
                    .map(|&u| {
                        top_n(&popular, seen.row(u).0, k)
                            .into_iter()
                            .map(|(i, _)| i)
                            .collect()
                    })
                    .collect(),
                Trained::Als(als) => block
                    .par_chunks(ALS_BATCH)
                    .flat_map_iter(|batch| {
                        let scores = als.scores_for_users(batch);
                        batch
                            .iter()
                            .enumerate()
                            .map(|(row, &u)| {
                                let s = scores.row(row);
                                let s = s.as_slice().expect("a row of a standard-layout matrix");
                                top_n(s, seen.row(u).0, k)
                                    .into_iter()
                                    .map(|(i, _)| i)
                                    .collect()
                            })
                            .collect::<Vec<Vec<u32>>>()
                    })
                    .collect(),
                Trained::Blend(hybrid) => block
                    .par_iter()
                    .map(|&u| {
                        let (items, values) = train.row(u);
                        top_n(&hybrid.scores(items, values), seen.row(u).0, k)
                            .into_iter()
                            .map(|(i, _)| i)
                            .collect()
                    })
                    .collect(),
                Trained::ItemItem(ii) => block
                    .par_iter()
                    .map(|&u| {
                        let (items, values) = train.row(u);
                        ii.recommend(items, values, seen.row(u).0, k)
                            .into_iter()
                            .map(|s| s.item)
                            .collect()
                    })
                    .collect(),
            };
            lists.extend(part);
            progress(Progress {
                stage: kind.eval_stage(),
                step: b + 1,
                total: blocks.len(),
            });
        }
        let recommend_secs = started.elapsed().as_secs_f64();

        let mut sum = UserMetrics::default();
        let mut recommended = HashSet::new();
        for (list, &u) in lists.iter().zip(&users) {
            let m = user_metrics(list, &relevant[u], k);
            sum.precision += m.precision;
            sum.recall += m.recall;
            sum.ndcg += m.ndcg;
            recommended.extend(list.iter().copied());
        }
        let n = users.len().max(1) as f64;
        reports.push(ModelReport {
            model: kind.name().to_string(),
            precision: sum.precision / n,
            recall: sum.recall / n,
            ndcg: sum.ndcg / n,
            coverage: recommended.len() as f64 / n_items.max(1) as f64,
            train_secs,
            recommend_secs,
            users: users.len(),
        });
    }
    EvalReport {
        options: opts.clone(),
        train_ratings: split.train.len(),
        test_ratings: split.test.len(),
        users: n_users,
        items: n_items,
        models: reports,
        selection: auto.map(|(_, selection, _)| selection),
    }
}

/// Writes the split as two CSV files (`user,item,rating`, with the ORIGINAL goodbooks ids) so that
/// another implementation can train and evaluate on the identical split.
pub fn write_split(
    split: &Split,
    ratings: &Ratings,
    train: &mut impl std::io::Write,
    test: &mut impl std::io::Write,
) -> std::io::Result<()> {
    write_ratings(train, &split.train, ratings)?;
    write_ratings(test, &split.test, ratings)
}

/// `user,item,rating` CSV of `part` with the original ids.
fn write_ratings(
    out: &mut impl std::io::Write,
    part: &[Rating],
    ratings: &Ratings,
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(16 * part.len() + 20);
    text.push_str("user,item,rating\n");
    for r in part {
        let _ = writeln!(
            text,
            "{},{},{}",
            ratings.user_ids[r.user as usize], ratings.item_ids[r.item as usize], r.rating
        );
    }
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n_users` users; user `u` rated `u + 1` items (items `0..=u`), rating `1 + item % 5`.
    fn staircase(n_users: u32) -> Vec<Rating> {
        let mut out = Vec::new();
        for user in 0..n_users {
            for item in 0..=user {
                out.push(Rating {
                    user,
                    item,
                    rating: (1 + item % 5) as u8,
                });
            }
        }
        out
    }

    #[test]
    fn split_is_deterministic_proportional_and_respects_min_ratings() {
        let ratings = staircase(30);
        let opts = EvalOptions::default();
        let a = split(&ratings, &opts);
        let b = split(&ratings, &opts);
        assert_eq!(a, b);
        assert_eq!(a.train.len() + a.test.len(), ratings.len());
        for user in 0..30u32 {
            let n = user as usize + 1;
            let held = a.test.iter().filter(|r| r.user == user).count();
            let kept = a.train.iter().filter(|r| r.user == user).count();
            assert_eq!(held + kept, n);
            if n < 5 {
                assert_eq!(held, 0, "user {user} has fewer than min_ratings");
            } else {
                assert_eq!(held, (n as f64 * 0.2).round() as usize, "user {user}");
            }
        }
        // Sorted by (user, item), and no pair in both parts.
        assert!(a.train.is_sorted_by_key(|r| (r.user, r.item)));
        assert!(a.test.is_sorted_by_key(|r| (r.user, r.item)));
        let train: HashSet<(u32, u32)> = a.train.iter().map(|r| (r.user, r.item)).collect();
        assert!(a.test.iter().all(|r| !train.contains(&(r.user, r.item))));
        // Another seed, another split; input order does not matter.
        let other = split(
            &ratings,
            &EvalOptions {
                seed: 7,
                ..EvalOptions::default()
            },
        );
        assert_ne!(other.test, a.test);
        let mut reversed = ratings.clone();
        reversed.reverse();
        assert_eq!(split(&reversed, &opts), a);
    }

    #[test]
    fn split_keeps_the_last_of_duplicate_ratings() {
        let r = |item, rating| Rating {
            user: 0,
            item,
            rating,
        };
        let s = split(&[r(1, 2), r(1, 5), r(2, 3)], &EvalOptions::default());
        assert_eq!(s.train, vec![r(1, 5), r(2, 3)]);
        assert!(s.test.is_empty());
    }

    #[test]
    fn metrics_on_a_hand_made_example() {
        // Relevant {1, 3, 5}; ranked [3, 9, 1, 7] with k = 4: hits at ranks 1 and 3.
        let m = user_metrics(&[3, 9, 1, 7], &[1, 3, 5], 4);
        assert!((m.precision - 0.5).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m.ndcg - dcg / idcg).abs() < 1e-12);
        // Only the first k count; ideal DCG over min(#relevant, k).
        let m = user_metrics(&[9, 3, 1], &[1, 3, 5], 2);
        assert!((m.precision - 0.5).abs() < 1e-12);
        assert!((m.recall - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.ndcg - (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        // Perfect and empty.
        assert_eq!(user_metrics(&[5, 1], &[1, 5], 2).ndcg, 1.0);
        assert_eq!(user_metrics(&[], &[1], 10), UserMetrics::default());
        assert_eq!(user_metrics(&[1], &[], 10), UserMetrics::default());
    }

    #[test]
    fn model_kinds_parse_and_serialize() {
        for kind in ModelKind::ALL {
            assert_eq!(kind.name().parse::<ModelKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
        assert!("svd".parse::<ModelKind>().is_err());
    }

    /// Two groups of users with disjoint tastes: every model but popularity should find the
    /// held-out items of the user's group.
    #[test]
    fn run_end_to_end_on_synthetic_groups() {
        let mut ratings = Vec::new();
        for user in 0..60u32 {
            // Each user rated all 10 items of their group: the 2 held out are the only unseen
            // items of the group.
            let base = if user % 2 == 0 { 0 } else { 10 };
            for k in 0..10u32 {
                let item = base + k;
                ratings.push(Rating {
                    user,
                    item,
                    rating: 4 + ((user + k) % 2) as u8,
                });
            }
        }
        let data = Ratings {
            ratings,
            user_ids: (100..160).collect(),
            item_ids: (1000..1020).collect(),
        };
        let opts = EvalOptions {
            k: 2,
            als: AlsParams {
                factors: 2,
                regularization: 0.1,
                ..AlsParams::default()
            },
            neighbours: 10,
            ..EvalOptions::default()
        };
        let mut stages = HashSet::new();
        let report = run(&data, &opts, &mut |p| {
            stages.insert(p.stage);
        });
        assert_eq!(report.models.len(), 6);
        let selection = report.selection.as_ref().expect("auto was evaluated");
        assert!(!selection.candidates.is_empty());
        assert!(
            selection.validation_ndcg.is_some_and(|n| n > 0.5),
            "{selection:?}"
        );
        assert_eq!(report.train_ratings + report.test_ratings, 600);
        assert!(stages.contains("als") && stages.contains("evaluate bm25"));
        for m in &report.models {
            assert_eq!(m.users, 60);
            if m.model != "popularity" {
                assert!(m.precision > 0.8, "{m:?}");
            }
        }
        let text = report.to_string();
        assert!(text.contains("NDCG@2") && text.contains("bm25"), "{text}");
        assert!(text.contains("auto chose "), "{text}");

        let s = split(&data.ratings, &opts);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        write_split(&s, &data, &mut train, &mut test).unwrap();
        let train = String::from_utf8(train).unwrap();
        let test = String::from_utf8(test).unwrap();
        assert!(train.starts_with("user,item,rating\n100,"));
        assert_eq!(train.lines().count() + test.lines().count(), 602);
        assert!(
            test.lines()
                .nth(1)
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .parse::<u32>()
                .unwrap()
                >= 1000
        );
    }
}
