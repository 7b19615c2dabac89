//! The objectives of learning from preferences, as the Hugging Face TRL trainers define them:
//! the reward model's Bradley–Terry loss and DPO's sigmoid loss (`preference`), and PPO's
//! per-token KL penalty, GAE, advantage whitening and clipped policy and value losses
//! (`ppo`). Rollout bookkeeping is plain f64 arithmetic over each sequence's response tokens
//! (no padding to mask); the losses are candle tensors, differentiable in the model.

pub mod ppo;
pub mod preference;
