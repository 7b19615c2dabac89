//! How a run tells its caller what it is doing: the engine never prints; it hands [`Event`]s to
//! a [`Report`], which a tool turns into progress lines (or ignores, as [`Silent`] does).

use std::path::Path;

/// What a run has to say while it runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// The run folder's run had stopped before its first checkpoint: it starts again from step 0.
    Restarting { out: &'a Path },
    /// Preference pairs longer than the model's context, left out.
    PairsLeftOut { pairs: usize, context: usize },
    /// Preference pairs that were not valid records, set aside (with skip_invalid).
    PairsSkipped { errors: &'a [wick_io::Error] },
    /// The reference model's log-probs, computed once before a DPO run.
    ReferenceProgress { done: usize, total: usize },
    /// Training is about to start.
    Begin(&'a Begin),
    /// A step with a non-finite loss or gradient norm was passed over without an update.
    Skipped {
        step: u64,
        what: &'a str,
        skipped: u64,
        limit: u64,
    },
    /// A step is done.
    Step(&'a StepReport),
}

/// What a run is about to do.
#[derive(Debug, Clone)]
pub struct Begin {
    pub task: &'static str,
    /// Trainable tensors.
    pub tensors: usize,
    /// Parameters in matrix products.
    pub params: usize,
    /// Train tokens in the shards (None: preference pairs).
    pub train_tokens: Option<u64>,
    pub batch_size: usize,
    pub seq_len: usize,
    pub grad_accum: usize,
    pub from_step: u64,
    pub max_steps: u64,
    /// How the examples or pairs are laid out (SFT, reward, DPO).
    pub layout: Option<String>,
}

/// One step's figures.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: u64,
    pub max_steps: u64,
    /// The step the run stops after (max_steps, or earlier when asked).
    pub stop_at: u64,
    pub loss: f64,
    pub lr: f64,
    pub tokens_per_s: f64,
    pub step_s: f64,
}

/// Where a run's events go.
pub trait Report {
    fn event(&mut self, event: Event<'_>);
}

/// A report that drops every event.
pub struct Silent;

impl Report for Silent {
    fn event(&mut self, _: Event<'_>) {}
}
