//! Multi-head self-attention over packed sentences for the native training
//! step, with attention-probability dropout, forward and backward. Forward
//! keeps each head's probabilities and dropped-out probabilities (about
//! 1.5 MB a layer for a batch of 16 news sentences) for backward. Per sentence and head, with `S = Q K^T /
//! sqrt(d)`, `P = softmax(S)`, `D = P * mask`, `O = D V`:
//! `dV = D^T dO`, `dD = dO V^T`, `dP = dD * mask`,
//! `dS = P * (dP - rowsum(dP * P))`, `dQ = dS K / sqrt(d)`, `dK = dS^T Q / sqrt(d)`.
//! With MPNet's relative-position bias `B` (`S = Q K^T / sqrt(d) + B`), the
//! bias's gradient is `dS` summed over the pairs at each distance.

use crate::engine::attention::mask_padding;
use crate::engine::attention::{Packing, RelativeBias};
use crate::engine::head_matmul::{padded, scores, transpose_padded, weighted_sum};
use crate::engine::simd::{dot, softmax_rows};
use crate::model::dropout::{attention_index, Mask};
use rayon::prelude::*;

/// Shapes shared by forward and backward.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub hidden: usize,
    pub heads: usize,
    /// All packed rows of the batch (for mask indices).
    pub rows: usize,
    /// Only each sentence's first token queries: `q`, `ctx` and `dq` are
    /// `[sentences, hidden]` (keys and values still every row). A
    /// sentence head's last layer needs nothing else.
    pub first_only: bool,
}

impl Dims {
    /// The query rows of `buf` (`[rows or sentences, hidden]`) cut per
    /// sentence: `(first query row, first key row, tokens, rows)`.
    fn queries<'a>(
        &self,
        packing: &Packing,
        buf: &'a mut [f32],
    ) -> Vec<(usize, usize, usize, &'a mut [f32])> {
        if self.first_only {
            buf.chunks_mut(self.hidden)
                .enumerate()
                .map(|(s, out)| {
                    (
                        s,
                        packing.starts[s],
                        packing.starts[s + 1] - packing.starts[s],
                        out,
                    )
                })
                .collect()
        } else {
            packing
                .split_rows(buf, self.hidden)
                .into_iter()
                .map(|(r0, out)| (r0, r0, out.len() / self.hidden, out))
                .collect()
        }
    }

    fn query_count(&self, len: usize) -> usize {
        if self.first_only {
            1
        } else {
            len
        }
    }
}

/// What the attention reads besides `q`, `k` and `v`: the probability
/// dropout and MPNet's relative-position bias.
#[derive(Clone, Copy)]
pub struct Extras<'a> {
    pub mask: &'a Mask,
    pub bias: Option<&'a RelativeBias>,
}

/// One head's slice of rows `r0..r0+len` of `x`, gathered `[len, d]`.
fn gather(x: &[f32], r0: usize, len: usize, hidden: usize, off: usize, d: usize, out: &mut [f32]) {
    for i in 0..len {
        out[i * d..(i + 1) * d]
            .copy_from_slice(&x[(r0 + i) * hidden + off..(r0 + i) * hidden + off + d]);
    }
}

/// Write a head's `[len, d]` block into columns `off..off+d` of `out`'s rows.
fn scatter(g: &[f32], out: &mut [f32], len: usize, hidden: usize, off: usize, d: usize) {
    for i in 0..len {
        out[i * hidden + off..i * hidden + off + d].copy_from_slice(&g[i * d..(i + 1) * d]);
    }
}

/// `dst[j][i] = src[i][j]` for `i < rows`, `j < len`, rows `cols` apart.
fn transpose(src: &[f32], dst: &mut [f32], rows: usize, len: usize, cols: usize) {
    for i in 0..rows {
        for j in 0..len {
            dst[j * cols + i] = src[i * cols + j];
        }
    }
}

/// One head of one sentence, gathered: `q` `[queries, d]`, `k`, `v`
/// `[len, d]` and a `[d, cols]` buffer for a transposed operand;
/// score-shaped buffers are `[queries, cols]` with `cols` padded to the
/// kernels' block width.
struct Head {
    queries: usize,
    len: usize,
    cols: usize,
    d: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    t: Vec<f32>,
}

impl Head {
    fn new(queries: usize, len: usize, d: usize) -> Self {
        let cols = padded(len);
        let z = |n| vec![0f32; n];
        Head {
            queries,
            len,
            cols,
            d,
            q: z(queries * d),
            k: z(len * d),
            v: z(len * d),
            t: z(d * cols),
        }
    }

    /// Head `h` of the queries from row `q0` and the keys and values from row `r0`.
    #[allow(clippy::too_many_arguments)]
    fn gather(
        &mut self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        q0: usize,
        r0: usize,
        h: usize,
        hidden: usize,
    ) {
        let (len, d) = (self.len, self.d);
        gather(q, q0, self.queries, hidden, h * d, d, &mut self.q);
        gather(k, r0, len, hidden, h * d, d, &mut self.k);
        gather(v, r0, len, hidden, h * d, d, &mut self.v);
    }

    /// The head's probabilities `p` and dropped-out probabilities `dropped`.
    fn probabilities(
        &mut self,
        r0: usize,
        h: usize,
        dims: Dims,
        x: Extras,
        p: &mut [f32],
        dropped: &mut [f32],
    ) {
        let (nq, len, cols, d, mask) = (self.queries, self.len, self.cols, self.d, x.mask);
        transpose_padded(&self.k, len, d, cols, &mut self.t);
        scores(&self.q, &self.t, p, nq, cols, d, 1.0 / (d as f32).sqrt());
        if let Some(b) = x.bias {
            b.add_queries(h, p, nq, len, cols);
        }
        mask_padding(p, len, cols);
        softmax_rows(p, cols);
        dropped.copy_from_slice(p);
        if mask.is_active() {
            for i in 0..nq {
                for j in 0..len {
                    dropped[i * cols + j] *= mask.factor(attention_index(h, dims.rows, r0 + i, j));
                }
            }
        }
    }
}

/// What forward keeps for backward: per sentence, the probabilities and the
/// dropped-out probabilities of every head (`[heads, queries, cols]` each).
pub struct Saved {
    sentences: Vec<(Vec<f32>, Vec<f32>)>,
}

/// `ctx[rows, hidden]` from packed `q`, `k`, `v` (each `[rows, hidden]`);
/// with [`Dims::first_only`], `q` and `ctx` are `[sentences, hidden]`.
pub fn forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx: &mut [f32],
    packing: &Packing,
    dims: Dims,
    x: Extras,
) -> Saved {
    let d = dims.hidden / dims.heads;
    let sentences = dims
        .queries(packing, ctx)
        .into_par_iter()
        .map(|(q0, r0, len, out)| {
            let nq = dims.query_count(len);
            let mut s = Head::new(nq, len, d);
            let block = nq * s.cols;
            let (mut p, mut dropped) = (
                vec![0f32; dims.heads * block],
                vec![0f32; dims.heads * block],
            );
            let mut o = vec![0f32; nq * d];
            for h in 0..dims.heads {
                let (ph, dh) = (
                    &mut p[h * block..(h + 1) * block],
                    &mut dropped[h * block..(h + 1) * block],
                );
                s.gather(q, k, v, q0, r0, h, dims.hidden);
                s.probabilities(r0, h, dims, x, ph, dh);
                weighted_sum(dh, &s.v, &mut o, nq, len, s.cols, d, 1.0);
                scatter(&o, out, nq, dims.hidden, h * d, d);
            }
            (p, dropped)
        })
        .collect();
    Saved { sentences }
}

/// Gradients of `q`, `k` and `v` (each `[rows, hidden]`, overwritten) from
/// the gradient of the context `dctx`; with a relative-position bias, also
/// its gradient laid out by distance ([`RelativeBias::distance_grad`]).
/// With [`Dims::first_only`], `q`, `dctx` and `dq` are `[sentences, hidden]`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    saved: &Saved,
    dctx: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    packing: &Packing,
    dims: Dims,
    x: Extras,
) -> Option<Vec<f32>> {
    let mask = x.mask;
    let d = dims.hidden / dims.heads;
    let hd = dims.hidden;
    let scale = 1.0 / (d as f32).sqrt();
    let keep_scale = mask.factor_kept();
    let parts = dims
        .queries(packing, dq)
        .into_iter()
        .zip(packing.split_rows(dk, hd))
        .zip(packing.split_rows(dv, hd))
        .zip(&saved.sentences);
    let bias_grads: Vec<Option<Vec<f32>>> = parts
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(
            |((((q0, r0, len, dq), (_, dk)), (_, dv)), (p_all, dropped_all))| {
                let mut bias_grad = x.bias.map(RelativeBias::distance_grad);
                let nq = dims.query_count(len);
                let mut s = Head::new(nq, len, d);
                let cols = s.cols;
                let block = nq * cols;
                let (mut d_o, mut dp, mut tr, mut g, mut gq) = (
                    vec![0f32; nq * d],
                    vec![0f32; nq * cols],
                    vec![0f32; len * cols],
                    vec![0f32; len * d],
                    vec![0f32; nq * d],
                );
                for h in 0..dims.heads {
                    let off = h * d;
                    let (p, dropped) = (
                        &p_all[h * block..(h + 1) * block],
                        &dropped_all[h * block..(h + 1) * block],
                    );
                    s.gather(q, k, v, q0, r0, h, hd);
                    gather(dctx, q0, nq, hd, off, d, &mut d_o);
                    // dV = D^T dO
                    transpose(dropped, &mut tr, nq, len, cols);
                    weighted_sum(&tr, &d_o, &mut g, len, nq, cols, d, 1.0);
                    scatter(&g, dv, len, hd, off, d);
                    // dD = dO V^T, then through the mask and the softmax (zero on
                    // the padding, where P is 0). Where P > 0 an element was kept
                    // exactly when its dropped-out probability is non-zero; where
                    // P = 0 the mask does not matter, as dS = P (...) = 0.
                    transpose_padded(&s.v, len, d, cols, &mut s.t);
                    scores(&d_o, &s.t, &mut dp, nq, cols, d, 1.0);
                    for i in 0..nq {
                        let row = &mut dp[i * cols..(i + 1) * cols];
                        if mask.is_active() {
                            row.iter_mut()
                                .zip(&dropped[i * cols..(i + 1) * cols])
                                .for_each(|(r, dr)| {
                                    *r *= if *dr != 0.0 { keep_scale } else { 0.0 }
                                });
                        }
                        let p = &p[i * cols..(i + 1) * cols];
                        let sum = dot(row, p);
                        row.iter_mut().zip(p).for_each(|(r, p)| *r = p * (*r - sum));
                    }
                    if let (Some(b), Some(g)) = (x.bias, bias_grad.as_mut()) {
                        b.accumulate_queries(h, &dp, nq, len, cols, g);
                    }
                    // dQ = dS K scale, dK = dS^T Q scale
                    weighted_sum(&dp, &s.k, &mut gq, nq, len, cols, d, scale);
                    scatter(&gq, dq, nq, hd, off, d);
                    transpose(&dp, &mut tr, nq, len, cols);
                    weighted_sum(&tr, &s.q, &mut g, len, nq, cols, d, scale);
                    scatter(&g, dk, len, hd, off, d);
                }
                bias_grad
            },
        )
        .collect();
    bias_grads.into_iter().flatten().reduce(|mut a, b| {
        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        a
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104729) % 31) as f32 / 15.0 - 1.0)
            .collect()
    }

    /// sum(ctx * w) for the given inputs.
    fn objective(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        w: &[f32],
        p: &Packing,
        dims: Dims,
        mask: &Mask,
    ) -> f64 {
        let mut ctx = vec![0f32; w.len()];
        let _ = forward(q, k, v, &mut ctx, p, dims, Extras { mask, bias: None });
        ctx.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum()
    }

    #[test]
    fn gradients_match_finite_differences_with_dropout_on() {
        // Every query, and each sentence's first query alone (a sentence
        // head's last layer): there q, ctx and dq have one row per sentence.
        let p = Packing::new([3, 1, 5]);
        for first_only in [false, true] {
            let dims = Dims {
                hidden: 8,
                heads: 2,
                rows: p.rows(),
                first_only,
            };
            let n = p.rows() * dims.hidden;
            let nq = if first_only {
                p.sentences() * dims.hidden
            } else {
                n
            };
            let (q, k, v, w) = (data(nq, 1), data(n, 2), data(n, 3), data(nq, 4));
            for mask in [Mask::new(0.0, 0, true), Mask::new(0.3, 11, true)] {
                let (mut dq, mut dk, mut dv) = (vec![0f32; nq], vec![0f32; n], vec![0f32; n]);
                let x = Extras {
                    mask: &mask,
                    bias: None,
                };
                let saved = forward(&q, &k, &v, &mut vec![0f32; nq], &p, dims, x);
                backward(
                    &q, &k, &v, &saved, &w, &mut dq, &mut dk, &mut dv, &p, dims, x,
                );
                for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
                    for i in (0..grad.len()).step_by(3) {
                        let eps = 1e-2f32;
                        let mut ins = [q.clone(), k.clone(), v.clone()];
                        ins[which][i] += eps;
                        let up = objective(&ins[0], &ins[1], &ins[2], &w, &p, dims, &mask);
                        ins[which][i] -= 2.0 * eps;
                        let down = objective(&ins[0], &ins[1], &ins[2], &w, &p, dims, &mask);
                        let fd = (up - down) / (2.0 * eps as f64);
                        assert!(
                            (fd - grad[i] as f64).abs() < 2e-3,
                            "first only {first_only}, input {which} element {i}: {fd} vs {}",
                            grad[i]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_first_query_alone_gives_the_first_rows_of_every_query() {
        let p = Packing::new([4, 2, 7]);
        let all = Dims {
            hidden: 8,
            heads: 2,
            rows: p.rows(),
            first_only: false,
        };
        let first = Dims {
            first_only: true,
            ..all
        };
        let n = p.rows() * 8;
        let (q, k, v) = (data(n, 5), data(n, 6), data(n, 7));
        let q_first: Vec<f32> = (0..p.sentences())
            .flat_map(|s| q[p.starts[s] * 8..(p.starts[s] + 1) * 8].to_vec())
            .collect();
        let mask = Mask::new(0.3, 5, true);
        let x = Extras {
            mask: &mask,
            bias: None,
        };
        let mut full = vec![0f32; n];
        let _ = forward(&q, &k, &v, &mut full, &p, all, x);
        let mut one = vec![0f32; p.sentences() * 8];
        let _ = forward(&q_first, &k, &v, &mut one, &p, first, x);
        for s in 0..p.sentences() {
            assert_eq!(
                one[s * 8..(s + 1) * 8],
                full[p.starts[s] * 8..(p.starts[s] + 1) * 8]
            );
        }
    }

    #[test]
    fn sentences_do_not_mix() {
        // Changing sentence B's keys leaves sentence A's context alone.
        let p = Packing::new([2, 3]);
        let dims = Dims {
            hidden: 4,
            heads: 1,
            rows: 5,
            first_only: false,
        };
        let (q, mut k, v) = (data(20, 1), data(20, 2), data(20, 3));
        let mask = Mask::new(0.0, 0, false);
        let x = Extras {
            mask: &mask,
            bias: None,
        };
        let mut a = vec![0f32; 20];
        let _ = forward(&q, &k, &v, &mut a, &p, dims, x);
        k[12] += 3.0;
        let mut b = vec![0f32; 20];
        let _ = forward(&q, &k, &v, &mut b, &p, dims, x);
        assert_eq!(a[..8], b[..8]);
        assert_ne!(a[8..], b[8..]);
    }
}
