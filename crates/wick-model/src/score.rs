//! Log-probabilities of given tokens, for perplexity, multiple-choice scoring and RLHF:
//! sequences of different lengths go through the model together, right-padded (a causal
//! model never looks right, so padding changes nothing before it).

use candle_core::Tensor;
use wick_io::Result;

use crate::model::ce;
use crate::Llama;

/// For each sequence, log p(seq[i] | seq[..i]) for i in 1..len (so len-1 values).
/// Sequences must hold at least one token; they run as one batch.
pub fn sequence_logprobs(model: &Llama, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    if t < 2 {
        return Ok(seqs.iter().map(|_| Vec::new()).collect());
    }
    let b = seqs.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut targets = Vec::with_capacity(b * (t - 1));
    for s in seqs {
        ids.extend_from_slice(s);
        ids.extend(std::iter::repeat_n(0u32, t - s.len()));
        targets.extend(s.iter().skip(1));
        targets.extend(std::iter::repeat_n(0u32, t - s.len().max(1)));
    }
    let inner = || -> candle_core::Result<Vec<f32>> {
        let x = Tensor::from_vec(ids, (b, t), &model.device())?;
        let h = model
            .hidden(&x.narrow(1, 0, t - 1)?, None, None)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let tg = Tensor::from_vec(targets, b * (t - 1), &model.device())?;
        crate::kernels::lm_head_logprobs(&h.reshape((b * (t - 1), ()))?, model.head(), &tg)?
            .to_vec1::<f32>()
    };
    let flat = inner().map_err(ce)?;
    check_finite(&flat, "log-probabilities")?;
    Ok(seqs
        .iter()
        .enumerate()
        .map(|(i, s)| flat[i * (t - 1)..i * (t - 1) + s.len().saturating_sub(1)].to_vec())
        .collect())
}

/// Refuses NaN or infinite model outputs, which would otherwise be written as null or as
/// nonsense numbers: an error saying which, for the tool to prefix with the model's name.
pub fn check_finite(values: &[f32], what: &str) -> Result<()> {
    match values.iter().find(|x| !x.is_finite()) {
        None => Ok(()),
        Some(x) => Err(wick_io::Error::msg(format!(
            "the model gave non-finite {what} ({x}): its weights hold NaN or infinity, or its activations overflow"
        ))),
    }
}
