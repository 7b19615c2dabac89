//! A product with a constant matrix: y = x W^T whose backward gives dx = dy W and nothing for W.
//! Candle's own matmul backward computes both operands' gradients whether or not one is
//! trainable, so a frozen base under a LoRA adapter would still pay for every weight gradient
//! (the matmul, a zero-filled buffer and an add per layer) and hold them all in memory.

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use super::product::{cpu_f32, mm, rows, transposed};
use super::{check_f32, f32s, output};

/// x [N, in] times the constant w [out, in] transposed: [N, out]. Differentiable in x only.
pub fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (_, inp) = x.dims2()?;
    let (_, win) = w.dims2()?;
    if win != inp {
        bail!(
            "frozen_matmul: x {:?} and w {:?} do not fit",
            x.dims(),
            w.dims()
        );
    }
    if !x.device().is_cpu() || w.dtype() != DType::F32 {
        return x.matmul(&w.detach().t()?);
    }
    check_f32("frozen_matmul", &[x, w])?;
    x.contiguous()?.apply_op1(Frozen {
        w: w.detach().contiguous()?,
    })
}

struct Frozen {
    w: Tensor,
}

impl CustomOp1 for Frozen {
    fn name(&self) -> &'static str {
        "wick-frozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, "frozen_matmul x")?;
        let (n, inp) = l.shape().dims2()?;
        let out_dim = self.w.dim(0)?;
        let (sw, lw) = self.w.storage_and_layout();
        let w = cpu_f32(&sw, lw, "frozen_matmul w")?;
        let mut y = output(n * out_dim);
        // SAFETY: x is n x inp and w out x inp, contiguous (checked by f32s); y is n x out.
        unsafe {
            mm(
                (n, out_dim, inp),
                y.as_mut_ptr(),
                out_dim,
                x.as_ptr(),
                rows(inp),
                w.as_ptr(),
                transposed(inp),
                1.0,
                false,
                true,
            )
        };
        Ok((CpuStorage::F32(y), Shape::from((n, out_dim))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (n, inp) = x.dims2()?;
        let out_dim = self.w.dim(0)?;
        let dy = dy.contiguous()?;
        let ((sd, ld), (sw, lw)) = (dy.storage_and_layout(), self.w.storage_and_layout());
        let (dyv, w) = (
            cpu_f32(&sd, ld, "frozen_matmul grad")?,
            cpu_f32(&sw, lw, "frozen_matmul w")?,
        );
        let mut dx = output(n * inp);
        // SAFETY: dy is n x out and w out x inp, contiguous; dx is n x inp.
        unsafe {
            mm(
                (n, inp, out_dim),
                dx.as_mut_ptr(),
                inp,
                dyv.as_ptr(),
                rows(out_dim),
                w.as_ptr(),
                rows(inp),
                1.0,
                false,
                true,
            )
        };
        Ok(Some(Tensor::from_vec(dx, (n, inp), x.device())?))
    }
}
