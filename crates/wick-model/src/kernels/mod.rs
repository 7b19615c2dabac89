//! The model's ops as fused f32 CPU kernels with their own backward pass (candle custom ops),
//! one op per file, and `reference`: the same ops composed from candle's basic differentiable
//! ops, which is both what runs where no kernel does (another device, another dtype) and the
//! oracle the kernel tests compare against.
//!
//! Why not candle's own fused ops: softmax_last_dim, rms_norm, rope and sdpa have no backward
//! pass, so training through them silently gets no gradient for anything before them. The
//! compositions of basic ops are correct but slow to train through: every op allocates, and the
//! backward of each one is itself several more ops. Each op here is one kernel forward and one
//! kernel backward.
//!
//! How it plugs into candle's autograd: `Tensor::apply_op{1,2,3}` records the op in the graph, and
//! `Tensor::backward` later calls the op's `bwd` with the forward's arguments, its result and the
//! gradient of the result. `bwd` computes the argument gradients with a second, non-differentiable
//! custom op (`apply_op*_no_bwd`). Where one backward produces two gradients (x and weight, gate
//! and up) both live in one buffer and are handed back as views of it.
//!
//! The kernels are plain loops over slices written so that LLVM vectorises them (independent
//! accumulator lanes for reductions, a branch-free `exp`), parallelised over rows on rayon's
//! global pool (the one candle's matmul uses) once an op is big enough to repay the dispatch;
//! those helpers live in `cpu`.

mod attention;
pub(crate) mod cpu;
mod gemv;
mod head_logprobs;
mod head_loss;
mod linear;
mod lora;
pub mod lowp;
mod product;
pub mod reference;
mod rms_norm;
mod rope;
mod silu_mul;

pub use attention::{attention, attention_packed};
pub use cpu::reference_ops;
pub use gemv::{gemv, GEMV_MAX_ROWS};
pub use head_logprobs::{lm_head_entropy, lm_head_logprobs_train};
pub use head_loss::{lm_head_logprobs, lm_head_loss};
pub use linear::{frozen_matmul, linear, matmul_t};
pub use lora::lora_matmul;
pub use product::products_report;
pub use rms_norm::rms_norm;
pub use rope::{rope, rope_heads};
pub use silu_mul::{silu_mul, silu_mul_packed};
