//! The iteration itself: recompute (no gradients), targets, minibatch updates.

use std::time::Instant;

use candle_core::Tensor;
use serde_json::{json, Value};
use wick_io::{Result, Rng};
use wick_model::Llama;
use wick_rl::ppo::{self, Hyper};
use wick_train::{AdamW, AdamWConfig, LossScaler};

use crate::rollouts::Rollout;
use crate::value_head::ValueHead;

use wick_model::candle_error as ce;

/// How the update runs (TRL's PPOConfig names in brackets).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub hyper: Hyper,
    /// Passes over the batch [num_ppo_epochs].
    pub epochs: usize,
    /// Minibatches per pass [num_mini_batches].
    pub minibatches: usize,
    pub lr: f64,
    /// Generation's temperature: log-probs are those of softmax(logits / temperature).
    pub temperature: f64,
    /// Clip the global gradient norm to this [max_grad_norm] (0: no clipping).
    pub grad_clip: f64,
    /// Rollouts per forward pass while recomputing.
    pub batch_size: usize,
    pub seed: u64,
}

/// The response positions of a batch of rollouts, run through a model: the last hidden
/// state before each response token [M, hidden] and the tokens [M], rollout after rollout.
fn response_states(model: &Llama, batch: &[&Rollout]) -> Result<(Tensor, Tensor)> {
    let t = batch
        .iter()
        .map(|r| r.prompt_ids.len() + r.response_ids.len() - 1)
        .max()
        .unwrap_or(1);
    let b = batch.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut picks = Vec::new();
    let mut targets: Vec<u32> = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        let start = ids.len();
        ids.extend(&r.prompt_ids);
        ids.extend(&r.response_ids[..r.response_ids.len() - 1]);
        ids.resize(start + t, 0);
        let p = r.prompt_ids.len();
        picks.extend((0..r.response_ids.len()).map(|k| (i * t + p - 1 + k) as u32));
        targets.extend(&r.response_ids);
    }
    let dev = &model.device();
    let ids = Tensor::from_vec(ids, (b, t), dev).map_err(ce)?;
    let h = model.hidden(&ids, None, None)?;
    let inner = || -> candle_core::Result<(Tensor, Tensor)> {
        let m = picks.len();
        let picks = Tensor::from_vec(picks, m, dev)?;
        let h = h.reshape((b * t, ()))?.index_select(&picks, 0)?;
        Ok((h, Tensor::from_vec(targets, m, dev)?))
    };
    inner().map_err(ce)
}

/// The head's input for log-probs at a temperature: logits / T = (h / T) W^T.
fn tempered(h: &Tensor, temperature: f64) -> Result<Tensor> {
    if temperature == 1.0 {
        return Ok(h.clone());
    }
    (h / temperature).map_err(ce)
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_vec1::<f32>()
        .map_err(ce)?
        .iter()
        .map(|&x| x as f64)
        .collect())
}

/// Splits a flat per-token vector into per-rollout pieces.
fn split(flat: &[f64], batch: &[&Rollout]) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(batch.len());
    let mut at = 0;
    for r in batch {
        let n = r.response_ids.len();
        out.push(flat[at..at + n].to_vec());
        at += n;
    }
    out
}

/// What the rollout pass measured, per rollout.
pub struct Recomputed {
    pub rollouts: Vec<ppo::Rollout>,
    /// Mean entropy of the policy's next-token distribution over the response tokens.
    pub entropy: f64,
}

/// Policy and reference log-probs, values and entropy of every response token.
pub fn recompute(
    policy: &Llama,
    value: &ValueHead,
    reference: &Llama,
    rollouts: &[Rollout],
    o: &Options,
) -> Result<Recomputed> {
    let mut out = Vec::with_capacity(rollouts.len());
    let (mut ent_sum, mut tokens) = (0f64, 0usize);
    for chunk in rollouts.chunks(o.batch_size.max(1)) {
        let batch: Vec<&Rollout> = chunk.iter().collect();
        let (h, targets) = response_states(policy, &batch)?;
        let h = h.detach();
        let ht = tempered(&h, o.temperature)?;
        let lp = to_f64(&policy.head_logprobs(&ht, &targets, false)?)?;
        let v = to_f64(&value.forward(&h)?.detach())?;
        let ent = to_f64(&policy.head_entropy(&ht)?)?;
        ent_sum += ent.iter().sum::<f64>();
        tokens += ent.len();
        let (rh, rt) = response_states(reference, &batch)?;
        let rlp = to_f64(&reference.head_logprobs(&tempered(&rh, o.temperature)?, &rt, false)?)?;
        let (lp, rlp, v) = (split(&lp, &batch), split(&rlp, &batch), split(&v, &batch));
        for (i, r) in batch.iter().enumerate() {
            out.push(ppo::Rollout {
                logprobs: lp[i].clone(),
                ref_logprobs: rlp[i].clone(),
                values: v[i].clone(),
                score: r.reward,
                has_eos: r.has_eos,
            });
        }
    }
    Ok(Recomputed {
        rollouts: out,
        entropy: ent_sum / tokens.max(1) as f64,
    })
}

/// Running means of the minibatch statistics.
#[derive(Default)]
struct Means {
    n: f64,
    pg: f64,
    vf: f64,
    loss: f64,
    clipfrac: f64,
    vf_clipfrac: f64,
    approxkl: f64,
    grad_norm: f64,
    /// fp16: minibatches skipped because their scaled gradient overflowed.
    overflows: f64,
}

/// A batch of rollouts with what the rollout pass measured and the targets made from it.
pub struct Batch<'a> {
    pub rollouts: &'a [Rollout],
    pub recomputed: &'a Recomputed,
    pub targets: &'a ppo::Targets,
}

/// Minibatch updates over the batch, `o.epochs` times. Returns the statistics line's update
/// fields.
pub fn update(
    policy: &Llama,
    value: &ValueHead,
    opt: &mut AdamW,
    scaler: &mut Option<LossScaler>,
    batch: &Batch,
    o: &Options,
    iteration: u64,
) -> Result<Value> {
    let (rollouts, rec, targets) = (batch.rollouts, batch.recomputed, batch.targets);
    let n = rollouts.len();
    let per = n.div_ceil(o.minibatches.clamp(1, n));
    let mut means = Means::default();
    let dev = &policy.device();
    let flat = |x: &[f64]| -> Result<Tensor> {
        let v: Vec<f32> = x.iter().map(|&a| a as f32).collect();
        let m = v.len();
        Tensor::from_vec(v, m, dev).map_err(ce)
    };
    let old_logprobs: Vec<Vec<f64>> = rec.rollouts.iter().map(|r| r.logprobs.clone()).collect();
    let old_values: Vec<Vec<f64>> = rec.rollouts.iter().map(|r| r.values.clone()).collect();
    for epoch in 0..o.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(o.seed ^ (iteration << 20 | epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .shuffle(&mut order);
        for mb in order.chunks(per) {
            let batch: Vec<&Rollout> = mb.iter().map(|&i| &rollouts[i]).collect();
            let gather = |per: &[Vec<f64>]| -> Result<Tensor> {
                flat(
                    &mb.iter()
                        .flat_map(|&i| per[i].iter().copied())
                        .collect::<Vec<f64>>(),
                )
            };
            let old_lp = gather(&old_logprobs)?;
            let old_v = gather(&old_values)?;
            let adv = gather(&targets.advantages)?;
            let ret = gather(&targets.returns)?;
            let (h, tg) = response_states(policy, &batch)?;
            let lp = policy.head_logprobs(&tempered(&h, o.temperature)?, &tg, true)?;
            let v = value.forward(&h)?;
            let (pg, clipfrac, approxkl) =
                ppo::policy_loss(&lp, &old_lp, &adv, o.hyper.cliprange).map_err(ce)?;
            let (vf, vf_clipfrac) =
                ppo::value_loss(&v, &old_v, &ret, o.hyper.cliprange_value).map_err(ce)?;
            let loss = (&pg + (&vf * o.hyper.vf_coef).map_err(ce)?).map_err(ce)?;
            // fp16: the loss scaled up for the backward pass, the gradients down for the update;
            // a minibatch whose scaled gradient overflowed is skipped and the scale halved.
            let loss_scale = scaler.as_ref().map_or(1.0, |s| s.scale);
            let scaled = if loss_scale != 1.0 {
                (&loss * loss_scale).map_err(ce)?
            } else {
                loss.clone()
            };
            let grads = opt.grads(&policy.backward(&scaled)?);
            let norm = AdamW::global_norm(&grads)? / loss_scale;
            let overflow = scaler.is_some() && !norm.is_finite();
            if let Some(s) = scaler.as_mut() {
                s.update(overflow);
            }
            if overflow {
                means.overflows += 1.0;
                continue;
            }
            let clip = if o.grad_clip > 0.0 {
                (o.grad_clip / (norm + 1e-6)).min(1.0)
            } else {
                1.0
            };
            opt.update(&grads, o.lr, clip / loss_scale)?;
            let s = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>().map_err(ce)? as f64) };
            means.n += 1.0;
            means.pg += s(&pg)?;
            means.vf += s(&vf)?;
            means.loss += s(&loss)?;
            means.clipfrac += clipfrac;
            means.vf_clipfrac += vf_clipfrac;
            means.approxkl += approxkl;
            means.grad_norm += norm;
        }
    }
    let k = means.n.max(1.0);
    let mut line = json!({
        "pg_loss": means.pg / k,
        "vf_loss": means.vf / k,
        "loss": means.loss / k,
        "clipfrac": means.clipfrac / k,
        "vf_clipfrac": means.vf_clipfrac / k,
        "approx_kl": means.approxkl / k,
        "grad_norm": means.grad_norm / k,
        "updates": means.n,
    });
    if let Some(s) = scaler {
        line["skipped_updates"] = json!(means.overflows);
        line["loss_scale"] = json!(s.scale);
    }
    Ok(line)
}

/// The optimiser of a PPO run: AdamW as TRL's Trainer sets it (betas 0.9, 0.999; no weight
/// decay).
pub fn optimiser(vars: Vec<(String, candle_core::Var)>) -> Result<AdamW> {
    AdamW::new(
        vars,
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decay_all: false,
        },
    )
}

/// The statistics line of an iteration.
pub fn stats(
    iteration: u64,
    rollouts: &[Rollout],
    rec: &Recomputed,
    t: &ppo::Targets,
    update: Value,
    lr: f64,
    times: (f64, f64, f64),
) -> Value {
    let n = rollouts.len() as f64;
    let score = rollouts.iter().map(|r| r.reward).sum::<f64>() / n;
    let penalised = t.scores.iter().sum::<f64>() / n;
    let tokens: usize = rollouts.iter().map(|r| r.response_ids.len()).sum();
    let mut v = json!({
        "step": iteration,
        "iteration": iteration,
        "rollouts": rollouts.len(),
        "response_tokens": tokens,
        "mean_response_len": tokens as f64 / n,
        "eos_fraction": rollouts.iter().filter(|r| r.has_eos).count() as f64 / n,
        "score": score,
        "score_penalised": penalised,
        "kl": t.mean_kl,
        "non_score_reward": t.mean_non_score_reward,
        "rlhf_reward": t.mean_non_score_reward + penalised,
        "entropy": rec.entropy,
        "lr": lr,
        "recompute_s": times.0,
        "update_s": times.1,
        "total_s": times.2,
    });
    if let (Value::Object(m), Value::Object(u)) = (&mut v, update) {
        m.extend(u);
    }
    v
}

/// Seconds since `t`.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
