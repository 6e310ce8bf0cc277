//! Item-item nearest neighbours: items are similar when the same users interacted with them.
//!
//! The similarity of items `i` and `j` is `Σ_u W[u,i] · W[u,j]` over a weighted copy `W` of the
//! user × item matrix: column-normalised for [`ItemItemWeighting::Cosine`], BM25-weighted for
//! [`ItemItemWeighting::Bm25`] (items as documents, users as terms, exactly as Python
//! `implicit`'s `bm25_weight`). Each item keeps its `neighbours` most similar other items; a user's
//! score for an item is `Σ value(user, i) · sim(i, item)` over the user's items `i`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Matrix, ModelDecodeError, Progress, Scored, top_n};

const II_MAGIC: &[u8; 8] = b"QRECII\0\0";
const II_FORMAT_VERSION: u32 = 1;
/// Magic, version, weighting kind, `k1`, `b`, neighbours per item, items, stored neighbours.
const II_HEADER_LEN: usize = 8 + 4 + 4 + 4 + 4 + 8 + 8 + 8;

/// How the co-occurrence counts are weighted before the item-item dot products.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ItemItemWeighting {
    /// Cosine similarity of the items' user vectors.
    Cosine,
    /// BM25: a user's weight on an item saturates with the value (`k1`) and is normalised by the
    /// item's total (`b`), and users who interacted with fewer items count more (idf).
    Bm25 {
        /// Saturation: larger means the value counts more linearly.
        k1: f32,
        /// Length normalisation by the item's total value, `0..=1`.
        b: f32,
    },
    /// RP3beta (Paudel et al. 2016; Ferrari Dacrema et al. 2019): the probability of a three-step
    /// random walk item → user → item over the value-weighted graph (each step's transition
    /// probabilities raised to `alpha`), divided by the target item's popularity to the power
    /// `beta`, so that popular items do not dominate every neighbourhood. The similarity is not
    /// symmetric.
    Rp3 {
        /// Exponent of the transition probabilities.
        alpha: f32,
        /// Popularity penalty, `0` (none, P3alpha) to `1`.
        beta: f32,
    },
}

impl ItemItemWeighting {
    /// BM25 with `implicit`'s `BM25Recommender` defaults, `k1 = 1.2`, `b = 0.75`.
    pub const BM25: ItemItemWeighting = ItemItemWeighting::Bm25 { k1: 1.2, b: 0.75 };
}

impl Default for ItemItemWeighting {
    /// BM25 with `k1 = 5`, `b = 1`: the best of the sweep on goodbooks-10k (see `recs/README.md`;
    /// within about 2% of NDCG@10 of `implicit`'s defaults, [`ItemItemWeighting::BM25`]).
    fn default() -> Self {
        ItemItemWeighting::Bm25 { k1: 5.0, b: 1.0 }
    }
}

/// Neighbours kept per item unless said otherwise: 400 scored within 0.5% of 1,000 on
/// goodbooks-10k and 1% above 100, at 3.2 KB per item.
pub const DEFAULT_NEIGHBOURS: usize = 400;

/// A trained item-item model: the top neighbours of every item.
#[derive(Clone, Debug)]
pub struct ItemItemModel {
    weighting: ItemItemWeighting,
    neighbours: usize,
    indptr: Vec<usize>,
    items: Vec<u32>,
    sims: Vec<f32>,
}

/// The weighted copies of the (positive part of the) user × item matrix whose product is the
/// similarity: `sim(i, j) = Σ_u left[u, i] · right[u, j]`. The same matrix on both sides except
/// for RP3beta.
fn weighted(m: &Matrix, weighting: ItemItemWeighting) -> (Matrix, Option<Matrix>) {
    let positive = m.map_values(|v| v.max(0.0));
    if let ItemItemWeighting::Rp3 { alpha, beta } = weighting {
        let mut item_totals = vec![0f64; m.n_cols()];
        let mut degree = vec![0u32; m.n_cols()];
        let mut left = Vec::with_capacity(positive.nnz());
        let mut right = Vec::with_capacity(positive.nnz());
        for u in 0..positive.n_rows() {
            let (cols, vals) = positive.row(u);
            for (&c, &v) in cols.iter().zip(vals) {
                item_totals[c as usize] += f64::from(v);
                degree[c as usize] += 1;
            }
        }
        for u in 0..positive.n_rows() {
            let (cols, vals) = positive.row(u);
            let user_total: f64 = vals.iter().map(|&v| f64::from(v)).sum();
            for (&c, &v) in cols.iter().zip(vals) {
                let v = f64::from(v);
                // item → user: P(u | i); user → item: P(j | u), over popularity^beta.
                let to_user = (v / item_totals[c as usize]).powf(f64::from(alpha));
                let to_item = (v / user_total).powf(f64::from(alpha))
                    / f64::from(degree[c as usize]).powf(f64::from(beta));
                left.push((u as u32, c, to_user as f32));
                right.push((u as u32, c, to_item as f32));
            }
        }
        let (rows, cols) = (m.n_rows(), m.n_cols());
        return (
            Matrix::from_triplets(rows, cols, left),
            Some(Matrix::from_triplets(rows, cols, right)),
        );
    }
    let same = match weighting {
        ItemItemWeighting::Cosine => {
            let mut norms = vec![0f64; m.n_cols()];
            for r in 0..positive.n_rows() {
                let (cols, vals) = positive.row(r);
                for (&c, &v) in cols.iter().zip(vals) {
                    norms[c as usize] += f64::from(v) * f64::from(v);
                }
            }
            let norms: Vec<f32> = norms.into_iter().map(|n| n.sqrt() as f32).collect();
            let t = positive.transpose();
            let mut triplets = Vec::with_capacity(t.nnz());
            for (i, &norm) in norms.iter().enumerate() {
                let (users, vals) = t.row(i);
                for (&u, &v) in users.iter().zip(vals) {
                    triplets.push((u, i as u32, v / norm));
                }
            }
            Matrix::from_triplets(m.n_rows(), m.n_cols(), triplets)
        }
        ItemItemWeighting::Bm25 { k1, b } => {
            let n_items = m.n_cols();
            let n = n_items as f64;
            // idf per user (term), length per item (document).
            let idf: Vec<f32> = positive
                .row_counts()
                .into_iter()
                .map(|c| (n.ln() - (c as f64).ln_1p()) as f32)
                .collect();
            let mut lengths = vec![0f64; n_items];
            for r in 0..positive.n_rows() {
                let (cols, vals) = positive.row(r);
                for (&c, &v) in cols.iter().zip(vals) {
                    lengths[c as usize] += f64::from(v);
                }
            }
            let average = lengths.iter().sum::<f64>() / n.max(1.0);
            let norm: Vec<f32> = lengths
                .iter()
                .map(|&l| {
                    let rel = if average > 0.0 { l / average } else { 0.0 };
                    ((1.0 - f64::from(b)) + f64::from(b) * rel) as f32
                })
                .collect();
            let mut triplets = Vec::with_capacity(positive.nnz());
            for (u, &idf) in idf.iter().enumerate() {
                let (cols, vals) = positive.row(u);
                for (&c, &v) in cols.iter().zip(vals) {
                    let w = v * (k1 + 1.0) / (k1 * norm[c as usize] + v) * idf;
                    triplets.push((u as u32, c, w));
                }
            }
            Matrix::from_triplets(m.n_rows(), m.n_cols(), triplets)
        }
        ItemItemWeighting::Rp3 { .. } => unreachable!("weighted above"),
    };
    (same, None)
}

/// Per-thread scratch for one item's similarity row.
struct Accumulator {
    sums: Vec<f32>,
    touched: Vec<u32>,
}

impl ItemItemModel {
    /// Computes the item-item similarities of a user × item matrix and keeps the `neighbours`
    /// most similar other items of each item (positive similarities only; ties by lower index).
    /// Non-positive values are left out. Runs on the current rayon pool; progress is reported per
    /// block of items.
    pub fn train(
        m: &Matrix,
        weighting: ItemItemWeighting,
        neighbours: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> ItemItemModel {
        let stage = match weighting {
            ItemItemWeighting::Cosine => "cosine",
            ItemItemWeighting::Bm25 { .. } => "bm25",
            ItemItemWeighting::Rp3 { .. } => "rp3",
        };
        let (left, right) = weighted(m, weighting);
        let wt = left.transpose();
        let w = right.as_ref().unwrap_or(&left);
        let n_items = m.n_cols();
        const BLOCK: usize = 1024;
        let blocks = n_items.div_ceil(BLOCK);
        let mut rows: Vec<Vec<(u32, f32)>> = Vec::with_capacity(n_items);
        for block in 0..blocks {
            let range = block * BLOCK..((block + 1) * BLOCK).min(n_items);
            let part: Vec<Vec<(u32, f32)>> = range
                .into_par_iter()
                .map_init(
                    || Accumulator {
                        sums: vec![0.0; n_items],
                        touched: Vec::new(),
                    },
                    |acc, i| {
                        let (users, w1s) = wt.row(i);
                        for (&u, &w1) in users.iter().zip(w1s) {
                            let (items, w2s) = w.row(u as usize);
                            for (&j, &w2) in items.iter().zip(w2s) {
                                let slot = &mut acc.sums[j as usize];
                                if *slot == 0.0 {
                                    acc.touched.push(j);
                                }
                                *slot += w1 * w2;
                            }
                        }
                        let mut row: Vec<(u32, f32)> = Vec::with_capacity(acc.touched.len());
                        for &j in &acc.touched {
                            let s = std::mem::replace(&mut acc.sums[j as usize], 0.0);
                            if j as usize != i && s > 0.0 {
                                row.push((j, s));
                            }
                        }
                        acc.touched.clear();
                        // (A sum that returned to exactly 0.0 was pushed twice, but its second
                        // copy reads 0.0 and is skipped above.)
                        let order = |a: &(u32, f32), b: &(u32, f32)| {
                            b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
                        };
                        if row.len() > neighbours && neighbours > 0 {
                            row.select_nth_unstable_by(neighbours - 1, order);
                        }
                        row.truncate(neighbours);
                        row.sort_unstable_by(order);
                        // The row had room for every co-occurring item: give that back, or the
                        // rows of a large catalog hold gigabytes until they are packed.
                        row.shrink_to_fit();
                        row
                    },
                )
                .collect();
            rows.extend(part);
            progress(Progress {
                stage,
                step: block + 1,
                total: blocks,
            });
        }
        let mut indptr = Vec::with_capacity(n_items + 1);
        let mut items = Vec::new();
        let mut sims = Vec::new();
        indptr.push(0);
        for row in rows {
            for (j, s) in row {
                items.push(j);
                sims.push(s);
            }
            indptr.push(items.len());
        }
        ItemItemModel {
            weighting,
            neighbours,
            indptr,
            items,
            sims,
        }
    }

    /// The same model keeping only each item's `neighbours` most similar items: what training
    /// with `neighbours` gives, without computing the similarities again (a search over
    /// neighbour counts trains once with the largest).
    pub fn truncated(&self, neighbours: usize) -> ItemItemModel {
        let mut indptr = Vec::with_capacity(self.indptr.len());
        let mut items = Vec::new();
        let mut sims = Vec::new();
        indptr.push(0);
        for i in 0..self.n_items() {
            let (n, s) = self.neighbours(i as u32);
            let keep = n.len().min(neighbours);
            items.extend_from_slice(&n[..keep]);
            sims.extend_from_slice(&s[..keep]);
            indptr.push(items.len());
        }
        ItemItemModel {
            weighting: self.weighting,
            neighbours: neighbours.min(self.neighbours),
            indptr,
            items,
            sims,
        }
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.indptr.len() - 1
    }

    /// The weighting it was trained with.
    pub fn weighting(&self) -> ItemItemWeighting {
        self.weighting
    }

    /// The number of neighbours kept per item.
    pub fn neighbours_per_item(&self) -> usize {
        self.neighbours
    }

    /// An item's neighbours, most similar first, with their similarities ("similar books").
    /// Empty for an unknown item.
    pub fn neighbours(&self, item: u32) -> (&[u32], &[f32]) {
        let i = item as usize;
        if i >= self.n_items() {
            return (&[], &[]);
        }
        let (s, e) = (self.indptr[i], self.indptr[i + 1]);
        (&self.items[s..e], &self.sims[s..e])
    }

    /// The `n` best items for a user with these interactions (`values` as in the training matrix;
    /// non-positive ones and unknown items are ignored), skipping `exclude`. Only items that are a
    /// neighbour of one of the user's items are candidates, so fewer than `n` may come back.
    /// `because` is the user's item that contributed most to the item's score.
    pub fn recommend(
        &self,
        items: &[u32],
        values: &[f32],
        exclude: &[u32],
        n: usize,
    ) -> Vec<Scored> {
        let n_items = self.n_items();
        let mut scores = vec![f32::NAN; n_items];
        let mut best = vec![(0f32, u32::MAX); n_items];
        for (&i, &v) in items.iter().zip(values) {
            if v <= 0.0 || i as usize >= n_items {
                continue;
            }
            let (nbrs, sims) = self.neighbours(i);
            for (&j, &s) in nbrs.iter().zip(sims) {
                let j = j as usize;
                let c = v * s;
                if scores[j].is_nan() {
                    scores[j] = c;
                } else {
                    scores[j] += c;
                }
                let (bc, bi) = best[j];
                if bi == u32::MAX || c > bc || (c == bc && i < bi) {
                    best[j] = (c, i);
                }
            }
        }
        top_n(&scores, exclude, n)
            .into_iter()
            .map(|(item, score)| Scored {
                item,
                score,
                because: Some(best[item as usize].1),
            })
            .collect()
    }

    /// Every item's score for a user with these interactions (as in [`ItemItemModel::recommend`]);
    /// 0 for an item that is no neighbour of the user's items.
    pub fn scores(&self, items: &[u32], values: &[f32]) -> Vec<f32> {
        let mut scores = vec![0f32; self.n_items()];
        for (&i, &v) in items.iter().zip(values) {
            if v <= 0.0 {
                continue;
            }
            let (nbrs, sims) = self.neighbours(i);
            for (&j, &s) in nbrs.iter().zip(sims) {
                scores[j as usize] += v * s;
            }
        }
        scores
    }

    /// The user's item that contributes most to `item`'s score (ties to the lower index), if any
    /// does: the explanation of a recommendation ("because you rated X").
    pub fn explain(&self, items: &[u32], values: &[f32], item: u32) -> Option<u32> {
        let mut best: Option<(f32, u32)> = None;
        for (&i, &v) in items.iter().zip(values) {
            if v <= 0.0 {
                continue;
            }
            let (nbrs, sims) = self.neighbours(i);
            if let Some(p) = nbrs.iter().position(|&j| j == item) {
                let c = v * sims[p];
                if best.is_none_or(|(bc, bi)| c > bc || (c == bc && i < bi)) {
                    best = Some((c, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// The model as bytes: a versioned little-endian header (magic `QRECII\0\0`, version, the
    /// weighting and its parameters, neighbours per item, number of items, number of stored
    /// neighbours), then each item's neighbour count (`u32`), then every neighbour's index (`u32`)
    /// and then every similarity (`f32`), items in order and each item's neighbours most similar
    /// first: `48 + 4 · items + 8 · neighbours` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n_items = self.n_items();
        let nnz = self.items.len();
        let mut out = Vec::with_capacity(II_HEADER_LEN + 4 * n_items + 8 * nnz);
        let (kind, k1, b) = match self.weighting {
            ItemItemWeighting::Cosine => (0u32, 0f32, 0f32),
            ItemItemWeighting::Bm25 { k1, b } => (1, k1, b),
            ItemItemWeighting::Rp3 { alpha, beta } => (2, alpha, beta),
        };
        out.extend_from_slice(II_MAGIC);
        out.extend_from_slice(&II_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&k1.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        out.extend_from_slice(&(self.neighbours as u64).to_le_bytes());
        out.extend_from_slice(&(n_items as u64).to_le_bytes());
        out.extend_from_slice(&(nnz as u64).to_le_bytes());
        for w in self.indptr.windows(2) {
            out.extend_from_slice(&((w[1] - w[0]) as u32).to_le_bytes());
        }
        for j in &self.items {
            out.extend_from_slice(&j.to_le_bytes());
        }
        for s in &self.sims {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// Reads what [`ItemItemModel::to_bytes`] wrote; refuses anything else: wrong magic or
    /// version, truncated input, trailing bytes, impossible sizes, an item with more neighbours
    /// than the header allows, a neighbour out of range or equal to its item, a similarity that is
    /// not finite and positive, or neighbours not ordered most similar first.
    pub fn from_bytes(b: &[u8]) -> Result<ItemItemModel, ModelDecodeError> {
        let f = crate::format::check_header(b, II_MAGIC, II_HEADER_LEN, II_FORMAT_VERSION)?;
        let weighting = match (f.u32_at(12), f.f32_at(16), f.f32_at(20)) {
            (0, _, _) => ItemItemWeighting::Cosine,
            (1, k1, b) if k1.is_finite() && b.is_finite() => ItemItemWeighting::Bm25 { k1, b },
            (1, _, _) => return Err(ModelDecodeError::Invalid("non-finite BM25 parameter")),
            (2, alpha, beta) if alpha.is_finite() && beta.is_finite() => {
                ItemItemWeighting::Rp3 { alpha, beta }
            }
            (2, _, _) => return Err(ModelDecodeError::Invalid("non-finite RP3 parameter")),
            _ => return Err(ModelDecodeError::Invalid("unknown weighting")),
        };
        let neighbours = f.size_at(24)?;
        let n_items = f.size_at(32)?;
        let nnz = f.size_at(40)?;
        if n_items > u32::MAX as usize {
            return Err(ModelDecodeError::Invalid("more items than u32 indices"));
        }
        let expected = nnz
            .checked_mul(8)
            .and_then(|n| n.checked_add(n_items.checked_mul(4)?))
            .and_then(|n| n.checked_add(II_HEADER_LEN))
            .ok_or(ModelDecodeError::Invalid("sizes overflow"))?;
        crate::format::check_len(b, expected)?;
        let words = |from: usize, n: usize| {
            b[from..from + 4 * n]
                .chunks_exact(4)
                .map(|c| <[u8; 4]>::try_from(c).expect("4 bytes"))
        };
        let counts_at = II_HEADER_LEN;
        let items_at = counts_at + 4 * n_items;
        let sims_at = items_at + 4 * nnz;
        let mut indptr = Vec::with_capacity(n_items + 1);
        indptr.push(0usize);
        for c in words(counts_at, n_items).map(u32::from_le_bytes) {
            let c = c as usize;
            if c > neighbours {
                return Err(ModelDecodeError::Invalid(
                    "more neighbours than the header allows",
                ));
            }
            let end = indptr.last().expect("starts with 0") + c;
            if end > nnz {
                return Err(ModelDecodeError::Invalid(
                    "neighbour counts exceed the total",
                ));
            }
            indptr.push(end);
        }
        if indptr.last() != Some(&nnz) {
            return Err(ModelDecodeError::Invalid(
                "neighbour counts fall short of the total",
            ));
        }
        let items: Vec<u32> = words(items_at, nnz).map(u32::from_le_bytes).collect();
        let sims: Vec<f32> = words(sims_at, nnz).map(f32::from_le_bytes).collect();
        for (i, w) in indptr.windows(2).enumerate() {
            let (row, row_sims) = (&items[w[0]..w[1]], &sims[w[0]..w[1]]);
            if row
                .iter()
                .any(|&j| j as usize >= n_items || j as usize == i)
            {
                return Err(ModelDecodeError::Invalid(
                    "neighbour out of range or the item itself",
                ));
            }
            if row_sims.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
                return Err(ModelDecodeError::Invalid(
                    "similarity not finite and positive",
                ));
            }
            if row_sims.windows(2).any(|p| p[0] < p[1]) {
                return Err(ModelDecodeError::Invalid(
                    "neighbours not most similar first",
                ));
            }
        }
        Ok(ItemItemModel {
            weighting,
            neighbours,
            indptr,
            items,
            sims,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// users × items:
    /// ```text
    ///      i0  i1  i2  i3
    /// u0    1   1   .   .
    /// u1    1   1   1   .
    /// u2    .   2   .   1
    /// ```
    fn small() -> Matrix {
        Matrix::from_triplets(
            3,
            4,
            [
                (0, 0, 1.0),
                (0, 1, 1.0),
                (1, 0, 1.0),
                (1, 1, 1.0),
                (1, 2, 1.0),
                (2, 1, 2.0),
                (2, 3, 1.0),
            ],
        )
    }

    fn sim(m: &ItemItemModel, a: u32, b: u32) -> Option<f32> {
        let (items, sims) = m.neighbours(a);
        items.iter().position(|&i| i == b).map(|p| sims[p])
    }

    #[test]
    fn cosine_by_hand() {
        let m = ItemItemModel::train(&small(), ItemItemWeighting::Cosine, 10, &mut |_| {});
        // |i0| = √2, |i1| = √6, |i2| = 1, |i3| = 1.
        let close = |a: Option<f32>, b: f32| (a.expect("a neighbour") - b).abs() < 1e-6;
        assert!(close(sim(&m, 0, 1), 2.0 / (2f32.sqrt() * 6f32.sqrt())));
        assert!(close(sim(&m, 0, 2), 1.0 / 2f32.sqrt()));
        assert!(close(sim(&m, 1, 3), 2.0 / 6f32.sqrt()));
        assert!(close(sim(&m, 1, 2), 1.0 / 6f32.sqrt()));
        assert_eq!(sim(&m, 0, 3), None);
        assert_eq!(sim(&m, 0, 0), None, "an item is not its own neighbour");
        // Most similar first.
        assert_eq!(m.neighbours(1).0, &[3, 0, 2]);
        // Top-1 keeps only the best; truncating a larger model gives the same model.
        let one = ItemItemModel::train(&small(), ItemItemWeighting::Cosine, 1, &mut |_| {});
        assert_eq!(one.neighbours(1).0, &[3]);
        assert_eq!(m.truncated(1).to_bytes(), one.to_bytes());
        assert_eq!(m.truncated(10).to_bytes(), m.to_bytes());
    }

    #[test]
    fn bm25_by_hand() {
        let (k1, b) = (1.2f32, 0.75f32);
        let m = ItemItemModel::train(&small(), ItemItemWeighting::Bm25 { k1, b }, 10, &mut |_| {});
        // 4 items; users' item counts 2, 3, 2; item totals 2, 4, 1, 1 (mean 2).
        let n = 4f32;
        let idf = [n.ln() - 3f32.ln(), n.ln() - 4f32.ln(), n.ln() - 3f32.ln()];
        let norm = |total: f32| (1.0 - b) + b * total / 2.0;
        let w = |v: f32, item_total: f32, u: usize| {
            v * (k1 + 1.0) / (k1 * norm(item_total) + v) * idf[u]
        };
        // u1's idf is 0 (ln 4 − ln 4), so only u0 links i0–i1, only u2 links i1–i3.
        let s01 = w(1.0, 2.0, 0) * w(1.0, 4.0, 0);
        let s13 = w(2.0, 4.0, 2) * w(1.0, 1.0, 2);
        assert!((sim(&m, 0, 1).unwrap() - s01).abs() < 1e-6);
        assert!((sim(&m, 1, 0).unwrap() - s01).abs() < 1e-6);
        assert!((sim(&m, 3, 1).unwrap() - s13).abs() < 1e-6);
        assert_eq!(sim(&m, 0, 2), None, "zero similarity is not kept");
    }

    #[test]
    fn rp3_by_hand() {
        // Item totals 2, 4, 1, 1; user totals 2, 3, 3; degrees 2, 3, 1, 1.
        let walk = |alpha, beta| {
            ItemItemModel::train(
                &small(),
                ItemItemWeighting::Rp3 { alpha, beta },
                10,
                &mut |_| {},
            )
        };
        let close = |a: Option<f32>, b: f32| (a.expect("a neighbour") - b).abs() < 1e-6;
        let m = walk(1.0, 0.0);
        // i0 → u0 (1/2) → i1 (1/2), and i0 → u1 (1/2) → i1 (1/3).
        assert!(close(sim(&m, 0, 1), 0.5 * 0.5 + 0.5 / 3.0));
        // Not symmetric: i1 → u0 (1/4) → i0 (1/2), and i1 → u1 (1/4) → i0 (1/3).
        assert!(close(sim(&m, 1, 0), 0.25 * 0.5 + 0.25 / 3.0));
        // i1 → u2 (2/4) → i3 (1/3).
        assert!(close(sim(&m, 1, 3), 0.5 / 3.0));
        // beta divides by the target's degree to that power; alpha raises each step.
        let m = walk(1.0, 1.0);
        assert!(close(sim(&m, 0, 1), (0.5 * 0.5 + 0.5 / 3.0) / 3.0));
        let m = walk(2.0, 0.0);
        assert!(close(sim(&m, 0, 1), 0.25 * 0.25 + 0.25 / 9.0));
        // It survives the stored format.
        let back = ItemItemModel::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(
            back.weighting(),
            ItemItemWeighting::Rp3 {
                alpha: 2.0,
                beta: 0.0
            }
        );
        assert_eq!(back.to_bytes(), m.to_bytes());
    }

    #[test]
    fn recommend_sums_contributions_and_explains() {
        let m = ItemItemModel::train(&small(), ItemItemWeighting::Cosine, 10, &mut |_| {});
        // A user with i0 (value 1) and i3 (value 2).
        let recs = m.recommend(&[0, 3], &[1.0, 2.0], &[0, 3], 10);
        let s1 = 2.0 / 12f32.sqrt() + 2.0 * 2.0 / 6f32.sqrt();
        let s2 = 1.0 / 2f32.sqrt();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].item, 1);
        assert!((recs[0].score - s1).abs() < 1e-5);
        assert_eq!(recs[0].because, Some(3));
        assert_eq!(recs[1].item, 2);
        assert!((recs[1].score - s2).abs() < 1e-5);
        assert_eq!(recs[1].because, Some(0));
        // Exclusion, n, non-positive values and unknown items.
        assert_eq!(m.recommend(&[0, 3], &[1.0, 2.0], &[0, 1, 3], 10).len(), 1);
        assert_eq!(m.recommend(&[0, 3], &[1.0, 2.0], &[], 1).len(), 1);
        assert!(m.recommend(&[0, 99], &[-1.0, 1.0], &[], 5).is_empty());
        // The dense scores and the explanations agree with recommend.
        let dense = m.scores(&[0, 3], &[1.0, 2.0]);
        assert!((dense[1] - s1).abs() < 1e-5 && (dense[2] - s2).abs() < 1e-5);
        assert_eq!(m.explain(&[0, 3], &[1.0, 2.0], 1), Some(3));
        assert_eq!(m.explain(&[0, 3], &[1.0, 2.0], 2), Some(0));
        assert_eq!(m.explain(&[3], &[1.0], 2), None);
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        for (weighting, k) in [
            (ItemItemWeighting::Cosine, 10),
            (ItemItemWeighting::BM25, 2),
            (ItemItemWeighting::default(), 0),
        ] {
            let m = ItemItemModel::train(&small(), weighting, k, &mut |_| {});
            let bytes = m.to_bytes();
            assert_eq!(bytes.len(), II_HEADER_LEN + 4 * 4 + 8 * m.items.len());
            let back = ItemItemModel::from_bytes(&bytes).expect("round trip");
            assert_eq!(back.weighting(), weighting);
            assert_eq!(back.neighbours_per_item(), k);
            assert_eq!(back.n_items(), 4);
            for i in 0..4 {
                assert_eq!(back.neighbours(i), m.neighbours(i));
            }
            assert_eq!(back.to_bytes(), bytes);
        }

        let m = ItemItemModel::train(&small(), ItemItemWeighting::Cosine, 10, &mut |_| {});
        let bytes = m.to_bytes();
        let nnz = m.items.len();
        crate::testing::assert_cut_and_padded_refused(
            &bytes,
            &[
                0,
                3,
                8,
                20,
                II_HEADER_LEN,
                II_HEADER_LEN + 5,
                bytes.len() - 1,
            ],
            &[0; 4],
            ItemItemModel::from_bytes,
        );
        assert_eq!(
            ItemItemModel::from_bytes(b"QRECALS\0 and then an ALS model").unwrap_err(),
            ModelDecodeError::BadMagic
        );
        assert_eq!(
            ItemItemModel::from_bytes(b"junk").unwrap_err(),
            ModelDecodeError::BadMagic
        );
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(
            ItemItemModel::from_bytes(&v2).unwrap_err(),
            ModelDecodeError::UnsupportedVersion(2)
        );
        let invalid = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = bytes.clone();
            edit(&mut b);
            matches!(
                ItemItemModel::from_bytes(&b),
                Err(ModelDecodeError::Invalid(_))
            )
        };
        let items_at = II_HEADER_LEN + 4 * 4;
        let sims_at = items_at + 4 * nnz;
        // Unknown weighting; huge sizes; counts that disagree with the total.
        assert!(invalid(&|b| b[12] = 7));
        assert!(invalid(
            &|b| b[40..48].copy_from_slice(&u64::MAX.to_le_bytes())
        ));
        assert!(invalid(&|b| b[II_HEADER_LEN] += 1));
        // More neighbours than allowed, a neighbour out of range or the item itself.
        assert!(invalid(&|b| b[24..32].copy_from_slice(&1u64.to_le_bytes())));
        assert!(invalid(
            &|b| b[items_at..items_at + 4].copy_from_slice(&9u32.to_le_bytes())
        ));
        assert!(invalid(
            &|b| b[items_at..items_at + 4].copy_from_slice(&0u32.to_le_bytes())
        ));
        // A NaN, a non-positive similarity, neighbours out of order.
        assert!(invalid(
            &|b| b[sims_at..sims_at + 4].copy_from_slice(&f32::NAN.to_le_bytes())
        ));
        assert!(invalid(
            &|b| b[sims_at..sims_at + 4].copy_from_slice(&0f32.to_le_bytes())
        ));
        assert!(invalid(
            &|b| b[sims_at..sims_at + 4].copy_from_slice(&1e-9f32.to_le_bytes())
        ));
    }
}
