//! Sequence scores of a sequence-classification model (a reward model: one label): the head
//! `score.weight` applied to the hidden state of each sequence's last token, chosen as
//! transformers 5 does — the rightmost position whose id is not the pad id (position 0 when
//! every id is the pad id), looking at the ids only.

use candle_core::Tensor;
use wick_io::{Error, Result};

use crate::model::ce;
use crate::Llama;

/// The position transformers reads a score at in a (right-padded) row.
pub fn score_position(row: &[u32], pad: u32) -> usize {
    row.iter().rposition(|&id| id != pad).unwrap_or(0)
}

/// Scores [rows, labels] of token sequences (each unpadded; they are right-padded with `pad`
/// into one batch, which causal attention makes harmless); differentiable in the model (reward
/// training). Errors for a model without a score head.
pub fn score_batch(model: &Llama, rows: &[&[u32]], pad: u32) -> Result<Tensor> {
    let head = model.score_head().ok_or_else(|| {
        Error::msg("not a sequence-classification model (config.json's architectures name no ...ForSequenceClassification, no score.weight)")
    })?;
    let t = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let b = rows.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut picks = Vec::with_capacity(b);
    for (i, r) in rows.iter().enumerate() {
        let start = ids.len();
        ids.extend_from_slice(r);
        ids.resize(start + t, pad);
        picks.push((i * t + score_position(&ids[start..], pad)) as u32);
    }
    let ids = Tensor::from_vec(ids, (b, t), &model.device()).map_err(ce)?;
    let h = model.hidden(&ids, None, None)?;
    let inner = || -> candle_core::Result<Tensor> {
        let picks = Tensor::from_vec(picks, b, &model.device())?;
        head.forward(&h.reshape((b * t, ()))?, &picks)
    };
    inner().map_err(ce)
}

/// Scores [rows][labels] of token sequences, without a gradient (see [`score_batch`]).
pub fn sequence_scores(model: &Llama, rows: &[&[u32]], pad: u32) -> Result<Vec<Vec<f32>>> {
    if model.score_head().is_some() && rows.is_empty() {
        return Ok(Vec::new());
    }
    let scores = score_batch(model, rows, pad)?
        .detach()
        .to_vec2()
        .map_err(ce)?;
    for row in &scores {
        crate::score::check_finite(row, "scores")?;
    }
    Ok(scores)
}
