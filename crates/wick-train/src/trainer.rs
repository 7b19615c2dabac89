//! [`Trainer`]: one training run, from its start to its last step, in a run folder that a
//! kill at any instant leaves resumable. A step draws `grad_accum` micro-batches from the
//! task's data ([`crate::data`]), sums their gradients, and, when the loss and gradient norm
//! are finite, takes one clipped AdamW update at the schedule's rate; evaluations, the best
//! weights and checkpoints follow at their intervals.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use serde_json::json;
use wick_io::{Error, Kind, Result, RunDir};
use wick_model::candle_error as ce;
use wick_model::Llama;
use wick_rl::preference::PairStats;
use wick_shard::{ShardSet, Split};

use crate::data::{val_loss, Corpus, Data, Eval};
use crate::report::{Begin, Event, Report, StepReport};
use crate::settings::Settings;
use crate::start::{self, Origin, RunRecord, Start};
use crate::task::Task;
use crate::{install_ctrl_c, interrupted, AdamW, Checkpoint, MetricsLog, TrainState};

/// A training run: its data, its run folder and how it starts.
pub struct Trainer {
    /// Token shards (`pack`'s), or preference pairs (JSONL) for the pair tasks.
    pub data: PathBuf,
    /// The run folder: weights, checkpoint/, best/, metrics.jsonl, run.json.
    pub out: PathBuf,
    pub start: Start,
    /// Stop (with a checkpoint) once this step is done, even if max_steps is further.
    pub stop_at: Option<u64>,
    /// How many steps with a non-finite loss or gradient norm the run may skip in all before
    /// it stops (0: stop at the first).
    pub skip_nonfinite: u64,
    /// Pair tasks: set aside preference pairs that are not valid records (counted in the
    /// report) instead of stopping at the first.
    pub skip_invalid: bool,
    /// Where the model trains. Not one of the run's settings: a run may resume on another
    /// machine (checkpoints hold CPU tensors).
    pub device: Device,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// It reached its last step (or the asked stop).
    Done,
    /// A signal (Ctrl-C, SIGTERM) stopped it after a checkpoint.
    Interrupted,
    /// A step's loss or gradient norm was not finite (and no more skips were allowed): the
    /// update was not applied, and the weights before it were checkpointed at `last_good`
    /// (`saved` is the error when they could not be).
    NonFinite {
        step: u64,
        what: String,
        last_good: u64,
        saved: std::result::Result<(), String>,
    },
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Summary {
    pub step: u64,
    pub stop: Stop,
    /// Non-finite steps skipped over the whole run.
    pub skipped: u64,
    pub val: Option<Eval>,
    pub first_val: Option<Eval>,
    pub val_loss: Option<f64>,
    pub first_val_loss: Option<f64>,
    /// Reward and DPO runs: how the val pairs compare at the end and at the start.
    pub val_pairs: Option<PairStats>,
    pub first_val_pairs: Option<PairStats>,
}

/// What a run folder's start resolves to: the model, where the run stands, its settings.
struct Loaded {
    model: Llama,
    state: TrainState,
    moments: Option<crate::checkpoint::Tensors>,
    settings: Settings,
    /// A new run's origin (None: from the checkpoint).
    origin: Option<Origin>,
}

impl Trainer {
    pub fn run(self, report: &mut dyn Report) -> Result<Summary> {
        let out = &self.out;
        // The run folder: a resumed one is locked at once; a new one is checked now and
        // created (and locked) once the inputs are known to be good.
        let (run_dir, loaded) = match self.start.clone() {
            Start::Resume {
                max_steps,
                grad_checkpoint,
            } => {
                if out.is_dir() && wick_io::Marker::read(out).is_none() && !Checkpoint::exists(out)
                {
                    return Err(RunRecord::not_started(out));
                }
                let d = RunDir::resume(out, Kind::Run, "train", Checkpoint::exists(out))?;
                Checkpoint::recover(out)?;
                let mut loaded = if Checkpoint::exists(out) {
                    let (weights, moments, state) = Checkpoint::read(out)?;
                    let settings: Settings = serde_json::from_value(state.settings.clone())
                        .map_err(|e| {
                            Error::msg(format!(
                                "{}: checkpoint settings: {e}",
                                Checkpoint::dir(out).display()
                            ))
                        })?;
                    Loaded {
                        model: start::resumed_model(out, &settings, &weights)?,
                        state,
                        moments: Some(moments),
                        settings,
                        origin: None,
                    }
                } else {
                    let record = RunRecord::read(out)?;
                    report.event(Event::Restarting { out });
                    let (settings, origin) = record.start()?;
                    self.begin(settings, origin)?
                };
                if let Some(n) = max_steps {
                    loaded.settings.max_steps = n;
                }
                loaded.settings.grad_checkpoint |= grad_checkpoint;
                (Some(d), loaded)
            }
            Start::New { settings, origin } => {
                RunDir::check_new(out, Kind::Run, "the run folder")?;
                if Checkpoint::exists(out) {
                    return Err(Error::msg(format!(
                        "{}: holds a checkpoint; resume that run or choose another folder",
                        out.display()
                    )));
                }
                (None, self.begin(absolute(*settings, &origin)?, origin)?)
            }
        };
        self.train(run_dir, loaded, report)
    }

    /// A new run's (or a restarted one's) model and first state.
    fn begin(&self, mut settings: Settings, origin: Origin) -> Result<Loaded> {
        let model = start::new_model(&settings, &origin, &self.data)?;
        if settings.save_dtype == "auto" {
            settings.save_dtype = wick_model::precision::dtype_name(model.stored_dtype()).into();
        }
        Ok(Loaded {
            model,
            state: start::first_state(&settings),
            moments: None,
            settings,
            origin: Some(origin),
        })
    }

    fn train(
        &self,
        run_dir: Option<RunDir>,
        loaded: Loaded,
        report: &mut dyn Report,
    ) -> Result<Summary> {
        let out = &self.out;
        let Loaded {
            mut model,
            mut state,
            moments,
            settings: s,
            origin,
        } = loaded;
        let base_dir = match &origin {
            Some(Origin::Model { dir, .. }) => Some(dir.as_path()),
            _ => None,
        };
        // Loaded (or drawn) on the CPU, the same everywhere, then moved; before the variables
        // are made, which must be the moved tensors.
        model.to_device(&self.device)?;
        // Read (and for DPO, score with the reference) before anything is written.
        let corpus = if s.task.reads_pairs() {
            Corpus::Pairs(start::load_pairs(
                &self.data,
                &s,
                &model,
                base_dir.unwrap_or(out),
                self.skip_invalid,
                report,
            )?)
        } else {
            Corpus::Shards(ShardSet::open(&self.data)?)
        };
        if let Some(set) = corpus.shards() {
            start::check_compatible(&model.config, set, &s, base_dir)?;
        }
        let vars = if s.method.trains_adapter() {
            model.make_adapter_trainable()?
        } else {
            model.make_trainable()?
        };
        let mut opt = AdamW::new(vars, s.optimizer)?;
        if let Some(what) = opt.nonfinite()? {
            return Err(Error::msg(format!(
                "{}: {what}: training cannot start from it",
                match (&origin, base_dir) {
                    (_, Some(d)) => d.display().to_string(),
                    (None, _) => Checkpoint::dir(out).display().to_string(),
                    _ => "the initial weights".into(),
                }
            )));
        }
        let _run_dir = match run_dir {
            Some(d) => d,
            None => {
                let d = RunDir::create(out, Kind::Run, "train", "the run folder")?;
                // What a run killed before it recorded its start may have left.
                Checkpoint::recover(out)?;
                d
            }
        };
        let from_checkpoint = moments.is_some();
        if let Some(origin) = &origin {
            RunRecord::new(&s, &model, origin).write(out)?;
            // The shards' tokenizer (or the initial model's) goes with the weights.
            if let Some(set) = corpus.shards() {
                wick_text::copy_tokenizer_files(&set.dir, out)?;
            }
            if let Some(d) = base_dir {
                wick_text::copy_tokenizer_files(d, out)?;
            }
        }
        if let Some(m) = &moments {
            // Skipped steps took no optimiser step: AdamW's bias correction counts updates.
            opt.load_state(m, state.updates())?;
        }
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
        // The products of every forward and backward pass from here on, evaluations included.
        let _autocast = wick_model::autocast(s.precision);
        model.set_grad_checkpoint(s.grad_checkpoint);
        let overflow_at = overflow_hook();
        report.event(Event::Begin(&Begin {
            task: s.task.name(),
            tensors: opt.len(),
            params: model.config.param_counts().0,
            train_tokens: corpus.shards().map(|set| set.tokens(Split::Train)),
            batch_size: s.batch_size,
            seq_len: s.seq_len,
            grad_accum: s.grad_accum,
            from_step: state.step,
            max_steps: s.max_steps,
            layout: data.describe(s.seq_len),
        }));
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
        let stop_at = self.stop_at.unwrap_or(s.max_steps).min(s.max_steps);
        let run_start = Instant::now();
        let elapsed_before = state.elapsed_s;
        let mut stop = Stop::Done;
        let dropout = matches!(&s.method, crate::Method::Lora(l) if l.dropout > 0.0);
        while state.step < stop_at {
            let t0 = Instant::now();
            // Where the data stood before this step's batches: a run stopped by a non-finite
            // step checkpoints this, so that its resume meets the same batches.
            let mut before = state.clone();
            data.save(&mut before);
            let mut grads = None;
            let mut loss_sum = 0f64;
            let mut step_tokens = 0u64;
            let mut step_pairs: Vec<PairStats> = Vec::new();
            // fp16: the loss is scaled up for the backward pass, the gradients down for the update.
            let loss_scale = state.loss_scaler.as_ref().map_or(1.0, |l| l.scale);
            let backward_scale =
                if overflow_at == Some(state.step + 1) && state.loss_scaler.is_some() {
                    loss_scale * 2f64.powi(40)
                } else {
                    loss_scale
                };
            for micro in 0..s.grad_accum {
                if dropout {
                    // Masks keyed by (seed, step, micro-batch): a resumed run draws the same ones.
                    let key = s.seed
                        ^ (state.step << 16 | micro as u64).wrapping_mul(0xd1b5_4a32_d192_ed03);
                    model.set_dropout_key(Some(key));
                }
                let m = data.next_loss(&model)?;
                step_tokens += m.tokens;
                step_pairs.extend(m.pairs);
                let loss = m.loss;
                loss_sum += loss.to_scalar::<f32>().map_err(ce)? as f64;
                let k = backward_scale / s.grad_accum as f64;
                let loss = if k != 1.0 {
                    (loss * k).map_err(ce)?
                } else {
                    loss
                };
                let g = opt.grads(&model.backward(&loss)?);
                match grads.as_mut() {
                    None => grads = Some(g),
                    Some(acc) => AdamW::accumulate(acc, g)?,
                }
            }
            model.set_dropout_key(None);
            let grads = grads.expect("grad_accum >= 1");
            let loss = loss_sum / s.grad_accum as f64;
            let norm = AdamW::global_norm(&grads)? / loss_scale;
            let lr = s.schedule.lr(state.step);
            // An fp16 step whose scaled gradient overflowed is the scaler's to skip (GradScaler:
            // no update, the scale halves); any other non-finite loss or gradient is caught
            // before the update too, so the weights stay finite.
            let overflow = state.loss_scaler.is_some() && loss.is_finite() && !norm.is_finite();
            let nonfinite = if overflow {
                None
            } else if !loss.is_finite() {
                Some(format!("the loss is {loss}"))
            } else if !norm.is_finite() {
                Some(format!("the gradient norm is {norm}"))
            } else {
                None
            };
            if let Some(scaler) = state.loss_scaler.as_mut() {
                if nonfinite.is_none() {
                    scaler.update(overflow);
                }
            }
            match &nonfinite {
                None if overflow => state.overflow_skipped += 1,
                None => {
                    let clip = if s.grad_clip > 0.0 {
                        (s.grad_clip / (norm + 1e-6)).min(1.0)
                    } else {
                        1.0
                    };
                    opt.update(&grads, lr, clip / loss_scale)?;
                }
                Some(what) if state.skipped < self.skip_nonfinite => {
                    state.skipped += 1;
                    report.event(Event::Skipped {
                        step: state.step + 1,
                        what,
                        skipped: state.skipped,
                        limit: self.skip_nonfinite,
                    });
                }
                Some(what) => {
                    // The weights as they stand, the last good ones, are checkpointed with
                    // the data position before the step.
                    let saved = log
                        .sync()
                        .and_then(|()| Checkpoint::write(out, &model, &opt, &before))
                        .map_err(|e| e.to_string());
                    stop = Stop::NonFinite {
                        step: before.step + 1,
                        what: what.clone(),
                        last_good: before.step,
                        saved,
                    };
                    break;
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
            if nonfinite.is_some() || overflow {
                // The metrics log is JSON: NaN and infinity are written as null.
                rec["skipped"] = json!(true);
            }
            if state.loss_scaler.is_some() {
                // The scale this step's backward pass used.
                rec["loss_scale"] = json!(loss_scale);
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
            let was_interrupted = interrupted();
            if s.eval_interval > 0
                && (state.step % s.eval_interval == 0 || state.step == s.max_steps)
            {
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
            report.event(Event::Step(&StepReport {
                step: state.step,
                max_steps: s.max_steps,
                stop_at,
                loss,
                lr,
                tokens_per_s: step_tokens as f64 / step_s,
                step_s,
            }));
            if was_interrupted {
                stop = Stop::Interrupted;
                break;
            }
        }
        if matches!(stop, Stop::NonFinite { .. }) {
            return Ok(summary(&state, stop, first_val, last_val));
        }
        let save_dtype = wick_model::precision::parse_dtype(&s.save_dtype)?.unwrap_or(DType::F32);
        if matches!(s.task, Task::Reward { .. }) && model.adapter().is_some() {
            // What rm-score and ppo-step load: the classifier with the adapter folded in.
            let mut merged = model.clone();
            merged.merge_adapter()?;
            merged.save_as(out, save_dtype)?;
        } else if stop == Stop::Done && model.adapter().is_none() && save_dtype != DType::F32 {
            // The finished model in its dtype, in place of the link to the checkpoint's f32
            // weights (which stay, for a later --resume with more steps).
            model.save_as(out, save_dtype)?;
        }
        Ok(summary(&state, stop, first_val, last_val))
    }
}

/// `WICK_FP16_OVERFLOW_AT=STEP` (a test hook, like wick-io's `WICK_FAULT_AT`): that step's
/// backward pass runs with the loss scale times 2^40, so that its fp16 products overflow as a
/// real overflow would.
fn overflow_hook() -> Option<u64> {
    std::env::var("WICK_FP16_OVERFLOW_AT")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The settings with the paths they name made absolute (and the base model recorded), so that
/// a resume from another working folder finds them.
fn absolute(mut s: Settings, origin: &Origin) -> Result<Settings> {
    let abs = |p: &Path| std::fs::canonicalize(p).map_err(|e| Error::io(p.display(), e));
    match &mut s.task {
        Task::Reward { val } => *val = val.as_deref().map(abs).transpose()?,
        Task::Dpo { reference, val, .. } => {
            *val = val.as_deref().map(abs).transpose()?;
            *reference = abs(reference)?;
        }
        Task::Pretrain | Task::Sft { .. } => {}
    }
    if let Origin::Model { dir, .. } = origin {
        s.base = Some(abs(dir)?);
    }
    Ok(s)
}

fn summary(state: &TrainState, stop: Stop, first: Option<Eval>, last: Option<Eval>) -> Summary {
    Summary {
        step: state.step,
        stop,
        skipped: state.skipped,
        val: last,
        first_val: first,
        val_loss: last.map(|e| e.loss),
        first_val_loss: first.map(|e| e.loss),
        val_pairs: last.and_then(|e| e.pairs),
        first_val_pairs: first.and_then(|e| e.pairs),
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
}
