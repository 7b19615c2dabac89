//! Multiple choice by log-likelihood, as lm-evaluation-harness scores HellaSwag-style tasks: each
//! ending is scored by the summed log-probability of its tokens after the context; the answer is
//! the ending with the highest sum (`acc`) or the highest sum per character of the ending
//! (`acc_norm`).

use serde_json::{json, Map, Value};
use wick_io::{Result, Skipped};
use wick_model::sequence_logprobs;
use wick_model::Folder;

use crate::records::Record;

/// The report, and the scores of each record scored (its index in the input, its scores) for
/// `--per-record`.
pub struct Scored {
    pub report: Value,
    pub per_record: Vec<(usize, Map<String, Value>)>,
}

pub struct ChoiceOptions {
    pub context: String,
    pub endings: String,
    pub label: String,
    /// Put between context and ending (lm-evaluation-harness's `target_delimiter`).
    pub delimiter: String,
    /// Sequences per forward pass.
    pub batch: usize,
}

struct Item {
    /// Model input: document prefix, context tokens, continuation tokens.
    ids: Vec<u32>,
    /// How many of the last tokens are the continuation.
    cont_len: usize,
}

/// lm-evaluation-harness's `_encode_pair`: trailing whitespace of the context moves to the
/// continuation, and the continuation's tokens are those of the whole text after the context's,
/// so a merge across the boundary goes where a tokenizer puts it.
fn encode_pair(folder: &Folder, context: &str, cont: &str) -> Result<(Vec<u32>, Vec<u32>), String> {
    let trimmed = wick_metrics::pystr::rstrip(context);
    let cont = format!("{}{cont}", &context[trimmed.len()..]);
    let whole = folder.tok.encode(&format!("{trimmed}{cont}"))?;
    let ctx = folder.tok.encode(trimmed)?;
    let split = ctx.len().min(whole.len());
    Ok((whole[..split].to_vec(), whole[split..].to_vec()))
}

/// One record's questions for the model: its gold index (if any), the length of each ending
/// in characters (for `acc_norm`), and one item per ending.
struct Prepared {
    label: Option<usize>,
    ending_chars: Vec<usize>,
    items: Vec<Item>,
}

fn prepare(r: &Record, folder: &Folder, o: &ChoiceOptions, prefix: &[u32]) -> Result<Prepared> {
    let max_len = folder.model.config.max_position_embeddings;
    let context = r.text(&o.context, "--context-field")?;
    let endings = r.texts(&o.endings, "--endings-field")?;
    if endings.len() < 2 {
        return Err(r.error(format!("field {:?} needs at least two endings", o.endings)));
    }
    let label = read_label(r, &o.label, endings.len())?;
    let ending_chars = endings.iter().map(|e| e.chars().count()).collect();
    let mut items = Vec::with_capacity(endings.len());
    for e in &endings {
        let (ctx, cont) =
            encode_pair(folder, context, &format!("{}{e}", o.delimiter)).map_err(|e| r.error(e))?;
        if cont.is_empty() {
            return Err(r.error("an ending encodes to no tokens"));
        }
        if cont.len() > max_len {
            return Err(r.error(format!(
                "an ending of {} tokens does not fit the model's context of {max_len}",
                cont.len()
            )));
        }
        let mut ids = prefix.to_vec();
        ids.extend(ctx);
        ids.extend(&cont);
        // Too long: keep the end, as lm-evaluation-harness does (max_len inputs predicting
        // max_len tokens, the last of which is never an input).
        if ids.len() > max_len + 1 {
            ids.drain(..ids.len() - (max_len + 1));
        }
        items.push(Item {
            ids,
            cont_len: cont.len(),
        });
    }
    Ok(Prepared {
        label,
        ending_chars,
        items,
    })
}

/// Scores every record; with `skips`, a record that cannot be asked (a field missing or of the
/// wrong kind, an ending too long) is noted there and left out; without, it is an error.
pub fn choice(
    records: &[Record],
    folder: &Folder,
    o: &ChoiceOptions,
    mut skips: Option<&mut Skipped>,
    mut on_progress: impl FnMut(usize, usize),
) -> Result<Scored> {
    let prefix = folder.doc_prefix();
    let mut items = Vec::new();
    let mut scored: Vec<usize> = Vec::with_capacity(records.len());
    let mut labels: Vec<Option<usize>> = Vec::with_capacity(records.len());
    let mut ending_chars: Vec<Vec<usize>> = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let p = match (prepare(r, folder, o, &prefix), skips.as_deref_mut()) {
            (Ok(p), _) => p,
            (Err(e), Some(skips)) => {
                skips.note(&e);
                continue;
            }
            (Err(e), None) => return Err(e),
        };
        scored.push(i);
        labels.push(p.label);
        ending_chars.push(p.ending_chars);
        items.extend(p.items);
    }

    // Longest first, so each batch pads little.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(items[k].ids.len()));
    let mut loglik = vec![0.0f64; items.len()];
    let mut done = 0;
    for chunk in order.chunks(o.batch.max(1)) {
        let seqs: Vec<&[u32]> = chunk.iter().map(|&k| items[k].ids.as_slice()).collect();
        let lps = sequence_logprobs(&folder.model, &seqs)?;
        for (&k, lp) in chunk.iter().zip(lps) {
            loglik[k] = lp[lp.len() - items[k].cont_len..]
                .iter()
                .map(|&x| x as f64)
                .sum();
        }
        done += chunk.len();
        on_progress(done, items.len());
    }

    let mut per_record = Vec::with_capacity(records.len());
    let (mut right, mut right_norm, mut labelled) = (0usize, 0usize, 0usize);
    let mut k = 0;
    for (i, chars) in ending_chars.iter().enumerate() {
        let lls = &loglik[k..k + chars.len()];
        k += chars.len();
        let pred = argmax(lls.iter().copied());
        let pred_norm = argmax(lls.iter().zip(chars).map(|(l, &c)| l / c.max(1) as f64));
        let mut m = Map::new();
        m.insert("logliks".into(), json!(lls));
        m.insert("pred".into(), pred.into());
        m.insert("pred_norm".into(), pred_norm.into());
        if let Some(label) = labels[i] {
            labelled += 1;
            right += (pred == label) as usize;
            right_norm += (pred_norm == label) as usize;
            m.insert("correct".into(), (pred == label).into());
            m.insert("correct_norm".into(), (pred_norm == label).into());
        }
        per_record.push((scored[i], m));
    }
    let frac = |x: usize| -> Value {
        if labelled == 0 {
            Value::Null
        } else {
            (x as f64 / labelled as f64).into()
        }
    };
    Ok(Scored {
        report: json!({
            "task": "choice",
            "records": scored.len(),
            "labelled": labelled,
            "acc": frac(right),
            "acc_norm": frac(right_norm),
            "sequences": items.len(),
        }),
        per_record,
    })
}

/// The first index of the largest value (numpy's argmax).
fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// The gold ending's index: a number or a numeric string (HellaSwag writes "3"); absent is fine
/// (no accuracy then).
fn read_label(r: &Record, field: &str, n: usize) -> Result<Option<usize>> {
    let Some(v) = r.fields.get(field) else {
        return Ok(None);
    };
    let idx = match v {
        Value::Number(x) => x.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        Value::Null => return Ok(None),
        _ => None,
    };
    match idx {
        Some(i) if (i as usize) < n => Ok(Some(i as usize)),
        _ => Err(r.error(format!(
            "field {field:?} should be the index of the right ending (0..{}), found {v}",
            n - 1
        ))),
    }
}
