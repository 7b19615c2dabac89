//! Scored rollouts as `generate | rm-score` writes them: the prompt's and the response's
//! token ids, why generation stopped, and the reward model's score.

use serde_json::Value;
use wick_io::{Error, LineReader, Result};

#[derive(Debug, Clone)]
pub struct Rollout {
    pub prompt_ids: Vec<u32>,
    pub response_ids: Vec<u32>,
    pub reward: f64,
    /// The response ended with an end-of-sequence token.
    pub has_eos: bool,
}

fn ids(rec: &serde_json::Map<String, Value>, field: &str) -> std::result::Result<Vec<u32>, String> {
    let arr = rec
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no {field:?} (token ids, as generate writes them)"))?;
    arr.iter()
        .map(|v| {
            v.as_u64()
                .filter(|&x| x <= u32::MAX as u64)
                .map(|x| x as u32)
                .ok_or_else(|| format!("{field:?} holds {v}, not a token id"))
        })
        .collect()
}

/// Reads every rollout of the inputs, checking each against the model's context and
/// vocabulary. `stop` are the ids that end a response.
pub fn read(files: &[String], context: usize, vocab: usize, stop: &[u32]) -> Result<Vec<Rollout>> {
    Ok(read_skipping(files, context, vocab, stop, false)?.0)
}

/// [`read`], and with `skip_invalid` records that are not valid rollouts are passed over and
/// counted (the second value) instead of stopping the read.
pub fn read_skipping(
    files: &[String],
    context: usize,
    vocab: usize,
    stop: &[u32],
    skip_invalid: bool,
) -> Result<(Vec<Rollout>, u64)> {
    let mut out = Vec::new();
    let mut skipped = 0;
    for path in wick_io::inputs_or_stdin(files) {
        let mut reader = LineReader::open(&path)?;
        let mut buf = Vec::new();
        while let Some(line) = reader.read_line(&mut buf)? {
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match rollout(reader.name(), line, &buf, context, vocab, stop) {
                Ok(r) => out.push(r),
                Err(Error::Record { .. }) if skip_invalid => skipped += 1,
                Err(e) => return Err(e),
            }
        }
    }
    if out.is_empty() {
        return Err(Error::msg("no rollouts in the input"));
    }
    Ok((out, skipped))
}

/// One record as a rollout.
fn rollout(
    name: &str,
    line: u64,
    buf: &[u8],
    context: usize,
    vocab: usize,
    stop: &[u32],
) -> Result<Rollout> {
    let rec = wick_io::parse_object(name, line, buf)?;
    let bad = |e: String| Error::record(name, line, e);
    let reward = match rec.get("reward") {
        Some(v) => v
            .as_f64()
            .ok_or_else(|| bad(format!("\"reward\" is {v}, not a number")))?,
        None => {
            return Err(bad(
                "no \"reward\": score the rollouts first (generate | rm-score --model RM)".into(),
            ))
        }
    };
    let prompt_ids = ids(&rec, "prompt_ids").map_err(bad)?;
    let response_ids = ids(&rec, "response_ids").map_err(bad)?;
    if prompt_ids.is_empty() {
        return Err(bad("an empty \"prompt_ids\"".into()));
    }
    if response_ids.is_empty() {
        return Err(bad("an empty response: nothing to learn from".into()));
    }
    let len = prompt_ids.len() + response_ids.len();
    if len > context {
        return Err(bad(format!(
            "prompt and response are {len} tokens, longer than the policy's context of {context}"
        )));
    }
    if let Some(&id) = prompt_ids
        .iter()
        .chain(&response_ids)
        .find(|&&i| i as usize >= vocab)
    {
        return Err(bad(format!(
            "token id {id} is outside the policy's vocabulary of {vocab}: rollouts of another model?"
        )));
    }
    let has_eos = match rec.get("finish_reason").and_then(Value::as_str) {
        Some(r) => r == "eos",
        None => response_ids.last().is_some_and(|id| stop.contains(id)),
    };
    Ok(Rollout {
        prompt_ids,
        response_ids,
        reward,
        has_eos,
    })
}
