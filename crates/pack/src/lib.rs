//! The `pack` tool's library: reading tokenized JSONL into a [`wick_shard::Packer`], and the
//! `info` summary.

use serde::Deserialize;
use serde_json::value::RawValue;
use wick_io::{human_bytes, Error, LineReader, Progress, Result};
use wick_shard::{Manifest, Packer, ShardSet, Split};

/// The fields pack reads; everything else in a record is skipped unparsed.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    ids: Option<&'a RawValue>,
    #[serde(default)]
    mask: Option<Vec<u8>>,
    #[serde(borrow, default, rename = "id")]
    key: Option<&'a RawValue>,
}

#[derive(Debug, Default)]
pub struct PackSummary {
    pub documents: u64,
    pub val_documents: u64,
    pub tokens: u64,
    pub skipped: u64,
    pub bytes: u64,
}

/// Streams `inputs` into `packer`. `ids_field` names the ids; `split_key` the field whose raw
/// JSON text decides the split (the ids themselves when a record lacks it).
pub fn pack_inputs(
    packer: &mut Packer,
    inputs: &[String],
    ids_field: &str,
    split_key: &str,
    skip_invalid: bool,
    progress: &mut Progress,
) -> Result<PackSummary> {
    let mut sum = PackSummary::default();
    let mut buf = Vec::new();
    for path in inputs {
        let mut reader = LineReader::open(path)?;
        while let Some(line) = reader.read_line(&mut buf)? {
            sum.bytes += buf.len() as u64 + 1;
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match add_line(packer, &buf, ids_field, split_key) {
                Ok((tokens, split)) => {
                    sum.documents += 1;
                    sum.tokens += tokens as u64;
                    sum.val_documents += (split == Split::Val) as u64;
                }
                Err(msg) => {
                    let e = Error::record(reader.name(), line, msg);
                    if !skip_invalid {
                        return Err(e);
                    }
                    if sum.skipped < 5 {
                        eprintln!("pack: skipped {e}");
                    }
                    sum.skipped += 1;
                }
            }
            if sum.documents % 1024 == 0 {
                progress.tick(|secs| {
                    format!(
                        "{} documents, {} tokens, {} read ({:.1} MB/s)",
                        sum.documents,
                        sum.tokens,
                        human_bytes(sum.bytes),
                        sum.bytes as f64 / 1e6 / secs
                    )
                });
            }
        }
    }
    Ok(sum)
}

fn add_line(
    packer: &mut Packer,
    line: &[u8],
    ids_field: &str,
    split_key: &str,
) -> std::result::Result<(usize, Split), String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "not valid UTF-8 (bad byte at column {})",
            e.valid_up_to() + 1
        )
    })?;
    let rec = parse_record(text, ids_field, split_key)?;
    let raw_ids = rec
        .ids
        .ok_or_else(|| format!("missing field \"{ids_field}\""))?;
    let ids: Vec<u32> = serde_json::from_str(raw_ids.get())
        .map_err(|e| format!("field \"{ids_field}\" must be a list of token ids ({e})"))?;
    let key: Vec<u8> = match rec.key {
        Some(k) => k.get().as_bytes().to_vec(),
        None => ids.iter().flat_map(|i| i.to_le_bytes()).collect(),
    };
    let split = packer.add(&key, &ids, rec.mask.as_deref())?;
    Ok((ids.len(), split))
}

/// Parses the record, reading `ids_field` as `ids` and `split_key` as `key`.
fn parse_record<'a>(
    text: &'a str,
    ids_field: &str,
    split_key: &str,
) -> std::result::Result<Record<'a>, String> {
    let e = |e: serde_json::Error| format!("malformed record: {e}");
    if ids_field == "ids" && split_key == "id" {
        return serde_json::from_str(text).map_err(e);
    }
    // General case: pick the fields out of a map of raw values.
    let map: std::collections::HashMap<&str, &RawValue> = serde_json::from_str(text).map_err(e)?;
    let mask = match map.get("mask") {
        Some(m) => Some(
            serde_json::from_str(m.get())
                .map_err(|e| format!("field \"mask\" must be a list of 0/1 ({e})"))?,
        ),
        None => None,
    };
    Ok(Record {
        ids: map.get(ids_field).copied(),
        mask,
        key: map.get(split_key).copied(),
    })
}

/// `pack info`: totals for a shard directory (or llm.c shards), human-readable.
pub fn info(set: &ShardSet) -> String {
    let mut out = String::new();
    let dir = set.dir.display();
    match &set.manifest {
        Some(m) => {
            out += &format!(
                "{dir}: wick shards v{}, {} tokens, vocab {}, EOS id {}\n",
                m.version,
                m.dtype.name(),
                m.vocab_size,
                m.eos_id
            );
            out += &format!(
                "tokenizer: {} (xxh3-128 {})\n",
                m.tokenizer.file, m.tokenizer.xxh3_128
            );
            for split in [Split::Train, Split::Val] {
                let t = m.split_totals(split);
                out += &format!(
                    "{:<6} {:>14} tokens {:>10} documents {:>4} shards\n",
                    split.name(),
                    t.tokens,
                    t.documents,
                    t.shards
                );
            }
            out += &format!(
                "loss mask: {}; val fraction {} by {:?}; {}\n",
                if m.has_mask { "yes" } else { "no" },
                m.val_fraction,
                m.split_key,
                match m.shuffle_seed {
                    Some(s) => format!("shuffled with seed {s}"),
                    None => "input order".into(),
                }
            );
        }
        None => {
            out += &format!(
                "{dir}: llm.c shards (no manifest), {}\n",
                set.shards.first().map_or("empty", |s| s.dtype.name())
            );
            for split in [Split::Train, Split::Val] {
                out += &format!(
                    "{:<6} {:>14} tokens {:>4} shards\n",
                    split.name(),
                    set.tokens(split),
                    set.split(split).len()
                );
            }
        }
    }
    out
}

/// `pack info --json`: the manifest without the per-shard list, or llm.c totals.
pub fn info_json(set: &ShardSet) -> serde_json::Value {
    match &set.manifest {
        Some(Manifest { shards, .. }) => {
            let mut v = serde_json::to_value(set.manifest.as_ref()).expect("serialisable");
            v["shards"] = serde_json::json!(shards.len());
            v
        }
        None => serde_json::json!({
            "format": "llm.c",
            "dtype": set.shards.first().map(|s| s.dtype.name()),
            "splits": {
                "train": {"tokens": set.tokens(Split::Train), "shards": set.split(Split::Train).len()},
                "val": {"tokens": set.tokens(Split::Val), "shards": set.split(Split::Val).len()},
            },
        }),
    }
}
