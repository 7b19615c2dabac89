//! Rotary embeddings in Hugging Face's half-rotation convention, on [B, H, T, D] heads (`rope`)
//! or on a fused q/k/v projection's [B, T, H, D] output, rotated and laid out head-major in the
//! same pass (`rope_heads`). Their backward is the same rotation by -sin.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{f32s, fused, map_rows, output, simd_dispatch, simd_kernel};
use super::reference;

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
    if !fused(&[x, cos, sin]) {
        return reference::rope(x, cos, sin);
    }
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
    if !fused(&[x, cos, sin]) {
        return reference::rope_heads(x, n_rot, cos, sin);
    }
    x.contiguous()?.apply_op3(
        &cos.contiguous()?,
        &sin.contiguous()?,
        RopeHeads {
            n_rot,
            backward: false,
        },
    )
}

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
