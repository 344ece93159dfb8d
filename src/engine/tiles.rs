//! The loop around the packed matrix kernels ([`super::f32_kernel`],
//! [`super::bf16`]): output rows are cut into tasks of whole tiles for
//! rayon's threads; inside a task, each 32-column block of the weights is
//! run against every tile of rows, so the block stays in cache while the
//! rows stream past.

use rayon::prelude::*;

/// Call `tile(mr, row, block, out)` for every tile of up to `mr_max` rows
/// and every 32-column block of an `[m, n]` output, where `out` starts at the
/// tile's first element (row `row`, column `32 * block`) and runs to the end
/// of the task's rows (row stride `n`).
pub fn run(m: usize, n: usize, mr_max: usize, out: &mut [f32], tile: impl Fn(usize, usize, usize, &mut [f32]) + Sync) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(n % 32 == 0 && out.len() == m * n);
    // About four tasks per thread, each a whole number of tiles.
    let tiles = m.div_ceil(mr_max);
    let per_task = tiles.div_ceil(4 * rayon::current_num_threads()).max(1) * mr_max;
    out.par_chunks_mut(per_task * n).enumerate().for_each(|(t, oc)| {
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
