//! Checkpoints that resume exactly. A run directory holds:
//!
//! ```text
//! OUT/config.json, model.safetensors, tokenizer files   the latest weights, a Hugging Face folder
//! OUT/checkpoint/   config.json, model.safetensors, optimizer.safetensors, state.json
//! OUT/best/         the weights with the lowest validation loss so far (Hugging Face folder)
//! OUT/metrics.jsonl
//! ```
//!
//! A checkpoint is written whole into a hidden directory and swapped in by renames, so a
//! crash or Ctrl-C at any moment leaves the previous checkpoint readable; the top-level
//! weights are hard links to the checkpoint's files, not second copies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use wick_io::{Error, Result};
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
    /// Training wall time so far, seconds.
    pub elapsed_s: f64,
    /// The settings the run was started with (the resumed run reuses them).
    pub settings: serde_json::Value,
}

pub struct Checkpoint;

/// Tensors by name.
pub type Tensors = HashMap<String, Tensor>;

const DIR: &str = "checkpoint";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path.display(), e)
}

/// Replaces directory `dst` by the fully written `tmp`, keeping the old one until the new
/// one is in place.
fn swap_dir(tmp: &Path, dst: &Path) -> Result<()> {
    let old = dst.with_file_name(format!(
        ".{}.old",
        dst.file_name().unwrap().to_string_lossy()
    ));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    if dst.exists() {
        std::fs::rename(dst, &old).map_err(io(dst))?;
    }
    std::fs::rename(tmp, dst).map_err(io(dst))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

fn fresh_tmp(out: &Path, name: &str) -> Result<PathBuf> {
    let tmp = out.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    wick_io::create_dir_all(&tmp)?;
    Ok(tmp)
}

/// Puts `src` at `dst` by a hard link (a copy where links are not possible), atomically.
fn link_into_place(src: &Path, dst: &Path) -> Result<()> {
    let tmp = dst.with_extension("link.tmp");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(src, &tmp).is_err() {
        std::fs::copy(src, &tmp).map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, dst).map_err(io(dst))
}

/// Copies the tokenizer files that sit in `from` (if any) into `to`.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<()> {
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
    ] {
        let src = from.join(f);
        if src.is_file() && src != to.join(f) {
            let bytes = std::fs::read(&src).map_err(io(&src))?;
            wick_io::write_atomic(to.join(f), &bytes)?;
        }
    }
    Ok(())
}

/// The model's files into `dir`: a Hugging Face model folder, or PEFT's adapter files when the
/// model carries a LoRA adapter. Returns the names written.
fn save_weights(model: &Llama, dir: &Path, state: &TrainState) -> Result<[&'static str; 2]> {
    if model.adapter().is_some() {
        let base = state
            .settings
            .get("init")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        model.save_adapter(dir, base)?;
        Ok(["adapter_config.json", "adapter_model.safetensors"])
    } else {
        model.save(dir)?;
        Ok(["config.json", "model.safetensors"])
    }
}

impl Checkpoint {
    pub fn exists(out: &Path) -> bool {
        out.join(DIR).join("state.json").is_file()
            || out.join(".checkpoint.old/state.json").is_file()
    }

    /// Writes model, optimiser and state as `OUT/checkpoint`, then links the weights to
    /// the top level of `OUT`. A model with a LoRA adapter is written as the adapter alone
    /// (PEFT's files; the base stays where it was, named by the settings' "init").
    pub fn write(out: &Path, model: &Llama, opt: &AdamW, state: &TrainState) -> Result<()> {
        let tmp = fresh_tmp(out, DIR)?;
        let files = save_weights(model, &tmp, state)?;
        let moments = opt.state_tensors()?;
        wick_model::save_safetensors(&moments, &tmp.join("optimizer.safetensors"))?;
        let json = serde_json::to_string_pretty(state).expect("state serialises") + "\n";
        wick_io::write_atomic(tmp.join("state.json"), json.as_bytes())?;
        let dir = out.join(DIR);
        swap_dir(&tmp, &dir)?;
        for f in files {
            link_into_place(&dir.join(f), &out.join(f))?;
        }
        Ok(())
    }

    /// Writes the weights alone as a Hugging Face folder `OUT/NAME` (e.g. `best`), with the
    /// tokenizer files found in `OUT` (an adapter folder for a model with an adapter).
    pub fn write_model(out: &Path, name: &str, model: &Llama, state: &TrainState) -> Result<()> {
        let tmp = fresh_tmp(out, name)?;
        save_weights(model, &tmp, state)?;
        copy_tokenizer_files(out, &tmp)?;
        swap_dir(&tmp, &out.join(name))
    }

    /// Reads the checkpoint of `OUT`: weights by name, optimiser moments, state.
    pub fn read(out: &Path) -> Result<(Tensors, Tensors, TrainState)> {
        let mut dir = out.join(DIR);
        if !dir.join("state.json").is_file() {
            // A crash between the two renames of a swap leaves only the old copy.
            dir = out.join(".checkpoint.old");
        }
        let state_file = dir.join("state.json");
        let text = std::fs::read_to_string(&state_file).map_err(|e| {
            Error::msg(format!(
                "{}: no checkpoint to resume from ({e})",
                out.display()
            ))
        })?;
        let state: TrainState = serde_json::from_str(&text)
            .map_err(|e| Error::msg(format!("{}: {e}", state_file.display())))?;
        let load = |f: &str| {
            let p = dir.join(f);
            candle_core::safetensors::load(&p, &Device::Cpu)
                .map_err(|e| Error::msg(format!("{}: cannot read: {e}", p.display())))
        };
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
