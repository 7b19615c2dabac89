//! `ppo-step`: one PPO iteration on a batch of scored rollouts (`generate | rm-score`), as
//! TRL's PPOTrainer computes it: the policy's and the frozen reference's log-probs of every
//! response token and the value head's estimates are recomputed, the KL penalty and the score
//! make per-token rewards, GAE turns them into advantages (whitened) and returns, and a few
//! epochs of minibatch updates minimise the clipped policy loss plus vf_coef times the
//! clipped value loss.

pub mod rollouts;
pub mod step;
pub mod value_head;
