//! The output head and the cross-entropy as one op (llm.c's fused classifier): logits = h W^T
//! are computed into a buffer kept from step to step, turned row by row into the loss and, when
//! a gradient is wanted, straight into d loss / d logits (softmax - onehot, weighted), so the
//! [N, vocab] logits never enter candle's graph: no fresh [N, vocab] tensors per step (each a
//! few thousand page faults), no zero-filled gradient buffers, no extra passes over them. The
//! backward pass is then two products: dh = dlogits W, dW = dlogits^T h.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{
    check_target_range, exp, f32s, fused_with_weight, max_scaled, output, simd_dispatch, sum_map,
    LANES,
};
use super::product::{
    cpu_f32, cpu_weight, mm, mm_w, rows, storage_weight, transposed, x_wt, Weight,
};
use super::reference;
use crate::precision::{current, Precision};

/// Mean next-token cross-entropy of the logits h W^T: h [N, H], w [V, H] (the head, or the
/// tied embedding), targets [N] u32, optional per-row weights [N] f32 (weighted mean; 0, with
/// zero gradients, when they sum to 0). Differentiable in h and w. Equals
/// `reference::lm_head_loss`.
pub fn lm_head_loss(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let (n, _, _) = check_shapes("lm_head_loss", h, w, targets)?;
    if let Some(wt) = weights {
        if wt.dims() != [n] {
            bail!("lm_head_loss: weights {:?} must be [{n}]", wt.dims());
        }
    }
    if !fused_with_weight(&[h], w) {
        return reference::lm_head_loss(h, w, targets, weights);
    }
    let weights = weights
        .map(|x| x.to_dtype(DType::F32)?.to_vec1::<f32>())
        .transpose()?;
    let op = HeadLoss {
        p: current(),
        targets: targets.to_vec1::<u32>()?,
        wsum: weights
            .as_ref()
            .map_or(n as f64, |w| w.iter().map(|&x| x as f64).sum()),
        weights,
        want_grad: h.track_op() || w.track_op(),
        w_grad: w.track_op(),
        dlogits: Mutex::new(None),
    };
    h.contiguous()?.apply_op2(&w.contiguous()?, op)
}

/// log p(target_i) under softmax(h W^T) for each row: h [N, H], w [V, H], targets [N] u32 ->
/// [N]. Not differentiable (scoring: perplexity, multiple choice, RLHF log-probs). Equals
/// `reference::lm_head_logprobs` without a fresh [N, vocab] tensor.
pub fn lm_head_logprobs(h: &Tensor, w: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, hd, v) = check_shapes("lm_head_logprobs", h, w, targets)?;
    if !fused_with_weight(&[h], w) {
        return reference::lm_head_logprobs(h, w, targets);
    }
    let t = targets.to_vec1::<u32>()?;
    check_target_range("lm_head_logprobs", &t, v)?;
    let (h, w) = (h.contiguous()?, w.contiguous()?);
    let mut buf = {
        let ((sh, lh), (sw, lw)) = (h.storage_and_layout(), w.storage_and_layout());
        let hv = cpu_f32(&sh, lh, "lm_head_logprobs h")?;
        let wv = storage_weight(&sw, lw, "lm_head_logprobs w")?;
        logits_in_buffer(current(), hv, wv, n, v, hd)
    };
    let out: Vec<f32> = buf
        .par_chunks_mut(v)
        .zip(t.par_iter())
        .with_min_len(16)
        .map(|(row, &t)| -row_loss(row, t as usize, 0.0, false) as f32)
        .collect();
    *BUFFER.lock().expect("not poisoned") = buf;
    Tensor::from_vec(out, n, h.device())
}

/// (N, H, V) of h [N, H], w [V, H], targets u32 [N].
pub(super) fn check_shapes(
    op: &str,
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
) -> Result<(usize, usize, usize)> {
    let (n, hd) = h.dims2()?;
    let (v, hw) = w.dims2()?;
    if hw != hd || targets.dims() != [n] || targets.dtype() != DType::U32 {
        bail!(
            "{op}: h {:?}, w {:?}, targets {:?} {:?} do not fit (need [N, H], [V, H], u32 [N])",
            h.dims(),
            w.dims(),
            targets.dtype(),
            targets.dims()
        );
    }
    Ok((n, hd, v))
}

struct HeadLoss {
    p: Precision,
    targets: Vec<u32>,
    weights: Option<Vec<f32>>,
    /// Sum of the weights (N without weights): the mean's denominator.
    wsum: f64,
    want_grad: bool,
    /// Whether the head's weight trains (a frozen head under LoRA does not).
    w_grad: bool,
    /// (softmax - onehot) * w_i per row, left by the forward pass for the backward one.
    dlogits: Mutex<Option<Vec<f32>>>,
}

/// The [N, V] buffer, kept between steps: reused memory is already mapped.
pub(super) static BUFFER: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// h W^T (h: n x hd, w: v x hd, both contiguous) into the kept buffer, which the caller gives
/// back to BUFFER when done with it.
pub(super) fn logits_in_buffer(
    p: Precision,
    h: &[f32],
    w: Weight,
    n: usize,
    v: usize,
    hd: usize,
) -> Vec<f32> {
    let mut buf = std::mem::take(&mut *BUFFER.lock().expect("not poisoned"));
    buf.resize(n * v, 0.0);
    x_wt(p, &mut buf, h, w, (n, v, hd));
    buf
}

/// One row of logits -> (loss of the row, and, with `grad`, the row replaced by
/// (softmax - onehot) * coef).
pub(super) fn row_loss(x: &mut [f32], target: usize, coef: f32, grad: bool) -> f64 {
    #[inline(always)]
    fn body(x: &mut [f32], target: usize, coef: f32, grad: bool) -> f64 {
        let m = max_scaled(x, 1.0);
        let picked = x[target];
        let sum = if grad {
            exp_in_place_sum(x, m)
        } else {
            sum_map(x, |v| exp(v - m))
        };
        if grad {
            let c = coef / sum;
            x.iter_mut().for_each(|v| *v *= c);
            x[target] -= coef;
        }
        (m + sum.ln() - picked) as f64
    }
    simd_dispatch!(body(x: &mut [f32], target: usize, coef: f32, grad: bool) -> f64)
}

/// x[j] = exp(x[j] - m); returns their sum (lane accumulators, so the loop vectorises).
#[inline(always)]
fn exp_in_place_sum(x: &mut [f32], m: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for k in 0..LANES {
            c[k] = exp(c[k] - m);
            acc[k] += c[k];
        }
    }
    let mut s = 0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v - m);
        s += *v;
    }
    acc.iter().sum::<f32>() + s
}

impl CustomOp2 for HeadLoss {
    fn name(&self) -> &'static str {
        "wick-lm-head-loss"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (h, w) = (
            f32s(s1, l1, "lm_head_loss h")?,
            cpu_weight(s2, l2, "lm_head_loss w")?,
        );
        let (n, hd) = l1.shape().dims2()?;
        let v = l2.shape().dims2()?.0;
        check_target_range("lm_head_loss", &self.targets, v)?;
        let mut buf = logits_in_buffer(self.p, h, w, n, v, hd);
        let weights = self.weights.as_deref();
        // Per-row losses summed in row order afterwards: the same bits however the rows were
        // spread over the threads (exact resume depends on it).
        let losses: Vec<f64> = buf
            .par_chunks_mut(v)
            .zip(self.targets.par_iter())
            .enumerate()
            .with_min_len(16)
            .map(|(i, (row, &t))| {
                let wi = weights.map_or(1.0, |w| w[i]);
                if wi == 0.0 {
                    if self.want_grad {
                        row.fill(0.0);
                    }
                    return 0.0;
                }
                wi as f64 * row_loss(row, t as usize, wi, self.want_grad)
            })
            .collect();
        let loss: f64 = losses.iter().sum();
        let mean = if self.wsum == 0.0 {
            0.0
        } else {
            loss / self.wsum
        };
        if self.want_grad {
            *self.dlogits.lock().expect("not poisoned") = Some(buf);
        } else {
            *BUFFER.lock().expect("not poisoned") = buf;
        }
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(d) = self.dlogits.lock().expect("not poisoned").take() else {
            bail!("lm_head_loss: backward ran twice, or on a loss computed without gradients");
        };
        let upstream = grad.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
        let k = if self.wsum == 0.0 {
            0.0
        } else {
            (upstream / self.wsum) as f32
        };
        let (dh, dw) = head_backward(self.p, &d, h, w, k, self.w_grad)?;
        *BUFFER.lock().expect("not poisoned") = d;
        Ok((Some(dh), dw))
    }
}

/// The backward pass of logits = h W^T given d = k * dloss/dlogits (k applied here):
/// dh = k d W and, when the head trains, dW = k d^T h.
pub(super) fn head_backward(
    p: Precision,
    d: &[f32],
    h: &Tensor,
    w: &Tensor,
    k: f32,
    w_grad: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let n = h.dim(0)?;
    let (hd, v) = (h.dim(1)?, w.dim(0)?);
    let ((sh, lh), (sw, lw)) = (h.storage_and_layout(), w.storage_and_layout());
    let (hv, wv) = (
        cpu_f32(&sh, lh, "lm_head_loss h")?,
        storage_weight(&sw, lw, "lm_head_loss w")?,
    );
    let mut dh = output(n * hd);
    // SAFETY: d is n x v, w is v x hd, all contiguous; dh is n x hd.
    unsafe {
        mm_w(
            p,
            (n, hd, v),
            dh.as_mut_ptr(),
            hd,
            d.as_ptr(),
            rows(v),
            wv,
            rows(hd),
            k,
            false,
            true,
        )
    };
    let dw = if w_grad {
        let mut dw = output(v * hd);
        // SAFETY: d is n x v, h is n x hd, contiguous; dw is v x hd.
        unsafe {
            mm(
                p,
                (v, hd, n),
                dw.as_mut_ptr(),
                hd,
                d.as_ptr(),
                transposed(v),
                hv.as_ptr(),
                rows(hd),
                k,
                false,
                true,
            )
        };
        Some(Tensor::from_vec(dw, w.dims(), w.device())?)
    } else {
        None
    };
    Ok((Tensor::from_vec(dh, h.dims(), h.device())?, dw))
}
