//! The per-task recipe defaults, in one table, and [`Plan`]: what the caller chose, resolved
//! against the recipe (and, for epoch-based tasks, the size of the data) into [`Settings`].

use std::path::Path;

use wick_io::{Error, Result};

use crate::settings::Settings;
use crate::task::{Method, Task};
use crate::{data, pairs, AdamWConfig, Schedule, ScheduleKind};

/// How long warmup lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    Steps(u64),
    /// This fraction of the run's steps, rounded up.
    Fraction(f64),
}

/// How often the val split is evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EvalEvery {
    Steps(u64),
    /// Once per epoch.
    Epoch,
    /// This many times over the run.
    TimesPerRun(u64),
}

/// What a task trains with unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    pub lr: f64,
    /// The end of the decay; None: lr / 10.
    pub min_lr: Option<f64>,
    pub warmup: Warmup,
    pub weight_decay: f64,
    /// Passes over the data; None: the run is `max_steps` long.
    pub epochs: Option<f64>,
    pub max_steps: u64,
    pub eval: EvalEvery,
}

impl Task {
    /// The task's defaults. Pretraining follows nanoGPT; the fine-tuning tasks share the
    /// SFT recipe (3% warmup, decay to 1e-6, no weight decay) at their own learning rates.
    pub fn recipe(&self) -> Recipe {
        let fine_tune = Recipe {
            lr: 1e-4,
            min_lr: Some(1e-6),
            warmup: Warmup::Fraction(0.03),
            weight_decay: 0.0,
            epochs: Some(1.0),
            max_steps: 2000,
            eval: EvalEvery::TimesPerRun(5),
        };
        match self {
            Task::Pretrain => Recipe {
                lr: 1e-3,
                min_lr: None,
                warmup: Warmup::Steps(100),
                weight_decay: 0.1,
                epochs: None,
                max_steps: 2000,
                eval: EvalEvery::Steps(250),
            },
            Task::Sft { .. } => Recipe {
                epochs: Some(3.0),
                eval: EvalEvery::Epoch,
                ..fine_tune
            },
            Task::Reward { .. } => fine_tune,
            Task::Dpo { .. } => Recipe {
                lr: 2e-5,
                ..fine_tune
            },
        }
    }
}

/// What the caller chose; None takes the task's recipe.
#[derive(Debug, Clone)]
pub struct Plan {
    pub task: Task,
    pub method: Method,
    /// Sequences (pairs, for pair tasks) per micro-batch.
    pub batch_size: usize,
    pub seq_len: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    pub schedule: ScheduleKind,
    pub lr: Option<f64>,
    pub min_lr: Option<f64>,
    pub warmup: Option<u64>,
    /// The step at which the decay reaches min_lr; None: the last step.
    pub decay_steps: Option<u64>,
    pub max_steps: Option<u64>,
    pub epochs: Option<f64>,
    pub weight_decay: Option<f64>,
    /// AdamW's betas, eps and decay_all (its weight decay comes from the recipe or above).
    pub optimizer: AdamWConfig,
    pub grad_clip: f64,
    pub eval_interval: Option<u64>,
    pub eval_batches: usize,
    /// None: at every evaluation.
    pub checkpoint_interval: Option<u64>,
    pub seed: u64,
    pub precision: wick_model::Precision,
    pub grad_checkpoint: bool,
    /// "auto", "f32", "bf16" or "f16".
    pub save_dtype: String,
}

impl Plan {
    /// The settings of a new run on `data` (shards, or pairs for the pair tasks): the recipe
    /// fills what the plan leaves open, and an epoch-based run is sized from the data.
    pub fn resolve(self, data: &Path) -> Result<Settings> {
        let r = self.task.recipe();
        let grad_accum = self.grad_accum.max(1);
        let lr = self.lr.unwrap_or(r.lr);
        let mut max_steps = self.max_steps.unwrap_or(r.max_steps);
        let mut eval_interval = match r.eval {
            EvalEvery::Steps(n) => n,
            _ => 0,
        };
        let mut warmup = match r.warmup {
            Warmup::Steps(n) => n,
            Warmup::Fraction(_) => 0,
        };
        if let Some(default_epochs) = r.epochs {
            let epochs = self.epochs.unwrap_or(default_epochs);
            if !(epochs > 0.0 && epochs.is_finite()) {
                return Err(Error::msg("the number of epochs must be positive"));
            }
            let rows = if self.task.reads_pairs() {
                pairs::train_count(data, self.task.val_pairs().is_some())?
            } else {
                let set = wick_shard::ShardSet::open(data)?;
                data::rows_per_epoch(
                    &set,
                    self.seed,
                    self.batch_size,
                    self.seq_len,
                    self.task.packing(),
                )?
            };
            let per_step = (self.batch_size * grad_accum) as f64;
            let steps_per_epoch = (rows as f64 / per_step).ceil().max(1.0) as u64;
            max_steps = self
                .max_steps
                .unwrap_or((epochs * rows as f64 / per_step).ceil().max(1.0) as u64);
            if let Warmup::Fraction(f) = r.warmup {
                warmup = (f * max_steps as f64).ceil() as u64;
            }
            eval_interval = match r.eval {
                EvalEvery::Steps(n) => n,
                EvalEvery::Epoch => steps_per_epoch,
                EvalEvery::TimesPerRun(k) => max_steps.div_ceil(k),
            };
        }
        let eval_interval = self.eval_interval.unwrap_or(eval_interval);
        Ok(Settings {
            task: self.task,
            method: self.method,
            base: None,
            batch_size: self.batch_size,
            seq_len: self.seq_len,
            grad_accum,
            max_steps,
            schedule: Schedule {
                kind: self.schedule,
                lr,
                min_lr: self.min_lr.unwrap_or(r.min_lr.unwrap_or(lr / 10.0)),
                warmup: self.warmup.unwrap_or(warmup),
                decay_steps: self.decay_steps.unwrap_or(max_steps),
            },
            optimizer: AdamWConfig {
                weight_decay: self.weight_decay.unwrap_or(r.weight_decay),
                ..self.optimizer
            },
            grad_clip: self.grad_clip,
            eval_interval,
            eval_batches: self.eval_batches,
            checkpoint_interval: self.checkpoint_interval.unwrap_or(eval_interval),
            seed: self.seed,
            precision: self.precision,
            grad_checkpoint: self.grad_checkpoint,
            save_dtype: self.save_dtype,
        })
    }
}
