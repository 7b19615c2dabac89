//! A product with a constant matrix: y = x W^T whose backward gives dx = dy W and nothing for W.
//! Candle's own matmul backward computes both operands' gradients whether or not one is
//! trainable, so a frozen base under a LoRA adapter would still pay for every weight gradient
//! (the matmul, a zero-filled buffer and an add per layer) and hold them all in memory.

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use gemm::{gemm, Parallelism};

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

fn threads() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// dst (m x n, contiguous) = lhs (m x k) * rhs (k x n), strides (row, column).
#[allow(clippy::too_many_arguments)]
fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n);
    // SAFETY: the callers pass slices holding the m x k and k x n elements the strides reach.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            threads(),
        )
    }
}

fn weight(w: &Tensor) -> Result<Vec<f32>> {
    w.flatten_all()?.to_vec1::<f32>()
}

impl CustomOp1 for Frozen {
    fn name(&self) -> &'static str {
        "wick-frozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, "frozen_matmul x")?;
        let (n, inp) = l.shape().dims2()?;
        let out_dim = self.w.dim(0)?;
        let w = weight(&self.w)?;
        let mut y = output(n * out_dim);
        mm(n, out_dim, inp, &mut y, x, (inp, 1), &w, (1, inp));
        Ok((CpuStorage::F32(y), Shape::from((n, out_dim))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (n, inp) = x.dims2()?;
        let out_dim = self.w.dim(0)?;
        let dy = dy.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let w = weight(&self.w)?;
        let mut dx = output(n * inp);
        mm(n, inp, out_dim, &mut dx, &dy, (out_dim, 1), &w, (inp, 1));
        Ok(Some(Tensor::from_vec(dx, (n, inp), x.device())?))
    }
}
