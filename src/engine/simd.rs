//! Element-wise kernels of the inference engine (exp, erf, GELU, softmax,
//! residual + layer norm), written as plain loops that the compiler
//! vectorises, and compiled three times: for AVX-512, for AVX2 + FMA and for
//! the baseline target, chosen at run time ([`simd_fn!`]). The
//! approximations are accurate to a few ulp (tests below against f64).

/// Define a function whose body is compiled for AVX-512, for AVX2 + FMA and
/// for the baseline, picking the best one the CPU has at each call (the
/// feature check is a cached atomic load).
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512dq") && std::arch::is_x86_feature_detected!("avx512vl") {
                    // SAFETY: the CPU has the features v4 was compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for v3.
                    return unsafe { v3($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// Lanes of the manual reductions: wide enough for one AVX-512 register, so
/// sums vectorise without reassociating floating-point adds.
const LANES: usize = 16;

/// `e^x` by range reduction to `[-ln2/2, ln2/2]` and a degree-6 Taylor
/// polynomial (truncation error below 2e-7 relative); 2^n is assembled in
/// the exponent bits. Inputs below -87 give exactly 0, as a masked softmax
/// score must: a tiny non-zero weight there makes the products that follow
/// subnormal, and subnormal arithmetic made a training step ten times slower.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so n * LN2_HI is exact (Cody and Waite).
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 * 2^23 rounds to the nearest integer and leaves it in the
    // low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let zero = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + MAGIC;
    let n_bits = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let n = t - MAGIC;
    let f = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    let e = p * f32::from_bits(((n_bits + 127) as u32) << 23);
    if zero {
        0.0
    } else {
        e
    }
}

/// The error function as a rational function of `x` on `[-4, 4]`, where
/// single precision saturates (the minimax fit Eigen and XLA use for f32).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_2e-3;
    q = x2 * q + -1.426_473_9e-2;
    x * p / q
}

/// transformers' "gelu": `x * Phi(x)` with the exact (erf) normal CDF.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The tanh approximation ("gelu_new", "gelu_pytorch_tanh").
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    let u = C * (x + 0.044_715 * x * x * x);
    // tanh(u) = 1 - 2 / (e^{2u} + 1)
    let th = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    0.5 * x * (1.0 + th)
}

#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

/// The largest element (-inf for none), lane by lane so it vectorises (a
/// plain `fold(f32::max)` is a chain of dependent scalar maxima).
#[inline(always)]
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
    acc.iter().fold(tail, |m, v| if *v > m { *v } else { m })
}

#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

pub use crate::model::Activation;

simd_fn! {
    /// `x <- act(x + bias)` for every row of `x` (rows of `bias.len()`).
    pub fn bias_activation(x: &mut [f32], bias: &[f32], act: Activation) {
        for row in x.chunks_exact_mut(bias.len()) {
            match act {
                Activation::GeluErf => row.iter_mut().zip(bias).for_each(|(v, b)| *v = gelu_erf(*v + b)),
                Activation::GeluTanh => row.iter_mut().zip(bias).for_each(|(v, b)| *v = gelu_tanh(*v + b)),
                Activation::Relu => row.iter_mut().zip(bias).for_each(|(v, b)| *v = (*v + b).max(0.0)),
            }
        }
    }
}

simd_fn! {
    /// `x <- LayerNorm(x + y)` row by row (`x` and `y` hold rows of
    /// `weight.len()`), with a two-pass variance as PyTorch computes it.
    pub fn add_layer_norm(x: &mut [f32], y: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
        let h = weight.len();
        for (row, add) in x.chunks_exact_mut(h).zip(y.chunks_exact(h)) {
            row.iter_mut().zip(add).for_each(|(v, a)| *v += a);
            norm_row(row, weight, bias, eps);
        }
    }
}

simd_fn! {
    /// `x <- LayerNorm(x)` row by row.
    pub fn layer_norm(x: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
        for row in x.chunks_exact_mut(weight.len()) {
            norm_row(row, weight, bias, eps);
        }
    }
}

#[inline(always)]
fn norm_row(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    row.iter_mut().for_each(|v| *v -= mean);
    let var = dot(row, row) / n;
    let inv = 1.0 / (var + eps).sqrt();
    row.iter_mut()
        .zip(weight.iter().zip(bias))
        .for_each(|(v, (w, b))| *v = *v * inv * w + b);
}

simd_fn! {
    /// Softmax of each row of `x` (rows of `n`), in place.
    pub fn softmax_rows(x: &mut [f32], n: usize) {
        for row in x.chunks_exact_mut(n) {
            let top = max(row);
            row.iter_mut().for_each(|v| *v = exp(*v - top));
            let inv = 1.0 / sum(row);
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_over_blocks_and_tail() {
        for n in [0usize, 1, 15, 16, 17, 40] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 37) % 23) as f32 - 30.0).collect();
            let want = xs.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
            assert_eq!(max(&xs), want, "n = {n}");
        }
        assert_eq!(max(&[f32::NEG_INFINITY, -3.0]), -3.0);
    }

    /// erf in f64 by its Maclaurin series (for |x| <= 4 its largest term is
    /// under 1e6, so f64 keeps about 1e-10 of accuracy).
    fn erf64(x: f64) -> f64 {
        let mut term = x;
        let mut total = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0f64;
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let rel = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert!(exp(-200.0) == 0.0 && exp(-1e9) == 0.0 && exp(0.0) == 1.0);
        // The softmax of a masked row gives the masked place exactly zero.
        let mut row = vec![0.5, -1e9, 0.25];
        softmax_rows(&mut row, 3);
        assert_eq!(row[1], 0.0);
    }

    #[test]
    fn erf_and_gelu_match_f64() {
        let mut worst = 0f64;
        for i in -400..=400 {
            let x = i as f32 / 100.0;
            worst = worst.max((erf(x) as f64 - erf64(x as f64)).abs());
        }
        // Beyond 4, erf is 1 to single precision (erf(4) = 1 - 1.5e-8).
        assert!((erf(6.0) - 1.0).abs() < 2e-6 && (erf(-9.0) + 1.0).abs() < 2e-6);
        assert!(worst < 2e-6, "worst absolute erf error {worst}");
        // GELU(1) = 0.5 * (1 + erf(1/sqrt 2)) = 0.841344746...
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        // tanh form at 1: 0.5 * (1 + tanh(0.79788456 * 1.044715)) = 0.841191990...
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-6);
    }

    #[test]
    fn softmax_and_layer_norm_by_hand() {
        // softmax([0, ln 3]) = [1/4, 3/4], rows independent.
        let mut x = vec![0.0, 3f32.ln(), 5.0, 5.0];
        softmax_rows(&mut x, 2);
        for (a, b) in x.iter().zip([0.25, 0.75, 0.5, 0.5]) {
            assert!((a - b).abs() < 1e-6, "{x:?}");
        }
        // [1, 2, 3] + [1, 0, -1] = [2, 2, 2]: zero variance, so only bias stays.
        let mut r = vec![1.0, 2.0, 3.0];
        add_layer_norm(
            &mut r,
            &[1.0, 0.0, -1.0],
            &[1.0, 1.0, 1.0],
            &[0.5, 0.0, -0.5],
            1e-12,
        );
        assert_eq!(r, vec![0.5, 0.0, -0.5]);
        // [0, 3, 6]: mean 3, variance 6, so (x - 3) / sqrt(6).
        let mut r = vec![0.0, 3.0, 6.0];
        layer_norm(&mut r, &[1.0, 1.0, 2.0], &[0.0, 0.0, 0.0], 0.0);
        let s = 6f32.sqrt();
        for (a, b) in r.iter().zip([-3.0 / s, 0.0, 6.0 / s]) {
            assert!((a - b).abs() < 1e-6, "{r:?}");
        }
        let mut g = vec![-1.0, 1.0];
        bias_activation(&mut g, &[0.0, 0.0], Activation::Relu);
        assert_eq!(g, vec![0.0, 1.0]);
        assert_eq!(dot(&[1.0; 37], &[2.0; 37]), 74.0);
    }
}
