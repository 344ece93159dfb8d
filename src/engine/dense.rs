//! Dense layers of the inference engine: `y = x W^T (+ b)` for row-major
//! activations `x` `[m, k]` and Hugging Face weights `W` `[n, k]`.
//!
//! - f32: [`super::f32_kernel`] on CPUs with AVX-512 (narrow layers padded
//!   to 32 outputs, so that a row's outputs never depend on the other rows
//!   of the batch), the `gemm` crate (candle's CPU matmul) elsewhere.
//! - bf16: weights rounded to bfloat16 once and packed, activations rounded
//!   per call, sums in f32: on Intel AMX tiles ([`super::amx`]) where the
//!   CPU has them, else with AVX512-BF16's `vdpbf16ps` ([`super::bf16`]; AMD
//!   Zen 4 on). On a CPU with neither, the same rounded numbers go through
//!   the f32 kernel, so the result is the same to accumulation order.

use super::{amx, bf16, f32_kernel};

/// Numeric precision of the engine's matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?} (use f32 or bf16)")),
        }
    }
}

enum Weights {
    /// Row-major `[n, k]`, for the `gemm` crate.
    F32(Vec<f32>),
    /// Packed for the AVX-512 kernel.
    F32Packed(Vec<f32>),
    /// A narrow layer (a classifier's 4 or 7 outputs) padded with zero
    /// rows to `width` outputs, a multiple of 32, and packed for the
    /// AVX-512 kernel, whose sums do not depend on the other rows of the
    /// batch (the `gemm` crate's do, in the last bits). For bf16 the
    /// weights are rounded before packing and `round_inputs` is set.
    Padded {
        packed: Vec<f32>,
        width: usize,
        round_inputs: bool,
    },
    /// Packed for the AMX kernel (the same layout as the AVX512-BF16 one).
    Bf16Amx(Vec<u16>),
    /// Packed for the AVX512-BF16 kernel.
    Bf16Packed(Vec<u16>),
    /// bf16-rounded values kept as f32, for CPUs without AVX512-BF16.
    Bf16Emulated(Vec<f32>),
}

pub struct Dense {
    weights: Weights,
    pub bias: Vec<f32>,
    pub n: usize,
    pub k: usize,
}

impl Dense {
    /// `weight` is `[n, k]` row-major, `bias` `[n]`.
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, n: usize, k: usize, precision: Precision) -> Self {
        debug_assert_eq!(weight.len(), n * k);
        let weights = match precision {
            Precision::F32 if f32_kernel::kernel_fits(n) && f32_kernel::available() => {
                Weights::F32Packed(f32_kernel::pack_weights(&weight, n, k))
            }
            Precision::F32 if f32_kernel::available() => padded(weight, n, k, false),
            Precision::F32 => Weights::F32(weight),
            Precision::Bf16 if amx::kernel_fits(n, k) && amx::available() => {
                Weights::Bf16Amx(bf16::pack_weights(&weight, n, k))
            }
            Precision::Bf16 if bf16::kernel_fits(n) && bf16::available() => {
                Weights::Bf16Packed(bf16::pack_weights(&weight, n, k))
            }
            Precision::Bf16 if f32_kernel::available() => {
                padded(weight.iter().map(|&v| bf16::round(v)).collect(), n, k, true)
            }
            Precision::Bf16 => {
                Weights::Bf16Emulated(weight.iter().map(|&v| bf16::round(v)).collect())
            }
        };
        Dense {
            weights,
            bias,
            n,
            k,
        }
    }

    /// `out[m, n] = x[m, k] W^T`, plus the bias when `with_bias`.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32], with_bias: bool) {
        debug_assert_eq!(x.len(), m * self.k);
        debug_assert_eq!(out.len(), m * self.n);
        let bias = with_bias.then_some(&self.bias[..]);
        match &self.weights {
            Weights::F32(w) => gemm_f32(x, w, bias, m, self.n, self.k, out),
            Weights::F32Packed(p) => f32_kernel::gemm(x, p, bias, m, self.n, self.k, out),
            Weights::Padded {
                packed,
                width,
                round_inputs,
            } => {
                let rounded: Vec<f32>;
                let x = if *round_inputs {
                    rounded = x.iter().map(|&v| bf16::round(v)).collect();
                    &rounded[..]
                } else {
                    x
                };
                let mut wide = vec![0f32; m * width];
                f32_kernel::gemm(x, packed, None, m, *width, self.k, &mut wide);
                for (o, w) in out.chunks_exact_mut(self.n).zip(wide.chunks_exact(*width)) {
                    o.copy_from_slice(&w[..self.n]);
                    if let Some(b) = bias {
                        o.iter_mut().zip(b).for_each(|(o, b)| *o += b);
                    }
                }
            }
            Weights::Bf16Amx(p) => amx::gemm(x, p, bias, m, self.n, self.k, out),
            Weights::Bf16Packed(p) => bf16::gemm(x, p, bias, m, self.n, self.k, out),
            Weights::Bf16Emulated(w) => {
                let xr: Vec<f32> = x.iter().map(|&v| bf16::round(v)).collect();
                gemm_f32(&xr, w, bias, m, self.n, self.k, out)
            }
        }
    }
}

/// A narrow layer's weights padded with zero rows to a multiple of 32
/// outputs and packed for the AVX-512 kernel ([`Weights::Padded`]).
fn padded(mut weight: Vec<f32>, n: usize, k: usize, round_inputs: bool) -> Weights {
    let width = n.next_multiple_of(32).max(32);
    weight.resize(width * k, 0.0);
    Weights::Padded {
        packed: f32_kernel::pack_weights(&weight, width, k),
        width,
        round_inputs,
    }
}

/// `out = x W^T (+ bias)` through the `gemm` crate, on rayon's pool.
pub fn gemm_f32(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    assert!(out.len() >= m * n, "gemm_f32: buffer too small");
    if let Some(b) = bias {
        for row in out[..m * n].chunks_exact_mut(n) {
            row.copy_from_slice(b);
        }
    }
    // W row-major [n, k] read as W^T [k, n]: row stride 1, column stride k.
    gemm_strided(
        out,
        bias.is_some(),
        1.0,
        View {
            data: x,
            row_stride: k,
            col_stride: 1,
        },
        View {
            data: w,
            row_stride: 1,
            col_stride: k,
        },
        m,
        n,
        k,
    );
}

/// A row-major or transposed view of a matrix for [`gemm_strided`]: element
/// `(r, c)` is at `ptr[r * row_stride + c * col_stride]`.
pub struct View<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

/// `dst[m, n] (+)= scale a[m, k] b[k, n]`, `dst` row-major.
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided(
    dst: &mut [f32],
    accumulate: bool,
    scale: f32,
    a: View,
    b: View,
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(dst.len() >= m * n, "gemm: destination too small");
    let last = |v: &View, r: usize, c: usize| {
        if r == 0 || c == 0 {
            0
        } else {
            (r - 1) * v.row_stride + (c - 1) * v.col_stride + 1
        }
    };
    assert!(
        a.data.len() >= last(&a, m, k) && b.data.len() >= last(&b, k, n),
        "gemm: operand too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k > 1 << 18 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every element the strides address lies inside its slice
    // (checked above); dst is row-major [m, n] and borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0f32,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = b[j] + (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>();
            }
        }
        out
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        // Small integers and halves: exact in bf16, so every path must agree
        // with the naive product to rounding of the f32 sums.
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) % 9) as f32 * 0.5
                    - 2.0
            })
            .collect()
    }

    #[test]
    fn f32_and_bf16_match_the_naive_product() {
        // m = 29 leaves a remainder of every row-block size; n = 96 is three
        // 32-column panel pairs; k = 37 is odd (the bf16 path pads it).
        for (m, n, k) in [(29, 96, 37), (1, 32, 8), (40, 64, 384), (3, 5, 7)] {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let b = data(n, 3);
            let want = naive(&x, &w, &b, m, n, k);
            for p in [Precision::F32, Precision::Bf16] {
                let d = Dense::new(w.clone(), b.clone(), n, k, p);
                let mut out = vec![0f32; m * n];
                d.forward(&x, m, &mut out, true);
                for (a, e) in out.iter().zip(&want) {
                    assert!((a - e).abs() < 1e-3, "{p:?} {m}x{n}x{k}: {a} vs {e}");
                }
                d.forward(&x, m, &mut out, false);
                assert!((out[0] - (want[0] - b[0])).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn every_kernel_this_cpu_has_matches_the_naive_product() {
        // k = 64 and n = 64 fit every kernel's blocks; m = 45 leaves partial
        // tiles of 12 and 32 rows.
        let (m, n, k) = (45, 64, 64);
        let (x, w, b) = (data(m * k, 4), data(n * k, 5), data(n, 6));
        let want = naive(&x, &w, &b, m, n, k);
        let mut out = vec![0f32; m * n];
        let mut ran = vec!["gemm crate"];
        gemm_f32(&x, &w, Some(&b), m, n, k, &mut out);
        assert!(out.iter().zip(&want).all(|(a, e)| (a - e).abs() < 1e-3));
        if f32_kernel::available() {
            f32_kernel::gemm(
                &x,
                &f32_kernel::pack_weights(&w, n, k),
                Some(&b),
                m,
                n,
                k,
                &mut out,
            );
            assert!(
                out.iter().zip(&want).all(|(a, e)| (a - e).abs() < 1e-3),
                "avx512 f32"
            );
            ran.push("avx512 f32");
        }
        let packed = bf16::pack_weights(&w, n, k);
        if bf16::available() {
            bf16::gemm(&x, &packed, Some(&b), m, n, k, &mut out);
            assert!(
                out.iter().zip(&want).all(|(a, e)| (a - e).abs() < 1e-3),
                "avx512-bf16"
            );
            ran.push("avx512-bf16");
        }
        if amx::available() {
            amx::gemm(&x, &packed, Some(&b), m, n, k, &mut out);
            assert!(
                out.iter().zip(&want).all(|(a, e)| (a - e).abs() < 1e-3),
                "amx"
            );
            amx::gemm(&x, &packed, None, m, n, k, &mut out);
            assert!(
                (out[m * n - 1] - (want[m * n - 1] - b[n - 1])).abs() < 1e-3,
                "amx without bias"
            );
            ran.push("amx");
        }
        eprintln!("kernels checked: {ran:?}");
    }

    #[test]
    fn bf16_rounds_inputs() {
        // 1 + 2^-9 is not a bf16 number: it rounds to 1 (ties to even), so
        // the bf16 product of [1 + 2^-9] and [1] is exactly 1.
        // A narrow layer (4 outputs, padded) rounds the same way.
        let x = [1.0 + 1.0 / 512.0];
        for n in [32, 4] {
            let d = Dense::new(vec![1.0; n], vec![0.0; n], n, 1, Precision::Bf16);
            let mut out = vec![0f32; n];
            d.forward(&x, 1, &mut out, true);
            assert!(out.iter().all(|v| *v == 1.0), "{n}: {out:?}");
        }
        let mut out = vec![0f32; 32];
        let f = Dense::new(vec![1.0; 32], vec![0.0; 32], 32, 1, Precision::F32);
        f.forward(&x, 1, &mut out, true);
        assert_eq!(out[0], 1.0 + 1.0 / 512.0);
    }

    #[test]
    fn a_row_gets_the_same_bits_alone_and_in_a_batch() {
        // A classifier-sized layer (4 outputs) and a hidden-sized one, in
        // f32 and bf16: each row's outputs must not depend on the rows
        // beside it, so a sentence's probabilities do not change with
        // --batch-size, a server's batching or a stream's chunks. (The
        // `gemm` crate, which ran the narrow layers before, changes the
        // last bits of a row's sums once a batch has 200 rows, even on one
        // thread.) Not `data()`: its small integers and halves sum exactly
        // in any order, so they could not show a change of order.
        let (m, k) = (200, 768);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1013) as f32 * 1e-3 - 0.5)
            .collect();
        for n in [4, 7, 768] {
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 104_729) % 997) as f32 * 1e-3 - 0.5)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
            for p in [Precision::F32, Precision::Bf16] {
                let d = Dense::new(w.clone(), b.clone(), n, k, p);
                let mut all = vec![0f32; m * n];
                d.forward(&x, m, &mut all, true);
                for r in [0, 17, m - 1] {
                    let mut one = vec![0f32; n];
                    d.forward(&x[r * k..(r + 1) * k], 1, &mut one, true);
                    assert_eq!(one, all[r * n..(r + 1) * n], "{p:?}, n = {n}, row {r}");
                }
            }
        }
    }
}
