//! `train`: maps its flags onto the engine's [`Plan`] and [`Start`], runs the [`Trainer`] with
//! progress on stderr, and words the outcome in flags.

mod cli;
mod progress;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use wick_io::{Error, Kind, Result, RunDir};
use wick_train::{
    lora_config, AdamWConfig, Checkpoint, LoraError, Method, Origin, Plan, ScheduleKind, Start,
    Stop, Summary, Task, Trainer,
};

use cli::{Cli, MethodFlag, Sched, TaskFlag};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.common.threads;
    wick_io::run_main("train", || wick_model::runtime::run(threads, || body(cli)))
}

/// A LoRA settings error, named by its flag.
fn lora_flag_error(e: LoraError) -> Error {
    Error::msg(match e {
        LoraError::Rank => "--lora-r must be at least 1".into(),
        LoraError::Dropout => "--lora-dropout must be in [0, 1)".into(),
        LoraError::UnknownTarget(t) => {
            format!("--lora-targets: unknown module {t:?} (choose from q, k, v, o, gate, up, down)")
        }
        LoraError::NoTarget => "--lora-targets names no module".into(),
    })
}

/// The method --method and --adapter ask for.
fn method(cli: &Cli) -> Result<Method> {
    if let Some(dir) = &cli.model.adapter {
        let found = Method::of_adapter(dir)?;
        let (name, flag) = match found {
            Method::Lora(_) => ("LoRA", MethodFlag::Lora),
            _ => ("Houlsby", MethodFlag::Adapter),
        };
        if cli.method.is_some_and(|m| m != flag) {
            return Err(Error::msg(format!(
                "{}: a {name} adapter; --method must be {} (or left out) to continue it{}",
                dir.display(),
                if flag == MethodFlag::Lora {
                    "lora"
                } else {
                    "adapter"
                },
                if flag == MethodFlag::Lora {
                    "; to train every weight, fold it in first with lora-merge"
                } else {
                    ""
                }
            )));
        }
        return Ok(found);
    }
    Ok(match cli.method.unwrap_or(MethodFlag::Full) {
        MethodFlag::Full => Method::Full,
        MethodFlag::Adapter => {
            if cli.adapter_reduction == 0 {
                return Err(Error::msg("--adapter-reduction must be at least 1"));
            }
            Method::Bottleneck {
                reduction: cli.adapter_reduction,
            }
        }
        MethodFlag::Lora => {
            let l = &cli.lora;
            Method::Lora(
                lora_config(
                    l.lora_r,
                    l.lora_alpha,
                    l.lora_dropout,
                    l.rslora,
                    &l.lora_targets,
                )
                .map_err(lora_flag_error)?,
            )
        }
    })
}

fn task(cli: &Cli) -> Result<Task> {
    if cli.task != TaskFlag::Dpo && cli.reference.ref_model.is_some() {
        return Err(Error::msg("--ref-model is for --task dpo"));
    }
    if !(cli.dpo_beta > 0.0 && cli.dpo_beta.is_finite()) {
        return Err(Error::msg("--dpo-beta must be a positive number"));
    }
    Ok(match cli.task {
        TaskFlag::Pretrain => Task::Pretrain,
        TaskFlag::Sft => Task::Sft {
            packing: !cli.no_packing,
        },
        TaskFlag::Reward => Task::Reward {
            val: cli.val.clone(),
        },
        TaskFlag::Dpo => Task::Dpo {
            beta: cli.dpo_beta,
            reference: cli.reference.ref_model.clone().ok_or_else(|| {
                Error::msg(
                    "--task dpo needs the frozen reference model: --ref-model DIR (usually the --model folder)",
                )
            })?,
            val: cli.val.clone(),
        },
    })
}

fn body(cli: Cli) -> Result<()> {
    let device = wick_model::runtime::open_device(cli.device.name())?;
    if cli.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    if cli.seq_len == Some(0) {
        return Err(Error::msg("--seq-len must be at least 1"));
    }
    if let Some(dir) = &cli.resume {
        if cli.output.output.as_ref().is_some_and(|o| o != dir) {
            return Err(Error::msg(
                "--resume continues in its own directory; leave out -o",
            ));
        }
        if cli.compute.precision.is_some() {
            return Err(Error::msg(
                "--resume keeps the run's --precision; leave it out",
            ));
        }
        // A resumed run keeps its settings; only its end (and checkpointing) may change.
        return finish(
            &cli,
            dir,
            Start::Resume {
                max_steps: cli.max_steps,
                grad_checkpoint: cli.compute.grad_checkpoint,
            },
            device,
        );
    }
    let out = cli.output.output.clone().expect("clap: -o unless --resume");
    let origin = match (&cli.model.model, &cli.config) {
        (Some(dir), _) => Origin::Model {
            dir: dir.clone(),
            adapter: cli.model.adapter.clone(),
        },
        (None, Some(c)) => Origin::Config(c.clone()),
        (None, None) => {
            return Err(Error::msg(
                "say where to start: --config FILE|PRESET, --model DIR or --resume DIR",
            ))
        }
    };
    let method = method(&cli)?;
    let task = task(&cli)?;
    if matches!(task, Task::Reward { .. }) && matches!(method, Method::Bottleneck { .. }) {
        return Err(Error::msg(
            "--task reward trains --method full or lora (a Houlsby reward model could not be folded into the LlamaForSequenceClassification folder rm-score loads)",
        ));
    }
    let model_config = match &origin {
        Origin::Config(spec) => {
            if method.trains_adapter() {
                return Err(Error::msg(
                    "--method lora|adapter trains an adapter on a base model: give the base with --model DIR",
                ));
            }
            if task.reads_pairs() {
                return Err(Error::msg(
                    "--task reward|dpo starts from a trained model: give it with --model DIR",
                ));
            }
            if wick_train::presets::NAMES.contains(&spec.as_str()) {
                // A preset takes its vocabulary size from the manifest; llm.c data has none.
                let set = wick_shard::ShardSet::open(&cli.data)?;
                if set.manifest.is_none() {
                    return Err(Error::msg(format!(
                        "{}: no {}, so the vocabulary size is unknown (llm.c shards do not record it) and --config {spec} cannot size the model: give --config a config.json with \"vocab_size\", or pack the data with `pack`",
                        cli.data.display(),
                        wick_shard::MANIFEST
                    )));
                }
            }
            // A preset's vocabulary comes from the shards later; it counts as 1 here.
            wick_train::config_from(spec, 1).map_err(|e| e.context("--config"))?
        }
        Origin::Model { dir, .. } => wick_model::Config::load(&dir.join("config.json"))?,
        Origin::Fresh(c) => (**c).clone(),
    };
    let seq_len = cli
        .seq_len
        .unwrap_or(model_config.max_position_embeddings.min(1024));
    // Reward and DPO batches hold a chosen and a rejected sequence per pair.
    let rows = cli
        .batch_size
        .saturating_mul(if task.reads_pairs() { 2 } else { 1 });
    let flags = format!("--batch-size {} x --seq-len {seq_len}", cli.batch_size);
    wick_model::memory::check_training(
        &model_config,
        rows,
        seq_len,
        !method.trains_adapter(),
        cli.compute.grad_checkpoint,
        &flags,
    )
    .map_err(Error::msg)?;
    if let Some(e) = cli.epochs {
        if !(e > 0.0 && e.is_finite()) && task != Task::Pretrain {
            return Err(Error::msg("--epochs must be a positive number"));
        }
    }
    let plan = Plan {
        task,
        method,
        batch_size: cli.batch_size,
        seq_len,
        grad_accum: cli.grad_accum,
        schedule: match cli.schedule {
            Sched::Cosine => ScheduleKind::Cosine,
            Sched::Linear => ScheduleKind::Linear,
            Sched::Constant => ScheduleKind::Constant,
        },
        lr: cli.lr,
        min_lr: cli.min_lr,
        warmup: cli.warmup,
        decay_steps: cli.decay_steps,
        max_steps: cli.max_steps,
        epochs: cli.epochs,
        weight_decay: cli.weight_decay,
        optimizer: AdamWConfig {
            beta1: cli.beta1,
            beta2: cli.beta2,
            eps: cli.eps,
            weight_decay: 0.0,
            decay_all: cli.decay_all,
        },
        grad_clip: cli.grad_clip,
        eval_interval: cli.eval_interval,
        eval_batches: cli.eval_batches,
        checkpoint_interval: cli.checkpoint_interval,
        seed: cli.seed,
        precision: cli
            .compute
            .precision_name()
            .parse()
            .expect("wick-cli's names parse"),
        grad_checkpoint: cli.compute.grad_checkpoint,
        save_dtype: cli.save_dtype.map_or("auto", |d| d.name()).into(),
    };
    // Where the run goes is checked before the data is read, naming the flag.
    RunDir::check_new(&out, Kind::Run, "-o")?;
    if Checkpoint::exists(&out) {
        return Err(Error::msg(format!(
            "{}: holds a checkpoint; use --resume to continue it or choose another -o",
            out.display()
        )));
    }
    let settings = plan.resolve(&cli.data)?;
    finish(
        &cli,
        &out,
        Start::New {
            settings: Box::new(settings),
            origin,
        },
        device,
    )
}

/// Runs the trainer and words its outcome for the command line.
fn finish(cli: &Cli, out: &Path, start: Start, device: candle_core::Device) -> Result<()> {
    let mut report = progress::Stderr::new(cli.common.quiet);
    let summary = Trainer {
        data: cli.data.clone(),
        out: out.to_path_buf(),
        start,
        stop_at: cli.stop_at,
        skip_nonfinite: cli.skip_nonfinite,
        skip_invalid: cli.skip.skip_invalid,
        device,
    }
    .run(&mut report)?;
    let Summary { step, stop, .. } = &summary;
    match stop {
        Stop::Done | Stop::Interrupted => report.finish(&summary, out),
        Stop::NonFinite { .. } => {}
    }
    match stop {
        Stop::Done => Ok(()),
        Stop::Interrupted => Err(Error::msg(format!(
            "interrupted ({}) at step {step}; checkpoint written; continue with: train --resume {} --data {}",
            wick_train::signal_name(),
            out.display(),
            cli.data.display()
        ))),
        Stop::NonFinite {
            step,
            what,
            last_good,
            saved,
        } => Err(Error::msg(match saved {
            Ok(()) => {
                let dir = Checkpoint::dir(out);
                format!(
                    "step {step}: {what}; the update was not applied and the run stopped. The last good checkpoint (step {last_good}, finite weights) is {}: start a new run from it with a lower --lr (train --model {} ...), or skip such steps: train --resume {} --data {} --skip-nonfinite N",
                    dir.display(),
                    dir.display(),
                    out.display(),
                    cli.data.display()
                )
            }
            Err(e) => format!(
                "step {step}: {what}; the update was not applied and the run stopped, but its weights could not be checkpointed ({e})"
            ),
        })),
    }
}
