//! The popularity baseline: how many users interacted with each item, and Bayesian-average
//! ratings for "best rated" lists that do not favour an item with one 5-star rating.

use crate::{Matrix, top_n};

/// The Bayesian average of a rating: the item's `count` ratings summing to `sum`, pulled towards
/// `global_mean` as if it had `prior_weight` more ratings at that mean:
/// `(prior_weight · global_mean + sum) / (prior_weight + count)`.
///
/// With no ratings and no prior weight it is `global_mean`.
pub fn bayesian_average(sum: f64, count: u64, global_mean: f64, prior_weight: f64) -> f64 {
    let denominator = prior_weight + count as f64;
    if denominator <= 0.0 {
        return global_mean;
    }
    (prior_weight * global_mean + sum) / denominator
}

/// Per-item interaction counts and rating sums.
#[derive(Clone, Debug, PartialEq)]
pub struct Popularity {
    counts: Vec<u64>,
    rating_sums: Vec<f64>,
    rating_counts: Vec<u64>,
}

impl Popularity {
    /// No items counted yet, for a catalog of `n_items`.
    pub fn new(n_items: usize) -> Self {
        Popularity {
            counts: vec![0; n_items],
            rating_sums: vec![0.0; n_items],
            rating_counts: vec![0; n_items],
        }
    }

    /// Counts the users with a positive value for each item (column) of a user × item matrix.
    pub fn from_matrix(m: &Matrix) -> Self {
        let mut p = Popularity::new(m.n_cols());
        for r in 0..m.n_rows() {
            let (cols, vals) = m.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                if v > 0.0 {
                    p.counts[c as usize] += 1;
                }
            }
        }
        p
    }

    /// Counts one interaction with `item`, with its star rating if there is one.
    ///
    /// # Panics
    /// If `item` is outside the catalog.
    pub fn add(&mut self, item: u32, rating: Option<u8>) {
        let i = item as usize;
        self.counts[i] += 1;
        if let Some(r) = rating {
            self.rating_sums[i] += f64::from(r);
            self.rating_counts[i] += 1;
        }
    }

    /// Number of items in the catalog.
    pub fn n_items(&self) -> usize {
        self.counts.len()
    }

    /// Interactions counted per item.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The mean of all ratings counted, if any.
    pub fn global_mean_rating(&self) -> Option<f64> {
        let n: u64 = self.rating_counts.iter().sum();
        (n > 0).then(|| self.rating_sums.iter().sum::<f64>() / n as f64)
    }

    /// The item's Bayesian-average rating (see [`bayesian_average`]) with the global mean as the
    /// prior; `None` if nothing at all has been rated.
    pub fn average_rating(&self, item: u32, prior_weight: f64) -> Option<f64> {
        let mean = self.global_mean_rating()?;
        let i = item as usize;
        Some(bayesian_average(
            self.rating_sums[i],
            self.rating_counts[i],
            mean,
            prior_weight,
        ))
    }

    /// The `n` most popular items not in `exclude` (ties by lower index), with their counts.
    pub fn recommend(&self, exclude: &[u32], n: usize) -> Vec<(u32, f32)> {
        let scores: Vec<f32> = self.counts.iter().map(|&c| c as f32).collect();
        top_n(&scores, exclude, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bayesian_average_pulls_towards_the_prior() {
        // One 5-star rating, prior of 10 ratings at 3.5: (35 + 5) / 11.
        assert!((bayesian_average(5.0, 1, 3.5, 10.0) - 40.0 / 11.0).abs() < 1e-12);
        assert_eq!(bayesian_average(0.0, 0, 3.5, 10.0), 3.5);
        assert_eq!(bayesian_average(0.0, 0, 3.5, 0.0), 3.5);
        assert_eq!(bayesian_average(8.0, 2, 3.5, 0.0), 4.0);
    }

    #[test]
    fn counts_and_recommendations() {
        let m = Matrix::from_triplets(
            3,
            4,
            [
                (0, 1, 1.0),
                (1, 1, 1.0),
                (2, 1, 1.0),
                (0, 3, 1.0),
                (1, 3, -1.0),
                (2, 0, 1.0),
            ],
        );
        let p = Popularity::from_matrix(&m);
        assert_eq!(p.counts(), &[1, 3, 0, 1]);
        assert_eq!(p.recommend(&[], 3), vec![(1, 3.0), (0, 1.0), (3, 1.0)]);
        assert_eq!(p.recommend(&[1], 2), vec![(0, 1.0), (3, 1.0)]);

        let mut q = Popularity::new(2);
        assert_eq!(q.average_rating(0, 5.0), None);
        q.add(0, Some(5));
        q.add(1, Some(1));
        q.add(1, None);
        assert_eq!(q.counts(), &[1, 2]);
        assert_eq!(q.global_mean_rating(), Some(3.0));
        assert_eq!(q.average_rating(0, 1.0), Some(4.0));
    }
}
