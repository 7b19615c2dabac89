//! The matrix product the fused ops call directly (gemm, as candle's own matmul does), and a way
//! to read a tensor's f32 data in place from inside a backward pass.

use candle_core::{bail, Layout, Result, Storage};
use gemm::{gemm, Parallelism};

/// How a matrix is laid out: elements `rs` apart down a column, `cs` apart along a row.
#[derive(Clone, Copy)]
pub(super) struct Strides {
    pub rs: usize,
    pub cs: usize,
}

/// Row-major with rows `rs` apart.
pub(super) fn rows(rs: usize) -> Strides {
    Strides { rs, cs: 1 }
}

/// The transpose of a row-major matrix with rows `rs` apart.
pub(super) fn transposed(rs: usize) -> Strides {
    Strides { rs: 1, cs: rs }
}

/// dst (m x n, rows `dst_rs` apart) = beta * lhs (m x k) * rhs (k x n), plus dst when
/// `accumulate`. `parallel`: split over rayon's threads (one big product) or stay on this
/// thread (many small ones already spread over the threads).
///
/// # Safety
/// The pointers must reach every element the sizes and strides address; dst must not overlap
/// the inputs.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn mm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    l: Strides,
    rhs: *const f32,
    r: Strides,
    beta: f32,
    accumulate: bool,
    parallel: bool,
) {
    let parallelism = match rayon::current_num_threads() {
        n if parallel && n > 1 => Parallelism::Rayon(n),
        _ => Parallelism::None,
    };
    gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        l.cs as isize,
        l.rs as isize,
        rhs,
        r.cs as isize,
        r.rs as isize,
        if accumulate { 1.0 } else { 0.0 },
        beta,
        false,
        false,
        false,
        parallelism,
    )
}

/// The f32 data of a CPU tensor's storage, borrowed (no copy), as `f32s` reads it.
pub(super) fn cpu_f32<'a>(s: &'a Storage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => super::f32s(c, l, what),
        _ => bail!("{what}: the backward pass runs on the CPU only"),
    }
}
