use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use ppo_step::rollouts;
use ppo_step::step::{self, Options};
use ppo_step::value_head::ValueHead;
use serde_json::json;
use wick_io::{Error, Kind, OutDir, Output, Result};
use wick_model::Folder;
use wick_rl::ppo::{self, Hyper, KlEstimator};
use wick_train::{LoraError, LossScaler, Method};

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
enum MethodFlag {
    /// Every weight of the policy trains; -o gets a whole model folder.
    Full,
    /// A fresh LoRA adapter (--lora-r, --lora-alpha, ... on --lora-targets) on the frozen
    /// --model trains; -o gets the adapter folder. Continue it later with --adapter.
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
/// up from --model (or --adapter) by the next iteration.
///
/// The statistics: score (mean reward), kl (mean over responses of the summed per-token KL),
/// non_score_reward, rlhf_reward, entropy, pg_loss, vf_loss, clipfrac, vf_clipfrac,
/// approx_kl, and the seconds spent recomputing and updating.
///
/// Examples:
///   generate --model policy/ < prompts.jsonl | rm-score --model rm/ > scored.jsonl
///   ppo-step --model policy/ --ref-model sft/ -o policy-next/ < scored.jsonl >> ppo.jsonl
///   ppo-step --model sft/ --ref-model sft/ --method lora -o lora-1/ < scored.jsonl
///   ppo-step --model sft/ --adapter lora-1/ --ref-model sft/ -o lora-2/ < scored-2.jsonl
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    // The policy that generated the rollouts and, with --adapter, its adapter from an earlier
    // `--method lora` step: that adapter is what trains, and -o gets the updated one.
    #[command(flatten)]
    model: wick_cli::Model,
    // The frozen reference model the KL penalty is measured against (usually the SFT model).
    #[command(flatten)]
    reference: wick_cli::RequiredRefModel,
    // Where the updated policy goes.
    #[command(flatten)]
    output: wick_cli::OutputDir,
    /// What trains [default: full; with --adapter, the adapter].
    #[arg(long, value_enum)]
    method: Option<MethodFlag>,
    #[command(flatten)]
    lora: wick_cli::Lora,
    #[command(flatten)]
    skip_invalid: wick_cli::SkipInvalid,
    // (fp16's loss scale carries over to the next iteration in ppo_state.json.)
    #[command(flatten)]
    compute: wick_cli::Compute,
    #[command(flatten)]
    device: wick_cli::Device,
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
    #[command(flatten)]
    common: wick_cli::Common,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.common.threads;
    wick_io::run_main("ppo-step", || {
        wick_model::runtime::run(threads, || body(cli))
    })
}

/// The next iteration reads these beside the policy: the iteration count and optimiser steps
/// (JSON), and AdamW's moments in the engine's format.
const STATE: &str = "ppo_state.json";
const OPTIMISER: &str = "ppo_optimizer.safetensors";

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

/// What trains: the whole policy, a fresh LoRA adapter, or the one --adapter continues.
fn method(cli: &Cli) -> Result<Method> {
    if let Some(dir) = &cli.model.adapter {
        if cli.method == Some(MethodFlag::Full) {
            return Err(Error::msg(
                "--method full with --adapter: fold the adapter in first with lora-merge",
            ));
        }
        // The adapter keeps its own settings.
        return Method::of_adapter(dir).map_err(|e| e.context(dir.display()));
    }
    Ok(match cli.method.unwrap_or(MethodFlag::Full) {
        MethodFlag::Full => Method::Full,
        MethodFlag::Lora => {
            let l = &cli.lora;
            Method::Lora(
                wick_train::lora_config(
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
    let method = method(&cli)?;
    let (policy_dir, adapter, out) = (&cli.model.model, &cli.model.adapter, &cli.output.output);
    let same = |a: &Path, b: &Path| {
        std::fs::canonicalize(a)
            .ok()
            .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
    };
    if same(out, policy_dir) || adapter.as_deref().is_some_and(|a| same(out, a)) {
        return Err(Error::msg(
            "-o must be a new folder: the next iteration reads the policy this one started from",
        ));
    }
    // Checked before minutes of work: -o is replaced only when it is an earlier ppo-step output.
    wick_io::check_replaceable(out, Kind::Policy, "-o")?;
    let device = wick_model::runtime::open_device(cli.device.name())?;
    let folder = Folder::open(policy_dir)?;
    let stop = folder.stop_ids();
    let mut policy = folder.model;
    policy.to_device(&device)?;
    // Where the value head and optimiser state of the previous iteration live.
    let state_dir = adapter.clone().unwrap_or(policy_dir.clone());
    match (adapter, &method) {
        (Some(a), _) => policy.load_adapter(a).map_err(|e| e.context(a.display()))?,
        (None, Method::Lora(c)) => policy.add_lora(c, cli.seed)?,
        (None, _) => {}
    }
    let lora = method.trains_adapter();
    let mut reference = wick_train::load_reference(&cli.reference.ref_model, &policy.config)
        .map_err(|e| e.context("--ref-model"))?;
    reference.to_device(&device)?;
    let (rollouts, skipped) = rollouts::read_skipping(
        &cli.files,
        policy.config.max_position_embeddings,
        policy.config.vocab_size,
        &stop,
        cli.skip_invalid.skip_invalid,
    )?;
    let hidden = policy.config.hidden_size;
    let value = match ValueHead::load(&state_dir, hidden, &device)? {
        Some(v) => v,
        None => ValueHead::zeros(hidden, &device)?,
    };
    let (iteration, opt_steps, scaler) = read_state(&state_dir)?;
    let precision: wick_model::Precision = cli
        .compute
        .precision_name()
        .parse()
        .expect("wick-cli's names parse");
    // The rollouts' log-probs are recomputed in the precision the update runs in, so that the
    // first epoch's policy ratio starts at 1.
    let _autocast = wick_model::autocast(precision);
    policy.set_grad_checkpoint(cli.compute.grad_checkpoint);
    let mut scaler = match precision {
        wick_model::Precision::F16 => Some(scaler.unwrap_or_default()),
        _ => None,
    };
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
        if !cli.common.quiet {
            eprintln!("ppo-step: {m}");
        }
    };
    if skipped > 0 {
        say(format!("skipped {skipped} invalid records"));
    }
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
        opt.load_state(&wick_train::read_tensors(&moments)?, opt_steps)
            .map_err(|e| e.context(moments.display()))?;
    }
    let batch = step::Batch {
        rollouts: &rollouts,
        recomputed: &rec,
        targets: &targets,
    };
    let upd = step::update(
        &policy,
        &value,
        &mut opt,
        &mut scaler,
        &batch,
        &o,
        iteration,
    )?;
    let update_s = step::secs(t1);

    // Everything into a temporary folder, then swapped in: a failed or killed step leaves no
    // half policy, and rerunning the same command redoes the same step.
    let dir = OutDir::create(out, Kind::Policy, "ppo-step", "-o")?;
    let tmp = dir.path();
    // An adapter names its base; a whole model carries its tokenizer.
    let base = std::fs::canonicalize(policy_dir).map_err(|e| Error::io(policy_dir.display(), e))?;
    wick_train::save_model(&policy, tmp, &base.display().to_string())?;
    if !lora {
        wick_text::copy_tokenizer_files(policy_dir, tmp)?;
    }
    value.save(tmp)?;
    wick_train::save_moments(&opt, &tmp.join(OPTIMISER))?;
    let mut state = json!({"iteration": iteration + 1, "optimizer_steps": opt.step});
    if let Some(s) = &scaler {
        state["loss_scaler"] = json!(s);
    }
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
        out.display()
    ));
    let mut out = Output::create(None)?;
    out.put((line.to_string() + "\n").as_bytes())?;
    out.finish()?;
    Ok(())
}

/// (iterations done, optimiser steps taken, an fp16 run's loss scaler) from the state beside
/// the starting policy.
fn read_state(dir: &Path) -> Result<(u64, u64, Option<LossScaler>)> {
    let p = dir.join(STATE);
    if !p.is_file() {
        return Ok((0, 0, None));
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(p.display(), e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::msg(format!("{}: {e}", p.display())))?;
    let get = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| Error::msg(format!("{}: no {k:?}", p.display())))
    };
    let scaler = match v.get("loss_scaler") {
        None => None,
        Some(s) => Some(
            serde_json::from_value(s.clone())
                .map_err(|e| Error::msg(format!("{}: loss_scaler: {e}", p.display())))?,
        ),
    };
    Ok((get("iteration")?, get("optimizer_steps")?, scaler))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_spellings_still_parse() {
        let old = Cli::parse_from(["ppo-step", "--policy", "p", "--ref", "r", "--out", "o"]);
        let new = Cli::parse_from(["ppo-step", "--model", "p", "--ref-model", "r", "-o", "o"]);
        for c in [old, new] {
            assert_eq!(c.model.model, Path::new("p"));
            assert_eq!(c.reference.ref_model, Path::new("r"));
            assert_eq!(c.output.output, Path::new("o"));
        }
    }

    /// ppo-step's required flags, `--method lora`, then `extra`.
    fn lora_cli(extra: &[&str]) -> Cli {
        let mut args = vec![
            "ppo-step",
            "--model",
            "p",
            "--ref-model",
            "r",
            "-o",
            "o",
            "--method",
            "lora",
        ];
        args.extend(extra);
        Cli::parse_from(args)
    }

    #[test]
    fn lora_flags_make_the_adapter() {
        let Method::Lora(l) =
            method(&lora_cli(&["--lora-r", "4", "--lora-targets", "q,v,down"])).unwrap()
        else {
            panic!("a LoRA adapter")
        };
        assert_eq!((l.r, l.alpha), (4, 16.0));
        assert_eq!(l.targets, ["q_proj", "v_proj", "down_proj"]);
        // Without flags: PEFT's usual adapter, as ppo-step always made.
        let Method::Lora(l) = method(&lora_cli(&[])).unwrap() else {
            panic!("a LoRA adapter")
        };
        assert_eq!((l.r, l.alpha, l.rslora, l.dropout), (8, 16.0, false, 0.0));
        assert_eq!(l.targets, ["q_proj", "k_proj", "v_proj", "o_proj"]);
        let e = method(&lora_cli(&["--lora-r", "0"])).unwrap_err();
        assert!(e.to_string().contains("--lora-r"));
    }
}
