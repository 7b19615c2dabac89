//! Low-precision matrix products: bf16 and f16 operands with f32 accumulation, as
//! `torch.autocast` runs a matmul on the CPU. Both operands are rounded to the narrow format
//! (round to nearest even), every product of two rounded values is exact in f32 (8 + 8
//! significant bits for bf16, 11 + 11 for f16) and the sums are f32.
//!
//! - `mm_bf16` has `product::mm`'s contract, on one of three kernels (`Bf16Kernel`, chosen once
//!   by `bf16_kernel`): AMX tiles (`tdpbf16ps`), AVX512_BF16 register tiles (`vdpbf16ps`), both
//!   on operands packed into bf16 pairs, or rounded f32 copies of the operands through the f32
//!   `mm`. All three compute the same sums: an f32 FMA of two bf16 values is the exact product
//!   plus one rounding, as the bf16 instructions do. They differ in the order of the additions
//!   (the instructions add the two products of a k-pair one after the other) and in
//!   subnormals, which the bf16 instructions read as zero and flush to zero (Intel's
//!   definition). Each gives the same bits on any number of threads.
//! - `mm_f16`: operands rounded to IEEE f16, then the f32 `mm`. Values beyond f16's range
//!   become ±inf, so an overflow shows up as inf/NaN in the result, which is what a dynamic
//!   loss scaler looks for. (This CPU family also has AVX512_FP16, but its multiply-adds
//!   accumulate in f16, not the semantics wanted here, so there is no fast path.)
//! - `gemv_bf16`: the decode-time product with weights stored as bf16 bits, each widened to f32
//!   as it is read: half the bytes of an f32 weight for the same result as an f32 weight that
//!   holds the bf16 values.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::cpu::{map_ranges, simd_dispatch, simd_kernel, LANES};
use super::product::{mm_f32 as mm, Strides};

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

/// f32 -> bf16 bits, round to nearest even; ±inf stays ±inf, finite values that round past
/// bf16's largest become ±inf, NaN stays NaN (quieted, sign and top payload bits kept). Bit for
/// bit `half::bf16::from_f32`, written without branches so that slice loops vectorise.
#[inline(always)]
pub(super) fn round_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    // Adding 0x7fff plus the kept part's lowest bit rounds ties to even; a carry runs into the
    // exponent, which is how the largest values round up to inf.
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let nan = (b >> 16) | 0x0040;
    (if b & 0x7fff_ffff > 0x7f80_0000 {
        nan
    } else {
        rounded
    }) as u16
}

/// bf16 bits -> f32, exact. A signalling NaN stays signalling (`half` quiets it); any
/// arithmetic on it quiets it anyway.
#[inline(always)]
pub(super) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 -> IEEE f16 bits, round to nearest even: beyond 65504 (from 65520 on, which rounds up)
/// ±inf, below 2^-14 f16 subnormals, NaN stays NaN (quieted). Bit for bit
/// `half::f16::from_f32`, branch-free.
#[inline(always)]
pub(super) fn round_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = (b >> 16) & 0x8000;
    let a = b & 0x7fff_ffff;
    // |x| >= 2^-14: rebias the exponent (127 -> 15) and round at bit 13, ties to even; a carry
    // out of the mantissa steps the exponent, up to inf (0x7c00) from 65520 on.
    let normal = a
        .wrapping_sub(112 << 23)
        .wrapping_add(0xfff + ((a >> 13) & 1))
        >> 13;
    // |x| < 2^-14: adding 0.5 makes the FPU round |x| to a multiple of 2^-24 (the ulp of 0.5,
    // and f16's subnormal step); what is left above 0.5's bits is the f16 subnormal.
    let sub = (f32::from_bits(a) + 0.5)
        .to_bits()
        .wrapping_sub(0x3f00_0000);
    let finite = if a < 113 << 23 { sub } else { normal };
    let finite = if a >= 143 << 23 { 0x7c00 } else { finite };
    let nan = 0x7e00 | ((a >> 13) & 0x3ff);
    (if a > 0x7f80_0000 { nan } else { finite } | sign) as u16
}

/// IEEE f16 bits -> f32, exact (NaN quieted, as `half` does). Bit for bit `half::f16::to_f32`.
#[inline(always)]
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let a = h & 0x7fff;
    // Exponent and mantissa moved to f32's places read as 2^-112 times the value (subnormals
    // included: the multiply normalises them), so scaling by 2^112 gives it exactly.
    let scaled = (f32::from_bits(a << 13) * f32::from_bits((127 + 112) << 23)).to_bits();
    let quiet = if a > 0x7c00 { 0x0040_0000 } else { 0 };
    let special = (a << 13) | 0x7f80_0000 | quiet;
    f32::from_bits(if a >= 0x7c00 { special } else { scaled } | sign)
}

/// x rounded to bf16, as an f32.
#[inline(always)]
fn bf16_value(x: f32) -> f32 {
    bf16_to_f32(round_bf16(x))
}

/// x rounded to f16, as an f32.
#[inline(always)]
fn f16_value(x: f32) -> f32 {
    f16_to_f32(round_f16(x))
}

simd_kernel! {
    fn round_bf16_into(src: &[f32], dst: &mut [u16]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = round_bf16(s);
        }
    }
}

simd_kernel! {
    fn bf16_widen_into(src: &[u16], dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = bf16_to_f32(s);
        }
    }
}

simd_kernel! {
    fn round_f16_into(src: &[f32], dst: &mut [u16]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = round_f16(s);
        }
    }
}

simd_kernel! {
    fn f16_widen_into(src: &[u16], dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f16_to_f32(s);
        }
    }
}

/// dst[i] = round_bf16(src[i]).
pub(super) fn round_bf16_slice(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "round_bf16_slice: lengths differ");
    round_bf16_into(src, dst)
}

/// dst[i] = bf16_to_f32(src[i]).
// Not called yet outside the tests: the conversions a bf16/f16 model will need.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) fn bf16_to_f32_slice(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "bf16_to_f32_slice: lengths differ");
    bf16_widen_into(src, dst)
}

/// dst[i] = round_f16(src[i]).
// Not called yet outside the tests: the conversions a bf16/f16 model will need.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) fn round_f16_slice(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "round_f16_slice: lengths differ");
    round_f16_into(src, dst)
}

/// dst[i] = f16_to_f32(src[i]).
// Not called yet outside the tests: the conversions a bf16/f16 model will need.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) fn f16_to_f32_slice(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32_slice: lengths differ");
    f16_widen_into(src, dst)
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------

/// An operand of a low-precision product: f32 values (rounded as they are read) or values
/// already stored as bf16 bits (a model kept in bf16).
#[derive(Clone, Copy)]
pub(super) enum Src {
    F32(*const f32),
    Bf16(*const u16),
}

impl Src {
    /// The element at offset `o`, as an f32 (exact for bf16 bits).
    #[inline(always)]
    unsafe fn get(self, o: usize) -> f32 {
        match self {
            Src::F32(p) => *p.add(o),
            Src::Bf16(p) => bf16_to_f32(*p.add(o)),
        }
    }
}

/// A value handed to rayon's threads. Raw pointers are neither Send nor Sync; the functions
/// that wrap them here are unsafe and their callers promise the memory stays valid and that
/// the threads write disjoint parts.
#[derive(Clone, Copy)]
struct Shared<T>(T);
// SAFETY: see above.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: see above.
unsafe impl<T> Sync for Shared<T> {}
impl<T: Copy> Shared<T> {
    /// Through a method, so that a closure captures the wrapper and not the raw field.
    fn get(self) -> T {
        self.0
    }
}

/// The kernels `mm_bf16` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bf16Kernel {
    /// AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX512_BF16 register tiles (`vdpbf16ps`).
    Avx512Bf16,
    /// Operands rounded into f32 copies, then the f32 gemm.
    F32,
}

impl Bf16Kernel {
    /// Whether this CPU (and OS) can run it.
    pub(super) fn available(self) -> bool {
        match self {
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Bf16Kernel::Amx => fast::amx::available(),
            #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
            Bf16Kernel::Amx => false,
            Bf16Kernel::Avx512Bf16 => cpu_has_avx512bf16(),
            Bf16Kernel::F32 => true,
        }
    }
}

/// The kernel `mm_bf16` runs, chosen once. WICK_BF16_KERNEL=amx, avx512bf16 or f32 names one
/// (one this CPU cannot run falls back to f32). Unset: AMX where the CPU and OS have it, else
/// f32, and not `vdpbf16ps`: on the Sapphire Rapids class CPU this was written on, it issues
/// one 32-multiply-add instruction every other cycle, half the rate of f32 FMAs, so the f32
/// gemm on rounded copies is faster (examples/lowp_speed measures both). CPUs where it runs at
/// full rate would gain from it; name it there.
pub(super) fn bf16_kernel() -> Bf16Kernel {
    static K: OnceLock<Bf16Kernel> = OnceLock::new();
    *K.get_or_init(|| {
        let named = match std::env::var("WICK_BF16_KERNEL").as_deref() {
            Ok("amx") => Some(Bf16Kernel::Amx),
            Ok("avx512bf16") => Some(Bf16Kernel::Avx512Bf16),
            Ok("f32") => Some(Bf16Kernel::F32),
            _ => None,
        };
        match named {
            Some(k) if k.available() => k,
            Some(_) => Bf16Kernel::F32,
            None if Bf16Kernel::Amx.available() => Bf16Kernel::Amx,
            None => Bf16Kernel::F32,
        }
    })
}

fn cpu_has_avx512bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512bf16")
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `product::mm` with both operands rounded to bf16 first: exact products, f32 sums (see the
/// module's notes for how the two paths differ).
///
/// # Safety
/// As `mm`: the pointers must reach every element the sizes and strides address; dst must not
/// overlap the inputs.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn mm_bf16(
    mnk: (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: Src,
    l: Strides,
    rhs: Src,
    r: Strides,
    beta: f32,
    accumulate: bool,
    parallel: bool,
) {
    mm_bf16_on(
        bf16_kernel(),
        mnk,
        dst,
        dst_rs,
        lhs,
        l,
        rhs,
        r,
        beta,
        accumulate,
        parallel,
    )
}

/// `mm_bf16` on `kernel`, which must be available.
#[allow(clippy::too_many_arguments)]
unsafe fn mm_bf16_on(
    kernel: Bf16Kernel,
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: Src,
    l: Strides,
    rhs: Src,
    r: Strides,
    beta: f32,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        return empty_sum(m, n, dst, dst_rs, accumulate);
    }
    assert!(
        kernel.available(),
        "mm_bf16: this CPU cannot run {kernel:?}"
    );
    let args = (dst, dst_rs, lhs, l, rhs, r, beta, accumulate, parallel);
    match kernel {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        Bf16Kernel::Amx => {
            let (dst, dst_rs, lhs, l, rhs, r, beta, accumulate, parallel) = args;
            return fast::amx::mm(
                (m, n, k),
                dst,
                dst_rs,
                lhs,
                l,
                rhs,
                r,
                beta,
                accumulate,
                parallel,
            );
        }
        #[cfg(target_arch = "x86_64")]
        Bf16Kernel::Avx512Bf16 => {
            let (dst, dst_rs, lhs, l, rhs, r, beta, accumulate, parallel) = args;
            return fast::mm(
                (m, n, k),
                dst,
                dst_rs,
                lhs,
                l,
                rhs,
                r,
                beta,
                accumulate,
                parallel,
            );
        }
        _ => {}
    }
    let (a, la) = rounded_copy(lhs, (m, k), l, Narrow::Bf16, parallel);
    let (b, lb) = rounded_copy(rhs, (k, n), r, Narrow::Bf16, parallel);
    mm(
        (m, n, k),
        dst,
        dst_rs,
        a.as_ptr(),
        la,
        b.as_ptr(),
        lb,
        beta,
        accumulate,
        parallel,
    )
}

/// `product::mm` with both operands rounded to IEEE f16 first (bf16 bits are widened, then
/// rounded): exact products, f32 sums. An operand beyond ±65504 becomes ±inf, and so does
/// (or NaN) every output it reaches.
///
/// # Safety
/// As `mm`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn mm_f16(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: Src,
    l: Strides,
    rhs: Src,
    r: Strides,
    beta: f32,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        return empty_sum(m, n, dst, dst_rs, accumulate);
    }
    let (a, la) = rounded_copy(lhs, (m, k), l, Narrow::F16, parallel);
    let (b, lb) = rounded_copy(rhs, (k, n), r, Narrow::F16, parallel);
    mm(
        (m, n, k),
        dst,
        dst_rs,
        a.as_ptr(),
        la,
        b.as_ptr(),
        lb,
        beta,
        accumulate,
        parallel,
    )
}

/// A product over k = 0: nothing to add, so dst keeps its values or becomes zero.
unsafe fn empty_sum(m: usize, n: usize, dst: *mut f32, dst_rs: usize, accumulate: bool) {
    if !accumulate {
        for i in 0..m {
            std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n).fill(0.0);
        }
    }
}

/// Elements below which a copy is not worth splitting over the threads.
const PAR_COPY: usize = 1 << 16;

/// The narrow format a fallback product rounds its operands to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Narrow {
    Bf16,
    F16,
}

simd_kernel! {
    fn bf16_values(src: &[f32], dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = bf16_value(s);
        }
    }
}

simd_kernel! {
    fn f16_values(src: &[f32], dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f16_value(s);
        }
    }
}

/// The rows x cols matrix at `src` (laid out as `s`) rounded to `to`, as f32 values in a new
/// buffer laid out row-major or column-major, whichever reads `src` in order; returns the
/// buffer and its strides.
unsafe fn rounded_copy(
    src: Src,
    (rows, cols): (usize, usize),
    s: Strides,
    to: Narrow,
    parallel: bool,
) -> (Vec<f32>, Strides) {
    // (outer count, inner count, outer stride, inner stride) over src; out is outer-major.
    let (no, ni, so, si, out_strides) = if s.cs <= s.rs {
        (rows, cols, s.rs, s.cs, Strides { rs: cols, cs: 1 })
    } else {
        (cols, rows, s.cs, s.rs, Strides { rs: 1, cs: rows })
    };
    let mut out = super::cpu::output(rows * cols);
    let src = Shared(src);
    let fill = |o0: usize, chunk: &mut [f32]| {
        for (d, o) in chunk.chunks_exact_mut(ni).zip(o0..) {
            let base = o * so;
            match (src.get(), si) {
                (Src::F32(p), 1) => {
                    let row = std::slice::from_raw_parts(p.add(base), ni);
                    match to {
                        Narrow::Bf16 => bf16_values(row, d),
                        Narrow::F16 => f16_values(row, d),
                    }
                }
                (Src::Bf16(p), 1) => {
                    bf16_widen_into(std::slice::from_raw_parts(p.add(base), ni), d);
                    if to == Narrow::F16 {
                        for x in d.iter_mut() {
                            *x = f16_value(*x);
                        }
                    }
                }
                (src, _) => {
                    for (t, x) in d.iter_mut().enumerate() {
                        let v = src.get(base + t * si);
                        *x = match to {
                            Narrow::Bf16 => bf16_value(v),
                            Narrow::F16 => f16_value(v),
                        };
                    }
                }
            }
        }
    };
    let threads = rayon::current_num_threads();
    if parallel && threads > 1 && rows * cols >= PAR_COPY {
        let per = no.div_ceil(threads * 4).max(1);
        out.par_chunks_mut(per * ni)
            .enumerate()
            .for_each(|(c, chunk)| fill(c * per, chunk));
    } else {
        fill(0, &mut out);
    }
    (out, out_strides)
}

#[cfg(target_arch = "x86_64")]
mod fast {
    //! The AVX512_BF16 product (and, in `amx`, the AMX one). Both operands are packed once,
    //! whole, into bf16 pairs: lhs in panels of MR rows, [k-pair][row], and rhs in panels of
    //! NR columns, [k-pair][column], each pair the two bf16 of consecutive k (k odd: the last
    //! pair padded with a zero), as `vdpbf16ps` multiplies them. Panels are padded with zero
    //! rows/columns to full width. The output is cut into MC x NC blocks, the tasks split over
    //! the threads; each element is summed by one tile in an order fixed by KCP alone, so the
    //! result does not depend on the number of threads.

    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use super::{round_bf16, Shared, Src, Strides};

    /// Rows of a register tile: MR x 2 accumulators, two rhs vectors and a broadcast fill 27 of
    /// the 32 zmm registers.
    pub(super) const MR: usize = 12;
    /// Columns of a register tile: two zmm of 16 f32.
    pub(super) const NR: usize = 32;
    /// k-pairs summed per pass over a block: an rhs micro-panel of KCP x NR pairs (32 KiB) stays
    /// in L1 while the lhs panels of a block stream past it.
    const KCP: usize = 256;
    /// Output block of one task: MC rows x NC columns.
    const MC: usize = 8 * MR;
    const NC: usize = 8 * NR;
    /// Multiply-adds below which a product stays on the calling thread.
    const PAR_WORK: usize = 1 << 20;

    /// The values a packed operand is made from.
    trait Elem: Copy {
        fn bf16(self) -> u32;
    }
    impl Elem for f32 {
        #[inline(always)]
        fn bf16(self) -> u32 {
            round_bf16(self) as u32
        }
    }
    impl Elem for u16 {
        #[inline(always)]
        fn bf16(self) -> u32 {
            self as u32
        }
    }

    #[inline(always)]
    fn pair<E: Elem>(lo: E, hi: E) -> u32 {
        lo.bf16() | hi.bf16() << 16
    }

    /// One panel: out[p * W + t] = the pair (depth 2p, 2p+1) of lane t, where the element of
    /// lane t at depth d is at src + t * ls + d * ds; lanes from `lanes` on and depth k (k odd)
    /// are zeros. out holds k.div_ceil(2) * W pairs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn pack<E: Elem, const W: usize>(
        src: *const E,
        ls: usize,
        ds: usize,
        lanes: usize,
        k: usize,
        out: &mut [u32],
    ) {
        let full = k / 2;
        debug_assert_eq!(out.len(), k.div_ceil(2) * W);
        if lanes == W && ls == 1 {
            // Lanes contiguous (lhs stored transposed, rhs row-major): two rows in, one row
            // of pairs out, all vectorised.
            for (p, o) in out.chunks_exact_mut(W).take(full).enumerate() {
                let r0 = std::slice::from_raw_parts(src.add(2 * p * ds), W);
                let r1 = std::slice::from_raw_parts(src.add((2 * p + 1) * ds), W);
                for t in 0..W {
                    o[t] = pair(r0[t], r1[t]);
                }
            }
        } else if ds == 1 {
            // Depth contiguous (lhs row-major, rhs transposed): each lane reads in order, 16
            // pairs of every lane before the next 16 (as `pack_f32`).
            for p0 in (0..full).step_by(16) {
                let pn = (full - p0).min(16);
                for t in 0..lanes {
                    let row = std::slice::from_raw_parts(src.add(t * ls + 2 * p0), 2 * pn);
                    for (p, pr) in row.chunks_exact(2).enumerate() {
                        *out.get_unchecked_mut((p0 + p) * W + t) = pair(pr[0], pr[1]);
                    }
                }
            }
        } else {
            for p in 0..full {
                for t in 0..lanes {
                    let e = src.add(t * ls + 2 * p * ds);
                    out[p * W + t] = pair(*e, *e.add(ds));
                }
            }
        }
        if lanes < W {
            for o in out.chunks_exact_mut(W).take(full) {
                o[lanes..].fill(0);
            }
        }
        if k % 2 == 1 {
            let o = &mut out[full * W..];
            for (t, x) in o.iter_mut().enumerate() {
                *x = if t < lanes {
                    (*src.add(t * ls + (k - 1) * ds)).bf16()
                } else {
                    0
                };
            }
        }
    }

    /// Panels packed by one task: with lanes contiguous in memory, a group reads each source
    /// row once for all its panels (one panel at a time would walk the whole depth once per
    /// panel, a page per row, and miss the TLB on every row).
    const GROUP: usize = 8;

    /// The whole of an operand with `lanes` lanes (rows of lhs, columns of rhs), packed in
    /// panels of W lanes and `depth` >= k.div_ceil(2) pairs (zeros past k).
    pub(super) unsafe fn pack_all<const W: usize>(
        src: Src,
        ls: usize,
        ds: usize,
        (lanes, k, depth): (usize, usize, usize),
        parallel: bool,
    ) -> Vec<u32> {
        let (kp, panel) = (k.div_ceil(2), depth * W);
        let mut out = uninit_u32(lanes.div_ceil(W) * panel);
        let src = Shared(src);
        let group = |g: usize, o: &mut [u32]| {
            let t0 = g * GROUP * W;
            let n = (GROUP * W).min(lanes - t0);
            match src.get() {
                Src::F32(p) => pack_f32::<W>(p.add(t0 * ls), ls, ds, n, k, panel, o),
                Src::Bf16(p) if ls == 1 => pack_u16_across::<W>(p.add(t0), ds, n, k, panel, o),
                Src::Bf16(p) => {
                    for (q, o) in o.chunks_exact_mut(panel).enumerate() {
                        let t = q * W;
                        let o = &mut o[..kp * W];
                        pack::<u16, W>(p.add((t0 + t) * ls), ls, ds, W.min(n - t), k, o);
                    }
                }
            }
            for o in o.chunks_exact_mut(panel) {
                o[kp * W..].fill(0);
            }
        };
        if parallel {
            out.par_chunks_mut(GROUP * panel)
                .enumerate()
                .for_each(|(g, o)| group(g, o));
        } else {
            for (g, o) in out.chunks_mut(GROUP * panel).enumerate() {
                group(g, o);
            }
        }
        out
    }

    /// Packs the panels of bf16 lanes 0..n (n <= GROUP * W), contiguous in memory, a k-pair of
    /// all of them at a time (as `pack_f32`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn pack_u16_across<const W: usize>(
        src: *const u16,
        ds: usize,
        n: usize,
        k: usize,
        panel: usize,
        out: &mut [u32],
    ) {
        let panels = n.div_ceil(W);
        for p in 0..k.div_ceil(2) {
            let r0 = std::slice::from_raw_parts(src.add(2 * p * ds), n);
            let r1 =
                (2 * p + 1 < k).then(|| std::slice::from_raw_parts(src.add((2 * p + 1) * ds), n));
            for q in 0..panels {
                let o = &mut out[q * panel + p * W..q * panel + (p + 1) * W];
                let w = W.min(n - q * W);
                let lo = &r0[q * W..q * W + w];
                match r1 {
                    Some(r1) => {
                        let hi = &r1[q * W..q * W + w];
                        for ((o, &l), &h) in o.iter_mut().zip(lo).zip(hi) {
                            *o = l as u32 | (h as u32) << 16;
                        }
                    }
                    None => {
                        for (o, &l) in o.iter_mut().zip(lo) {
                            *o = l as u32;
                        }
                    }
                }
                o[w..].fill(0);
            }
        }
    }

    /// Packs the panels of f32 lanes 0..n (n <= GROUP * W) into `out`, with the CPU's own
    /// conversion (`vcvtne2ps2bf16`: round to nearest even, as `round_bf16`, except that it
    /// reads subnormals as zero, which `vdpbf16ps` does with them anyway).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pack_f32<const W: usize>(
        src: *const f32,
        ls: usize,
        ds: usize,
        n: usize,
        k: usize,
        panel: usize,
        out: &mut [u32],
    ) {
        let kp = k.div_ceil(2);
        let full = k / 2;
        let panels = n.div_ceil(W);
        if ls == 1 {
            // Lanes contiguous: rows 2p and 2p + 1 give the pairs of p for every lane.
            for p in 0..full {
                let (r0, r1) = (src.add(2 * p * ds), src.add((2 * p + 1) * ds));
                for q in 0..panels {
                    let w = W.min(n - q * W);
                    let o = out.as_mut_ptr().add(q * panel + p * W);
                    across(r0.add(q * W), r1.add(q * W), w, o);
                    std::slice::from_raw_parts_mut(o.add(w), W - w).fill(0);
                }
            }
        } else if ds == 1 {
            // Depth contiguous: each lane's pairs are in order in memory, scattered W apart,
            // 16 pairs of every lane of a panel before the next 16 (lane after lane through
            // the whole depth would evict each line of the panel between its W writes).
            for q in 0..panels {
                let w = W.min(n - q * W);
                let o = out.as_mut_ptr().add(q * panel);
                for p in (0..full).step_by(16) {
                    for t in 0..w {
                        let row = src.add((q * W + t) * ls + 2 * p);
                        along::<W>(row, (full - p).min(16), o.add(p * W + t));
                    }
                }
                for p in 0..full {
                    std::slice::from_raw_parts_mut(o.add(p * W + w), W - w).fill(0);
                }
            }
        } else {
            for q in 0..panels {
                let w = W.min(n - q * W);
                let o = &mut out[q * panel..q * panel + kp * W];
                pack::<f32, W>(src.add(q * W * ls), ls, ds, w, k, o);
            }
            return;
        }
        if k % 2 == 1 {
            for q in 0..panels {
                let w = W.min(n - q * W);
                let o = &mut out[q * panel + full * W..q * panel + kp * W];
                for (t, x) in o.iter_mut().enumerate() {
                    *x = if t < w {
                        round_bf16(*src.add((q * W + t) * ls + (k - 1) * ds)) as u32
                    } else {
                        0
                    };
                }
            }
        }
    }

    /// o[t] = the pair (r0[t], r1[t]) for t < w.
    #[inline(always)]
    unsafe fn across(r0: *const f32, r1: *const f32, w: usize, o: *mut u32) {
        // Word t of the low half and word t of the high half, side by side.
        let zip = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        let mut t = 0;
        while t < w {
            let m = mask16(w - t);
            let a = _mm512_maskz_loadu_ps(m, r0.add(t));
            let b = _mm512_maskz_loadu_ps(m, r1.add(t));
            let h = bits(_mm512_cvtne2ps_pbh(b, a));
            _mm512_mask_storeu_epi32(o.add(t) as *mut _, m, _mm512_permutexvar_epi16(zip, h));
            t += 16;
        }
    }

    /// o[p * W] = the pair (row[2p], row[2p + 1]) for p < pairs.
    #[inline(always)]
    unsafe fn along<const W: usize>(row: *const f32, pairs: usize, o: *mut u32) {
        let at = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(W as i32),
        );
        let mut p = 0;
        while p < pairs {
            let e = 2 * (pairs - p).min(16);
            let lo = _mm512_maskz_loadu_ps(mask16(e), row.add(2 * p));
            let hi =
                _mm512_maskz_loadu_ps(mask16(e.saturating_sub(16)), row.wrapping_add(2 * p + 16));
            let h = bits(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_mask_i32scatter_epi32::<4>(o.add(p * W) as *mut _, mask16(pairs - p), at, h);
            p += 16;
        }
    }

    /// The first min(n, 16) lanes.
    #[inline(always)]
    fn mask16(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            (1u16 << n) - 1
        }
    }

    #[inline(always)]
    fn bits(x: __m512bh) -> __m512i {
        // SAFETY: both are 512 bits of plain data.
        unsafe { std::mem::transmute::<__m512bh, __m512i>(x) }
    }

    /// A buffer every element of which `pack` writes before anything reads it (as `output`;
    /// u32 has no invalid bit patterns).
    #[allow(clippy::uninit_vec)]
    fn uninit_u32(n: usize) -> Vec<u32> {
        let mut v = Vec::with_capacity(n);
        // SAFETY: see above.
        unsafe { v.set_len(n) };
        v
    }

    /// Packs both operands (what `mm` would, for timing the packing alone).
    pub(super) unsafe fn pack_both(
        (m, n, k): (usize, usize, usize),
        lhs: Src,
        l: Strides,
        rhs: Src,
        r: Strides,
        parallel: bool,
    ) -> (Vec<u32>, Vec<u32>) {
        let parallel = parallel && rayon::current_num_threads() > 1;
        let kp = k.div_ceil(2);
        (
            pack_all::<MR>(lhs, l.rs, l.cs, (m, k, kp), parallel),
            pack_all::<NR>(rhs, r.cs, r.rs, (n, k, kp), parallel),
        )
    }

    /// `super::mm_bf16` on the AVX512_BF16 path; m, n, k > 0.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn mm(
        (m, n, k): (usize, usize, usize),
        dst: *mut f32,
        dst_rs: usize,
        lhs: Src,
        l: Strides,
        rhs: Src,
        r: Strides,
        beta: f32,
        accumulate: bool,
        parallel: bool,
    ) {
        let parallel = parallel && rayon::current_num_threads() > 1 && m * n * k >= PAR_WORK;
        let (pa, pb) = pack_both((m, n, k), lhs, l, rhs, r, parallel);
        let kp = k.div_ceil(2);
        let (bm, bn) = (m.div_ceil(MC), n.div_ceil(NC));
        let ptrs = Shared((pa.as_ptr(), pb.as_ptr(), dst));
        let block = |t: usize| {
            let (pa, pb, dst) = ptrs.get();
            let (i0, j0) = (t / bn * MC, t % bn * NC);
            let (i1, j1) = ((i0 + MC).min(m), (j0 + NC).min(n));
            for pc in (0..kp).step_by(KCP) {
                let len = KCP.min(kp - pc);
                let add = accumulate || pc > 0;
                for j in (j0..j1).step_by(NR) {
                    let b = pb.add(j / NR * kp * NR + pc * NR);
                    for i in (i0..i1).step_by(MR) {
                        let a = pa.add(i / MR * kp * MR + pc * MR);
                        let d = dst.add(i * dst_rs + j);
                        let rows = MR.min(m - i);
                        tile_any(len, a, b, d, dst_rs, rows, NR.min(n - j), beta, add);
                    }
                }
            }
        };
        if parallel {
            (0..bm * bn).into_par_iter().for_each(block);
        } else {
            (0..bm * bn).for_each(block);
        }
    }

    /// `tile` for a tile with `rows` rows and `cols` columns to write, the narrowest that
    /// covers them (every output element is summed the same way in each).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn tile_any(
        len: usize,
        a: *const u32,
        b: *const u32,
        dst: *mut f32,
        dst_rs: usize,
        rows: usize,
        cols: usize,
        beta: f32,
        add: bool,
    ) {
        macro_rules! go {
            ($r:literal) => {
                if cols > 16 {
                    tile::<$r, 2>(len, a, b, dst, dst_rs, rows, cols, beta, add)
                } else {
                    tile::<$r, 1>(len, a, b, dst, dst_rs, rows, cols, beta, add)
                }
            };
        }
        match rows {
            1 => go!(1),
            2 => go!(2),
            3 | 4 => go!(4),
            5..=8 => go!(8),
            _ => go!(12),
        }
    }

    /// dst[i, j] (+)= beta * sum over `len` k-pairs of a[i] . b[j], for the first `rows` rows
    /// and `cols` columns of an R x 16V tile; `add`: add to dst (else overwrite it unread).
    /// a: lhs pairs, MR apart per k-pair; b: rhs pairs, NR apart per k-pair.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn tile<const R: usize, const V: usize>(
        len: usize,
        a: *const u32,
        b: *const u32,
        dst: *mut f32,
        dst_rs: usize,
        rows: usize,
        cols: usize,
        beta: f32,
        add: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for p in 0..len {
            let bp = b.add(p * NR);
            let mut bv = [bh(_mm512_setzero_si512()); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = bh(_mm512_loadu_si512(bp.add(16 * v) as *const _));
            }
            let ap = a.add(p * MR);
            for (i, row) in acc.iter_mut().enumerate() {
                let av = bh(_mm512_set1_epi32(*ap.add(i) as i32));
                for (x, bx) in row.iter_mut().zip(bv) {
                    *x = _mm512_dpbf16_ps(*x, av, bx);
                }
            }
        }
        let bet = _mm512_set1_ps(beta);
        for (i, row) in acc.iter().enumerate().take(rows) {
            for (v, x) in row.iter().enumerate() {
                let c0 = 16 * v;
                if c0 >= cols {
                    break;
                }
                let mask: __mmask16 = if cols - c0 >= 16 {
                    0xffff
                } else {
                    (1 << (cols - c0)) - 1
                };
                let d = dst.add(i * dst_rs + c0);
                let val = if add {
                    _mm512_fmadd_ps(*x, bet, _mm512_maskz_loadu_ps(mask, d))
                } else {
                    _mm512_mul_ps(*x, bet)
                };
                _mm512_mask_storeu_ps(d, mask, val);
            }
        }
    }

    /// `mm_bf16` on AMX: `tdpbf16ps` multiplies a 16 x 32 bf16 tile of lhs by a 32 x 16 tile of
    /// rhs (16 k-pairs x 16 columns, the pairs as `pack_all` lays them out) into a 16 x 16 f32
    /// tile, a 1024-multiply-add instruction where `vdpbf16ps` does 32. Rust has no AMX
    /// intrinsics on stable (they are behind `x86_amx_intrinsics`), so the few instructions are
    /// written as `asm!`.
    #[cfg(target_os = "linux")]
    pub(super) mod amx {
        use std::arch::asm;
        use std::arch::x86_64::*;
        use std::sync::OnceLock;

        use rayon::prelude::*;

        use super::{bits, mask16, pack_all, uninit_u32, GROUP};
        use super::{round_bf16, Shared, Src, Strides};

        /// Tile rows (and f32 columns); a lhs tile holds 32 k, a rhs tile 16 k-pairs.
        const T: usize = 16;
        /// Pairs of a 16 x 32 bf16 tile: 1 KiB.
        const TILE: usize = T * T;
        /// Output block of one task.
        const MC: usize = 256;
        const NC: usize = 128;
        /// Multiply-adds below which a product stays on the calling thread.
        const PAR_WORK: usize = 1 << 21;

        /// Whether the CPU has AMX-BF16 (and the AVX-512 the packing uses) and Linux lets this
        /// process use the tiles: it hands out the 8 KiB of tile state only on request
        /// (arch_prctl ARCH_REQ_XCOMP_PERM, once per process; kernels before 5.16 refuse it).
        pub(in super::super) fn available() -> bool {
            static ON: OnceLock<bool> = OnceLock::new();
            *ON.get_or_init(|| {
                let id = __cpuid_count(7, 0);
                let (amx_bf16, amx_tile) = (id.edx >> 22 & 1 == 1, id.edx >> 24 & 1 == 1);
                amx_bf16
                    && amx_tile
                    && super::super::cpu_has_avx512bf16()
                    // SAFETY: asks the kernel for a permission; touches no memory of ours.
                    && unsafe { request_tile_data() } == 0
            })
        }

        /// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): 0 once granted, else -errno.
        /// A raw system call (x86-64 Linux's number 158), which spares the crate a dependency.
        unsafe fn request_tile_data() -> i64 {
            const SYS_ARCH_PRCTL: i64 = 158;
            const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
            const XFEATURE_XTILEDATA: i64 = 18;
            let ret: i64;
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
            ret
        }

        /// Palette 1, tiles 0-7 all 16 rows of 64 bytes: 0-3 the 2 x 2 output tiles, 4-5 lhs,
        /// 6-7 rhs.
        #[repr(C, align(64))]
        struct Config([u8; 64]);
        static CONFIG: Config = {
            let mut c = [0u8; 64];
            c[0] = 1;
            let mut t = 0;
            while t < 8 {
                c[16 + 2 * t] = 64;
                c[48 + t] = T as u8;
                t += 1;
            }
            Config(c)
        };

        /// Four output tiles, as `kernel` stores them.
        #[repr(C, align(64))]
        struct Out([f32; 4 * TILE]);

        /// `super::super::mm_bf16` on AMX; m, n, k > 0 and `available()`.
        #[allow(clippy::too_many_arguments)]
        pub(in super::super) unsafe fn mm(
            (m, n, k): (usize, usize, usize),
            dst: *mut f32,
            dst_rs: usize,
            lhs: Src,
            l: Strides,
            rhs: Src,
            r: Strides,
            beta: f32,
            accumulate: bool,
            parallel: bool,
        ) {
            let parallel = parallel && rayon::current_num_threads() > 1 && m * n * k >= PAR_WORK;
            let (pa, pb) = pack_both((m, n, k), lhs, l, rhs, r, parallel);
            let kb = k.div_ceil(2 * T);
            let (panel_a, panel_b) = (kb * TILE, kb * T * 32);
            let (bm, bn) = (m.div_ceil(MC), n.div_ceil(NC));
            let ptrs = Shared((pa.as_ptr(), pb.as_ptr(), dst));
            let block = |t: usize| {
                let (pa, pb, dst) = ptrs.get();
                let (i0, j0) = (t / bn * MC, t % bn * NC);
                let (i1, j1) = ((i0 + MC).min(m), (j0 + NC).min(n));
                let mut out = Out([0.0; 4 * TILE]);
                // The configuration is per thread, and a task may run on any of rayon's.
                asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
                for i in (i0..i1).step_by(32) {
                    let a = pa.add(i / T * panel_a);
                    for j in (j0..j1).step_by(32) {
                        let b = pb.add(j / 32 * panel_b);
                        let d = dst.add(i * dst_rs + j);
                        let (rows, cols) = ((m - i).min(32), (n - j).min(32));
                        if rows == 32 && cols == 32 && beta == 1.0 {
                            // Straight into dst (and out of it, to add to): a store of the
                            // tiles read back at once by vector loads stalls them.
                            kernel_in_place(kb, a, a.add(panel_a), b, d, dst_rs, accumulate);
                        } else {
                            kernel(kb, a, a.add(panel_a), b, out.0.as_mut_ptr());
                            write(&out, d, dst_rs, rows, cols, beta, accumulate);
                        }
                    }
                }
                // Back to the initial state, which the kernel's context switches need not save.
                asm!("tilerelease", options(nostack, nomem));
            };
            if parallel {
                (0..bm * bn).into_par_iter().for_each(block);
            } else {
                (0..bm * bn).for_each(block);
            }
        }

        /// Both operands packed for `kernel` (for timing the packing alone, too).
        pub(in super::super) unsafe fn pack_both(
            (m, n, k): (usize, usize, usize),
            lhs: Src,
            l: Strides,
            rhs: Src,
            r: Strides,
            parallel: bool,
        ) -> (Vec<u32>, Vec<u32>) {
            let kb = k.div_ceil(2 * T);
            (
                pack_lhs(lhs, l, (m, k, kb), parallel),
                pack_all::<32>(rhs, r.cs, r.rs, (n, k, kb * T), parallel),
            )
        }

        /// The four 16 x 16 tiles of a 32 x 32 output block, summed over kb blocks of 32 k,
        /// stored to out: a0, a1 the lhs panels of its two row halves, b the rhs panel of its
        /// 32 columns.
        #[inline(always)]
        unsafe fn kernel(kb: usize, a0: *const u32, a1: *const u32, b: *const u32, out: *mut f32) {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                "2:",
                "tileloadd tmm4, [{a0} + {s64}]",
                "tileloadd tmm5, [{a1} + {s64}]",
                "tileloadd tmm6, [{b} + {s128}]",
                "tileloadd tmm7, [{b} + {s128} + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a0}, 1024",
                "add {a1}, 1024",
                "add {b}, 2048",
                "dec {n}",
                "jnz 2b",
                "tilestored [{out} + {s64}], tmm0",
                "tilestored [{out} + {s64} + 1024], tmm1",
                "tilestored [{out} + {s64} + 2048], tmm2",
                "tilestored [{out} + {s64} + 3072], tmm3",
                a0 = inout(reg) a0 => _,
                a1 = inout(reg) a1 => _,
                b = inout(reg) b => _,
                n = inout(reg) kb => _,
                out = in(reg) out,
                s64 = in(reg) 64usize,
                s128 = in(reg) 128usize,
                options(nostack),
            );
        }

        /// `kernel` for a whole 32 x 32 block of dst with beta 1: the sums start from dst's
        /// values when `add` (else from zero) and are stored into it.
        #[inline(always)]
        unsafe fn kernel_in_place(
            kb: usize,
            a0: *const u32,
            a1: *const u32,
            b: *const u32,
            dst: *mut f32,
            dst_rs: usize,
            add: bool,
        ) {
            let (c0, c2, st) = (dst, dst.add(T * dst_rs), dst_rs * 4);
            if add {
                asm!(
                    "tileloadd tmm0, [{c0} + {st}]",
                    "tileloadd tmm1, [{c0} + {st} + 64]",
                    "tileloadd tmm2, [{c2} + {st}]",
                    "tileloadd tmm3, [{c2} + {st} + 64]",
                    c0 = in(reg) c0,
                    c2 = in(reg) c2,
                    st = in(reg) st,
                    options(nostack, readonly),
                );
            } else {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem),
                );
            }
            asm!(
                "2:",
                "tileloadd tmm4, [{a0} + {s64}]",
                "tileloadd tmm5, [{a1} + {s64}]",
                "tileloadd tmm6, [{b} + {s128}]",
                "tileloadd tmm7, [{b} + {s128} + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a0}, 1024",
                "add {a1}, 1024",
                "add {b}, 2048",
                "dec {n}",
                "jnz 2b",
                "tilestored [{c0} + {st}], tmm0",
                "tilestored [{c0} + {st} + 64], tmm1",
                "tilestored [{c2} + {st}], tmm2",
                "tilestored [{c2} + {st} + 64], tmm3",
                a0 = inout(reg) a0 => _,
                a1 = inout(reg) a1 => _,
                b = inout(reg) b => _,
                n = inout(reg) kb => _,
                c0 = in(reg) c0,
                c2 = in(reg) c2,
                st = in(reg) st,
                s64 = in(reg) 64usize,
                s128 = in(reg) 128usize,
                options(nostack),
            );
        }

        /// dst (rows x cols of a 32 x 32 block) = beta * out, plus dst when `add`.
        #[target_feature(enable = "avx512f")]
        unsafe fn write(
            out: &Out,
            dst: *mut f32,
            dst_rs: usize,
            rows: usize,
            cols: usize,
            beta: f32,
            add: bool,
        ) {
            let bet = _mm512_set1_ps(beta);
            for r in 0..rows {
                for h in 0..2 {
                    let c0 = 16 * h;
                    if c0 >= cols {
                        break;
                    }
                    let m = mask16(cols - c0);
                    let v = _mm512_load_ps(out.0.as_ptr().add((r / T * 2 + h) * TILE + r % T * T));
                    let d = dst.add(r * dst_rs + c0);
                    let val = if add {
                        _mm512_fmadd_ps(v, bet, _mm512_maskz_loadu_ps(m, d))
                    } else {
                        _mm512_mul_ps(v, bet)
                    };
                    _mm512_mask_storeu_ps(d, m, val);
                }
            }
        }

        /// lhs (m x k) in panels of 16 rows, [k-block of 32][row][16 pairs], so that each tile
        /// is 1 KiB in one piece; as many panels as the 32-row blocks need (zeros past m and
        /// past k).
        unsafe fn pack_lhs(
            src: Src,
            l: Strides,
            (m, k, kb): (usize, usize, usize),
            parallel: bool,
        ) -> Vec<u32> {
            let panel = kb * TILE;
            let mut out = uninit_u32(m.div_ceil(32) * 2 * panel);
            let src = Shared(src);
            let group = |g: usize, o: &mut [u32]| {
                let t0 = g * GROUP * T;
                let lanes = m.saturating_sub(t0).min(GROUP * T);
                match src.get() {
                    Src::F32(p) if l.cs == 1 && lanes > 0 => {
                        for (q, o) in o.chunks_exact_mut(panel).enumerate() {
                            let rows = lanes.saturating_sub(q * T).min(T);
                            rows_f32(p.add((t0 + q * T) * l.rs), l.rs, rows, k, o);
                        }
                    }
                    Src::F32(p) if l.rs == 1 && lanes > 0 => {
                        cols_f32(p.add(t0), l.cs, lanes, k, panel, o);
                    }
                    s => {
                        o.fill(0);
                        for t in 0..lanes {
                            for p in 0..k.div_ceil(2) {
                                let e = |d: usize| {
                                    if d < k {
                                        round_bf16(s.get((t0 + t) * l.rs + d * l.cs)) as u32
                                    } else {
                                        0
                                    }
                                };
                                let at = t / T * panel + p / T * TILE + t % T * T + p % T;
                                o[at] = e(2 * p) | e(2 * p + 1) << 16;
                            }
                        }
                    }
                }
            };
            if parallel {
                out.par_chunks_mut(GROUP * panel)
                    .enumerate()
                    .for_each(|(g, o)| group(g, o));
            } else {
                for (g, o) in out.chunks_mut(GROUP * panel).enumerate() {
                    group(g, o);
                }
            }
            out
        }

        /// One panel from rows with k contiguous: 32 of a row's values are one tile row.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
        unsafe fn rows_f32(src: *const f32, rs: usize, rows: usize, k: usize, o: &mut [u32]) {
            for t in 0..T {
                for (b, c) in (0..k).step_by(2 * T).enumerate() {
                    let at = o.as_mut_ptr().add(b * TILE + t * T);
                    if t >= rows {
                        _mm512_storeu_si512(at as *mut _, _mm512_setzero_si512());
                        continue;
                    }
                    let row = src.add(t * rs);
                    let lo = _mm512_maskz_loadu_ps(mask16(k - c), row.add(c));
                    let hi = _mm512_maskz_loadu_ps(
                        mask16((k - c).saturating_sub(16)),
                        row.wrapping_add(c + 16),
                    );
                    let h = bits(_mm512_cvtne2ps_pbh(hi, lo));
                    _mm512_storeu_si512(at as *mut _, h);
                }
            }
        }

        /// The panels of `lanes` rows whose values are contiguous down a column (lhs stored
        /// transposed), the panels past them zeros: a tile at a time, its 16 k-pairs read for
        /// 16 rows at once and transposed in registers into its 16 rows.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
        unsafe fn cols_f32(
            src: *const f32,
            cs: usize,
            lanes: usize,
            k: usize,
            panel: usize,
            o: &mut [u32],
        ) {
            let zip = _mm512_set_epi16(
                31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5,
                20, 4, 19, 3, 18, 2, 17, 1, 16, 0,
            );
            let (kp, panels) = (k.div_ceil(2), lanes.div_ceil(T));
            for (b, p0) in (0..kp).step_by(T).enumerate() {
                for q in 0..panels {
                    let m = mask16(lanes - q * T);
                    let mut v = [_mm512_setzero_si512(); T];
                    for (j, v) in v.iter_mut().enumerate().take(kp - p0) {
                        let d = 2 * (p0 + j);
                        let r0 = src.add(d * cs + q * T);
                        let lo = _mm512_maskz_loadu_ps(m, r0);
                        let hi = if d + 1 < k {
                            _mm512_maskz_loadu_ps(m, r0.add(cs))
                        } else {
                            _mm512_setzero_ps()
                        };
                        *v = _mm512_permutexvar_epi16(zip, bits(_mm512_cvtne2ps_pbh(hi, lo)));
                    }
                    let rows = transpose16(v);
                    let at = o.as_mut_ptr().add(q * panel + b * TILE);
                    for (t, r) in rows.iter().enumerate() {
                        _mm512_storeu_si512(at.add(t * T) as *mut _, *r);
                    }
                }
            }
            o[panels * panel..].fill(0);
        }

        /// The transpose of 16 x 16 u32, a row a register.
        #[inline(always)]
        pub(in super::super) unsafe fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
            let mut t = [_mm512_setzero_si512(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
            }
            // s[4i + c], 128-bit lane l: column 4l + c of rows 4i..4i + 4.
            let mut s = [_mm512_setzero_si512(); 16];
            for i in 0..4 {
                s[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
                s[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
                s[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
                s[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
            }
            let mut out = [_mm512_setzero_si512(); 16];
            for c in 0..4 {
                // Lanes 0 and 2 (0x88) or 1 and 3 (0xdd) of the row groups 0, 1 and 2, 3...
                let u0 = _mm512_shuffle_i32x4::<0x88>(s[c], s[4 + c]);
                let u1 = _mm512_shuffle_i32x4::<0xdd>(s[c], s[4 + c]);
                let v0 = _mm512_shuffle_i32x4::<0x88>(s[8 + c], s[12 + c]);
                let v1 = _mm512_shuffle_i32x4::<0xdd>(s[8 + c], s[12 + c]);
                // ...then one lane of all four: column 4l + c.
                out[c] = _mm512_shuffle_i32x4::<0x88>(u0, v0);
                out[8 + c] = _mm512_shuffle_i32x4::<0xdd>(u0, v0);
                out[4 + c] = _mm512_shuffle_i32x4::<0x88>(u1, v1);
                out[12 + c] = _mm512_shuffle_i32x4::<0xdd>(u1, v1);
            }
            out
        }
    }

    /// 32 bf16 in the register type `vdpbf16ps` takes.
    #[inline(always)]
    fn bh(x: __m512i) -> __m512bh {
        // SAFETY: both are 512 bits of plain data.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(x) }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding product
// ---------------------------------------------------------------------------------------------

/// dst (n x out) = x (n x inp, f32) times w (out x inp, bf16 bits) transposed, for a few rows
/// of x: each output is the dot product of an x row with a w row widened to f32, in an order
/// that does not depend on the split over the threads. Reads half the bytes of `gemv`'s f32
/// weight.
pub(super) fn gemv_bf16(dst: &mut [f32], x: &[f32], w: &[u16], n: usize, out: usize, inp: usize) {
    assert!(
        dst.len() >= n * out && x.len() >= n * inp && w.len() >= out * inp,
        "gemv_bf16: buffers too short for [{n}, {inp}] x [{out}, {inp}]^T"
    );
    if n == 0 || out == 0 {
        return;
    }
    if inp == 0 {
        for row in dst.chunks_exact_mut(out).take(n) {
            row.fill(0.0);
        }
        return;
    }
    let d = Shared(dst.as_mut_ptr());
    map_ranges(out, n * inp, |r| {
        // SAFETY: the tasks write disjoint columns r of dst, whose size is checked above.
        unsafe {
            gemv_block(
                x,
                n,
                inp,
                &w[r.start * inp..r.end * inp],
                d.get().add(r.start),
                out,
            )
        }
    });
}

/// dst[i * dst_rs + j] = x_i . w_j for the n rows of x and the rows j of the block w.
///
/// # Safety
/// k > 0; dst must reach n rows of w.len() / k, dst_rs apart.
unsafe fn gemv_block(x: &[f32], n: usize, k: usize, w: &[u16], dst: *mut f32, dst_rs: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx512bw() {
        return gemv_avx512::block(x, n, k, w, dst, dst_rs);
    }
    gemv_block_portable(x, n, k, w, dst, dst_rs)
}

/// `gemv_block` without AVX-512.
unsafe fn gemv_block_portable(
    x: &[f32],
    n: usize,
    k: usize,
    w: &[u16],
    dst: *mut f32,
    dst_rs: usize,
) {
    for (j, wj) in w.chunks_exact(k).enumerate() {
        for i in 0..n {
            *dst.add(i * dst_rs + j) = dot_bf16(&x[i * k..(i + 1) * k], wj);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx512bw() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
    })
}

/// x . w with w's bf16 widened, in lane accumulators.
fn dot_bf16(x: &[f32], w: &[u16]) -> f32 {
    let n = x.len().min(w.len());
    let full = n / LANES * LANES;
    let mut acc = [0f32; LANES];
    for (cx, cw) in x[..full]
        .chunks_exact(LANES)
        .zip(w[..full].chunks_exact(LANES))
    {
        for t in 0..LANES {
            acc[t] += cx[t] * bf16_to_f32(cw[t]);
        }
    }
    let mut s = 0f32;
    for j in full..n {
        s += x[j] * bf16_to_f32(w[j]);
    }
    acc.iter().sum::<f32>() + s
}

#[cfg(target_arch = "x86_64")]
mod gemv_avx512 {
    //! As `gemv::avx512`, with each 16 weights loaded as 16 bf16 and widened in registers.

    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX-512F/BW/VL; k > 0; x holds n rows of k; dst reaches n rows of
    /// w.len() / k, dst_rs apart.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn block(
        x: &[f32],
        n: usize,
        k: usize,
        w: &[u16],
        dst: *mut f32,
        dst_rs: usize,
    ) {
        let rows = w.len() / k;
        assert!(x.len() >= n * k);
        let mut i = 0;
        while i < n {
            let xi = x.as_ptr().add(i * k);
            let di = dst.add(i * dst_rs);
            i += match n - i {
                8.. => rows_of::<2, 8>(xi, k, w.as_ptr(), rows, di, dst_rs),
                4..=7 => rows_of::<4, 4>(xi, k, w.as_ptr(), rows, di, dst_rs),
                2 | 3 => rows_of::<4, 2>(xi, k, w.as_ptr(), rows, di, dst_rs),
                _ => rows_of::<8, 1>(xi, k, w.as_ptr(), rows, di, dst_rs),
            };
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn rows_of<const R: usize, const N: usize>(
        x: *const f32,
        k: usize,
        w: *const u16,
        rows: usize,
        dst: *mut f32,
        dst_rs: usize,
    ) -> usize {
        let mut j = 0;
        while j + R <= rows {
            tile::<R, N>(x, k, w.add(j * k), dst.add(j), dst_rs);
            j += R;
        }
        while j < rows {
            tile::<1, N>(x, k, w.add(j * k), dst.add(j), dst_rs);
            j += 1;
        }
        N
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn tile<const R: usize, const N: usize>(
        x: *const f32,
        k: usize,
        w: *const u16,
        dst: *mut f32,
        dst_rs: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        let mut xv = [_mm512_setzero_ps(); N];
        let mut c = 0;
        while c < k {
            let mask: __mmask16 = if k - c >= 16 {
                0xffff
            } else {
                (1u16 << (k - c)) - 1
            };
            for (i, v) in xv.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(mask, x.add(i * k + c));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let h = _mm256_maskz_loadu_epi16(mask, w.add(r * k + c) as *const i16);
                let wv = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)));
                for (ai, xi) in a.iter_mut().zip(xv.iter()) {
                    *ai = _mm512_fmadd_ps(wv, *xi, *ai);
                }
            }
            c += 16;
        }
        for (r, a) in acc.iter().enumerate() {
            for (i, ai) in a.iter().enumerate() {
                *dst.add(i * dst_rs + r) = _mm512_reduce_add_ps(*ai);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// For examples/lowp_speed
// ---------------------------------------------------------------------------------------------

/// Safe entry points for `examples/lowp_speed` (an example sees only the crate's public
/// items); not an API.
#[doc(hidden)]
pub mod bench {
    use super::super::product::{mm_f32 as mm, Strides};
    use super::{Bf16Kernel, Src};

    /// Which product `product` runs.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kind {
        /// `product::mm`: f32 gemm.
        F32,
        /// `mm_bf16` on the kernel it chooses itself.
        Bf16,
        /// `mm_bf16` on AMX.
        Amx,
        /// `mm_bf16` on AVX512_BF16 (`vdpbf16ps`).
        Avx512Bf16,
        /// `mm_bf16` on rounded copies and the f32 gemm.
        Bf16ViaF32,
        /// `mm_f16`.
        F16,
    }

    impl Kind {
        fn kernel(self) -> Option<Bf16Kernel> {
            match self {
                Kind::Bf16 => Some(super::bf16_kernel()),
                Kind::Amx => Some(Bf16Kernel::Amx),
                Kind::Avx512Bf16 => Some(Bf16Kernel::Avx512Bf16),
                Kind::Bf16ViaF32 => Some(Bf16Kernel::F32),
                Kind::F32 | Kind::F16 => None,
            }
        }

        /// Whether this CPU can run it.
        pub fn available(self) -> bool {
            self.kernel().is_none_or(|k| k.available())
        }

        /// The kernel `Kind::Bf16` runs, by name.
        pub fn chosen() -> &'static str {
            match super::bf16_kernel() {
                Bf16Kernel::Amx => "amx",
                Bf16Kernel::Avx512Bf16 => "avx512bf16",
                Bf16Kernel::F32 => "f32",
            }
        }
    }

    /// The strides of a row-major rows x cols matrix, or of the transpose of a row-major
    /// cols x rows one when `t`.
    fn strides(rows: usize, cols: usize, t: bool) -> Strides {
        if t {
            Strides { rs: 1, cs: rows }
        } else {
            Strides { rs: cols, cs: 1 }
        }
    }

    fn check(dst: usize, lhs: usize, rhs: usize, (m, n, k): (usize, usize, usize)) {
        assert!(
            dst >= m * n && lhs >= m * k && rhs >= k * n,
            "bench: buffers too short"
        );
    }

    /// dst (m x n) = lhs (m x k; stored k x m when `lhs_t`) times rhs (k x n; stored n x k when
    /// `rhs_t`). Panics if `kind` is not available.
    #[allow(clippy::too_many_arguments)]
    pub fn product(
        kind: Kind,
        dst: &mut [f32],
        lhs: &[f32],
        lhs_t: bool,
        rhs: &[f32],
        rhs_t: bool,
        mnk: (usize, usize, usize),
        parallel: bool,
    ) {
        check(dst.len(), lhs.len(), rhs.len(), mnk);
        let (m, n, k) = mnk;
        let (l, r) = (strides(m, k, lhs_t), strides(k, n, rhs_t));
        let (a, b) = (Src::F32(lhs.as_ptr()), Src::F32(rhs.as_ptr()));
        let d = dst.as_mut_ptr();
        // SAFETY: sizes checked above; dst is borrowed mutably.
        unsafe {
            match (kind, kind.kernel()) {
                (Kind::Bf16, _) => super::mm_bf16(mnk, d, n, a, l, b, r, 1.0, false, parallel),
                (_, Some(kernel)) => {
                    super::mm_bf16_on(kernel, mnk, d, n, a, l, b, r, 1.0, false, parallel)
                }
                (Kind::F16, _) => super::mm_f16(mnk, d, n, a, l, b, r, 1.0, false, parallel),
                _ => mm(
                    mnk,
                    d,
                    n,
                    lhs.as_ptr(),
                    l,
                    rhs.as_ptr(),
                    r,
                    1.0,
                    false,
                    parallel,
                ),
            }
        }
    }

    /// As `product` for a bf16 kind, with rhs stored as bf16 bits.
    #[allow(clippy::too_many_arguments)]
    pub fn product_bf16_rhs(
        kind: Kind,
        dst: &mut [f32],
        lhs: &[f32],
        lhs_t: bool,
        rhs: &[u16],
        rhs_t: bool,
        mnk: (usize, usize, usize),
        parallel: bool,
    ) {
        check(dst.len(), lhs.len(), rhs.len(), mnk);
        let kernel = kind.kernel().expect("product_bf16_rhs: a bf16 kind");
        let (m, n, k) = mnk;
        let (l, r) = (strides(m, k, lhs_t), strides(k, n, rhs_t));
        let (a, b) = (Src::F32(lhs.as_ptr()), Src::Bf16(rhs.as_ptr()));
        // SAFETY: sizes checked above; dst is borrowed mutably.
        unsafe {
            super::mm_bf16_on(
                kernel,
                mnk,
                dst.as_mut_ptr(),
                n,
                a,
                l,
                b,
                r,
                1.0,
                false,
                parallel,
            )
        }
    }

    /// Packs both operands as `kind` (Amx or Avx512Bf16) does, and drops them: the packing's
    /// share of `product`'s time. Does nothing for other kinds.
    pub fn pack_only(
        kind: Kind,
        lhs: &[f32],
        lhs_t: bool,
        rhs: &[f32],
        rhs_t: bool,
        mnk: (usize, usize, usize),
        parallel: bool,
    ) {
        check(usize::MAX, lhs.len(), rhs.len(), mnk);
        let (m, n, k) = mnk;
        let (l, r) = (strides(m, k, lhs_t), strides(k, n, rhs_t));
        let (a, b) = (Src::F32(lhs.as_ptr()), Src::F32(rhs.as_ptr()));
        let parallel = parallel && rayon::current_num_threads() > 1;
        // SAFETY: sizes checked above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match kind {
                #[cfg(target_os = "linux")]
                Kind::Amx => {
                    std::hint::black_box(super::fast::amx::pack_both(mnk, a, l, b, r, parallel));
                }
                Kind::Avx512Bf16 => {
                    std::hint::black_box(super::fast::pack_both(mnk, a, l, b, r, parallel));
                }
                _ => {}
            }
        }
        let _ = (kind, a, b, l, r, parallel);
    }

    /// `gemv_bf16`.
    pub fn gemv_bf16(dst: &mut [f32], x: &[f32], w: &[u16], n: usize, out: usize, inp: usize) {
        super::gemv_bf16(dst, x, w, n, out, inp)
    }

    /// `round_bf16_slice` into a new vector.
    pub fn to_bf16(src: &[f32]) -> Vec<u16> {
        let mut out = vec![0; src.len()];
        super::round_bf16_slice(src, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::product::{rows, transposed};
    use super::*;

    /// xorshift64*: reproducible values without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in [-1, 1), with all 24 bits of f32 precision in use.
        fn f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
        fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.f32()).collect()
        }
    }

    fn half_bf16(x: f32) -> u16 {
        half::bf16::from_f32(x).to_bits()
    }
    fn half_f16(x: f32) -> u16 {
        half::f16::from_f32(x).to_bits()
    }

    /// f32 bit patterns that exercise rounding at the bit `shift`: for every value of the bits
    /// above it, the patterns just below, at and just above a tie, with either lowest kept bit.
    fn near_ties(shift: u32) -> impl Iterator<Item = u32> {
        let half = 1u32 << (shift - 1);
        let lows = [0, 1, half - 1, half, half + 1, (1 << shift) - 1];
        (0..1u32 << (32 - shift)).flat_map(move |hi| lows.map(|lo| hi << shift | lo))
    }

    fn specials() -> Vec<f32> {
        vec![
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001), // signalling NaN
            f32::from_bits(0xff81_2345),
            f32::from_bits(0x7fff_ffff),
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            f32::EPSILON,
            65504.0,
            65504.5,
            65519.99,
            65520.0,
            -65520.0,
            65536.0,
            1e9,
            6.1035156e-5, // f16's smallest normal
            5.9604645e-8, // f16's smallest subnormal
            2.9802322e-8, // half of it: a tie, to even (zero)
            2.9802326e-8,
            1.0 + f32::EPSILON,
            1.0 + 1.0 / 256.0, // bf16 tie
            1.0 + 3.0 / 256.0,
        ]
    }

    #[test]
    fn bf16_rounding_matches_half_bit_for_bit() {
        let mut rng = Rng(1);
        let random = (0..1 << 20).map(|_| rng.next() as u32);
        let all = near_ties(16)
            .chain(random)
            .map(f32::from_bits)
            .chain(specials());
        let mut n = 0;
        for x in all {
            assert_eq!(round_bf16(x), half_bf16(x), "{x:e} ({:#010x})", x.to_bits());
            n += 1;
        }
        assert!(n > 300_000);
    }

    #[test]
    fn f16_rounding_matches_half_bit_for_bit() {
        let mut rng = Rng(2);
        let random = (0..1 << 20).map(|_| rng.next() as u32);
        // Below 2^-14 f16 rounds at 2^-24: (m + 1/2) * 2^-24 is a tie, for every subnormal m.
        let sub_ties = (0..2048u32).flat_map(|m| {
            let t = (m as f32 + 0.5) * 5.960_464_5e-8;
            let b = t.to_bits();
            [b - 1, b, b + 1, b | 0x8000_0000]
        });
        let all = near_ties(13)
            .chain(random)
            .chain(sub_ties)
            .map(f32::from_bits)
            .chain(specials());
        for x in all {
            assert_eq!(round_f16(x), half_f16(x), "{x:e} ({:#010x})", x.to_bits());
        }
        assert_eq!(round_f16(65519.99), 0x7bff);
        assert_eq!(round_f16(65520.0), 0x7c00);
    }

    #[test]
    fn widening_matches_half() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            assert_eq!(f16_to_f32(h).to_bits(), want.to_bits(), "f16 {h:#06x}");
            let (got, want) = (bf16_to_f32(h), half::bf16::from_bits(h).to_f32());
            if want.is_nan() {
                // half quiets a signalling NaN; the shift keeps it: both NaN, same sign.
                assert!(got.is_nan() && got.to_bits() >> 31 == want.to_bits() >> 31);
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "bf16 {h:#06x}");
            }
        }
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn transpose16_transposes() {
        use std::arch::x86_64::*;
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn run(x: &[u32; 256]) -> [u32; 256] {
            let mut r = [_mm512_setzero_si512(); 16];
            for (i, r) in r.iter_mut().enumerate() {
                *r = _mm512_loadu_si512(x.as_ptr().add(16 * i) as *const _);
            }
            let t = super::fast::amx::transpose16(r);
            let mut y = [0u32; 256];
            for (i, t) in t.iter().enumerate() {
                _mm512_storeu_si512(y.as_mut_ptr().add(16 * i) as *mut _, *t);
            }
            y
        }
        let x: [u32; 256] = std::array::from_fn(|i| i as u32);
        // SAFETY: the CPU has AVX-512F.
        let y = unsafe { run(&x) };
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(y[16 * i + j], x[16 * j + i], "[{i}, {j}]");
            }
        }
    }

    #[test]
    fn slice_conversions_match_the_scalar_ones() {
        let mut rng = Rng(3);
        // Odd length: the vector loops' tails too.
        let mut x: Vec<f32> = (0..1001)
            .map(|_| f32::from_bits(rng.next() as u32))
            .collect();
        x.extend(specials());
        let mut h = vec![0u16; x.len()];
        let mut y = vec![0f32; x.len()];
        round_bf16_slice(&x, &mut h);
        assert!(x.iter().zip(&h).all(|(&x, &h)| h == half_bf16(x)));
        bf16_to_f32_slice(&h, &mut y);
        assert!(h
            .iter()
            .zip(&y)
            .all(|(&h, y)| y.to_bits() == bf16_to_f32(h).to_bits()));
        round_f16_slice(&x, &mut h);
        assert!(x.iter().zip(&h).all(|(&x, &h)| h == half_f16(x)));
        f16_to_f32_slice(&h, &mut y);
        assert!(h
            .iter()
            .zip(&y)
            .all(|(&h, y)| y.to_bits() == f16_to_f32(h).to_bits()));
    }

    /// How an operand is laid out in its buffer, for a rows x cols matrix.
    #[derive(Clone, Copy, Debug)]
    enum Lay {
        /// Row-major, rows `cols + pad` apart.
        Rows(usize),
        /// The transpose of a row-major cols x rows matrix, its rows `rows + pad` apart.
        Cols(usize),
        /// Every other element along a row, rows `2 * cols + 1` apart: neither stride is 1.
        Gaps,
    }

    impl Lay {
        fn strides(self, rows_n: usize, cols_n: usize) -> Strides {
            match self {
                Lay::Rows(pad) => rows(cols_n + pad),
                Lay::Cols(pad) => transposed(rows_n + pad),
                Lay::Gaps => Strides {
                    rs: 2 * cols_n + 1,
                    cs: 2,
                },
            }
        }
        fn len(self, rows_n: usize, cols_n: usize) -> usize {
            let s = self.strides(rows_n, cols_n);
            (rows_n - 1) * s.rs + (cols_n - 1) * s.cs + 1
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Path {
        Bf16(Bf16Kernel),
        F16,
    }

    /// Whether `k` can run here; says so when it cannot (its tests then check nothing).
    fn runs(k: Bf16Kernel) -> bool {
        let ok = k.available();
        if !ok {
            eprintln!("this machine cannot run {k:?}: not tested");
        }
        ok
    }

    const KERNELS: [Bf16Kernel; 3] = [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16, Bf16Kernel::F32];

    #[derive(Clone, Copy, Debug)]
    struct Case {
        mnk: (usize, usize, usize),
        l: Lay,
        r: Lay,
        dst_pad: usize,
        beta: f32,
        accumulate: bool,
        parallel: bool,
    }

    /// Runs a product on `path` and checks it against f64 sums of the operands rounded by
    /// `half`, within 1e-6 of sum |a||b| (f32 sums); returns dst.
    fn check(path: Path, c: Case, seed: u64) -> Vec<f32> {
        let (m, n, k) = c.mnk;
        let mut rng = Rng(seed);
        let (ls, rs) = (c.l.strides(m, k), c.r.strides(k, n));
        let a = rng.vec(c.l.len(m, k));
        let b = rng.vec(c.r.len(k, n));
        let dst_rs = n + c.dst_pad;
        // Without `accumulate` dst must not be read: NaN would show.
        let init: Vec<f32> = (0..m * dst_rs)
            .map(|_| if c.accumulate { rng.f32() } else { f32::NAN })
            .collect();
        let mut dst = init.clone();
        let round = |x: f32| -> f64 {
            match path {
                Path::F16 => half::f16::from_f32(x).to_f64(),
                _ => half::bf16::from_f32(x).to_f64(),
            }
        };
        let (la, rb) = (Src::F32(a.as_ptr()), Src::F32(b.as_ptr()));
        let args = (dst.as_mut_ptr(), dst_rs, c.beta, c.accumulate, c.parallel);
        // SAFETY: the buffers span the strides (Lay::len); dst is a separate buffer.
        unsafe {
            let (d, drs, beta, acc, par) = args;
            match path {
                Path::Bf16(k) => mm_bf16_on(k, c.mnk, d, drs, la, ls, rb, rs, beta, acc, par),
                Path::F16 => mm_f16(c.mnk, d, drs, la, ls, rb, rs, beta, acc, par),
            }
        }
        for i in 0..m {
            for j in 0..dst_rs {
                let got = dst[i * dst_rs + j];
                if j >= n {
                    assert_eq!(got.to_bits(), init[i * dst_rs + j].to_bits(), "padding");
                    continue;
                }
                let (mut sum, mut abs) = (0f64, 0f64);
                for p in 0..k {
                    let t = round(a[i * ls.rs + p * ls.cs]) * round(b[p * rs.rs + j * rs.cs]);
                    sum += t;
                    abs += t.abs();
                }
                let old = if c.accumulate {
                    init[i * dst_rs + j] as f64
                } else {
                    0.0
                };
                let want = c.beta as f64 * sum + old;
                let tol = 1e-6 * (c.beta.abs() as f64 * abs + old.abs()) + 1e-30;
                assert!(
                    (got as f64 - want).abs() <= tol,
                    "{path:?} {c:?}: [{i}, {j}] = {got}, want {want} (tolerance {tol:e})"
                );
            }
        }
        dst
    }

    fn cases() -> Vec<Case> {
        let shapes = [
            (1, 1, 1),
            (1, 1, 2),
            (1, 17, 3),
            (2, 1, 5),
            (3, 5, 7),
            (12, 32, 2),
            (13, 33, 9),
            (17, 47, 64),
            (25, 70, 513), // crosses a KCP block, k odd
            (97, 257, 30), // MC and NC tails
            (40, 16, 1),
            (11, 100, 1000),
        ];
        let lays = [
            (Lay::Rows(0), Lay::Rows(0)),
            (Lay::Rows(3), Lay::Cols(0)),
            (Lay::Cols(2), Lay::Rows(1)),
            (Lay::Cols(0), Lay::Cols(5)),
            (Lay::Gaps, Lay::Gaps),
        ];
        let mut out = Vec::new();
        for (s, &mnk) in shapes.iter().enumerate() {
            for (v, &(l, r)) in lays.iter().enumerate() {
                out.push(Case {
                    mnk,
                    l,
                    r,
                    dst_pad: [0, 3][(s + v) % 2],
                    beta: [1.0, -0.5, 3.0][(s + 2 * v) % 3],
                    accumulate: (s + v) % 3 == 1,
                    parallel: v % 2 == 0,
                });
            }
        }
        out
    }

    fn check_all(k: Bf16Kernel) {
        if runs(k) {
            for (s, c) in cases().into_iter().enumerate() {
                check(Path::Bf16(k), c, s as u64 + 10);
            }
        }
    }

    #[test]
    fn mm_bf16_on_amx_matches_the_rounded_f64_product() {
        check_all(Bf16Kernel::Amx)
    }

    #[test]
    fn mm_bf16_on_avx512bf16_matches_the_rounded_f64_product() {
        check_all(Bf16Kernel::Avx512Bf16)
    }

    #[test]
    fn mm_bf16_on_f32_gemm_matches_the_rounded_f64_product() {
        check_all(Bf16Kernel::F32)
    }

    #[test]
    fn mm_f16_matches_the_rounded_f64_product() {
        for (s, c) in cases().into_iter().enumerate().step_by(3) {
            check(Path::F16, c, s as u64 + 10);
        }
    }

    #[test]
    fn the_kernels_agree() {
        let c = Case {
            mnk: (130, 300, 301),
            l: Lay::Rows(0),
            r: Lay::Cols(0),
            dst_pad: 0,
            beta: 1.0,
            accumulate: false,
            parallel: true,
        };
        let base = check(Path::Bf16(Bf16Kernel::F32), c, 7);
        for k in [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16] {
            if runs(k) {
                let d = check(Path::Bf16(k), c, 7);
                let worst = d
                    .iter()
                    .zip(&base)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                // Sums of 301 products of values in [-1, 1]: a few units of 1e-6 apart at most.
                assert!(worst < 2e-5, "{k:?}: {worst}");
            }
        }
    }

    #[test]
    fn the_bf16_kernels_give_the_same_bits_on_one_and_two_threads() {
        // Big enough to be split (PAR_WORK), with tails in every direction.
        let (m, n, k) = (300, 290, 257);
        let mut rng = Rng(5);
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        for kernel in KERNELS {
            if !runs(kernel) {
                continue;
            }
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut d = vec![0f32; m * n];
                pool.install(|| unsafe {
                    // SAFETY: the buffers are m x k, k x n and m x n.
                    mm_bf16_on(
                        kernel,
                        (m, n, k),
                        d.as_mut_ptr(),
                        n,
                        Src::F32(a.as_ptr()),
                        rows(k),
                        Src::F32(b.as_ptr()),
                        rows(n),
                        1.0,
                        false,
                        true,
                    )
                });
                d
            };
            let (one, two) = (run(1), run(2));
            assert!(
                one.iter()
                    .zip(&two)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{kernel:?}"
            );
        }
    }

    /// Every kernel rounds f32 operands, and reads bf16 bits as the same values.
    #[test]
    fn operands_are_rounded_and_bf16_bits_read_as_their_values() {
        for fast in KERNELS.into_iter().filter(|&k| runs(k)) {
            // 1 + 2^-9 is no bf16: it rounds to 1, so 1 x 1 = 1 exactly (an f32 product would
            // be 1 + 2^-9).
            let (a, b) = ([1.0f32 + 1.0 / 512.0], [1.0f32]);
            let mut d = [0f32];
            let one = (1, 1, 1);
            let (pa, pb) = (Src::F32(a.as_ptr()), Src::F32(b.as_ptr()));
            // SAFETY: 1 x 1 buffers.
            unsafe {
                mm_bf16_on(
                    fast,
                    one,
                    d.as_mut_ptr(),
                    1,
                    pa,
                    rows(1),
                    pb,
                    rows(1),
                    1.0,
                    false,
                    false,
                )
            };
            assert_eq!(d[0], 1.0, "{fast:?}");

            // n > GROUP x NR: two groups of rhs panels.
            let (m, n, k) = (37, 300, 77);
            let mut rng = Rng(6);
            let (x, w) = (rng.vec(m * k), rng.vec(n * k));
            let xb: Vec<u16> = x.iter().map(|&v| half_bf16(v)).collect();
            let wb: Vec<u16> = w.iter().map(|&v| half_bf16(v)).collect();
            // w read as k x n both ways: stored [n, k] (a weight) and [k, n].
            for r in [transposed(k), rows(n)] {
                for lhs_bits in [false, true] {
                    let mut d1 = vec![0f32; m * n];
                    let mut d2 = vec![0f32; m * n];
                    let a2 = if lhs_bits {
                        Src::Bf16(xb.as_ptr())
                    } else {
                        Src::F32(x.as_ptr())
                    };
                    let one = |d: &mut Vec<f32>, a: Src, b: Src| {
                        // SAFETY: m x k, k x n (either layout spans n * k) and m x n buffers.
                        unsafe {
                            mm_bf16_on(
                                fast,
                                (m, n, k),
                                d.as_mut_ptr(),
                                n,
                                a,
                                rows(k),
                                b,
                                r,
                                1.0,
                                false,
                                false,
                            )
                        }
                    };
                    one(&mut d1, Src::F32(x.as_ptr()), Src::F32(w.as_ptr()));
                    one(&mut d2, a2, Src::Bf16(wb.as_ptr()));
                    assert!(
                        d1.iter().zip(&d2).all(|(p, q)| p.to_bits() == q.to_bits()),
                        "{fast:?} rhs rows {} apart, lhs bits {lhs_bits}",
                        r.rs
                    );
                }
            }
        }
    }

    #[test]
    fn a_product_over_nothing_is_zero_or_leaves_dst() {
        for fast in KERNELS.into_iter().filter(|&k| runs(k)) {
            let mut d = [5f32; 6];
            let e: [f32; 0] = [];
            let (s, l) = (Src::F32(e.as_ptr()), rows(0));
            // SAFETY: k = 0: no operand element is read; dst is 2 x 3.
            unsafe {
                mm_bf16_on(
                    fast,
                    (2, 3, 0),
                    d.as_mut_ptr(),
                    3,
                    s,
                    l,
                    s,
                    rows(3),
                    1.0,
                    true,
                    false,
                );
                assert_eq!(d, [5.0; 6]);
                mm_bf16_on(
                    fast,
                    (2, 3, 0),
                    d.as_mut_ptr(),
                    3,
                    s,
                    l,
                    s,
                    rows(3),
                    1.0,
                    false,
                    false,
                );
                assert_eq!(d, [0.0; 6]);
            }
        }
    }

    #[test]
    fn mm_f16_shows_an_overflow_as_a_non_finite_output() {
        let (m, n, k) = (2, 3, 4);
        let mut a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        // Row 0: 65504 (f16's largest) stays finite; row 1: 70000 is beyond it.
        a[0] = 65504.0;
        a[k] = 70000.0;
        let mut d = vec![0f32; m * n];
        // SAFETY: m x k, k x n, m x n buffers.
        unsafe {
            mm_f16(
                (m, n, k),
                d.as_mut_ptr(),
                n,
                Src::F32(a.as_ptr()),
                rows(k),
                Src::F32(b.as_ptr()),
                rows(n),
                1.0,
                false,
                false,
            )
        };
        assert!(d[..n].iter().all(|&v| v == 65507.0), "{d:?}");
        assert!(d[n..].iter().all(|v| !v.is_finite()), "{d:?}");
    }

    fn gemv_reference(x: &[f32], w: &[u16], n: usize, out: usize, inp: usize) -> Vec<(f64, f64)> {
        let mut r = Vec::new();
        for i in 0..n {
            for j in 0..out {
                let (mut s, mut a) = (0f64, 0f64);
                for p in 0..inp {
                    let t = x[i * inp + p] as f64 * half::bf16::from_bits(w[j * inp + p]).to_f64();
                    s += t;
                    a += t.abs();
                }
                r.push((s, a));
            }
        }
        r
    }

    #[test]
    fn gemv_bf16_matches_the_f64_product_on_both_paths() {
        let mut rng = Rng(8);
        for (n, out, inp) in [
            (1, 1, 1),
            (1, 33, 17),
            (2, 9, 16),
            (3, 40, 100),
            (5, 13, 384),
            (8, 20, 31),
            (13, 7, 64),
            (16, 50, 129),
        ] {
            let x = rng.vec(n * inp);
            let w: Vec<u16> = rng.vec(out * inp).iter().map(|&v| half_bf16(v)).collect();
            let want = gemv_reference(&x, &w, n, out, inp);
            let mut d = vec![f32::NAN; n * out];
            gemv_bf16(&mut d, &x, &w, n, out, inp);
            let mut p = vec![f32::NAN; n * out];
            // SAFETY: p is n x out, the block all of w.
            unsafe { gemv_block_portable(&x, n, inp, &w, p.as_mut_ptr(), out) };
            for (got, &(s, a)) in d.iter().chain(&p).zip(want.iter().cycle()) {
                assert!(
                    (*got as f64 - s).abs() <= 1e-6 * a + 1e-30,
                    "{n} {out} {inp}: {got} vs {s}"
                );
            }
        }
    }

    #[test]
    fn gemv_bf16_gives_the_same_bits_on_one_and_two_threads() {
        let (n, out, inp) = (3, 700, 384);
        let mut rng = Rng(9);
        let x = rng.vec(n * inp);
        let w: Vec<u16> = rng.vec(out * inp).iter().map(|&v| half_bf16(v)).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut d = vec![0f32; n * out];
            pool.install(|| gemv_bf16(&mut d, &x, &w, n, out, inp));
            d
        };
        let (one, two) = (run(1), run(2));
        assert!(one
            .iter()
            .zip(&two)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}
