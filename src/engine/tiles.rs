//! The loop around the packed matrix kernels ([`super::f32_kernel`],
//! [`super::bf16`]): output rows are cut into tasks of whole tiles for
//! rayon's threads; inside a task, each 32-column block of the weights is
//! run against every tile of rows, so the block stays in cache while the
//! rows stream past. There is one task per thread, so the weights stream
//! through each core once per product.

use rayon::prelude::*;

/// Call `tile(mr, row, block, out)` for every tile of up to `mr_max` rows
/// and every 32-column block of an `[m, n]` output, where `out` starts at the
/// tile's first element (row `row`, column `32 * block`) and runs to the end
/// of the task's rows (row stride `n`).
pub fn run(
    m: usize,
    n: usize,
    mr_max: usize,
    out: &mut [f32],
    tile: impl Fn(usize, usize, usize, &mut [f32]) + Sync,
) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(n.is_multiple_of(32) && out.len() == m * n);
    let per_task = rows_per_task(m, mr_max, rayon::current_num_threads());
    out.par_chunks_mut(per_task * n)
        .enumerate()
        .for_each(|(t, oc)| {
            let r0 = t * per_task;
            let rows = oc.len() / n;
            for blk in 0..n / 32 {
                let mut i = 0;
                while i < rows {
                    let mr = mr_max.min(rows - i);
                    tile(mr, r0 + i, blk, &mut oc[i * n + blk * 32..]);
                    i += mr;
                }
            }
        });
}

/// Rows per task: one task per thread, each a whole number of tiles. Every
/// task streams all of the weights through its core's cache once, so more
/// tasks read them from memory more often. (Four tasks per thread, for
/// rayon to even out a slow thread, made f32 `predict` on the test split's
/// 28 articles about 10% slower: one MPNet layer's weights are 2.4-9.4 MB,
/// more than a core's L2, and came from memory four times as often.)
fn rows_per_task(m: usize, mr_max: usize, threads: usize) -> usize {
    m.div_ceil(mr_max).div_ceil(threads.max(1)).max(1) * mr_max
}

/// Rows of the micro-kernels' tiles: 12 x 32 f32 sums fill 24 of AVX-512's
/// 32 registers, leaving room for two weight vectors and a broadcast.
pub const MR: usize = 12;

/// Call `kernel::<R>(args)` with `R` the tile's row count `mr` (1 to
/// [`MR`]), so each row count gets a fully unrolled kernel.
macro_rules! by_rows {
    ($mr:expr, $kernel:ident($($arg:expr),* $(,)?)) => {
        match $mr {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            6 => $kernel::<6>($($arg),*),
            7 => $kernel::<7>($($arg),*),
            8 => $kernel::<8>($($arg),*),
            9 => $kernel::<9>($($arg),*),
            10 => $kernel::<10>($($arg),*),
            11 => $kernel::<11>($($arg),*),
            12 => $kernel::<12>($($arg),*),
            other => unreachable!("tile of {other} rows"),
        }
    };
}
pub(crate) use by_rows;

/// Store a tile's sums (two 16-lane vectors a row), plus the bias.
/// Inlined into the AVX-512 kernels, which call it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn store_tile<const R: usize>(
    acc: &[[std::arch::x86_64::__m512; 2]; R],
    out: *mut f32,
    ldo: usize,
    bias: Option<&[f32]>,
) {
    use std::arch::x86_64::*;
    let (bias0, bias1) = match bias {
        Some(b) => (
            _mm512_loadu_ps(b.as_ptr()),
            _mm512_loadu_ps(b.as_ptr().add(16)),
        ),
        None => (_mm512_setzero_ps(), _mm512_setzero_ps()),
    };
    for (r, row) in acc.iter().enumerate() {
        let o = out.add(r * ldo);
        _mm512_storeu_ps(o, _mm512_add_ps(row[0], bias0));
        _mm512_storeu_ps(o.add(16), _mm512_add_ps(row[1], bias1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn one_task_per_thread_of_whole_tiles() {
        // 800 rows are 67 tiles of 12: 34 tiles for the first thread, 33
        // for the second.
        assert_eq!(rows_per_task(800, 12, 2), 34 * 12);
        assert_eq!(rows_per_task(800, 12, 1), 67 * 12);
        assert_eq!(rows_per_task(5, 12, 8), 12);
        assert_eq!(rows_per_task(1, 12, 0), 12);
    }

    #[test]
    fn every_tile_of_every_block_runs_once() {
        let (m, n) = (29, 96);
        let seen = Mutex::new(Vec::new());
        let mut out = vec![0f32; m * n];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            run(m, n, MR, &mut out, |mr, row, blk, o| {
                o[0] = (row * 100 + blk) as f32;
                seen.lock().unwrap().push((row, mr, blk));
            })
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        // Two tasks of 24 and 5 rows: tiles at rows 0 and 12, then 24.
        let want: Vec<_> = [(0, 12), (12, 12), (24, 5)]
            .into_iter()
            .flat_map(|(row, mr)| (0..3).map(move |blk| (row, mr, blk)))
            .collect();
        assert_eq!(seen, want);
        assert_eq!(out[24 * n + 64], 2402.0);
    }
}
