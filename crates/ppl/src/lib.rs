//! Perplexity: documents are scored in windows of at most `seq_len` targets. With the
//! default stride (= seq_len) windows do not overlap; a smaller stride slides the window so
//! that every token after the first window is predicted with at least seq_len - stride
//! tokens of context (Hugging Face's "perplexity of fixed-length models" recipe).

use serde_json::{Map, Value};
use wick_io::Result;
use wick_model::{sequence_logprobs, Llama};
use wick_text::{render_record, Reading, Templates, Tok};

/// Tokens [start, end) of a sequence go through the model; targets at positions
/// first..end are counted (position p is predicted from tokens before p).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    pub first: usize,
}

/// Windows covering every target 1..len exactly once.
pub fn plan(len: usize, seq_len: usize, stride: usize) -> Vec<Window> {
    let stride = stride.clamp(1, seq_len);
    let mut out = Vec::new();
    let mut scored = 1; // next target not yet counted
    let mut start = 0;
    while scored < len {
        let end = (start + seq_len + 1).min(len);
        if end > scored {
            out.push(Window {
                start,
                end,
                first: scored,
            });
            scored = end;
        }
        start += stride;
    }
    out
}

/// One document to score: its ids, the mask of the targets that count (empty: all of them),
/// and the bytes of text those targets encode (for bits per byte).
pub struct Doc {
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
    pub bytes: u64,
}

/// A JSONL record as a document, through wick's one record renderer read as documents
/// ([`Reading::Document`]): plain text under `field`, after `prefix` (the model's BOS or
/// EOS); or an SFT record rendered as `tokenize` renders it, its response (and EOS) the only
/// targets — what `train --task sft` trains on and reports as val loss.
pub fn encode_record(
    rec: &Map<String, Value>,
    field: &str,
    templates: &Templates,
    tok: &Tok,
    prefix: &[u32],
) -> std::result::Result<Doc, String> {
    let rendered = render_record(rec, field, Reading::Document, templates)?;
    let enc = rendered.encode(tok, prefix)?;
    Ok(Doc {
        ids: enc.ids,
        mask: enc.mask,
        bytes: rendered.scored_bytes(),
    })
}

/// Sum of negative log-likelihood (nats) and count of targets, per document.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Nll {
    pub sum: f64,
    pub tokens: u64,
}

/// Scores many documents, batching windows across documents.
pub struct Scorer<'a> {
    model: &'a Llama,
    seq_len: usize,
    stride: usize,
    batch: usize,
}

impl<'a> Scorer<'a> {
    pub fn new(model: &'a Llama, seq_len: usize, stride: usize, batch: usize) -> Self {
        Scorer {
            model,
            seq_len,
            stride,
            batch: batch.max(1),
        }
    }

    /// The NLL of each document (token ids including any prefix; the first token is
    /// context only). With `masks`, a document's target at position p counts only where its
    /// mask (aligned with the ids; empty = every target) is 1 — an SFT record's response.
    /// `on_batch` is told how many targets each batch scored.
    pub fn score(
        &self,
        docs: &[Vec<u32>],
        masks: &[Vec<u8>],
        mut on_batch: impl FnMut(u64),
    ) -> Result<Vec<Nll>> {
        let mut out = vec![Nll::default(); docs.len()];
        let jobs: Vec<(usize, Window)> = docs
            .iter()
            .enumerate()
            .flat_map(|(d, ids)| {
                plan(ids.len(), self.seq_len, self.stride)
                    .into_iter()
                    .map(move |w| (d, w))
            })
            .collect();
        // Windows of similar length together, so that little is padding.
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].1.end - jobs[i].1.start));
        for chunk in order.chunks(self.batch) {
            let seqs: Vec<&[u32]> = chunk
                .iter()
                .map(|&i| {
                    let (d, w) = jobs[i];
                    &docs[d][w.start..w.end]
                })
                .collect();
            let lps = sequence_logprobs(self.model, &seqs)?;
            let mut n = 0;
            for (&i, lp) in chunk.iter().zip(lps) {
                let (d, w) = jobs[i];
                // lp[k] is the log-prob of token start+k+1.
                let skip = w.first - w.start - 1;
                let mask = masks.get(d).filter(|m| !m.is_empty());
                for (k, &x) in lp.iter().enumerate().skip(skip) {
                    if mask.is_some_and(|m| m[w.start + k + 1] == 0) {
                        continue;
                    }
                    out[d].sum -= x as f64;
                    out[d].tokens += 1;
                    n += 1;
                }
            }
            on_batch(n);
        }
        Ok(out)
    }
}

/// The summary figures: mean NLL (nats/token), perplexity, bits per token, bits per byte.
pub fn summary(sum: f64, tokens: u64, bytes: u64) -> serde_json::Value {
    // No target, no figures (null in JSON), rather than a perfect 1.0.
    let nll = if tokens > 0 {
        sum / tokens as f64
    } else {
        f64::NAN
    };
    serde_json::json!({
        "tokens": tokens,
        "bytes": bytes,
        "nll": nll,
        "ppl": nll.exp(),
        "bits_per_token": nll / std::f64::consts::LN_2,
        "bits_per_byte": if bytes > 0 { sum / std::f64::consts::LN_2 / bytes as f64 } else { f64::NAN },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(ws: &[Window]) -> Vec<usize> {
        ws.iter().flat_map(|w| w.first..w.end).collect()
    }

    #[test]
    fn every_target_once_with_enough_context() {
        for (len, t, s) in [
            (1, 4, 4),
            (2, 4, 4),
            (10, 4, 4),
            (10, 4, 2),
            (11, 4, 1),
            (100, 16, 5),
            (5, 8, 8),
        ] {
            let ws = plan(len, t, s);
            assert_eq!(targets(&ws), (1..len).collect::<Vec<_>>(), "{len} {t} {s}");
            for w in &ws {
                assert!(w.end - w.start <= t + 1);
                if w.start > 0 {
                    assert!(w.first - w.start >= t - s, "context {w:?}");
                }
            }
        }
        assert_eq!(
            plan(10, 4, 4).len(),
            3,
            "non-overlapping: 9 targets in windows of 4"
        );
    }
}
