//! Multi-head self-attention over packed sentences for the native training
//! step, with attention-probability dropout, forward and backward. The
//! probabilities are recomputed in backward rather than stored (attention
//! is about 2% of a step's arithmetic at these lengths), and the dropout
//! mask is redrawn from its seed. Per sentence and head, with `S = Q K^T /
//! sqrt(d)`, `P = softmax(S)`, `D = P * mask`, `O = D V`:
//! `dV = D^T dO`, `dD = dO V^T`, `dP = dD * mask`,
//! `dS = P * (dP - rowsum(dP * P))`, `dQ = dS K / sqrt(d)`, `dK = dS^T Q / sqrt(d)`.

use super::dropout::Mask;
use crate::engine::attention::Packing;
use crate::engine::simd::{dot, simd_fn, softmax_rows};
use rayon::prelude::*;

/// Shapes shared by forward and backward.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub hidden: usize,
    pub heads: usize,
    /// All packed rows of the batch (for mask indices).
    pub rows: usize,
}

/// The mask index of probability (row `r` of the batch, key `j`) in head `h`.
#[inline(always)]
fn mask_index(h: usize, rows: usize, r: usize, j: usize) -> u64 {
    (((h * rows + r) as u64) << 20) | j as u64
}

/// Cut `buf` (rows of `width`) into one slice per sentence.
fn per_sentence<'a>(buf: &'a mut [f32], packing: &Packing, width: usize) -> Vec<(usize, &'a mut [f32])> {
    let mut parts = Vec::with_capacity(packing.sentences());
    let mut rest = buf;
    for s in 0..packing.sentences() {
        let len = packing.starts[s + 1] - packing.starts[s];
        let (mine, tail) = rest.split_at_mut(len * width);
        parts.push((packing.starts[s], mine));
        rest = tail;
    }
    parts
}

/// One head's slice of rows `r0..r0+len` of `x`, gathered `[len, d]`, and transposed `[d, len]`.
fn gather(x: &[f32], r0: usize, len: usize, hidden: usize, off: usize, d: usize, out: &mut [f32], out_t: Option<&mut [f32]>) {
    for i in 0..len {
        out[i * d..(i + 1) * d].copy_from_slice(&x[(r0 + i) * hidden + off..(r0 + i) * hidden + off + d]);
    }
    if let Some(t) = out_t {
        for i in 0..len {
            for c in 0..d {
                t[c * len + i] = out[i * d + c];
            }
        }
    }
}

simd_fn! {
    /// `p[len, len] = softmax(q k^T * scale)` with `k_t` `[d, len]`.
    fn probabilities(q: &[f32], k_t: &[f32], p: &mut [f32], len: usize, d: usize, scale: f32) {
        for i in 0..len {
            let row = &mut p[i * len..(i + 1) * len];
            row.iter_mut().for_each(|v| *v = 0.0);
            for c in 0..d {
                let qc = q[i * d + c] * scale;
                row.iter_mut().zip(&k_t[c * len..(c + 1) * len]).for_each(|(s, k)| *s += qc * k);
            }
        }
        softmax_rows(p, len);
    }
}

simd_fn! {
    /// `out[len, d] = a[len, len] b[len, d]` (`+=` when `acc`), scaled.
    fn mat_mul(a: &[f32], b: &[f32], out: &mut [f32], len: usize, d: usize, scale: f32) {
        for i in 0..len {
            let o = &mut out[i * d..(i + 1) * d];
            for j in 0..len {
                let w = a[i * len + j] * scale;
                o.iter_mut().zip(&b[j * d..(j + 1) * d]).for_each(|(o, b)| *o += w * b);
            }
        }
    }
}

simd_fn! {
    /// `out[len, d] = a[len, len]^T b[len, d]`, scaled, added into `out`.
    fn mat_mul_t(a: &[f32], b: &[f32], out: &mut [f32], len: usize, d: usize, scale: f32) {
        for i in 0..len {
            let bi = &b[i * d..(i + 1) * d];
            for j in 0..len {
                let w = a[i * len + j] * scale;
                out[j * d..(j + 1) * d].iter_mut().zip(bi).for_each(|(o, b)| *o += w * b);
            }
        }
    }
}

/// Buffers for one sentence and head.
struct Scratch {
    q: Vec<f32>,
    k: Vec<f32>,
    k_t: Vec<f32>,
    v: Vec<f32>,
    v_t: Vec<f32>,
    p: Vec<f32>,
    dropped: Vec<f32>,
    o: Vec<f32>,
}

impl Scratch {
    fn new(len: usize, d: usize) -> Self {
        let z = |n| vec![0f32; n];
        Scratch { q: z(len * d), k: z(len * d), k_t: z(len * d), v: z(len * d), v_t: z(len * d), p: z(len * len), dropped: z(len * len), o: z(len * d) }
    }

    /// Gather head `h` of a sentence and compute its probabilities and the
    /// dropped-out probabilities.
    #[allow(clippy::too_many_arguments)]
    fn load(&mut self, q: &[f32], k: &[f32], v: &[f32], r0: usize, len: usize, h: usize, dims: Dims, mask: &Mask, need_v_t: bool) {
        let d = dims.hidden / dims.heads;
        let off = h * d;
        gather(q, r0, len, dims.hidden, off, d, &mut self.q, None);
        gather(k, r0, len, dims.hidden, off, d, &mut self.k, Some(&mut self.k_t));
        gather(v, r0, len, dims.hidden, off, d, &mut self.v, need_v_t.then_some(&mut self.v_t[..]));
        probabilities(&self.q, &self.k_t, &mut self.p, len, d, 1.0 / (d as f32).sqrt());
        self.dropped.copy_from_slice(&self.p);
        if mask.is_active() {
            for i in 0..len {
                for j in 0..len {
                    self.dropped[i * len + j] *= mask.factor(mask_index(h, dims.rows, r0 + i, j));
                }
            }
        }
    }
}

/// `ctx[rows, hidden]` from packed `q`, `k`, `v` (each `[rows, hidden]`).
pub fn forward(q: &[f32], k: &[f32], v: &[f32], ctx: &mut [f32], packing: &Packing, dims: Dims, mask: &Mask) {
    let d = dims.hidden / dims.heads;
    per_sentence(ctx, packing, dims.hidden).into_par_iter().for_each(|(r0, out)| {
        let len = out.len() / dims.hidden;
        let mut s = Scratch::new(len, d);
        for h in 0..dims.heads {
            s.load(q, k, v, r0, len, h, dims, mask, false);
            s.o.iter_mut().for_each(|x| *x = 0.0);
            mat_mul(&s.dropped, &s.v, &mut s.o, len, d, 1.0);
            for i in 0..len {
                out[i * dims.hidden + h * d..i * dims.hidden + (h + 1) * d].copy_from_slice(&s.o[i * d..(i + 1) * d]);
            }
        }
    });
}

/// Gradients of `q`, `k` and `v` (each `[rows, hidden]`, overwritten) from
/// the gradient of the context `dctx`.
#[allow(clippy::too_many_arguments)]
pub fn backward(q: &[f32], k: &[f32], v: &[f32], dctx: &[f32], dq: &mut [f32], dk: &mut [f32], dv: &mut [f32], packing: &Packing, dims: Dims, mask: &Mask) {
    let d = dims.hidden / dims.heads;
    let hd = dims.hidden;
    let scale = 1.0 / (d as f32).sqrt();
    let parts = per_sentence(dq, packing, hd).into_iter().zip(per_sentence(dk, packing, hd)).zip(per_sentence(dv, packing, hd));
    parts.collect::<Vec<_>>().into_par_iter().for_each(|(((r0, dq), (_, dk)), (_, dv))| {
        let len = dq.len() / hd;
        let mut s = Scratch::new(len, d);
        let (mut d_o, mut dp, mut g) = (vec![0f32; len * d], vec![0f32; len * len], vec![0f32; len * d]);
        for h in 0..dims.heads {
            let off = h * d;
            s.load(q, k, v, r0, len, h, dims, mask, true);
            gather(dctx, r0, len, hd, off, d, &mut d_o, None);
            // dV = D^T dO
            g.iter_mut().for_each(|x| *x = 0.0);
            mat_mul_t(&s.dropped, &d_o, &mut g, len, d, 1.0);
            scatter(&g, dv, len, hd, off, d);
            // dD = dO V^T, then through the mask and the softmax.
            for i in 0..len {
                let row = &mut dp[i * len..(i + 1) * len];
                row.iter_mut().for_each(|x| *x = 0.0);
                for c in 0..d {
                    let a = d_o[i * d + c];
                    row.iter_mut().zip(&s.v_t[c * len..(c + 1) * len]).for_each(|(r, v)| *r += a * v);
                }
                if mask.is_active() {
                    for (j, r) in row.iter_mut().enumerate() {
                        *r *= mask.factor(mask_index(h, dims.rows, r0 + i, j));
                    }
                }
                let p = &s.p[i * len..(i + 1) * len];
                let sum = dot(row, p);
                row.iter_mut().zip(p).for_each(|(r, p)| *r = p * (*r - sum));
            }
            // dQ = dS K scale, dK = dS^T Q scale
            g.iter_mut().for_each(|x| *x = 0.0);
            mat_mul(&dp, &s.k, &mut g, len, d, scale);
            scatter(&g, dq, len, hd, off, d);
            g.iter_mut().for_each(|x| *x = 0.0);
            mat_mul_t(&dp, &s.q, &mut g, len, d, scale);
            scatter(&g, dk, len, hd, off, d);
        }
    });
}

/// Write a head's `[len, d]` block into columns `off..off+d` of `out`'s rows.
fn scatter(g: &[f32], out: &mut [f32], len: usize, hidden: usize, off: usize, d: usize) {
    for i in 0..len {
        out[i * hidden + off..i * hidden + off + d].copy_from_slice(&g[i * d..(i + 1) * d]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 + seed * 104729) % 31) as f32 / 15.0 - 1.0).collect()
    }

    /// sum(ctx * w) for the given inputs.
    fn objective(q: &[f32], k: &[f32], v: &[f32], w: &[f32], p: &Packing, dims: Dims, mask: &Mask) -> f64 {
        let mut ctx = vec![0f32; q.len()];
        forward(q, k, v, &mut ctx, p, dims, mask);
        ctx.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum()
    }

    #[test]
    fn gradients_match_finite_differences_with_dropout_on() {
        let p = Packing::new([3, 1, 5]);
        let dims = Dims { hidden: 8, heads: 2, rows: p.rows() };
        let n = p.rows() * dims.hidden;
        let (q, k, v, w) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
        for mask in [Mask::new(0.0, 0, true), Mask::new(0.3, 11, true)] {
            let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
            backward(&q, &k, &v, &w, &mut dq, &mut dk, &mut dv, &p, dims, &mask);
            for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
                for i in (0..n).step_by(5) {
                    let eps = 1e-2f32;
                    let mut ins = [q.clone(), k.clone(), v.clone()];
                    ins[which][i] += eps;
                    let up = objective(&ins[0], &ins[1], &ins[2], &w, &p, dims, &mask);
                    ins[which][i] -= 2.0 * eps;
                    let down = objective(&ins[0], &ins[1], &ins[2], &w, &p, dims, &mask);
                    let fd = (up - down) / (2.0 * eps as f64);
                    assert!((fd - grad[i] as f64).abs() < 2e-3, "input {which} element {i}: {fd} vs {}", grad[i]);
                }
            }
        }
    }

    #[test]
    fn sentences_do_not_mix() {
        // Changing sentence B's keys leaves sentence A's context alone.
        let p = Packing::new([2, 3]);
        let dims = Dims { hidden: 4, heads: 1, rows: 5 };
        let (q, mut k, v) = (data(20, 1), data(20, 2), data(20, 3));
        let mask = Mask::new(0.0, 0, false);
        let mut a = vec![0f32; 20];
        forward(&q, &k, &v, &mut a, &p, dims, &mask);
        k[12] += 3.0;
        let mut b = vec![0f32; 20];
        forward(&q, &k, &v, &mut b, &p, dims, &mask);
        assert_eq!(a[..8], b[..8]);
        assert_ne!(a[8..], b[8..]);
    }
}
