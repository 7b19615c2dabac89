//! The same operations as `ops`, composed from candle's basic differentiable ops: the
//! reference the fused versions are tested against.

use candle_core::{Device, Result, Tensor, D};

pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)
}

/// Hugging Face's rotary embedding: the head dimension's two halves are rotated as pairs
/// (x_i, x_{i+d/2}), not interleaved.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

/// Softmax over visible keys: key j is visible to query i (at absolute position tk-tq+i)
/// when j <= that position and, with segments, both lie in the same segment.
pub fn causal_softmax(att: &Tensor, scale: f64, segments: Option<&Tensor>) -> Result<Tensor> {
    let (b, _h, tq, tk) = att.dims4()?;
    let seg: Option<Vec<Vec<u32>>> = segments.map(|s| s.to_vec2()).transpose()?;
    let mut mask = vec![0f32; b * tq * tk];
    for bi in 0..b {
        for i in 0..tq {
            let pos = tk - tq + i;
            for j in 0..tk {
                let hidden = j > pos || seg.as_ref().is_some_and(|s| s[bi][j] != s[bi][pos]);
                if hidden {
                    mask[(bi * tq + i) * tk + j] = f32::NEG_INFINITY;
                }
            }
        }
    }
    let mask = Tensor::from_vec(mask, (b, 1, tq, tk), &Device::Cpu)?;
    candle_nn::ops::softmax(&(att * scale)?.broadcast_add(&mask)?, D::Minus1)
}

/// Attention over all heads: keys and values repeated for grouped-query heads, scores,
/// causal softmax, weighted values; y [B, Tq, nh, hd].
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
    let expand = |x: &Tensor| {
        x.unsqueeze(2)?
            .repeat((1, 1, rep, 1, 1))?
            .reshape((b, nh, tk, hd))
    };
    let att = q.matmul(&expand(k)?.t()?)?;
    let p = causal_softmax(&att, scale, segments)?;
    p.matmul(&expand(v)?)?.transpose(1, 2)?.contiguous()
}

pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

pub fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    match weights {
        None => nll.mean_all(),
        Some(w) => {
            (nll * w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()?.max(f32::MIN_POSITIVE) as f64
        }
    }
}
