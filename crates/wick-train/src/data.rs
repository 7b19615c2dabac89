//! What a step trains on: random windows of the token stream (pretraining), whole examples,
//! packed or padded, with their loss masks (SFT), or preference pairs (reward, DPO); and the
//! fixed val batches each evaluation uses.

use crate::pairs::{self, PairLoader, PairSet};
use crate::settings::Settings;
use crate::task::Task;
use crate::TrainState;
use candle_core::{Device, Tensor};
use wick_io::Result;
use wick_model::{lm_eval_loss, lm_loss, Llama};
use wick_rl::preference::PairStats;
use wick_shard::{EpochLoader, Examples, Sampler, Sequential, SftBatch, ShardSet, Split};

/// Where a run's data comes from: a `pack` shard directory, or preference pairs.
pub enum Corpus {
    Shards(ShardSet),
    Pairs(PairSet),
}

impl Corpus {
    pub fn shards(&self) -> Option<&ShardSet> {
        match self {
            Corpus::Shards(s) => Some(s),
            Corpus::Pairs(_) => None,
        }
    }
}

/// One micro-batch's loss (differentiable), the positions it processed, and for pairs how
/// the batch compared them.
pub struct StepLoss {
    pub loss: Tensor,
    pub tokens: u64,
    pub pairs: Option<PairStats>,
}

/// An evaluation: the val loss, and for pairs the preference statistics.
#[derive(Debug, Clone, Copy)]
pub struct Eval {
    pub loss: f64,
    pub pairs: Option<PairStats>,
    /// DPO: how the policy's likelihoods alone rank the pairs.
    pub logps: Option<PairStats>,
}

use wick_model::candle_error as ce;

/// One micro-batch as tensors: windows [B, T+1], optional per-target weights [B*T] and
/// segments [B, T].
pub struct Micro {
    pub window: Tensor,
    pub weights: Option<Tensor>,
    pub segments: Option<Tensor>,
    /// Positions processed (B x T, padding included).
    pub tokens: u64,
}

impl Micro {
    /// On `device`, the model's.
    fn windows(b: usize, t: usize, tokens: &[u32], device: &Device) -> Result<Micro> {
        Ok(Micro {
            window: Tensor::from_slice(tokens, (b, t + 1), device).map_err(ce)?,
            weights: None,
            segments: None,
            tokens: (b * t) as u64,
        })
    }

    fn examples(x: &SftBatch, packed: bool, device: &Device) -> Result<Micro> {
        Ok(Micro {
            window: Tensor::from_slice(&x.tokens, (x.b, x.t + 1), device).map_err(ce)?,
            weights: Some(Tensor::from_slice(&x.weights, x.b * x.t, device).map_err(ce)?),
            // One example per row needs no more than the causal mask.
            segments: packed
                .then(|| Tensor::from_slice(&x.segments, (x.b, x.t), device))
                .transpose()
                .map_err(ce)?,
            tokens: (x.b * x.t) as u64,
        })
    }
}

pub enum Data<'a> {
    Windows(Sampler<'a>),
    Examples(EpochLoader<'a>, bool),
    Pairs(PairLoader, &'a PairSet),
}

/// The token that pads SFT rows (never a target): the shards' EOS.
pub fn pad_id(set: &ShardSet) -> u32 {
    set.manifest.as_ref().map_or(0, |m| m.eos_id)
}

impl<'a> Data<'a> {
    pub fn new(corpus: &'a Corpus, s: &Settings) -> Result<Self> {
        let set = match corpus {
            Corpus::Pairs(p) => {
                return Ok(Data::Pairs(
                    PairLoader::new(p.train.len(), s.seed, s.batch_size),
                    p,
                ))
            }
            Corpus::Shards(set) => set,
        };
        Ok(if let Task::Sft { packing } = s.task {
            let ex = Examples::new(set, Split::Train, pad_id(set))?;
            Data::Examples(
                EpochLoader::new(ex, s.seed, s.batch_size, s.seq_len, packing),
                packing,
            )
        } else {
            Data::Windows(Sampler::new(
                set,
                Split::Train,
                s.batch_size,
                s.seq_len,
                s.seed,
            )?)
        })
    }

    /// The next micro-batch's loss.
    pub fn next_loss(&mut self, model: &Llama) -> Result<StepLoss> {
        let dev = &model.device();
        let m = match self {
            Data::Windows(s) => {
                let b = s.next_batch();
                Micro::windows(b.b, b.t, &b.tokens, dev)?
            }
            Data::Examples(l, packed) => Micro::examples(&l.next_batch(), *packed, dev)?,
            Data::Pairs(l, set) => {
                let batch: Vec<&pairs::Pair> =
                    l.next_batch().into_iter().map(|i| &set.train[i]).collect();
                let p = pairs::pair_loss(model, &batch, set.pad, set.objective)?;
                let stats = p.stats();
                return Ok(StepLoss {
                    loss: p.loss,
                    tokens: p.tokens,
                    pairs: Some(stats),
                });
            }
        };
        Ok(StepLoss {
            loss: lm_loss(model, &m.window, m.weights.as_ref(), m.segments.as_ref())?,
            tokens: m.tokens,
            pairs: None,
        })
    }

    pub fn save(&self, state: &mut TrainState) {
        match self {
            Data::Windows(s) => state.rng = s.rng.state,
            Data::Examples(l, _) => {
                state.epoch = l.epoch;
                state.row = l.row as u64;
            }
            Data::Pairs(l, _) => {
                state.epoch = l.epoch;
                state.row = l.row as u64;
            }
        }
    }

    pub fn restore(&mut self, state: &TrainState) {
        match self {
            Data::Windows(s) => s.rng.state = state.rng,
            Data::Examples(l, _) => l.seek(state.epoch, state.row as usize),
            Data::Pairs(l, _) => l.seek(state.epoch, state.row as usize),
        }
    }

    /// A line about the examples (SFT only).
    pub fn describe(&self, t: usize) -> Option<String> {
        if let Data::Pairs(l, set) = self {
            return Some(format!(
                "{} train pairs, {} val pairs, {} per batch",
                l.len(),
                set.val.len(),
                l.next_len()
            ));
        }
        let Data::Examples(l, packed) = self else {
            return None;
        };
        let (all, trained) = l.examples.token_counts();
        Some(format!(
            "{} examples ({all} tokens, {trained} trained on), {} rows of {} tokens per epoch ({}), {} cut to fit",
            l.examples.len(),
            l.rows_this_epoch(),
            t + 1,
            if *packed { "packed" } else { "one example per row" },
            l.examples.longer_than(t)
        ))
    }

    /// Epochs done so far, fractional (SFT only).
    pub fn epoch(&self) -> Option<f64> {
        match self {
            Data::Windows(_) => None,
            Data::Examples(l, _) => {
                Some(l.epoch as f64 + l.row as f64 / l.rows_this_epoch().max(1) as f64)
            }
            Data::Pairs(l, _) => Some(l.epoch as f64 + l.row as f64 / l.len().max(1) as f64),
        }
    }
}

/// Mean loss on the val split, over the same batches every time (so that evaluations are
/// comparable): pretraining, the first `batches` sequential windows; SFT, the first `batches`
/// batches of val examples in directory order, packed as in training, weighted by trained
/// targets; pairs, every val pair. None without a val split.
pub fn val_loss(
    model: &Llama,
    corpus: &Corpus,
    s: &Settings,
    batches: usize,
) -> Result<Option<Eval>> {
    let set = match corpus {
        Corpus::Pairs(p) => {
            return Ok(pairs::evaluate(model, p, s.batch_size)?.map(|e| Eval {
                loss: e.loss,
                pairs: Some(e.stats),
                logps: e.logps,
            }))
        }
        Corpus::Shards(set) => set,
    };
    let (b, t) = (s.batch_size, s.seq_len);
    let (mut sum, mut n) = (0f64, 0f64);
    if let Task::Sft { packing } = s.task {
        let Ok(ex) = Examples::new(set, Split::Val, pad_id(set)) else {
            return Ok(None);
        };
        let plan = ex.plan(t, packing, None);
        for rows in plan.chunks(b).take(batches) {
            let batch = ex.batch(rows, t, packing);
            let w = batch.trained();
            if w == 0.0 {
                continue;
            }
            let m = Micro::examples(&batch, packing, &model.device())?;
            let loss = lm_eval_loss(model, &m.window, m.weights.as_ref(), m.segments.as_ref())?;
            sum += loss as f64 * w;
            n += w;
        }
    } else {
        let Ok(seq) = Sequential::new(set, Split::Val, b, t) else {
            return Ok(None);
        };
        for batch in seq.take(batches) {
            let m = Micro::windows(batch.b, batch.t, &batch.tokens, &model.device())?;
            let loss = lm_eval_loss(model, &m.window, None, None)?;
            sum += loss as f64 * m.tokens as f64;
            n += m.tokens as f64;
        }
    }
    Ok((n > 0.0).then(|| Eval {
        loss: sum / n,
        pairs: None,
        logps: None,
    }))
}

/// Rows in one epoch of the train split's examples, for sizing an SFT run in epochs.
pub fn rows_per_epoch(
    set: &ShardSet,
    seed: u64,
    batch_size: usize,
    seq_len: usize,
    packing: bool,
) -> Result<usize> {
    let ex = Examples::new(set, Split::Train, pad_id(set))?;
    Ok(EpochLoader::new(ex, seed, batch_size, seq_len, packing).rows_per_epoch())
}
