//! A bfloat16 matrix product for x86 CPUs with AVX512-BF16 (Intel Cooper
//! Lake and Sapphire Rapids on, AMD Zen 4 on): `vdpbf16ps` multiplies pairs
//! of bf16 numbers and adds both products into an f32 lane, so one
//! instruction does 32 multiply-adds where an f32 FMA does 16.
//!
//! Layout. Weights `[n, k]` are rounded once and packed in blocks of 32
//! output columns: `[n / 32][ceil(k / 2)][2 halves][16 columns][2]`, so one
//! k-pair of a block is two 64-byte loads. Activations are rounded per call
//! into rows of k-pairs (`u32`: element `2i` in the low half, `2i + 1` in
//! the high half, the order `vdpbf16ps` pairs them in). The micro-kernel
//! keeps a 12 x 32 tile of f32 sums in 24 registers.

/// Round an f32 to the nearest bfloat16 (ties to even), kept as f32.
#[inline(always)]
pub fn round(x: f32) -> f32 {
    f32::from_bits((to_bits(x) as u32) << 16)
}

/// The bfloat16 bits nearest to `x` (ties to even; NaN stays NaN).
#[inline(always)]
pub fn to_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

#[cfg(target_arch = "x86_64")]
use super::tiles::store_tile;
use super::tiles::{self, by_rows, MR};

/// Whether this CPU runs the bf16 kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether a layer with `n` outputs fits the kernel's 32-column blocks.
pub fn kernel_fits(n: usize) -> bool {
    n.is_multiple_of(32) && n > 0
}

/// Pack `[n, k]` row-major weights (n a multiple of 32) for [`gemm`].
pub fn pack_weights(w: &[f32], n: usize, k: usize) -> Vec<u16> {
    assert!(kernel_fits(n) && w.len() == n * k);
    let k2 = k.div_ceil(2);
    let mut out = vec![0u16; n * k2 * 2];
    for blk in 0..n / 32 {
        for kk in 0..k2 {
            for half in 0..2 {
                for c in 0..16 {
                    let col = blk * 32 + half * 16 + c;
                    for e in 0..2 {
                        let t = 2 * kk + e;
                        if t < k {
                            out[((blk * k2 + kk) * 2 + half) * 32 + c * 2 + e] =
                                to_bits(w[col * k + t]);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Activations `[m, k]` as rows of bf16 pairs `[m, ceil(k / 2)]`.
pub(crate) fn pack_rows(x: &[f32], m: usize, k: usize) -> Vec<u32> {
    let k2 = k.div_ceil(2);
    let mut out = vec![0u32; m * k2];
    if available() && k.is_multiple_of(32) {
        // SAFETY: the CPU has AVX512-BF16; x holds m rows of k (k a multiple
        // of 32) and out m rows of k / 2 pairs.
        unsafe { pack_rows_avx512(x, &mut out) };
        return out;
    }
    for (row, dst) in x.chunks_exact(k).zip(out.chunks_exact_mut(k2)) {
        for (kk, d) in dst.iter_mut().enumerate() {
            let lo = to_bits(row[2 * kk]) as u32;
            let hi = if 2 * kk + 1 < k {
                to_bits(row[2 * kk + 1]) as u32
            } else {
                0
            };
            *d = lo | (hi << 16);
        }
    }
    out
}

/// [`pack_rows`] 32 values at a time with `vcvtne2ps2bf16` (round to
/// nearest even, as [`to_bits`]; subnormal inputs become zero).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_rows_avx512(x: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    assert!(x.len().is_multiple_of(32) && out.len() * 2 == x.len());
    for (src, dst) in x.chunks_exact(32).zip(out.chunks_exact_mut(16)) {
        let lo = _mm512_loadu_ps(src.as_ptr());
        let hi = _mm512_loadu_ps(src.as_ptr().add(16));
        // The second operand fills the low half.
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.as_mut_ptr() as *mut _, v);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_rows_avx512(_: &[f32], _: &mut [u32]) {
    unreachable!("x86-64 only")
}

/// `out[m, n] = x[m, k] W^T (+ bias)` with `W` packed by [`pack_weights`].
/// Call only where [`available`] is true.
pub fn gemm(
    x: &[f32],
    packed: &[u16],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    assert!(
        available(),
        "bf16 kernel called on a CPU without AVX512-BF16"
    );
    assert!(
        kernel_fits(n)
            && x.len() == m * k
            && out.len() == m * n
            && packed.len() == n * k.div_ceil(2) * 2
    );
    let k2 = k.div_ceil(2);
    let a = pack_rows(x, m, k);
    tiles::run(m, n, MR, out, |mr, row, blk, o| {
        let a = &a[row * k2..(row + mr) * k2];
        let bp = &packed[blk * k2 * 64..(blk + 1) * k2 * 64];
        let bias = bias.map(|b| &b[blk * 32..blk * 32 + 32]);
        assert!(o.len() >= (mr - 1) * n + 32);
        // SAFETY: the slices cover what the kernel reads and writes
        // (asserted above); the CPU has the features (asserted at the top).
        unsafe {
            by_rows!(
                mr,
                kernel(a.as_ptr(), k2, bp.as_ptr(), o.as_mut_ptr(), n, bias)
            )
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel<const R: usize>(
    a: *const u32,
    k2: usize,
    bp: *const u16,
    out: *mut f32,
    ldo: usize,
    bias: Option<&[f32]>,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for kk in 0..k2 {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(kk * 64) as *const _));
        let b1: __m512bh =
            std::mem::transmute(_mm512_loadu_si512(bp.add(kk * 64 + 32) as *const _));
        for (r, row) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r * k2 + kk) as i32));
            row[0] = _mm512_dpbf16_ps(row[0], av, b0);
            row[1] = _mm512_dpbf16_ps(row[1], av, b1);
        }
    }
    store_tile(&acc, out, ldo, bias);
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel<const R: usize>(
    _: *const u32,
    _: usize,
    _: *const u16,
    _: *mut f32,
    _: usize,
    _: Option<&[f32]>,
) {
    unreachable!("the bf16 kernel is x86-64 only")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round(1.0), 1.0);
        // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(round(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        assert_eq!(round(-2.5), -2.5);
        assert!(round(f32::NAN).is_nan());
    }

    #[test]
    fn vector_and_scalar_row_packing_agree() {
        let x: Vec<f32> = (0..3 * 64).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let fast = pack_rows(&x, 3, 64);
        let slow: Vec<u32> = x
            .chunks_exact(2)
            .map(|p| to_bits(p[0]) as u32 | (to_bits(p[1]) as u32) << 16)
            .collect();
        assert_eq!(fast, slow);
    }

    #[test]
    fn packing_puts_pairs_where_the_kernel_reads_them() {
        // w[col, t] = col * 10 + t for 32 columns and k = 3 (padded to 4).
        let w: Vec<f32> = (0..32)
            .flat_map(|c| (0..3).map(move |t| (c * 10 + t) as f32))
            .collect();
        let p = pack_weights(&w, 32, 3);
        let at = |kk: usize, col: usize, e: usize| {
            f32::from_bits((p[(kk * 2 + col / 16) * 32 + (col % 16) * 2 + e] as u32) << 16)
        };
        assert_eq!(at(0, 0, 0), 0.0);
        assert_eq!(at(0, 5, 1), 51.0);
        assert_eq!(at(1, 17, 0), 172.0);
        assert_eq!(at(1, 31, 1), 0.0); // the padding of odd k
    }
}
