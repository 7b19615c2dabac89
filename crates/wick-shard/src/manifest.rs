//! manifest.json: what a shard directory holds and how it was made.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use wick_io::{Error, Result};

use crate::{Dtype, Split};

pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "wick-shards";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_by: String,
    /// The tokenizer.json copied into the directory (and tokenizer_config.json if there was one).
    pub tokenizer: TokenizerInfo,
    pub vocab_size: usize,
    pub eos_id: u32,
    pub dtype: Dtype,
    pub val_fraction: f64,
    /// Record field whose value decides a document's split (its ids when absent).
    pub split_key: String,
    pub shuffle_seed: Option<u64>,
    pub shard_tokens: usize,
    pub has_mask: bool,
    pub splits: BTreeMap<String, SplitTotals>,
    pub shards: Vec<ShardEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    pub file: String,
    /// xxh3-128 of tokenizer.json's bytes (hex).
    pub xxh3_128: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitTotals {
    pub tokens: u64,
    pub documents: u64,
    pub shards: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub file: String,
    pub split: Split,
    pub tokens: u64,
    pub documents: u64,
    /// xxh3-64 of the whole file (header included), 16 hex digits.
    pub xxh3: String,
    pub docs_file: String,
    pub docs_xxh3: String,
    pub mask_file: Option<String>,
    pub mask_xxh3: Option<String>,
}

impl Manifest {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        tokenizer: TokenizerInfo,
        vocab_size: usize,
        eos_id: u32,
        dtype: Dtype,
        val_fraction: f64,
        split_key: String,
        shuffle_seed: Option<u64>,
        shard_tokens: usize,
    ) -> Self {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            created_by: format!("wick pack {}", env!("CARGO_PKG_VERSION")),
            tokenizer,
            vocab_size,
            eos_id,
            dtype,
            val_fraction,
            split_key,
            shuffle_seed,
            shard_tokens,
            has_mask: false,
            splits: BTreeMap::new(),
            shards: Vec::new(),
        }
    }

    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::msg(format!(
                "{}: not a wick shard manifest: {e}",
                path.display()
            ))
        })?;
        if m.format != FORMAT || m.version != VERSION {
            return Err(Error::msg(format!(
                "{}: unsupported format {:?} version {} (this wick reads {FORMAT:?} version {VERSION})",
                path.display(), m.format, m.version
            )));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("serialisable") + "\n"
    }

    /// The files the manifest names that would not lie inside its directory (an absolute
    /// path, `..`), one line each.
    pub fn names_outside(&self) -> Vec<String> {
        let mut names = vec![("tokenizer", &self.tokenizer.file)];
        for e in &self.shards {
            names.push(("shard", &e.file));
            names.push(("docs_file", &e.docs_file));
            if let Some(m) = &e.mask_file {
                names.push(("mask_file", m));
            }
        }
        names
            .into_iter()
            .filter(|(_, n)| !inside(n))
            .map(|(what, n)| format!("{what} {n:?} is not a file name inside the directory"))
            .collect()
    }

    pub fn split_totals(&self, split: Split) -> SplitTotals {
        self.splits.get(split.name()).cloned().unwrap_or_default()
    }
}

/// A relative path that stays below the directory it is joined to.
fn inside(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}
