//! A Llama-family decoder in candle (RMSNorm, rotary embeddings in Hugging Face's
//! half-rotation convention, SwiGLU MLP, grouped-query attention, biases as transformers' Llama
//! (`attention_bias`: q, k, v and o; `mlp_bias`: gate, up, down) and Qwen2 (q, k, v) have them, tied or untied head), configured by and loaded from a Hugging Face folder, saved
//! back under the same tensor names.
//!
//! Every op here is differentiable: candle's fused kernels (softmax_last_dim, rms_norm, rope,
//! sdpa) have no backward pass and would silently cut gradients (see DESIGN.md); `ops` holds
//! fused replacements that carry their own backward.

pub mod adapter;
mod config;
mod folder;
pub mod generation;
pub mod houlsby;
mod init;
pub mod memory;
mod model;
pub mod ops;
pub mod reward;
pub mod runtime;
mod score;
pub mod slow;

pub use adapter::Adapter;
pub use config::{Config, Family};
pub use folder::{doc_prefix, Folder};
pub use houlsby::HoulsbyConfig;
pub use model::{
    candle_error, lm_eval_loss, lm_loss, log_softmax, save_safetensors, AdapterKind, KvCache, Llama,
};
pub use score::sequence_logprobs;
