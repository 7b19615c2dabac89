//! A Llama-family decoder in candle (RMSNorm, rotary embeddings in Hugging Face's
//! half-rotation convention, SwiGLU MLP, grouped-query attention, biases as transformers' Llama
//! (`attention_bias`: q, k, v and o; `mlp_bias`: gate, up, down) and Qwen2 (q, k, v) have them,
//! tied or untied head), configured by and loaded from a Hugging Face folder, saved back under
//! the same tensor names.
//!
//! The forward pass reads in `model` (plus `Config`); every op it runs is in `kernels`, whose
//! ops are all differentiable: candle's own fused kernels (softmax_last_dim, rms_norm, rope,
//! sdpa) have no backward pass and would silently cut gradients.
//!
//! Adapters (the umbrella word) are of two kinds: LoRA adapters (`lora`) and bottleneck
//! adapters (`bottleneck`).

pub mod bottleneck;
mod config;
mod device;
mod folder;
pub mod generation;
mod init;
pub mod kernels;
pub mod lora;
pub mod memory;
mod model;
pub mod precision;
pub mod reward;
pub mod runtime;
mod score;

pub use bottleneck::BottleneckConfig;
pub use config::{Config, Family};
pub use device::{device, CUDA_BUILT, DEVICE_NAMES};
pub use folder::{doc_prefix, Folder};
pub use lora::{LoraAdapter, LoraConfig};
pub use model::{
    candle_error, lm_eval_loss, lm_loss, log_softmax, save_safetensors, AdapterKind,
    BottleneckAdapter, KvCache, Llama, ScoreHead,
};
pub use precision::{autocast, Precision};
pub use score::sequence_logprobs;
