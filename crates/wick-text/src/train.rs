//! Training a GPT-2 style byte-level BPE tokenizer with the `tokenizers` crate, streaming the
//! corpus so that only word counts are held in memory.

use std::path::Path;

use serde_json::json;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};
use wick_io::{write_atomic, Error, Result};

pub struct TrainOptions {
    pub vocab_size: usize,
    pub min_frequency: u64,
    /// Added first, so they take ids 0, 1, …; the first is the EOS (and BOS) token.
    pub special_tokens: Vec<String>,
}

/// Trains on `docs`; [`save_trained`] writes the result.
pub fn train_bpe<I>(docs: I, opts: &TrainOptions) -> Result<Tokenizer>
where
    I: Iterator<Item = String> + Send,
{
    let alphabet = ByteLevel::alphabet();
    let min_vocab = alphabet.len() + opts.special_tokens.len();
    if opts.vocab_size < min_vocab {
        return Err(Error::msg(format!(
            "--vocab-size {} is too small: the byte alphabet and special tokens alone take {min_vocab}",
            opts.vocab_size
        )));
    }
    let specials: Vec<AddedToken> = opts
        .special_tokens
        .iter()
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(opts.vocab_size)
            .min_frequency(opts.min_frequency)
            .special_tokens(specials)
            .initial_alphabet(alphabet.into_iter().collect())
            .build(),
    );
    // GPT-2's settings: no prefix space, the GPT-2 split regex, offsets trimmed.
    let byte_level = ByteLevel::new(false, true, true);
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(byte_level));
    tok.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
    tok.with_post_processor(Some(byte_level));
    tok.train(&mut trainer, docs)
        .map_err(|e| Error::msg(format!("training failed: {e}")))?;
    Ok(tok)
}

/// Writes `out` (tokenizer.json), and with `with_config` tokenizer_config.json beside it (it
/// names EOS and BOS); returns the vocabulary size.
pub fn save_trained(
    tok: &Tokenizer,
    opts: &TrainOptions,
    out: &Path,
    with_config: bool,
) -> Result<usize> {
    let vocab = tok.get_vocab_size(true);
    let json = tok
        .to_string(false)
        .map_err(|e| Error::msg(format!("cannot serialise tokenizer: {e}")))?;
    write_atomic(out, json.as_bytes())?;
    if !with_config {
        return Ok(vocab);
    }
    let config = tokenizer_config(&opts.special_tokens, tok);
    write_atomic(
        out.with_file_name("tokenizer_config.json"),
        serde_json::to_string_pretty(&config)
            .expect("JSON value")
            .as_bytes(),
    )?;
    Ok(vocab)
}

/// The tokenizer_config.json transformers' `AutoTokenizer` reads beside tokenizer.json.
fn tokenizer_config(specials: &[String], tok: &Tokenizer) -> serde_json::Value {
    let mut decoder = serde_json::Map::new();
    for s in specials {
        if let Some(id) = tok.token_to_id(s) {
            decoder.insert(
                id.to_string(),
                json!({"content": s, "lstrip": false, "normalized": false, "rstrip": false,
                       "single_word": false, "special": true}),
            );
        }
    }
    let eos = specials.first();
    json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_prefix_space": false,
        "clean_up_tokenization_spaces": false,
        "bos_token": eos,
        "eos_token": eos,
        "unk_token": eos,
        "model_max_length": 1_000_000_000_000_000_000_u64,
        "added_tokens_decoder": decoder,
    })
}
