//! [`Settings`]: everything that decides what a run computes. They are saved in the checkpoint
//! and in run.json so that a resumed run continues with exactly the same ones; on disk they
//! keep the flat layout of the first runs ([`Record`]), so that every run folder stays
//! resumable.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::task::{LoraConfig, Method, Task};
use crate::{AdamWConfig, Schedule, ScheduleKind};
use wick_model::Precision;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Record", try_from = "Record")]
pub struct Settings {
    pub task: Task,
    pub method: Method,
    /// The model training started from, absolute (None: a fresh model from a config). An
    /// adapter run's checkpoint holds only the adapter; this is its base.
    pub base: Option<PathBuf>,
    pub batch_size: usize,
    pub seq_len: usize,
    pub grad_accum: usize,
    pub max_steps: u64,
    pub schedule: Schedule,
    pub optimizer: AdamWConfig,
    /// Clip the global gradient norm to this (0: no clipping).
    pub grad_clip: f64,
    /// Evaluate every N steps and at the end (0: never).
    pub eval_interval: u64,
    pub eval_batches: usize,
    /// Checkpoint every N steps (0: only at the end).
    pub checkpoint_interval: u64,
    pub seed: u64,
    /// The products' precision (autocast); weights, moments and the loss stay in f32.
    pub precision: Precision,
    /// Recompute each decoder block in the backward pass instead of keeping its activations.
    pub grad_checkpoint: bool,
    /// The dtype the run's model folders (the top level at the end, best/) are saved in: "f32",
    /// "bf16" or "f16" ("auto" until the run starts: the initial checkpoint's). The checkpoint
    /// itself stays f32, so that a resume is exact.
    pub save_dtype: String,
}

impl Settings {
    /// The settings as the checkpoint's state records them.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("settings serialise")
    }
}

/// The settings as written to disk (state.json's "settings", run.json's "settings").
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    task: String,
    batch_size: usize,
    seq_len: usize,
    grad_accum: usize,
    max_steps: u64,
    lr: f64,
    min_lr: f64,
    warmup: u64,
    schedule: String,
    decay_steps: u64,
    weight_decay: f64,
    decay_all: bool,
    beta1: f64,
    beta2: f64,
    eps: f64,
    grad_clip: f64,
    eval_interval: u64,
    eval_batches: usize,
    checkpoint_interval: u64,
    seed: u64,
    #[serde(default)]
    lora: Option<LoraRecord>,
    #[serde(default)]
    init: Option<String>,
    #[serde(default)]
    houlsby: Option<usize>,
    #[serde(default = "yes")]
    packing: bool,
    #[serde(default)]
    pairs: Option<PairRecord>,
    // Written only when not the default, so that the records of f32 runs stay as they were.
    #[serde(default, skip_serializing_if = "is_f32")]
    precision: Precision,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    grad_checkpoint: bool,
    #[serde(default = "f32_name", skip_serializing_if = "is_f32_name")]
    save_dtype: String,
}

fn f32_name() -> String {
    "f32".into()
}

fn is_f32_name(s: &str) -> bool {
    s == "f32"
}

fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoraRecord {
    r: usize,
    alpha: f64,
    rslora: bool,
    targets: Vec<String>,
    #[serde(default)]
    dropout: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PairRecord {
    val: Option<String>,
    reference: Option<String>,
    beta: f64,
}

/// The beta a reward run's record carries (it has none; runs before the typed settings wrote
/// DPO's default there).
const UNUSED_BETA: f64 = 0.1;

fn path_string(p: &std::path::Path) -> String {
    p.display().to_string()
}

impl From<Settings> for Record {
    fn from(s: Settings) -> Record {
        let (lora, houlsby) = match &s.method {
            Method::Full => (None, None),
            Method::Lora(c) => (
                Some(LoraRecord {
                    r: c.r,
                    alpha: c.alpha,
                    rslora: c.rslora,
                    targets: c.targets.clone(),
                    dropout: c.dropout,
                }),
                None,
            ),
            Method::Bottleneck { reduction } => (None, Some(*reduction)),
        };
        let pairs = match &s.task {
            Task::Reward { val } => Some(PairRecord {
                val: val.as_deref().map(path_string),
                reference: None,
                beta: UNUSED_BETA,
            }),
            Task::Dpo {
                beta,
                reference,
                val,
            } => Some(PairRecord {
                val: val.as_deref().map(path_string),
                reference: Some(path_string(reference)),
                beta: *beta,
            }),
            _ => None,
        };
        Record {
            task: s.task.name().into(),
            batch_size: s.batch_size,
            seq_len: s.seq_len,
            grad_accum: s.grad_accum,
            max_steps: s.max_steps,
            lr: s.schedule.lr,
            min_lr: s.schedule.min_lr,
            warmup: s.schedule.warmup,
            schedule: match s.schedule.kind {
                ScheduleKind::Cosine => "cosine",
                ScheduleKind::Linear => "linear",
                ScheduleKind::Constant => "constant",
            }
            .into(),
            decay_steps: s.schedule.decay_steps,
            weight_decay: s.optimizer.weight_decay,
            decay_all: s.optimizer.decay_all,
            beta1: s.optimizer.beta1,
            beta2: s.optimizer.beta2,
            eps: s.optimizer.eps,
            grad_clip: s.grad_clip,
            eval_interval: s.eval_interval,
            eval_batches: s.eval_batches,
            checkpoint_interval: s.checkpoint_interval,
            seed: s.seed,
            lora,
            init: s.base.as_deref().map(path_string),
            houlsby,
            packing: s.task.packing(),
            pairs,
            precision: s.precision,
            grad_checkpoint: s.grad_checkpoint,
            save_dtype: s.save_dtype,
        }
    }
}

impl TryFrom<Record> for Settings {
    type Error = String;

    fn try_from(r: Record) -> Result<Settings, String> {
        let val =
            |p: &Option<PairRecord>| p.as_ref().and_then(|p| p.val.clone()).map(PathBuf::from);
        let task = match r.task.as_str() {
            "pretrain" => Task::Pretrain,
            "sft" => Task::Sft { packing: r.packing },
            "reward" => Task::Reward { val: val(&r.pairs) },
            "dpo" => Task::Dpo {
                beta: r.pairs.as_ref().map_or(UNUSED_BETA, |p| p.beta),
                reference: r
                    .pairs
                    .as_ref()
                    .and_then(|p| p.reference.clone())
                    .map(PathBuf::from)
                    .ok_or("a dpo run that names no reference model")?,
                val: val(&r.pairs),
            },
            other => return Err(format!("unknown task {other:?}")),
        };
        let method = match (r.lora, r.houlsby) {
            (None, None) => Method::Full,
            (Some(l), None) => Method::Lora(LoraConfig {
                r: l.r,
                alpha: l.alpha,
                rslora: l.rslora,
                dropout: l.dropout,
                targets: l.targets,
            }),
            (None, Some(reduction)) => Method::Bottleneck { reduction },
            (Some(_), Some(_)) => return Err("both a LoRA and a bottleneck adapter".into()),
        };
        let kind = match r.schedule.as_str() {
            "cosine" => ScheduleKind::Cosine,
            "linear" => ScheduleKind::Linear,
            "constant" => ScheduleKind::Constant,
            other => {
                return Err(format!(
                    "unknown schedule {other:?} (cosine, linear, constant)"
                ))
            }
        };
        Ok(Settings {
            task,
            method,
            base: r.init.map(PathBuf::from),
            batch_size: r.batch_size,
            seq_len: r.seq_len,
            grad_accum: r.grad_accum,
            max_steps: r.max_steps,
            schedule: Schedule {
                kind,
                lr: r.lr,
                min_lr: r.min_lr,
                warmup: r.warmup,
                decay_steps: r.decay_steps,
            },
            optimizer: AdamWConfig {
                beta1: r.beta1,
                beta2: r.beta2,
                eps: r.eps,
                weight_decay: r.weight_decay,
                decay_all: r.decay_all,
            },
            grad_clip: r.grad_clip,
            eval_interval: r.eval_interval,
            eval_batches: r.eval_batches,
            checkpoint_interval: r.checkpoint_interval,
            seed: r.seed,
            precision: r.precision,
            grad_checkpoint: r.grad_checkpoint,
            save_dtype: r.save_dtype,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// state.json's settings as a run before the typed settings wrote them (a DPO LoRA run).
    const OLD: &str = r#"{"task":"dpo","batch_size":4,"seq_len":64,"grad_accum":1,"max_steps":10,
        "lr":2e-5,"min_lr":1e-6,"warmup":1,"schedule":"cosine","decay_steps":10,"weight_decay":0.0,
        "decay_all":false,"beta1":0.9,"beta2":0.95,"eps":1e-8,"grad_clip":1.0,"eval_interval":2,
        "eval_batches":20,"checkpoint_interval":2,"seed":1337,
        "lora":{"r":8,"alpha":16.0,"rslora":false,"targets":["q_proj","v_proj"],"dropout":0.0},
        "init":"/base","houlsby":null,"packing":true,
        "pairs":{"val":null,"reference":"/ref","beta":0.25}}"#;

    #[test]
    fn old_records_read_as_typed_settings_and_write_back_the_same() {
        let s: Settings = serde_json::from_str(OLD).unwrap();
        assert!(matches!(&s.task, Task::Dpo { beta, reference, val: None }
            if *beta == 0.25 && reference == &PathBuf::from("/ref")));
        assert!(matches!(&s.method, Method::Lora(c) if c.r == 8 && c.targets.len() == 2));
        assert_eq!(s.base, Some(PathBuf::from("/base")));
        let old: serde_json::Value = serde_json::from_str(OLD).unwrap();
        assert_eq!(s.to_value(), old);
    }

    #[test]
    fn records_without_the_later_fields_still_read() {
        let mut v: serde_json::Value = serde_json::from_str(OLD).unwrap();
        let m = v.as_object_mut().unwrap();
        for k in ["lora", "init", "houlsby", "packing", "pairs"] {
            m.remove(k);
        }
        m.insert("task".into(), "pretrain".into());
        let s: Settings = serde_json::from_value(v).unwrap();
        assert_eq!(
            (s.task, s.method, s.base),
            (Task::Pretrain, Method::Full, None)
        );
    }
}
