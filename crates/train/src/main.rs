use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use train::{run, LoraSettings, Run, Settings, Start};
use wick_io::{Error, Result};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Task {
    /// Next-token prediction on every token of the shards.
    Pretrain,
    /// Supervised fine-tuning: whole examples (the shards' documents, packed from tokenized SFT
    /// records), loss only on the response tokens (the .mask sidecar), in epochs.
    Sft,
    /// A reward model: --data is preference pairs (JSONL {prompt, chosen, rejected}, optional
    /// margin); the --init model gets a scalar head and learns the Bradley-Terry loss
    /// -log sigmoid(r_chosen - r_rejected - margin). Written as a Hugging Face
    /// ...ForSequenceClassification folder (num_labels 1, pad_token_id) for rm-score.
    Reward,
    /// Direct preference optimisation: --data is preference pairs; the policy (--init) learns
    /// DPO's sigmoid loss against the frozen --ref model (its log-probs computed once).
    Dpo,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// Every weight trains.
    Full,
    /// A LoRA adapter (rank --lora-r on --lora-targets) trains; the base is frozen: no
    /// gradients, no optimiser state for it. Needs --init; writes PEFT's adapter files.
    Lora,
    /// Houlsby bottleneck adapters (down projection, SiLU, up projection starting at zero,
    /// residual) after every attention block and MLP train; the base is frozen. Needs --init;
    /// writes an adapter folder that ppl/generate/eval load with --adapter beside the base.
    Adapter,
}

#[derive(Clone, Copy, ValueEnum)]
enum Sched {
    Cosine,
    Linear,
    Constant,
}

/// Train a Llama-family model on token shards made by `pack`.
///
/// Starts from a config (a config.json or a preset: nano = nanoGPT's CPU size, 4 layers x 128
/// wide, context 64; small = 6 layers x 384, context 256; tiny = for tests), from a Hugging Face
/// folder (--init), or from the checkpoint of an earlier run (--resume, exactly where it
/// stopped: same losses, bit for bit). Writes a Hugging Face folder (config.json,
/// model.safetensors, tokenizer files) to -o, plus checkpoint/ (optimiser state), best/ (lowest
/// val loss) and metrics.jsonl (one line per step: loss, lr, grad_norm, tokens_per_s, step_ms,
/// elapsed_s, val_loss at evaluations). -o must be new, empty, or a run folder of train's own
/// (never a folder train did not write); it is locked while a process trains in it. Ctrl-C or
/// SIGTERM writes a checkpoint and stops; after a kill at any instant, --resume continues to
/// the same result. A NaN or infinite loss or gradient stops the run before the update, at a
/// named checkpoint of finite weights (--skip-nonfinite passes over such steps). With --method
/// lora or adapter only the adapter trains (the --init base is frozen: no gradients, no
/// optimiser state) and -o receives the adapter folder instead of weights: PEFT's LoRA files,
/// or wick's Houlsby adapter files; ppl, generate and eval take it with --adapter.
///
/// Pretraining defaults follow nanoGPT: AdamW betas (0.9, 0.95), weight decay 0.1 on matrices
/// only, gradient clipping at 1.0, lr 1e-3 with 100 warmup steps then cosine decay to lr/10.
///
/// --task sft trains on whole examples: each document of the shards (one tokenized SFT record,
/// ending in EOS) is an example; every epoch they are shuffled and packed next-fit into rows of
/// --seq-len + 1 tokens (longer ones are cut), with a block-diagonal causal mask so that no
/// example attends to another (RoPE is relative, so this equals restarting positions at each
/// example); the loss counts only targets the mask marks (the response and its EOS) and never a
/// target across a boundary. --no-packing puts one example per row, padded to the batch's
/// longest. SFT defaults: 3 epochs, lr 1e-4 with warmup over 3% of the steps then cosine decay
/// to 1e-6, no weight decay, a val evaluation once per epoch.
///
/// Examples:
///   train --data shards/ --config nano -o runs/base
///   train --data shards/ --resume runs/base
///   train --data shards/ --init runs/base --lr 3e-4 -o runs/more
///   train --data shards/ --init runs/base --method lora --lora-r 16 -o runs/lora
///   tokenize --tokenizer runs/base sft.jsonl | pack --tokenizer runs/base -o sft-shards
///   train --task sft --method lora --init runs/base --data sft-shards/ -o runs/sft-lora
///   train --task sft --method adapter --init runs/base --data sft-shards/ -o runs/sft-houlsby
///   train --task sft --init runs/base --adapter runs/sft-lora --data more-sft/ -o runs/sft-lora2
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// What to train for.
    #[arg(long, value_enum, default_value = "pretrain")]
    task: Task,
    /// Shard directory made by `pack` (or a directory of llm.c shards); reward and dpo:
    /// preference pairs, JSONL.
    #[arg(long)]
    data: PathBuf,
    /// Reward and dpo: val pairs (JSONL) [default: every 20th pair of --data].
    #[arg(long, value_name = "FILE")]
    val: Option<PathBuf>,
    /// DPO: the frozen reference model (usually the --init model).
    #[arg(long = "ref", value_name = "DIR")]
    reference: Option<PathBuf>,
    /// DPO: beta, the strength of the implicit KL constraint to --ref.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Start from scratch with this config.json or preset (nano, small, tiny).
    #[arg(long, conflicts_with_all = ["init", "resume"])]
    config: Option<String>,
    /// Start from the weights of this Hugging Face folder.
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint (its settings are reused;
    /// a run stopped before its first checkpoint starts again from its recorded start).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Output directory (a Hugging Face folder plus checkpoint/, best/, metrics.jsonl): new,
    /// empty, or an earlier run folder of train's without a checkpoint.
    #[arg(short, long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// What trains [default: full; with --adapter, the adapter's kind].
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// Continue training this adapter folder (PEFT LoRA or wick's Houlsby) on the --init base;
    /// its own settings (rank, alpha, targets, reduction) are kept.
    #[arg(long, value_name = "DIR", requires = "init")]
    adapter: Option<PathBuf>,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    lora_r: usize,
    /// LoRA alpha: the update is scaled by alpha / r (alpha / sqrt(r) with --rslora).
    #[arg(long, default_value_t = 16.0)]
    lora_alpha: f64,
    /// LoRA dropout: each entry of the adapter's input is zeroed with this probability while
    /// training (inverted dropout; the base path sees the input unchanged, as in PEFT).
    #[arg(long, default_value_t = 0.0)]
    lora_dropout: f64,
    /// rsLoRA scaling: alpha / sqrt(r).
    #[arg(long)]
    rslora: bool,
    /// Modules that get an adapter (comma-separated: q_proj, k_proj, v_proj, o_proj, gate_proj,
    /// up_proj, down_proj; q, k, v, o, gate, up, down for short).
    #[arg(long, default_value = "q,k,v,o")]
    lora_targets: String,
    /// Houlsby adapters: bottleneck width = hidden size / this.
    #[arg(long, default_value_t = 16)]
    adapter_reduction: usize,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 12)]
    batch_size: usize,
    /// Tokens per sequence [default: the model's context, at most 1024].
    #[arg(long)]
    seq_len: Option<usize>,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Optimiser steps in all (on --resume: a new end; the LR schedule is kept) [default: 2000;
    /// sft: --epochs worth].
    #[arg(long)]
    max_steps: Option<u64>,
    /// SFT, reward, dpo: passes over the examples or pairs (fractions allowed), unless
    /// --max-steps is given [default: sft 3; reward, dpo 1].
    #[arg(long)]
    epochs: Option<f64>,
    /// SFT: one example per row, padded, instead of packing several per row.
    #[arg(long)]
    no_packing: bool,
    /// Peak learning rate [default: 1e-3; sft, reward: 1e-4; dpo: 2e-5].
    #[arg(long)]
    lr: Option<f64>,
    /// Final learning rate of the decay [default: lr / 10; sft, reward, dpo: 1e-6].
    #[arg(long)]
    min_lr: Option<f64>,
    /// Linear warmup steps [default: 100; sft, reward, dpo: 3% of the steps].
    #[arg(long)]
    warmup: Option<u64>,
    /// Decay after warmup.
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: Sched,
    /// Step at which the decay reaches --min-lr [default: --max-steps].
    #[arg(long)]
    decay_steps: Option<u64>,
    /// Decoupled weight decay (AdamW) [default: 0.1; sft, reward, dpo: 0].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Decay 1-D parameters (norm weights, biases) too.
    #[arg(long)]
    decay_all: bool,
    #[arg(long, default_value_t = 0.9)]
    beta1: f64,
    #[arg(long, default_value_t = 0.95)]
    beta2: f64,
    #[arg(long, default_value_t = 1e-8)]
    eps: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// Evaluate on the val split every N steps and at the end (0: never) [default: 250; sft:
    /// once per epoch; reward, dpo: 5 times in the run].
    #[arg(long)]
    eval_interval: Option<u64>,
    /// Val batches per evaluation (the same windows each time).
    #[arg(long, default_value_t = 20)]
    eval_batches: usize,
    /// Write a checkpoint every N steps (0: only at the end) [default: --eval-interval].
    #[arg(long)]
    checkpoint_interval: Option<u64>,
    /// Seed of the initial weights and of the batch order.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Stop (with a checkpoint) once this step is done, as if interrupted.
    #[arg(long)]
    stop_at: Option<u64>,
    /// Skip up to N steps whose loss or gradient norm is NaN or infinite (no update; logged
    /// with "skipped": true) before stopping. At 0 the first such step stops the run, with
    /// the weights before it checkpointed [counted over the whole run, resumes included].
    #[arg(long, value_name = "N", default_value_t = 0)]
    skip_nonfinite: u64,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// No progress or summary on stderr.
    #[arg(short, long)]
    quiet: bool,
}

fn lora_settings(cli: &Cli) -> Result<LoraSettings> {
    if cli.lora_r == 0 {
        return Err(Error::msg("--lora-r must be at least 1"));
    }
    if !(0.0..1.0).contains(&cli.lora_dropout) {
        return Err(Error::msg("--lora-dropout must be in [0, 1)"));
    }
    let mut targets = Vec::new();
    for t in cli
        .lora_targets
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let full = if t.ends_with("_proj") {
            t.to_string()
        } else {
            format!("{t}_proj")
        };
        if !wick_model::adapter::TARGETS.contains(&full.as_str()) {
            return Err(Error::msg(format!(
                "--lora-targets: unknown module {t:?} (choose from q, k, v, o, gate, up, down)"
            )));
        }
        if !targets.contains(&full) {
            targets.push(full);
        }
    }
    if targets.is_empty() {
        return Err(Error::msg("--lora-targets names no module"));
    }
    Ok(LoraSettings {
        r: cli.lora_r,
        alpha: cli.lora_alpha,
        rslora: cli.rslora,
        targets,
        dropout: cli.lora_dropout,
    })
}

/// The method and settings of an existing adapter folder, which `--adapter` continues.
fn from_adapter(
    dir: &std::path::Path,
    asked: Option<Method>,
) -> Result<(Option<LoraSettings>, Option<usize>)> {
    let (method, lora, houlsby) = if wick_model::houlsby::is_houlsby(dir) {
        let c = wick_model::HoulsbyConfig::read(&dir.join("adapter_config.json"))?;
        (Method::Adapter, None, Some(c.reduction))
    } else {
        let c = wick_model::adapter::read_config(&dir.join("adapter_config.json"))?;
        let lora = LoraSettings {
            r: c.r,
            alpha: c.alpha,
            rslora: c.rslora,
            targets: c.targets,
            dropout: c.dropout,
        };
        (Method::Lora, Some(lora), None)
    };
    if asked.is_some_and(|m| m != method) {
        return Err(Error::msg(format!(
            "{}: a {} adapter; --method must be {} (or left out) to continue it{}",
            dir.display(),
            if method == Method::Lora {
                "LoRA"
            } else {
                "Houlsby"
            },
            if method == Method::Lora {
                "lora"
            } else {
                "adapter"
            },
            if method == Method::Lora {
                "; to train every weight, fold it in first with lora-merge"
            } else {
                ""
            }
        )));
    }
    Ok((lora, houlsby))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.threads;
    wick_io::run_main("train", || wick_model::runtime::run(threads, || body(cli)))
}

fn body(cli: Cli) -> Result<()> {
    let (start, out) = match (&cli.resume, &cli.init, &cli.config) {
        (Some(dir), _, _) => {
            if cli.out.as_ref().is_some_and(|o| o != dir) {
                return Err(Error::msg(
                    "--resume continues in its own directory; leave out -o",
                ));
            }
            (Start::Resume, dir.clone())
        }
        (None, Some(dir), _) => (Start::Init(dir.clone()), cli.out.clone().unwrap()),
        (None, None, Some(c)) => (Start::Config(c.clone()), cli.out.clone().unwrap()),
        (None, None, None) => {
            return Err(Error::msg(
                "say where to start: --config FILE|PRESET, --init DIR or --resume DIR",
            ))
        }
    };
    let (lora, houlsby) = match &cli.adapter {
        Some(dir) => from_adapter(dir, cli.method)?,
        None => {
            let method = cli.method.unwrap_or(Method::Full);
            if method == Method::Adapter && cli.adapter_reduction == 0 {
                return Err(Error::msg("--adapter-reduction must be at least 1"));
            }
            let lora = (method == Method::Lora)
                .then(|| lora_settings(&cli))
                .transpose()?;
            (
                lora,
                (method == Method::Adapter).then_some(cli.adapter_reduction),
            )
        }
    };
    if cli.task == Task::Reward && houlsby.is_some() {
        return Err(Error::msg(
            "--task reward trains --method full or lora (a Houlsby reward model could not be folded into the LlamaForSequenceClassification folder rm-score loads)",
        ));
    }
    let pairs = matches!(cli.task, Task::Reward | Task::Dpo);
    // The fine-tuning tasks share their defaults (the seed recipe's SFT ones).
    let sft = cli.task == Task::Sft || pairs;
    if let Start::Config(spec) = &start {
        if !pairs && train::presets::NAMES.contains(&spec.as_str()) {
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
    }
    // The model's config, read (not built) for its context and the memory estimate below; a
    // preset's vocabulary comes from the shards later, so it counts as 1 here.
    let model_config = match &start {
        Start::Config(spec) => Some(train::config_from(spec, 1)?),
        Start::Init(dir) => Some(wick_model::Config::load(&dir.join("config.json"))?),
        Start::Fresh(c) => Some((**c).clone()),
        Start::Resume => None,
    };
    let context = model_config
        .as_ref()
        .map_or(0, |c| c.max_position_embeddings);
    let seq_len = cli.seq_len.unwrap_or(context.min(1024));
    if cli.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    if cli.seq_len == Some(0) {
        return Err(Error::msg("--seq-len must be at least 1"));
    }
    if let Some(c) = &model_config {
        // Reward and DPO batches hold a chosen and a rejected sequence per pair.
        let rows = cli.batch_size.saturating_mul(if pairs { 2 } else { 1 });
        let full = lora.is_none() && houlsby.is_none();
        let flags = format!("--batch-size {} x --seq-len {seq_len}", cli.batch_size);
        wick_model::memory::check_training(c, rows, seq_len, full, &flags).map_err(Error::msg)?;
    }
    let grad_accum = cli.grad_accum.max(1);
    let lr = cli.lr.unwrap_or(match cli.task {
        Task::Pretrain => 1e-3,
        Task::Sft | Task::Reward => 1e-4,
        Task::Dpo => 2e-5,
    });
    if cli.task == Task::Dpo && cli.reference.is_none() && cli.resume.is_none() {
        return Err(Error::msg(
            "--task dpo needs the frozen reference model: --ref DIR (usually the --init model)",
        ));
    }
    if cli.task != Task::Dpo && cli.reference.is_some() {
        return Err(Error::msg("--ref is for --task dpo"));
    }
    if !(cli.beta > 0.0 && cli.beta.is_finite()) {
        return Err(Error::msg("--beta must be a positive number"));
    }
    let absolute = |p: &std::path::Path| -> Result<String> {
        Ok(std::fs::canonicalize(p)
            .map_err(|e| Error::io(p.display(), e))?
            .display()
            .to_string())
    };
    let mut settings = Settings {
        task: match cli.task {
            Task::Pretrain => "pretrain",
            Task::Sft => "sft",
            Task::Reward => "reward",
            Task::Dpo => "dpo",
        }
        .into(),
        batch_size: cli.batch_size,
        seq_len,
        grad_accum,
        max_steps: cli.max_steps.unwrap_or(2000),
        lr,
        min_lr: cli.min_lr.unwrap_or(if sft { 1e-6 } else { lr / 10.0 }),
        warmup: cli.warmup.unwrap_or(100),
        schedule: match cli.schedule {
            Sched::Cosine => "cosine",
            Sched::Linear => "linear",
            Sched::Constant => "constant",
        }
        .into(),
        decay_steps: 0,
        weight_decay: cli.weight_decay.unwrap_or(if sft { 0.0 } else { 0.1 }),
        decay_all: cli.decay_all,
        beta1: cli.beta1,
        beta2: cli.beta2,
        eps: cli.eps,
        grad_clip: cli.grad_clip,
        eval_interval: cli.eval_interval.unwrap_or(250),
        eval_batches: cli.eval_batches,
        checkpoint_interval: 0,
        seed: cli.seed,
        lora,
        init: match &start {
            Start::Init(dir) => Some(
                std::fs::canonicalize(dir)
                    .map_err(|e| Error::io(dir.display(), e))?
                    .display()
                    .to_string(),
            ),
            _ => None,
        },
        packing: !cli.no_packing,
        houlsby,
        pairs: if pairs {
            Some(train::PairSettings {
                val: cli.val.as_deref().map(absolute).transpose()?,
                reference: cli.reference.as_deref().map(absolute).transpose()?,
                beta: cli.beta,
            })
        } else {
            None
        },
    };
    if sft && !matches!(start, Start::Resume) {
        let epochs = cli.epochs.unwrap_or(if pairs { 1.0 } else { 3.0 });
        if !(epochs > 0.0 && epochs.is_finite()) {
            return Err(Error::msg("--epochs must be a positive number"));
        }
        let rows = if pairs {
            train::pairs::train_count(&cli.data, cli.val.is_some())?
        } else {
            let set = wick_shard::ShardSet::open(&cli.data)?;
            train::data::rows_per_epoch(&set, &settings)?
        };
        let per_step = (settings.batch_size * grad_accum) as f64;
        let steps_per_epoch = (rows as f64 / per_step).ceil().max(1.0) as u64;
        settings.max_steps = cli
            .max_steps
            .unwrap_or((epochs * rows as f64 / per_step).ceil().max(1.0) as u64);
        settings.warmup = cli
            .warmup
            .unwrap_or((0.03 * settings.max_steps as f64).ceil() as u64);
        settings.eval_interval = cli.eval_interval.unwrap_or(if pairs {
            settings.max_steps.div_ceil(5)
        } else {
            steps_per_epoch
        });
    }
    settings.decay_steps = cli.decay_steps.unwrap_or(settings.max_steps);
    settings.checkpoint_interval = cli.checkpoint_interval.unwrap_or(settings.eval_interval);
    run(Run {
        settings,
        adapter: cli.adapter.clone(),
        start,
        data: cli.data,
        out,
        stop_at: cli.stop_at,
        max_steps: if cli.resume.is_some() {
            cli.max_steps
        } else {
            None
        },
        skip_nonfinite: cli.skip_nonfinite,
        quiet: cli.quiet,
    })?;
    Ok(())
}
