//! Log-probabilities of chosen tokens through the output head, differentiable (DPO and PPO
//! train on functions of them), and the entropy of the head's distributions (PPO's stats).
//! Like `lm_head_loss`, the [N, vocab] logits stay in the kept buffer and never enter
//! candle's graph: the forward pass leaves softmax - onehot per row, which the backward pass
//! scales by each row's upstream gradient.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{check_target_range, f32s, fused_with_weight};
use super::head_loss::{check_shapes, head_backward, logits_in_buffer, row_loss, BUFFER};
use super::product::{cpu_f32, cpu_weight, storage_weight};
use super::reference;
use crate::precision::{current, Precision};

/// log p(target_i) under softmax(h W^T) for each row: h [N, H], w [V, H], targets [N] u32 ->
/// [N], differentiable in h and w. Equals `lm_head_logprobs` in value.
pub fn lm_head_logprobs_train(h: &Tensor, w: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (_, _, v) = check_shapes("lm_head_logprobs_train", h, w, targets)?;
    if !fused_with_weight(&[h], w) {
        return reference::lm_head_logprobs(h, w, targets);
    }
    if !(h.track_op() || w.track_op()) {
        return super::lm_head_logprobs(h, w, targets);
    }
    let t = targets.to_vec1::<u32>()?;
    check_target_range("lm_head_logprobs_train", &t, v)?;
    let op = HeadLogprobs {
        p: current(),
        targets: t,
        w_grad: w.track_op(),
        dlogits: Mutex::new(None),
    };
    h.contiguous()?.apply_op2(&w.contiguous()?, op)
}

/// The entropy of softmax(h W^T) for each row: h [N, H], w [V, H] -> [N]. Not differentiable.
pub fn lm_head_entropy(h: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, hd) = h.dims2()?;
    let (v, _) = w.dims2()?;
    if !fused_with_weight(&[h], w) {
        return reference::lm_head_entropy(h, w);
    }
    let (h, w) = (h.contiguous()?, w.contiguous()?);
    let buf = {
        let ((sh, lh), (sw, lw)) = (h.storage_and_layout(), w.storage_and_layout());
        let hv = cpu_f32(&sh, lh, "lm_head_entropy h")?;
        let wv = storage_weight(&sw, lw, "lm_head_entropy w")?;
        logits_in_buffer(current(), hv, wv, n, v, hd)
    };
    let out: Vec<f32> = buf
        .par_chunks(v)
        .with_min_len(16)
        .map(|row| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x)) as f64;
            let (mut z, mut ex) = (0f64, 0f64);
            for &x in row {
                let e = (x as f64 - m).exp();
                z += e;
                ex += e * (x as f64 - m);
            }
            // H = log Z - E[x - m]
            (z.ln() - ex / z) as f32
        })
        .collect();
    *BUFFER.lock().expect("not poisoned") = buf;
    Tensor::from_vec(out, n, h.device())
}

struct HeadLogprobs {
    p: Precision,
    targets: Vec<u32>,
    w_grad: bool,
    /// softmax - onehot per row (= -d logp / d logits), left for the backward pass.
    dlogits: Mutex<Option<Vec<f32>>>,
}

impl CustomOp2 for HeadLogprobs {
    fn name(&self) -> &'static str {
        "wick-lm-head-logprobs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (h, w) = (
            f32s(s1, l1, "lm_head_logprobs_train h")?,
            cpu_weight(s2, l2, "lm_head_logprobs_train w")?,
        );
        let (n, hd) = l1.shape().dims2()?;
        let v = l2.shape().dims2()?.0;
        let mut buf = logits_in_buffer(self.p, h, w, n, v, hd);
        let out: Vec<f32> = buf
            .par_chunks_mut(v)
            .zip(self.targets.par_iter())
            .with_min_len(16)
            .map(|(row, &t)| -row_loss(row, t as usize, 1.0, true) as f32)
            .collect();
        *self.dlogits.lock().expect("not poisoned") = Some(buf);
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(mut d) = self.dlogits.lock().expect("not poisoned").take() else {
            bail!("lm_head_logprobs_train: backward ran twice");
        };
        let g = grad.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let v = w.dim(0)?;
        // d logp_i / d logits_i = onehot - softmax: scale each row by -g_i.
        d.par_chunks_mut(v)
            .zip(g.par_iter())
            .with_min_len(16)
            .for_each(|(row, &gi)| row.iter_mut().for_each(|x| *x *= -gi));
        let (dh, dw) = head_backward(self.p, &d, h, w, 1.0, self.w_grad)?;
        *BUFFER.lock().expect("not poisoned") = d;
        Ok((Some(dh), dw))
    }
}
