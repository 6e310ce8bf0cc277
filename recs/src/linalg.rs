//! Small dense kernels for the ALS solver: a dot product the compiler vectorises, `y += a·x`, the
//! conjugate-gradient update of a block of rows in lockstep (and its one-row reference), and a
//! Cholesky solve.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Slice};

use crate::Matrix;

/// `a · b` over the common length.
///
/// Eight independent accumulators over `chunks_exact(8)` (two sets, so two vector registers are in
/// flight): a single running sum (`zip().map().sum()`) is a serial dependency chain the compiler
/// may not reorder for `f32`, so it does not vectorise. The chunks are turned into `[f32; 8]` so no
/// bounds check is left to stop the vectoriser.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc0 = [0f32; 8];
    let mut acc1 = [0f32; 8];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let (x0, x1) = x.split_at(8);
        let (y0, y1) = y.split_at(8);
        let x0: &[f32; 8] = x0.try_into().expect("8 lanes");
        let x1: &[f32; 8] = x1.try_into().expect("8 lanes");
        let y0: &[f32; 8] = y0.try_into().expect("8 lanes");
        let y1: &[f32; 8] = y1.try_into().expect("8 lanes");
        for k in 0..8 {
            acc0[k] += x0[k] * y0[k];
            acc1[k] += x1[k] * y1[k];
        }
    }
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut ea = ra.chunks_exact(8);
    let mut eb = rb.chunks_exact(8);
    for (x, y) in (&mut ea).zip(&mut eb) {
        let x: &[f32; 8] = x.try_into().expect("8 lanes");
        let y: &[f32; 8] = y.try_into().expect("8 lanes");
        for k in 0..8 {
            acc0[k] += x[k] * y[k];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ea.remainder().iter().zip(eb.remainder()) {
        tail += x * y;
    }
    for k in 0..8 {
        acc0[k] += acc1[k];
    }
    ((acc0[0] + acc0[4]) + (acc0[1] + acc0[5])) + ((acc0[2] + acc0[6]) + (acc0[3] + acc0[7])) + tail
}

/// `y += a · x` over the common length.
#[inline(always)]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
/// `out = A · x` for a symmetric (so row-major or column-major alike) `n × n` matrix `a`.
#[inline(always)]
pub(crate) fn symv(a: &[f32], x: &[f32], out: &mut [f32]) {
    let n = x.len();
    for (o, row) in out.iter_mut().zip(a.chunks_exact(n)) {
        *o = dot(row, x);
    }
}

/// Scratch vectors for [`cg_update`], one set per thread.
#[cfg(test)]
pub(crate) struct CgScratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

#[cfg(test)]
impl CgScratch {
    /// Scratch for `factors`-dimensional solves.
    pub(crate) fn new(factors: usize) -> Self {
        Self {
            r: vec![0.0; factors],
            p: vec![0.0; factors],
            ap: vec![0.0; factors],
        }
    }
}

/// Residual below which a CG solve stops early.
const CG_EPS: f32 = 1e-20;

/// The reference (one row at a time) for [`cg_update_block`], which training uses.
///
/// Updates one row's factor `x` towards the solution of the implicit-ALS normal equations,
/// `(YᵀY + λI + Σᵢ (cᵢ − 1) yᵢyᵢᵀ) x = Σᵢ cᵢ pᵢ yᵢ`, with `steps` conjugate-gradient steps started
/// from the current `x` (Takács et al. 2011; the formulation of Python `implicit`).
///
/// `gram` is `YᵀY + λI` (`f × f`, precomputed once per half-iteration), `y` the other side's
/// factors (`n × f` row-major), `cols`/`conf` the row's entries: confidence `c = alpha · value`.
/// A positive `c` means preference 1 with confidence `c`; a negative one means preference 0 with
/// confidence `|c|` (an explicit dislike), as in `implicit`.
#[cfg(test)]
pub(crate) fn cg_update(
    gram: &[f32],
    y: &[f32],
    cols: &[u32],
    conf: &[f32],
    x: &mut [f32],
    steps: usize,
    s: &mut CgScratch,
) {
    let f = x.len();
    let CgScratch { r, p, ap } = s;
    // r = b − A x
    symv(gram, x, r);
    for v in r.iter_mut() {
        *v = -*v;
    }
    for (&i, &c) in cols.iter().zip(conf) {
        let yi = &y[i as usize * f..(i as usize + 1) * f];
        let (pref, c_abs) = if c > 0.0 { (c, c) } else { (0.0, -c) };
        axpy(pref - (c_abs - 1.0) * dot(yi, x), yi, r);
    }
    p.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    if rs_old < CG_EPS {
        return;
    }
    for _ in 0..steps {
        // ap = A p
        symv(gram, p, ap);
        for (&i, &c) in cols.iter().zip(conf) {
            let yi = &y[i as usize * f..(i as usize + 1) * f];
            axpy((c.abs() - 1.0) * dot(yi, p), yi, ap);
        }
        let p_ap = dot(p, ap);
        if p_ap.is_nan() || p_ap <= 0.0 {
            // Not positive definite along p (only with λ = 0 on degenerate data): stop here.
            return;
        }
        let alpha = rs_old / p_ap;
        axpy(alpha, p, x);
        axpy(-alpha, ap, r);
        let rs_new = dot(r, r);
        if rs_new < CG_EPS {
            return;
        }
        let beta = rs_new / rs_old;
        for (pi, ri) in p.iter_mut().zip(r.iter()) {
            *pi = ri + beta * *pi;
        }
        rs_old = rs_new;
    }
}

/// Scratch matrices for [`cg_update_block`], one set per thread.
pub(crate) struct BlockScratch {
    r: Array2<f32>,
    p: Array2<f32>,
    ap: Array2<f32>,
    rs: Vec<f32>,
    active: Vec<bool>,
}

impl BlockScratch {
    /// Scratch for blocks of up to `rows` rows of `factors` dimensions.
    pub(crate) fn new(rows: usize, factors: usize) -> Self {
        Self {
            r: Array2::zeros((rows, factors)),
            p: Array2::zeros((rows, factors)),
            ap: Array2::zeros((rows, factors)),
            rs: vec![0.0; rows],
            active: vec![false; rows],
        }
    }
}

/// [`cg_update`] for a block of consecutive rows in lockstep: the same arithmetic row by row,
/// except that the dense products `(YᵀY + λI)·v` of all rows are one matrix product per step
/// (`matrixmultiply`'s FMA kernels), which is most of the work at 64 factors. The sparse per-row
/// parts run under `pulp`'s runtime SIMD dispatch (AVX2 or better where the CPU has it).
///
/// `x` holds the block's rows (`rows × f`, row-major); row `k` of the block is row
/// `first_row + k` of `c`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cg_update_block(
    arch: pulp::Arch,
    gram: ArrayView2<'_, f32>,
    y: &[f32],
    c: &Matrix,
    first_row: usize,
    x: &mut [f32],
    steps: usize,
    s: &mut BlockScratch,
) {
    let f = gram.nrows();
    let rows = x.len() / f;
    let mut xm = ArrayViewMut2::from_shape((rows, f), x).expect("a block of whole rows");
    // r = −G x, then the sparse part.
    general_mat_mul(
        -1.0,
        &xm,
        &gram,
        0.0,
        &mut s.r.slice_axis_mut(Axis(0), Slice::from(..rows)),
    );
    arch.dispatch(SparsePart {
        step: false,
        y,
        c,
        first_row,
        x: &mut xm,
        s: &mut *s,
    });
    for _ in 0..steps {
        if !s.active[..rows].iter().any(|&a| a) {
            return;
        }
        // ap = G p, then the sparse part and the CG update.
        general_mat_mul(
            1.0,
            &s.p.slice_axis(Axis(0), Slice::from(..rows)),
            &gram,
            0.0,
            &mut s.ap.slice_axis_mut(Axis(0), Slice::from(..rows)),
        );
        arch.dispatch(SparsePart {
            step: true,
            y,
            c,
            first_row,
            x: &mut xm,
            s: &mut *s,
        });
    }
}

/// The per-row, sparse part of [`cg_update_block`], as a `pulp` SIMD kernel: the kernels it calls
/// are `#[inline(always)]`, so they are compiled for the instruction set `pulp` dispatches to.
struct SparsePart<'a, 'x> {
    /// `false`: finish the initial residual; `true`: finish one CG step.
    step: bool,
    y: &'a [f32],
    c: &'a Matrix,
    first_row: usize,
    x: &'a mut ArrayViewMut2<'x, f32>,
    s: &'a mut BlockScratch,
}

impl SparsePart<'_, '_> {
    #[inline(always)]
    fn run(self) {
        let f = self.x.ncols();
        let y = self.y;
        let s = self.s;
        for k in 0..self.x.nrows() {
            let (cols, conf) = self.c.row(self.first_row + k);
            let xk = self.x.row_mut(k).into_slice().expect("standard layout");
            let r = s.r.row_mut(k).into_slice().expect("standard layout");
            let p = s.p.row_mut(k).into_slice().expect("standard layout");
            if !self.step {
                for (&i, &c) in cols.iter().zip(conf) {
                    let yi = &y[i as usize * f..(i as usize + 1) * f];
                    let (pref, c_abs) = if c > 0.0 { (c, c) } else { (0.0, -c) };
                    axpy(pref - (c_abs - 1.0) * dot(yi, xk), yi, r);
                }
                p.copy_from_slice(r);
                s.rs[k] = dot(r, r);
                s.active[k] = s.rs[k] >= CG_EPS;
                continue;
            }
            if !s.active[k] {
                continue;
            }
            let ap = s.ap.row_mut(k).into_slice().expect("standard layout");
            for (&i, &c) in cols.iter().zip(conf) {
                let yi = &y[i as usize * f..(i as usize + 1) * f];
                axpy((c.abs() - 1.0) * dot(yi, p), yi, ap);
            }
            let p_ap = dot(p, ap);
            if p_ap.is_nan() || p_ap <= 0.0 {
                s.active[k] = false;
                continue;
            }
            let alpha = s.rs[k] / p_ap;
            axpy(alpha, p, xk);
            axpy(-alpha, ap, r);
            let rs_new = dot(r, r);
            if rs_new < CG_EPS {
                s.active[k] = false;
                continue;
            }
            let beta = rs_new / s.rs[k];
            for (pi, ri) in p.iter_mut().zip(r.iter()) {
                *pi = ri + beta * *pi;
            }
            s.rs[k] = rs_new;
        }
    }
}

impl pulp::WithSimd for SparsePart<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.run();
    }
}

/// Builds the full normal equations of one row, `A = gram + Σᵢ (|cᵢ| − 1) yᵢyᵢᵀ` and
/// `b = Σ_{cᵢ>0} cᵢ yᵢ`, in `f64`.
pub(crate) fn normal_equations(
    gram: &[f32],
    y: &[f32],
    f: usize,
    cols: &[u32],
    conf: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let mut a: Vec<f64> = gram.iter().map(|&v| f64::from(v)).collect();
    let mut b = vec![0f64; f];
    for (&i, &c) in cols.iter().zip(conf) {
        let yi = &y[i as usize * f..(i as usize + 1) * f];
        let w = f64::from(c.abs()) - 1.0;
        for (j, &yj) in yi.iter().enumerate() {
            let wyj = w * f64::from(yj);
            let row = &mut a[j * f..(j + 1) * f];
            for (aj, &yk) in row.iter_mut().zip(yi) {
                *aj += wyj * f64::from(yk);
            }
            if c > 0.0 {
                b[j] += f64::from(c) * f64::from(yj);
            }
        }
    }
    (a, b)
}

/// Solves `A x = b` for a symmetric positive-definite `n × n` matrix (row-major) by Cholesky
/// factorisation. A non-positive pivot (a singular or indefinite matrix) is replaced by a tiny
/// positive one, so the result is always finite.
pub(crate) fn cholesky_solve(a: &[f64], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    assert_eq!(a.len(), n * n, "matrix and vector sizes differ");
    let mut l = vec![0f64; n * n];
    let scale = (0..n).map(|i| a[i * n + i].abs()).fold(0f64, f64::max);
    let floor = (scale * 1e-12).max(1e-300);
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                l[i * n + i] = if s > floor { s.sqrt() } else { floor.sqrt() };
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    // L z = b, then Lᵀ x = z.
    let mut z = vec![0f64; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * z[k];
        }
        z[i] = s / l[i * n + i];
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        let mut s = z[i];
        for k in i + 1..n {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random_vec(g: &mut SplitMix64, n: usize) -> Vec<f32> {
        (0..n).map(|_| g.next_f32() * 2.0 - 1.0).collect()
    }

    #[test]
    fn dot_equals_naive_for_every_length() {
        let mut g = SplitMix64::new(1);
        for n in 0..40 {
            let a = random_vec(&mut g, n);
            let b = random_vec(&mut g, n);
            let naive: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-5, "n = {n}");
        }
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
    }

    #[test]
    fn axpy_and_symv() {
        let mut y = vec![1.0, 1.0];
        axpy(2.0, &[3.0, 4.0], &mut y);
        assert_eq!(y, vec![7.0, 9.0]);
        let mut out = vec![0.0; 2];
        symv(&[2.0, 1.0, 1.0, 3.0], &[1.0, 2.0], &mut out);
        assert_eq!(out, vec![4.0, 7.0]);
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        // A = [[4, 2], [2, 3]], x = [1, -2] ⇒ b = [0, -4].
        let x = cholesky_solve(&[4.0, 2.0, 2.0, 3.0], &[0.0, -4.0]);
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] + 2.0).abs() < 1e-12);
    }

    /// The block solver does the per-row solver's arithmetic (up to rounding), whatever the block
    /// size, including rows without entries.
    #[test]
    fn block_cg_matches_row_cg() {
        let f = 16;
        let n_items = 40;
        let mut g = SplitMix64::new(5);
        let y = random_vec(&mut g, n_items * f);
        let gram = crate::testing::naive_gram(&y, f, 0.5);
        let mut triplets = Vec::new();
        for u in 0..7u32 {
            if u == 3 {
                continue;
            }
            for k in 0..(u + 2) {
                let v = if k == 1 { -1.5 } else { 0.3 + k as f32 };
                triplets.push((u, (u * 7 + k * 5) % n_items as u32, v));
            }
        }
        let c = Matrix::from_triplets(7, n_items, triplets);
        let x0 = random_vec(&mut g, 7 * f);
        let mut expected = x0.clone();
        let mut rs = CgScratch::new(f);
        for (u, xr) in expected.chunks_exact_mut(f).enumerate() {
            let (cols, conf) = c.row(u);
            cg_update(&gram, &y, cols, conf, xr, 3, &mut rs);
        }
        let gram_m = Array2::from_shape_vec((f, f), gram.clone()).unwrap();
        let arch = pulp::Arch::new();
        for block in [1usize, 3, 7] {
            let mut got = x0.clone();
            let mut bs = BlockScratch::new(block, f);
            for (b, xs) in got.chunks_mut(block * f).enumerate() {
                cg_update_block(arch, gram_m.view(), &y, &c, b * block, xs, 3, &mut bs);
            }
            for (a, e) in got.iter().zip(&expected) {
                assert!(
                    (a - e).abs() < 1e-3 * (1.0 + e.abs()),
                    "block {block}: {a} vs {e}"
                );
            }
        }
    }

    /// A tiny implicit-ALS row problem: CG (run to as many steps as dimensions) must reach the
    /// direct solution, and 3 warm-started steps repeated must converge to it too.
    #[test]
    fn cg_matches_direct_solve() {
        let f = 6;
        let n_items = 9;
        let mut g = SplitMix64::new(3);
        let y = random_vec(&mut g, n_items * f);
        let lambda = 0.1f32;
        let gram = crate::testing::naive_gram(&y, f, lambda);
        let cols = [1u32, 4, 5, 8];
        let conf = [3.0f32, 0.5, -2.0, 10.0];
        let (a, b) = normal_equations(&gram, &y, f, &cols, &conf);
        let exact = cholesky_solve(&a, &b);

        let mut s = CgScratch::new(f);
        let mut x = vec![0f32; f];
        cg_update(&gram, &y, &cols, &conf, &mut x, f, &mut s);
        for (xi, ei) in x.iter().zip(&exact) {
            assert!((f64::from(*xi) - ei).abs() < 1e-3, "{x:?} vs {exact:?}");
        }

        // Restarted 3-step CG (what training does across iterations) gets there too.
        let mut warm = vec![0f32; f];
        for _ in 0..100 {
            cg_update(&gram, &y, &cols, &conf, &mut warm, 3, &mut s);
        }
        for (xi, ei) in warm.iter().zip(&exact) {
            assert!((f64::from(*xi) - ei).abs() < 1e-3, "{warm:?} vs {exact:?}");
        }
    }
}
