//! Quire's recommendation engine: pure computation over an interaction matrix, no IO.
//!
//! - [`Weights`] turn a user's signals on a book (rating, like, views) into one implicit-feedback
//!   value; [`Matrix`] holds those values as compressed sparse rows (user × item).
//! - [`AlsModel`]: implicit-feedback alternating least squares (Hu, Koren and Volinsky 2008) with
//!   conjugate-gradient row solves (Takács et al. 2011), multi-threaded with rayon; `fold_in` for a
//!   user not in (or changed since) training.
//! - [`ItemItemModel`]: item-item nearest neighbours on cosine or BM25-weighted co-occurrence.
//! - [`blend_scores`]: BM25 item-item and ALS scores blended (the best model on goodbooks-10k).
//! - [`HybridModel`]: ALS and item-item stored together and blended exactly as the evaluation's
//!   `blend`: the model that is served.
//! - [`select()`]: the trainer's choice of model and parameters on a validation split of the data
//!   itself ([`Choice`], [`Selection`]).
//! - [`Popularity`]: interaction counts and Bayesian-average ratings, the baseline and cold start.
//! - [`goodbooks`] reads the goodbooks-10k ratings; [`eval`] is the offline evaluation (per-user
//!   holdout, P@k, R@k, NDCG@k, coverage) that chose the defaults.
//!
//! See `recs/README.md` for the defaults, the evaluation protocol and the measured figures.

pub mod als;
pub mod eval;
mod format;
pub mod goodbooks;
pub mod hybrid;
pub mod itemitem;
mod linalg;
pub mod matrix;
pub mod popularity;
mod rng;
pub mod select;
#[cfg(test)]
mod testing;

pub use als::{AlsModel, AlsParams, ModelDecodeError};
pub use hybrid::HybridModel;
pub use itemitem::{ItemItemModel, ItemItemWeighting};
pub use matrix::Matrix;
pub use popularity::{Popularity, bayesian_average};
pub use select::{Choice, Selection, SelectionOptions, select};

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

/// What one user did with one book: the raw signals a recommendation value is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// Star rating, `1..=5` (anything else is ignored).
    pub rating: Option<u8>,
    /// Whether the user liked (favourited) the book.
    pub liked: bool,
    /// How many times the user viewed the book's page.
    pub views: u32,
}

/// How signals become one implicit-feedback value: the sum of the rating's value, `like` if
/// liked, and `view` per view up to `view_cap` views.
///
/// The value feeds the models as the matrix entry; ALS turns it into confidence
/// `alpha · value`. The defaults were chosen by evaluation on goodbooks-10k (ratings only; see
/// `recs/README.md`): every rating is positive evidence of interest, a higher rating more so.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// The value of a rating of 1, 2, 3, 4 and 5 stars.
    pub rating: [f32; 5],
    /// The value of a like.
    pub like: f32,
    /// The value of one view.
    pub view: f32,
    /// Views beyond this many add nothing.
    pub view_cap: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            rating: [0.2, 0.4, 0.7, 1.0, 1.3],
            like: 1.0,
            view: 0.2,
            view_cap: 5,
        }
    }
}

impl Weights {
    /// The value of a user's signals on one book; `0.0` means "no signal" (the pair is left out of
    /// the matrix).
    pub fn value(&self, s: &Signals) -> f32 {
        let mut v = 0.0;
        if let Some(r @ 1..=5) = s.rating {
            v += self.rating[usize::from(r) - 1];
        }
        if s.liked {
            v += self.like;
        }
        v + self.view * s.views.min(self.view_cap) as f32
    }
}

/// Where a long computation is, for a progress bar: step `step` of `total` in `stage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// What is running, e.g. `"als"`, `"bm25"`, `"evaluate als"`.
    pub stage: &'static str,
    /// Steps done so far (`1..=total`).
    pub step: usize,
    /// Steps in this stage.
    pub total: usize,
}

/// One recommended item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// The item (dense index).
    pub item: u32,
    /// Its score: higher is better; comparable only within one model and one user.
    pub score: f32,
    /// The user's item that explains it best ("because you rated X"), when the model knows one.
    pub because: Option<u32>,
}

/// A candidate in [`top_n`]'s heap, ordered so that the *worse* candidate is the greater one
/// (lower score, then higher item index), making `BinaryHeap` a min-heap of the kept best.
#[derive(Clone, Copy, PartialEq)]
struct Worse(f32, u32);

impl Eq for Worse {}

impl Ord for Worse {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Worse {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `n` best items of `scores` (indexed by item): highest score first, ties broken by the lower
/// item index (deterministic), skipping the items in `exclude` and NaN scores.
pub fn top_n(scores: &[f32], exclude: &[u32], n: usize) -> Vec<(u32, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut excluded: Vec<u32> = exclude.to_vec();
    if !excluded.is_sorted() {
        excluded.sort_unstable();
    }
    let mut heap: BinaryHeap<Worse> = BinaryHeap::with_capacity(n + 1);
    for (i, &s) in scores.iter().enumerate() {
        if s.is_nan() {
            continue;
        }
        let candidate = Worse(s, i as u32);
        if heap.len() == n {
            // The heap's top is the worst kept; a candidate must beat it.
            if candidate >= *heap.peek().expect("heap holds n > 0 items") {
                continue;
            }
        }
        if excluded.binary_search(&(i as u32)).is_ok() {
            continue;
        }
        heap.push(candidate);
        if heap.len() > n {
            heap.pop();
        }
    }
    let mut best: Vec<(u32, f32)> = heap.into_iter().map(|Worse(s, i)| (i, s)).collect();
    best.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    best
}

/// The share of ALS in a blend with BM25 item-item ([`blend_scores`]'s `b_weight`): the best of
/// 0, 0.05, …, 0.6 on goodbooks-10k (NDCG@10 +1.1% over BM25 alone; see `recs/README.md`).
pub const DEFAULT_BLEND_ALS_WEIGHT: f32 = 0.3;

/// A linear blend of two models' scores for one user (e.g. item-item and ALS), each first divided
/// by its largest score over the items not in `exclude` (a part whose largest score is not positive
/// counts as 0): `(1 − b_weight) · a / max(a) + b_weight · b / max(b)`.
///
/// # Panics
/// If the two score vectors differ in length.
pub fn blend_scores(a: &[f32], b: &[f32], b_weight: f32, exclude: &[u32]) -> Vec<f32> {
    blend_parts(&[(a, 1.0 - b_weight), (b, b_weight)], exclude)
}

/// A linear blend of any number of models' scores for one user: `Σ weight · s / max(s)`, each
/// part's maximum taken over the items not in `exclude` (a part whose largest score is not
/// positive, or whose weight is 0, counts as 0).
///
/// # Panics
/// If the score vectors differ in length.
pub fn blend_parts(parts: &[(&[f32], f32)], exclude: &[u32]) -> Vec<f32> {
    let n = parts.first().map_or(0, |(s, _)| s.len());
    assert!(
        parts.iter().all(|(s, _)| s.len() == n),
        "score vectors of different catalogs"
    );
    let mut excluded: Vec<u32> = exclude.to_vec();
    excluded.sort_unstable();
    let scale = |s: &[f32], weight: f32| {
        if weight == 0.0 {
            return 0.0;
        }
        let max = s
            .iter()
            .enumerate()
            .filter(|(i, v)| !v.is_nan() && excluded.binary_search(&(*i as u32)).is_err())
            .map(|(_, &v)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        if max > 0.0 { weight / max } else { 0.0 }
    };
    let mut out = vec![0f32; n];
    for (s, weight) in parts {
        let k = scale(s, *weight);
        if k != 0.0 {
            for (o, &x) in out.iter_mut().zip(s.iter()) {
                *o += k * x;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_normalises_each_part_over_the_candidates() {
        // Item 0 is excluded, so the maxima are 2 (a) and 4 (b).
        let a = [10.0, 2.0, 1.0, 0.0];
        let b = [0.0, 1.0, 4.0, 2.0];
        let s = blend_scores(&a, &b, 0.25, &[0]);
        let expected = [0.75 * 5.0, 0.75 + 0.25 / 4.0, 0.375 + 0.25, 0.125];
        for (x, e) in s.iter().zip(expected) {
            assert!((x - e).abs() < 1e-6, "{s:?}");
        }
        // A part with nothing positive counts as nothing.
        assert_eq!(
            blend_scores(&[1.0, 2.0], &[-1.0, -2.0], 0.5, &[]),
            vec![0.25, 0.5]
        );
    }

    #[test]
    fn weights_sum_the_signals() {
        let w = Weights::default();
        assert_eq!(w.value(&Signals::default()), 0.0);
        assert_eq!(
            w.value(&Signals {
                rating: Some(4),
                ..Signals::default()
            }),
            w.rating[3]
        );
        assert_eq!(
            w.value(&Signals {
                rating: Some(9),
                ..Signals::default()
            }),
            0.0
        );
        let all = Signals {
            rating: Some(5),
            liked: true,
            views: 100,
        };
        let expected = w.rating[4] + w.like + w.view * w.view_cap as f32;
        assert!((w.value(&all) - expected).abs() < 1e-6);
    }

    #[test]
    fn top_n_orders_breaks_ties_by_index_and_excludes() {
        let scores = [0.5, 2.0, f32::NAN, 2.0, 1.0, -1.0, 2.0];
        assert_eq!(top_n(&scores, &[], 3), vec![(1, 2.0), (3, 2.0), (6, 2.0)]);
        assert_eq!(
            top_n(&scores, &[3, 1], 3),
            vec![(6, 2.0), (4, 1.0), (0, 0.5)]
        );
        // Unsorted exclusions work too; NaN is never returned, even when asking for everything.
        let all = top_n(&scores, &[6, 0], 10);
        assert_eq!(all, vec![(1, 2.0), (3, 2.0), (4, 1.0), (5, -1.0)]);
        assert!(top_n(&scores, &[], 0).is_empty());
        // Same input, same output, whatever the heap did.
        assert_eq!(top_n(&scores, &[], 4), top_n(&scores, &[], 4));
        let big: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32).collect();
        let t = top_n(&big, &[], 5);
        let mut sorted: Vec<(u32, f32)> = big
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(t, sorted[..5].to_vec());
    }
}
