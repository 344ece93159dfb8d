//! Dropout masks for the native training step, drawn from a counter-based
//! hash of (seed, element index): the same seed gives the same mask in
//! forward and backward without storing it, any element can be drawn by
//! any thread, and each step's seeds come from the model's seeded dropout
//! stream, so `--seed` still reproduces a run.

use rayon::prelude::*;

/// Whether element `i` is kept, for a mask drawn with `seed` (SplitMix64's
/// finaliser over seed + i times the golden ratio; the top 24 bits against
/// the keep probability, as `Rng::next_f32() < keep`).
#[inline(always)]
pub fn kept(seed: u64, i: u64, threshold: u32) -> bool {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as u32) < threshold
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

    /// `x <- x * mask`, element `j` of `x` being element `offset + j` of the mask.
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
}
