//! The reward and DPO tasks' data: preference pairs ({prompt, chosen, rejected}, optional
//! `margin`) read from JSONL and tokenized with the model's tokenizer, shuffled every epoch,
//! and the two objectives on them: the reward model's Bradley–Terry loss on the score at each
//! response's last token, and DPO's loss on the responses' summed log-probs against a frozen
//! reference (computed once, before training).

use std::path::Path;

use candle_core::Tensor;
use serde_json::Value;
use wick_io::Rng;
use wick_io::{Error, LineReader, Result};
use wick_model::{reward::score_batch, Llama};
use wick_rl::preference::{bradley_terry_loss, dpo_loss, dpo_rewards, PairStats};
use wick_text::{render_preference, Tok};

use wick_model::candle_error as ce;

/// One tokenized pair. The mask marks the response tokens (those DPO sums log-probs over).
#[derive(Debug, Clone)]
pub struct Pair {
    pub chosen: Vec<u32>,
    pub chosen_mask: Vec<u8>,
    pub rejected: Vec<u32>,
    pub rejected_mask: Vec<u8>,
    pub margin: f32,
    /// DPO: the reference model's summed log-probs of the chosen and rejected responses.
    pub reference: (f64, f64),
}

/// Which objective, with its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    Reward,
    Dpo { beta: f64 },
}

/// The train and val pairs of a run.
pub struct PairSet {
    pub train: Vec<Pair>,
    pub val: Vec<Pair>,
    /// Right-padding (a reward model's pad id: the score is read before it).
    pub pad: u32,
    pub objective: Objective,
}

/// Reads and tokenizes the pairs of a JSONL file. Reward models read the plain rendering
/// (as `rm-score` does); DPO's sequences start after `prefix` (the token documents follow in
/// training). Pairs longer than `context` are left out, as TRL's reward trainer does, and
/// counted in the second value.
pub fn read_pairs(
    path: &Path,
    tok: &Tok,
    prefix: &[u32],
    context: usize,
    skipped: Option<&mut Vec<Error>>,
) -> Result<(Vec<Pair>, usize)> {
    let templates = wick_text::Templates::for_tok(tok)?;
    let mut skipped = skipped;
    let mut reader = LineReader::open(&path.display().to_string())?;
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut too_long = 0;
    while let Some(line) = reader.read_line(&mut buf)? {
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let pair = (|| -> Result<Option<Pair>> {
            let rec = wick_io::parse_object(reader.name(), line, &buf)?;
            let bad = |e: String| Error::record(reader.name(), line, e);
            for f in ["prompt", "chosen", "rejected"] {
                if !rec.contains_key(f) {
                    return Err(bad(format!(
                        "missing field {f:?} (a preference pair is {{prompt, chosen, rejected}})"
                    )));
                }
            }
            let margin = match rec.get("margin") {
                None | Some(Value::Null) => 0.0,
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| bad("\"margin\" must be a number".into()))?
                    as f32,
            };
            let p = render_preference(&rec, &templates).map_err(bad)?;
            let side = |resp: &[wick_text::Piece]| -> Result<(Vec<u32>, Vec<u8>)> {
                let pieces: Vec<_> = p.prompt.iter().chain(resp).cloned().collect();
                let e = tok.encode_pieces(&pieces).map_err(bad)?;
                let mut ids = prefix.to_vec();
                let mut mask = vec![0u8; prefix.len()];
                ids.extend(e.ids);
                mask.extend(e.mask);
                if !mask.contains(&1) {
                    return Err(bad("an empty response".into()));
                }
                Ok((ids, mask))
            };
            let (chosen, chosen_mask) = side(&p.chosen)?;
            let (rejected, rejected_mask) = side(&p.rejected)?;
            if chosen.len().max(rejected.len()) > context {
                return Ok(None);
            }
            Ok(Some(Pair {
                chosen,
                chosen_mask,
                rejected,
                rejected_mask,
                margin,
                reference: (0.0, 0.0),
            }))
        })();
        match pair {
            Ok(Some(p)) => out.push(p),
            Ok(None) => too_long += 1,
            Err(e) => match skipped.as_deref_mut() {
                Some(list) if matches!(e, Error::Record { .. }) => list.push(e),
                _ => return Err(e),
            },
        }
    }
    if out.is_empty() {
        return Err(Error::msg(format!(
            "{}: no preference pairs{}",
            path.display(),
            if too_long > 0 {
                format!(" that fit the model's context of {context} tokens ({too_long} longer)")
            } else {
                String::new()
            }
        )));
    }
    Ok((out, too_long))
}

/// Without a val file every 20th pair is held out, and the last one when that makes none
/// (with two or more pairs).
fn held_out(i: usize, n: usize) -> bool {
    n >= 2 && (i % 20 == 19 || (n < 20 && i == n - 1))
}

pub fn split_off_val(all: Vec<Pair>) -> (Vec<Pair>, Vec<Pair>) {
    let n = all.len();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, p) in all.into_iter().enumerate() {
        if held_out(i, n) {
            val.push(p);
        } else {
            train.push(p);
        }
    }
    (train, val)
}

/// How many pairs of `data` train (its non-blank lines, less the held-out ones without a val
/// file), for sizing a run in epochs before the pairs are tokenized.
pub fn train_count(data: &Path, has_val: bool) -> Result<usize> {
    // Line by line, as read_pairs reads them (a BOM skipped, lines held to the maximum).
    let mut reader = LineReader::open(&data.display().to_string())?;
    let (mut buf, mut n) = (Vec::new(), 0);
    while reader.read_line(&mut buf)?.is_some() {
        n += usize::from(!buf.iter().all(u8::is_ascii_whitespace));
    }
    Ok(if has_val {
        n
    } else {
        (0..n).filter(|&i| !held_out(i, n)).count()
    })
}

/// Batches of pairs, epoch after epoch, each epoch in a fresh order from the seed and the
/// epoch number: (epoch, row) is all an exact resume needs.
pub struct PairLoader {
    n: usize,
    seed: u64,
    b: usize,
    pub epoch: u64,
    pub row: usize,
    order: Vec<usize>,
}

impl PairLoader {
    pub fn new(n: usize, seed: u64, b: usize) -> PairLoader {
        let mut l = PairLoader {
            n,
            seed,
            b,
            epoch: 0,
            row: 0,
            order: Vec::new(),
        };
        l.seek(0, 0);
        l
    }

    pub fn seek(&mut self, epoch: u64, row: usize) {
        self.epoch = epoch;
        self.row = row;
        self.order = (0..self.n).collect();
        Rng::new(self.seed ^ epoch.wrapping_add(1).wrapping_mul(0xA076_1D64_78BD_642F))
            .shuffle(&mut self.order);
    }

    /// Indices of the next `b` pairs, running on into the next epoch.
    pub fn next_batch(&mut self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.b);
        while out.len() < self.b {
            if self.row >= self.order.len() {
                self.seek(self.epoch + 1, 0);
            }
            out.push(self.order[self.row]);
            self.row += 1;
        }
        out
    }

    pub fn len(&self) -> usize {
        self.n
    }

    /// Pairs per batch.
    pub fn next_len(&self) -> usize {
        self.b
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// The rows of a batch of pairs: chosen ones first, then rejected ones.
fn rows<'p>(pairs: &[&'p Pair]) -> Vec<(&'p [u32], &'p [u8])> {
    let c = pairs.iter().map(|p| (&p.chosen[..], &p.chosen_mask[..]));
    let r = pairs
        .iter()
        .map(|p| (&p.rejected[..], &p.rejected_mask[..]));
    c.chain(r).collect()
}

/// The loss of a batch of pairs and the per-pair scores it compared (rewards, or DPO's
/// implicit rewards), differentiable in the model's trainable tensors.
pub struct PairLoss {
    pub loss: Tensor,
    pub chosen: Vec<f64>,
    pub rejected: Vec<f64>,
    /// DPO: the policy's summed log-probs of the chosen and rejected responses.
    pub logps: Option<(Vec<f64>, Vec<f64>)>,
    pub tokens: u64,
}

impl PairLoss {
    pub fn stats(&self) -> PairStats {
        PairStats::of(&self.chosen, &self.rejected)
    }
}

/// The objective on a batch of pairs.
pub fn pair_loss(
    model: &Llama,
    pairs: &[&Pair],
    pad: u32,
    objective: Objective,
) -> Result<PairLoss> {
    match objective {
        Objective::Reward => reward_loss(model, pairs, pad),
        Objective::Dpo { beta } => {
            let logps = response_logprobs(model, &rows(pairs), pad, true)?;
            let n = pairs.len();
            let sums: Vec<f64> = logps
                .to_vec1::<f32>()
                .map_err(ce)?
                .iter()
                .map(|&x| x as f64)
                .collect();
            let rc: Vec<f64> = pairs.iter().map(|p| p.reference.0).collect();
            let rr: Vec<f64> = pairs.iter().map(|p| p.reference.1).collect();
            let tensor = |v: &[f64]| {
                Tensor::from_vec(
                    v.iter().map(|&x| x as f32).collect::<Vec<f32>>(),
                    n,
                    &model.device(),
                )
                .map_err(ce)
            };
            let (pc, pr) = (
                logps.narrow(0, 0, n).map_err(ce)?,
                logps.narrow(0, n, n).map_err(ce)?,
            );
            let loss = dpo_loss(&pc, &pr, &tensor(&rc)?, &tensor(&rr)?, beta).map_err(ce)?;
            Ok(PairLoss {
                loss,
                chosen: dpo_rewards(&sums[..n], &rc, beta),
                rejected: dpo_rewards(&sums[n..], &rr, beta),
                logps: Some((sums[..n].to_vec(), sums[n..].to_vec())),
                tokens: pairs
                    .iter()
                    .map(|p| (p.chosen.len() + p.rejected.len()) as u64)
                    .sum(),
            })
        }
    }
}

fn reward_loss(model: &Llama, pairs: &[&Pair], pad: u32) -> Result<PairLoss> {
    let rows = rows(pairs);
    let n = pairs.len();
    let seqs: Vec<&[u32]> = rows.iter().map(|(r, _)| *r).collect();
    let r = score_batch(model, &seqs, pad)?;
    let tokens = (rows.len() * seqs.iter().map(|r| r.len()).max().unwrap_or(1)) as u64;
    let inner = || -> candle_core::Result<(Tensor, Vec<f32>)> {
        let r = r.squeeze(1)?;
        let margin: Vec<f32> = pairs.iter().map(|p| p.margin).collect();
        let has_margin = margin.iter().any(|&m| m != 0.0);
        let margin = Tensor::from_vec(margin, n, &model.device())?;
        let loss = bradley_terry_loss(
            &r.narrow(0, 0, n)?,
            &r.narrow(0, n, n)?,
            has_margin.then_some(&margin),
        )?;
        Ok((loss, r.to_vec1::<f32>()?))
    };
    let (loss, r) = inner().map_err(ce)?;
    let r: Vec<f64> = r.iter().map(|&x| x as f64).collect();
    Ok(PairLoss {
        loss,
        chosen: r[..n].to_vec(),
        rejected: r[n..].to_vec(),
        logps: None,
        tokens,
    })
}

/// The summed log-probs of each row's response tokens (its mask), as a [rows] tensor;
/// differentiable when `grad`.
pub fn response_logprobs(
    model: &Llama,
    rows: &[(&[u32], &[u8])],
    pad: u32,
    grad: bool,
) -> Result<Tensor> {
    let b = rows.len();
    let t1 = rows.iter().map(|r| r.0.len()).max().unwrap_or(2).max(2);
    let t = t1 - 1;
    let mut ids = Vec::with_capacity(b * t1);
    let mut weights = Vec::with_capacity(b * t);
    for (r, m) in rows {
        let start = ids.len();
        ids.extend_from_slice(r);
        ids.resize(start + t1, pad);
        weights.extend(m.iter().skip(1).map(|&x| x as f32));
        weights.resize(weights.len() + t1 - r.len(), 0.0);
    }
    let inner = || -> candle_core::Result<Tensor> {
        let window = Tensor::from_vec(ids, (b, t1), &model.device())?;
        let inputs = window.narrow(1, 0, t)?;
        let targets = window.narrow(1, 1, t)?.flatten_all()?;
        let h = model
            .hidden(&inputs, None, None)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
            .reshape((b * t, ()))?;
        let lp = model
            .head_logprobs(&h, &targets, grad)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let w = Tensor::from_vec(weights, b * t, &model.device())?;
        (lp * w)?.reshape((b, t))?.sum(1)
    };
    inner().map_err(ce)
}

/// Fills in each pair's reference log-probs from the (frozen) reference model.
pub fn set_reference(
    reference: &Llama,
    pairs: &mut [Pair],
    pad: u32,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<()> {
    for (k, chunk) in pairs.chunks_mut(batch.max(1)).enumerate() {
        let refs: Vec<&Pair> = chunk.iter().collect();
        let lp = response_logprobs(reference, &rows(&refs), pad, false)?
            .to_vec1::<f32>()
            .map_err(ce)?;
        let n = chunk.len();
        for (i, p) in chunk.iter_mut().enumerate() {
            p.reference = (lp[i] as f64, lp[n + i] as f64);
        }
        progress(k * batch + n);
    }
    Ok(())
}

/// An evaluation on the val pairs: the mean loss, how the compared scores rank the pairs, and
/// for DPO how the policy's own likelihoods do.
pub struct PairEval {
    pub loss: f64,
    pub stats: PairStats,
    pub logps: Option<PairStats>,
}

/// Loss and preference statistics over every val pair (in file order), as plain numbers.
pub fn evaluate(model: &Llama, set: &PairSet, batch: usize) -> Result<Option<PairEval>> {
    if set.val.is_empty() {
        return Ok(None);
    }
    let (mut sum, mut chosen, mut rejected) = (0f64, Vec::new(), Vec::new());
    let (mut lc, mut lr) = (Vec::new(), Vec::new());
    for chunk in set.val.chunks(batch.max(1)) {
        let refs: Vec<&Pair> = chunk.iter().collect();
        let l = pair_loss(model, &refs, set.pad, set.objective)?;
        sum += l.loss.to_scalar::<f32>().map_err(ce)? as f64 * chunk.len() as f64;
        chosen.extend(l.chosen);
        rejected.extend(l.rejected);
        if let Some((c, r)) = l.logps {
            lc.extend(c);
            lr.extend(r);
        }
    }
    Ok(Some(PairEval {
        loss: sum / set.val.len() as f64,
        stats: PairStats::of(&chosen, &rejected),
        logps: (!lc.is_empty()).then(|| PairStats::of(&lc, &lr)),
    }))
}

/// Reads the pairs of a run: `data`, and `val` (or every 20th pair of `data`); the third
/// value counts the pairs left out as longer than the context. With `skipped`, a bad record
/// is set aside there instead of ending the read.
pub fn load(
    data: &Path,
    val: Option<&Path>,
    tok: &Tok,
    prefix: &[u32],
    context: usize,
    mut skipped: Option<&mut Vec<Error>>,
) -> Result<(Vec<Pair>, Vec<Pair>, usize)> {
    let (all, cut) = read_pairs(data, tok, prefix, context, skipped.as_deref_mut())?;
    Ok(match val {
        Some(v) => {
            let (val, cut_val) = read_pairs(v, tok, prefix, context, skipped)?;
            (all, val, cut + cut_val)
        }
        None => {
            let (train, val) = split_off_val(all);
            (train, val, cut)
        }
    })
}
