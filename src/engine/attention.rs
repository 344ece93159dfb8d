//! Multi-head self-attention over packed sequences: the tokens of a batch's
//! sentences are stored back to back with no padding, so every score is
//! between two real tokens of the same sentence and no mask is needed (the
//! padded computation masks with -1e9, whose softmax weight is exactly 0 in
//! f32, so the results are the same).

use super::head_matmul::{padded, scores, transpose_padded, weighted_sum};
use super::simd::softmax_rows;
use rayon::prelude::*;

/// Where each sentence's tokens lie in the packed rows.
#[derive(Debug, Clone)]
pub struct Packing {
    /// First row of each sentence, plus the total row count at the end.
    pub starts: Vec<usize>,
}

impl Packing {
    pub fn new(lengths: impl IntoIterator<Item = usize>) -> Self {
        let mut starts = vec![0];
        for l in lengths {
            starts.push(starts[starts.len() - 1] + l);
        }
        Packing { starts }
    }

    pub fn rows(&self) -> usize {
        self.starts[self.starts.len() - 1]
    }

    pub fn sentences(&self) -> usize {
        self.starts.len() - 1
    }

    /// Cut `buf` (rows of `width`) into one mutable slice per sentence,
    /// each with its first row, so sentences can be worked on in parallel.
    pub fn split_rows<'a>(&self, buf: &'a mut [f32], width: usize) -> Vec<(usize, &'a mut [f32])> {
        let mut parts = Vec::with_capacity(self.sentences());
        let mut rest = buf;
        for s in 0..self.sentences() {
            let len = self.starts[s + 1] - self.starts[s];
            let (mine, tail) = rest.split_at_mut(len * width);
            parts.push((self.starts[s], mine));
            rest = tail;
        }
        parts
    }
}

/// `ctx[T, hidden] = softmax(Q K^T / sqrt(d)) V` per sentence and head, where
/// `qkv[T, 3 * hidden]` holds each token's query, key and value side by side.
pub fn attention(qkv: &[f32], ctx: &mut [f32], packing: &Packing, hidden: usize, heads: usize) {
    packing
        .split_rows(ctx, hidden)
        .into_par_iter()
        .for_each(|(start, out)| {
            let len = out.len() / hidden;
            let rows = &qkv[start * 3 * hidden..(start + len) * 3 * hidden];
            attend(rows, out, len, hidden, heads);
        });
}

/// Scores past the real columns to -inf, so one softmax over whole padded
/// rows (full vectors, no tails) gives them weight exactly 0.
pub(crate) fn mask_padding(s: &mut [f32], len: usize, cols: usize) {
    if cols > len {
        for row in s.chunks_exact_mut(cols) {
            row[len..].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
        }
    }
}

/// Attention for one sentence of `len` tokens, head by head: scores
/// against the keys transposed and padded, softmax over the real columns,
/// then the weighted sum of the values ([`super::head_matmul`]).
fn attend(qkv: &[f32], out: &mut [f32], len: usize, hidden: usize, heads: usize) {
    let d = hidden / heads;
    let cols = padded(len);
    let stride = 3 * hidden;
    let (mut q, mut k, mut v) = (
        vec![0f32; len * d],
        vec![0f32; len * d],
        vec![0f32; len * d],
    );
    let (mut k_t, mut s, mut o) = (
        vec![0f32; d * cols],
        vec![0f32; len * cols],
        vec![0f32; len * d],
    );
    for h in 0..heads {
        for (buf, off) in [
            (&mut q, h * d),
            (&mut k, hidden + h * d),
            (&mut v, 2 * hidden + h * d),
        ] {
            for i in 0..len {
                buf[i * d..(i + 1) * d]
                    .copy_from_slice(&qkv[i * stride + off..i * stride + off + d]);
            }
        }
        transpose_padded(&k, len, d, cols, &mut k_t);
        scores(&q, &k_t, &mut s, len, cols, d, 1.0 / (d as f32).sqrt());
        mask_padding(&mut s, len, cols);
        softmax_rows(&mut s, cols);
        weighted_sum(&s, &v, &mut o, len, len, cols, d, 1.0);
        for i in 0..len {
            out[i * hidden + h * d..i * hidden + (h + 1) * d]
                .copy_from_slice(&o[i * d..(i + 1) * d]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_attends_to_itself_and_sentences_do_not_mix() {
        // hidden 2, one head. Sentence A has one token: its context is its
        // own value. Sentence B has two tokens with equal keys, so each token
        // averages the two values whatever its query.
        let qkv = vec![
            1.0, 0.0, 5.0, 5.0, 7.0, -7.0, // A0: q, k, v
            0.3, 0.1, 1.0, 1.0, 2.0, 4.0, // B0
            -0.2, 0.9, 1.0, 1.0, 6.0, 0.0, // B1
        ];
        let p = Packing::new([1, 2]);
        assert_eq!((p.rows(), p.sentences()), (3, 2));
        let mut ctx = vec![0f32; 6];
        attention(&qkv, &mut ctx, &p, 2, 1);
        let want = [7.0, -7.0, 4.0, 2.0, 4.0, 2.0];
        for (a, b) in ctx.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{ctx:?}");
        }
    }
}
