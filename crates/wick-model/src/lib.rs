//! A Llama-family decoder in candle (RMSNorm, rotary embeddings in Hugging Face's
//! half-rotation convention, SwiGLU MLP, grouped-query attention, optional q/k/v biases as in
//! Qwen2, tied or untied head), configured by and loaded from a Hugging Face folder.
//!
//! Every op here is differentiable: candle's fused kernels (softmax_last_dim, rms_norm, rope,
//! sdpa) have no backward pass and would silently cut gradients (see DESIGN.md).

mod config;
mod model;

pub use config::Config;
pub use model::Llama;
