//! Losses on pairs of (chosen, rejected) responses.

use candle_core::{Result, Tensor};

/// -log σ(x), computed stably as max(-x, 0) + log(1 + exp(-|x|)). Differentiable.
pub fn neg_log_sigmoid(x: &Tensor) -> Result<Tensor> {
    let tail = ((x.abs()?.neg()?.exp()? + 1.0)?).log()?;
    x.neg()?.relu()? + tail
}

/// The reward model's Bradley–Terry loss, mean over pairs of
/// -log σ(r_chosen - r_rejected - margin) (TRL's RewardTrainer): r_chosen, r_rejected and
/// margin [N].
pub fn bradley_terry_loss(
    r_chosen: &Tensor,
    r_rejected: &Tensor,
    margin: Option<&Tensor>,
) -> Result<Tensor> {
    let mut d = (r_chosen - r_rejected)?;
    if let Some(m) = margin {
        d = (d - m)?;
    }
    neg_log_sigmoid(&d)?.mean_all()
}

/// DPO's sigmoid loss (Rafailov et al.; TRL's `loss_type="sigmoid"`), mean over pairs of
/// -log σ(β ((π_c - π_r) - (ref_c - ref_r))), from the summed log-probs of each response
/// under the policy (differentiable) and the reference [N].
pub fn dpo_loss(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f64,
) -> Result<Tensor> {
    let logits = ((policy_chosen - policy_rejected)? - (ref_chosen - ref_rejected)?)?;
    neg_log_sigmoid(&(logits * beta)?)?.mean_all()
}

/// What a batch of pairs says about preference: the fraction where chosen scores above
/// rejected, and the mean margin chosen - rejected. For a reward model the scores are its
/// rewards; for DPO, the implicit rewards β (log π - log ref) of each response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairStats {
    pub accuracy: f64,
    pub margin: f64,
    pub chosen: f64,
    pub rejected: f64,
}

impl PairStats {
    pub fn of(chosen: &[f64], rejected: &[f64]) -> PairStats {
        let n = chosen.len().max(1) as f64;
        let won = chosen.iter().zip(rejected).filter(|(c, r)| c > r).count();
        PairStats {
            accuracy: won as f64 / n,
            margin: chosen.iter().zip(rejected).map(|(c, r)| c - r).sum::<f64>() / n,
            chosen: chosen.iter().sum::<f64>() / n,
            rejected: rejected.iter().sum::<f64>() / n,
        }
    }
}

/// DPO's implicit rewards β (log π(y) - log ref(y)) of each response.
pub fn dpo_rewards(policy: &[f64], reference: &[f64], beta: f64) -> Vec<f64> {
    policy
        .iter()
        .zip(reference)
        .map(|(p, r)| beta * (p - r))
        .collect()
}
