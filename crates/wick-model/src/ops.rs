//! Fused f32 CPU operations with their own backward pass, as candle custom ops.
//!
//! candle's own fused kernels (softmax_last_dim, rms_norm, rope, sdpa) have no backward pass and
//! silently cut the graph (DESIGN.md, "Known traps"); the differentiable compositions of basic ops
//! are correct but slow to train through: every op allocates, and the backward of each one is
//! itself several more ops. Each op here is one kernel forward and one kernel backward.
//!
//! How it plugs into candle's autograd: `Tensor::apply_op{1,2,3}` records the op in the graph, and
//! `Tensor::backward` later calls the op's `bwd` with the forward's arguments, its result and the
//! gradient of the result. `bwd` computes the argument gradients with a second, non-differentiable
//! custom op (`apply_op*_no_bwd`). Where one backward produces two gradients (x and weight, gate
//! and up) both live in one buffer and are handed back as views of it.
//!
//! The kernels are plain loops over slices written so that LLVM vectorises them (independent
//! accumulator lanes for reductions, a branch-free `exp`), parallelised over rows on rayon's
//! global pool (the one candle's matmul uses) once an op is big enough to repay the dispatch.
//!
//! On a non-CPU device every op falls back to the equivalent composition of basic candle ops (any
//! float dtype); on the CPU the fused ops take f32 only and return an error otherwise.

use std::ops::Range;

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

mod attention;
mod gemv;
mod head_logprobs;
mod head_loss;
mod linear;
mod lora;
mod product;
pub use attention::{attention, attention_packed, composed as attention_composed};
pub use gemv::{gemv, GEMV_MAX_ROWS};
pub use head_logprobs::{lm_head_entropy, lm_head_logprobs_train};
pub use head_loss::{lm_head_logprobs, lm_head_loss};
pub use linear::{frozen_matmul, linear, matmul_t};
pub use lora::lora_matmul;
pub use product::products_report;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`, x [..., D], weight [D].
/// Differentiable in x and weight.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    if weight.dims() != [d] {
        bail!(
            "rms_norm: weight has shape {:?}, expected [{d}] for x of shape {:?}",
            weight.dims(),
            x.dims()
        );
    }
    if !x.device().is_cpu() {
        return composed::rms_norm(x, weight, eps);
    }
    check_f32("rms_norm", &[x, weight])?;
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
}

/// Rotary embedding in Hugging Face's half-rotation convention:
/// `x * cos + rotate_half(x) * sin` with `rotate_half(x) = cat(-x[.., D/2..], x[.., ..D/2])`.
/// x [B, H, T, D] (any rank >= 2 ending in [T, D]; may be a strided view such as a transposed
/// [B, T, H, D], the output is contiguous), cos and sin [T, D] (constants: they get no gradient).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() < 2 {
        bail!("rope: x must have at least 2 dims [.., T, D], got {dims:?}");
    }
    let (t, d) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    if d % 2 != 0 {
        bail!("rope: the head dimension must be even, got {d}");
    }
    if cos.dims() != [t, d] || sin.dims() != [t, d] {
        bail!(
            "rope: cos {:?} and sin {:?} must be [T, D] = [{t}, {d}] for x {dims:?}",
            cos.dims(),
            sin.dims()
        );
    }
    if !x.device().is_cpu() {
        return composed::rope(x, cos, sin);
    }
    check_f32("rope", &[x, cos, sin])?;
    // The kernel reads any layout whose rows (last dim) are contiguous, so a transposed view
    // costs no copy.
    let x = if x.stride().last() == Some(&1) {
        x.clone()
    } else {
        x.contiguous()?
    };
    x.apply_op3(
        &cos.contiguous()?,
        &sin.contiguous()?,
        Rope { backward: false },
    )
}

/// Rotary embedding of the first `n_rot` heads of x [B, T, H, D] (contiguous, as a fused q/k/v
/// projection writes it: queries and keys first, values last; heads n_rot..H are copied
/// unchanged), written head-major, [B, H, T, D], the layout `attention_packed` reads: each
/// head's rows contiguous, with no separate transposing copy. cos and sin [T, D]. The same
/// rotation as `rope`; differentiable in x, whose gradient comes back [B, T, H, D].
pub fn rope_heads(x: &Tensor, n_rot: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (_b, t, h, d) = x.dims4()?;
    if d % 2 != 0 || n_rot > h {
        bail!(
            "rope_heads: x {:?} needs an even head dimension and at least {n_rot} heads",
            x.dims()
        );
    }
    if cos.dims() != [t, d] || sin.dims() != [t, d] {
        bail!(
            "rope_heads: cos {:?} and sin {:?} must be [T, D] = [{t}, {d}] for x {:?}",
            cos.dims(),
            sin.dims(),
            x.dims()
        );
    }
    if !x.device().is_cpu() {
        let heads = x.transpose(1, 2)?;
        let rot = composed::rope(&heads.narrow(1, 0, n_rot)?, cos, sin)?;
        return Tensor::cat(
            &[&rot, &heads.narrow(1, n_rot, h - n_rot)?.contiguous()?],
            1,
        );
    }
    check_f32("rope_heads", &[x, cos, sin])?;
    x.contiguous()?.apply_op3(
        &cos.contiguous()?,
        &sin.contiguous()?,
        RopeHeads {
            n_rot,
            backward: false,
        },
    )
}

/// Causal softmax of attention scores: `softmax(scale * att)` over the visible keys, exactly 0
/// elsewhere. att [B, H, Tq, Tk] with Tk >= Tq: query i sits at absolute position Tk - Tq + i
/// (so a KV cache works) and sees key j iff j <= Tk - Tq + i and, with `segments` ([B, Tk] u32
/// document ids of packed sequences), segments[b][j] == segments[b][Tk - Tq + i].
/// Differentiable in att.
pub fn causal_softmax(att: &Tensor, scale: f64, segments: Option<&Tensor>) -> Result<Tensor> {
    let (b, _h, tq, tk) = att.dims4()?;
    if tk < tq {
        bail!("causal_softmax: more queries ({tq}) than keys ({tk})");
    }
    if let Some(s) = segments {
        if s.dims() != [b, tk] || s.dtype() != DType::U32 {
            bail!(
                "causal_softmax: segments must be u32 [B, Tk] = [{b}, {tk}], got {:?} {:?}",
                s.dtype(),
                s.dims()
            );
        }
    }
    if !att.device().is_cpu() {
        return composed::causal_softmax(att, scale, segments);
    }
    check_f32("causal_softmax", &[att])?;
    let op = CausalSoftmax {
        scale: scale as f32,
    };
    match segments {
        None => att.contiguous()?.apply_op1(op),
        Some(s) => att.contiguous()?.apply_op2(&s.contiguous()?, op),
    }
}

/// `silu(gate) * up` (SwiGLU's gating), differentiable in both.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        bail!(
            "silu_mul: gate {:?} and up {:?} differ in shape",
            gate.dims(),
            up.dims()
        );
    }
    if !gate.device().is_cpu() {
        return gate.silu()? * up;
    }
    check_f32("silu_mul", &[gate, up])?;
    gate.contiguous()?.apply_op2(&up.contiguous()?, SiluMul)
}

/// `silu(gate) * up` with gate and up side by side in each row of gu [.., 2 I] (gate the first
/// I columns, up the last I), as one fused gate/up projection writes them; returns [.., I].
/// Differentiable in gu, whose gradient comes back in the same layout.
pub fn silu_mul_packed(gu: &Tensor) -> Result<Tensor> {
    let width = *gu.dims().last().unwrap_or(&0);
    if gu.rank() == 0 || !width.is_multiple_of(2) {
        bail!(
            "silu_mul_packed: the last dim of {:?} must be even (gate and up side by side)",
            gu.dims()
        );
    }
    if !gu.device().is_cpu() {
        let last = gu.rank() - 1;
        let (gate, up) = (
            gu.narrow(last, 0, width / 2)?,
            gu.narrow(last, width / 2, width / 2)?,
        );
        return gate.silu()? * up;
    }
    check_f32("silu_mul_packed", &[gu])?;
    gu.contiguous()?.apply_op1(SiluMulPacked)
}

/// Mean token cross-entropy, a scalar: `sum_i w_i * -log_softmax(logits_i)[t_i] / sum_i w_i`
/// (a plain mean without weights; 0, with a zero gradient, when the weights sum to 0).
/// logits [N, V] f32 (or [..., V]), targets [N] u32 (or [...]), weights [N] f32.
/// Differentiable in logits only; targets and weights are constants.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    check_targets("cross_entropy", logits, targets)?;
    if let Some(w) = weights {
        if w.dims() != targets.dims() {
            bail!(
                "cross_entropy: weights {:?} must have the shape of targets {:?}",
                w.dims(),
                targets.dims()
            );
        }
    }
    if !logits.device().is_cpu() {
        return composed::cross_entropy(logits, targets, weights);
    }
    check_f32("cross_entropy", &[logits])?;
    let (logits, targets) = (logits.contiguous()?, targets.contiguous()?);
    match weights {
        None => logits.apply_op2(&targets, CrossEntropy),
        Some(w) => {
            check_f32("cross_entropy", &[w])?;
            logits.apply_op3(&targets, &w.contiguous()?, CrossEntropy)
        }
    }
}

/// log p(target_i) for each row: logits [N, V] (or [..., V]), targets [N] u32 (or [...]);
/// the result has the shape of targets. Not differentiable (for perplexity and generation).
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check_targets("token_logprobs", logits, targets)?;
    if !logits.device().is_cpu() {
        return composed::token_logprobs(logits, targets);
    }
    check_f32("token_logprobs", &[logits])?;
    logits
        .contiguous()?
        .apply_op2_no_bwd(&targets.contiguous()?, &TokenLogprobs)
}

/// log_softmax over the last dimension. Not differentiable.
pub fn log_softmax_rows(logits: &Tensor) -> Result<Tensor> {
    if !logits.device().is_cpu() {
        return candle_nn::ops::log_softmax(logits, D::Minus1);
    }
    check_f32("log_softmax_rows", &[logits])?;
    logits.contiguous()?.apply_op1_no_bwd(&LogSoftmaxRows)
}

// ---------------------------------------------------------------------------------------------
// Checks and slice access
// ---------------------------------------------------------------------------------------------

fn check_f32(op: &str, ts: &[&Tensor]) -> Result<()> {
    for t in ts {
        if t.dtype() != DType::F32 {
            bail!(
                "{op}: the fused CPU kernel takes f32 tensors, got {:?}",
                t.dtype()
            );
        }
        if !t.device().is_cpu() {
            bail!("{op}: all tensors must be on the same (CPU) device");
        }
    }
    Ok(())
}

fn check_targets(op: &str, logits: &Tensor, targets: &Tensor) -> Result<()> {
    let dims = logits.dims();
    if dims.is_empty() || targets.dims() != &dims[..dims.len() - 1] {
        bail!(
            "{op}: targets {:?} must have the shape of logits {dims:?} without the last dim",
            targets.dims()
        );
    }
    if targets.dtype() != DType::U32 {
        bail!("{op}: targets must be u32, got {:?}", targets.dtype());
    }
    Ok(())
}

/// The f32 elements of a contiguous tensor.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what}: expected a contiguous f32 tensor"),
    }
}

fn u32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [u32]> {
    let data = s.as_slice::<u32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what}: expected a contiguous u32 tensor"),
    }
}

/// Checks every target indexes a row of `v` logits (before the kernels index with it).
fn check_target_range(op: &str, targets: &[u32], v: usize) -> Result<()> {
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= v) {
        bail!("{op}: target {bad} is out of range for a vocabulary of {v}");
    }
    Ok(())
}

/// The single output buffer of a kernel, not zero-filled: every kernel here writes each element
/// of its output before it reads any (rows are written whole, tails and masked keys included),
/// and a zero fill would be one more pass over memory per op, about 0.5 ms for a
/// [8, 6, 256, 256] attention matrix. This is how candle allocates its own outputs
/// (`alloc_uninit`); f32 has no invalid bit patterns, and the tests compare every element of
/// every output against a reference.
#[allow(clippy::uninit_vec)]
fn output(n: usize) -> Vec<f32> {
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
const MIN_TASK_WORK: usize = 16 * 1024;

/// Rows per task: `n_rows` (one task, run inline) when the op is too small to split, else
/// about four tasks per thread, which evens out ragged rows (causal softmax) at little cost.
fn rows_per_task(n_rows: usize, work_per_row: usize) -> usize {
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
fn map_rows<T, F>(dst: &mut [f32], row_len: usize, work_per_row: usize, f: F) -> Vec<T>
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
fn map_ranges<T, F>(n_rows: usize, work_per_row: usize, f: F) -> Vec<T>
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
/// AVX2 ones (8 lanes left the AVX-512 build of the exp sums half-width: measured on the nano
/// model's `ppl`, 16 lanes took the loss's row pass from 488 to 371 samples of ~4,300).
const LANES: usize = 16;

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    // The build enables AVX2 as well (every AVX-512 CPU has it); both are checked all the same.
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::env::var_os("WICK_NO_AVX512").is_none()
    })
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
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
            if $crate::ops::has_avx512() {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { avx512($($arg),*) };
            }
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            if $crate::ops::has_avx2() {
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
/// each version; exp-heavy kernels run about 1.5x faster with AVX2 than portable, and another
/// ~20% faster with AVX-512 (SwiGLU, the loss's rows). All versions do the same IEEE operations
/// in the same order (Rust never fuses a * b + c into an FMA by itself), so they give the same
/// bits. (Handing the kernel as a closure to a single `#[target_feature]` wrapper does not
/// work: measured, it ran 4x slower than even the portable version.)
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

/// e^x for f32, branch-free so that loops over it vectorise (libm's expf is a scalar call).
/// Cephes' expf: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial, 2^n by building
/// the exponent bits. Within 1e-7 relative of the exact value (measured over [-87, 88]); 0 below
/// -87 (e^-87 = 1.6e-38, at the edge of the denormals); clamped at e^88 above; NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
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
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// max_j a * x[j] (-inf for an empty slice).
#[inline(always)]
fn max_scaled(x: &[f32], a: f32) -> f32 {
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
fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
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
fn sum_map2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
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
fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
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

/// y[j] = exp(a * x[j] - m); returns the sum of the y[j].
#[inline(always)]
fn exp_store_sum(x: &[f32], a: f32, m: f32, y: &mut [f32]) -> f32 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &mut y[..n]);
    let full = n / LANES * LANES;
    let mut acc = [0f32; LANES];
    for (cx, cy) in x[..full]
        .chunks_exact(LANES)
        .zip(y[..full].chunks_exact_mut(LANES))
    {
        for k in 0..LANES {
            let e = exp(a * cx[k] - m);
            cy[k] = e;
            acc[k] += e;
        }
    }
    let mut s = 0f32;
    for j in full..n {
        let e = exp(a * x[j] - m);
        y[j] = e;
        s += e;
    }
    acc.iter().sum::<f32>() + s
}

/// log(sum_j exp(x[j])), computed stably.
#[inline(always)]
fn log_sum_exp(x: &[f32]) -> f32 {
    let m = max_scaled(x, 1.0);
    if m == f32::NEG_INFINITY {
        return m;
    }
    m + sum_map(x, |v| exp(v - m)).ln()
}

// ---------------------------------------------------------------------------------------------
// RMSNorm
// ---------------------------------------------------------------------------------------------

struct RmsNorm {
    eps: f32,
}

/// 1 / sqrt(mean(x²) + eps) of one row.
#[inline(always)]
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (sum_map(x, |v| v * v) / x.len() as f32 + eps).sqrt()
}

simd_kernel! {
    /// y = x * r * w for whole rows of x (r = 1 / rms of the row).
    fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
        let d = w.len();
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let r = inv_rms(xr, eps);
            for ((y, &x), &w) in yr.iter_mut().zip(xr).zip(w) {
                *y = x * r * w;
            }
        }
    }
}

simd_kernel! {
    /// dx for whole rows, and the rows' dw contributions added to `dw` (empty: no dw).
    /// With y = w * x * r, r = (mean(x²) + eps)^-1/2, g = dy * w, x̂ = x * r:
    ///   dx = r * (g - x̂ * mean(g * x̂)),   dw = sum over rows of dy * x̂.
    fn rms_norm_bwd_rows(
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        eps: f32,
        dx: &mut [f32],
        dw: &mut [f32],
    ) {
        let d = w.len();
        let rows = x.chunks_exact(d).zip(dy.chunks_exact(d));
        for ((xr, dyr), dxr) in rows.zip(dx.chunks_exact_mut(d)) {
            let r = inv_rms(xr, eps);
            // dx = r * (g - x * c) with c = r * mean(g * x̂) = r² * sum(dy * w * x) / D.
            let c = r * r * dot3(dyr, w, xr) / d as f32;
            for (((dx, &dy), &w), &x) in dxr.iter_mut().zip(dyr).zip(w).zip(xr) {
                *dx = r * (dy * w - x * c);
            }
            for ((dw, &dy), &x) in dw.iter_mut().zip(dyr).zip(xr) {
                *dw += dy * x * r;
            }
        }
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "wick-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, "rms_norm x")?;
        let w = f32s(s2, l2, "rms_norm weight")?;
        let d = w.len();
        let mut out = output(x.len());
        map_rows(&mut out, d, d, |r0, y| {
            rms_norm_rows(&x[r0 * d..r0 * d + y.len()], w, self.eps, y)
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // A weight that is not trained (neither a Var nor computed from one) needs no gradient.
        let weight_grad = w.track_op();
        let out = x.apply_op3_no_bwd(
            w,
            &grad.contiguous()?,
            &RmsNormBwd {
                eps: self.eps,
                weight_grad,
            },
        )?;
        let n = x.elem_count();
        // Gradients handed back for untracked tensors would only be stored and never read.
        let dx = match x.track_op() {
            true => Some(out.narrow(0, 0, n)?.reshape(x.shape())?),
            false => None,
        };
        let dw = match weight_grad {
            true => Some(out.narrow(0, n, w.elem_count())?),
            false => None,
        };
        Ok((dx, dw))
    }
}

/// (x, w, dy) -> [dx (x's elements) then, with `weight_grad`, dw (D elements)], flat.
struct RmsNormBwd {
    eps: f32,
    weight_grad: bool,
}

impl CustomOp3 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "wick-rms-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, "rms_norm x")?;
        let w = f32s(s2, l2, "rms_norm weight")?;
        let dy = f32s(s3, l3, "rms_norm grad")?;
        let d = w.len();
        let n = x.len();
        let mut out = output(n + if self.weight_grad { d } else { 0 });
        let (dx, dw) = out.split_at_mut(n);
        let weight_grad = self.weight_grad;
        // Each task sums its rows' dw contributions; the partial sums are added at the end.
        let partial_dw = map_rows(dx, d, 2 * d, |r0, dst| {
            let mut dw = vec![0f32; if weight_grad { d } else { 0 }];
            let span = r0 * d..r0 * d + dst.len();
            rms_norm_bwd_rows(&x[span.clone()], w, &dy[span], self.eps, dst, &mut dw);
            dw
        });
        dw.fill(0.0);
        for p in &partial_dw {
            for (a, b) in dw.iter_mut().zip(p) {
                *a += b;
            }
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding
// ---------------------------------------------------------------------------------------------

/// Forward (x, cos, sin) -> y, or with `backward` (dy, cos, sin) -> dx.
struct Rope {
    backward: bool,
}

/// Walks the storage offsets of successive rows (all dims but the last) of a strided layout.
struct RowOffsets<'a> {
    dims: &'a [usize],
    strides: &'a [usize],
    idx: Vec<usize>,
    offset: usize,
}

impl<'a> RowOffsets<'a> {
    fn new(l: &'a Layout, first_row: usize) -> Self {
        let rank = l.dims().len();
        let (dims, strides) = (&l.dims()[..rank - 1], &l.stride()[..rank - 1]);
        let mut idx = vec![0; dims.len()];
        let (mut rest, mut offset) = (first_row, l.start_offset());
        for k in (0..dims.len()).rev() {
            idx[k] = rest % dims[k];
            rest /= dims[k];
            offset += idx[k] * strides[k];
        }
        RowOffsets {
            dims,
            strides,
            idx,
            offset,
        }
    }

    /// The current row's offset and its index along the second-to-last dim (T); then advances.
    fn next_row(&mut self) -> (usize, usize) {
        let cur = (self.offset, *self.idx.last().unwrap_or(&0));
        for k in (0..self.dims.len()).rev() {
            self.idx[k] += 1;
            self.offset += self.strides[k];
            if self.idx[k] < self.dims[k] {
                break;
            }
            self.offset -= self.strides[k] * self.dims[k];
            self.idx[k] = 0;
        }
        cur
    }
}

simd_kernel! {
    /// One row of rotary embedding (or, with `backward`, its transpose) into y.
    fn rotate(x: &[f32], cos: &[f32], sin: &[f32], y: &mut [f32], backward: bool) {
        let h = x.len() / 2;
        let (x1, x2) = x.split_at(h);
        let (c1, c2) = cos.split_at(h);
        let (s1, s2) = sin.split_at(h);
        let (y1, y2) = y.split_at_mut(h);
        if backward {
            // Transpose of the forward map (does not assume the halves of cos and sin are equal,
            // although Hugging Face's tables are).
            for i in 0..h {
                y1[i] = x1[i] * c1[i] + x2[i] * s2[i];
                y2[i] = x2[i] * c2[i] - x1[i] * s1[i];
            }
        } else {
            for i in 0..h {
                y1[i] = x1[i] * c1[i] - x2[i] * s1[i];
                y2[i] = x2[i] * c2[i] + x1[i] * s2[i];
            }
        }
    }
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        if self.backward {
            "wick-rope-bwd"
        } else {
            "wick-rope"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = s1.as_slice::<f32>()?;
        let cos = f32s(s2, l2, "rope cos")?;
        let sin = f32s(s3, l3, "rope sin")?;
        let dims = l1.dims();
        if dims.len() < 2 || l1.stride().last() != Some(&1) {
            bail!("rope: x must be [.., T, D] with contiguous rows");
        }
        let d = dims[dims.len() - 1];
        let backward = self.backward;
        let mut out = output(l1.shape().elem_count());
        map_rows(&mut out, d, d, |r0, dst| {
            let mut rows = RowOffsets::new(l1, r0);
            for y in dst.chunks_exact_mut(d) {
                let (off, t) = rows.next_row();
                rotate(
                    &x[off..off + d],
                    &cos[t * d..(t + 1) * d],
                    &sin[t * d..(t + 1) * d],
                    y,
                    backward,
                );
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = if grad.stride().last() == Some(&1) {
            grad.clone()
        } else {
            grad.contiguous()?
        };
        let dx = grad.apply_op3_no_bwd(cos, sin, &Rope { backward: true })?;
        Ok((Some(dx), None, None))
    }
}

/// `rope_heads`: forward (x [B, T, H, D], cos, sin) -> y [B, H, T, D], or with `backward`
/// (dy [B, H, T, D], cos, sin) -> dx [B, T, H, D]; heads n_rot.. are passed through.
struct RopeHeads {
    n_rot: usize,
    backward: bool,
}

impl CustomOp3 for RopeHeads {
    fn name(&self) -> &'static str {
        if self.backward {
            "wick-rope-heads-bwd"
        } else {
            "wick-rope-heads"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, "rope_heads x")?;
        let cos = f32s(s2, l2, "rope_heads cos")?;
        let sin = f32s(s3, l3, "rope_heads sin")?;
        let (n_rot, backward) = (self.n_rot, self.backward);
        let (t, h, d, out_shape) = if backward {
            let (b, h, t, d) = l1.shape().dims4()?;
            (t, h, d, Shape::from((b, t, h, d)))
        } else {
            let (b, t, h, d) = l1.shape().dims4()?;
            (t, h, d, Shape::from((b, h, t, d)))
        };
        let mut out = output(x.len());
        map_rows(&mut out, d, d, |r0, dst| {
            for (r, y) in (r0..).zip(dst.chunks_exact_mut(d)) {
                // The output row's head and position, and the input row it comes from.
                let (head, pos, src) = if backward {
                    let (bi, pos, head) = (r / (t * h), (r / h) % t, r % h);
                    (head, pos, (bi * h + head) * t + pos)
                } else {
                    let (bi, head, pos) = (r / (h * t), (r / t) % h, r % t);
                    (head, pos, (bi * t + pos) * h + head)
                };
                let x = &x[src * d..(src + 1) * d];
                if head < n_rot {
                    let tab = pos * d..(pos + 1) * d;
                    rotate(x, &cos[tab.clone()], &sin[tab], y, backward);
                } else {
                    y.copy_from_slice(x);
                }
            }
        });
        Ok((CpuStorage::F32(out), out_shape))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = grad.contiguous()?.apply_op3_no_bwd(
            cos,
            sin,
            &RopeHeads {
                n_rot: self.n_rot,
                backward: true,
            },
        )?;
        Ok((Some(dx), None, None))
    }
}

// ---------------------------------------------------------------------------------------------
// Causal softmax
// ---------------------------------------------------------------------------------------------

/// CustomOp1 without segments, CustomOp2 with them.
struct CausalSoftmax {
    scale: f32,
}

simd_kernel! {
    /// Rows r0.. of the causal softmax into `y` (whole rows); `att` is the whole input.
    fn causal_softmax_rows(
        att: &[f32],
        segments: Option<&[u32]>,
        scale: f32,
        h: usize,
        tq: usize,
        tk: usize,
        r0: usize,
        y: &mut [f32],
    ) {
        for (k, y) in y.chunks_exact_mut(tk).enumerate() {
            let r = r0 + k;
            let x = &att[r * tk..(r + 1) * tk];
            let p = tk - tq + r % tq; // the query's absolute position: keys 0..=p are causal
            let (vis, tail) = y.split_at_mut(p + 1);
            tail.fill(0.0);
            match segments {
                None => {
                    let x = &x[..=p];
                    let m = max_scaled(x, scale);
                    let inv = 1.0 / exp_store_sum(x, scale, m, vis);
                    vis.iter_mut().for_each(|v| *v *= inv);
                }
                Some(seg) => {
                    let b = r / (h * tq);
                    let seg = &seg[b * tk..b * tk + p + 1];
                    let id = seg[p];
                    // Keys before the first one of this document are all masked.
                    let lo = seg.iter().position(|&s| s == id).unwrap_or(p);
                    vis[..lo].fill(0.0);
                    let (x, seg, vis) = (&x[lo..=p], &seg[lo..], &mut vis[lo..]);
                    let mut m = f32::NEG_INFINITY;
                    for (&v, &s) in x.iter().zip(seg) {
                        let v = if s == id { scale * v } else { f32::NEG_INFINITY };
                        m = if v > m { v } else { m };
                    }
                    let mut sum = 0f32;
                    for ((y, &v), &s) in vis.iter_mut().zip(x).zip(seg) {
                        let e = exp(scale * v - m);
                        *y = if s == id { e } else { 0.0 };
                        sum += *y;
                    }
                    let inv = 1.0 / sum;
                    vis.iter_mut().for_each(|v| *v *= inv);
                }
            }
        }
    }
}

simd_kernel! {
    /// Rows r0.. of the causal softmax's backward into `dx`; `y` and `dy` are whole tensors.
    fn causal_softmax_bwd_rows(
        y: &[f32],
        dy: &[f32],
        scale: f32,
        tq: usize,
        tk: usize,
        r0: usize,
        dx: &mut [f32],
    ) {
        for (k, dx) in dx.chunks_exact_mut(tk).enumerate() {
            let r = r0 + k;
            let p = tk - tq + r % tq;
            let (yr, dyr) = (&y[r * tk..r * tk + p + 1], &dy[r * tk..r * tk + p + 1]);
            let (vis, tail) = dx.split_at_mut(p + 1);
            tail.fill(0.0);
            let s = sum_map2(yr, dyr, |a, b| a * b);
            for ((dx, &y), &dy) in vis.iter_mut().zip(yr).zip(dyr) {
                *dx = scale * y * (dy - s);
            }
        }
    }
}

fn causal_softmax_fwd(
    att: &[f32],
    l: &Layout,
    segments: Option<&[u32]>,
    scale: f32,
) -> Result<(CpuStorage, Shape)> {
    let (_b, h, tq, tk) = l.shape().dims4()?;
    let mut out = output(att.len());
    map_rows(&mut out, tk, tk / 2 + 1, |r0, y| {
        causal_softmax_rows(att, segments, scale, h, tq, tk, r0, y)
    });
    Ok((CpuStorage::F32(out), l.shape().clone()))
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "wick-causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        causal_softmax_fwd(f32s(s, l, "causal_softmax att")?, l, None, self.scale)
    }

    fn bwd(&self, _att: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx =
            res.apply_op2_no_bwd(&grad.contiguous()?, &CausalSoftmaxBwd { scale: self.scale })?;
        Ok(Some(dx))
    }
}

impl CustomOp2 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "wick-causal-softmax-segments"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let att = f32s(s1, l1, "causal_softmax att")?;
        let seg = u32s(s2, l2, "causal_softmax segments")?;
        causal_softmax_fwd(att, l1, Some(seg), self.scale)
    }

    fn bwd(
        &self,
        _att: &Tensor,
        _segments: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx =
            res.apply_op2_no_bwd(&grad.contiguous()?, &CausalSoftmaxBwd { scale: self.scale })?;
        Ok((Some(dx), None))
    }
}

/// (y, dy) -> dx = scale * y * (dy - sum_j dy_j y_j). Masked keys have y = 0 and so get 0
/// whatever the mask was; keys after the query's position are not even read.
struct CausalSoftmaxBwd {
    scale: f32,
}

impl CustomOp2 for CausalSoftmaxBwd {
    fn name(&self) -> &'static str {
        "wick-causal-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = f32s(s1, l1, "causal_softmax result")?;
        let dy = f32s(s2, l2, "causal_softmax grad")?;
        let (_b, _h, tq, tk) = l1.shape().dims4()?;
        let scale = self.scale;
        let mut out = output(y.len());
        map_rows(&mut out, tk, tk / 2 + 1, |r0, dx| {
            causal_softmax_bwd_rows(y, dy, scale, tq, tk, r0, dx)
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU gating
// ---------------------------------------------------------------------------------------------

struct SiluMul;

simd_kernel! {
    fn silu_mul_kernel(g: &[f32], u: &[f32], y: &mut [f32]) {
        for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
            *y = g * sigmoid(g) * u;
        }
    }
}

simd_kernel! {
    fn silu_mul_bwd_kernel(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) {
        for ((((dg, du), &g), &u), &dy) in dg.iter_mut().zip(du).zip(g).zip(u).zip(dy) {
            let s = sigmoid(g);
            *dg = dy * u * s * (1.0 + g * (1.0 - s));
            *du = dy * g * s;
        }
    }
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "wick-silu-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32s(s1, l1, "silu_mul gate")?;
        let u = f32s(s2, l2, "silu_mul up")?;
        let mut out = output(g.len());
        map_rows(&mut out, 1, 1, |i0, y| {
            silu_mul_kernel(&g[i0..i0 + y.len()], &u[i0..i0 + y.len()], y)
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let out = gate.apply_op3_no_bwd(up, &grad.contiguous()?, &SiluMulBwd)?;
        let n = gate.elem_count();
        let part = |t: &Tensor, start: usize| -> Result<Option<Tensor>> {
            // Gradients handed back for untracked tensors would only be stored and never read.
            match t.track_op() {
                true => Ok(Some(out.narrow(0, start, n)?.reshape(t.shape())?)),
                false => Ok(None),
            }
        };
        Ok((part(gate, 0)?, part(up, n)?))
    }
}

/// `silu_mul_packed`: rows of [gate | up] -> rows of silu(gate) * up.
struct SiluMulPacked;

impl CustomOp1 for SiluMulPacked {
    fn name(&self) -> &'static str {
        "wick-silu-mul-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let gu = f32s(s, l, "silu_mul_packed gu")?;
        let mut dims = l.dims().to_vec();
        let width = dims.pop().unwrap_or(0);
        let i = width / 2;
        dims.push(i);
        let mut out = output(gu.len() / 2);
        map_rows(&mut out, i, i, |r0, dst| {
            for (r, y) in (r0..).zip(dst.chunks_exact_mut(i)) {
                let (g, u) = gu[r * width..(r + 1) * width].split_at(i);
                silu_mul_kernel(g, u, y);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(&self, gu: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(gu.apply_op2_no_bwd(
            &grad.contiguous()?,
            &SiluMulPackedBwd,
        )?))
    }
}

/// (gu, dy) -> d gu, the rows of `SiluMulBwd`'s [d gate | d up] side by side.
struct SiluMulPackedBwd;

impl CustomOp2 for SiluMulPackedBwd {
    fn name(&self) -> &'static str {
        "wick-silu-mul-packed-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gu = f32s(s1, l1, "silu_mul_packed gu")?;
        let dy = f32s(s2, l2, "silu_mul_packed grad")?;
        let width = *l1.dims().last().unwrap_or(&0);
        let i = width / 2;
        let mut out = output(gu.len());
        map_rows(&mut out, width, width, |r0, dst| {
            for (r, d) in (r0..).zip(dst.chunks_exact_mut(width)) {
                let (g, u) = gu[r * width..(r + 1) * width].split_at(i);
                let (dg, du) = d.split_at_mut(i);
                silu_mul_bwd_kernel(g, u, &dy[r * i..(r + 1) * i], dg, du);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// (gate, up, dy) -> [d gate, d up], flat. With σ = sigmoid(g):
/// d gate = dy * up * σ * (1 + g * (1 - σ)),  d up = dy * g * σ.
struct SiluMulBwd;

impl CustomOp3 for SiluMulBwd {
    fn name(&self) -> &'static str {
        "wick-silu-mul-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32s(s1, l1, "silu_mul gate")?;
        let u = f32s(s2, l2, "silu_mul up")?;
        let dy = f32s(s3, l3, "silu_mul grad")?;
        let n = g.len();
        let mut out = output(2 * n);
        let (dg, du) = out.split_at_mut(n);
        let kernel = |i0: usize, dg: &mut [f32], du: &mut [f32]| {
            let span = i0..i0 + dg.len();
            silu_mul_bwd_kernel(&g[span.clone()], &u[span.clone()], &dy[span], dg, du)
        };
        let per = rows_per_task(n, 2);
        if per >= n {
            kernel(0, dg, du);
        } else {
            dg.par_chunks_mut(per)
                .zip(du.par_chunks_mut(per))
                .enumerate()
                .for_each(|(k, (a, b))| kernel(k * per, a, b));
        }
        Ok((CpuStorage::F32(out), Shape::from(2 * n)))
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy and log-probabilities
// ---------------------------------------------------------------------------------------------

/// CustomOp2 (logits, targets) or CustomOp3 (logits, targets, weights) -> scalar mean loss.
struct CrossEntropy;

simd_kernel! {
    /// (sum of w * loss, sum of w) over `rows`, in f64: a mean over thousands of rows.
    fn cross_entropy_rows(
        logits: &[f32],
        targets: &[u32],
        weights: Option<&[f32]>,
        v: usize,
        rows: Range<usize>,
    ) -> (f64, f64) {
        let (mut loss, mut wsum) = (0f64, 0f64);
        for i in rows {
            let w = weights.map_or(1.0, |w| w[i]);
            if w == 0.0 {
                continue; // masked (e.g. prompt) tokens cost nothing
            }
            let x = &logits[i * v..(i + 1) * v];
            loss += w as f64 * (log_sum_exp(x) - x[targets[i] as usize]) as f64;
            wsum += w as f64;
        }
        (loss, wsum)
    }
}

simd_kernel! {
    /// Rows r0.. of d logits = (softmax - onehot) * k * w_i, into `d` (whole rows).
    fn cross_entropy_bwd_rows(
        logits: &[f32],
        targets: &[u32],
        weights: Option<&[f32]>,
        v: usize,
        k: f64,
        r0: usize,
        d: &mut [f32],
    ) {
        for (k_row, d) in d.chunks_exact_mut(v).enumerate() {
            let i = r0 + k_row;
            let coef = (k * weights.map_or(1.0, |w| w[i]) as f64) as f32;
            if coef == 0.0 {
                d.fill(0.0);
                continue;
            }
            let x = &logits[i * v..(i + 1) * v];
            let m = max_scaled(x, 1.0);
            let c = coef / exp_store_sum(x, 1.0, m, d);
            d.iter_mut().for_each(|e| *e *= c);
            d[targets[i] as usize] -= coef;
        }
    }
}

fn cross_entropy_fwd(
    logits: &[f32],
    l: &Layout,
    targets: &[u32],
    weights: Option<&[f32]>,
) -> Result<(CpuStorage, Shape)> {
    let v = *l.dims().last().unwrap_or(&0);
    let n = targets.len();
    check_target_range("cross_entropy", targets, v)?;
    // Per task (sum of w * loss, sum of w), in f64: the mean of thousands of rows.
    let parts = map_ranges(n, v, |rows| {
        cross_entropy_rows(logits, targets, weights, v, rows)
    });
    let (loss, wsum) = parts
        .iter()
        .fold((0f64, 0f64), |(a, b), (c, d)| (a + c, b + d));
    let mean = if wsum == 0.0 { 0.0 } else { loss / wsum };
    Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "wick-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = f32s(s1, l1, "cross_entropy logits")?;
        let targets = u32s(s2, l2, "cross_entropy targets")?;
        cross_entropy_fwd(logits, l1, targets, None)
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = CrossEntropyBwd {
            upstream: grad.to_dtype(DType::F32)?.to_scalar::<f32>()?,
        };
        Ok((Some(logits.apply_op2_no_bwd(targets, &op)?), None))
    }
}

impl CustomOp3 for CrossEntropy {
    fn name(&self) -> &'static str {
        "wick-cross-entropy-weighted"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = f32s(s1, l1, "cross_entropy logits")?;
        let targets = u32s(s2, l2, "cross_entropy targets")?;
        let weights = f32s(s3, l3, "cross_entropy weights")?;
        cross_entropy_fwd(logits, l1, targets, Some(weights))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        weights: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = CrossEntropyBwd {
            upstream: grad.to_dtype(DType::F32)?.to_scalar::<f32>()?,
        };
        let dl = logits.apply_op3_no_bwd(targets, weights, &op)?;
        Ok((Some(dl), None, None))
    }
}

/// (logits, targets[, weights]) -> d logits = (softmax - onehot) * w_i / sum(w) * upstream.
/// The upstream gradient is a scalar, read once in `bwd` and carried here.
struct CrossEntropyBwd {
    upstream: f32,
}

fn cross_entropy_bwd(
    logits: &[f32],
    l: &Layout,
    targets: &[u32],
    weights: Option<&[f32]>,
    upstream: f32,
) -> Result<(CpuStorage, Shape)> {
    let v = *l.dims().last().unwrap_or(&0);
    let n = targets.len();
    check_target_range("cross_entropy", targets, v)?;
    let wsum = weights.map_or(n as f64, |w| w.iter().map(|&x| x as f64).sum());
    let k = if wsum == 0.0 {
        0.0
    } else {
        upstream as f64 / wsum
    };
    let mut out = output(logits.len());
    map_rows(&mut out, v, v, |r0, d| {
        cross_entropy_bwd_rows(logits, targets, weights, v, k, r0, d)
    });
    Ok((CpuStorage::F32(out), l.shape().clone()))
}

impl CustomOp2 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "wick-cross-entropy-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = f32s(s1, l1, "cross_entropy logits")?;
        let targets = u32s(s2, l2, "cross_entropy targets")?;
        cross_entropy_bwd(logits, l1, targets, None, self.upstream)
    }
}

impl CustomOp3 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "wick-cross-entropy-weighted-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = f32s(s1, l1, "cross_entropy logits")?;
        let targets = u32s(s2, l2, "cross_entropy targets")?;
        let weights = f32s(s3, l3, "cross_entropy weights")?;
        cross_entropy_bwd(logits, l1, targets, Some(weights), self.upstream)
    }
}

simd_kernel! {
    fn token_logprob_rows(logits: &[f32], targets: &[u32], v: usize, r0: usize, y: &mut [f32]) {
        for (k, y) in y.iter_mut().enumerate() {
            let i = r0 + k;
            let x = &logits[i * v..(i + 1) * v];
            *y = x[targets[i] as usize] - log_sum_exp(x);
        }
    }
}

simd_kernel! {
    fn log_softmax_rows_kernel(x: &[f32], v: usize, y: &mut [f32]) {
        for (x, y) in x.chunks_exact(v).zip(y.chunks_exact_mut(v)) {
            let lse = log_sum_exp(x);
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x - lse;
            }
        }
    }
}

/// (logits [.., V], targets [..]) -> log p(target) [..].
struct TokenLogprobs;

impl CustomOp2 for TokenLogprobs {
    fn name(&self) -> &'static str {
        "wick-token-logprobs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = f32s(s1, l1, "token_logprobs logits")?;
        let targets = u32s(s2, l2, "token_logprobs targets")?;
        let v = *l1.dims().last().unwrap_or(&0);
        check_target_range("token_logprobs", targets, v)?;
        let mut out = output(targets.len());
        map_rows(&mut out, 1, v, |r0, y| {
            token_logprob_rows(logits, targets, v, r0, y)
        });
        Ok((CpuStorage::F32(out), l2.shape().clone()))
    }
}

/// log_softmax over the last dim.
struct LogSoftmaxRows;

impl CustomOp1 for LogSoftmaxRows {
    fn name(&self) -> &'static str {
        "wick-log-softmax-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let logits = f32s(s, l, "log_softmax_rows logits")?;
        let v = *l.dims().last().unwrap_or(&1);
        let mut out = output(logits.len());
        map_rows(&mut out, v, v, |r0, y| {
            log_softmax_rows_kernel(&logits[r0 * v..r0 * v + y.len()], v, y)
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// Compositions of basic ops, for devices without a fused kernel
// ---------------------------------------------------------------------------------------------

mod composed {
    use candle_core::{DType, Device, Result, Tensor, D};

    pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)
    }

    pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(&cos.to_dtype(x.dtype())?)?
            + rotated.broadcast_mul(&sin.to_dtype(x.dtype())?)?
    }

    /// softmax(scale * att + mask) with an additive 0 / -inf mask [B, 1, Tq, Tk] built on the CPU.
    pub fn causal_softmax(att: &Tensor, scale: f64, segments: Option<&Tensor>) -> Result<Tensor> {
        let (b, _h, tq, tk) = att.dims4()?;
        let seg = match segments {
            Some(s) => Some(s.to_device(&Device::Cpu)?.to_vec2::<u32>()?),
            None => None,
        };
        let nb = if seg.is_some() { b } else { 1 };
        let mut mask = vec![0f32; nb * tq * tk];
        for bi in 0..nb {
            for i in 0..tq {
                let p = tk - tq + i;
                for j in 0..tk {
                    let visible = j <= p && seg.as_ref().is_none_or(|s| s[bi][j] == s[bi][p]);
                    if !visible {
                        mask[(bi * tq + i) * tk + j] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(mask, (nb, 1, tq, tk), att.device())?.to_dtype(att.dtype())?;
        candle_nn::ops::softmax(&(att * scale)?.broadcast_add(&mask)?, D::Minus1)
    }

    pub fn cross_entropy(
        logits: &Tensor,
        targets: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        let v = logits.dim(D::Minus1)?;
        let logits = logits.reshape(((), v))?.to_dtype(DType::F32)?;
        let targets = targets.flatten_all()?;
        let nll = candle_nn::ops::log_softmax(&logits, D::Minus1)?
            .gather(&targets.unsqueeze(1)?, 1)?
            .squeeze(1)?
            .neg()?;
        let w = match weights {
            Some(w) => w.flatten_all()?.to_dtype(DType::F32)?,
            None => nll.ones_like()?,
        };
        let wsum = w.sum_all()?.to_scalar::<f32>()?;
        if wsum == 0.0 {
            return (nll * w)?.sum_all()? * 0.0;
        }
        (nll * w)?.sum_all()? / wsum as f64
    }

    pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        candle_nn::ops::log_softmax(logits, D::Minus1)?
            .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
            .squeeze(D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    //! The fallbacks for non-CPU devices compute the same functions as the fused kernels
    //! (checked here on the CPU; tests/ops.rs checks the kernels and their gradients).
    use super::*;
    use candle_core::Device;

    fn close(a: &Tensor, b: &Tensor) {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn fallbacks_match_kernels() {
        let dev = &Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 3, 5, 8), dev).unwrap();
        let w = Tensor::randn(1f32, 0.1, 8, dev).unwrap();
        close(
            &composed::rms_norm(&x, &w, 1e-5).unwrap(),
            &rms_norm(&x, &w, 1e-5).unwrap(),
        );
        let cos = Tensor::randn(0f32, 1., (5, 8), dev).unwrap();
        let sin = Tensor::randn(0f32, 1., (5, 8), dev).unwrap();
        close(
            &composed::rope(&x, &cos, &sin).unwrap(),
            &rope(&x, &cos, &sin).unwrap(),
        );
        let att = Tensor::randn(0f32, 2., (2, 3, 4, 7), dev).unwrap();
        let seg = Tensor::new(&[[0u32, 0, 1, 1, 1, 2, 2], [5, 6, 6, 5, 6, 6, 7]], dev).unwrap();
        for s in [None, Some(&seg)] {
            close(
                &composed::causal_softmax(&att, 0.3, s).unwrap(),
                &causal_softmax(&att, 0.3, s).unwrap(),
            );
        }
        let logits = Tensor::randn(0f32, 3., (6, 11), dev).unwrap();
        let t = Tensor::new(&[0u32, 10, 3, 3, 7, 1], dev).unwrap();
        let wt = Tensor::new(&[1f32, 0., 2., 0.5, 0., 1.], dev).unwrap();
        for wts in [None, Some(&wt), Some(&wt.zeros_like().unwrap())] {
            close(
                &composed::cross_entropy(&logits, &t, wts).unwrap(),
                &cross_entropy(&logits, &t, wts).unwrap(),
            );
        }
        close(
            &composed::token_logprobs(&logits, &t).unwrap(),
            &token_logprobs(&logits, &t).unwrap(),
        );
    }
}
