//! Dense layers for the native training step: `y = x W^T + b` forward and
//! its three backward products, all straight calls into the `gemm` crate
//! with the strides that read each operand in place (no transposed copies).
//! `x` and `y` are row-major `[rows, in]` and `[rows, out]`; `W` is Hugging
//! Face's `[out, in]`.

use crate::engine::{gemm_strided as product, View};
use rayon::prelude::*;

/// `y[rows, out] = x W^T + b` (no bias when `b` is `None`).
pub fn forward(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    rows: usize,
    out: usize,
    inp: usize,
) {
    if let Some(b) = b {
        y[..rows * out]
            .par_chunks_mut(out)
            .for_each(|r| r.copy_from_slice(b));
    }
    product(
        y,
        b.is_some(),
        1.0,
        View {
            data: x,
            row_stride: inp,
            col_stride: 1,
        },
        View {
            data: w,
            row_stride: 1,
            col_stride: inp,
        },
        rows,
        out,
        inp,
    );
}

/// `y[rows, out] += scale x W^T`.
#[allow(clippy::too_many_arguments)]
pub fn forward_add(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    scale: f32,
    rows: usize,
    out: usize,
    inp: usize,
) {
    product(
        y,
        true,
        scale,
        View {
            data: x,
            row_stride: inp,
            col_stride: 1,
        },
        View {
            data: w,
            row_stride: 1,
            col_stride: inp,
        },
        rows,
        out,
        inp,
    );
}

/// `dx[rows, in] (+)= scale dy W`.
#[allow(clippy::too_many_arguments)]
pub fn backward_input(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    accumulate: bool,
    scale: f32,
    rows: usize,
    out: usize,
    inp: usize,
) {
    product(
        dx,
        accumulate,
        scale,
        View {
            data: dy,
            row_stride: out,
            col_stride: 1,
        },
        View {
            data: w,
            row_stride: inp,
            col_stride: 1,
        },
        rows,
        inp,
        out,
    );
}

/// `dw[out, in] = scale dy^T x`.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    scale: f32,
    rows: usize,
    out: usize,
    inp: usize,
) {
    product(
        dw,
        false,
        scale,
        View {
            data: dy,
            row_stride: 1,
            col_stride: out,
        },
        View {
            data: x,
            row_stride: inp,
            col_stride: 1,
        },
        out,
        inp,
        rows,
    );
}

/// `db[out] = sum over rows of dy`.
pub fn backward_bias(dy: &[f32], out: usize) -> Vec<f32> {
    let mut db = vec![0f32; out];
    for r in dy.chunks_exact(out) {
        db.iter_mut().zip(r).for_each(|(d, g)| *d += g);
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104729) % 23) as f32 / 7.0 - 1.5)
            .collect()
    }

    #[test]
    fn the_four_products_match_naive_loops() {
        let (rows, out, inp) = (7, 5, 9);
        let (x, w, b, dy) = (
            data(rows * inp, 1),
            data(out * inp, 2),
            data(out, 3),
            data(rows * out, 4),
        );
        let mut y = vec![0f32; rows * out];
        forward(&x, &w, Some(&b), &mut y, rows, out, inp);
        let mut y2 = y.clone();
        forward_add(&x, &w, &mut y2, -2.0, rows, out, inp); // y - 2 x W^T
        let mut dx = vec![1f32; rows * inp]; // accumulated into
        backward_input(&dy, &w, &mut dx, true, 0.5, rows, out, inp);
        let mut dw = vec![9f32; out * inp]; // overwritten
        backward_weight(&dy, &x, &mut dw, 3.0, rows, out, inp);
        let db = backward_bias(&dy, out);
        for r in 0..rows {
            for o in 0..out {
                let want = b[o]
                    + (0..inp)
                        .map(|i| x[r * inp + i] * w[o * inp + i])
                        .sum::<f32>();
                assert!((y[r * out + o] - want).abs() < 1e-4);
                assert!((y2[r * out + o] - (2.0 * b[o] - want)).abs() < 1e-4);
            }
            for i in 0..inp {
                let want = 1.0
                    + 0.5
                        * (0..out)
                            .map(|o| dy[r * out + o] * w[o * inp + i])
                            .sum::<f32>();
                assert!((dx[r * inp + i] - want).abs() < 1e-4);
            }
        }
        for o in 0..out {
            for i in 0..inp {
                let want: f32 = 3.0
                    * (0..rows)
                        .map(|r| dy[r * out + o] * x[r * inp + i])
                        .sum::<f32>();
                assert!((dw[o * inp + i] - want).abs() < 1e-4);
            }
            let want: f32 = (0..rows).map(|r| dy[r * out + o]).sum();
            assert!((db[o] - want).abs() < 1e-5);
        }
    }
}
