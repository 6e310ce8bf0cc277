//! The served model: ALS, item-item and popularity together, blended with the weights the
//! trainer chose on validation data ([`crate::select`]) or the evaluation's `blend` defaults.
//!
//! [`HybridModel::scores`] is the computation the offline evaluation measures for `blend`
//! (`eval::run` scores every user through it): the member's ALS factor is folded in from their
//! interactions ([`AlsModel::fold_in`]), item-item scores are summed over their items
//! ([`ItemItemModel::scores`]), and the two are combined by [`blend_scores`], each divided by its
//! largest score over the items the member does not have.

use crate::{
    AlsModel, AlsParams, ItemItemModel, ItemItemWeighting, Matrix, ModelDecodeError, Progress,
    blend_parts, blend_scores,
};

const MAGIC: &[u8; 8] = b"QRECHYB\0";
const FORMAT_VERSION: u32 = 2;
/// Version 1: magic, version, ALS weight, ALS bytes, item-item bytes (no popularity part).
const HEADER_LEN_V1: usize = 8 + 4 + 4 + 8 + 8;
/// Version 2: version 1's header, then the popularity weight and four reserved bytes.
const HEADER_LEN: usize = HEADER_LEN_V1 + 4 + 4;

/// ALS and item-item models trained on the same matrix, each item's popularity in it, and the
/// shares of ALS and popularity in their blend (item-item has the rest).
#[derive(Clone, Debug)]
pub struct HybridModel {
    als: AlsModel,
    item_item: ItemItemModel,
    als_weight: f32,
    /// Per item: how many users interacted with it positively (0 weight: not used).
    popularity: Vec<f32>,
    popularity_weight: f32,
}

/// Per item of `m`: the number of users with a positive value on it.
pub fn popularity_scores(m: &Matrix) -> Vec<f32> {
    crate::Popularity::from_matrix(m)
        .counts()
        .iter()
        .map(|&c| c as f32)
        .collect()
}

/// A member's interactions with duplicates summed: distinct items ascending and their values,
/// without zeros (no interaction, as in [`Matrix::from_triplets`]).
fn distinct(items: &[u32], values: &[f32]) -> (Vec<u32>, Vec<f32>) {
    let mut pairs: Vec<(u32, f32)> = items.iter().copied().zip(values.iter().copied()).collect();
    // Stable, so duplicates are summed in input order (as `Matrix::from_triplets` does).
    pairs.sort_by_key(|&(i, _)| i);
    let mut summed: Vec<(u32, f32)> = Vec::with_capacity(pairs.len());
    for (i, v) in pairs {
        match summed.last_mut() {
            Some(last) if last.0 == i => last.1 += v,
            _ => summed.push((i, v)),
        }
    }
    summed.into_iter().filter(|&(_, v)| v != 0.0).unzip()
}

impl HybridModel {
    /// Trains both halves on the same matrix: [`AlsModel::train`] with `als`, then
    /// [`ItemItemModel::train`] with `weighting` and `neighbours`; `progress` sees both stages
    /// (`"als"`, then `"bm25"` or `"cosine"`). The evaluation's defaults are
    /// [`AlsParams::default`], [`ItemItemWeighting::default`], [`crate::itemitem::DEFAULT_NEIGHBOURS`]
    /// and [`crate::DEFAULT_BLEND_ALS_WEIGHT`].
    ///
    /// # Panics
    /// If `als.factors` is 0 or `als_weight` is not within `0..=1`.
    pub fn train(
        m: &Matrix,
        als: &AlsParams,
        weighting: ItemItemWeighting,
        neighbours: usize,
        als_weight: f32,
        progress: &mut dyn FnMut(Progress),
    ) -> HybridModel {
        assert!(
            (0.0..=1.0).contains(&als_weight),
            "the ALS weight must be within 0..=1, not {als_weight}"
        );
        let als = AlsModel::train(m, als, progress);
        let item_item = ItemItemModel::train(m, weighting, neighbours, progress);
        HybridModel::new(als, item_item, als_weight)
    }

    /// Puts together two models trained on the same matrix (what [`HybridModel::train`] does
    /// after training them).
    ///
    /// # Panics
    /// If the two models have different numbers of items or `als_weight` is not within `0..=1`.
    pub fn new(als: AlsModel, item_item: ItemItemModel, als_weight: f32) -> HybridModel {
        assert_eq!(
            als.n_items(),
            item_item.n_items(),
            "ALS and item-item models of different catalogs"
        );
        assert!(
            (0.0..=1.0).contains(&als_weight),
            "the ALS weight must be within 0..=1, not {als_weight}"
        );
        let popularity = vec![0.0; als.n_items()];
        HybridModel {
            als,
            item_item,
            als_weight,
            popularity,
            popularity_weight: 0.0,
        }
    }

    /// The same model with `popularity` (per item, e.g. [`popularity_scores`] of the training
    /// matrix) blended in at `weight`, taken from item-item's share.
    ///
    /// # Panics
    /// If `popularity` is not one score per item, or `weight` is not within `0..=1` or leaves
    /// item-item a negative share.
    pub fn with_popularity(mut self, popularity: Vec<f32>, weight: f32) -> HybridModel {
        assert_eq!(popularity.len(), self.n_items(), "one score per item");
        assert!(
            (0.0..=1.0).contains(&weight) && self.als_weight + weight <= 1.0 + 1e-6,
            "weights ALS {} + popularity {weight} exceed 1",
            self.als_weight
        );
        self.popularity = popularity;
        self.popularity_weight = weight;
        self
    }

    /// Number of items (the same in both halves).
    pub fn n_items(&self) -> usize {
        self.als.n_items()
    }

    /// The ALS half.
    pub fn als(&self) -> &AlsModel {
        &self.als
    }

    /// The item-item half.
    pub fn item_item(&self) -> &ItemItemModel {
        &self.item_item
    }

    /// The share of ALS in the blend (`0..=1`; item-item has what ALS and popularity leave).
    pub fn als_weight(&self) -> f32 {
        self.als_weight
    }

    /// The share of popularity in the blend (`0..=1`).
    pub fn popularity_weight(&self) -> f32 {
        self.popularity_weight
    }

    /// Blended scores of every item (indexed by item) for a member with these interactions
    /// (`values` as in the training matrix; items in any order, duplicates summed, zero values and
    /// items the model does not know ignored): `blend_scores(item_item, als, als_weight, items)` where `item_item`
    /// is [`ItemItemModel::scores`] and `als` is [`AlsModel::scores`] of [`AlsModel::fold_in`].
    /// This is exactly what the evaluation's `blend` ranks, so what is served is what was
    /// measured. Each part is normalised by its largest score over the items NOT in `items`, but
    /// the member's items are NOT excluded from the result: the caller excludes them (e.g. with
    /// [`crate::top_n`]).
    ///
    /// # Panics
    /// If `items` and `values` differ in length.
    pub fn scores(&self, items: &[u32], values: &[f32]) -> Vec<f32> {
        assert_eq!(items.len(), values.len(), "one value per item");
        let (items, values) = distinct(items, values);
        let item_item = self.item_item.scores(&items, &values);
        let als = self.als.scores(&self.als.fold_in(&items, &values));
        if self.popularity_weight == 0.0 {
            return blend_scores(&item_item, &als, self.als_weight, &items);
        }
        let item_item_weight = (1.0 - self.als_weight - self.popularity_weight).max(0.0);
        blend_parts(
            &[
                (&item_item, item_item_weight),
                (&als, self.als_weight),
                (&self.popularity, self.popularity_weight),
            ],
            &items,
        )
    }

    /// The member's item that best explains recommending `item` ("because you rated X"): the one
    /// with the largest item-item contribution to its score (similarity × value, duplicates
    /// summed; ties to the lower index); when none of the member's items has `item` among its
    /// neighbours, the one whose ALS factor is most similar to `item`'s (cosine). Only items the
    /// model knows with a positive value explain (a dislike never does), and `item` never explains
    /// itself. `None` if the member has no such item or the model does not know `item`.
    ///
    /// # Panics
    /// If `items` and `values` differ in length.
    pub fn explain(&self, item: u32, items: &[u32], values: &[f32]) -> Option<u32> {
        assert_eq!(items.len(), values.len(), "one value per item");
        if item as usize >= self.n_items() {
            return None;
        }
        let (items, values) = distinct(items, values);
        let candidates: Vec<(u32, f32)> = items
            .into_iter()
            .zip(values)
            .filter(|&(i, v)| v > 0.0 && (i as usize) < self.n_items() && i != item)
            .collect();
        let better = |c: f32, i: u32, best: Option<(f32, u32)>| {
            best.is_none_or(|(bc, bi)| c > bc || (c == bc && i < bi))
        };
        let mut best: Option<(f32, u32)> = None;
        for &(i, v) in &candidates {
            let (nbrs, sims) = self.item_item.neighbours(i);
            if let Some(p) = nbrs.iter().position(|&j| j == item) {
                let c = v * sims[p];
                if better(c, i, best) {
                    best = Some((c, i));
                }
            }
        }
        if best.is_none() {
            for &(i, _) in &candidates {
                let c = self.als.item_similarity(i, item);
                if better(c, i, best) {
                    best = Some((c, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// The model as bytes: a little-endian header (magic `QRECHYB\0`, version 2, the ALS weight
    /// as `f32`, the lengths of the ALS and item-item parts as `u64`, the popularity weight as
    /// `f32`, four reserved zero bytes), then [`AlsModel::to_bytes`], then
    /// [`ItemItemModel::to_bytes`], then one `f32` popularity score per item.
    pub fn to_bytes(&self) -> Vec<u8> {
        let als = self.als.to_bytes();
        let item_item = self.item_item.to_bytes();
        let mut out =
            Vec::with_capacity(HEADER_LEN + als.len() + item_item.len() + 4 * self.n_items());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.als_weight.to_le_bytes());
        out.extend_from_slice(&(als.len() as u64).to_le_bytes());
        out.extend_from_slice(&(item_item.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.popularity_weight.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&als);
        out.extend_from_slice(&item_item);
        for p in &self.popularity {
            out.extend_from_slice(&p.to_le_bytes());
        }
        out
    }

    /// Reads what [`HybridModel::to_bytes`] wrote (and version 1, which had no popularity part);
    /// refuses anything else (wrong magic or version, truncated, trailing bytes, weights outside
    /// `0..=1` or summing above 1, parts that do not decode, parts of different catalogs,
    /// non-finite or negative popularity).
    pub fn from_bytes(b: &[u8]) -> Result<HybridModel, ModelDecodeError> {
        let version = match crate::format::check_header(b, MAGIC, HEADER_LEN_V1, 1) {
            Err(ModelDecodeError::UnsupportedVersion(v)) => v,
            Err(e) => return Err(e),
            Ok(_) => 1,
        };
        let header_len = match version {
            1 => HEADER_LEN_V1,
            FORMAT_VERSION => HEADER_LEN,
            other => return Err(ModelDecodeError::UnsupportedVersion(other)),
        };
        let f = crate::format::check_header(b, MAGIC, header_len, version)?;
        let als_weight = f.f32_at(12);
        if !(0.0..=1.0).contains(&als_weight) {
            return Err(ModelDecodeError::Invalid("ALS weight not within 0..=1"));
        }
        let popularity_weight = if version == 1 { 0.0 } else { f.f32_at(32) };
        if !(0.0..=1.0).contains(&popularity_weight) || als_weight + popularity_weight > 1.0 + 1e-6
        {
            return Err(ModelDecodeError::Invalid("weights not within 0..=1"));
        }
        let (als_len, item_item_len) = (f.size_at(16)?, f.size_at(24)?);
        let parts_end = als_len
            .checked_add(item_item_len)
            .and_then(|n| n.checked_add(header_len))
            .ok_or(ModelDecodeError::Invalid("sizes overflow"))?;
        crate::format::check_len(&b[..b.len().min(parts_end)], parts_end)?;
        let als = AlsModel::from_bytes(&b[header_len..header_len + als_len])?;
        let item_item = ItemItemModel::from_bytes(&b[header_len + als_len..parts_end])?;
        if als.n_items() != item_item.n_items() {
            return Err(ModelDecodeError::Invalid("parts of different catalogs"));
        }
        let n_items = als.n_items();
        let popularity = if version == 1 {
            crate::format::check_len(b, parts_end)?;
            vec![0.0; n_items]
        } else {
            crate::format::check_len(b, parts_end + 4 * n_items)?;
            let f = crate::format::Fields(&b[parts_end..]);
            let scores: Vec<f32> = (0..n_items).map(|i| f.f32_at(4 * i)).collect();
            if scores.iter().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(ModelDecodeError::Invalid("popularity not finite and >= 0"));
            }
            scores
        };
        Ok(HybridModel {
            als,
            item_item,
            als_weight,
            popularity,
            popularity_weight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top_n;

    use crate::testing::{blocks, small_als as als_params};

    fn hybrid(m: &Matrix) -> HybridModel {
        HybridModel::train(
            m,
            &als_params(),
            ItemItemWeighting::default(),
            10,
            0.3,
            &mut |_| {},
        )
    }

    #[test]
    fn trains_both_halves_and_recommends_within_the_block() {
        let m = blocks();
        let mut stages = Vec::new();
        let model = HybridModel::train(
            &m,
            &als_params(),
            ItemItemWeighting::default(),
            10,
            0.3,
            &mut |p| stages.push(p.stage),
        );
        assert_eq!(stages.first(), Some(&"als"));
        assert_eq!(stages.last(), Some(&"bm25"));
        assert_eq!(model.n_items(), 20);
        assert_eq!(model.als_weight(), 0.3);
        assert_eq!(model.als().n_users(), 40);
        assert_eq!(model.item_item().neighbours_per_item(), 10);
        for u in [0usize, 7, 19, 20, 33, 39] {
            let (items, values) = m.row(u);
            let recs = top_n(&model.scores(items, values), items, 4);
            assert_eq!(recs.len(), 4);
            let block = if u < 20 { 0..10 } else { 10..20 };
            for &(item, _) in &recs {
                assert!(block.contains(&item), "user {u} got {recs:?}");
                assert!(!items.contains(&item));
                let because = model
                    .explain(item, items, values)
                    .expect("the user has items");
                assert!(items.contains(&because) && block.contains(&because));
            }
        }
    }

    #[test]
    fn scores_are_the_evaluated_blend() {
        let m = blocks();
        let model = hybrid(&m);
        for u in [3usize, 25] {
            let (items, values) = m.row(u);
            // What `eval::run` computed for `blend` before it went through `HybridModel`, with
            // the user's factor folded in as serving must (the member may be new).
            let item_item = model.item_item().scores(items, values);
            let als = model.als().scores(&model.als().fold_in(items, values));
            let expected = blend_scores(&item_item, &als, 0.3, items);
            assert_eq!(model.scores(items, values), expected);

            // Order and duplicates do not matter (up to rounding); unknown items are ignored.
            let mut shuffled: Vec<(u32, f32)> = items
                .iter()
                .copied()
                .zip(values.iter().copied())
                .flat_map(|(i, v)| [(i, v / 4.0), (i, 3.0 * v / 4.0)])
                .collect();
            shuffled.reverse();
            shuffled.push((1000, 1.0));
            let (si, sv): (Vec<u32>, Vec<f32>) = shuffled.into_iter().unzip();
            let again = model.scores(&si, &sv);
            assert_eq!(again.len(), 20);
            for (a, e) in again.iter().zip(&expected) {
                assert!((a - e).abs() < 1e-4, "{again:?} vs {expected:?}");
            }
        }
        // The weight is the blend's: at 0, item-item alone (normalised).
        let (items, values) = m.row(5);
        let ii_only = HybridModel::new(model.als().clone(), model.item_item().clone(), 0.0);
        let ii = model.item_item().scores(items, values);
        assert_eq!(
            ii_only.scores(items, values),
            blend_scores(&ii, &ii, 0.0, items)
        );
        // Nothing known: everything scores 0.
        assert!(model.scores(&[], &[]).iter().all(|&s| s == 0.0));

        // Popularity takes its share from item-item; alone it ranks by popularity.
        let counts = popularity_scores(&m);
        let with = model.clone().with_popularity(counts.clone(), 0.2);
        let (items, values) = m.row(3);
        let ii = model.item_item().scores(items, values);
        let als = model.als().scores(&model.als().fold_in(items, values));
        let expected = blend_parts(&[(&ii, 0.5), (&als, 0.3), (&counts, 0.2)], items);
        assert_eq!(with.scores(items, values), expected);
        let only = HybridModel::new(model.als().clone(), model.item_item().clone(), 0.0)
            .with_popularity(counts.clone(), 1.0);
        let order = |s: &[f32]| -> Vec<u32> { top_n(s, items, 5).iter().map(|t| t.0).collect() };
        assert_eq!(order(&only.scores(items, values)), order(&counts));
    }

    /// users × items:
    /// ```text
    ///      i0  i1  i2  i3
    /// u0    1   1   .   .
    /// u1    1   1   1   .
    /// u2    .   2   .   1
    /// ```
    /// With cosine item-item: sim(0,1) = 1/√3, sim(0,2) = 1/√2, sim(1,3) = 2/√6,
    /// sim(1,2) = 1/√6; items 0 and 3 (and 2 and 3) are no neighbours.
    fn small() -> HybridModel {
        let m = Matrix::from_triplets(
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
        );
        HybridModel::train(
            &m,
            &als_params(),
            ItemItemWeighting::Cosine,
            10,
            0.3,
            &mut |_| {},
        )
    }

    #[test]
    fn explain_picks_the_largest_contribution() {
        let model = small();
        // Item 1 for a member with i0 (1) and i3 (2): 1/√3 ≈ 0.58 against 2 · 2/√6 ≈ 1.63.
        assert_eq!(model.explain(1, &[0, 3], &[1.0, 2.0]), Some(3));
        // A larger value on i0 turns it round: 10/√3 ≈ 5.8 against 0.82.
        assert_eq!(model.explain(1, &[3, 0], &[1.0, 10.0]), Some(0));
        // Duplicates are summed: i0 at 1 + 2 = 3 gives 1.73 > 1.63.
        assert_eq!(model.explain(1, &[0, 3, 0], &[1.0, 2.0, 2.0]), Some(0));
        // A dislike never explains; unknown items neither.
        assert_eq!(model.explain(1, &[0, 3], &[10.0, -1.0]), Some(0));
        assert_eq!(model.explain(1, &[3, 99], &[-1.0, 5.0]), None);
        // Item 3 has no neighbour among i0 and i2: ALS similarity decides.
        let als = model.als();
        let expected = if als.item_similarity(2, 3) > als.item_similarity(0, 3) {
            2
        } else {
            0
        };
        assert_eq!(model.explain(3, &[0, 2], &[1.0, 1.0]), Some(expected));
        // No items, or an unknown item: nothing to say.
        assert_eq!(model.explain(1, &[], &[]), None);
        assert_eq!(model.explain(99, &[0], &[1.0]), None);
        // The item itself does not explain itself.
        assert_eq!(model.explain(1, &[1], &[1.0]), None);
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        let model = hybrid(&blocks());
        let bytes = model.to_bytes();
        let (als, ii) = (model.als().to_bytes(), model.item_item().to_bytes());
        assert_eq!(bytes.len(), HEADER_LEN + als.len() + ii.len() + 4 * 20);
        let back = HybridModel::from_bytes(&bytes).expect("round trip");
        assert_eq!(back.als_weight(), 0.3);
        assert_eq!(back.als().to_bytes(), als);
        assert_eq!(back.item_item().to_bytes(), ii);
        assert_eq!(back.to_bytes(), bytes);
        let m = blocks();
        let (items, values) = m.row(11);
        assert_eq!(back.scores(items, values), model.scores(items, values));

        crate::testing::assert_cut_and_padded_refused(
            &bytes,
            &[0, 4, 8, 20, HEADER_LEN, HEADER_LEN + 100, bytes.len() - 1],
            &[0],
            HybridModel::from_bytes,
        );
        // A bare ALS model is not a hybrid one.
        assert_eq!(
            HybridModel::from_bytes(&als).unwrap_err(),
            ModelDecodeError::BadMagic
        );
        let mut v3 = bytes.clone();
        v3[8] = 3;
        assert_eq!(
            HybridModel::from_bytes(&v3).unwrap_err(),
            ModelDecodeError::UnsupportedVersion(3)
        );
        // Version 1 (no popularity part) still reads, as the same blend.
        let mut v1 = bytes[..HEADER_LEN_V1].to_vec();
        v1[8] = 1;
        v1.extend_from_slice(&als);
        v1.extend_from_slice(&ii);
        let old = HybridModel::from_bytes(&v1).expect("version 1");
        assert_eq!(old.popularity_weight(), 0.0);
        assert_eq!(old.scores(items, values), model.scores(items, values));
        // With popularity blended in, it travels too.
        let popular = model.clone().with_popularity(popularity_scores(&m), 0.2);
        let back = HybridModel::from_bytes(&popular.to_bytes()).expect("round trip");
        assert_eq!(back.popularity_weight(), 0.2);
        assert_eq!(back.scores(items, values), popular.scores(items, values));
        let mut negative = popular.to_bytes();
        let at = negative.len() - 4;
        negative[at..].copy_from_slice(&(-1f32).to_le_bytes());
        assert!(matches!(
            HybridModel::from_bytes(&negative),
            Err(ModelDecodeError::Invalid(_))
        ));
        let mut heavy = popular.to_bytes();
        heavy[32..36].copy_from_slice(&0.8f32.to_le_bytes());
        assert!(matches!(
            HybridModel::from_bytes(&heavy),
            Err(ModelDecodeError::Invalid(_))
        ));
        let mut weight = bytes.clone();
        weight[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            HybridModel::from_bytes(&weight),
            Err(ModelDecodeError::Invalid(_))
        ));
        // Lengths that split the parts in the wrong place: the parts refuse themselves.
        let mut shifted = bytes.clone();
        shifted[16..24].copy_from_slice(&(als.len() as u64 - 4).to_le_bytes());
        shifted[24..32].copy_from_slice(&(ii.len() as u64 + 4).to_le_bytes());
        assert!(HybridModel::from_bytes(&shifted).is_err());
        // Parts of different catalogs.
        let other = hybrid(&Matrix::from_triplets(
            2,
            3,
            [(0, 0, 1.0), (0, 1, 1.0), (1, 2, 1.0)],
        ));
        let mut mixed = bytes[..HEADER_LEN].to_vec();
        let other_ii = other.item_item().to_bytes();
        mixed[24..32].copy_from_slice(&(other_ii.len() as u64).to_le_bytes());
        mixed.extend_from_slice(&als);
        mixed.extend_from_slice(&other_ii);
        assert_eq!(
            HybridModel::from_bytes(&mixed).unwrap_err(),
            ModelDecodeError::Invalid("parts of different catalogs")
        );
    }
}
