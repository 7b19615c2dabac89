//! What every CPU kernel shares: the test for whether the fused kernel applies, slice access,
//! the output buffer, splitting rows over rayon's threads, and the vectorisable primitives
//! (lane accumulators, a branch-free `exp`, the AVX2/AVX-512 dispatch).

use std::ops::Range;

use candle_core::{bail, CpuStorage, Layout, Result, Tensor};
use rayon::prelude::*;

/// Whether the fused kernels apply to these operands and a weight: as `fused`, except that the
/// weight may also be kept in bf16 or f16 (a half-precision model).
pub(crate) fn fused_with_weight(ts: &[&Tensor], w: &Tensor) -> bool {
    use candle_core::DType;
    fused(ts) && w.device().is_cpu() && matches!(w.dtype(), DType::F32 | DType::BF16 | DType::F16)
}

/// Whether the fused kernels apply: every tensor on the CPU and f32. Anything else runs the
/// `reference` composition of candle ops.
pub(crate) fn fused(ts: &[&Tensor]) -> bool {
    !reference_ops()
        && ts
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
}

/// Whether the fused kernels run on `device` at all (the CPU, unless WICK_REFERENCE_OPS=1).
pub(crate) fn kernels_run_on(device: &candle_core::Device) -> bool {
    device.is_cpu() && !reference_ops()
}

/// WICK_REFERENCE_OPS=1 (read once): every op takes the path a GPU takes, the `reference`
/// composition of candle ops (and the optimiser its tensor path), here on the CPU, so that the
/// device path's logic is tested on machines without a GPU.
pub fn reference_ops() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("WICK_REFERENCE_OPS").is_some_and(|v| v == "1"))
}

/// The f32 elements of a contiguous tensor.
pub(crate) fn f32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what}: expected a contiguous f32 tensor"),
    }
}

/// Checks every target indexes a row of `v` logits (before the kernels index with it).
pub(super) fn check_target_range(op: &str, targets: &[u32], v: usize) -> Result<()> {
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= v) {
        bail!("{op}: target {bad} is out of range for a vocabulary of {v}");
    }
    Ok(())
}

/// The single output buffer of a kernel, not zero-filled: every kernel here writes each element
/// of its output before it reads any (rows are written whole, tails and masked keys included),
/// and a zero fill would be one more pass over memory per op. This is how candle allocates its
/// own outputs
/// (`alloc_uninit`); f32 has no invalid bit patterns, and the tests compare every element of
/// every output against a reference.
#[allow(clippy::uninit_vec)]
pub(super) fn output(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: see above: no element is read before the kernel has written it.
    unsafe { v.set_len(n) };
    v
}

// ---------------------------------------------------------------------------------------------
// Parallel row loops
// ---------------------------------------------------------------------------------------------

/// Ops with fewer elements of work than this per task stay on the calling thread: handing a job
/// to rayon and waiting for it costs a few microseconds.
pub(super) const MIN_TASK_WORK: usize = 16 * 1024;

/// Rows per task: `n_rows` (one task, run inline) when the op is too small to split, else
/// about four tasks per thread, which evens out ragged rows (causal softmax) at little cost.
pub(super) fn rows_per_task(n_rows: usize, work_per_row: usize) -> usize {
    let threads = rayon::current_num_threads();
    let total = n_rows.saturating_mul(work_per_row.max(1));
    if threads <= 1 || n_rows <= 1 || total < 2 * MIN_TASK_WORK {
        return n_rows.max(1);
    }
    let tasks = (threads * 4).min(total / MIN_TASK_WORK).max(2);
    n_rows.div_ceil(tasks)
}

/// Runs `f(first_row, rows_of_dst)` over `dst` cut into whole rows of `row_len`, in parallel when
/// worthwhile; returns each task's result in row order.
pub(super) fn map_rows<T, F>(dst: &mut [f32], row_len: usize, work_per_row: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &mut [f32]) -> T + Sync + Send,
{
    if dst.is_empty() || row_len == 0 {
        return Vec::new();
    }
    let n_rows = dst.len() / row_len;
    let per = rows_per_task(n_rows, work_per_row);
    if per >= n_rows {
        return vec![f(0, dst)];
    }
    dst.par_chunks_mut(per * row_len)
        .enumerate()
        .map(|(k, chunk)| f(k * per, chunk))
        .collect()
}

/// Runs `f(rows)` over `0..n_rows` cut into tasks, in parallel when worthwhile.
pub(super) fn map_ranges<T, F>(n_rows: usize, work_per_row: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(Range<usize>) -> T + Sync + Send,
{
    if n_rows == 0 {
        return Vec::new();
    }
    let per = rows_per_task(n_rows, work_per_row);
    if per >= n_rows {
        return vec![f(0..n_rows)];
    }
    (0..n_rows.div_ceil(per))
        .into_par_iter()
        .map(|k| f(k * per..((k + 1) * per).min(n_rows)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Vectorisable primitives
// ---------------------------------------------------------------------------------------------

/// Lanes of independent accumulators: float addition is not associative, so LLVM vectorises a
/// reduction only when the code spells out the lanes itself. 16: one AVX-512 register, two
/// AVX2 ones (8 would leave the AVX-512 build of the exp sums half-width).
pub(super) const LANES: usize = 16;

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    // The build enables AVX2 as well (every AVX-512 CPU has it); both are checked all the same.
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::env::var_os("WICK_NO_AVX512").is_none()
    })
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    // Cached by std after the first call: an atomic load.
    std::is_x86_feature_detected!("avx2")
}

/// `simd_dispatch!(body(a: A, b: B) -> R)`, as a function's last expression: calls the
/// `#[inline(always)]` fn `body` compiled for AVX-512F or else AVX2 when the CPU has it, else as
/// built. WICK_NO_AVX512=1 (read once) takes the AVX2 path, to compare the two.
macro_rules! simd_dispatch {
    ($body:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx2")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            if $crate::kernels::cpu::has_avx512() {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { avx512($($arg),*) };
            }
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            if $crate::kernels::cpu::has_avx2() {
                // SAFETY: the CPU has AVX2.
                return unsafe { avx2($($arg),*) };
            }
        }
        $body($($arg),*)
    }};
}
pub(crate) use simd_dispatch;

/// Defines a kernel three times, from one body: as portable code (SSE2 on x86-64, the build's
/// baseline: 4-wide) and compiled for AVX2 (8-wide) and AVX-512F (16-wide), chosen at run time.
/// The body and the primitives it calls are `#[inline(always)]` so that they are compiled into
/// each version, where exp-heavy kernels gain most from the wider vectors. All versions do the
/// same IEEE operations in the same order (Rust never fuses a * b + c into an FMA by itself), so
/// they give the same bits. (Handing the kernel as a closure to a single `#[target_feature]`
/// wrapper does not work: the closure is not compiled for the wider vectors, and runs slower
/// than even the portable version.)
macro_rules! simd_kernel {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            simd_dispatch!(portable($($arg: $ty),*) $(-> $ret)?)
        }
    };
}
pub(super) use simd_kernel;

/// e^x for f32, branch-free so that loops over it vectorise (libm's expf is a scalar call).
/// Cephes' expf: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial, 2^n by building
/// the exponent bits. Within 1e-7 relative of the exact value (measured over [-87, 88]); 0 below
/// -87 (e^-87 = 1.6e-38, at the edge of the denormals); clamped at e^88 above; NaN stays NaN.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // Comparisons are false for NaN, so these clamps let NaN through.
    let xc = if x > 88.0 { 88.0 } else { x };
    let xc = if xc < -87.0 { -87.0 } else { xc };
    let t = xc * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // n is in [-126, 127]: 2^n is a normal float with biased exponent n + 127.
    let n_int = t.to_bits().wrapping_sub(ROUND.to_bits());
    let two_n = f32::from_bits(n_int.wrapping_add(127) << 23);
    let y = er * two_n;
    if x < -87.0 {
        0.0
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// max_j a * x[j] (-inf for an empty slice).
#[inline(always)]
pub(super) fn max_scaled(x: &[f32], a: f32) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            let v = a * c[k];
            acc[k] = if v > acc[k] { v } else { acc[k] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for v in acc.into_iter().chain(rest.iter().map(|v| a * v)) {
        m = if v > m { v } else { m };
    }
    m
}

/// sum_j f(x[j]) with lane accumulators.
#[inline(always)]
pub(super) fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] += f(c[k]);
        }
    }
    let mut s = 0f32;
    for &v in rest {
        s += f(v);
    }
    acc.iter().sum::<f32>() + s
}

/// sum_j f(x[j], y[j]) with lane accumulators.
#[inline(always)]
pub(super) fn sum_map2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0f32; LANES];
    let full = n / LANES * LANES;
    for (cx, cy) in x[..full]
        .chunks_exact(LANES)
        .zip(y[..full].chunks_exact(LANES))
    {
        for k in 0..LANES {
            acc[k] += f(cx[k], cy[k]);
        }
    }
    let mut s = 0f32;
    for j in full..n {
        s += f(x[j], y[j]);
    }
    acc.iter().sum::<f32>() + s
}

/// sum_j a[j] * b[j] * c[j] with lane accumulators.
#[inline(always)]
pub(super) fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let n = a.len().min(b.len()).min(c.len());
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    let full = n / LANES * LANES;
    let mut acc = [0f32; LANES];
    for j0 in (0..full).step_by(LANES) {
        for k in 0..LANES {
            acc[k] += a[j0 + k] * b[j0 + k] * c[j0 + k];
        }
    }
    let mut s = 0f32;
    for j in full..n {
        s += a[j] * b[j] * c[j];
    }
    acc.iter().sum::<f32>() + s
}
