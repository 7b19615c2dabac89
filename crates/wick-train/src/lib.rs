//! What every training task shares: the optimiser (AdamW whose moments can be saved),
//! the learning-rate schedule, gradient clipping and accumulation, checkpoints that resume
//! exactly, the JSONL metrics log, and Ctrl-C handling.

mod adamw;
mod checkpoint;
mod interrupt;
mod metrics;
mod schedule;

pub use adamw::{AdamW, AdamWConfig, Grads};
pub use checkpoint::{copy_tokenizer_files, Checkpoint, TrainState};
pub use interrupt::{install_ctrl_c, interrupted, signal_name};
pub use metrics::MetricsLog;
pub use schedule::{Schedule, ScheduleKind};
