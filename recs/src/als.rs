//! Implicit-feedback alternating least squares (Hu, Koren and Volinsky 2008) with
//! conjugate-gradient row solves (Takács, Pilászy and Tikk 2011).
//!
//! Confidence follows Python `implicit`: `c = alpha · value` (not `1 + alpha · value`); an
//! unobserved pair has preference 0 and confidence 1. Each half-iteration precomputes `YᵀY + λI`
//! once, then every row runs `cg_steps` CG steps warm-started from its previous factor, in
//! parallel on the current rayon pool.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::linalg::{BlockScratch, cg_update_block, cholesky_solve, dot, normal_equations};
use crate::rng::SplitMix64;
use crate::{Matrix, Progress, Scored, top_n};

/// Training parameters of [`AlsModel`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlsParams {
    /// Dimensions of the latent factors.
    pub factors: usize,
    /// Full iterations (a user half and an item half each).
    pub iterations: usize,
    /// L2 regularisation λ added to the diagonal of every row's normal equations.
    pub regularization: f32,
    /// Confidence scale: an entry with value `v` has confidence `alpha · v`.
    pub alpha: f32,
    /// Conjugate-gradient steps per row and half-iteration (warm-started).
    pub cg_steps: usize,
    /// Seed of the random initial factors.
    pub seed: u64,
}

impl Default for AlsParams {
    /// 64 factors and 15 iterations (fixed by the product); `alpha` and `regularization` chosen by
    /// evaluation on goodbooks-10k with the default [`crate::Weights`] (see `recs/README.md`).
    fn default() -> Self {
        AlsParams {
            factors: 64,
            iterations: 15,
            regularization: 1.0,
            alpha: 30.0,
            cg_steps: 3,
            seed: 42,
        }
    }
}

/// A trained ALS model: one factor vector per user and per item.
#[derive(Clone, Debug)]
pub struct AlsModel {
    user_factors: Array2<f32>,
    item_factors: Array2<f32>,
    params: AlsParams,
    /// `YᵀY + λI` of the item factors, row-major, for `fold_in`.
    item_gram: Vec<f32>,
}

/// Why a stored model's `from_bytes` ([`AlsModel::from_bytes`],
/// [`crate::ItemItemModel::from_bytes`], [`crate::HybridModel::from_bytes`]) refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelDecodeError {
    /// The input does not start with the model's magic bytes.
    #[error("not a quire model of this kind (bad magic bytes)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported model format version {0}")]
    UnsupportedVersion(u32),
    /// Fewer bytes than the header says.
    #[error("truncated model: {actual} bytes, expected {expected}")]
    Truncated {
        /// Bytes the header calls for (or the header's own size).
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// More bytes than the header says.
    #[error("model has trailing bytes: {actual} bytes, expected {expected}")]
    TrailingBytes {
        /// Bytes the header calls for.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A header field or a value is impossible (zero factors, sizes that overflow, NaN, ...).
    #[error("invalid model: {0}")]
    Invalid(&'static str),
}

const MAGIC: &[u8; 8] = b"QRECALS\0";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 4 + 4 + 4 + 4 + 8;

/// `YᵀY + λI` as a row-major `f × f` vector. Large inputs are split across the rayon pool.
fn gram(y: ArrayView2<'_, f32>, regularization: f32) -> Vec<f32> {
    fn product(y: ArrayView2<'_, f32>) -> Array2<f32> {
        const SPLIT: usize = 16_384;
        if y.nrows() <= SPLIT {
            return y.t().dot(&y);
        }
        let (a, b) = y.split_at(Axis(0), y.nrows() / 2);
        let (ga, gb) = rayon::join(|| product(a), || product(b));
        ga + gb
    }
    let f = y.ncols();
    let mut g = product(y);
    for j in 0..f {
        g[[j, j]] += regularization;
    }
    g.iter().copied().collect()
}

/// Rows per parallel task: one block of the lockstep CG solver.
const ROWS_PER_TASK: usize = 64;

/// One half-iteration: every row of `x` takes `steps` CG steps against `y`, in blocks of
/// [`ROWS_PER_TASK`] rows spread over the rayon pool.
fn solve_side(c: &Matrix, x: &mut Array2<f32>, y: &Array2<f32>, regularization: f32, steps: usize) {
    let f = x.ncols();
    let g = Array2::from_shape_vec((f, f), gram(y.view(), regularization)).expect("f × f entries");
    let y = y.as_slice().expect("factors are in standard layout");
    let arch = pulp::Arch::new();
    x.as_slice_mut()
        .expect("factors are in standard layout")
        .par_chunks_mut(f * ROWS_PER_TASK)
        .enumerate()
        .for_each_init(
            || BlockScratch::new(ROWS_PER_TASK, f),
            |scratch, (block, xs)| {
                cg_update_block(
                    arch,
                    g.view(),
                    y,
                    c,
                    block * ROWS_PER_TASK,
                    xs,
                    steps,
                    scratch,
                );
            },
        );
}

impl AlsModel {
    /// Trains on a user × item matrix of values (e.g. from [`crate::Weights`]); negative values
    /// are dislikes (preference 0 with confidence `alpha · |value|`). Runs on the current rayon
    /// pool and reports one progress step per iteration.
    ///
    /// # Panics
    /// If `p.factors` is 0.
    pub fn train(m: &Matrix, p: &AlsParams, progress: &mut dyn FnMut(Progress)) -> AlsModel {
        assert!(p.factors > 0, "ALS needs at least one factor");
        let f = p.factors;
        // Small positive initial factors, as `implicit` does (uniform in [0, 0.01)).
        let mut rng = SplitMix64::new(p.seed);
        let users = Array2::from_shape_simple_fn((m.n_rows(), f), || rng.next_f32() * 0.01);
        let items = Array2::from_shape_simple_fn((m.n_cols(), f), || rng.next_f32() * 0.01);
        Self::iterate(m, users, items, p, p.iterations, progress)
    }

    /// Goes on training this model on `m` (the matrix it was trained on) for `more` iterations,
    /// from its factors: the warm start of a search that trains many candidates a few iterations
    /// and only the promising ones further. The result's `params().iterations` counts all of
    /// them; `train` with that many iterations gives the same model.
    ///
    /// # Panics
    /// If `m` is not the shape the model was trained on.
    pub fn train_more(
        self,
        m: &Matrix,
        more: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> AlsModel {
        assert_eq!(
            (m.n_rows(), m.n_cols()),
            (self.n_users(), self.n_items()),
            "the matrix the model was trained on"
        );
        let mut p = self.params;
        p.iterations += more;
        Self::iterate(m, self.user_factors, self.item_factors, &p, more, progress)
    }

    fn iterate(
        m: &Matrix,
        mut users: Array2<f32>,
        mut items: Array2<f32>,
        p: &AlsParams,
        iterations: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> AlsModel {
        let cui = m.map_values(|v| p.alpha * v);
        let ciu = cui.transpose();
        for iteration in 0..iterations {
            solve_side(&cui, &mut users, &items, p.regularization, p.cg_steps);
            solve_side(&ciu, &mut items, &users, p.regularization, p.cg_steps);
            progress(Progress {
                stage: "als",
                step: iteration + 1,
                total: iterations,
            });
        }
        Self::from_parts(users, items, p.clone())
    }

    fn from_parts(user_factors: Array2<f32>, item_factors: Array2<f32>, params: AlsParams) -> Self {
        let item_gram = gram(item_factors.view(), params.regularization);
        AlsModel {
            user_factors,
            item_factors,
            params,
            item_gram,
        }
    }

    /// Number of users trained.
    pub fn n_users(&self) -> usize {
        self.user_factors.nrows()
    }

    /// Number of items trained.
    pub fn n_items(&self) -> usize {
        self.item_factors.nrows()
    }

    /// Dimensions of the factors.
    pub fn factors(&self) -> usize {
        self.item_factors.ncols()
    }

    /// The parameters the model was trained with.
    pub fn params(&self) -> &AlsParams {
        &self.params
    }

    /// All user factors (`n_users × factors`).
    pub fn user_factors(&self) -> ArrayView2<'_, f32> {
        self.user_factors.view()
    }

    /// All item factors (`n_items × factors`).
    pub fn item_factors(&self) -> ArrayView2<'_, f32> {
        self.item_factors.view()
    }

    /// A trained user's factor.
    ///
    /// # Panics
    /// If `user >= n_users()`.
    pub fn user_vector(&self, user: usize) -> &[f32] {
        let f = self.factors();
        &self.user_factors.as_slice().expect("standard layout")[user * f..(user + 1) * f]
    }

    /// An item's factor.
    ///
    /// # Panics
    /// If `item >= n_items()`.
    pub fn item_vector(&self, item: u32) -> &[f32] {
        let f = self.factors();
        let i = item as usize;
        &self.item_factors.as_slice().expect("standard layout")[i * f..(i + 1) * f]
    }

    /// A factor for a user not in (or changed since) training, from their interactions: the exact
    /// regularised least-squares solve against the item factors (Cholesky, in `f64`), the same
    /// equations training solves approximately. Duplicate items are summed; items the model does
    /// not know and zero values are ignored. No interactions give the zero vector.
    pub fn fold_in(&self, items: &[u32], values: &[f32]) -> Vec<f32> {
        let f = self.factors();
        let mut pairs: Vec<(u32, f32)> = items
            .iter()
            .zip(values)
            .filter(|&(&i, _)| (i as usize) < self.n_items())
            .map(|(&i, &v)| (i, v))
            .collect();
        pairs.sort_by_key(|&(i, _)| i);
        let mut cols = Vec::with_capacity(pairs.len());
        let mut conf = Vec::with_capacity(pairs.len());
        for (i, v) in pairs {
            if cols.last() == Some(&i) {
                *conf.last_mut().expect("pushed together") += self.params.alpha * v;
            } else {
                cols.push(i);
                conf.push(self.params.alpha * v);
            }
        }
        if conf.iter().all(|&c| c <= 0.0) {
            return vec![0.0; f];
        }
        let y = self.item_factors.as_slice().expect("standard layout");
        let (a, b) = normal_equations(&self.item_gram, y, f, &cols, &conf);
        cholesky_solve(&a, &b)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }

    /// The score of every item for a user factor (`item · user`).
    pub fn scores(&self, user_vec: &[f32]) -> Vec<f32> {
        self.item_factors
            .as_slice()
            .expect("standard layout")
            .chunks_exact(self.factors())
            .map(|item| dot(item, user_vec))
            .collect()
    }

    /// Scores of several trained users at once (one matrix product): row `k` scores every item for
    /// `users[k]`. Faster than [`AlsModel::scores`] per user for batch jobs.
    ///
    /// # Panics
    /// If a user is out of range.
    pub fn scores_for_users(&self, users: &[usize]) -> Array2<f32> {
        let block = self.user_factors.select(Axis(0), users);
        let scores = block.dot(&self.item_factors.t());
        // Row-major always, so that every row is one slice (the product may pick column-major
        // for some shapes).
        if scores.is_standard_layout() {
            scores
        } else {
            scores.as_standard_layout().into_owned()
        }
    }

    /// Cosine similarity of two items' factors (for "because you rated X" explanations); 0 for an
    /// unknown item or a zero factor.
    pub fn item_similarity(&self, a: u32, b: u32) -> f32 {
        if a as usize >= self.n_items() || b as usize >= self.n_items() {
            return 0.0;
        }
        let (va, vb) = (self.item_vector(a), self.item_vector(b));
        let norms = (dot(va, va) * dot(vb, vb)).sqrt();
        if norms > 0.0 {
            dot(va, vb) / norms
        } else {
            0.0
        }
    }

    /// The `n` best items for a user factor, skipping `exclude`, each explained by the item of
    /// `explain_with` (typically the user's own items) most similar to it.
    pub fn recommend(
        &self,
        user_vec: &[f32],
        explain_with: &[u32],
        exclude: &[u32],
        n: usize,
    ) -> Vec<Scored> {
        top_n(&self.scores(user_vec), exclude, n)
            .into_iter()
            .map(|(item, score)| Scored {
                item,
                score,
                because: explain_with
                    .iter()
                    .copied()
                    .filter(|&e| (e as usize) < self.n_items())
                    .map(|e| (e, self.item_similarity(e, item)))
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                    .map(|(e, _)| e),
            })
            .collect()
    }

    /// The model as bytes: a versioned little-endian header (magic `QRECALS\0`, version, sizes,
    /// parameters) followed by the user and then the item factors as little-endian `f32`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let f = self.factors();
        let mut out = Vec::with_capacity(HEADER_LEN + 4 * f * (self.n_users() + self.n_items()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(f as u32).to_le_bytes());
        out.extend_from_slice(&(self.n_users() as u64).to_le_bytes());
        out.extend_from_slice(&(self.n_items() as u64).to_le_bytes());
        out.extend_from_slice(&(self.params.iterations as u32).to_le_bytes());
        out.extend_from_slice(&(self.params.cg_steps as u32).to_le_bytes());
        out.extend_from_slice(&self.params.regularization.to_le_bytes());
        out.extend_from_slice(&self.params.alpha.to_le_bytes());
        out.extend_from_slice(&self.params.seed.to_le_bytes());
        for v in self.user_factors.iter().chain(self.item_factors.iter()) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads what [`AlsModel::to_bytes`] wrote; refuses anything else (wrong magic or version,
    /// truncated, trailing bytes, impossible sizes, non-finite numbers).
    pub fn from_bytes(b: &[u8]) -> Result<AlsModel, ModelDecodeError> {
        let f = crate::format::check_header(b, MAGIC, HEADER_LEN, FORMAT_VERSION)?;
        let factors = f.u32_at(12) as usize;
        let n_users = f.size_at(16)?;
        let n_items = f.size_at(24)?;
        let params = AlsParams {
            factors,
            iterations: f.u32_at(32) as usize,
            cg_steps: f.u32_at(36) as usize,
            regularization: f.f32_at(40),
            alpha: f.f32_at(44),
            seed: f.u64_at(48),
        };
        if factors == 0 {
            return Err(ModelDecodeError::Invalid("zero factors"));
        }
        if !params.regularization.is_finite() || !params.alpha.is_finite() {
            return Err(ModelDecodeError::Invalid("non-finite parameter"));
        }
        let expected = n_users
            .checked_add(n_items)
            .and_then(|rows| rows.checked_mul(factors))
            .and_then(|n| n.checked_mul(4))
            .and_then(|n| n.checked_add(HEADER_LEN))
            .ok_or(ModelDecodeError::Invalid("sizes overflow"))?;
        crate::format::check_len(b, expected)?;
        let values: Vec<f32> = b[HEADER_LEN..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ModelDecodeError::Invalid("non-finite factor"));
        }
        let split = n_users * factors;
        let mut values = values;
        let items = values.split_off(split);
        let users = Array2::from_shape_vec((n_users, factors), values)
            .map_err(|_| ModelDecodeError::Invalid("shape"))?;
        let items = Array2::from_shape_vec((n_items, factors), items)
            .map_err(|_| ModelDecodeError::Invalid("shape"))?;
        Ok(Self::from_parts(users, items, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::{blocks, small_als as params};

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
    }

    #[test]
    fn recommends_within_the_block() {
        let m = blocks();
        let mut steps = Vec::new();
        let model = AlsModel::train(&m, &params(), &mut |p| steps.push(p.step));
        assert_eq!(steps, (1..=15).collect::<Vec<_>>());
        assert_eq!(
            (model.n_users(), model.n_items(), model.factors()),
            (40, 20, 2)
        );
        for u in [0usize, 7, 19, 20, 33, 39] {
            let (seen, _) = m.row(u);
            let recs = model.recommend(model.user_vector(u), seen, seen, 4);
            assert_eq!(recs.len(), 4);
            let block = if u < 20 { 0..10 } else { 10..20 };
            for r in &recs {
                assert!(block.contains(&r.item), "user {u} got {r:?}");
                assert!(!seen.contains(&r.item));
                let because = r.because.expect("the user has items");
                assert!(seen.contains(&because));
            }
        }
        // Items of one block are more alike than items of different blocks.
        assert!(model.item_similarity(0, 1) > model.item_similarity(0, 15));
        assert_eq!(model.item_similarity(0, 99), 0.0);
    }

    #[test]
    fn training_is_deterministic() {
        let m = blocks();
        let a = AlsModel::train(&m, &params(), &mut |_| {});
        let b = AlsModel::train(&m, &params(), &mut |_| {});
        assert_eq!(a.to_bytes(), b.to_bytes());
    }

    #[test]
    fn training_more_is_training_longer() {
        let m = blocks();
        let short = AlsParams {
            iterations: 5,
            ..params()
        };
        let warm = AlsModel::train(&m, &short, &mut |_| {}).train_more(&m, 10, &mut |_| {});
        assert_eq!(warm.params().iterations, 15);
        let cold = AlsModel::train(&m, &params(), &mut |_| {});
        assert_eq!(warm.to_bytes(), cold.to_bytes());
    }

    #[test]
    fn fold_in_recovers_a_trained_user() {
        let m = blocks();
        let model = AlsModel::train(&m, &params(), &mut |_| {});
        for u in [3usize, 25] {
            let (items, values) = m.row(u);
            let folded = model.fold_in(items, values);
            let c = cosine(&folded, model.user_vector(u));
            assert!(c > 0.95, "user {u}: cosine {c}");
            // The same unseen items come first (in-block, though near-ties may swap places).
            let set = |v: &[f32]| {
                let mut s: Vec<u32> = top_n(&model.scores(v), items, 4)
                    .iter()
                    .map(|p| p.0)
                    .collect();
                s.sort_unstable();
                s
            };
            assert_eq!(set(&folded), set(model.user_vector(u)));
        }
        // Duplicates summed, unknown items ignored, nothing gives zero.
        let (items, values) = m.row(3);
        let mut dup_items = items.to_vec();
        let mut dup_values: Vec<f32> = values.iter().map(|v| v / 2.0).collect();
        dup_items.extend_from_slice(items);
        dup_values.extend(values.iter().map(|v| v / 2.0));
        dup_items.push(1000);
        dup_values.push(1.0);
        let a = model.fold_in(items, values);
        let b = model.fold_in(&dup_items, &dup_values);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4);
        }
        assert!(model.fold_in(&[], &[]).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn scores_agree_with_the_batch_product() {
        let m = blocks();
        let model = AlsModel::train(&m, &params(), &mut |_| {});
        let batch = model.scores_for_users(&[5, 30]);
        for (k, u) in [5usize, 30].into_iter().enumerate() {
            let s = model.scores(model.user_vector(u));
            for (i, v) in s.iter().enumerate() {
                assert!((batch[[k, i]] - v).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        let m = blocks();
        let model = AlsModel::train(&m, &params(), &mut |_| {});
        let bytes = model.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN + 4 * 2 * 60);
        let back = AlsModel::from_bytes(&bytes).expect("round trip");
        assert_eq!(back.params(), model.params());
        assert_eq!(back.user_factors(), model.user_factors());
        assert_eq!(back.item_factors(), model.item_factors());
        assert_eq!(back.to_bytes(), bytes);

        crate::testing::assert_cut_and_padded_refused(
            &bytes,
            &[0, 5, 8, 20, HEADER_LEN, bytes.len() - 1],
            &[0],
            AlsModel::from_bytes,
        );
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(
            AlsModel::from_bytes(&bad).unwrap_err(),
            ModelDecodeError::BadMagic
        );
        assert_eq!(
            AlsModel::from_bytes(b"hello, world").unwrap_err(),
            ModelDecodeError::BadMagic
        );
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(
            AlsModel::from_bytes(&v2).unwrap_err(),
            ModelDecodeError::UnsupportedVersion(2)
        );
        let mut nan = bytes.clone();
        nan[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            AlsModel::from_bytes(&nan),
            Err(ModelDecodeError::Invalid(_))
        ));
        let mut huge = bytes;
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            AlsModel::from_bytes(&huge),
            Err(ModelDecodeError::Invalid(_))
        ));
    }
}
