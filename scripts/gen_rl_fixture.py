#!/usr/bin/env python3
"""Write testdata/rl/fixture.json: an independent numpy (float64) reference for the PPO, DPO,
Bradley-Terry reward-model and entropy quantities, following Hugging Face TRL.

Run once (numpy only; deterministic, np.random.default_rng(SEED)); the output is committed and the
Rust tests need no Python:

    .venv/bin/python scripts/gen_rl_fixture.py

Prints one summary line. Floats are float64 written with Python's shortest round-trip repr.

TRL sources followed (huggingface/trl):
  trl/trainer/ppo_trainer.py (the PPOv2-style PPOTrainer, commit be8a0874), PPOTrainer.train():
    "Response Processing 3"  scores[~contain_eos_token] -= args.missing_eos_penalty
    padding masks            sequence_lengths = first_true_indices(resp == pad) - 1   (= L - 1)
                             padding_mask     = idx > sequence_lengths                (idx >= L)
                             sequence_lengths_p1 = sequence_lengths + 1               (= L)
                             padding_mask_p1  = idx > sequence_lengths_p1             (idx >  L)
                             logprobs, ref_logprobs masked_fill(padding_mask, INVALID_LOGPROB=1.0)
                             values masked_fill(padding_mask_p1, 0)
    "4. compute rewards"     logr = ref_logprobs - logprobs
                             kl = -logr if kl_estimator == "k1" else (logr.exp() - 1) - logr
                             non_score_reward = -kl_coef * kl
                             actual_end = where(sequence_lengths_p1 < T, sequence_lengths_p1,
                                                sequence_lengths)
                             rewards[b, actual_end] += scores
    "6. compute advantages"  for t in reversed(range(T)):
                                 nextvalues = values[:, t+1] if t < T-1 else 0.0
                                 delta = rewards[:, t] + gamma * nextvalues - values[:, t]
                                 lastgaelam = delta + gamma * lam * lastgaelam
                             returns = advantages + values
                             advantages = masked_whiten(advantages, ~padding_mask)
                             advantages = masked_fill(advantages, padding_mask, 0)
    PPO minibatch loss       vpred = masked_fill(vpred, padding_mask_p1, 0)
                             vpredclipped = clamp(vpred, values - cliprange_value,
                                                  values + cliprange_value)
                             vf_losses1 = (vpred - returns)^2; vf_losses2 = (vpredclipped - returns)^2
                             vf_loss = 0.5 * masked_mean(max(vf_losses1, vf_losses2), ~padding_mask_p1)
                             vf_clipfrac = masked_mean(vf_losses2 > vf_losses1, ~padding_mask_p1)
                             logprobs_diff = new_logprobs - logprobs (both INVALID_LOGPROB at padding)
                             ratio = exp(logprobs_diff)
                             pg_losses = -A * ratio; pg_losses2 = -A * clamp(ratio, 1-c, 1+c)
                             pg_loss = masked_mean(max(pg_losses, pg_losses2), ~padding_mask)
                             loss = pg_loss + vf_coef * vf_loss
                             pg_clipfrac = masked_mean(pg_losses2 > pg_losses, ~padding_mask)
                             entropy = logsumexp(logits) - sum(softmax(logits) * logits)
                             approxkl = 0.5 * (logprobs_diff**2).mean()     <- NOT masked in TRL
    metrics                  mean_kl = kl.sum(1).mean()
                             mean_non_score_reward = non_score_reward.sum(1).mean()
                             rlhf_reward = mean_non_score_reward + scores.mean()
  trl/core.py (same in trl/trainer/utils.py in later versions):
    masked_mean(v, m)   = (v * m).sum() / m.sum()
    masked_var(v, m)    = masked_mean((v - masked_mean(v, m))**2, m) * n / (n - 1),  n = m.sum()
                          (unbiased=True, the default: Bessel correction)
    masked_whiten(v, m) = (v - masked_mean(v, m)) * rsqrt(masked_var(v, m) + 1e-8)   (shift_mean=True)
  trl/trainer/dpo_trainer.py, dpo_loss (loss_type "sigmoid"):
    logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    losses = -logsigmoid(beta * logits) * (1 - label_smoothing) - logsigmoid(-beta * logits) * label_smoothing
    chosen_rewards = beta * (policy_chosen - ref_chosen); rejected_rewards = beta * (policy_rejected - ref_rejected)
    rewards/accuracies = mean(chosen_rewards > rejected_rewards); rewards/margins = mean(chosen - rejected)
  trl/trainer/reward_trainer.py, compute_loss:
    loss = -logsigmoid(rewards_chosen - rewards_rejected - margin).mean()   (margin optional)

TWO PPO CONVENTIONS. TRL places the sequence score at index L (= sequence_lengths_p1, the first
PAD slot after the last valid token) whenever L < T, keeps values[b, L] (zeroing only idx > L), and
takes vf_loss over idx <= L (see TRL issues #1893, #3750 and PR #5338, which propose moving the
score onto the last valid token). So the fixture holds:
  "ppo"              the convention wick implements: score at the LAST VALID token L-1, values and
                     rewards zeroed at every padding position (idx >= L), one mask (idx < L) for
                     whitening, pg_loss, vf_loss and clip fractions. Everything else is TRL's
                     formula verbatim.
  "ppo_trl_literal"  TRL's indexing verbatim (score at actual_end = L if L < T else L-1, i.e.
                     min(L, T-1); values kept at idx <= L; vf mask idx <= L; pg/whitening mask
                     idx < L).
For row 0 (L == T) the two coincide; rows 1 and 2 differ.

Padding positions of every [B][T] INPUT hold arbitrary plausible values (drawn like the valid
ones), NOT zeros: an implementation must ignore/mask them itself.

fixture.json fields
-------------------
seed                                 int, the rng seed.
ppo.inputs (B = 3 sequences, T = 6 response positions):
  B, T                               ints.
  logprobs          [B][T]           policy log-probs of the sampled tokens at rollout, -U(0.1, 3).
  ref_logprobs      [B][T]           reference log-probs: logprobs + N(0, 0.1^2).
  new_logprobs      [B][T]           policy log-probs after an update: logprobs + N(0, 0.2^2).
  values            [B][T]           value-head predictions at rollout, N(0, 1).
  new_values        [B][T]           value predictions after the update: values + N(0, 0.3^2).
  lengths           [B]              valid response tokens [6, 4, 2]; position t is valid iff t < L.
  scores            [B]              reward-model score per sequence (before the EOS penalty), N(0, 1).
  has_eos           [B]              bools [true, false, true].
  missing_eos_penalty 1.0            subtracted from scores[b] when !has_eos[b].
  kl_coef 0.05, gamma 1.0, lam 0.95, cliprange 0.2, cliprange_value 0.2, vf_coef 0.1.
ppo.common (independent of the KL estimator):
  mask              [B][T]           1.0 where t < L else 0.0.
  scores_penalised  [B]              scores - missing_eos_penalty * !has_eos.
  ratio             [B][T]           exp(new_logprobs - logprobs) at valid positions, 1.0 at padding
                                     (TRL: both are INVALID_LOGPROB there, so diff 0).
  approxkl          scalar           0.5 * masked_mean((new_logprobs - logprobs)^2, mask)  (over the
                                     12 valid tokens) -- what wick uses.
  approxkl_trl_unmasked scalar       TRL's literal 0.5 * mean over all B*T of logprobs_diff^2 with
                                     diff = 0 at padding (= approxkl * 12 / 18 here).
ppo.k1, ppo.k3 (same keys; k1: kl = logprobs - ref_logprobs, k3: kl = exp(logr) - 1 - logr with
                logr = ref_logprobs - logprobs; both 0 at padding):
  kl                [B][T]           per-token KL estimate, 0 at padding.
  non_score_reward  [B][T]           -kl_coef * kl.
  rewards           [B][T]           non_score_reward, plus scores_penalised[b] at t = L-1.
  mean_kl           scalar           kl.sum(1).mean().
  mean_non_score_reward scalar       non_score_reward.sum(1).mean().
  rlhf_reward       scalar           mean_non_score_reward + scores_penalised.mean().
  advantages_raw    [B][T]           GAE (gamma, lam) over rewards and values*mask, next value 0
                                     beyond t = T-1 (0 at padding here).
  returns           [B][T]           advantages_raw + values*mask.
  advantages        [B][T]           masked_whiten(advantages_raw, mask), then 0 at padding.
  whiten_mean, whiten_var scalars    masked_mean / masked_var (unbiased) of advantages_raw over mask.
  pg_loss           scalar           masked_mean(max(-A*ratio, -A*clip(ratio, 1-c, 1+c)), mask).
  vf_loss           scalar           0.5 * masked_mean(max((vpred - R)^2, (vpredclipped - R)^2), mask)
                                     with vpred = new_values*mask,
                                     vpredclipped = clip(vpred, values*mask - cv, values*mask + cv).
  loss              scalar           pg_loss + vf_coef * vf_loss.
  pg_clipfrac       scalar           masked_mean(pg_losses2 > pg_losses, mask).
  vf_clipfrac       scalar           masked_mean(vf_losses2 > vf_losses1, mask).
ppo_trl_literal.common:
  pg_mask           [B][T]           ~padding_mask    (t <= L-1).
  vf_mask           [B][T]           ~padding_mask_p1 (t <= L).
  score_index       [B]              actual_end = L if L < T else L-1.
ppo_trl_literal.k1, ppo_trl_literal.k3: same keys as ppo.k1/k3, computed with TRL's indexing
  (values zeroed only at t > L; score at score_index; returns = advantages_raw + values zeroed at
  t > L; advantages whitened over pg_mask then 0 outside it; pg_loss/pg_clipfrac over pg_mask;
  vf_loss/vf_clipfrac over vf_mask with vpred = new_values zeroed at t > L).
dpo (N = 4 pairs, beta 0.1, label_smoothing 0.0):
  inputs.policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps  [N]
                                     summed sequence log-probs.
  inputs.beta, inputs.label_smoothing.
  logits            [N]              (pc - pr) - (rc - rr).
  losses            [N]              -logsigmoid(beta * logits).
  loss              scalar           mean(losses).
  chosen_rewards    [N]              beta * (pc - rc).
  rejected_rewards  [N]              beta * (pr - rr).
  reward_accuracy   scalar           mean(chosen_rewards > rejected_rewards).
  reward_margin     scalar           mean(chosen_rewards - rejected_rewards).
reward_model (Bradley-Terry, M = 4 pairs):
  inputs.r_chosen, inputs.r_rejected, inputs.margin  [M]
  loss              scalar           mean(-logsigmoid(r_chosen - r_rejected - margin)).
  loss_no_margin    scalar           mean(-logsigmoid(r_chosen - r_rejected)).
  accuracy          scalar           mean(r_chosen > r_rejected).
entropy:
  entropy_logits    [2][5]           random logits, N(0, 2^2).
  entropy           [2]              -sum(softmax * log_softmax) (= TRL's logsumexp - sum(p * logits)).
"""

import json
import os

import numpy as np

SEED = 0
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(REPO, "testdata", "rl", "fixture.json")

B, T = 3, 6
LENGTHS = np.array([6, 4, 2])
HAS_EOS = np.array([True, False, True])
MISSING_EOS_PENALTY = 1.0
KL_COEF, GAMMA, LAM = 0.05, 1.0, 0.95
CLIPRANGE, CLIPRANGE_VALUE, VF_COEF = 0.2, 0.2, 0.1
INVALID_LOGPROB = 1.0  # TRL's fill value for padded log-probs
DPO_BETA, DPO_LABEL_SMOOTHING = 0.1, 0.0


def tolist(x):
    """float64 array / scalar -> nested lists of Python floats (ints/bools kept)."""
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return a.tolist()
    if np.issubdtype(a.dtype, np.integer):
        return a.tolist()
    return a.astype(np.float64).tolist()


def masked_mean(v, m):
    return (v * m).sum() / m.sum()


def masked_var(v, m):
    mean = masked_mean(v, m)
    variance = masked_mean((v - mean) ** 2, m)
    n = m.sum()
    return variance * (n / (n - 1))


def masked_whiten(v, m):
    mean, var = masked_mean(v, m), masked_var(v, m)
    return (v - mean) * (1.0 / np.sqrt(var + 1e-8)), mean, var


def neg_logsigmoid(x):
    # -log(sigmoid(x)) = log(1 + exp(-x)), stable
    return np.logaddexp(0.0, -x)


def gae(rewards, values):
    lastgaelam = np.zeros(rewards.shape[0])
    rev = []
    for t in reversed(range(rewards.shape[1])):
        nextvalues = values[:, t + 1] if t < rewards.shape[1] - 1 else 0.0
        delta = rewards[:, t] + GAMMA * nextvalues - values[:, t]
        lastgaelam = delta + GAMMA * LAM * lastgaelam
        rev.append(lastgaelam)
    return np.stack(rev[::-1], axis=1)


def kl_est(logr, est):
    return -logr if est == "k1" else (np.exp(logr) - 1.0) - logr


def ppo_outputs(inp, est, literal):
    idx = np.arange(T)[None, :].repeat(B, 0)
    L = LENGTHS[:, None]
    pg_mask = (idx < L).astype(np.float64)  # ~padding_mask
    if literal:
        vf_mask = (idx <= L).astype(np.float64)  # ~padding_mask_p1
        score_idx = np.where(LENGTHS < T, LENGTHS, LENGTHS - 1)
    else:
        vf_mask = pg_mask
        score_idx = LENGTHS - 1
    pad = pg_mask == 0.0

    logprobs = np.where(pad, INVALID_LOGPROB, inp["logprobs"])
    ref_logprobs = np.where(pad, INVALID_LOGPROB, inp["ref_logprobs"])
    new_logprobs = np.where(pad, INVALID_LOGPROB, inp["new_logprobs"])
    values = np.where(vf_mask == 0.0, 0.0, inp["values"])
    scores = inp["scores"] - MISSING_EOS_PENALTY * (~HAS_EOS)

    logr = ref_logprobs - logprobs
    kl = kl_est(logr, est)
    non_score_reward = -KL_COEF * kl
    rewards = non_score_reward.copy()
    rewards[np.arange(B), score_idx] += scores

    adv_raw = gae(rewards, values)
    returns = adv_raw + values
    adv_w, w_mean, w_var = masked_whiten(adv_raw, pg_mask)
    advantages = np.where(pad, 0.0, adv_w)

    vpred = np.where(vf_mask == 0.0, 0.0, inp["new_values"])
    vpredclipped = np.clip(vpred, values - CLIPRANGE_VALUE, values + CLIPRANGE_VALUE)
    vf_losses1 = (vpred - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(np.maximum(vf_losses1, vf_losses2), vf_mask)
    vf_clipfrac = masked_mean((vf_losses2 > vf_losses1).astype(np.float64), vf_mask)

    ratio = np.exp(new_logprobs - logprobs)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * np.clip(ratio, 1.0 - CLIPRANGE, 1.0 + CLIPRANGE)
    pg_loss = masked_mean(np.maximum(pg_losses, pg_losses2), pg_mask)
    pg_clipfrac = masked_mean((pg_losses2 > pg_losses).astype(np.float64), pg_mask)

    # guard against near-ties that float32 rounding could flip in a Rust comparison
    for a, b_, m in ((pg_losses, pg_losses2, pg_mask), (vf_losses1, vf_losses2, vf_mask)):
        gap = np.abs(a - b_)[(m > 0) & (a != b_)]
        assert gap.size == 0 or gap.min() > 1e-4, (est, literal, gap.min())
    assert 0.0 < pg_clipfrac < 1.0 and 0.0 < vf_clipfrac < 1.0, (pg_clipfrac, vf_clipfrac)

    mean_nsr = non_score_reward.sum(1).mean()
    out = {
        "kl": kl,
        "non_score_reward": non_score_reward,
        "rewards": rewards,
        "mean_kl": kl.sum(1).mean(),
        "mean_non_score_reward": mean_nsr,
        "rlhf_reward": mean_nsr + scores.mean(),
        "advantages_raw": adv_raw,
        "returns": returns,
        "advantages": advantages,
        "whiten_mean": w_mean,
        "whiten_var": w_var,
        "pg_loss": pg_loss,
        "vf_loss": vf_loss,
        "loss": pg_loss + VF_COEF * vf_loss,
        "pg_clipfrac": pg_clipfrac,
        "vf_clipfrac": vf_clipfrac,
    }
    extras = {
        "pg_mask": pg_mask,
        "vf_mask": vf_mask,
        "score_index": score_idx,
        "scores_penalised": scores,
        "ratio": ratio,
        "diff": new_logprobs - logprobs,
    }
    return {k: tolist(v) for k, v in out.items()}, extras


def main():
    rng = np.random.default_rng(SEED)

    logprobs = -rng.uniform(0.1, 3.0, size=(B, T))
    ref_logprobs = logprobs + rng.normal(0.0, 0.1, size=(B, T))
    new_logprobs = logprobs + rng.normal(0.0, 0.2, size=(B, T))
    values = rng.normal(0.0, 1.0, size=(B, T))
    new_values = values + rng.normal(0.0, 0.3, size=(B, T))
    scores = rng.normal(0.0, 1.0, size=B)
    inp = {
        "logprobs": logprobs,
        "ref_logprobs": ref_logprobs,
        "new_logprobs": new_logprobs,
        "values": values,
        "new_values": new_values,
        "scores": scores,
    }
    # keep ratio / value clipping away from the clip boundaries (float32-robust comparisons)
    valid = np.arange(T)[None, :] < LENGTHS[:, None]
    r = np.exp(new_logprobs - logprobs)[valid]
    assert np.abs(r - (1 - CLIPRANGE)).min() > 1e-3 and np.abs(r - (1 + CLIPRANGE)).min() > 1e-3
    dv = np.abs(new_values - values)[np.arange(T)[None, :] <= LENGTHS[:, None]]
    assert np.abs(dv - CLIPRANGE_VALUE).min() > 1e-3

    ppo = {
        "inputs": {
            "B": B,
            "T": T,
            **{k: tolist(v) for k, v in inp.items()},
            "lengths": tolist(LENGTHS),
            "has_eos": tolist(HAS_EOS),
            "missing_eos_penalty": MISSING_EOS_PENALTY,
            "kl_coef": KL_COEF,
            "gamma": GAMMA,
            "lam": LAM,
            "cliprange": CLIPRANGE,
            "cliprange_value": CLIPRANGE_VALUE,
            "vf_coef": VF_COEF,
        }
    }
    lit = {}
    for est in ("k1", "k3"):
        ppo[est], ex = ppo_outputs(inp, est, literal=False)
        lit[est], ex_lit = ppo_outputs(inp, est, literal=True)
    m = ex["pg_mask"]
    diff = ex["diff"]
    ppo["common"] = {
        "mask": tolist(m),
        "scores_penalised": tolist(ex["scores_penalised"]),
        "ratio": tolist(ex["ratio"]),
        "approxkl": float(0.5 * masked_mean(diff**2, m)),
        "approxkl_trl_unmasked": float(0.5 * (diff**2).mean()),
    }
    lit["common"] = {
        "pg_mask": tolist(ex_lit["pg_mask"]),
        "vf_mask": tolist(ex_lit["vf_mask"]),
        "score_index": tolist(ex_lit["score_index"]),
    }
    # sanity: k1 kl at valid positions equals logprobs - ref_logprobs; padding is exactly 0
    k1kl = np.array(ppo["k1"]["kl"])
    assert np.allclose(k1kl[m > 0], (logprobs - ref_logprobs)[m > 0]) and (k1kl[m == 0] == 0).all()

    # DPO
    N = 4
    pc = -rng.uniform(20.0, 80.0, size=N)
    pr = -rng.uniform(20.0, 80.0, size=N)
    rc = pc + rng.normal(0.0, 3.0, size=N)
    rr = pr + rng.normal(0.0, 3.0, size=N)
    logits = (pc - pr) - (rc - rr)
    losses = neg_logsigmoid(DPO_BETA * logits) * (1 - DPO_LABEL_SMOOTHING) + neg_logsigmoid(
        -DPO_BETA * logits
    ) * DPO_LABEL_SMOOTHING
    chosen_rewards = DPO_BETA * (pc - rc)
    rejected_rewards = DPO_BETA * (pr - rr)
    acc = (chosen_rewards > rejected_rewards).astype(np.float64)
    assert np.abs(chosen_rewards - rejected_rewards).min() > 1e-3 and 0 < acc.mean() < 1
    dpo = {
        "inputs": {
            "policy_chosen_logps": tolist(pc),
            "policy_rejected_logps": tolist(pr),
            "ref_chosen_logps": tolist(rc),
            "ref_rejected_logps": tolist(rr),
            "beta": DPO_BETA,
            "label_smoothing": DPO_LABEL_SMOOTHING,
        },
        "logits": tolist(logits),
        "losses": tolist(losses),
        "loss": float(losses.mean()),
        "chosen_rewards": tolist(chosen_rewards),
        "rejected_rewards": tolist(rejected_rewards),
        "reward_accuracy": float(acc.mean()),
        "reward_margin": float((chosen_rewards - rejected_rewards).mean()),
    }

    # Bradley-Terry reward model
    M = 4
    r_c = rng.normal(0.5, 1.0, size=M)
    r_r = rng.normal(0.0, 1.0, size=M)
    margin = rng.uniform(0.0, 1.0, size=M)
    bt_acc = (r_c > r_r).astype(np.float64)
    assert np.abs(r_c - r_r).min() > 1e-3
    reward_model = {
        "inputs": {"r_chosen": tolist(r_c), "r_rejected": tolist(r_r), "margin": tolist(margin)},
        "loss": float(neg_logsigmoid(r_c - r_r - margin).mean()),
        "loss_no_margin": float(neg_logsigmoid(r_c - r_r).mean()),
        "accuracy": float(bt_acc.mean()),
    }

    # entropy from logits
    el = rng.normal(0.0, 2.0, size=(2, 5))
    mx = el.max(-1, keepdims=True)
    lse = (mx + np.log(np.exp(el - mx).sum(-1, keepdims=True)))[:, 0]
    logp = el - lse[:, None]
    ent = -(np.exp(logp) * logp).sum(-1)
    ent_trl = lse - (np.exp(logp) * el).sum(-1)
    assert np.allclose(ent, ent_trl, rtol=0, atol=1e-12)
    entropy = {"entropy_logits": tolist(el), "entropy": tolist(ent)}

    fixture = {
        "seed": SEED,
        "ppo": ppo,
        "ppo_trl_literal": lit,
        "dpo": dpo,
        "reward_model": reward_model,
        "entropy": entropy,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(
        f"wrote {os.path.relpath(OUT, REPO)}: ppo k1 loss {ppo['k1']['loss']:.6f} "
        f"(pg_clipfrac {ppo['k1']['pg_clipfrac']:.3f}, vf_clipfrac {ppo['k1']['vf_clipfrac']:.3f}), "
        f"k3 loss {ppo['k3']['loss']:.6f}, trl-literal k1 loss {lit['k1']['loss']:.6f}, "
        f"dpo loss {dpo['loss']:.6f}, rm loss {reward_model['loss']:.6f}"
    )


if __name__ == "__main__":
    main()
