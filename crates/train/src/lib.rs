//! `train --task pretrain`: next-token prediction on random windows of a shard directory,
//! with AdamW, warmup + cosine decay, gradient accumulation and clipping, periodic
//! validation, checkpoints, and an exact resume.

pub mod data;
pub mod pairs;
pub mod presets;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use wick_io::{Error, Progress, Result};
use wick_model::adapter::LoraConfig;
use wick_model::{Config, HoulsbyConfig, Llama};
use wick_shard::{ShardSet, Split};

use crate::data::{val_loss, Corpus, Data, Eval};
use crate::pairs::{Objective, PairSet};
use wick_io::{Kind, RunDir};
use wick_train::{
    install_ctrl_c, interrupted, AdamW, AdamWConfig, Checkpoint, MetricsLog, Schedule,
    ScheduleKind, TrainState,
};

/// Everything that decides what a run computes. Saved in the checkpoint so that `--resume`
/// continues with exactly the same settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub task: String,
    pub batch_size: usize,
    pub seq_len: usize,
    pub grad_accum: usize,
    pub max_steps: u64,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup: u64,
    pub schedule: String,
    pub decay_steps: u64,
    pub weight_decay: f64,
    pub decay_all: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub grad_clip: f64,
    pub eval_interval: u64,
    pub eval_batches: usize,
    pub checkpoint_interval: u64,
    pub seed: u64,
    /// Some: only a LoRA adapter on a frozen base trains (`--method lora`); None: every weight.
    #[serde(default)]
    pub lora: Option<LoraSettings>,
    /// The base folder (--init), absolute: a LoRA run's checkpoint holds only the adapter.
    #[serde(default)]
    pub init: Option<String>,
    /// Some(reduction): Houlsby bottleneck adapters (hidden / reduction wide) train on a
    /// frozen base (`--method adapter`).
    #[serde(default)]
    pub houlsby: Option<usize>,
    /// SFT: several examples per row (block-diagonal attention) rather than one, padded.
    #[serde(default = "yes")]
    pub packing: bool,
    /// Reward and DPO runs: where the pairs come from and DPO's settings.
    #[serde(default)]
    pub pairs: Option<PairSettings>,
}

/// `--task reward | dpo`'s settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PairSettings {
    /// Val pairs (JSONL); None: every 20th pair of --data.
    pub val: Option<String>,
    /// DPO: the frozen reference model's folder, absolute.
    pub reference: Option<String>,
    /// DPO's beta.
    pub beta: f64,
}

fn yes() -> bool {
    true
}

impl Settings {
    /// True when only an adapter trains (LoRA or Houlsby).
    pub fn trains_adapter(&self) -> bool {
        self.lora.is_some() || self.houlsby.is_some()
    }

    fn objective(&self) -> Option<Objective> {
        match self.task.as_str() {
            "reward" => Some(Objective::Reward),
            "dpo" => Some(Objective::Dpo {
                beta: self.pairs.as_ref().map_or(0.1, |p| p.beta),
            }),
            _ => None,
        }
    }

    /// A reward run turns its starting LM into a classifier with one label (unless it is one).
    fn make_classifier(&self, model: &mut Llama) -> Result<()> {
        if self.task != "reward" {
            return Ok(());
        }
        match model.config.num_labels() {
            Some(1) => return Ok(()),
            Some(n) => {
                return Err(Error::msg(format!(
                    "--init is a classifier with {n} labels; a reward model has one"
                )))
            }
            None => {}
        }
        let pad = model
            .config
            .pad_token_id
            .or(model.config.eos_token_ids.first().copied())
            .ok_or_else(|| {
                Error::msg("the --init model's config.json names neither a pad_token_id nor an eos_token_id: a reward model needs a pad id")
            })?;
        model.into_classifier(1, pad, self.seed)
    }

    /// Puts a fresh adapter of the configured kind on the base, seeded.
    fn add_adapter(&self, model: &mut Llama) -> Result<()> {
        if let Some(lora) = &self.lora {
            model.add_adapter(&lora.config(), self.seed)?;
        }
        if let Some(reduction) = self.houlsby {
            let c = HoulsbyConfig::new(model.config.hidden_size, reduction);
            model.add_houlsby(&c, self.seed)?;
        }
        Ok(())
    }
}

/// `--method lora`'s settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoraSettings {
    pub r: usize,
    pub alpha: f64,
    pub rslora: bool,
    pub targets: Vec<String>,
    #[serde(default)]
    pub dropout: f64,
}

impl LoraSettings {
    pub fn config(&self) -> LoraConfig {
        LoraConfig {
            r: self.r,
            alpha: self.alpha,
            rslora: self.rslora,
            dropout: self.dropout,
            targets: self.targets.clone(),
        }
    }
}

/// Where the starting weights come from.
pub enum Start {
    /// A config file or preset name, freshly initialised with the seed.
    Config(String),
    /// A resolved config, freshly initialised with the seed (a restarted run's recorded start).
    Fresh(Box<Config>),
    /// A Hugging Face folder to continue training.
    Init(PathBuf),
    /// The checkpoint in the output directory.
    Resume,
}

pub struct Run {
    pub settings: Settings,
    /// An adapter folder to continue (with Start::Init: its base).
    pub adapter: Option<PathBuf>,
    pub start: Start,
    pub data: PathBuf,
    pub out: PathBuf,
    /// Stop (with a checkpoint) after this step even if max_steps is further.
    pub stop_at: Option<u64>,
    /// On resume: a new last step (the schedule is kept; past its end the rate stays at
    /// min_lr).
    pub max_steps: Option<u64>,
    /// How many steps with a non-finite loss or gradient norm the run may skip in all before
    /// it stops (0: stop at the first).
    pub skip_nonfinite: u64,
    pub quiet: bool,
}

/// How a run started (`OUT/run.json`): what `--resume` needs to start it again when it was
/// stopped before its first checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunRecord {
    settings: Settings,
    /// A from-scratch run's resolved config.json (None: it started from settings.init).
    config: Option<serde_json::Value>,
    /// The adapter folder it continued, absolute.
    adapter: Option<String>,
}

const RUN_RECORD: &str = "run.json";

impl RunRecord {
    fn write(&self, out: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("serialises") + "\n";
        wick_io::write_atomic(out.join(RUN_RECORD), json.as_bytes())
    }

    fn read(out: &Path) -> Result<RunRecord> {
        let p = out.join(RUN_RECORD);
        let text = std::fs::read_to_string(&p).map_err(|_| RunRecord::not_started(out))?;
        serde_json::from_str(&text).map_err(|e| Error::msg(format!("{}: {e}", p.display())))
    }

    fn not_started(out: &Path) -> Error {
        Error::msg(format!(
            "{}: no checkpoint to resume from: the run had not started (no {RUN_RECORD}); start it again with the command that made it",
            out.display()
        ))
    }

    /// The start it records.
    fn start(&self) -> Result<Start> {
        match (&self.config, &self.settings.init) {
            (Some(c), _) => Ok(Start::Fresh(Box::new(
                Config::from_json(&c.to_string()).map_err(Error::msg)?,
            ))),
            (None, Some(dir)) => Ok(Start::Init(PathBuf::from(dir))),
            (None, None) => Err(Error::msg(format!(
                "{RUN_RECORD}: names neither a config nor an --init folder"
            ))),
        }
    }
}

use wick_model::candle_error as ce;

/// Loads a config given as a preset name or a config.json path.
pub fn config_from(spec: &str, vocab: usize) -> Result<Config> {
    if let Some(text) = presets::config_json(spec, vocab) {
        return Config::from_json(&text).map_err(Error::msg);
    }
    let path = Path::new(spec);
    if !path.exists() {
        return Err(Error::msg(format!(
            "--config {spec}: neither a file nor a preset ({})",
            presets::NAMES.join(", ")
        )));
    }
    Config::load(path)
}

/// The checks that must pass before any training starts.
fn check_compatible(
    model: &Config,
    set: &ShardSet,
    settings: &Settings,
    init: Option<&Path>,
) -> Result<()> {
    let data = set.dir.display();
    if let Some(m) = &set.manifest {
        if m.vocab_size > model.vocab_size {
            return Err(Error::msg(format!(
                "{data}: the shards' tokenizer has {} tokens but the model's vocabulary is {}",
                m.vocab_size, model.vocab_size
            )));
        }
        if let Some(dir) = init {
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
    if settings.seq_len > model.max_position_embeddings {
        return Err(Error::msg(format!(
            "--seq-len {} is longer than the model's context (max_position_embeddings {})",
            settings.seq_len, model.max_position_embeddings
        )));
    }
    Ok(())
}

use xxhash_rust::xxh3::xxh3_128;

fn schedule(s: &Settings) -> Result<Schedule> {
    let kind = match s.schedule.as_str() {
        "cosine" => ScheduleKind::Cosine,
        "linear" => ScheduleKind::Linear,
        "constant" => ScheduleKind::Constant,
        other => {
            return Err(Error::msg(format!(
                "unknown schedule {other:?} (cosine, linear, constant)"
            )))
        }
    };
    Ok(Schedule {
        kind,
        lr: s.lr,
        min_lr: s.min_lr,
        warmup: s.warmup,
        decay_steps: s.decay_steps,
    })
}

/// The outcome of a run, for the summary line and the tests.
#[derive(Debug)]
pub struct Summary {
    pub step: u64,
    pub val_loss: Option<f64>,
    pub first_val_loss: Option<f64>,
    /// Reward and DPO runs: how the val pairs compare at the end and at the start.
    pub val_pairs: Option<wick_rl::preference::PairStats>,
    pub first_val_pairs: Option<wick_rl::preference::PairStats>,
    pub interrupted: bool,
}

pub fn run(mut r: Run) -> Result<Summary> {
    let out = &r.out.clone();
    // The run folder: a resumed one is locked at once; a new one is checked now and created
    // (and locked) once the inputs are known to be good.
    let mut run_dir = None;
    if matches!(r.start, Start::Resume) {
        if out.is_dir() && wick_io::Marker::read(out).is_none() && !Checkpoint::exists(out) {
            return Err(RunRecord::not_started(out));
        }
        run_dir = Some(RunDir::resume(
            out,
            Kind::Run,
            "train",
            Checkpoint::exists(out),
        )?);
        Checkpoint::recover(out)?;
        if !Checkpoint::exists(out) {
            let record = RunRecord::read(out)?;
            if !r.quiet {
                eprintln!(
                    "train: {}: stopped before its first checkpoint; starting it again from step 0",
                    out.display()
                );
            }
            r.start = record.start()?;
            r.adapter = record.adapter.map(PathBuf::from);
            r.settings = record.settings;
        }
    } else {
        RunDir::check_new(out, Kind::Run, "-o")?;
    }
    let from_checkpoint = matches!(r.start, Start::Resume);
    let (mut model, mut state, moments, s) = match &r.start {
        Start::Resume => {
            let (weights, moments, state) = Checkpoint::read(out)?;
            let settings: Settings =
                serde_json::from_value(state.settings.clone()).map_err(|e| {
                    Error::msg(format!(
                        "{}: checkpoint settings: {e}",
                        Checkpoint::dir(out).display()
                    ))
                })?;
            let model = match &settings.init {
                Some(base) if settings.trains_adapter() => {
                    let mut model = Llama::load(Path::new(base))
                        .map_err(|e| e.context("the adapter run's base model (--init)"))?;
                    settings.make_classifier(&mut model)?;
                    settings.add_adapter(&mut model)?;
                    model.set_adapter_tensors(&weights)?;
                    model
                }
                _ => {
                    let mut model = Llama::load(&Checkpoint::dir(out))?;
                    model.set_tensors(&weights)?;
                    model
                }
            };
            (model, state, Some(moments), settings)
        }
        Start::Init(dir) => {
            if Checkpoint::exists(out) && run_dir.is_none() {
                return Err(Error::msg(format!(
                    "{}: holds a checkpoint; use --resume to continue it or choose another -o",
                    out.display()
                )));
            }
            let mut model = Llama::load(dir)?;
            r.settings.make_classifier(&mut model)?;
            match &r.adapter {
                Some(a) => model
                    .load_any_adapter(a)
                    .map_err(|e| e.context(a.display()))?,
                None => r.settings.add_adapter(&mut model)?,
            }
            (
                model,
                TrainState::default_for(&r.settings),
                None,
                r.settings.clone(),
            )
        }
        Start::Config(_) if r.settings.trains_adapter() => {
            return Err(Error::msg(
                "--method lora|adapter trains an adapter on a base model: give the base with --init DIR",
            ));
        }
        Start::Config(_) | Start::Fresh(_) => {
            if Checkpoint::exists(out) && run_dir.is_none() {
                return Err(Error::msg(format!(
                    "{}: holds a checkpoint; use --resume to continue it or choose another -o",
                    out.display()
                )));
            }
            if r.settings.objective().is_some() {
                return Err(Error::msg(
                    "--task reward|dpo starts from a trained model: give it with --init DIR",
                ));
            }
            let set = ShardSet::open(&r.data)?;
            let vocab = set.manifest.as_ref().map(|m| m.vocab_size).unwrap_or(0);
            let mut config = match &r.start {
                Start::Fresh(c) => (**c).clone(),
                Start::Config(spec) => config_from(spec, vocab)?,
                _ => unreachable!("a fresh start"),
            };
            if let Some(m) = &set.manifest {
                if config.eos_token_ids.is_empty() {
                    config.eos_token_ids = vec![m.eos_id];
                }
            }
            (
                Llama::init(config, r.settings.seed)?,
                TrainState::default_for(&r.settings),
                None,
                r.settings.clone(),
            )
        }
    };
    let s = Settings {
        max_steps: r.max_steps.unwrap_or(s.max_steps),
        ..s
    };
    let init_dir = match &r.start {
        Start::Init(d) => Some(d.as_path()),
        _ => None,
    };
    // Read (and for DPO, score with the reference) before anything is written.
    let corpus = match s.objective() {
        None => Corpus::Shards(ShardSet::open(&r.data)?),
        Some(objective) => Corpus::Pairs(load_pairs(
            &r,
            &s,
            &model,
            init_dir.unwrap_or(out),
            objective,
        )?),
    };
    if let Some(set) = corpus.shards() {
        check_compatible(&model.config, set, &s, init_dir)?;
    }
    let vars = if s.trains_adapter() {
        model.make_adapter_trainable()?
    } else {
        model.make_trainable()?
    };
    let mut opt = AdamW::new(
        vars,
        AdamWConfig {
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            weight_decay: s.weight_decay,
            decay_all: s.decay_all,
        },
    )?;
    if let Some(what) = opt.nonfinite()? {
        return Err(Error::msg(format!(
            "{}: {what}: training cannot start from it",
            match (&r.start, init_dir) {
                (_, Some(d)) => d.display().to_string(),
                (Start::Resume, _) => Checkpoint::dir(out).display().to_string(),
                _ => "the initial weights".into(),
            }
        )));
    }
    let _run_dir = match run_dir {
        Some(d) => d,
        None => {
            let d = RunDir::create(out, Kind::Run, "train", "-o")?;
            // What a run killed before it recorded its start may have left.
            Checkpoint::recover(out)?;
            d
        }
    };
    if !from_checkpoint {
        RunRecord {
            settings: s.clone(),
            config: matches!(r.start, Start::Config(_) | Start::Fresh(_)).then(|| {
                serde_json::from_str(&model.config.to_json()).expect("our own config JSON")
            }),
            adapter: r
                .adapter
                .as_deref()
                .map(|a| std::fs::canonicalize(a).unwrap_or_else(|_| a.to_path_buf()))
                .map(|a| a.display().to_string()),
        }
        .write(out)?;
        // The shards' tokenizer (or the initial model's) goes with the weights.
        if let Some(set) = corpus.shards() {
            wick_train::copy_tokenizer_files(&set.dir, out)?;
        }
        if let Some(d) = init_dir {
            wick_train::copy_tokenizer_files(d, out)?;
        }
    }

    if let Some(m) = &moments {
        // Skipped steps took no optimiser step: AdamW's bias correction counts updates.
        opt.load_state(m, state.step - state.skipped)?;
    }
    let sched = schedule(&s)?;
    let mut data = Data::new(&corpus, &s)?;
    if from_checkpoint {
        data.restore(&state);
    }
    let metrics_path = out.join("metrics.jsonl");
    let mut log = if from_checkpoint {
        MetricsLog::resume(&metrics_path, state.step)?
    } else {
        MetricsLog::create(&metrics_path)?
    };
    install_ctrl_c();
    let (params, _) = model.config.param_counts();
    if !r.quiet {
        eprintln!(
            "train: {} parameters ({} in matrix products), {}, batch {} x {} from step {} to {}",
            opt.len(),
            params,
            match corpus.shards() {
                Some(set) => format!("{} train tokens", set.tokens(Split::Train)),
                None => "preference pairs".into(),
            },
            match corpus.shards() {
                Some(_) => format!("{}x{}", s.batch_size, s.seq_len),
                None => format!("{} pairs", s.batch_size),
            },
            s.grad_accum,
            state.step,
            s.max_steps
        );
    }
    if let (false, Some(line)) = (r.quiet, data.describe(s.seq_len)) {
        eprintln!("train: {}: {line}", s.task);
    }
    let eval = |model: &Llama| val_loss(model, &corpus, &s, s.eval_batches);
    let mut first_val: Option<Eval> = None;
    let mut last_val: Option<Eval> = None;
    if state.step == 0 && s.eval_interval > 0 {
        last_val = eval(&model)?;
        first_val = last_val;
        if let Some(v) = last_val {
            let mut rec = json!({"step": 0, "elapsed_s": 0.0});
            v.record(&mut rec);
            log.log(&rec)?;
        }
    }
    let stop_at = r.stop_at.unwrap_or(s.max_steps).min(s.max_steps);
    let mut progress = Progress::new("train", r.quiet);
    let run_start = Instant::now();
    let elapsed_before = state.elapsed_s;
    let mut was_interrupted = false;
    while state.step < stop_at {
        let t0 = Instant::now();
        // Where the data stood before this step's batches: a run stopped by a non-finite
        // step checkpoints this, so that its resume meets the same batches.
        let mut before = state.clone();
        data.save(&mut before);
        let mut grads = None;
        let mut loss_sum = 0f64;
        let mut step_tokens = 0u64;
        let mut step_pairs: Vec<wick_rl::preference::PairStats> = Vec::new();
        let dropout = s.lora.as_ref().is_some_and(|l| l.dropout > 0.0);
        for micro in 0..s.grad_accum {
            if dropout {
                // Masks keyed by (seed, step, micro-batch): a resumed run draws the same ones.
                let key =
                    s.seed ^ (state.step << 16 | micro as u64).wrapping_mul(0xd1b5_4a32_d192_ed03);
                model.set_dropout_key(Some(key));
            }
            let m = data.next_loss(&model)?;
            step_tokens += m.tokens;
            step_pairs.extend(m.pairs);
            let loss = m.loss;
            loss_sum += loss.to_scalar::<f32>().map_err(ce)? as f64;
            let loss = if s.grad_accum > 1 {
                (loss / s.grad_accum as f64).map_err(ce)?
            } else {
                loss
            };
            let g = opt.grads(&loss.backward().map_err(ce)?);
            match grads.as_mut() {
                None => grads = Some(g),
                Some(acc) => AdamW::accumulate(acc, g)?,
            }
        }
        model.set_dropout_key(None);
        let grads = grads.expect("grad_accum >= 1");
        let loss = loss_sum / s.grad_accum as f64;
        let norm = AdamW::global_norm(&grads)?;
        let lr = sched.lr(state.step);
        // A non-finite loss or gradient is caught before the update: the weights stay finite.
        let nonfinite = if !loss.is_finite() {
            Some(format!("the loss is {loss}"))
        } else if !norm.is_finite() {
            Some(format!("the gradient norm is {norm}"))
        } else {
            None
        };
        match &nonfinite {
            None => {
                let scale = if s.grad_clip > 0.0 {
                    (s.grad_clip / (norm + 1e-6)).min(1.0)
                } else {
                    1.0
                };
                opt.update(&grads, lr, scale)?;
            }
            Some(what) if state.skipped < r.skip_nonfinite => {
                state.skipped += 1;
                if !r.quiet {
                    eprintln!(
                        "train: step {}: {what}; skipped without an update ({} of --skip-nonfinite {})",
                        state.step + 1,
                        state.skipped,
                        r.skip_nonfinite
                    );
                }
            }
            Some(what) => {
                return Err(stop_nonfinite(
                    out, &r, &model, &opt, &mut log, &before, what,
                ));
            }
        }
        drop(grads);
        state.step += 1;
        state.tokens += step_tokens;
        let step_s = t0.elapsed().as_secs_f64();
        state.elapsed_s = elapsed_before + run_start.elapsed().as_secs_f64();
        let mut rec = json!({
            "step": state.step,
            "loss": loss,
            "lr": lr,
            "grad_norm": norm,
            "tokens": state.tokens,
            "tokens_per_s": step_tokens as f64 / step_s,
            "step_ms": step_s * 1e3,
            "elapsed_s": state.elapsed_s,
        });
        if nonfinite.is_some() {
            // The metrics log is JSON: NaN and infinity are written as null.
            rec["skipped"] = json!(true);
        }
        if let Some(e) = data.epoch() {
            rec["epoch"] = json!(e);
        }
        if !step_pairs.is_empty() {
            let n = step_pairs.len() as f64;
            rec["accuracy"] = json!(step_pairs.iter().map(|p| p.accuracy).sum::<f64>() / n);
            rec["margin"] = json!(step_pairs.iter().map(|p| p.margin).sum::<f64>() / n);
        }
        let last = state.step == stop_at;
        was_interrupted = interrupted();
        if s.eval_interval > 0 && (state.step % s.eval_interval == 0 || state.step == s.max_steps) {
            last_val = eval(&model)?;
            if let Some(e) = last_val {
                e.record(&mut rec);
                let v = e.loss;
                if state.best_val_loss.is_none_or(|b| v < b) {
                    state.best_val_loss = Some(v);
                    Checkpoint::write_model(out, "best", &model, &state)?;
                }
            }
        }
        log.log(&rec)?;
        let ckpt = s.checkpoint_interval > 0 && state.step % s.checkpoint_interval == 0;
        if ckpt || last || was_interrupted {
            data.save(&mut state);
            log.sync()?;
            Checkpoint::write(out, &model, &opt, &state)?;
        }
        let (step, total) = (state.step, s.max_steps);
        progress.tick(|_| {
            let left = (stop_at - step) as f64 * step_s;
            format!(
                "step {step}/{total}  loss {loss:.4}  lr {lr:.2e}  {:.0} tok/s  ETA {}",
                step_tokens as f64 / step_s,
                eta(left)
            )
        });
        if was_interrupted {
            break;
        }
    }
    if s.task == "reward" && model.adapter().is_some() {
        // What rm-score and ppo-step load: the classifier with the adapter folded in.
        let mut merged = model.clone();
        merged.merge_adapter()?;
        merged.save(out)?;
    }
    let summary = Summary {
        step: state.step,
        val_loss: last_val.map(|e| e.loss),
        first_val_loss: first_val.map(|e| e.loss),
        val_pairs: last_val.and_then(|e| e.pairs),
        first_val_pairs: first_val.and_then(|e| e.pairs),
        interrupted: was_interrupted,
    };
    progress.finish(|secs| {
        format!(
            "{} at step {} in {secs:.1}s{}{}; weights in {}",
            if was_interrupted {
                format!("stopped ({})", wick_train::signal_name())
            } else {
                "done".into()
            },
            state.step,
            last_val.map(|e| e.describe()).unwrap_or_default(),
            if state.skipped > 0 {
                format!(", {} non-finite steps skipped", state.skipped)
            } else {
                String::new()
            },
            out.display()
        )
    });
    if was_interrupted {
        return Err(Error::msg(format!(
            "interrupted ({}) at step {}; checkpoint written; continue with: train --resume {} --data {}",
            wick_train::signal_name(),
            state.step,
            out.display(),
            r.data.display()
        )));
    }
    Ok(summary)
}

/// Stops a run at a non-finite step (its update not applied): the weights as they stand,
/// the last good ones, are checkpointed with the data position before the step, and the
/// error names that checkpoint.
fn stop_nonfinite(
    out: &Path,
    r: &Run,
    model: &Llama,
    opt: &AdamW,
    log: &mut MetricsLog,
    before: &TrainState,
    what: &str,
) -> Error {
    let step = before.step + 1;
    let saved = log
        .sync()
        .and_then(|()| Checkpoint::write(out, model, opt, before));
    let data = r.data.display();
    let dir = Checkpoint::dir(out);
    match saved {
        Ok(()) => Error::msg(format!(
            "step {step}: {what}; the update was not applied and the run stopped. The last good checkpoint (step {}, finite weights) is {}: start a new run from it with a lower --lr (train --init {} ...), or skip such steps: train --resume {} --data {data} --skip-nonfinite N",
            before.step,
            dir.display(),
            dir.display(),
            out.display()
        )),
        Err(e) => Error::msg(format!(
            "step {step}: {what}; the update was not applied and the run stopped, but its weights could not be checkpointed ({e})"
        )),
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

trait DefaultFor {
    fn default_for(s: &Settings) -> Self;
}

impl DefaultFor for TrainState {
    fn default_for(s: &Settings) -> TrainState {
        TrainState {
            step: 0,
            tokens: 0,
            rng: 0,
            epoch: 0,
            row: 0,
            best_val_loss: None,
            skipped: 0,
            elapsed_s: 0.0,
            settings: serde_json::to_value(s).expect("settings serialise"),
        }
    }
}

impl Eval {
    /// Adds the evaluation's fields to a metrics line.
    fn record(&self, rec: &mut serde_json::Value) {
        rec["val_loss"] = json!(self.loss);
        if let Some(p) = &self.pairs {
            rec["val_accuracy"] = json!(p.accuracy);
            rec["val_margin"] = json!(p.margin);
            rec["val_chosen"] = json!(p.chosen);
            rec["val_rejected"] = json!(p.rejected);
        }
        if let Some(l) = &self.logps {
            // DPO: does the policy's likelihood alone prefer the chosen response?
            rec["val_logp_accuracy"] = json!(l.accuracy);
            rec["val_logp_margin"] = json!(l.margin);
        }
    }

    fn describe(&self) -> String {
        match &self.pairs {
            Some(p) => format!(
                ", val loss {:.4}, val pairwise accuracy {:.3} (margin {:.3})",
                self.loss, p.accuracy, p.margin
            ),
            None => format!(", val loss {:.4}", self.loss),
        }
    }
}

/// Reads a reward or DPO run's pairs with the tokenizer in `tok_dir` (--init's, or the run's
/// own on resume), and for DPO computes the reference model's log-probs of every response
/// once.
fn load_pairs(
    r: &Run,
    s: &Settings,
    model: &Llama,
    tok_dir: &Path,
    objective: Objective,
) -> Result<PairSet> {
    let tok = wick_text::Tok::load(tok_dir)?;
    let context = model.config.max_position_embeddings;
    let dpo = matches!(objective, Objective::Dpo { .. });
    let prefix = if dpo {
        wick_model::doc_prefix(&model.config, &tok)
    } else {
        Vec::new()
    };
    let val = s
        .pairs
        .as_ref()
        .and_then(|p| p.val.as_deref())
        .map(Path::new);
    let (mut train, mut val, too_long) = pairs::load(&r.data, val, &tok, &prefix, context)?;
    if too_long > 0 && !r.quiet {
        eprintln!(
            "train: left out {too_long} pairs longer than the model's context of {context} tokens"
        );
    }
    let pad = match objective {
        Objective::Reward => model.config.pad_token_id.unwrap_or(0),
        Objective::Dpo { .. } => tok.eos_id.unwrap_or(0),
    };
    if let Objective::Dpo { .. } = objective {
        let dir = s
            .pairs
            .as_ref()
            .and_then(|p| p.reference.as_deref())
            .ok_or_else(|| Error::msg("--task dpo needs the reference model: --ref DIR"))?;
        let reference = Llama::load(Path::new(dir)).map_err(|e| e.context("--ref"))?;
        if reference.config.vocab_size != model.config.vocab_size {
            return Err(Error::msg(format!(
                "--ref {dir}: its vocabulary ({}) differs from the policy's ({})",
                reference.config.vocab_size, model.config.vocab_size
            )));
        }
        let total = train.len() + val.len();
        let mut progress = Progress::new("train", r.quiet);
        let mut done = 0;
        for set in [&mut train, &mut val] {
            pairs::set_reference(&reference, set, pad, s.batch_size, |n| {
                progress.tick(|_| format!("reference log-probs: {}/{total} pairs", done + n));
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
