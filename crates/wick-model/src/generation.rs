//! Decoding: greedy or sampled (temperature, top-k, top-p) continuation of a prompt, one
//! token at a time over the KV cache, recording each chosen token's log-probability.

use candle_core::Tensor;
use wick_io::{Error, Result};

use crate::model::ce;
use crate::{KvCache, Llama};

#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// 0 = greedy.
    pub temperature: f64,
    /// Keep only the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = all).
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Recompute every position each step instead of using the KV cache (for checking).
    pub no_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-sequence id was produced (it is the last id).
    Eos,
    /// --max-new-tokens reached.
    Length,
    /// The model's context is full.
    Context,
}

impl Finish {
    pub fn name(self) -> &'static str {
        match self {
            Finish::Eos => "eos",
            Finish::Length => "length",
            Finish::Context => "context",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub ids: Vec<u32>,
    /// log p(id) under the distribution it was drawn from: the model's softmax at the
    /// temperature (before top-k/top-p truncation); the plain softmax when greedy.
    pub logprobs: Vec<f32>,
    pub finish: Finish,
}

/// A source of uniform numbers in [0, 1) (the caller seeds it).
pub trait Uniform {
    fn uniform(&mut self) -> f64;
}

fn log_softmax(logits: &[f32], temperature: f64) -> Vec<f32> {
    let t = if temperature > 0.0 {
        temperature as f32
    } else {
        1.0
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| (((l - max) / t) as f64).exp()).sum();
    let lse = sum.ln() as f32;
    logits.iter().map(|&l| (l - max) / t - lse).collect()
}

/// Picks the next token from one position's logits.
pub fn choose(logits: &[f32], s: &Sampling, rng: &mut dyn Uniform) -> (u32, f32) {
    let logp = log_softmax(logits, s.temperature);
    if s.temperature <= 0.0 {
        // Greedy; ties go to the lowest id, as torch.argmax does.
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        return (best as u32, logp[best]);
    }
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| {
        logp[b as usize]
            .total_cmp(&logp[a as usize])
            .then(a.cmp(&b))
    });
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    if s.top_p < 1.0 {
        let mut mass = 0.0;
        let mut keep = 0;
        for &i in &order {
            mass += (logp[i as usize] as f64).exp();
            keep += 1;
            if mass >= s.top_p {
                break;
            }
        }
        order.truncate(keep.max(1));
    }
    let total: f64 = order.iter().map(|&i| (logp[i as usize] as f64).exp()).sum();
    let mut r = rng.uniform() * total;
    for &i in &order {
        r -= (logp[i as usize] as f64).exp();
        if r <= 0.0 {
            return (i, logp[i as usize]);
        }
    }
    let last = *order.last().expect("at least one candidate");
    (last, logp[last as usize])
}

fn last_logits(model: &Llama, ids: &[u32], cache: Option<&mut KvCache>) -> Result<Vec<f32>> {
    let x = Tensor::from_slice(ids, (1, ids.len()), &model.device()).map_err(ce)?;
    let h = model.hidden(&x, cache, None)?;
    let last = h.narrow(1, ids.len() - 1, 1).map_err(ce)?;
    model
        .logits(&last)?
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(ce)
        .and_then(|l| {
            crate::score::check_finite(&l, "logits")?;
            Ok(l)
        })
}

/// Continues `prompt` (which must be non-empty and fit the context).
pub fn generate(
    model: &Llama,
    prompt: &[u32],
    s: &Sampling,
    stop: &[u32],
    rng: &mut dyn Uniform,
) -> Result<Generation> {
    let ctx = model.config.max_position_embeddings;
    if prompt.is_empty() {
        return Err(Error::msg("empty prompt (no tokens)"));
    }
    if prompt.len() > ctx {
        return Err(Error::msg(format!(
            "the prompt is {} tokens, longer than the model's context of {ctx}",
            prompt.len()
        )));
    }
    let mut seq = prompt.to_vec();
    let mut cache = KvCache::new(&model.config);
    let mut out = Generation {
        ids: Vec::new(),
        logprobs: Vec::new(),
        finish: Finish::Length,
    };
    let mut logits = if s.no_cache {
        last_logits(model, &seq, None)?
    } else {
        last_logits(model, &seq, Some(&mut cache))?
    };
    while out.ids.len() < s.max_new_tokens {
        let (id, lp) = choose(&logits, s, rng);
        seq.push(id);
        out.ids.push(id);
        out.logprobs.push(lp);
        if stop.contains(&id) {
            out.finish = Finish::Eos;
            break;
        }
        if out.ids.len() == s.max_new_tokens {
            break;
        }
        if seq.len() >= ctx {
            out.finish = Finish::Context;
            break;
        }
        logits = if s.no_cache {
            last_logits(model, &seq, None)?
        } else {
            last_logits(model, &[id], Some(&mut cache))?
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(f64);
    impl Uniform for Fixed {
        fn uniform(&mut self) -> f64 {
            self.0
        }
    }

    fn s(temperature: f64, top_k: usize, top_p: f64) -> Sampling {
        Sampling {
            temperature,
            top_k,
            top_p,
            max_new_tokens: 1,
            no_cache: false,
        }
    }

    #[test]
    fn greedy_top_k_and_top_p_choose_as_documented() {
        let logits = [0.0f32, 3.0, 1.0, 2.5];
        assert_eq!(choose(&logits, &s(0.0, 0, 1.0), &mut Fixed(0.99)).0, 1);
        // top-k 1 is greedy whatever the draw.
        assert_eq!(choose(&logits, &s(1.0, 1, 1.0), &mut Fixed(0.99)).0, 1);
        // top-k 2 keeps ids 1 and 3; a draw near 1 lands on the second.
        assert_eq!(choose(&logits, &s(1.0, 2, 1.0), &mut Fixed(0.999)).0, 3);
        // top-p small keeps only the most likely token.
        assert_eq!(choose(&logits, &s(1.0, 0, 0.1), &mut Fixed(0.999)).0, 1);
        // Without truncation, a draw near 1 reaches the least likely token.
        assert_eq!(choose(&logits, &s(1.0, 0, 1.0), &mut Fixed(0.9999999)).0, 0);
        // The recorded log-prob is the temperature softmax's.
        let (id, lp) = choose(&logits, &s(2.0, 0, 1.0), &mut Fixed(0.0));
        let z: f64 = logits.iter().map(|&l| (l as f64 / 2.0).exp()).sum();
        assert!((lp as f64 - ((logits[id as usize] as f64 / 2.0).exp() / z).ln()).abs() < 1e-6);
    }
}
