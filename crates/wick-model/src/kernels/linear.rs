//! Products with a weight stored as Hugging Face stores it, [out, in]: y = x W^T.
//!
//! `linear`: candle's `x.matmul(&w.t())` computes W's gradient for the transposed view,
//! (x^T dy) [in, out], and hands W its transpose, a strided view that the gradient store then
//! copies to make contiguous: one more pass over every weight gradient. Here dW = dy^T x is computed straight into [out, in].
//!
//! `matmul_t`: the same product, forward only, with the weight kept transposed, [in, out]: the
//! matrix kernel then reads it as it is instead of packing it again on every call (see
//! `Llama::keep_transposed_weights`).
//!
//! `frozen_matmul`: the same product with a constant matrix, whose backward gives dx = dy W and
//! nothing for W. Candle's own matmul backward computes both operands' gradients whether or not
//! one is trainable, so a frozen base under a LoRA adapter would still pay for every weight
//! gradient (the matmul, a zero-filled buffer and an add per layer) and hold them all in memory.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::{f32s, fused_with_weight, output};
use super::product::{cpu_f32, cpu_weight, mm, mm_w, rows, storage_weight, transposed, x_w, x_wt};
use super::reference;
use crate::precision::{current, Precision};

/// x [N, in] times the constant w [out, in] transposed: [N, out]. Differentiable in x only.
pub fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    linear(x, &w.detach())
}

/// x [N, in] times w [out, in] transposed: [N, out], differentiable in both (each gradient only
/// when its operand is tracked). The weight's gradient comes out [out, in], contiguous.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (_, inp) = x.dims2()?;
    let (_, win) = w.dims2()?;
    if win != inp {
        bail!("linear: x {:?} and w {:?} do not fit", x.dims(), w.dims());
    }
    if !fused_with_weight(&[x], w) {
        return reference::linear(x, w);
    }
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Linear { p: current() })
}

/// x [N, in] times wt [in, out]: [N, out]. Forward only: the result is cut from the graph (no
/// gradient reaches x or wt), so callers use it only where nothing takes a gradient.
pub fn matmul_t(x: &Tensor, wt: &Tensor) -> Result<Tensor> {
    let (_, inp) = x.dims2()?;
    let (win, _) = wt.dims2()?;
    if win != inp {
        bail!(
            "matmul_t: x {:?} and wt {:?} do not fit",
            x.dims(),
            wt.dims()
        );
    }
    if !fused_with_weight(&[x], wt) {
        return reference::linear(x, &wt.t()?);
    }
    x.contiguous()?
        .apply_op2_no_bwd(&wt.contiguous()?, &MatmulT { p: current() })
}

struct MatmulT {
    p: Precision,
}

impl CustomOp2 for MatmulT {
    fn name(&self) -> &'static str {
        "wick-matmul-t"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        product(self.p, s1, l1, s2, l2, true)
    }
}

/// x [N, in] times a weight stored [out, in] (`transposed_w` false) or kept [in, out] (true).
fn product(
    p: Precision,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    transposed_w: bool,
) -> Result<(CpuStorage, Shape)> {
    let x = f32s(s1, l1, "linear x")?;
    let w = cpu_weight(s2, l2, "linear w")?;
    let (n, inp) = l1.shape().dims2()?;
    let (w0, w1) = l2.shape().dims2()?;
    let out_dim = if transposed_w { w1 } else { w0 };
    let mut y = output(n * out_dim);
    if transposed_w {
        x_w(p, &mut y, x, w, (n, out_dim, inp));
    } else {
        x_wt(p, &mut y, x, w, (n, out_dim, inp));
    }
    Ok((CpuStorage::F32(y), Shape::from((n, out_dim))))
}

struct Linear {
    p: Precision,
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "wick-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        product(self.p, s1, l1, s2, l2, false)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, inp) = x.dims2()?;
        let out_dim = w.dim(0)?;
        let dy = dy.contiguous()?;
        let (sd, ld) = dy.storage_and_layout();
        let dyv = cpu_f32(&sd, ld, "linear grad")?;
        let dx = if x.track_op() {
            let (sw, lw) = w.storage_and_layout();
            let wv = storage_weight(&sw, lw, "linear w")?;
            let mut dx = output(n * inp);
            // SAFETY: dy is n x out and w out x inp, contiguous; dx is n x inp.
            unsafe {
                mm_w(
                    self.p,
                    (n, inp, out_dim),
                    dx.as_mut_ptr(),
                    inp,
                    dyv.as_ptr(),
                    rows(out_dim),
                    wv,
                    rows(inp),
                    1.0,
                    false,
                    true,
                )
            };
            Some(Tensor::from_vec(dx, (n, inp), x.device())?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let (sx, lx) = x.storage_and_layout();
            let xv = cpu_f32(&sx, lx, "linear x")?;
            let mut dw = output(out_dim * inp);
            // SAFETY: dy is n x out and x n x inp, contiguous; dw is out x inp.
            unsafe {
                mm(
                    self.p,
                    (out_dim, inp, n),
                    dw.as_mut_ptr(),
                    inp,
                    dyv.as_ptr(),
                    transposed(out_dim),
                    xv.as_ptr(),
                    rows(inp),
                    1.0,
                    false,
                    true,
                )
            };
            Some(Tensor::from_vec(dw, (out_dim, inp), w.device())?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}
