//! Text side of wick: loading Hugging Face tokenizers (a tokenizer.json or a model folder),
//! training byte-level BPE tokenizers, and rendering SFT and preference records (with the
//! folder's chat template or wick's documented defaults) into token ids and loss masks, and
//! the one renderer of the model tools' input records ([`Renderer`]).

pub mod clean;
mod fast_bpe;
mod record;
mod render;
mod tokenizer;
mod tokenizer_files;
mod train;

pub use clean::{clean, CleanOptions};
pub use record::{render_record, Reading, Rendered, Renderer};
pub use render::{
    render_preference, render_sft, Format, Piece, Preference, Templates, DEFAULT_CHAT_TEMPLATE,
};
pub use tokenizer::{Encoded, Tok};
pub use tokenizer_files::{copy_tokenizer_files, TOKENIZER_FILES};
pub use train::{save_trained, train_bpe, TrainOptions};
