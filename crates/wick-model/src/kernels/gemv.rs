//! Products with a handful of rows, for decoding: y = x W^T with x [n, in], n small (one row per
//! sequence being decoded), W [out, in]. Such a product reads every weight once for a few
//! multiply-adds, so its speed is how fast the weights stream through the cache. At one row the
//! gemm crate under candle is about as fast; from two rows on it packs the operands as for a
//! general product.
//!
//! Here each task takes a block of W's rows and dots every row with the n rows of x, which stay
//! in L1; the tasks run over rayon's threads. Each output element is one dot product in a fixed
//! order, so the result does not depend on the number of threads. Inference only: no backward.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::cpu::{f32s, fused, has_avx2, map_ranges, output, LANES};
use super::product::{cpu_f32, storage_weight, Weight};
use super::reference;

/// Rows of x up to which `gemv` beats the general product (`examples/gemv_speed` measures it;
/// docs/speed.md has the figures).
pub const GEMV_MAX_ROWS: usize = 16;

/// x [n, in] times w [out, in] transposed: [n, out], for small n. Neither input may require a
/// gradient (the op has no backward, and must not silently cut a graph).
pub fn gemv(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (_, inp) = x.dims2()?;
    let (_, win) = w.dims2()?;
    if win != inp {
        bail!("gemv: x {:?} and w {:?} do not fit", x.dims(), w.dims());
    }
    if x.track_op() || w.track_op() {
        bail!("gemv: inference only, but an input requires a gradient");
    }
    if w.dtype() == candle_core::DType::F16 && fused(&[x]) {
        // An f16 weight: the general product reads it as stored.
        return super::linear(x, w);
    }
    if w.dtype() == candle_core::DType::BF16 && fused(&[x]) && w.device().is_cpu() {
        // A bf16 weight streams half the bytes: the point of keeping a model in bf16.
        return x
            .contiguous()?
            .apply_op1_no_bwd(&Gemv { w: w.contiguous()? });
    }
    if !fused(&[x, w]) {
        return reference::linear(x, w);
    }
    x.contiguous()?
        .apply_op1_no_bwd(&Gemv { w: w.contiguous()? })
}

struct Gemv {
    w: Tensor,
}

impl CustomOp1 for Gemv {
    fn name(&self) -> &'static str {
        "wick-gemv"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, "gemv x")?;
        let (n, inp) = l.shape().dims2()?;
        let out_dim = self.w.dim(0)?;
        let (sw, lw) = self.w.storage_and_layout();
        if let Weight::Bf16(w) = storage_weight(&sw, lw, "gemv w")? {
            let mut y = output(n * out_dim);
            let bits: &[u16] = half::slice::HalfFloatSliceExt::reinterpret_cast(w);
            // x rounded as the batched bf16 product rounds it, so that decoding a token and
            // scoring it in a batch agree.
            let xr: Vec<f32> = x
                .iter()
                .map(|&v| super::lowp::bf16_to_f32(super::lowp::round_bf16(v)))
                .collect();
            super::lowp::gemv_bf16(&mut y, &xr, bits, n, out_dim, inp);
            return Ok((CpuStorage::F32(y), Shape::from((n, out_dim))));
        }
        let w = cpu_f32(&sw, lw, "gemv w")?;
        // Each task: a block of W's rows, its results as [n, rows] to be put in place.
        let blocks = map_ranges(out_dim, n * inp, |r| {
            let mut part = output(n * r.len());
            dot_block(x, n, inp, &w[r.start * inp..r.end * inp], &mut part);
            (r, part)
        });
        let mut y = output(n * out_dim);
        for (r, part) in blocks {
            for (i, row) in part.chunks_exact(r.len()).enumerate() {
                y[i * out_dim + r.start..i * out_dim + r.end].copy_from_slice(row);
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((n, out_dim))))
    }
}

/// dst[i * rows + j] = x_i · w_j for the n rows of x and the rows of the block w: with
/// AVX-512 register tiles when the CPU has it, else dot products compiled for AVX2 or portable.
fn dot_block(x: &[f32], n: usize, k: usize, w: &[f32], dst: &mut [f32]) {
    #[inline(always)]
    fn body(x: &[f32], n: usize, k: usize, w: &[f32], dst: &mut [f32]) {
        let rows = w.len() / k.max(1);
        for (j, wj) in w.chunks_exact(k.max(1)).enumerate() {
            for i in 0..n {
                dst[i * rows + j] = dot(&x[i * k..(i + 1) * k], wj);
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(x: &[f32], n: usize, k: usize, w: &[f32], dst: &mut [f32]) {
            body(x, n, k, w, dst)
        }
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { avx512::dot_block(x, n, k, w, dst) };
        }
        if has_avx2() {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(x, n, k, w, dst) };
        }
    }
    body(x, n, k, w, dst)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// As `super::dot_block`. Tiles of R weight rows x N rows of x: each 16-float slice of a
    /// weight row is loaded once and multiplied into the N accumulators of its row, and the
    /// R x N independent accumulator chains hide the FMA latency (R x N + N + 1 of the 32
    /// vector registers).
    ///
    /// # Safety
    /// The CPU must have AVX-512F; x holds n rows of k, dst n x (w.len() / k).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_block(x: &[f32], n: usize, k: usize, w: &[f32], dst: &mut [f32]) {
        let rows = w.len() / k.max(1);
        assert!(x.len() >= n * k && dst.len() >= n * rows);
        let mut i = 0;
        while i < n {
            let left = n - i;
            let xi = x.as_ptr().add(i * k);
            let di = dst.as_mut_ptr().add(i * rows);
            i += match left {
                8.. => rows_of::<2, 8>(xi, k, w.as_ptr(), rows, di),
                4..=7 => rows_of::<4, 4>(xi, k, w.as_ptr(), rows, di),
                2 | 3 => rows_of::<4, 2>(xi, k, w.as_ptr(), rows, di),
                _ => rows_of::<8, 1>(xi, k, w.as_ptr(), rows, di),
            };
        }
    }

    /// dst[i * rows + j] for N rows of x and every weight row j, R weight rows at a time
    /// (then one at a time for the rest). Returns N.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_of<const R: usize, const N: usize>(
        x: *const f32,
        k: usize,
        w: *const f32,
        rows: usize,
        dst: *mut f32,
    ) -> usize {
        let mut j = 0;
        while j + R <= rows {
            tile::<R, N>(x, k, w.add(j * k), rows, dst.add(j));
            j += R;
        }
        while j < rows {
            tile::<1, N>(x, k, w.add(j * k), rows, dst.add(j));
            j += 1;
        }
        N
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize, const N: usize>(
        x: *const f32,
        k: usize,
        w: *const f32,
        rows: usize,
        dst: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        let mut xv = [_mm512_setzero_ps(); N];
        let mut c = 0;
        while c < k {
            // The last slice is a partial one, read under a mask (zeros beyond k).
            let mask: __mmask16 = if k - c >= 16 {
                0xffff
            } else {
                (1u16 << (k - c)) - 1
            };
            for (i, v) in xv.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(mask, x.add(i * k + c));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = _mm512_maskz_loadu_ps(mask, w.add(r * k + c));
                for (ai, xi) in a.iter_mut().zip(xv.iter()) {
                    *ai = _mm512_fmadd_ps(wv, *xi, *ai);
                }
            }
            c += 16;
        }
        for (r, a) in acc.iter().enumerate() {
            for (i, ai) in a.iter().enumerate() {
                *dst.add(i * rows + r) = _mm512_reduce_add_ps(*ai);
            }
        }
    }
}

/// a · b with four independent vectors of lane accumulators, so that the adds of one step do
/// not wait for the previous step's.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const W: usize = 4 * LANES;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let full = n / W * W;
    let mut acc = [0f32; W];
    for (ca, cb) in a[..full].chunks_exact(W).zip(b[..full].chunks_exact(W)) {
        for k in 0..W {
            acc[k] += ca[k] * cb[k];
        }
    }
    let mut s = 0f32;
    for j in full..n {
        s += a[j] * b[j];
    }
    acc.iter().sum::<f32>() + s
}
