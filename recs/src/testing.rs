//! Fixtures the unit tests share.

use crate::{AlsParams, Matrix, ModelDecodeError};

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

/// A stored format refuses `bytes` cut at each of `cuts` as `Truncated`, and `bytes` followed by
/// `padding` as `TrailingBytes`.
pub(crate) fn assert_cut_and_padded_refused<T: std::fmt::Debug>(
    bytes: &[u8],
    cuts: &[usize],
    padding: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, ModelDecodeError>,
) {
    for &cut in cuts {
        assert!(
            matches!(
                decode(&bytes[..cut]),
                Err(ModelDecodeError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
    let mut long = bytes.to_vec();
    long.extend_from_slice(padding);
    assert!(matches!(
        decode(&long),
        Err(ModelDecodeError::TrailingBytes { .. })
    ));
}

/// `YᵀY + λI` of the row-major `n × f` matrix `y`, written out naively as a reference.
pub(crate) fn naive_gram(y: &[f32], f: usize, lambda: f32) -> Vec<f32> {
    let mut gram = vec![0f32; f * f];
    for row in y.chunks_exact(f) {
        for j in 0..f {
            for k in 0..f {
                gram[j * f + k] += row[j] * row[k];
            }
        }
    }
    for j in 0..f {
        gram[j * f + j] += lambda;
    }
    gram
}
