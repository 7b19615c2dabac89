use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use ppo_step::rollouts;
use ppo_step::step::{self, Options};
use ppo_step::value_head::ValueHead;
use serde_json::json;
use wick_io::{Error, Kind, OutDir, Output, Result};
use wick_model::adapter::LoraConfig;
use wick_model::{Folder, Llama};
use wick_rl::ppo::{self, Hyper, KlEstimator};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kl {
    /// log pi - log ref of the sampled token (unbiased; can be negative).
    K1,
    /// (r - 1) - log r with r = ref / pi (unbiased, never negative, lower variance).
    K3,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// Every weight of the policy trains; -o gets a whole model folder.
    Full,
    /// A fresh LoRA adapter (r 8, alpha 16, on q, k, v, o) on the frozen --policy trains;
    /// -o gets the adapter folder. Continue it later with --adapter.
    Lora,
}

/// One PPO iteration on scored rollouts: JSONL from `generate | rm-score` (prompt_ids,
/// response_ids, finish_reason, reward) in; the updated policy, its value head and optimiser
/// state out (-o); one JSONL line of statistics on stdout.
///
/// As TRL's PPOTrainer: the policy's and the frozen reference's log-probs of every response
/// token and the value head's estimates are recomputed; each token's reward is -kl_coef times
/// the KL estimate (k1 or k3), and the last response token also gets the reward model's score
/// (less --missing-eos-penalty when the response did not end with EOS); GAE (gamma, lambda)
/// gives advantages, whitened over the batch, and returns; then --ppo-epochs passes of
/// --minibatches updates minimise the clipped policy loss + vf_coef x the clipped value loss
/// (AdamW, betas 0.9/0.999, no weight decay, gradient norm clipped at 1).
///
/// The value head (value_head.safetensors: v_head.summary.weight [1, hidden] and .bias, TRL's
/// names) reads the policy's last hidden state and starts at zero; it and the optimiser's
/// moments (ppo_optimizer.safetensors, ppo_state.json) are saved beside the policy and picked
/// up from --policy (or --adapter) by the next iteration.
///
/// The statistics: score (mean reward), kl (mean over responses of the summed per-token KL),
/// non_score_reward, rlhf_reward, entropy, pg_loss, vf_loss, clipfrac, vf_clipfrac,
/// approx_kl, and the seconds spent recomputing and updating.
///
/// Examples:
///   generate --model policy/ < prompts.jsonl | rm-score --model rm/ > scored.jsonl
///   ppo-step --policy policy/ --ref sft/ -o policy-next/ < scored.jsonl >> ppo.jsonl
///   ppo-step --policy sft/ --ref sft/ --method lora -o lora-1/ < scored.jsonl
///   ppo-step --policy sft/ --adapter lora-1/ --ref sft/ -o lora-2/ < scored-2.jsonl
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// The policy that generated the rollouts (a Hugging Face folder).
    #[arg(long)]
    policy: PathBuf,
    /// The policy's adapter (LoRA) on top of --policy, from an earlier `--method lora` step;
    /// it is what trains, and -o gets the updated adapter.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// The frozen reference model the KL penalty is measured against (usually the SFT model).
    #[arg(long = "ref", value_name = "DIR")]
    reference: PathBuf,
    /// Where the updated policy goes.
    #[arg(short, long)]
    out: PathBuf,
    /// What trains [default: full; with --adapter, the adapter].
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// Scored rollouts, JSONL ('-' or none: stdin).
    files: Vec<String>,
    /// The KL penalty's coefficient.
    #[arg(long, default_value_t = 0.05)]
    kl_coef: f64,
    /// The per-token KL estimator.
    #[arg(long, value_enum, default_value = "k1")]
    kl_estimator: Kl,
    /// Subtracted from the score of responses that did not end with EOS.
    #[arg(long)]
    missing_eos_penalty: Option<f64>,
    /// Discount.
    #[arg(long, default_value_t = 1.0)]
    gamma: f64,
    /// GAE's lambda.
    #[arg(long, default_value_t = 0.95)]
    lam: f64,
    /// The policy ratio's clip range.
    #[arg(long, default_value_t = 0.2)]
    cliprange: f64,
    /// The value estimate's clip range.
    #[arg(long, default_value_t = 0.2)]
    cliprange_value: f64,
    /// The value loss's weight.
    #[arg(long, default_value_t = 0.1)]
    vf_coef: f64,
    /// Passes over the batch.
    #[arg(long, default_value_t = 4)]
    ppo_epochs: usize,
    /// Minibatches per pass.
    #[arg(long, default_value_t = 1)]
    minibatches: usize,
    /// Learning rate (constant).
    #[arg(long, default_value_t = 1e-5)]
    lr: f64,
    /// The sampling temperature the rollouts were generated at (log-probs are computed at it).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// Rollouts per forward pass while recomputing.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Seed of the minibatch order (and of a fresh LoRA adapter).
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.threads;
    wick_io::run_main("ppo-step", || {
        wick_model::runtime::run(threads, || body(cli))
    })
}

const STATE: &str = "ppo_state.json";
const OPTIMISER: &str = "ppo_optimizer.safetensors";

fn body(cli: Cli) -> Result<()> {
    let started = Instant::now();
    for (name, v, lo, hi) in [
        ("--cliprange", cli.cliprange, 0.0, 1.0),
        ("--lam", cli.lam, 0.0, 1.0),
        ("--gamma", cli.gamma, 0.0, 1.0),
    ] {
        if !(lo..=hi).contains(&v) {
            return Err(Error::msg(format!("{name} must be in [{lo}, {hi}]")));
        }
    }
    if cli.temperature <= 0.0 {
        return Err(Error::msg(
            "--temperature must be positive (PPO needs sampled rollouts; greedy ones have no log-probs to compare)",
        ));
    }
    if cli.adapter.is_some() && cli.method == Some(Method::Full) {
        return Err(Error::msg(
            "--method full with --adapter: fold the adapter in first with lora-merge",
        ));
    }
    let same = |a: &Path, b: &Path| {
        std::fs::canonicalize(a)
            .ok()
            .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
    };
    if same(&cli.out, &cli.policy) || cli.adapter.as_deref().is_some_and(|a| same(&cli.out, a)) {
        return Err(Error::msg(
            "-o must be a new folder: the next iteration reads the policy this one started from",
        ));
    }
    // Checked before minutes of work: -o is replaced only when it is an earlier ppo-step output.
    wick_io::check_replaceable(&cli.out, Kind::Policy, "-o")?;
    let folder = Folder::open(&cli.policy)?;
    let stop = folder.stop_ids();
    let mut policy = folder.model;
    let lora = cli.adapter.is_some() || cli.method == Some(Method::Lora);
    // Where the value head and optimiser state of the previous iteration live.
    let state_dir = cli.adapter.clone().unwrap_or(cli.policy.clone());
    match &cli.adapter {
        Some(a) => policy
            .load_any_adapter(a)
            .map_err(|e| e.context(a.display()))?,
        None if lora => policy.add_adapter(
            &LoraConfig {
                r: 8,
                alpha: 16.0,
                rslora: false,
                dropout: 0.0,
                targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                    .map(String::from)
                    .to_vec(),
            },
            cli.seed,
        )?,
        None => {}
    }
    let reference = Llama::load(&cli.reference).map_err(|e| e.context("--ref"))?;
    if reference.config.vocab_size != policy.config.vocab_size {
        return Err(Error::msg(format!(
            "--ref {}: its vocabulary ({}) differs from the policy's ({}): the KL penalty compares the same tokens",
            cli.reference.display(),
            reference.config.vocab_size,
            policy.config.vocab_size
        )));
    }
    let rollouts = rollouts::read(
        &cli.files,
        policy.config.max_position_embeddings,
        policy.config.vocab_size,
        &stop,
    )?;
    let hidden = policy.config.hidden_size;
    let value = match ValueHead::load(&state_dir, hidden)? {
        Some(v) => v,
        None => ValueHead::zeros(hidden)?,
    };
    let (iteration, opt_steps) = read_state(&state_dir)?;
    let o = Options {
        hyper: Hyper {
            kl_coef: cli.kl_coef,
            estimator: match cli.kl_estimator {
                Kl::K1 => KlEstimator::K1,
                Kl::K3 => KlEstimator::K3,
            },
            gamma: cli.gamma,
            lam: cli.lam,
            cliprange: cli.cliprange,
            cliprange_value: cli.cliprange_value,
            vf_coef: cli.vf_coef,
            missing_eos_penalty: cli.missing_eos_penalty,
        },
        epochs: cli.ppo_epochs.max(1),
        minibatches: cli.minibatches.max(1),
        lr: cli.lr,
        temperature: cli.temperature,
        grad_clip: cli.grad_clip,
        batch_size: cli.batch_size,
        seed: cli.seed,
    };
    let say = |m: String| {
        if !cli.quiet {
            eprintln!("ppo-step: {m}");
        }
    };
    say(format!(
        "iteration {}: {} rollouts, {} response tokens",
        iteration + 1,
        rollouts.len(),
        rollouts.iter().map(|r| r.response_ids.len()).sum::<usize>()
    ));
    let t0 = Instant::now();
    let rec = step::recompute(&policy, &value, &reference, &rollouts, &o)?;
    drop(reference);
    let targets = ppo::targets(&rec.rollouts, &o.hyper);
    let recompute_s = step::secs(t0);

    let t1 = Instant::now();
    let mut vars = if lora {
        policy.make_adapter_trainable()?
    } else {
        policy.make_trainable()?
    };
    vars.extend(value.vars());
    let mut opt = step::optimiser(vars)?;
    let moments = state_dir.join(OPTIMISER);
    if moments.is_file() {
        let m = candle_core::safetensors::load(&moments, &candle_core::Device::Cpu)
            .map_err(|e| Error::msg(format!("{}: cannot read: {e}", moments.display())))?;
        opt.load_state(&m, opt_steps)
            .map_err(|e| e.context(moments.display()))?;
    }
    let batch = step::Batch {
        rollouts: &rollouts,
        recomputed: &rec,
        targets: &targets,
    };
    let upd = step::update(&policy, &value, &mut opt, &batch, &o, iteration)?;
    let update_s = step::secs(t1);

    // Everything into a temporary folder, then swapped in: a failed or killed step leaves no
    // half policy, and rerunning the same command redoes the same step.
    let dir = OutDir::create(&cli.out, Kind::Policy, "ppo-step", "-o")?;
    let tmp = dir.path();
    if lora {
        let base =
            std::fs::canonicalize(&cli.policy).map_err(|e| Error::io(cli.policy.display(), e))?;
        policy.save_adapter(tmp, &base.display().to_string())?;
    } else {
        policy.save(tmp)?;
        wick_train::copy_tokenizer_files(&cli.policy, tmp)?;
    }
    value.save(tmp)?;
    wick_model::save_safetensors(&opt.state_tensors()?, &tmp.join(OPTIMISER))?;
    let state = json!({"iteration": iteration + 1, "optimizer_steps": opt.step});
    wick_io::write_atomic(tmp.join(STATE), (state.to_string() + "\n").as_bytes())?;
    dir.commit()?;

    let line = step::stats(
        iteration + 1,
        &rollouts,
        &rec,
        &targets,
        upd,
        cli.lr,
        (recompute_s, update_s, step::secs(started)),
    );
    say(format!(
        "score {:.4}, kl {:.4}, entropy {:.3}, clipfrac {:.3}, {:.2}s (recompute {:.2}s, update {:.2}s); policy in {}",
        line["score"].as_f64().unwrap_or(0.0),
        line["kl"].as_f64().unwrap_or(0.0),
        line["entropy"].as_f64().unwrap_or(0.0),
        line["clipfrac"].as_f64().unwrap_or(0.0),
        step::secs(started),
        recompute_s,
        update_s,
        cli.out.display()
    ));
    let mut out = Output::create(None)?;
    out.put((line.to_string() + "\n").as_bytes())?;
    out.finish()?;
    Ok(())
}

/// (iterations done, optimiser steps taken) from the state beside the starting policy.
fn read_state(dir: &Path) -> Result<(u64, u64)> {
    let p = dir.join(STATE);
    if !p.is_file() {
        return Ok((0, 0));
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(p.display(), e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::msg(format!("{}: {e}", p.display())))?;
    let get = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| Error::msg(format!("{}: no {k:?}", p.display())))
    };
    Ok((get("iteration")?, get("optimizer_steps")?))
}
