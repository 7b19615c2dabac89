//! Every op of `kernels`, composed from candle's basic differentiable ops (any device, any float
//! dtype): what runs where no fused kernel does, and the oracle the kernel tests compare
//! against. Each function computes what its kernel's documentation says, as plainly as candle
//! allows; none of candle's fused ops appear (they have no backward pass).

use candle_core::{DType, Device, Result, Tensor, D};

use crate::precision::{current, Precision};

/// The dtype a product's operands are rounded to: under [`crate::autocast`] bf16 or f16 (as
/// torch.autocast casts a matmul's inputs), else `stored`, the weight's own (a bf16 model's
/// products run in bf16) or f32.
fn product_dtype(stored: DType) -> DType {
    match current() {
        Precision::F32 => stored,
        Precision::Bf16 => DType::BF16,
        Precision::F16 => DType::F16,
    }
}

/// a b with both operands in `dt`, the result back in a's dtype. Unlike the fused kernels, the
/// result itself is rounded to `dt` before it is widened (candle's matmul, cuBLAS's on a GPU,
/// returns its operands' dtype, as torch's autocast matmul does). The backward pass runs its
/// products in `dt` too: the gradient of a cast is the cast back.
fn matmul_in(a: &Tensor, b: &Tensor, dt: DType) -> Result<Tensor> {
    if a.dtype() == dt && b.dtype() == dt {
        return a.matmul(b);
    }
    a.to_dtype(dt)?
        .matmul(&b.to_dtype(dt)?)?
        .to_dtype(a.dtype())
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)
}

/// Hugging Face's rotary embedding, `x * cos + rotate_half(x) * sin`: the head dimension's two
/// halves are rotated as pairs (x_i, x_{i+d/2}), not interleaved. x [.., T, D], cos, sin [T, D].
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(&cos.to_dtype(x.dtype())?)?
        + rotated.broadcast_mul(&sin.to_dtype(x.dtype())?)?
}

/// x [B, T, H, D] -> [B, H, T, D] with the first `n_rot` heads rotated and the rest copied.
pub fn rope_heads(x: &Tensor, n_rot: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let heads = x.transpose(1, 2)?;
    let h = heads.dim(1)?;
    let rot = rope(&heads.narrow(1, 0, n_rot)?, cos, sin)?;
    Tensor::cat(
        &[&rot, &heads.narrow(1, n_rot, h - n_rot)?.contiguous()?],
        1,
    )
}

/// `softmax(scale * att)` over the keys each query sees, exactly 0 elsewhere. att [B, H, Tq, Tk]:
/// query i sits at absolute position Tk - Tq + i and sees key j iff j <= that position and, with
/// `segments` ([B, Tk] u32 document ids), both lie in the same document.
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

/// Causal grouped-query attention: q [B, nh, Tq, hd], k, v [B, nkv, Tk, hd], each key/value
/// head repeated for its nh / nkv query heads; returns y [B, Tq, nh, hd].
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    segments: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, nh, _tq, hd) = q.dims4()?;
    let (_, nkv, tk, _) = k.dims4()?;
    let rep = nh / nkv;
    let expand = |x: &Tensor| -> Result<Tensor> {
        if rep == 1 {
            return Ok(x.clone());
        }
        x.unsqueeze(2)?
            .expand((b, nkv, rep, tk, hd))?
            .reshape((b, nh, tk, hd))
    };
    let dt = product_dtype(q.dtype());
    let att = matmul_in(&q.contiguous()?, &expand(k)?.t()?, dt)?;
    let p = causal_softmax(&att, scale, segments)?;
    matmul_in(&p, &expand(v)?.contiguous()?, dt)?
        .transpose(1, 2)?
        .contiguous()
}

/// `attention` with qkv [B, nh + 2 nkv, T, hd] holding the query, key and value heads in turn.
pub fn attention_packed(
    qkv: &Tensor,
    nh: usize,
    nkv: usize,
    scale: f64,
    segments: Option<&Tensor>,
) -> Result<Tensor> {
    let head = |from: usize, n: usize| qkv.narrow(1, from, n);
    attention(
        &head(0, nh)?,
        &head(nh, nkv)?,
        &head(nh + nkv, nkv)?,
        scale,
        segments,
    )
}

/// `silu(gate) * up`.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

/// `silu(gate) * up` with gate the first half of gu's last dimension and up the second.
pub fn silu_mul_packed(gu: &Tensor) -> Result<Tensor> {
    let last = gu.rank() - 1;
    let width = gu.dim(last)?;
    let gate = gu.narrow(last, 0, width / 2)?;
    let up = gu.narrow(last, width / 2, width / 2)?;
    silu_mul(&gate, &up)
}

/// x [N, in] times w [out, in] transposed: [N, out] (the kernels `linear`, `frozen_matmul`
/// with w detached, `matmul_t` with w transposed back, and `gemv`).
/// A weight kept in another dtype (a bf16 model's) takes the product into its dtype, as does
/// autocast's precision, and the result comes back in x's.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    matmul_in(x, &w.t()?, product_dtype(w.dtype()))
}

/// A linear layer with a LoRA adapter: `x W^T + scale (x A^T) B^T`, W frozen.
pub fn lora_matmul(x: &Tensor, w: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let base = linear(x, &w.detach())?;
    base + (linear(&linear(x, a)?, b)? * scale)?
}

/// log_softmax(h W^T) [N, V], in f32.
fn head_log_softmax(h: &Tensor, w: &Tensor) -> Result<Tensor> {
    let logits = linear(h, w)?.to_dtype(DType::F32)?;
    candle_nn::ops::log_softmax(&logits, D::Minus1)
}

/// Mean next-token cross-entropy of the logits h W^T, weighted by `weights` [N] when given (0
/// when they sum to 0).
pub fn lm_head_loss(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let nll = lm_head_logprobs(h, w, targets)?.neg()?;
    let wt = match weights {
        Some(w) => w.to_dtype(DType::F32)?,
        None => nll.ones_like()?,
    };
    let wsum = wt.sum_all()?.to_scalar::<f32>()?;
    let total = (nll * wt)?.sum_all()?;
    if wsum == 0.0 {
        return total * 0.0;
    }
    total / wsum as f64
}

/// log p(target_i) under softmax(h W^T) for each row: [N].
pub fn lm_head_logprobs(h: &Tensor, w: &Tensor, targets: &Tensor) -> Result<Tensor> {
    head_log_softmax(h, w)?
        .gather(&targets.unsqueeze(1)?, 1)?
        .squeeze(1)
}

/// The entropy of softmax(h W^T) for each row: [N].
pub fn lm_head_entropy(h: &Tensor, w: &Tensor) -> Result<Tensor> {
    let logp = head_log_softmax(h, w)?;
    (logp.exp()? * &logp)?.sum(1)?.neg()
}
