//! Through the output head: the training loss, log-probabilities and entropies of chosen
//! tokens (fused with the head's product, see `kernels::head_loss`), and the sequence
//! classifier's head that makes a reward model.

use candle_core::{Tensor, D};
use wick_io::Result;

use super::{ce, Llama};
use crate::kernels;

impl Llama {
    /// Turns a causal LM into a sequence classifier with `labels` outputs (a reward model has
    /// one), as transformers' `...ForSequenceClassification` loads a causal checkpoint: the LM
    /// head goes, a `score` head drawn from N(0, initializer_range) (seeded) takes its place,
    /// and config.json will name the classifier and its pad id.
    pub fn into_classifier(&mut self, labels: usize, pad: u32, seed: u64) -> Result<()> {
        let device = self.device();
        let c = &mut self.config;
        let archs: Vec<String> = c
            .json
            .get("architectures")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .filter(|a: &Vec<String>| !a.is_empty())
            .unwrap_or_else(|| vec!["LlamaForCausalLM".into()]);
        let archs: Vec<String> = archs
            .iter()
            .map(|a| {
                let stem = a.strip_suffix("ForCausalLM").unwrap_or(a);
                let stem = stem
                    .strip_suffix("ForSequenceClassification")
                    .unwrap_or(stem);
                format!("{stem}ForSequenceClassification")
            })
            .collect();
        let id2label: serde_json::Map<String, serde_json::Value> = (0..labels)
            .map(|i| (i.to_string(), format!("LABEL_{i}").into()))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = (0..labels)
            .map(|i| (format!("LABEL_{i}"), i.into()))
            .collect();
        c.json.insert("architectures".into(), archs.into());
        c.json.insert("num_labels".into(), labels.into());
        c.json.insert("id2label".into(), id2label.into());
        c.json.insert("label2id".into(), label2id.into());
        c.pad_token_id = Some(pad);
        let mut rng = crate::init::Normal::new(seed ^ 0x5c0e);
        let std = c.initializer_range;
        let data: Vec<f32> = (0..labels * c.hidden_size)
            .map(|_| (rng.sample() * std) as f32)
            .collect();
        let weight = Tensor::from_vec(data, (labels, c.hidden_size), &device).map_err(ce)?;
        self.score = Some(ScoreHead::new(weight));
        self.lm_head = None;
        Ok(())
    }

    /// log p(target) through the output head for hidden states h [N, hidden] and targets [N]
    /// -> [N]; differentiable in the model when `grad` (DPO, PPO).
    pub fn head_logprobs(&self, h: &Tensor, targets: &Tensor, grad: bool) -> Result<Tensor> {
        if grad {
            kernels::lm_head_logprobs_train(h, self.head(), targets).map_err(ce)
        } else {
            kernels::lm_head_logprobs(&h.detach(), &self.head().detach(), targets).map_err(ce)
        }
    }

    /// The entropy of the next-token distribution for hidden states h [N, hidden] -> [N].
    pub fn head_entropy(&self, h: &Tensor) -> Result<Tensor> {
        kernels::lm_head_entropy(&h.detach(), &self.head().detach()).map_err(ce)
    }

    /// A sequence classifier's head, if this is one.
    pub fn score_head(&self) -> Option<&ScoreHead> {
        self.score.as_ref()
    }
}

/// A sequence classifier's head (`score.weight` [labels, hidden], no bias, as transformers'
/// `LlamaForSequenceClassification`): reads one hidden state per sequence.
#[derive(Clone, Debug)]
pub struct ScoreHead {
    pub(super) weight: Tensor,
}

impl ScoreHead {
    pub fn new(weight: Tensor) -> ScoreHead {
        ScoreHead { weight }
    }

    /// `score.weight` [labels, hidden].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Scores [N, labels] of the rows `picks` [N] (u32) of hidden states `h` [rows, hidden];
    /// differentiable in the head and in `h`.
    pub fn forward(&self, h: &Tensor, picks: &Tensor) -> candle_core::Result<Tensor> {
        h.index_select(picks, 0)?.matmul(&self.weight.t()?)
    }
}

/// Mean next-token cross-entropy of a batch [B, T+1] of windows: inputs are the first T
/// tokens, targets the last T. `weights` [B*T] (e.g. an SFT loss mask) weights each target;
/// `segments` [B, T] u32 (packed examples) keeps attention within each example.
/// Differentiable in the weights of the model.
pub fn lm_loss(
    model: &Llama,
    window: &Tensor,
    weights: Option<&Tensor>,
    segments: Option<&Tensor>,
) -> Result<Tensor> {
    head_loss(model, window, weights, segments, true)
}

/// The same loss as a number, with no gradient bookkeeping (evaluation).
pub fn lm_eval_loss(
    model: &Llama,
    window: &Tensor,
    weights: Option<&Tensor>,
    segments: Option<&Tensor>,
) -> Result<f32> {
    head_loss(model, window, weights, segments, false)?
        .to_scalar::<f32>()
        .map_err(ce)
}

fn head_loss(
    model: &Llama,
    window: &Tensor,
    weights: Option<&Tensor>,
    segments: Option<&Tensor>,
    grad: bool,
) -> Result<Tensor> {
    let inner = || -> candle_core::Result<Tensor> {
        let (b, t1) = window.dims2()?;
        let inputs = window.narrow(1, 0, t1 - 1)?;
        let targets = window.narrow(1, 1, t1 - 1)?.flatten_all()?;
        let h = model
            .hidden_inner(&inputs, None, segments)?
            .reshape((b * (t1 - 1), ()))?;
        let head = model.head();
        if grad {
            kernels::lm_head_loss(&h, head, &targets, weights)
        } else {
            kernels::lm_head_loss(&h.detach(), &head.detach(), &targets, weights)
        }
    };
    inner().map_err(ce)
}

/// Log-probabilities over the vocabulary [.., vocab], without a gradient.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(logits, D::Minus1).map_err(ce)
}
