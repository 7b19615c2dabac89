//! A model folder as the evaluation tools open it: weights plus the tokenizer beside them,
//! checked against each other.

use std::path::Path;

use wick_io::{Error, Result};
use wick_text::Tok;

use crate::Llama;

pub struct Folder {
    pub model: Llama,
    pub tok: Tok,
}

impl Folder {
    /// Loads config.json, model.safetensors and tokenizer.json from a Hugging Face folder.
    pub fn open(dir: &Path) -> Result<Folder> {
        Folder::open_with_adapter(dir, None)
    }

    /// The same with an adapter folder on top, when given: PEFT LoRA or wick's Houlsby.
    pub fn open_with_adapter(dir: &Path, adapter: Option<&Path>) -> Result<Folder> {
        Folder::open_as(dir, adapter, "f32")
    }

    /// The same with the weight matrices kept in `dtype`: "auto" (the checkpoint's own),
    /// "f32", "bf16" or "f16" (see `Llama::load_as`).
    pub fn open_as(dir: &Path, adapter: Option<&Path>, dtype: &str) -> Result<Folder> {
        let mut model = Llama::load_as(dir, crate::precision::parse_dtype(dtype)?)?;
        if let Some(a) = adapter {
            model.load_adapter(a).map_err(|e| e.context(a.display()))?;
        }
        if !dir.join("tokenizer.json").is_file() {
            return Err(Error::msg(format!(
                "{}: no tokenizer.json beside the model",
                dir.display()
            )));
        }
        let tok = Tok::load(dir)?;
        if tok.vocab_size() > model.config.vocab_size {
            return Err(Error::msg(format!(
                "{}: the tokenizer has {} tokens but the model's vocabulary is {}: they do not belong together",
                dir.display(),
                tok.vocab_size(),
                model.config.vocab_size
            )));
        }
        Ok(Folder { model, tok })
    }

    /// The token a document starts after: the model's BOS when it has one, else EOS — wick's
    /// packed shards put EOS between documents, so that is what a document follows in training.
    pub fn doc_prefix(&self) -> Vec<u32> {
        doc_prefix(&self.model.config, &self.tok)
    }

    /// Ids that end generation: the config's EOS ids and the tokenizer's.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = self.model.config.eos_token_ids.clone();
        ids.extend(self.tok.eos_id);
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The token a document starts after (see `Folder::doc_prefix`), from a config and tokenizer.
pub fn doc_prefix(config: &crate::Config, tok: &Tok) -> Vec<u32> {
    let bos = config.bos_token_id.or_else(|| {
        tok.bos_token
            .as_deref()
            .and_then(|t| tok.inner.token_to_id(t))
    });
    bos.or(tok.eos_id)
        .or(config.eos_token_ids.first().copied())
        .into_iter()
        .collect()
}
