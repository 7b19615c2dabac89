//! A loaded tokenizer with what the tools need beside it: the EOS token, the chat template and
//! a hash that ties token shards to the tokenizer that made them.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;
use wick_io::{Error, Result};

use crate::fast_bpe::FastBpe;
use crate::render::Piece;

/// Names tried, in order, for the end-of-document token when tokenizer_config.json names none.
const EOS_CANDIDATES: &[&str] = &[
    "<|endoftext|>",
    "</s>",
    "<|end_of_text|>",
    "<eos>",
    "<|im_end|>",
];

pub struct Tok {
    pub inner: Tokenizer,
    /// The tokenizer.json this was loaded from.
    pub path: PathBuf,
    /// xxh3-128 of tokenizer.json's bytes, as 32 hex digits.
    pub hash: String,
    pub eos_token: Option<String>,
    pub eos_id: Option<u32>,
    pub bos_token: Option<String>,
    /// `chat_template` from tokenizer_config.json, if any.
    pub chat_template: Option<String>,
    /// The same encoding, faster, for GPT-2-shaped byte-level BPE tokenizers.
    /// Built on first use: tools that only need the vocabulary (pack) skip the cost.
    fast: std::sync::OnceLock<Option<FastBpe>>,
}

/// Token ids with a per-token loss mask (1 = the token counts for loss).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
}

impl Tok {
    /// Loads a tokenizer.json, or a model folder holding one. tokenizer_config.json beside it,
    /// if present, supplies the EOS/BOS tokens and the chat template.
    pub fn load(path: impl AsRef<Path>) -> Result<Tok> {
        let path = path.as_ref();
        let file = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|e| Error::io(file.display(), e))?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| {
            Error::msg(format!(
                "{}: not a usable tokenizer.json: {e}",
                file.display()
            ))
        })?;
        let hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
        let config_path = file.with_file_name("tokenizer_config.json");
        let config: Option<Value> = if config_path.exists() {
            let text = std::fs::read_to_string(&config_path)
                .map_err(|e| Error::io(config_path.display(), e))?;
            Some(serde_json::from_str(&text).map_err(|e| {
                Error::msg(format!("{}: malformed JSON: {e}", config_path.display()))
            })?)
        } else {
            None
        };
        let token_field = |name: &str| config.as_ref().and_then(|c| token_string(c.get(name)?));
        let eos_token = token_field("eos_token").or_else(|| {
            EOS_CANDIDATES
                .iter()
                .find(|t| inner.token_to_id(t).is_some())
                .map(|t| t.to_string())
        });
        let eos_id = eos_token.as_deref().and_then(|t| inner.token_to_id(t));
        let chat_template = config
            .as_ref()
            .and_then(|c| chat_template(c.get("chat_template")?));
        Ok(Tok {
            bos_token: token_field("bos_token"),
            inner,
            path: file,
            hash,
            eos_token,
            eos_id,
            chat_template,
            fast: std::sync::OnceLock::new(),
        })
    }

    /// Overrides the EOS token by name (`--eos`).
    pub fn set_eos(&mut self, token: &str) -> Result<()> {
        let id = self.inner.token_to_id(token).ok_or_else(|| {
            Error::msg(format!(
                "{}: has no token {token:?} to use as EOS",
                self.path.display()
            ))
        })?;
        self.eos_token = Some(token.to_string());
        self.eos_id = Some(id);
        Ok(())
    }

    /// The EOS id, or an error saying how to name one.
    pub fn require_eos(&self) -> Result<u32> {
        self.eos_id.ok_or_else(|| {
            Error::msg(format!(
                "{}: no EOS token found (tokenizer_config.json names none and none of {EOS_CANDIDATES:?} is in the vocabulary); name one with --eos",
                self.path.display()
            ))
        })
    }

    /// Vocabulary size including added tokens: every id is below it.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Ids of `text`, with no special tokens added around it (special tokens written in the
    /// text itself are still recognised, as the Python `tokenizers` library does).
    pub fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        if let Some(fast) = self.fast() {
            let mut ids = Vec::new();
            fast.encode(text, &mut ids);
            return Ok(ids);
        }
        self.inner
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("tokenizer failed: {e}"))
    }

    /// Whether `encode` takes the fast byte-level BPE path rather than the tokenizers crate.
    pub fn uses_fast_path(&self) -> bool {
        self.fast().is_some()
    }

    fn fast(&self) -> Option<&FastBpe> {
        self.fast
            .get_or_init(|| match std::env::var_os("WICK_NO_FAST_BPE") {
                // WICK_NO_FAST_BPE=1 forces the tokenizers crate (benchmarks, debugging).
                Some(v) if v == "1" => None,
                _ => FastBpe::from_tokenizer(&self.inner),
            })
            .as_ref()
    }

    /// Encodes rendered pieces one by one, so that the mask follows piece boundaries exactly.
    pub fn encode_pieces(&self, pieces: &[Piece]) -> std::result::Result<Encoded, String> {
        let mut out = Encoded::default();
        for p in pieces {
            let ids = match &p.text {
                Some(t) => self.encode(t)?,
                None => vec![self
                    .eos_id
                    .ok_or("the tokenizer has no EOS token; name one with --eos")?],
            };
            out.mask
                .extend(std::iter::repeat_n(p.train as u8, ids.len()));
            out.ids.extend(ids);
        }
        Ok(out)
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> std::result::Result<String, String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| format!("cannot decode: {e}"))
    }
}

/// A special token in tokenizer_config.json is a string or an AddedToken object.
fn token_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `chat_template` is a string, or a list of named templates of which "default" is used.
fn chat_template(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    }
}
