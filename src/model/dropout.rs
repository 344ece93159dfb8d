//! The one dropout definition every executor uses: a mask is a seed (drawn
//! from the caller's seeded dropout stream, in a fixed order of sites) and
//! a counter-based hash of (seed, element index), so the same seed gives
//! the same mask in forward and backward without storing it, any element
//! can be drawn by any thread, and `--seed` reproduces a run. Elements are
//! numbered in the packed layout of the native training step (sentences
//! back to back, no padding); candle's reference graph builds its padded
//! masks from the same numbering, so both drop the same elements.

use crate::rng::Rng;
use candle_core::{Result, Tensor};
use rayon::prelude::*;

/// Whether element `i` is kept, for a mask drawn with `seed` (SplitMix64's
/// finaliser over seed + i times the golden ratio; the top 24 bits against
/// the keep probability).
#[inline(always)]
pub fn kept(seed: u64, i: u64, threshold: u32) -> bool {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as u32) < threshold
}

/// The mask index of attention probability (packed query row `r`, key `j`
/// of the same sentence) in head `h`, for a batch of `rows` packed rows.
#[inline(always)]
pub fn attention_index(h: usize, rows: usize, r: usize, j: usize) -> u64 {
    (((h * rows + r) as u64) << 20) | j as u64
}

/// One dropout site: probability `p` of zeroing, the mask's seed.
#[derive(Debug, Clone, Copy)]
pub struct Mask {
    pub seed: u64,
    threshold: u32,
    scale: f32,
    active: bool,
}

impl Mask {
    pub fn new(p: f64, seed: u64, train: bool) -> Self {
        let keep = 1.0 - p;
        Mask {
            seed,
            threshold: (keep * (1u64 << 24) as f64) as u32,
            scale: (1.0 / keep) as f32,
            active: train && p > 0.0,
        }
    }

    /// The next site's mask: active when a dropout stream is given and
    /// `p > 0`, and only then does it take a seed from the stream.
    pub fn draw(p: f64, rng: Option<&mut Rng>) -> Self {
        match rng {
            Some(rng) if p > 0.0 => Mask::new(p, rng.next_u64(), true),
            _ => Mask::new(p, 0, false),
        }
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The factor element `i` is multiplied by: 0 or 1 / (1 - p).
    #[inline(always)]
    pub fn factor(&self, i: u64) -> f32 {
        if !self.active {
            1.0
        } else if kept(self.seed, i, self.threshold) {
            self.scale
        } else {
            0.0
        }
    }

    /// The factor of a kept element (1 when the mask is off).
    pub fn factor_kept(&self) -> f32 {
        if self.active {
            self.scale
        } else {
            1.0
        }
    }

    /// `x <- x * mask`, element `j` of `x` being element `j` of the mask.
    pub fn apply(&self, x: &mut [f32]) {
        if !self.active {
            return;
        }
        const CHUNK: usize = 16384;
        x.par_chunks_mut(CHUNK).enumerate().for_each(|(c, xs)| {
            let base = (c * CHUNK) as u64;
            xs.iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v *= self.factor(base + j as u64));
        });
    }

    /// `x <- x * mask` for some rows of a `[rows, width]` site: `x` holds
    /// packed rows `rows[0]`, `rows[1]`, ... one after another.
    pub fn apply_at(&self, x: &mut [f32], rows: &[usize], width: usize) {
        if !self.active {
            return;
        }
        for (xs, &r) in x.chunks_exact_mut(width).zip(rows) {
            xs.iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v *= self.factor((r * width + j) as u64));
        }
    }

    /// For a padded `[b, t, width]` tensor of sentences of `lens` tokens:
    /// `x * mask`, a real token's element numbered by its packed row
    /// (padding is left as it is; nothing reads it).
    pub fn apply_padded(&self, x: &Tensor, lens: &[usize]) -> Result<Tensor> {
        if !self.active {
            return Ok(x.clone());
        }
        let (b, t, w) = x.dims3()?;
        let mut m = vec![1f32; b * t * w];
        let mut row = 0;
        for (s, &len) in lens.iter().enumerate() {
            for p in 0..len {
                let dst = &mut m[(s * t + p) * w..(s * t + p + 1) * w];
                for (j, v) in dst.iter_mut().enumerate() {
                    *v = self.factor(((row + p) * w + j) as u64);
                }
            }
            row += len;
        }
        x.mul(&Tensor::from_vec(m, (b, t, w), x.device())?)
    }

    /// For `[b, width]` rows (one per sentence): `x * mask`.
    pub fn apply_rows(&self, x: &Tensor) -> Result<Tensor> {
        if !self.active {
            return Ok(x.clone());
        }
        let (b, w) = x.dims2()?;
        let m: Vec<f32> = (0..b * w).map(|i| self.factor(i as u64)).collect();
        x.mul(&Tensor::from_vec(m, (b, w), x.device())?)
    }

    /// For padded attention probabilities `[b, heads, t, t]`: `x * mask`,
    /// numbered as [`attention_index`] numbers them.
    pub fn apply_attention(&self, x: &Tensor, lens: &[usize]) -> Result<Tensor> {
        if !self.active {
            return Ok(x.clone());
        }
        let (b, heads, t, _) = x.dims4()?;
        let rows: usize = lens.iter().sum();
        let mut m = vec![1f32; b * heads * t * t];
        let mut start = 0;
        for (s, &len) in lens.iter().enumerate() {
            for h in 0..heads {
                for i in 0..len {
                    let base = ((s * heads + h) * t + i) * t;
                    for j in 0..len {
                        m[base + j] = self.factor(attention_index(h, rows, start + i, j));
                    }
                }
            }
            start += len;
        }
        x.mul(&Tensor::from_vec(m, (b, heads, t, t), x.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_p_scales_the_rest_and_repeats_with_the_seed() {
        let m = Mask::new(0.25, 7, true);
        let mut x = vec![1f32; 100_000];
        m.apply(&mut x);
        let zeros = x.iter().filter(|v| **v == 0.0).count() as f64 / x.len() as f64;
        assert!((zeros - 0.25).abs() < 0.01, "{zeros}");
        assert!(x
            .iter()
            .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6));
        let mut y = vec![1f32; 100_000];
        m.apply(&mut y);
        assert_eq!(x, y, "same seed, same mask");
        let mut z = vec![1f32; 100_000];
        Mask::new(0.25, 8, true).apply(&mut z);
        assert_ne!(x, z, "another seed, another mask");
        let mut w = vec![1f32; 10];
        Mask::new(0.25, 7, false).apply(&mut w);
        assert!(w.iter().all(|v| *v == 1.0), "off when not training");
    }

    #[test]
    fn draws_a_seed_only_when_active() {
        let mut rng = Rng::new(1);
        let mut fresh = Rng::new(1);
        assert!(!Mask::draw(0.0, Some(&mut rng)).is_active());
        assert!(!Mask::draw(0.3, None).is_active());
        let m = Mask::draw(0.3, Some(&mut rng));
        assert!(m.is_active());
        assert_eq!(
            m.seed,
            fresh.next_u64(),
            "the first active site takes the first draw"
        );
    }

    #[test]
    fn the_padded_mask_numbers_elements_as_the_packed_one() {
        // Sentences of 2 and 1 tokens padded to 2: packed rows 0, 1 | 2.
        let m = Mask::new(0.5, 3, true);
        let x = Tensor::ones(
            (2, 2, 3),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let y: Vec<Vec<Vec<f32>>> = m.apply_padded(&x, &[2, 1]).unwrap().to_vec3().unwrap();
        let mut packed = vec![1f32; 3 * 3];
        m.apply(&mut packed);
        assert_eq!(y[0][0], packed[0..3]);
        assert_eq!(y[0][1], packed[3..6]);
        assert_eq!(y[1][0], packed[6..9]);
        assert_eq!(y[1][1], [1.0; 3], "padding untouched");
    }
}
