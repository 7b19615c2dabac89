//! A linear layer with a LoRA adapter as one op: y = x W^T + s (x A^T) B^T with W frozen.
//! Composed from candle ops it leaves three [N, out] tensors per layer in the graph (the
//! adapter's product, its scaled copy and the sum) and as many gradient buffers in the backward
//! pass, which at a few layers of a wide model outweighs the optimiser state LoRA saves. Here
//! the output is the only [N, out] tensor; the backward pass recomputes u = x A^T ([N, r],
//! cheap) and returns dx = dy W + s (dy B) A, dA = s (dy B)^T x, dB = s dy^T u.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{f32s, fused_with_weight, output};
use super::product::{cpu_f32, mm, mm_w, rows, storage_weight, transposed, x_wt};
use super::reference;
use crate::precision::{current, Precision};

/// x [N, in], frozen w [out, in], a [r, in], b [out, r] -> [N, out]. Differentiable in x, a
/// and b (w gets no gradient). Equals `x.matmul(w^T) + (x.matmul(a^T).matmul(b^T) * scale)`.
pub fn lora_matmul(x: &Tensor, w: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let (_, inp) = x.dims2()?;
    let (out, win) = w.dims2()?;
    let (r, ain) = a.dims2()?;
    if win != inp || ain != inp || b.dims() != [out, r] {
        bail!(
            "lora_matmul: x {:?}, w {:?}, a {:?}, b {:?} do not fit",
            x.dims(),
            w.dims(),
            a.dims(),
            b.dims()
        );
    }
    if !fused_with_weight(&[x, a, b], w) {
        return reference::lora_matmul(x, w, a, b, scale);
    }
    x.contiguous()?.apply_op3(
        &a.contiguous()?,
        &b.contiguous()?,
        LoraMatmul {
            p: current(),
            w: w.detach().contiguous()?,
            scale: scale as f32,
        },
    )
}

struct LoraMatmul {
    p: Precision,
    w: Tensor,
    scale: f32,
}

impl CustomOp3 for LoraMatmul {
    fn name(&self) -> &'static str {
        "wick-lora-matmul"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sa: &CpuStorage,
        la: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(sx, lx, "lora_matmul x")?;
        let a = f32s(sa, la, "lora_matmul a")?;
        let b = f32s(sb, lb, "lora_matmul b")?;
        let (n, inp) = lx.shape().dims2()?;
        let (r, _) = la.shape().dims2()?;
        let out = self.w.dim(0)?;
        let (sw, lw) = self.w.storage_and_layout();
        let w = storage_weight(&sw, lw, "lora_matmul w")?;
        let mut u = output(n * r);
        let mut y = output(n * out);
        x_wt(self.p, &mut y, x, w, (n, out, inp));
        x_wt(self.p, &mut u, x, a, (n, r, inp));
        // SAFETY: u is n x r and b out x r, contiguous (checked by f32s); y is n x out.
        unsafe {
            mm(
                self.p,
                (n, out, r),
                y.as_mut_ptr(),
                out,
                u.as_ptr(),
                rows(r),
                b.as_ptr(),
                transposed(r),
                self.scale,
                true,
                true,
            );
        }
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, inp) = x.dims2()?;
        let (r, _) = a.dims2()?;
        let out = self.w.dim(0)?;
        let s = self.scale;
        let dy = dy.contiguous()?;
        let (sd, ld) = dy.storage_and_layout();
        let (sx, lx) = x.storage_and_layout();
        let (sa, la) = a.storage_and_layout();
        let (sb, lb) = b.storage_and_layout();
        let (sw, lw) = self.w.storage_and_layout();
        let dyv = cpu_f32(&sd, ld, "lora_matmul grad")?;
        let xv = cpu_f32(&sx, lx, "lora_matmul x")?;
        let av = cpu_f32(&sa, la, "lora_matmul a")?;
        let bv = cpu_f32(&sb, lb, "lora_matmul b")?;
        let w = storage_weight(&sw, lw, "lora_matmul w")?;
        let (mut v, mut u) = (output(n * r), output(n * r));
        let (mut da, mut db) = (output(r * inp), output(out * r));
        let mut dx = x.track_op().then(|| output(n * inp));
        // u = x A^T
        x_wt(self.p, &mut u, xv, av, (n, r, inp));
        // SAFETY: as in the forward pass; dy is n x out, v and u n x r, da r x inp, db out x r,
        // dx n x inp, each freshly allocated.
        unsafe {
            // v = dy B
            mm(
                self.p,
                (n, r, out),
                v.as_mut_ptr(),
                r,
                dyv.as_ptr(),
                rows(out),
                bv.as_ptr(),
                rows(r),
                1.0,
                false,
                true,
            );
            // dA = s v^T x, dB = s dy^T u
            mm(
                self.p,
                (r, inp, n),
                da.as_mut_ptr(),
                inp,
                v.as_ptr(),
                transposed(r),
                xv.as_ptr(),
                rows(inp),
                s,
                false,
                true,
            );
            mm(
                self.p,
                (out, r, n),
                db.as_mut_ptr(),
                r,
                dyv.as_ptr(),
                transposed(out),
                u.as_ptr(),
                rows(r),
                s,
                false,
                true,
            );
            if let Some(dx) = dx.as_mut() {
                // dx = dy W + s v A
                mm_w(
                    self.p,
                    (n, inp, out),
                    dx.as_mut_ptr(),
                    inp,
                    dyv.as_ptr(),
                    rows(out),
                    w,
                    rows(inp),
                    1.0,
                    false,
                    true,
                );
                mm(
                    self.p,
                    (n, inp, r),
                    dx.as_mut_ptr(),
                    inp,
                    v.as_ptr(),
                    rows(r),
                    av.as_ptr(),
                    rows(inp),
                    s,
                    true,
                    true,
                );
            }
        }
        let dev = x.device();
        Ok((
            dx.map(|d| Tensor::from_vec(d, (n, inp), dev)).transpose()?,
            Some(Tensor::from_vec(da, (r, inp), dev)?),
            Some(Tensor::from_vec(db, (out, r), dev)?),
        ))
    }
}
