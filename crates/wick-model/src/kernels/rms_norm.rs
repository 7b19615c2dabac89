//! RMSNorm over the last dimension, forward and backward (dx and, when the weight trains, dw).

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};

use super::cpu::{dot3, f32s, fused, map_rows, output, simd_dispatch, simd_kernel, sum_map};
use super::reference;

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
    if !fused(&[x, weight]) {
        return reference::rms_norm(x, weight, eps);
    }
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
}

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
