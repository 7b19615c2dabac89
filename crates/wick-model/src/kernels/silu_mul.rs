//! SwiGLU's gating, `silu(gate) * up`, with gate and up as two tensors or side by side in one
//! (as one fused gate/up projection writes them).

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};

use rayon::prelude::*;

use super::cpu::{
    f32s, fused, map_rows, output, rows_per_task, sigmoid, simd_dispatch, simd_kernel,
};
use super::reference;

/// `silu(gate) * up` (SwiGLU's gating), differentiable in both.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        bail!(
            "silu_mul: gate {:?} and up {:?} differ in shape",
            gate.dims(),
            up.dims()
        );
    }
    if !fused(&[gate, up]) {
        return reference::silu_mul(gate, up);
    }
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
    if !fused(&[gu]) {
        return reference::silu_mul_packed(gu);
    }
    gu.contiguous()?.apply_op1(SiluMulPacked)
}

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
