//! One PPO iteration's arithmetic, as TRL's PPOTrainer does it. A rollout is one response:
//! for each of its tokens the policy's log-prob when it was sampled, the reference model's,
//! and the value head's estimate; and one score from the reward model. Arrays here hold the
//! response's tokens only (TRL's padding mask is implicit), and the score goes on the last
//! response token.

use candle_core::{Result, Tensor};

/// How the per-token KL to the reference is estimated from the sampled token's log-probs
/// (Schulman, "Approximating KL divergence"): k1 = log π - log ref (unbiased, can be
/// negative); k3 = (r - 1) - log r with r = ref / π (unbiased and never negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlEstimator {
    K1,
    K3,
}

/// Per-token KL estimates of one response.
pub fn kl(logprobs: &[f64], ref_logprobs: &[f64], estimator: KlEstimator) -> Vec<f64> {
    logprobs
        .iter()
        .zip(ref_logprobs)
        .map(|(lp, rlp)| {
            let logr = rlp - lp;
            match estimator {
                KlEstimator::K1 => -logr,
                KlEstimator::K3 => logr.exp_m1() - logr,
            }
        })
        .collect()
}

/// Per-token rewards: -kl_coef * kl everywhere, plus the score on the last token.
pub fn rewards(kl: &[f64], score: f64, kl_coef: f64) -> Vec<f64> {
    let mut r: Vec<f64> = kl.iter().map(|k| -kl_coef * k).collect();
    if let Some(last) = r.last_mut() {
        *last += score;
    }
    r
}

/// Generalised advantage estimation over one response (the value after its end is 0):
/// returns (advantages, returns = advantages + values).
pub fn gae(rewards: &[f64], values: &[f64], gamma: f64, lam: f64) -> (Vec<f64>, Vec<f64>) {
    let n = rewards.len();
    let mut adv = vec![0.0; n];
    let mut last = 0.0;
    for t in (0..n).rev() {
        let next = if t + 1 < n { values[t + 1] } else { 0.0 };
        let delta = rewards[t] + gamma * next - values[t];
        last = delta + gamma * lam * last;
        adv[t] = last;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

/// Whitens advantages over every token of the batch, in place: (x - mean) / sqrt(var + 1e-8)
/// with the unbiased variance (TRL's `masked_whiten`). Returns (mean, var).
pub fn whiten(advantages: &mut [Vec<f64>]) -> (f64, f64) {
    let n: usize = advantages.iter().map(Vec::len).sum();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = advantages.iter().flatten().sum::<f64>() / n as f64;
    let sq = advantages
        .iter()
        .flatten()
        .map(|a| (a - mean).powi(2))
        .sum::<f64>();
    let var = if n > 1 { sq / (n - 1) as f64 } else { 0.0 };
    let inv = 1.0 / (var + 1e-8).sqrt();
    for a in advantages.iter_mut().flatten() {
        *a = (*a - mean) * inv;
    }
    (mean, var)
}

/// PPO's hyperparameters (TRL's defaults).
#[derive(Debug, Clone, Copy)]
pub struct Hyper {
    pub kl_coef: f64,
    pub estimator: KlEstimator,
    pub gamma: f64,
    pub lam: f64,
    pub cliprange: f64,
    pub cliprange_value: f64,
    pub vf_coef: f64,
    pub missing_eos_penalty: Option<f64>,
}

impl Default for Hyper {
    fn default() -> Hyper {
        Hyper {
            kl_coef: 0.05,
            estimator: KlEstimator::K1,
            gamma: 1.0,
            lam: 0.95,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            missing_eos_penalty: None,
        }
    }
}

/// One scored response as the update sees it.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub logprobs: Vec<f64>,
    pub ref_logprobs: Vec<f64>,
    pub values: Vec<f64>,
    pub score: f64,
    pub has_eos: bool,
}

/// What the update trains toward, per rollout, and the batch's statistics before it.
#[derive(Debug, Clone)]
pub struct Targets {
    pub kl: Vec<Vec<f64>>,
    pub rewards: Vec<Vec<f64>>,
    pub advantages: Vec<Vec<f64>>,
    pub returns: Vec<Vec<f64>>,
    /// Scores after the missing-EOS penalty.
    pub scores: Vec<f64>,
    /// Mean over responses of the summed per-token KL (TRL's `objective/kl`).
    pub mean_kl: f64,
    /// Mean over responses of the summed -kl_coef * kl.
    pub mean_non_score_reward: f64,
}

/// KL penalties, rewards, GAE and whitening for a batch of rollouts.
pub fn targets(rollouts: &[Rollout], h: &Hyper) -> Targets {
    let n = rollouts.len().max(1) as f64;
    let mut t = Targets {
        kl: Vec::new(),
        rewards: Vec::new(),
        advantages: Vec::new(),
        returns: Vec::new(),
        scores: Vec::new(),
        mean_kl: 0.0,
        mean_non_score_reward: 0.0,
    };
    for r in rollouts {
        let score = match h.missing_eos_penalty {
            Some(p) if !r.has_eos => r.score - p,
            _ => r.score,
        };
        let k = kl(&r.logprobs, &r.ref_logprobs, h.estimator);
        let rw = rewards(&k, score, h.kl_coef);
        let (adv, ret) = gae(&rw, &r.values, h.gamma, h.lam);
        t.mean_kl += k.iter().sum::<f64>() / n;
        t.mean_non_score_reward -= h.kl_coef * k.iter().sum::<f64>() / n;
        t.kl.push(k);
        t.rewards.push(rw);
        t.advantages.push(adv);
        t.returns.push(ret);
        t.scores.push(score);
    }
    whiten(&mut t.advantages);
    t
}

/// The clipped surrogate policy loss, mean over tokens of
/// max(-A ratio, -A clip(ratio, 1 - c, 1 + c)) with ratio = exp(new - old): new_logprobs
/// [M] (differentiable), old_logprobs and advantages [M]. Also returns the fraction of
/// tokens where the clipped term won, and the approximate KL 0.5 mean((new - old)^2).
pub fn policy_loss(
    new_logprobs: &Tensor,
    old_logprobs: &Tensor,
    advantages: &Tensor,
    cliprange: f64,
) -> Result<(Tensor, f64, f64)> {
    let diff = (new_logprobs - old_logprobs)?;
    let ratio = diff.exp()?;
    let neg_adv = advantages.neg()?;
    let unclipped = (&neg_adv * &ratio)?;
    let clipped = (&neg_adv * ratio.clamp(1.0 - cliprange, 1.0 + cliprange)?)?;
    let loss = unclipped.maximum(&clipped)?.mean_all()?;
    let clipfrac = fraction(&clipped.gt(&unclipped)?)?;
    let approx_kl = (diff.sqr()?.mean_all()?.to_scalar::<f32>()? * 0.5) as f64;
    Ok((loss, clipfrac, approx_kl))
}

/// The clipped value loss, 0.5 mean over tokens of max((v - R)^2, (clip(v, v_old ± c) - R)^2):
/// new_values [M] (differentiable), old_values and returns [M]. Also returns the fraction of
/// tokens where the clipped term won.
pub fn value_loss(
    new_values: &Tensor,
    old_values: &Tensor,
    returns: &Tensor,
    cliprange_value: f64,
) -> Result<(Tensor, f64)> {
    let lo = (old_values - cliprange_value)?;
    let hi = (old_values + cliprange_value)?;
    let clipped_v = new_values.maximum(&lo)?.minimum(&hi)?;
    let l1 = (new_values - returns)?.sqr()?;
    let l2 = (clipped_v - returns)?.sqr()?;
    let loss = (l1.maximum(&l2)?.mean_all()? * 0.5)?;
    let clipfrac = fraction(&l2.gt(&l1)?)?;
    Ok((loss, clipfrac))
}

/// The fraction of true entries of a u8 mask.
fn fraction(mask: &Tensor) -> Result<f64> {
    let m = mask.flatten_all()?.to_vec1::<u8>()?;
    Ok(m.iter().filter(|&&x| x != 0).count() as f64 / m.len().max(1) as f64)
}
