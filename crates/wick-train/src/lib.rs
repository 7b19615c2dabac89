//! The training engine: a [`Trainer`] runs a [`Task`] (pretraining, SFT, a reward model, DPO)
//! with a [`Method`] (every weight, a LoRA adapter, a bottleneck adapter) in a run folder that
//! resumes exactly, reporting through a [`Report`] and never printing. Its parts are shared
//! with the other training tools (ppo-step): AdamW whose moments can be saved, the
//! learning-rate schedule, checkpoints and model folders, the JSONL metrics log, and Ctrl-C
//! handling.
//!
//! A step, in reading order: [`trainer`] (the loop), [`data`] (what a micro-batch's loss is),
//! [`pairs`] (the reward and DPO objectives), [`AdamW`] (the update), [`Schedule`] (the rate).

mod adamw;
mod checkpoint;
pub mod data;
mod interrupt;
mod metrics;
pub mod pairs;
pub mod presets;
mod recipe;
mod report;
mod scaler;
mod schedule;
mod settings;
mod start;
mod task;
pub mod trainer;

pub use adamw::{AdamW, AdamWConfig, Grads};
pub use checkpoint::{read_tensors, save_model, save_moments, Checkpoint, Tensors, TrainState};
pub use interrupt::{install_ctrl_c, interrupted, signal_name};
pub use metrics::MetricsLog;
pub use recipe::{EvalEvery, Plan, Recipe, Warmup};
pub use report::{Begin, Event, Report, Silent, StepReport};
pub use scaler::LossScaler;
pub use schedule::{Schedule, ScheduleKind};
pub use settings::Settings;
pub use start::{config_from, load_reference, Origin, Start};
pub use task::{lora_config, LoraConfig, LoraError, Method, Task};
pub use trainer::{Stop, Summary, Trainer};
