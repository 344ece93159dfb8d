//! The two small products of one attention head, register-blocked: scores
//! `S = A B^T` and weighted sums `O = P V`, for one sentence (tens of
//! rows; head dimensions in blocks of 16, any remainder by a plain loop). Written as loops over
//! fixed-size arrays that the compiler keeps in vector registers (four rows
//! by 16 or 32 columns of accumulators), so the inner loop is broadcast +
//! fused multiply-add with no loads or stores of the accumulators; a plain
//! row-at-a-time loop over these short rows spent most of its time moving
//! partial sums through memory.
//!
//! `B^T` is passed transposed and padded (`[d, cols]`, `cols` a multiple
//! of 16, zeros past the real columns), so every column block is full.

use super::simd::simd_fn;

/// Columns of one accumulator block.
pub const LANES: usize = 16;

/// `cols` rounded up to a multiple of [`LANES`].
pub fn padded(cols: usize) -> usize {
    cols.div_ceil(LANES) * LANES
}

#[inline(always)]
fn scores_rows<const R: usize>(
    a: &[f32],
    bt: &[f32],
    s: &mut [f32],
    i0: usize,
    cols: usize,
    d: usize,
    scale: f32,
) {
    for j0 in (0..cols).step_by(LANES) {
        let mut acc = [[0f32; LANES]; R];
        for c in 0..d {
            let b: &[f32; LANES] = bt[c * cols + j0..c * cols + j0 + LANES]
                .try_into()
                .expect("a full block");
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = a[(i0 + r) * d + c];
                for l in 0..LANES {
                    acc[l] += x * b[l];
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for l in 0..LANES {
                s[(i0 + r) * cols + j0 + l] = acc[l] * scale;
            }
        }
    }
}

simd_fn! {
    /// `s[rows, cols] = scale * a[rows, d] bt[d, cols]` (`cols` a multiple of [`LANES`]).
    pub fn scores(a: &[f32], bt: &[f32], s: &mut [f32], rows: usize, cols: usize, d: usize, scale: f32) {
        assert!(cols.is_multiple_of(LANES) && a.len() >= rows * d && bt.len() >= d * cols && s.len() >= rows * cols, "scores: shapes");
        let mut i = 0;
        while i + 4 <= rows {
            scores_rows::<4>(a, bt, s, i, cols, d, scale);
            i += 4;
        }
        while i < rows {
            scores_rows::<1>(a, bt, s, i, cols, d, scale);
            i += 1;
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn sum_rows<const R: usize, const B: usize>(
    p: &[f32],
    v: &[f32],
    o: &mut [f32],
    i0: usize,
    len: usize,
    stride: usize,
    d: usize,
    col0: usize,
    scale: f32,
) {
    let mut acc = [[[0f32; LANES]; B]; R];
    for j in 0..len {
        for b in 0..B {
            let vv: &[f32; LANES] = v[j * d + col0 + b * LANES..j * d + col0 + (b + 1) * LANES]
                .try_into()
                .expect("a full block");
            for (r, acc) in acc.iter_mut().enumerate() {
                let w = p[(i0 + r) * stride + j];
                for l in 0..LANES {
                    acc[b][l] += w * vv[l];
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (b, acc) in acc.iter().enumerate() {
            for l in 0..LANES {
                o[(i0 + r) * d + col0 + b * LANES + l] = acc[l] * scale;
            }
        }
    }
}

/// Columns `col..col + B * LANES` of every row, four rows at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn column_block<const B: usize>(
    p: &[f32],
    v: &[f32],
    o: &mut [f32],
    rows: usize,
    len: usize,
    stride: usize,
    d: usize,
    col: usize,
    scale: f32,
) {
    let mut i = 0;
    while i + 4 <= rows {
        sum_rows::<4, B>(p, v, o, i, len, stride, d, col, scale);
        i += 4;
    }
    while i < rows {
        sum_rows::<1, B>(p, v, o, i, len, stride, d, col, scale);
        i += 1;
    }
}

simd_fn! {
    /// `o[rows, d] = scale * p[rows, len] v[len, d]`, rows of `p` `stride`
    /// apart.
    #[allow(clippy::too_many_arguments)]
    pub fn weighted_sum(p: &[f32], v: &[f32], o: &mut [f32], rows: usize, len: usize, stride: usize, d: usize, scale: f32) {
        assert!(stride >= len && (rows == 0 || p.len() >= (rows - 1) * stride + len) && v.len() >= len * d && o.len() >= rows * d, "weighted_sum: shapes");
        let mut col = 0;
        while col + 2 * LANES <= d {
            column_block::<2>(p, v, o, rows, len, stride, d, col, scale);
            col += 2 * LANES;
        }
        if col + LANES <= d {
            column_block::<1>(p, v, o, rows, len, stride, d, col, scale);
            col += LANES;
        }
        // Columns past the last full block (head dimensions that are not a multiple of 16).
        if col < d {
            for i in 0..rows {
                let o = &mut o[i * d + col..(i + 1) * d];
                o.iter_mut().for_each(|x| *x = 0.0);
                for j in 0..len {
                    let w = p[i * stride + j];
                    o.iter_mut().zip(&v[j * d + col..(j + 1) * d]).for_each(|(o, v)| *o += w * v);
                }
                o.iter_mut().for_each(|x| *x *= scale);
            }
        }
    }
}

/// `out[d, cols]` = `x[rows, d]` transposed, zero past column `rows`.
pub fn transpose_padded(x: &[f32], rows: usize, d: usize, cols: usize, out: &mut [f32]) {
    out[..d * cols].iter_mut().for_each(|v| *v = 0.0);
    for i in 0..rows {
        for c in 0..d {
            out[c * cols + i] = x[i * d + c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104729) % 29) as f32 / 9.0 - 1.5)
            .collect()
    }

    #[test]
    fn both_products_match_naive_loops_for_odd_sizes() {
        for (rows, d) in [(1, 16), (7, 32), (13, 48), (30, 64), (5, 8), (9, 40)] {
            let cols = padded(rows);
            let (a, b) = (data(rows * d, 1), data(rows * d, 2));
            let mut bt = vec![0f32; d * cols];
            transpose_padded(&b, rows, d, cols, &mut bt);
            let mut s = vec![0f32; rows * cols];
            scores(&a, &bt, &mut s, rows, cols, d, 0.5);
            for i in 0..rows {
                for j in 0..cols {
                    let want = if j < rows {
                        0.5 * (0..d).map(|c| a[i * d + c] * b[j * d + c]).sum::<f32>()
                    } else {
                        0.0
                    };
                    assert!(
                        (s[i * cols + j] - want).abs() < 1e-4,
                        "scores {rows}x{d} at {i},{j}"
                    );
                }
            }
            let mut o = vec![0f32; rows * d];
            weighted_sum(&s, &b, &mut o, rows, rows, cols, d, 2.0);
            for i in 0..rows {
                for c in 0..d {
                    let want = 2.0
                        * (0..rows)
                            .map(|j| s[i * cols + j] * b[j * d + c])
                            .sum::<f32>();
                    assert!(
                        (o[i * d + c] - want).abs() < 1e-3 * want.abs().max(1.0),
                        "weighted_sum {rows}x{d} at {i},{c}"
                    );
                }
            }
        }
    }
}
