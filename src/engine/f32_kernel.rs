//! An f32 matrix product for x86 CPUs with AVX-512: weights `[n, k]` packed
//! once in blocks of 32 output columns (`[n / 32][k][32]`, one k-step of a
//! block is two 64-byte loads), a 12 x 32 tile of sums in 24 registers, 24
//! fused multiply-adds per k-step against 14 loads, with the weights packed
//! once at engine build. Layers whose width is not a multiple of 32 (a
//! classifier's few outputs) are padded with zero rows to one (see
//! [`super::dense`]), so every row's sums are the same whatever else is in
//! the batch.

#[cfg(target_arch = "x86_64")]
use super::tiles::store_tile;
use super::tiles::{self, by_rows, MR};

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
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
pub fn pack_weights(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert!(kernel_fits(n) && w.len() == n * k);
    let mut out = vec![0f32; n * k];
    for blk in 0..n / 32 {
        for t in 0..k {
            for c in 0..32 {
                out[(blk * k + t) * 32 + c] = w[(blk * 32 + c) * k + t];
            }
        }
    }
    out
}

/// `out[m, n] = x[m, k] W^T (+ bias)` with `W` packed by [`pack_weights`].
/// Call only where [`available`] is true.
pub fn gemm(
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    assert!(
        available(),
        "AVX-512 kernel called on a CPU without AVX-512"
    );
    assert!(kernel_fits(n) && x.len() == m * k && out.len() == m * n && packed.len() == n * k);
    tiles::run(m, n, MR, out, |mr, row, blk, o| {
        let a = &x[row * k..(row + mr) * k];
        let bp = &packed[blk * k * 32..(blk + 1) * k * 32];
        let bias = bias.map(|b| &b[blk * 32..blk * 32 + 32]);
        assert!(o.len() >= (mr - 1) * n + 32);
        // SAFETY: the slices cover what the kernel reads and writes
        // (asserted above); the CPU has AVX-512 (asserted at the top).
        unsafe {
            by_rows!(
                mr,
                kernel(a.as_ptr(), k, bp.as_ptr(), o.as_mut_ptr(), n, bias)
            )
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize>(
    a: *const f32,
    k: usize,
    bp: *const f32,
    out: *mut f32,
    ldo: usize,
    bias: Option<&[f32]>,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for t in 0..k {
        let b0 = _mm512_loadu_ps(bp.add(t * 32));
        let b1 = _mm512_loadu_ps(bp.add(t * 32 + 16));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(r * k + t));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    store_tile(&acc, out, ldo, bias);
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel<const R: usize>(
    _: *const f32,
    _: usize,
    _: *const f32,
    _: *mut f32,
    _: usize,
    _: Option<&[f32]>,
) {
    unreachable!("the AVX-512 kernel is x86-64 only")
}
