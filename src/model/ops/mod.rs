//! candle custom ops with hand-written backward passes for the training
//! path: layer norm, GELU and softmax. Composed from candle's element-wise
//! ops, each of these is 5-10 tensors allocated and walked per call, and as
//! many again in backward; here each is one pass forward and one back, using
//! the inference engine's vectorised kernels. Each file's tests check values
//! and gradients against the composition it replaces.

pub(crate) mod gelu;
pub(crate) mod layer_norm;
mod softmax;

pub use gelu::gelu_erf;
pub use layer_norm::layer_norm;
pub use softmax::softmax_last_dim;

use candle_core::{CpuStorage, Layout, Result, Tensor};

/// The f32 data of a contiguous CPU storage.
fn data<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        (CpuStorage::F32(_), None) => candle_core::bail!("{op}: input is not contiguous"),
        _ => candle_core::bail!("{op}: f32 only"),
    }
}

/// A tensor's values as a contiguous vector (copied).
fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.contiguous()?.flatten_all()?.to_vec1::<f32>()
}

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

struct SyncPtr(*mut f32);
// SAFETY: the pointer is only used to hand disjoint chunks to the pool's
// threads (below).
unsafe impl Sync for SyncPtr {}

/// Run `f(i, chunk_i)` over `out` cut into chunks of `chunk` values, on
/// candle's own thread pool: its workers spin for a while after each op, so
/// on two cores a second pool (rayon's) would compete with them.
pub(crate) fn par_chunks_mut(out: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let len = out.len();
    let n = len.div_ceil(chunk.max(1));
    let p = SyncPtr(out.as_mut_ptr());
    let p = &p;
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        for i in range {
            let start = i * chunk;
            let end = (start + chunk).min(len);
            // SAFETY: chunks [start, end) of distinct i are disjoint and
            // inside `out`, which is borrowed mutably for the whole call.
            let s = unsafe { std::slice::from_raw_parts_mut(p.0.add(start), end - start) };
            f(i, s);
        }
    });
}

#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{Device, Tensor, Var};

    /// Values of `a` and `b` agree within `tol` (absolute).
    pub fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < tol, "max |diff| {d}");
    }

    /// A [2, 3, n] input with varied values.
    pub fn input(n: usize) -> Var {
        let v: Vec<f32> = (0..6 * n)
            .map(|i| ((i * 7919) % 23) as f32 / 5.0 - 2.0)
            .collect();
        Var::from_tensor(&Tensor::from_vec(v, (2, 3, n), &Device::Cpu).unwrap()).unwrap()
    }

    /// A fixed weighting of outputs, so the loss depends on every element differently.
    pub fn weighting(n: usize) -> Tensor {
        let v: Vec<f32> = (0..6 * n)
            .map(|i| ((i * 104729) % 17) as f32 / 8.0 - 1.0)
            .collect();
        Tensor::from_vec(v, (2, 3, n), &Device::Cpu).unwrap()
    }
}
