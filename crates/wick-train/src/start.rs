//! Where a run's weights come from ([`Start`], [`Origin`]) and everything read before the
//! first step: the model (fresh, from a folder, or from the checkpoint), its adapter, the data
//! checked against it, the preference pairs and DPO's reference log-probs, and run.json, the
//! record of how a run started.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wick_io::{Error, Result};
use wick_model::{Config, Llama};
use wick_shard::ShardSet;
use xxhash_rust::xxh3::xxh3_128;

use crate::checkpoint::Tensors;
use crate::pairs::{self, Objective, PairSet};
use crate::report::{Event, Report};
use crate::settings::Settings;
use crate::task::{Method, Task};
use crate::{presets, Checkpoint, TrainState};

/// Where a new run's weights come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A config.json path or a preset name, freshly initialised with the seed (a preset takes
    /// its vocabulary size from the shards' manifest).
    Config(String),
    /// A resolved config, freshly initialised with the seed.
    Fresh(Box<Config>),
    /// A Hugging Face model folder; with `adapter`, an adapter folder on it to continue.
    Model {
        dir: PathBuf,
        adapter: Option<PathBuf>,
    },
}

/// A new run, or the continuation of the one in the run folder.
#[derive(Debug, Clone)]
pub enum Start {
    New {
        settings: Box<Settings>,
        origin: Origin,
    },
    /// From the run folder's checkpoint, with its settings; `max_steps`: a new last step (the
    /// schedule is kept; past its end the rate stays at min_lr).
    Resume {
        max_steps: Option<u64>,
        /// Turn gradient checkpointing on (it changes no result, only memory and time).
        grad_checkpoint: bool,
    },
}

/// How a run started (`OUT/run.json`): what a resume needs to start it again when it was
/// stopped before its first checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    settings: Settings,
    /// A from-scratch run's resolved config.json (None: it started from settings' base).
    config: Option<serde_json::Value>,
    /// The adapter folder it continued, absolute.
    adapter: Option<String>,
}

const RUN_RECORD: &str = "run.json";

impl RunRecord {
    pub(crate) fn new(settings: &Settings, model: &Llama, origin: &Origin) -> RunRecord {
        let adapter = match origin {
            Origin::Model {
                adapter: Some(a), ..
            } => Some(
                std::fs::canonicalize(a)
                    .unwrap_or_else(|_| a.clone())
                    .display()
                    .to_string(),
            ),
            _ => None,
        };
        RunRecord {
            settings: settings.clone(),
            config: matches!(origin, Origin::Config(_) | Origin::Fresh(_)).then(|| {
                serde_json::from_str(&model.config.to_json()).expect("our own config JSON")
            }),
            adapter,
        }
    }

    pub(crate) fn write(&self, out: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("serialises") + "\n";
        wick_io::write_atomic(out.join(RUN_RECORD), json.as_bytes())
    }

    pub(crate) fn read(out: &Path) -> Result<RunRecord> {
        let p = out.join(RUN_RECORD);
        let text = std::fs::read_to_string(&p).map_err(|_| RunRecord::not_started(out))?;
        serde_json::from_str(&text).map_err(|e| Error::msg(format!("{}: {e}", p.display())))
    }

    pub(crate) fn not_started(out: &Path) -> Error {
        Error::msg(format!(
            "{}: no checkpoint to resume from: the run had not started (no {RUN_RECORD}); start it again with the command that made it",
            out.display()
        ))
    }

    /// The start it records.
    pub(crate) fn start(self) -> Result<(Settings, Origin)> {
        let origin = match (&self.config, &self.settings.base) {
            (Some(c), _) => Origin::Fresh(Box::new(
                Config::from_json(&c.to_string()).map_err(Error::msg)?,
            )),
            (None, Some(dir)) => Origin::Model {
                dir: dir.clone(),
                adapter: self.adapter.map(PathBuf::from),
            },
            (None, None) => {
                return Err(Error::msg(format!(
                    "{RUN_RECORD}: names neither a config nor a base model folder"
                )))
            }
        };
        Ok((self.settings, origin))
    }
}

/// Loads a config given as a preset name or a config.json path.
pub fn config_from(spec: &str, vocab: usize) -> Result<Config> {
    if let Some(text) = presets::config_json(spec, vocab) {
        return Config::from_json(&text).map_err(Error::msg);
    }
    let path = Path::new(spec);
    if !path.exists() {
        return Err(Error::msg(format!(
            "{spec}: neither a file nor a preset ({})",
            presets::NAMES.join(", ")
        )));
    }
    Config::load(path)
}

/// A reward run turns its starting LM into a classifier with one label (unless it is one).
fn make_classifier(s: &Settings, model: &mut Llama) -> Result<()> {
    if !matches!(s.task, Task::Reward { .. }) {
        return Ok(());
    }
    match model.config.num_labels() {
        Some(1) => return Ok(()),
        Some(n) => {
            return Err(Error::msg(format!(
                "the starting model is a classifier with {n} labels; a reward model has one"
            )))
        }
        None => {}
    }
    let pad = model
        .config
        .pad_token_id
        .or(model.config.eos_token_ids.first().copied())
        .ok_or_else(|| {
            Error::msg("the starting model's config.json names neither a pad_token_id nor an eos_token_id: a reward model needs a pad id")
        })?;
    model.into_classifier(1, pad, s.seed)
}

/// Puts a fresh adapter of the settings' kind on the base, seeded.
fn add_adapter(s: &Settings, model: &mut Llama) -> Result<()> {
    match &s.method {
        Method::Full => {}
        Method::Lora(c) => model.add_lora(c, s.seed)?,
        Method::Bottleneck { reduction } => {
            let c = wick_model::BottleneckConfig::new(model.config.hidden_size, *reduction);
            model.add_bottleneck(&c, s.seed)?;
        }
    }
    Ok(())
}

/// The model of a resumed run, from its checkpoint's weights (an adapter run's weights are the
/// adapter; its base is reloaded from where the settings say).
pub(crate) fn resumed_model(out: &Path, s: &Settings, weights: &Tensors) -> Result<Llama> {
    match &s.base {
        Some(base) if s.method.trains_adapter() => {
            let mut model =
                Llama::load(base).map_err(|e| e.context("the adapter run's base model"))?;
            make_classifier(s, &mut model)?;
            add_adapter(s, &mut model)?;
            model.set_adapter_tensors(weights)?;
            Ok(model)
        }
        _ => {
            let mut model = Llama::load(&Checkpoint::dir(out))?;
            model.set_tensors(weights)?;
            Ok(model)
        }
    }
}

/// The model of a new run.
pub(crate) fn new_model(s: &Settings, origin: &Origin, data: &Path) -> Result<Llama> {
    match origin {
        Origin::Model { dir, adapter } => {
            let mut model = Llama::load(dir)?;
            make_classifier(s, &mut model)?;
            match adapter {
                Some(a) => model.load_adapter(a).map_err(|e| e.context(a.display()))?,
                None => add_adapter(s, &mut model)?,
            }
            Ok(model)
        }
        Origin::Config(_) | Origin::Fresh(_) => {
            if s.method.trains_adapter() {
                return Err(Error::msg(
                    "an adapter trains on a base model: start from a model folder, not a config",
                ));
            }
            if s.task.reads_pairs() {
                return Err(Error::msg(format!(
                    "a {} run starts from a trained model folder, not a config",
                    s.task.name()
                )));
            }
            let set = ShardSet::open(data)?;
            let vocab = set.manifest.as_ref().map(|m| m.vocab_size).unwrap_or(0);
            let mut config = match origin {
                Origin::Fresh(c) => (**c).clone(),
                Origin::Config(spec) => config_from(spec, vocab)?,
                Origin::Model { .. } => unreachable!("a fresh start"),
            };
            if let Some(m) = &set.manifest {
                if config.eos_token_ids.is_empty() {
                    config.eos_token_ids = vec![m.eos_id];
                }
            }
            Llama::init(config, s.seed)
        }
    }
}

/// The state of a run at step 0.
pub(crate) fn first_state(s: &Settings) -> TrainState {
    TrainState {
        step: 0,
        tokens: 0,
        rng: 0,
        epoch: 0,
        row: 0,
        best_val_loss: None,
        skipped: 0,
        overflow_skipped: 0,
        loss_scaler: (s.precision == wick_model::Precision::F16).then(crate::LossScaler::new),
        elapsed_s: 0.0,
        settings: s.to_value(),
    }
}

/// The checks that must pass before any training on shards starts.
pub(crate) fn check_compatible(
    model: &Config,
    set: &ShardSet,
    s: &Settings,
    base: Option<&Path>,
) -> Result<()> {
    let data = set.dir.display();
    if let Some(m) = &set.manifest {
        if m.vocab_size > model.vocab_size {
            return Err(Error::msg(format!(
                "{data}: the shards' tokenizer has {} tokens but the model's vocabulary is {}",
                m.vocab_size, model.vocab_size
            )));
        }
        if let Some(dir) = base {
            let tok = dir.join("tokenizer.json");
            if let Ok(bytes) = std::fs::read(&tok) {
                let hash = format!("{:032x}", xxh3_128(&bytes));
                if hash != m.tokenizer.xxh3_128 {
                    return Err(Error::msg(format!(
                        "{}: not the tokenizer the shards in {data} were made with (hash {hash}, manifest {})",
                        tok.display(),
                        m.tokenizer.xxh3_128
                    )));
                }
            }
        }
    }
    // Every id must index an embedding (llm.c shards carry no vocabulary; a manifest can lie).
    set.check_ids(model.vocab_size)?;
    if s.seq_len > model.max_position_embeddings {
        return Err(Error::msg(format!(
            "the sequence length {} is longer than the model's context (max_position_embeddings {})",
            s.seq_len, model.max_position_embeddings
        )));
    }
    Ok(())
}

/// The frozen reference model of DPO or PPO: it must score the same tokens as the policy.
pub fn load_reference(dir: &Path, policy: &Config) -> Result<Llama> {
    let reference = Llama::load(dir)
        .map_err(|e| e.context(format!("the reference model {}", dir.display())))?;
    if reference.config.vocab_size != policy.vocab_size {
        return Err(Error::msg(format!(
            "the reference model {}: its vocabulary ({}) differs from the policy's ({})",
            dir.display(),
            reference.config.vocab_size,
            policy.vocab_size
        )));
    }
    Ok(reference)
}

/// Reads a reward or DPO run's pairs with the tokenizer in `tok_dir` (the starting model's,
/// or the run's own on resume), and for DPO computes the reference model's log-probs of every
/// response once.
pub(crate) fn load_pairs(
    data: &Path,
    s: &Settings,
    model: &Llama,
    tok_dir: &Path,
    skip_invalid: bool,
    report: &mut dyn Report,
) -> Result<PairSet> {
    let tok = wick_text::Tok::load(tok_dir)?;
    let context = model.config.max_position_embeddings;
    let objective = match &s.task {
        Task::Dpo { beta, .. } => Objective::Dpo { beta: *beta },
        _ => Objective::Reward,
    };
    let dpo = matches!(objective, Objective::Dpo { .. });
    let prefix = if dpo {
        wick_model::doc_prefix(&model.config, &tok)
    } else {
        Vec::new()
    };
    let mut skipped = Vec::new();
    let (mut train, mut val, too_long) = pairs::load(
        data,
        s.task.val_pairs(),
        &tok,
        &prefix,
        context,
        skip_invalid.then_some(&mut skipped),
    )?;
    if !skipped.is_empty() {
        report.event(Event::PairsSkipped { errors: &skipped });
    }
    if too_long > 0 {
        report.event(Event::PairsLeftOut {
            pairs: too_long,
            context,
        });
    }
    let pad = match objective {
        Objective::Reward => model.config.pad_token_id.unwrap_or(0),
        Objective::Dpo { .. } => tok.eos_id.unwrap_or(0),
    };
    if let Task::Dpo { reference, .. } = &s.task {
        let mut reference = load_reference(reference, &model.config)?;
        reference.to_device(&model.device())?;
        let total = train.len() + val.len();
        let mut done = 0;
        for set in [&mut train, &mut val] {
            pairs::set_reference(&reference, set, pad, s.batch_size, |n| {
                report.event(Event::ReferenceProgress {
                    done: done + n,
                    total,
                });
            })?;
            done += set.len();
        }
    }
    Ok(PairSet {
        train,
        val,
        pad,
        objective,
    })
}
