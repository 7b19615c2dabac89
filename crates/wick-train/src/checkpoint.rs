//! Checkpoints that resume exactly. A run directory holds:
//!
//! ```text
//! OUT/config.json, model.safetensors, tokenizer files   the latest weights, a Hugging Face folder
//! OUT/checkpoint/   config.json, model.safetensors, optimizer.safetensors, state.json
//! OUT/best/         the weights with the lowest validation loss so far (Hugging Face folder)
//! OUT/metrics.jsonl
//! OUT/run.json      how the run started, so that a run killed before its first checkpoint resumes
//! OUT/.wick, .lock  wick's marker (a training run) and the lock held while a process trains in it
//! ```
//!
//! A checkpoint is written whole into a hidden sibling folder, synced, and swapped in by one
//! atomic exchange ([`wick_io::OutDir`]), so a kill or a power cut at any moment leaves the
//! previous checkpoint or the new one, never a mixture. The top-level weights are hard links to
//! the checkpoint's files, not second copies; [`Checkpoint::recover`] relinks them when a kill
//! came between the swap and the links.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use wick_io::{Error, Kind, OutDir, Result};
use wick_model::Llama;

use crate::AdamW;

/// Everything besides weights and moments that an exact resume needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Optimiser steps completed.
    pub step: u64,
    /// Training tokens consumed.
    pub tokens: u64,
    /// The data sampler's generator state.
    pub rng: u64,
    /// Where an epoch-based run (SFT) is in its data: the epoch and the next row of its plan.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub row: u64,
    pub best_val_loss: Option<f64>,
    /// Steps whose loss or gradient norm was not finite, skipped without an update
    /// (when the run allows skipping them).
    #[serde(default)]
    pub skipped: u64,
    /// fp16 runs: steps skipped because a scaled gradient overflowed (the loss scaler's
    /// business, not counted against --skip-nonfinite).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overflow_skipped: u64,
    /// fp16 runs: the loss scaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<crate::LossScaler>,
    /// Training wall time so far, seconds.
    pub elapsed_s: f64,
    /// The settings the run was started with (the resumed run reuses them).
    pub settings: serde_json::Value,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TrainState {
    /// Optimiser updates taken (AdamW's bias correction counts these, not steps).
    pub fn updates(&self) -> u64 {
        self.step - self.skipped - self.overflow_skipped
    }
}

pub struct Checkpoint;

/// Tensors by name.
pub type Tensors = HashMap<String, Tensor>;

const DIR: &str = "checkpoint";
const TOOL: &str = "train";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path.display(), e)
}

/// Puts `src` at `dst` by a hard link (a copy where links are not possible), atomically.
fn link_into_place(src: &Path, dst: &Path) -> Result<()> {
    wick_io::clean_stale(dst)?;
    let tmp = wick_io::temp_sibling(dst, "tmp")?;
    wick_io::fault::point(format_args!("link {}", tmp.display()));
    if std::fs::hard_link(src, &tmp).is_err() {
        std::fs::copy(src, &tmp).map_err(io(&tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
    }
    wick_io::rename(&tmp, dst)
}

/// Writes a trained model into `dir`: its adapter files naming `base` when the model carries an
/// adapter (PEFT's for LoRA, wick's for a bottleneck adapter), else a Hugging Face model
/// folder. Returns the names written.
pub fn save_model(model: &Llama, dir: &Path, base: &str) -> Result<[&'static str; 2]> {
    save_model_as(model, dir, base, DType::F32)
}

/// The same with a whole model's tensors in `dtype` (an adapter is saved in f32).
pub fn save_model_as(
    model: &Llama,
    dir: &Path,
    base: &str,
    dtype: DType,
) -> Result<[&'static str; 2]> {
    if model.adapter().is_some() {
        model.save_adapter(dir, base)?;
        Ok(["adapter_config.json", "adapter_model.safetensors"])
    } else {
        model.save_as(dir, dtype)?;
        Ok(["config.json", "model.safetensors"])
    }
}

/// The model's files into `dir`, an adapter naming the run's base; in `dtype`.
fn save_weights(
    model: &Llama,
    dir: &Path,
    state: &TrainState,
    dtype: DType,
) -> Result<[&'static str; 2]> {
    let base = state
        .settings
        .get("init")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    save_model_as(model, dir, base, dtype)
}

/// The run's save dtype (settings' "save_dtype"; f32 when absent).
fn save_dtype(state: &TrainState) -> Result<DType> {
    let name = state
        .settings
        .get("save_dtype")
        .and_then(|v| v.as_str())
        .unwrap_or("f32");
    Ok(wick_model::precision::parse_dtype(name)?.unwrap_or(DType::F32))
}

/// Writes the optimiser's moments as safetensors (`exp_avg.NAME`, `exp_avg_sq.NAME`).
pub fn save_moments(opt: &AdamW, path: &Path) -> Result<()> {
    wick_model::save_safetensors(&opt.state_tensors()?, path)
}

/// Reads a safetensors file of the run's (weights or moments) onto the CPU.
pub fn read_tensors(path: &Path) -> Result<Tensors> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::msg(format!("{}: cannot read: {e}", path.display())))
}

impl Checkpoint {
    pub fn exists(out: &Path) -> bool {
        out.join(DIR).join("state.json").is_file()
    }

    /// Puts a run folder back in order after a kill: what dead runs left half-written beside
    /// the checkpoint and best/ goes (or back into place), a folder written before markers
    /// existed gets its marker, and the top-level weights are relinked to the checkpoint's.
    pub fn recover(out: &Path) -> Result<()> {
        for name in [DIR, "best"] {
            let dir = out.join(name);
            wick_io::clean_stale(&dir)?;
            if dir.is_dir() && wick_io::Marker::read(&dir).is_none() {
                let kind = if name == DIR {
                    wick_io::Kind::Checkpoint
                } else {
                    wick_io::Kind::Model
                };
                let files = std::fs::read_dir(&dir)
                    .map_err(io(&dir))?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                wick_io::Marker {
                    kind,
                    tool: TOOL.into(),
                    files: Some(files),
                }
                .write(&dir)?;
            }
        }
        let dir = out.join(DIR);
        if !dir.join("state.json").is_file() {
            return Ok(());
        }
        let files = if dir.join("model.safetensors").is_file() {
            ["config.json", "model.safetensors"]
        } else {
            ["adapter_config.json", "adapter_model.safetensors"]
        };
        for f in files {
            let (src, dst) = (dir.join(f), out.join(f));
            if !same_file(&src, &dst) {
                link_into_place(&src, &dst)?;
            }
        }
        wick_io::sync_dir(out)
    }

    /// Writes model, optimiser and state as `OUT/checkpoint`, then links the weights to
    /// the top level of `OUT`. A model with a LoRA adapter is written as the adapter alone
    /// (PEFT's files; the base stays where it was, named by the settings' "init").
    /// Non-finite weights are refused: a checkpoint is always one to go back to.
    pub fn write(out: &Path, model: &Llama, opt: &AdamW, state: &TrainState) -> Result<()> {
        if let Some(what) = opt.nonfinite()? {
            return Err(Error::msg(format!("{what}; not checkpointed")));
        }
        let dir = OutDir::create(&out.join(DIR), Kind::Checkpoint, TOOL, "checkpoint")?;
        // Always f32: the exact weights a resume continues from.
        let files = save_weights(model, dir.path(), state, DType::F32)?;
        save_moments(opt, &dir.path().join("optimizer.safetensors"))?;
        let json = serde_json::to_string_pretty(state).expect("state serialises") + "\n";
        wick_io::write_atomic(dir.path().join("state.json"), json.as_bytes())?;
        dir.commit()?;
        let dir = out.join(DIR);
        for f in files {
            link_into_place(&dir.join(f), &out.join(f))?;
        }
        wick_io::sync_dir(out)
    }

    /// Writes the weights alone as a Hugging Face folder `OUT/NAME` (e.g. `best`), with the
    /// tokenizer files found in `OUT` (an adapter folder for a model with an adapter).
    pub fn write_model(out: &Path, name: &str, model: &Llama, state: &TrainState) -> Result<()> {
        let dir = OutDir::create(&out.join(name), Kind::Model, TOOL, name)?;
        save_weights(model, dir.path(), state, save_dtype(state)?)?;
        wick_text::copy_tokenizer_files(out, dir.path())?;
        dir.commit()
    }

    /// Reads the checkpoint of `OUT`: weights by name, optimiser moments, state.
    pub fn read(out: &Path) -> Result<(Tensors, Tensors, TrainState)> {
        let dir = out.join(DIR);
        let state_file = dir.join("state.json");
        let text = std::fs::read_to_string(&state_file).map_err(|e| {
            Error::msg(format!(
                "{}: no checkpoint to resume from ({e})",
                out.display()
            ))
        })?;
        let state: TrainState = serde_json::from_str(&text)
            .map_err(|e| Error::msg(format!("{}: {e}", state_file.display())))?;
        let load = |f: &str| read_tensors(&dir.join(f));
        let weights = if dir.join("model.safetensors").is_file() {
            "model.safetensors"
        } else {
            "adapter_model.safetensors"
        };
        Ok((load(weights)?, load("optimizer.safetensors")?, state))
    }

    pub fn dir(out: &Path) -> PathBuf {
        out.join(DIR)
    }
}

/// Whether two paths are one file (the same inode).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}
