//! Fixtures the unit tests share.

use crate::{AlsParams, Matrix};

/// 40 users and 20 items in two blocks: users 0..20 read items 0..10, users 20..40 read items
/// 10..20; each user has read 6 of their block's 10 items.
pub(crate) fn blocks() -> Matrix {
    let mut t = Vec::new();
    for u in 0..40u32 {
        let base = if u < 20 { 0 } else { 10 };
        for k in 0..6u32 {
            t.push((u, base + (u * 3 + k * 7) % 10, 1.0 + (k % 3) as f32 * 0.5));
        }
    }
    Matrix::from_triplets(40, 20, t)
}

/// Two factors: enough for two blocks.
pub(crate) fn small_als() -> AlsParams {
    AlsParams {
        factors: 2,
        iterations: 15,
        regularization: 0.1,
        alpha: 5.0,
        cg_steps: 3,
        seed: 1,
    }
}
