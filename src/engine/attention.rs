//! Multi-head self-attention over packed sequences: the tokens of a batch's
//! sentences are stored back to back with no padding, so every score is
//! between two real tokens of the same sentence and no mask is needed (the
//! padded computation masks with -1e9, whose softmax weight is exactly 0 in
//! f32, so the results are the same).

use super::head_matmul::{padded, scores, transpose_padded, weighted_sum};
use super::simd::softmax_rows;
use crate::model::spec::RelativeBiasSpec;
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

    /// Each sentence's first row of `x` (rows of `width`), one after
    /// another: `[sentences, width]`.
    pub fn first_rows(&self, x: &[f32], width: usize) -> Vec<f32> {
        self.starts[..self.sentences()]
            .iter()
            .flat_map(|&r| x[r * width..(r + 1) * width].iter().copied())
            .collect()
    }

    /// The reverse of [`Packing::first_rows`] for gradients: adds row `s` of
    /// `src` (`[sentences, width]`) into sentence `s`'s first row of `dst`.
    pub fn add_to_first_rows(&self, src: &[f32], width: usize, dst: &mut [f32]) {
        for (row, &r) in src.chunks_exact(width).zip(&self.starts) {
            dst[r * width..(r + 1) * width]
                .iter_mut()
                .zip(row)
                .for_each(|(d, s)| *d += s);
        }
    }
}

/// MPNet's relative-position bias laid out by distance: for head `h` and
/// `key - query = r` (|r| < `span`), the bias is `by_distance[h][r + span - 1]`,
/// the table's row for [`RelativeBiasSpec::bucket`]`(r)`. Depends only on the
/// distance, so packed sentences need no padding to get it.
#[derive(Debug, Clone)]
pub struct RelativeBias {
    span: usize,
    by_distance: Vec<f32>,
}

impl RelativeBias {
    /// From the `[buckets, heads]` table, for sentences up to `span` tokens.
    pub fn new(table: &[f32], heads: usize, span: usize) -> Self {
        let width = 2 * span - 1;
        let mut by_distance = vec![0f32; heads * width];
        for (i, r) in (-(span as isize - 1)..span as isize).enumerate() {
            let b = RelativeBiasSpec::bucket(r);
            for h in 0..heads {
                by_distance[h * width + i] = table[b * heads + h];
            }
        }
        RelativeBias { span, by_distance }
    }

    fn width(&self) -> usize {
        2 * self.span - 1
    }

    /// Add head `h`'s bias to the scores of a sentence's first `queries`
    /// tokens against all its `len` keys (`[queries, cols]`).
    pub(crate) fn add_queries(
        &self,
        h: usize,
        s: &mut [f32],
        queries: usize,
        len: usize,
        cols: usize,
    ) {
        let row = &self.by_distance[h * self.width()..(h + 1) * self.width()];
        for i in 0..queries {
            // key j, query i: index j - i + span - 1, contiguous in j.
            let from = self.span - 1 - i;
            s[i * cols..i * cols + len]
                .iter_mut()
                .zip(&row[from..from + len])
                .for_each(|(a, b)| *a += b);
        }
    }

    /// The gradient of the `[buckets, heads]` table from gradients laid out
    /// like the bias (`[heads][distance]`, [`Self::distance_grad`]).
    pub fn table_grad(&self, by_distance: &[f32], buckets: usize) -> Vec<f32> {
        let width = self.width();
        let heads = self.by_distance.len() / width;
        let mut g = vec![0f32; buckets * heads];
        for (i, r) in (-(self.span as isize - 1)..self.span as isize).enumerate() {
            let b = RelativeBiasSpec::bucket(r);
            for h in 0..heads {
                g[b * heads + h] += by_distance[h * width + i];
            }
        }
        g
    }

    /// A zeroed gradient laid out like the bias.
    pub fn distance_grad(&self) -> Vec<f32> {
        vec![0f32; self.by_distance.len()]
    }

    /// Add the `[queries, cols]` score gradient of head `h` (a sentence's
    /// first `queries` tokens against its `len` keys) into `grad` (laid out
    /// like the bias).
    pub(crate) fn accumulate_queries(
        &self,
        h: usize,
        ds: &[f32],
        queries: usize,
        len: usize,
        cols: usize,
        grad: &mut [f32],
    ) {
        let width = self.width();
        let row = &mut grad[h * width..(h + 1) * width];
        for i in 0..queries {
            let from = self.span - 1 - i;
            row[from..from + len]
                .iter_mut()
                .zip(&ds[i * cols..i * cols + len])
                .for_each(|(a, b)| *a += b);
        }
    }
}

/// `ctx[T, hidden] = softmax(Q K^T / sqrt(d) + B) V` per sentence and head,
/// where `qkv[T, 3 * hidden]` holds each token's query, key and value side by
/// side and `B` is MPNet's relative-position bias (absent elsewhere).
pub fn attention(
    qkv: &[f32],
    ctx: &mut [f32],
    packing: &Packing,
    hidden: usize,
    heads: usize,
    bias: Option<&RelativeBias>,
) {
    packing
        .split_rows(ctx, hidden)
        .into_par_iter()
        .for_each(|(start, out)| {
            let len = out.len() / hidden;
            let rows = &qkv[start * 3 * hidden..(start + len) * 3 * hidden];
            attend(rows, out, len, len, hidden, heads, bias);
        });
}

/// [`attention`] for each sentence's first token only: `ctx[sentences,
/// hidden]` is what its first query gathers from all the sentence's keys and
/// values. A sentence classifier reads nothing else from the last layer.
pub fn attention_first(
    qkv: &[f32],
    ctx: &mut [f32],
    packing: &Packing,
    hidden: usize,
    heads: usize,
    bias: Option<&RelativeBias>,
) {
    ctx.par_chunks_mut(hidden).enumerate().for_each(|(s, out)| {
        let (start, end) = (packing.starts[s], packing.starts[s + 1]);
        let rows = &qkv[start * 3 * hidden..end * 3 * hidden];
        attend(rows, out, 1, end - start, hidden, heads, bias);
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

/// Attention for the first `queries` tokens of one sentence of `len`
/// tokens, head by head: scores against the keys transposed and padded,
/// softmax over the real columns, then the weighted sum of the values
/// ([`super::head_matmul`]). `out` is `[queries, hidden]`.
fn attend(
    qkv: &[f32],
    out: &mut [f32],
    queries: usize,
    len: usize,
    hidden: usize,
    heads: usize,
    bias: Option<&RelativeBias>,
) {
    let d = hidden / heads;
    let cols = padded(len);
    let stride = 3 * hidden;
    let (mut q, mut k, mut v) = (
        vec![0f32; queries * d],
        vec![0f32; len * d],
        vec![0f32; len * d],
    );
    let (mut k_t, mut s, mut o) = (
        vec![0f32; d * cols],
        vec![0f32; queries * cols],
        vec![0f32; queries * d],
    );
    for h in 0..heads {
        for (buf, off, n) in [
            (&mut q, h * d, queries),
            (&mut k, hidden + h * d, len),
            (&mut v, 2 * hidden + h * d, len),
        ] {
            for i in 0..n {
                buf[i * d..(i + 1) * d]
                    .copy_from_slice(&qkv[i * stride + off..i * stride + off + d]);
            }
        }
        transpose_padded(&k, len, d, cols, &mut k_t);
        scores(&q, &k_t, &mut s, queries, cols, d, 1.0 / (d as f32).sqrt());
        if let Some(b) = bias {
            b.add_queries(h, &mut s, queries, len, cols);
        }
        mask_padding(&mut s, len, cols);
        softmax_rows(&mut s, cols);
        weighted_sum(&s, &v, &mut o, queries, len, cols, d, 1.0);
        for i in 0..queries {
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
        attention(&qkv, &mut ctx, &p, 2, 1, None);
        let want = [7.0, -7.0, 4.0, 2.0, 4.0, 2.0];
        for (a, b) in ctx.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{ctx:?}");
        }
    }

    #[test]
    fn the_first_tokens_attention_is_the_first_row_of_the_full_one() {
        // Two heads of 16 over sentences of 1, 5 and 19 tokens, with and
        // without a relative-position bias.
        let (hidden, heads) = (32, 2);
        let p = Packing::new([1, 5, 19]);
        let qkv: Vec<f32> = (0..p.rows() * 3 * hidden)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let table: Vec<f32> = (0..32 * heads).map(|i| (i as f32 * 0.37).sin()).collect();
        let rel = RelativeBias::new(&table, heads, 32);
        for bias in [None, Some(&rel)] {
            let mut full = vec![0f32; p.rows() * hidden];
            attention(&qkv, &mut full, &p, hidden, heads, bias);
            let mut first = vec![0f32; p.sentences() * hidden];
            attention_first(&qkv, &mut first, &p, hidden, heads, bias);
            for s in 0..p.sentences() {
                let want = &full[p.starts[s] * hidden..(p.starts[s] + 1) * hidden];
                assert_eq!(&first[s * hidden..(s + 1) * hidden], want, "sentence {s}");
            }
        }
    }
}
