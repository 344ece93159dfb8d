//! Multi-head self-attention over packed sequences: the tokens of a batch's
//! sentences are stored back to back with no padding, so every score is
//! between two real tokens of the same sentence and no mask is needed (the
//! padded computation masks with -1e9, whose softmax weight is exactly 0 in
//! f32, so the results are the same).

use super::simd::{simd_fn, softmax_rows};
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
}

/// `ctx[T, hidden] = softmax(Q K^T / sqrt(d)) V` per sentence and head, where
/// `qkv[T, 3 * hidden]` holds each token's query, key and value side by side.
pub fn attention(qkv: &[f32], ctx: &mut [f32], packing: &Packing, hidden: usize, heads: usize) {
    // Split ctx into one mutable slice per sentence, then run sentences in parallel.
    let mut parts: Vec<(usize, &mut [f32])> = Vec::with_capacity(packing.sentences());
    let mut rest = ctx;
    for s in 0..packing.sentences() {
        let len = packing.starts[s + 1] - packing.starts[s];
        let (mine, tail) = rest.split_at_mut(len * hidden);
        parts.push((packing.starts[s], mine));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(start, out)| {
        let len = out.len() / hidden;
        let rows = &qkv[start * 3 * hidden..(start + len) * 3 * hidden];
        let mut scores = vec![0f32; len * len];
        let mut keys_t = vec![0f32; len * hidden / heads];
        attend(rows, out, &mut scores, &mut keys_t, len, hidden, heads);
    });
}

simd_fn! {
    /// Attention for one sentence of `len` tokens. Scores are built a row
    /// at a time against the head's keys transposed (`keys_t[d][len]`), so
    /// the inner loop runs along the row.
    fn attend(qkv: &[f32], out: &mut [f32], scores: &mut [f32], keys_t: &mut [f32], len: usize, hidden: usize, heads: usize) {
        let d = hidden / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let stride = 3 * hidden;
        out.iter_mut().for_each(|v| *v = 0.0);
        for h in 0..heads {
            let (qo, ko, vo) = (h * d, hidden + h * d, 2 * hidden + h * d);
            for j in 0..len {
                for c in 0..d {
                    keys_t[c * len + j] = qkv[j * stride + ko + c];
                }
            }
            for i in 0..len {
                let q = &qkv[i * stride + qo..i * stride + qo + d];
                let row = &mut scores[i * len..(i + 1) * len];
                row.iter_mut().for_each(|v| *v = 0.0);
                for (c, &qc) in q.iter().enumerate() {
                    let qc = qc * scale;
                    row.iter_mut().zip(&keys_t[c * len..(c + 1) * len]).for_each(|(s, k)| *s += qc * k);
                }
            }
            softmax_rows(scores, len);
            for i in 0..len {
                let o = &mut out[i * hidden + h * d..i * hidden + h * d + d];
                for j in 0..len {
                    let p = scores[i * len + j];
                    let v = &qkv[j * stride + vo..j * stride + vo + d];
                    o.iter_mut().zip(v).for_each(|(a, b)| *a += p * b);
                }
            }
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
