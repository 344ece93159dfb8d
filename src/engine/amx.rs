//! The bf16 matrix product on Intel AMX (Sapphire Rapids on): `tdpbf16ps`
//! multiplies a 16 x 32 bf16 tile by a 32 x 16 one into a 16 x 16 f32 tile,
//! 8192 multiply-adds in one instruction. On the machine this was written
//! on, AVX-512's `vdpbf16ps` issues only every other cycle (measured: 123
//! GFLOP/s a core against 247 for f32 FMA), so there AMX is the way to a
//! faster bf16 path; AMD's cores have no AMX and use [`super::bf16`]'s
//! kernel.
//!
//! The intrinsics are not stable Rust, so the few tile instructions are
//! inline assembly. Linux hands out the tile state only to a process that
//! asks for it (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), once.
//!
//! Layout: activations as row-major bf16 (the rows of k-pairs that
//! [`super::bf16`] packs, padded to a multiple of 32 rows), weights exactly
//! as [`super::bf16::pack_weights`] packs them: a 16-column half of a block,
//! read 16 k-pairs at a time, is a tile whose rows lie 128 bytes apart.

use std::sync::OnceLock;

/// Whether this CPU and OS run AMX bf16 tiles (asked once).
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    if std::env::var_os("STANCE_NO_AMX").is_some() {
        return false;
    }
    // Leaf 7 of cpuid: structured extended features.
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let amx_bf16 = leaf7.edx & (1 << 22) != 0;
    let amx_tile = leaf7.edx & (1 << 24) != 0;
    if !(amx_bf16 && amx_tile && super::bf16::available()) {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// Whether a layer of `n` outputs and `k` inputs fits whole tiles.
pub fn kernel_fits(n: usize, k: usize) -> bool {
    n.is_multiple_of(32) && k.is_multiple_of(32) && n > 0 && k > 0
}

/// Output rows per block: two tiles of 16.
const MB: usize = 32;

/// The tile configuration: palette 1; tiles 0-3 hold 16 x 16 f32 sums,
/// 4-5 rows of A (16 x 32 bf16), 6-7 halves of a weight block (16 k-pairs x
/// 16 columns x 2): every tile 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = 64; // colsb, little-endian u16
            c[48 + t] = 16; // rows
        }
        TileConfig(c)
    }
}

/// `out[m, n] = x[m, k] W^T (+ bias)`, `W` packed by
/// [`super::bf16::pack_weights`]. Call only where [`available`] and
/// [`kernel_fits`] are true.
pub fn gemm(
    x: &[f32],
    packed: &[u16],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    use rayon::prelude::*;
    assert!(
        available() && kernel_fits(n, k),
        "AMX kernel called where it cannot run"
    );
    assert!(x.len() == m * k && out.len() == m * n && packed.len() == n * k);
    if m == 0 {
        return;
    }
    let k2 = k / 2;
    let mpad = m.div_ceil(MB) * MB;
    let mut a = super::bf16::pack_rows(x, m, k);
    a.resize(mpad * k2, 0);
    let blocks = mpad / MB;
    let per_task = blocks.div_ceil(2 * rayon::current_num_threads()).max(1);
    let a = &a;
    out.par_chunks_mut(per_task * MB * n).enumerate().for_each(|(t, oc)| {
        let cfg = TileConfig::new();
        let mut sums = [0f32; MB * 32];
        // SAFETY: available() checked that the CPU has AMX and that Linux
        // granted the tile state; the configuration is valid for palette 1.
        unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
        let rows_here = oc.len() / n;
        for rb in 0..rows_here.div_ceil(MB) {
            let r0 = t * per_task * MB + rb * MB;
            for blk in 0..n / 32 {
                // SAFETY: rows r0..r0 + 32 of `a` exist (padded to mpad) and
                // the block's k2 pairs of 128 bytes lie inside `packed`.
                unsafe { block(a.as_ptr().add(r0 * k2) as *const u8, k2 * 4, packed.as_ptr().add(blk * k2 * 64) as *const u8, k2 / 16, sums.as_mut_ptr()) };
                let valid = MB.min(rows_here - rb * MB);
                for r in 0..valid {
                    let dst = &mut oc[(rb * MB + r) * n + blk * 32..(rb * MB + r) * n + blk * 32 + 32];
                    dst.copy_from_slice(&sums[r * 32..r * 32 + 32]);
                    if let Some(b) = bias {
                        dst.iter_mut().zip(&b[blk * 32..blk * 32 + 32]).for_each(|(d, b)| *d += b);
                    }
                }
            }
        }
        // SAFETY: releases the tile state this thread configured.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    });
}

/// A 32 x 32 block of sums over `chunks` groups of 16 k-pairs: A rows at
/// `a` (row stride `lda` bytes), the weight block at `b` (128 bytes a
/// k-pair), sums stored row-major into `c` (32 x 32 f32).
#[cfg(target_arch = "x86_64")]
unsafe fn block(a: *const u8, lda: usize, b: *const u8, chunks: usize, c: *mut f32) {
    use std::arch::asm;
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        options(nostack, nomem)
    );
    let bstride: usize = 128;
    for ch in 0..chunks {
        let a0 = a.add(ch * 64); // 16 pairs = 64 bytes into each row
        let a1 = a0.add(16 * lda);
        let b0 = b.add(ch * 16 * 128);
        let b1 = b0.add(64);
        asm!(
            "tileloadd tmm4, [{a0} + {lda}*1]",
            "tileloadd tmm5, [{a1} + {lda}*1]",
            "tileloadd tmm6, [{b0} + {bs}*1]",
            "tileloadd tmm7, [{b1} + {bs}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) a0,
            a1 = in(reg) a1,
            b0 = in(reg) b0,
            b1 = in(reg) b1,
            lda = in(reg) lda,
            bs = in(reg) bstride,
            options(nostack, readonly),
        );
    }
    let cs: usize = 128; // 32 f32 a row
    let c = c as *mut u8;
    asm!(
        "tilestored [{c0} + {cs}*1], tmm0",
        "tilestored [{c1} + {cs}*1], tmm1",
        "tilestored [{c2} + {cs}*1], tmm2",
        "tilestored [{c3} + {cs}*1], tmm3",
        c0 = in(reg) c,
        c1 = in(reg) c.add(64),
        c2 = in(reg) c.add(16 * 128),
        c3 = in(reg) c.add(16 * 128 + 64),
        cs = in(reg) cs,
        options(nostack),
    );
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn block(_: *const u8, _: usize, _: *const u8, _: usize, _: *mut f32) {
    unreachable!("AMX is x86-64 only")
}
