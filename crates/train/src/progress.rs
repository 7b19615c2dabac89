//! `train`'s stderr: the engine's events as progress lines (none with --quiet).

use std::path::Path;

use wick_io::Progress;
use wick_train::{Event, Report, Summary};

pub struct Stderr {
    quiet: bool,
    /// The step line, from the first step on.
    steps: Option<Progress>,
    /// DPO's reference pass.
    reference: Option<Progress>,
}

impl Stderr {
    pub fn new(quiet: bool) -> Stderr {
        Stderr {
            quiet,
            steps: None,
            reference: None,
        }
    }

    /// The summary line of a run that ended at its last step or at a signal.
    pub fn finish(&mut self, s: &Summary, out: &Path) {
        let mut progress = self
            .steps
            .take()
            .unwrap_or_else(|| Progress::new("train", self.quiet));
        let val = match (&s.val, s.val.and_then(|e| e.pairs)) {
            (Some(e), Some(p)) => format!(
                ", val loss {:.4}, val pairwise accuracy {:.3} (margin {:.3})",
                e.loss, p.accuracy, p.margin
            ),
            (Some(e), None) => format!(", val loss {:.4}", e.loss),
            (None, _) => String::new(),
        };
        progress.finish(|secs| {
            format!(
                "{} at step {} in {secs:.1}s{val}{}; weights in {}",
                if s.stop == wick_train::Stop::Interrupted {
                    format!("stopped ({})", wick_train::signal_name())
                } else {
                    "done".into()
                },
                s.step,
                if s.skipped > 0 {
                    format!(", {} non-finite steps skipped", s.skipped)
                } else {
                    String::new()
                },
                out.display()
            )
        });
    }
}

fn eta(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

impl Report for Stderr {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Step(r) => {
                let p = self
                    .steps
                    .get_or_insert_with(|| Progress::new("train", self.quiet));
                p.tick(|_| {
                    let left = (r.stop_at - r.step) as f64 * r.step_s;
                    format!(
                        "step {}/{}  loss {:.4}  lr {:.2e}  {:.0} tok/s  ETA {}",
                        r.step,
                        r.max_steps,
                        r.loss,
                        r.lr,
                        r.tokens_per_s,
                        eta(left)
                    )
                });
                return;
            }
            Event::ReferenceProgress { done, total } => {
                let p = self
                    .reference
                    .get_or_insert_with(|| Progress::new("train", self.quiet));
                p.tick(|_| format!("reference log-probs: {done}/{total} pairs"));
                return;
            }
            _ => {}
        }
        if self.quiet {
            return;
        }
        match event {
            Event::Restarting { out } => eprintln!(
                "train: {}: stopped before its first checkpoint; starting it again from step 0",
                out.display()
            ),
            Event::PairsLeftOut { pairs, context } => eprintln!(
                "train: left out {pairs} pairs longer than the model's context of {context} tokens"
            ),
            Event::PairsSkipped { errors } => {
                let mut skipped = wick_io::Skipped::new("train", self.quiet);
                errors.iter().for_each(|e| skipped.note(e));
                eprintln!("train: {} invalid pairs skipped", skipped.count);
            }
            Event::Begin(b) => {
                eprintln!(
                    "train: {} parameters ({} in matrix products), {}, batch {} x {} from step {} to {}",
                    b.tensors,
                    b.params,
                    match b.train_tokens {
                        Some(n) => format!("{n} train tokens"),
                        None => "preference pairs".into(),
                    },
                    match b.train_tokens {
                        Some(_) => format!("{}x{}", b.batch_size, b.seq_len),
                        None => format!("{} pairs", b.batch_size),
                    },
                    b.grad_accum,
                    b.from_step,
                    b.max_steps
                );
                if let Some(line) = &b.layout {
                    eprintln!("train: {}: {line}", b.task);
                }
                // Steps are timed from here, as the summary's seconds are.
                self.steps = Some(Progress::new("train", self.quiet));
            }
            Event::Skipped {
                step,
                what,
                skipped,
                limit,
            } => eprintln!(
                "train: step {step}: {what}; skipped without an update ({skipped} of --skip-nonfinite {limit})"
            ),
            Event::Step(_) | Event::ReferenceProgress { .. } => {}
        }
    }
}
