//! Choosing the served model from the data itself.
//!
//! Parameters tuned on one catalog are a trap on another: BM25 with `k1` 5 and `b` 1 and ALS with
//! `alpha` 30 suit goodbooks-10k's sparse ratings and collapse on denser data. So the trainer does
//! not serve fixed parameters: [`select`] carves a validation split out of the interactions it
//! is given (a seeded per-user holdout, never anything an evaluation holds out: it only sees what
//! it is given), scores candidates on it by NDCG@k, and returns the best as a [`Choice`] that
//! [`Choice::train`] retrains on all interactions.
//!
//! The candidates, cheapest first, within a time budget:
//! - **popularity** (interaction counts);
//! - **item-item**: cosine and BM25 over a few `k1`/`b`, each trained once with the largest
//!   neighbour count and scored at smaller counts by truncation ([`ItemItemModel::truncated`]);
//! - **ALS** over a grid of `alpha` and λ by successive halving: every configuration trains a
//!   few iterations, the better half goes on from its factors ([`AlsModel::train_more`]), until
//!   the best has the full iterations; then other factor counts for the winner;
//! - **blends** of the best ALS and the best item-item model with popularity: one pass over the
//!   validation users scores every weight of a grid (each part normalised once per user), so the
//!   blend costs no training. The grid holds the single models (weight 1), so the blend is chosen
//!   only where it beats them.
//!
//! Everything is seeded: the same interactions and options give the same choice (the budget
//! aside: a slower machine may skip candidates, and says so in the report).

use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::eval::held_out_mask;
use crate::eval::user_metrics;
use crate::hybrid::popularity_scores;
use crate::itemitem::DEFAULT_NEIGHBOURS;
use crate::rng::SplitMix64;
use crate::top_n;
use crate::{AlsModel, AlsParams, HybridModel, ItemItemModel, ItemItemWeighting, Matrix, Progress};

/// How to select.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectionOptions {
    /// Share of each eligible user's interactions held out for validation (0.2).
    pub holdout: f64,
    /// Users with fewer distinct interactions are not split (5).
    pub min_interactions: usize,
    /// A held-out interaction is relevant when its value is at least this (1.0: a 4-star rating
    /// or a like with the default [`crate::Weights`]). When no held-out value reaches it (e.g.
    /// only views), every positive one is relevant.
    pub relevant_min_value: f32,
    /// Length of the ranked lists (10).
    pub k: usize,
    /// Validation users scored at most (a seeded sample beyond it).
    pub max_validation_users: usize,
    /// Seed of the split, the sample and the models.
    pub seed: u64,
    /// Wall-clock budget of the search; candidates it cannot reach are reported as skipped.
    pub budget: Duration,
    /// ALS factors of the grid, and iterations of a fully trained candidate (and of the served
    /// model).
    pub factors: usize,
    pub iterations: usize,
    /// Neighbours of the largest item-item candidate (smaller ones are its truncations).
    pub neighbours: usize,
}

impl Default for SelectionOptions {
    fn default() -> Self {
        SelectionOptions {
            holdout: 0.2,
            min_interactions: 5,
            relevant_min_value: 1.0,
            k: 10,
            max_validation_users: 10_000,
            seed: 42,
            budget: Duration::from_secs(60),
            factors: 64,
            iterations: 15,
            neighbours: DEFAULT_NEIGHBOURS,
        }
    }
}

/// What the data looked like.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataShape {
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    /// Interactions / (users × items).
    pub density: f64,
    /// Mean interactions per user and per item.
    pub per_user: f64,
    pub per_item: f64,
    /// Median interactions per user.
    pub per_user_median: usize,
    /// Share of interactions with a value of at least [`SelectionOptions::relevant_min_value`].
    pub relevant_share: f64,
}

impl DataShape {
    pub fn of(m: &Matrix, relevant_min_value: f32) -> DataShape {
        let mut counts = m.row_counts();
        counts.sort_unstable();
        let (users, items, nnz) = (m.n_rows(), m.n_cols(), m.nnz());
        let relevant = (0..users)
            .map(|u| {
                m.row(u)
                    .1
                    .iter()
                    .filter(|&&v| v >= relevant_min_value)
                    .count()
            })
            .sum::<usize>();
        DataShape {
            users,
            items,
            interactions: nnz,
            density: nnz as f64 / (users.max(1) * items.max(1)) as f64,
            per_user: nnz as f64 / users.max(1) as f64,
            per_item: nnz as f64 / items.max(1) as f64,
            per_user_median: counts.get(counts.len() / 2).copied().unwrap_or(0),
            relevant_share: relevant as f64 / nnz.max(1) as f64,
        }
    }
}

/// The model to serve: ALS and item-item parameters and the blend's weights (item-item has what
/// ALS and popularity leave). A single model is a blend with one weight of 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub als: AlsParams,
    pub item_item: ItemItemWeighting,
    pub neighbours: usize,
    pub als_weight: f32,
    pub popularity_weight: f32,
}

impl Choice {
    /// The fixed blend served before selection existed (0.3 ALS + 0.7 BM25 `k1` 5, `b` 1), the
    /// best on goodbooks-10k.
    pub fn goodbooks_defaults() -> Choice {
        Choice {
            als: AlsParams::default(),
            item_item: ItemItemWeighting::default(),
            neighbours: DEFAULT_NEIGHBOURS,
            als_weight: crate::DEFAULT_BLEND_ALS_WEIGHT,
            popularity_weight: 0.0,
        }
    }

    /// The item-item share of the blend.
    pub fn item_item_weight(&self) -> f32 {
        (1.0 - self.als_weight - self.popularity_weight).max(0.0)
    }

    /// A short description: `popularity`, `als(alpha 30, λ 1, 64 f)`, `bm25(k1 5, b 1, 400 nn)`
    /// or a blend of the parts with their weights.
    pub fn name(&self) -> String {
        let ii = item_item_name(self.item_item, self.neighbours);
        let als = als_name(&self.als);
        let mut parts = Vec::new();
        for (w, name) in [
            (self.item_item_weight(), ii),
            (self.als_weight, als),
            (self.popularity_weight, "popularity".to_string()),
        ] {
            if w > 1e-6 {
                parts.push((w, name));
            }
        }
        match parts.as_slice() {
            [(_, name)] => name.clone(),
            _ => parts
                .iter()
                .map(|(w, n)| format!("{w:.2} {n}"))
                .collect::<Vec<_>>()
                .join(" + "),
        }
    }

    /// Trains the chosen model on `m` (all interactions): both halves are always trained (the
    /// item-item neighbours also explain recommendations and ALS folds new members in), with the
    /// popularity of `m` blended in at its weight.
    pub fn train(&self, m: &Matrix, progress: &mut dyn FnMut(Progress)) -> HybridModel {
        let als = AlsModel::train(m, &self.als, progress);
        let item_item = ItemItemModel::train(m, self.item_item, self.neighbours, progress);
        HybridModel::new(als, item_item, self.als_weight)
            .with_popularity(popularity_scores(m), self.popularity_weight)
    }
}

fn item_item_name(w: ItemItemWeighting, neighbours: usize) -> String {
    match w {
        ItemItemWeighting::Cosine => format!("cosine({neighbours} nn)"),
        ItemItemWeighting::Bm25 { k1, b } => format!("bm25(k1 {k1}, b {b}, {neighbours} nn)"),
        ItemItemWeighting::Rp3 { alpha, beta } => {
            format!("rp3(alpha {alpha}, beta {beta}, {neighbours} nn)")
        }
    }
}

fn als_name(p: &AlsParams) -> String {
    format!(
        "als(alpha {}, λ {}, {} f)",
        p.alpha, p.regularization, p.factors
    )
}

/// One candidate's validation figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateReport {
    /// `popularity`, `item-item`, `als` or `blend`.
    pub family: String,
    pub name: String,
    /// Validation NDCG@k, P@k and R@k (`None` when skipped).
    pub ndcg: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Seconds spent on it (training and scoring; for ALS, this rung).
    pub secs: f64,
    /// E.g. "3 iterations, dropped by halving", "skipped: budget spent".
    pub note: Option<String>,
}

/// The validation split's size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationShape {
    /// Users scored.
    pub users: usize,
    /// Interactions held out (of every split user) and, of those, relevant.
    pub held_out: usize,
    pub relevant: usize,
}

/// What [`select`] chose and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub chosen: Choice,
    /// [`Choice::name`] of the chosen model.
    pub chosen_name: String,
    /// Its validation NDCG@k (`None` when nothing could be held out: too few interactions per
    /// user; then the goodbooks defaults are chosen, at the configured factors and iterations).
    pub validation_ndcg: Option<f64>,
    pub k: usize,
    pub data: DataShape,
    pub validation: ValidationShape,
    /// Every candidate, in the order scored.
    pub candidates: Vec<CandidateReport>,
    pub secs: f64,
    pub budget_secs: f64,
    /// Some candidates were skipped because the budget was spent.
    pub budget_exhausted: bool,
}

/// The validation split: training matrix, relevant held-out items of the scored users.
struct Validation {
    train: Matrix,
    users: Vec<usize>,
    relevant: Vec<Vec<u32>>,
    held_out: usize,
}

/// Salt of the validation split's seed streams, so that with the same seed it never coincides
/// with an evaluation's split of the same users.
const VALIDATION_SALT: u64 = 0x5e1e_c710_u64;

fn validation_split(m: &Matrix, opts: &SelectionOptions) -> Validation {
    let seed = opts.seed ^ VALIDATION_SALT;
    let mut triplets = Vec::with_capacity(m.nnz());
    let mut held: Vec<Vec<(u32, f32)>> = vec![Vec::new(); m.n_rows()];
    let mut held_out = 0;
    for (u, held_u) in held.iter_mut().enumerate() {
        let (items, values) = m.row(u);
        let n = items.len();
        let out = if n >= opts.min_interactions.max(2) {
            let n_test = ((n as f64 * opts.holdout).round() as usize).clamp(1, n - 1);
            held_out_mask(n, n_test, seed, u as u64)
        } else {
            vec![false; n]
        };
        for ((&i, &v), out) in items.iter().zip(values).zip(out) {
            if out {
                held_u.push((i, v));
                held_out += 1;
            } else {
                triplets.push((u as u32, i, v));
            }
        }
    }
    let train = Matrix::from_triplets(m.n_rows(), m.n_cols(), triplets);
    let pick = |threshold: f32| -> Vec<Vec<u32>> {
        held.iter()
            .map(|h| {
                h.iter()
                    .filter(|&&(_, v)| v >= threshold && v > 0.0)
                    .map(|&(i, _)| i)
                    .collect()
            })
            .collect()
    };
    let mut relevant = pick(opts.relevant_min_value);
    if relevant.iter().all(Vec::is_empty) {
        relevant = pick(f32::MIN_POSITIVE);
    }
    let mut users: Vec<usize> = (0..m.n_rows())
        .filter(|&u| !relevant[u].is_empty())
        .collect();
    if users.len() > opts.max_validation_users {
        // A seeded sample: the users with the smallest hashes, in index order.
        let mut keyed: Vec<(u64, usize)> = users
            .iter()
            .map(|&u| (SplitMix64::for_stream(seed, u as u64).next_u64(), u))
            .collect();
        keyed.sort_unstable();
        keyed.truncate(opts.max_validation_users);
        users = keyed.into_iter().map(|(_, u)| u).collect();
        users.sort_unstable();
    }
    Validation {
        train,
        users,
        relevant,
        held_out,
    }
}

/// Mean NDCG, P and R@k over the validation users of lists made by `rank(user, exclude)`.
fn score(
    v: &Validation,
    k: usize,
    rank: impl Fn(usize, &[u32]) -> Vec<u32> + Sync,
) -> (f64, f64, f64) {
    let sums = v
        .users
        .par_iter()
        .map(|&u| {
            let seen = v.train.row(u).0;
            let m = user_metrics(&rank(u, seen), &v.relevant[u], k);
            (m.ndcg, m.precision, m.recall)
        })
        .reduce(|| (0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let n = v.users.len().max(1) as f64;
    (sums.0 / n, sums.1 / n, sums.2 / n)
}

fn ids(top: Vec<(u32, f32)>) -> Vec<u32> {
    top.into_iter().map(|(i, _)| i).collect()
}

/// The item-item weightings tried: cosine, `implicit`'s BM25 defaults, the goodbooks defaults,
/// and a weak length normalisation (dense catalogs).
const ITEM_ITEM_GRID: [ItemItemWeighting; 6] = [
    ItemItemWeighting::Bm25 { k1: 5.0, b: 1.0 },
    ItemItemWeighting::Cosine,
    ItemItemWeighting::Bm25 { k1: 1.2, b: 0.75 },
    ItemItemWeighting::Bm25 { k1: 1.2, b: 0.25 },
    ItemItemWeighting::Rp3 {
        alpha: 0.7,
        beta: 0.3,
    },
    ItemItemWeighting::Rp3 {
        alpha: 1.0,
        beta: 0.5,
    },
];
/// Neighbour counts tried below the largest.
const NEIGHBOUR_GRID: [usize; 2] = [20, 100];
/// ALS `alpha` × λ grid (the goodbooks defaults first).
const ALPHA_GRID: [f32; 4] = [30.0, 1.0, 4.0, 12.0];
const LAMBDA_GRID: [f32; 2] = [1.0, 0.05];
/// The ALS share of the blend that ranks ALS candidates.
const ALS_PROBE_WEIGHT: f32 = 0.3;
/// Iterations of the first rung of successive halving.
const FIRST_RUNG: usize = 3;
/// Items of each part ranked when blends are scored.
const BLEND_CANDIDATES: usize = 100;
/// Blend weights: ALS share from 0 to 1 by tenths, popularity share from this list.
const POPULARITY_WEIGHTS: [f32; 4] = [0.0, 0.05, 0.15, 0.3];

/// Chooses the model to serve for the interactions in `m` (users × items, values as from
/// [`crate::Weights`]); see the module documentation. Runs on the current rayon pool.
pub fn select(
    m: &Matrix,
    opts: &SelectionOptions,
    progress: &mut dyn FnMut(Progress),
) -> Selection {
    let started = Instant::now();
    let over_budget = || started.elapsed() >= opts.budget;
    let k = opts.k;
    let data = DataShape::of(m, opts.relevant_min_value);
    let v = validation_split(m, opts);
    let validation = ValidationShape {
        users: v.users.len(),
        held_out: v.held_out,
        relevant: v.users.iter().map(|&u| v.relevant[u].len()).sum(),
    };
    if v.users.is_empty() {
        let chosen = Choice {
            als: AlsParams {
                factors: opts.factors,
                iterations: opts.iterations,
                seed: opts.seed,
                ..AlsParams::default()
            },
            neighbours: opts.neighbours,
            ..Choice::goodbooks_defaults()
        };
        return Selection {
            chosen_name: chosen.name(),
            chosen,
            validation_ndcg: None,
            k,
            data,
            validation,
            candidates: Vec::new(),
            secs: started.elapsed().as_secs_f64(),
            budget_secs: opts.budget.as_secs_f64(),
            budget_exhausted: false,
        };
    }
    let mut candidates: Vec<CandidateReport> = Vec::new();
    let mut budget_exhausted = false;
    let report =
        |family: &str, name: String, figures: Option<(f64, f64, f64)>, secs: f64| CandidateReport {
            family: family.into(),
            name,
            ndcg: figures.map(|f| f.0),
            precision: figures.map(|f| f.1),
            recall: figures.map(|f| f.2),
            secs,
            note: None,
        };
    let step = |progress: &mut dyn FnMut(Progress), stage: &'static str, step, total| {
        progress(Progress { stage, step, total })
    };

    // Popularity.
    let t = Instant::now();
    let popularity = popularity_scores(&v.train);
    let pop = score(&v, k, |_, seen| ids(top_n(&popularity, seen, k)));
    candidates.push(report(
        "popularity",
        "popularity".into(),
        Some(pop),
        t.elapsed().as_secs_f64(),
    ));
    step(progress, "select popularity", 1, 1);

    // Item-item: each weighting once at the largest neighbour count, smaller ones truncated.
    // The best so far, kept: the ALS probe and the blends use it without training it again.
    let mut best_ii: Option<(f64, ItemItemWeighting, usize, ItemItemModel)> = None;
    // Largest first: a smaller count must be strictly better to be chosen.
    let mut counts: Vec<usize> = vec![opts.neighbours];
    counts.extend(
        NEIGHBOUR_GRID
            .iter()
            .rev()
            .copied()
            .filter(|&n| n < opts.neighbours),
    );
    for (w_i, &weighting) in ITEM_ITEM_GRID.iter().enumerate() {
        if w_i > 0 && over_budget() {
            budget_exhausted = true;
            for &n in &counts {
                let mut r = report("item-item", item_item_name(weighting, n), None, 0.0);
                r.note = Some("skipped: budget spent".into());
                candidates.push(r);
            }
            continue;
        }
        let t = Instant::now();
        let full = ItemItemModel::train(&v.train, weighting, opts.neighbours, &mut |_| {});
        let train_secs = t.elapsed().as_secs_f64();
        for &n in &counts {
            let t = Instant::now();
            let model = if n == opts.neighbours {
                full.clone()
            } else {
                full.truncated(n)
            };
            let figures = score(&v, k, |u, seen| {
                let (items, values) = v.train.row(u);
                ids(top_n(&model.scores(items, values), seen, k))
            });
            let secs = t.elapsed().as_secs_f64() + train_secs / counts.len() as f64;
            candidates.push(report(
                "item-item",
                item_item_name(weighting, n),
                Some(figures),
                secs,
            ));
            if best_ii.as_ref().is_none_or(|(b, ..)| figures.0 > *b) {
                best_ii = Some((figures.0, weighting, n, model));
            }
        }
        step(progress, "select item-item", w_i + 1, ITEM_ITEM_GRID.len());
    }
    let (_, ii_weighting, ii_neighbours, probe_ii) =
        best_ii.expect("the first weighting always runs");

    // ALS: successive halving over alpha × λ, warm-started from each rung's factors.
    let base = AlsParams {
        factors: opts.factors,
        iterations: FIRST_RUNG.min(opts.iterations).max(1),
        seed: opts.seed,
        ..AlsParams::default()
    };
    let mut rung: Vec<(AlsParams, Option<AlsModel>, f64)> = ALPHA_GRID
        .iter()
        .flat_map(|&alpha| {
            let base = &base;
            LAMBDA_GRID.iter().map(move |&regularization| AlsParams {
                alpha,
                regularization,
                ..base.clone()
            })
        })
        .map(|p| (p, None, f64::NEG_INFINITY))
        .collect();
    // ALS is scored as it is served, in a blend: alone and at `ALS_PROBE_WEIGHT` beside the
    // best item-item model (its ranking decides the halving and the finalists' order).
    let probe_grid = [(1.0, 0.0), (ALS_PROBE_WEIGHT, 0.0)];
    let als_figures = |model: &AlsModel| -> ((f64, f64, f64), f64) {
        let sums = blend_sweep(&v, k, &probe_grid, &probe_ii, model, &popularity);
        let n = v.users.len().max(1) as f64;
        let alone = (sums[0][0] / n, sums[0][1] / n, sums[0][2] / n);
        (alone, sums[1][0] / n)
    };
    let mut done = 0;
    // Fully trained ALS models, best first once sorted: each is blended below.
    let mut finalists: Vec<(f64, AlsModel)> = Vec::new();
    let total_steps = opts.iterations;
    while !rung.is_empty() {
        let mut next = Vec::with_capacity(rung.len());
        for (i, (params, model, _)) in rung.into_iter().enumerate() {
            // The first configuration (the goodbooks defaults) always gets its full training.
            if over_budget() && i > 0 {
                budget_exhausted = true;
                let mut r = report("als", als_name(&params), None, 0.0);
                r.note = Some(format!(
                    "skipped after {} iterations: budget spent",
                    model.as_ref().map_or(0, |m| m.params().iterations)
                ));
                candidates.push(r);
                continue;
            }
            let t = Instant::now();
            let trained = match model {
                None => AlsModel::train(&v.train, &params, &mut |_| {}),
                Some(m) => {
                    let target = (done * 2 + 1).min(opts.iterations);
                    let more = target.saturating_sub(m.params().iterations);
                    m.train_more(&v.train, more, &mut |_| {})
                }
            };
            let (figures, blended) = als_figures(&trained);
            let iterations = trained.params().iterations;
            let mut r = report(
                "als",
                als_name(&params),
                Some(figures),
                t.elapsed().as_secs_f64(),
            );
            r.note = Some(probe_note(iterations, blended));
            candidates.push(r);
            next.push((params, Some(trained), blended));
        }
        next.sort_by(|a, b| b.2.total_cmp(&a.2));
        let reached = next
            .first()
            .and_then(|n| n.1.as_ref())
            .map_or(opts.iterations, |m| m.params().iterations);
        done = reached;
        step(progress, "select als", done.min(total_steps), total_steps);
        if reached >= opts.iterations || next.len() <= 1 {
            for (params, model, ndcg) in next {
                let Some(model) = model else { continue };
                if model.params().iterations >= opts.iterations {
                    finalists.push((ndcg, model));
                } else if finalists.is_empty() {
                    let more = opts.iterations - model.params().iterations;
                    let model = model.train_more(&v.train, more, &mut |_| {});
                    let (figures, blended) = als_figures(&model);
                    let mut r = report("als", als_name(&params), Some(figures), 0.0);
                    r.note = Some(probe_note(opts.iterations, blended));
                    candidates.push(r);
                    finalists.push((blended, model));
                }
            }
            break;
        }
        // The better half goes on (at least one).
        let keep = next.len().div_ceil(2).max(1);
        next.truncate(keep);
        rung = next;
    }
    assert!(!finalists.is_empty(), "one ALS candidate always runs");
    // Other factor counts for the best, at full iterations.
    let best_params = finalists[0].1.params().clone();
    for factors in [opts.factors / 2, opts.factors * 2] {
        let params = AlsParams {
            factors,
            iterations: opts.iterations,
            ..best_params.clone()
        };
        if factors == 0 {
            continue;
        }
        if over_budget() {
            budget_exhausted = true;
            let mut r = report("als", als_name(&params), None, 0.0);
            r.note = Some("skipped: budget spent".into());
            candidates.push(r);
            continue;
        }
        let t = Instant::now();
        let model = AlsModel::train(&v.train, &params, &mut |_| {});
        let (figures, blended) = als_figures(&model);
        let mut r = report(
            "als",
            als_name(&params),
            Some(figures),
            t.elapsed().as_secs_f64(),
        );
        r.note = Some(probe_note(opts.iterations, blended));
        candidates.push(r);
        finalists.push((blended, model));
    }
    finalists.sort_by(|a, b| b.0.total_cmp(&a.0));

    // Blends of each ALS finalist with the best item-item model and popularity: every weight of
    // the grid in one pass over the validation users.
    let item_item = probe_ii;
    let mut grid: Vec<(f32, f32)> = Vec::new();
    for &p in &POPULARITY_WEIGHTS {
        for tenth in 0..=10 {
            let a = tenth as f32 / 10.0;
            if a + p <= 1.0 + 1e-6 {
                grid.push((a.min(1.0 - p), p));
            }
        }
    }
    grid.push((0.0, 1.0));
    let mut best: Option<(f64, Choice)> = None;
    for (f_i, (_, als_model)) in finalists.iter().enumerate() {
        let als_params = AlsParams {
            iterations: opts.iterations,
            ..als_model.params().clone()
        };
        if f_i > 0 && over_budget() {
            budget_exhausted = true;
            let mut r = report(
                "blend",
                format!("blends with {}", als_name(&als_params)),
                None,
                0.0,
            );
            r.note = Some("skipped: budget spent".into());
            candidates.push(r);
            continue;
        }
        let t = Instant::now();
        let sums = blend_sweep(&v, k, &grid, &item_item, als_model, &popularity);
        let n = v.users.len().max(1) as f64;
        let blend_secs = t.elapsed().as_secs_f64() / grid.len() as f64;
        for (&(a, p), s) in grid.iter().zip(&sums) {
            let choice = Choice {
                als: als_params.clone(),
                item_item: ii_weighting,
                neighbours: ii_neighbours,
                als_weight: a,
                popularity_weight: p,
            };
            let figures = (s[0] / n, s[1] / n, s[2] / n);
            // Strictly better only: among equals the earlier, simpler weights stay.
            if best.as_ref().is_none_or(|(b, _)| figures.0 > *b) {
                best = Some((figures.0, choice.clone()));
            }
            // The grid's points without ALS are the same for every finalist: reported once.
            if f_i == 0 || a > 0.0 {
                candidates.push(report("blend", choice.name(), Some(figures), blend_secs));
            }
        }
    }
    step(progress, "select blend", 1, 1);
    let (validation_ndcg, chosen) = best.expect("the grid is not empty");
    Selection {
        chosen_name: chosen.name(),
        chosen,
        validation_ndcg: Some(validation_ndcg),
        k,
        data,
        validation,
        candidates,
        secs: started.elapsed().as_secs_f64(),
        budget_secs: opts.budget.as_secs_f64(),
        budget_exhausted,
    }
}

fn probe_note(iterations: usize, blended: f64) -> String {
    format!(
        "{iterations} iterations; NDCG in a {ALS_PROBE_WEIGHT} blend with the best item-item model: {blended:.4}"
    )
}

/// Sums of NDCG, P and R@k over the validation users for every `(ALS weight, popularity weight)`
/// of `grid` (item-item has the rest).
fn blend_sweep(
    v: &Validation,
    k: usize,
    grid: &[(f32, f32)],
    item_item: &ItemItemModel,
    als: &AlsModel,
    popularity: &[f32],
) -> Vec<[f64; 3]> {
    v.users
        .par_chunks(256)
        .map(|batch| {
            // The validation users were trained: their ALS factors score them in one product.
            let als_scores = als.scores_for_users(batch);
            let mut sums = vec![[0.0; 3]; grid.len()];
            for (row, &u) in batch.iter().enumerate() {
                let (items, values) = v.train.row(u);
                let ii = item_item.scores(items, values);
                let als = als_scores.row(row);
                let als = als.as_slice().expect("a row of a standard-layout matrix");
                let parts: [&[f32]; 3] = [&ii, als, popularity];
                // Each part normalised by its largest score among the candidates (as
                // `blend_parts`); only the union of each part's top `BLEND_CANDIDATES` is ranked:
                // an item outside it is behind that many items in every part.
                let mut scale = [0f32; 3];
                let mut pool: Vec<u32> = Vec::new();
                for (part, scale) in parts.iter().zip(&mut scale) {
                    let top = top_n(part, items, BLEND_CANDIDATES);
                    if let Some(&(_, max)) = top.first().filter(|t| t.1 > 0.0) {
                        *scale = 1.0 / max;
                    }
                    pool.extend(top.iter().map(|t| t.0));
                }
                pool.sort_unstable();
                pool.dedup();
                let normalised: Vec<[f32; 3]> = pool
                    .iter()
                    .map(|&j| {
                        let j = j as usize;
                        [
                            ii[j] * scale[0],
                            als[j] * scale[1],
                            popularity[j] * scale[2],
                        ]
                    })
                    .collect();
                let mut blended = vec![0f32; pool.len()];
                for (&(a, p), sum) in grid.iter().zip(&mut sums) {
                    let w = [(1.0 - a - p).max(0.0), a, p];
                    for (b, n) in blended.iter_mut().zip(&normalised) {
                        *b = w[0] * n[0] + w[1] * n[1] + w[2] * n[2];
                    }
                    let list: Vec<u32> = top_n(&blended, &[], k)
                        .into_iter()
                        .map(|(i, _)| pool[i as usize])
                        .collect();
                    let m = user_metrics(&list, &v.relevant[u], k);
                    sum[0] += m.ndcg;
                    sum[1] += m.precision;
                    sum[2] += m.recall;
                }
            }
            sums
        })
        .reduce(
            || vec![[0.0; 3]; grid.len()],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    for c in 0..3 {
                        x[c] += y[c];
                    }
                }
                a
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::blocks;

    fn small() -> SelectionOptions {
        SelectionOptions {
            factors: 2,
            iterations: 6,
            neighbours: 10,
            min_interactions: 4,
            ..SelectionOptions::default()
        }
    }

    #[test]
    fn chooses_the_best_candidate_and_reports_every_one() {
        let m = blocks();
        let s = select(&m, &small(), &mut |_| {});
        let best = s.validation_ndcg.expect("users were held out");
        // Every family was tried, and the chosen blend is the best blend (the grid holds the
        // single models as blends with one weight of 1) and beats popularity.
        for family in ["popularity", "item-item", "als", "blend"] {
            assert!(
                s.candidates
                    .iter()
                    .any(|c| c.family == family && c.ndcg.is_some()),
                "{family}: {s:?}"
            );
        }
        let blends = s.candidates.iter().filter(|c| c.family == "blend");
        assert!(blends.filter_map(|c| c.ndcg).all(|n| n <= best));
        let popularity = s.candidates[0].ndcg.unwrap();
        assert!(best > popularity, "{best} vs popularity {popularity}");
        assert!(!s.budget_exhausted);
        assert_eq!((s.data.users, s.data.items), (40, 20));
        assert_eq!(s.chosen_name, s.chosen.name());
        // The choice trains into a model over the whole matrix that keeps to the blocks.
        let model = s.chosen.train(&m, &mut |_| {});
        let (items, values) = m.row(3);
        let top = top_n(&model.scores(items, values), items, 3);
        assert!(top.iter().all(|&(i, _)| i < 10), "{top:?}");
        // Seeded: the same data and options choose the same way.
        let again = select(&m, &small(), &mut |_| {});
        assert_eq!(again.chosen, s.chosen);
        assert_eq!(again.validation_ndcg, s.validation_ndcg);
    }

    #[test]
    fn a_spent_budget_skips_candidates_but_still_chooses() {
        let opts = SelectionOptions {
            budget: Duration::ZERO,
            ..small()
        };
        let s = select(&blocks(), &opts, &mut |_| {});
        assert!(s.budget_exhausted);
        assert!(s.validation_ndcg.is_some());
        assert!(
            s.candidates.iter().any(
                |c| c.ndcg.is_none() && c.note.as_deref().is_some_and(|n| n.contains("budget"))
            ),
            "{s:?}"
        );
        // The first item-item weighting and one ALS configuration always run.
        assert!(
            s.candidates
                .iter()
                .any(|c| c.family == "item-item" && c.ndcg.is_some())
        );
        assert!(
            s.candidates
                .iter()
                .any(|c| c.family == "als" && c.ndcg.is_some())
        );
    }

    #[test]
    fn without_anything_to_hold_out_the_defaults_are_chosen() {
        // Two interactions per user: below `min_interactions`.
        let m = Matrix::from_triplets(3, 4, [(0, 0, 1.0), (0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0)]);
        let s = select(&m, &small(), &mut |_| {});
        assert_eq!(s.validation_ndcg, None);
        assert!(s.candidates.is_empty());
        assert_eq!(s.chosen.item_item, ItemItemWeighting::default());
        assert_eq!((s.chosen.als.factors, s.chosen.neighbours), (2, 10));
    }

    #[test]
    fn the_validation_split_holds_out_a_share_of_each_eligible_user() {
        let m = blocks();
        let v = validation_split(&m, &small());
        // Six interactions each: one (20% of 6, rounded) held out per user.
        assert_eq!(v.held_out, 40);
        assert_eq!(v.train.nnz(), 200);
        for u in 0..40 {
            assert_eq!(v.train.row(u).0.len(), 5);
        }
        // Relevant: held out with a value of at least 1 (values here are 1, 1.5 and 2).
        assert_eq!(v.users.len(), 40);
        let names = |c: &Choice| c.name();
        let pop_only = Choice {
            als_weight: 0.0,
            popularity_weight: 1.0,
            ..Choice::goodbooks_defaults()
        };
        assert_eq!(names(&pop_only), "popularity");
        assert!(
            names(&Choice::goodbooks_defaults())
                .starts_with("0.70 bm25(k1 5, b 1, 400 nn) + 0.30 als(alpha 30")
        );
    }
}
