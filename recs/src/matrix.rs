//! Compressed sparse rows (CSR): the user × item interaction matrix.

/// A sparse matrix in compressed sparse row form with `f32` values and dense `u32` column indices.
///
/// Within a row, columns are strictly increasing and no stored value is zero.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

impl Matrix {
    /// Builds a matrix from `(row, column, value)` triplets: duplicates are summed, entries whose
    /// (summed) value is zero are dropped, and columns are sorted within each row.
    ///
    /// # Panics
    /// If a row index is `>= n_rows` or a column index is `>= n_cols`.
    pub fn from_triplets(
        n_rows: usize,
        n_cols: usize,
        triplets: impl IntoIterator<Item = (u32, u32, f32)>,
    ) -> Matrix {
        let triplets: Vec<(u32, u32, f32)> = triplets.into_iter().collect();
        // Counting sort by row.
        let mut counts = vec![0usize; n_rows + 1];
        for &(r, c, _) in &triplets {
            assert!(
                (r as usize) < n_rows,
                "row {r} out of range (n_rows = {n_rows})"
            );
            assert!(
                (c as usize) < n_cols,
                "column {c} out of range (n_cols = {n_cols})"
            );
            counts[r as usize + 1] += 1;
        }
        for r in 0..n_rows {
            counts[r + 1] += counts[r];
        }
        let mut next = counts.clone();
        let mut placed = vec![(0u32, 0f32); triplets.len()];
        for &(r, c, v) in &triplets {
            let slot = &mut next[r as usize];
            placed[*slot] = (c, v);
            *slot += 1;
        }
        drop(triplets);

        let mut indptr = Vec::with_capacity(n_rows + 1);
        let mut indices = Vec::with_capacity(placed.len());
        let mut data = Vec::with_capacity(placed.len());
        indptr.push(0);
        for r in 0..n_rows {
            let row = &mut placed[counts[r]..counts[r + 1]];
            // Stable, so duplicates are summed in input order (deterministic rounding).
            row.sort_by_key(|&(c, _)| c);
            let mut i = 0;
            while i < row.len() {
                let c = row[i].0;
                let mut v = row[i].1;
                i += 1;
                while i < row.len() && row[i].0 == c {
                    v += row[i].1;
                    i += 1;
                }
                if v != 0.0 {
                    indices.push(c);
                    data.push(v);
                }
            }
            indptr.push(indices.len());
        }
        Matrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// Number of rows (users).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns (items).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored (non-zero) entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// One row: its column indices (increasing) and their values.
    ///
    /// # Panics
    /// If `r >= n_rows()`.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (start, end) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[start..end], &self.data[start..end])
    }

    /// The transpose (item × user), also with sorted columns.
    pub fn transpose(&self) -> Matrix {
        let mut indptr = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            indptr[c as usize + 1] += 1;
        }
        for c in 0..self.n_cols {
            indptr[c + 1] += indptr[c];
        }
        let mut next = indptr.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for r in 0..self.n_rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                let slot = &mut next[c as usize];
                indices[*slot] = r as u32;
                data[*slot] = v;
                *slot += 1;
            }
        }
        Matrix {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr,
            indices,
            data,
        }
    }

    /// The same sparsity pattern with every value passed through `f` (values that become zero are
    /// kept out, as `from_triplets` would).
    pub fn map_values(&self, mut f: impl FnMut(f32) -> f32) -> Matrix {
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        let mut indices = Vec::with_capacity(self.nnz());
        let mut data = Vec::with_capacity(self.nnz());
        indptr.push(0);
        for r in 0..self.n_rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                let v = f(v);
                if v != 0.0 {
                    indices.push(c);
                    data.push(v);
                }
            }
            indptr.push(indices.len());
        }
        Matrix {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// Number of stored entries in each row.
    pub fn row_counts(&self) -> Vec<usize> {
        self.indptr.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_summed_zeros_dropped_columns_sorted() {
        let m = Matrix::from_triplets(
            3,
            4,
            [
                (0, 3, 1.0),
                (0, 1, 2.0),
                (0, 3, 0.5),
                (2, 0, 0.0),
                (2, 2, 1.0),
                (2, 2, -1.0),
                (2, 1, 4.0),
            ],
        );
        assert_eq!((m.n_rows(), m.n_cols(), m.nnz()), (3, 4, 3));
        assert_eq!(m.row(0), (&[1u32, 3][..], &[2.0f32, 1.5][..]));
        assert_eq!(m.row(1), (&[][..], &[][..]));
        assert_eq!(m.row(2), (&[1u32][..], &[4.0f32][..]));
        assert_eq!(m.row_counts(), vec![2, 0, 1]);
    }

    #[test]
    fn transpose_swaps_and_round_trips() {
        let m = Matrix::from_triplets(3, 4, [(0, 3, 1.0), (0, 1, 2.0), (2, 1, 4.0), (1, 0, 5.0)]);
        let t = m.transpose();
        assert_eq!((t.n_rows(), t.n_cols(), t.nnz()), (4, 3, 4));
        assert_eq!(t.row(0), (&[1u32][..], &[5.0f32][..]));
        assert_eq!(t.row(1), (&[0u32, 2][..], &[2.0f32, 4.0][..]));
        assert_eq!(t.row(2), (&[][..], &[][..]));
        assert_eq!(t.row(3), (&[0u32][..], &[1.0f32][..]));
        assert_eq!(t.transpose(), m);
    }

    #[test]
    fn map_values_drops_new_zeros() {
        let m = Matrix::from_triplets(1, 3, [(0, 0, 1.0), (0, 2, 2.0)]);
        let doubled = m.map_values(|v| if v > 1.5 { 0.0 } else { 2.0 * v });
        assert_eq!(doubled.row(0), (&[0u32][..], &[2.0f32][..]));
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn out_of_range_panics() {
        Matrix::from_triplets(1, 1, [(0, 1, 1.0)]);
    }
}
