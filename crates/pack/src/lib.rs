//! The `pack` tool's library: reading tokenized JSONL into a [`wick_shard::Packer`], and the
//! `info` summary.

mod scan;

use rayon::prelude::*;
use serde_json::value::RawValue;
use wick_io::{for_each_batch, human_bytes, Error, LineReader, Progress, Result, Skipped};
use wick_shard::{Manifest, Packer, ShardSet, Split};

/// One parsed document, ready for the packer.
struct Doc {
    key: Vec<u8>,
    ids: Vec<u32>,
    mask: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct PackSummary {
    pub documents: u64,
    pub val_documents: u64,
    pub tokens: u64,
    pub skipped: u64,
    pub bytes: u64,
}

/// Streams `inputs` into `packer`: a reader thread cuts batches of lines, which are parsed in
/// parallel and added in input order. `ids_field` names the ids; `split_key` the field whose
/// raw JSON text decides the split (the ids themselves when a record lacks it).
pub fn pack_inputs(
    packer: &mut Packer,
    inputs: &[String],
    ids_field: &str,
    split_key: &str,
    skip_invalid: bool,
    progress: &mut Progress,
) -> Result<PackSummary> {
    let mut sum = PackSummary::default();
    let mut skips = Skipped::new("pack", false);
    for path in inputs {
        let reader = LineReader::open(path)?;
        let name = reader.name().to_string();
        for_each_batch(reader, 4096, 8 << 20, |batch| {
            let docs: Vec<std::result::Result<Doc, String>> = batch
                .par_iter()
                .map(|l| parse_line(&l.bytes, ids_field, split_key))
                .collect();
            for (line, doc) in batch.iter().zip(docs) {
                sum.bytes += line.bytes.len() as u64 + 1;
                let added = doc.and_then(|d| {
                    packer
                        .add(&d.key, &d.ids, d.mask.as_deref())
                        .map(|split| (d.ids.len(), split))
                });
                match added {
                    Ok((tokens, split)) => {
                        sum.documents += 1;
                        sum.tokens += tokens as u64;
                        sum.val_documents += (split == Split::Val) as u64;
                    }
                    Err(msg) => {
                        let e = Error::record(&name, line.number, msg);
                        if !skip_invalid {
                            return Err(e);
                        }
                        skips.note(&e);
                        sum.skipped = skips.count;
                    }
                }
            }
            progress.tick(|secs| {
                format!(
                    "{} documents, {} tokens, {} read ({:.1} MB/s)",
                    sum.documents,
                    sum.tokens,
                    human_bytes(sum.bytes),
                    sum.bytes as f64 / 1e6 / secs
                )
            });
            Ok(())
        })?;
    }
    Ok(sum)
}

fn parse_line(line: &[u8], ids_field: &str, split_key: &str) -> std::result::Result<Doc, String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "not valid UTF-8 (bad byte at column {})",
            e.valid_up_to() + 1
        )
    })?;
    if let Some(f) = scan::scan(line, ids_field, split_key) {
        return finish_doc(f.ids, f.mask, f.key.map(<[u8]>::to_vec), ids_field);
    }
    // serde_json decides what the scanner would not, and words the errors.
    let map: std::collections::HashMap<&str, &RawValue> =
        serde_json::from_str(text).map_err(|e| format!("malformed record: {e}"))?;
    let ids = match map.get(ids_field) {
        Some(v) => Some(
            serde_json::from_str(v.get())
                .map_err(|e| format!("field \"{ids_field}\" must be a list of token ids ({e})"))?,
        ),
        None => None,
    };
    let mask = match map.get("mask") {
        Some(m) => Some(
            serde_json::from_str(m.get())
                .map_err(|e| format!("field \"mask\" must be a list of 0/1 ({e})"))?,
        ),
        None => None,
    };
    let key = map.get(split_key);
    finish_doc(
        ids,
        mask,
        key.map(|k| k.get().as_bytes().to_vec()),
        ids_field,
    )
}

fn finish_doc(
    ids: Option<Vec<u32>>,
    mask: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    ids_field: &str,
) -> std::result::Result<Doc, String> {
    let ids = ids.ok_or_else(|| format!("missing field \"{ids_field}\""))?;
    let key = key.unwrap_or_else(|| ids.iter().flat_map(|i| i.to_le_bytes()).collect());
    Ok(Doc { key, ids, mask })
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
