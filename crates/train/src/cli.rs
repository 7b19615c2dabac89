//! `train`'s flags.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskFlag {
    /// Next-token prediction on every token of the shards.
    Pretrain,
    /// Supervised fine-tuning: whole examples (the shards' documents, packed from tokenized SFT
    /// records), loss only on the response tokens (the .mask sidecar), in epochs.
    Sft,
    /// A reward model: --data is preference pairs (JSONL {prompt, chosen, rejected}, optional
    /// margin); the --model model gets a scalar head and learns the Bradley-Terry loss
    /// -log sigmoid(r_chosen - r_rejected - margin). Written as a Hugging Face
    /// ...ForSequenceClassification folder (num_labels 1, pad_token_id) for rm-score.
    Reward,
    /// Direct preference optimisation: --data is preference pairs; the policy (--model) learns
    /// DPO's sigmoid loss against the frozen --ref-model (its log-probs computed once).
    Dpo,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodFlag {
    /// Every weight trains.
    Full,
    /// A LoRA adapter (rank --lora-r on --lora-targets) trains; the base is frozen: no
    /// gradients, no optimiser state for it. Needs --model; writes PEFT's adapter files.
    Lora,
    /// Houlsby bottleneck adapters (down projection, SiLU, up projection starting at zero,
    /// residual) after every attention block and MLP train; the base is frozen. Needs --model;
    /// writes an adapter folder that ppl/generate/eval load with --adapter beside the base.
    Adapter,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Sched {
    Cosine,
    Linear,
    Constant,
}

/// Train a Llama-family model on token shards made by `pack`.
///
/// Starts from a config (a config.json or a preset: nano = nanoGPT's CPU size, 4 layers x 128
/// wide, context 64; small = 6 layers x 384, context 256; tiny = for tests), from a Hugging Face
/// folder (--model), or from the checkpoint of an earlier run (--resume, exactly where it
/// stopped: same losses, bit for bit). Writes a Hugging Face folder (config.json,
/// model.safetensors, tokenizer files) to -o, plus checkpoint/ (optimiser state), best/ (lowest
/// val loss) and metrics.jsonl (one line per step: loss, lr, grad_norm, tokens_per_s, step_ms,
/// elapsed_s, val_loss at evaluations). -o must be new, empty, or a run folder of train's own
/// (never a folder train did not write); it is locked while a process trains in it. Ctrl-C or
/// SIGTERM writes a checkpoint and stops; after a kill at any instant, --resume continues to
/// the same result. A NaN or infinite loss or gradient stops the run before the update, at a
/// named checkpoint of finite weights (--skip-nonfinite passes over such steps). With --method
/// lora or adapter only the adapter trains (the --model base is frozen: no gradients, no
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
///   train --data shards/ --model runs/base --lr 3e-4 -o runs/more
///   train --data shards/ --model runs/base --method lora --lora-r 16 -o runs/lora
///   tokenize --tokenizer runs/base sft.jsonl | pack --tokenizer runs/base -o sft-shards
///   train --task sft --method lora --model runs/base --data sft-shards/ -o runs/sft-lora
///   train --task sft --method adapter --model runs/base --data sft-shards/ -o runs/sft-houlsby
///   train --task sft --model runs/base --adapter runs/sft-lora --data more-sft/ -o runs/sft-lora2
///   train --task dpo --model runs/sft --ref-model runs/sft --data pairs.jsonl -o runs/dpo
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Cli {
    /// What to train for.
    #[arg(long, value_enum, default_value = "pretrain")]
    pub task: TaskFlag,
    /// Shard directory made by `pack` (or a directory of llm.c shards); reward and dpo:
    /// preference pairs, JSONL.
    #[arg(long)]
    pub data: PathBuf,
    /// Reward and dpo: val pairs (JSONL) [default: every 20th pair of --data].
    #[arg(long, value_name = "FILE")]
    pub val: Option<PathBuf>,
    #[command(flatten)]
    pub reference: wick_cli::TaskRefModel,
    /// DPO: beta, the strength of the implicit KL constraint to --ref-model.
    #[arg(long, default_value_t = 0.1, alias = "beta")]
    pub dpo_beta: f64,
    /// Start from scratch with this config.json or preset (nano, small, tiny).
    #[arg(long, conflicts_with_all = ["model", "resume"])]
    pub config: Option<String>,
    #[command(flatten)]
    pub model: wick_cli::OptionalModel,
    /// Continue the run in this directory from its last checkpoint (its settings are reused;
    /// a run stopped before its first checkpoint starts again from its recorded start).
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub output: wick_cli::RunOutputDir,
    /// What trains [default: full; with --adapter, the adapter's kind].
    #[arg(long, value_enum)]
    pub method: Option<MethodFlag>,
    #[command(flatten)]
    pub lora: wick_cli::Lora,
    /// Houlsby adapters: bottleneck width = hidden size / this.
    #[arg(long, default_value_t = 16)]
    pub adapter_reduction: usize,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 12)]
    pub batch_size: usize,
    /// Tokens per sequence [default: the model's context, at most 1024].
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Optimiser steps in all (on --resume: a new end; the LR schedule is kept) [default: 2000;
    /// sft: --epochs worth].
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// SFT, reward, dpo: passes over the examples or pairs (fractions allowed), unless
    /// --max-steps is given [default: sft 3; reward, dpo 1].
    #[arg(long)]
    pub epochs: Option<f64>,
    /// SFT: one example per row, padded, instead of packing several per row.
    #[arg(long)]
    pub no_packing: bool,
    /// Peak learning rate [default: 1e-3; sft, reward: 1e-4; dpo: 2e-5].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Final learning rate of the decay [default: lr / 10; sft, reward, dpo: 1e-6].
    #[arg(long)]
    pub min_lr: Option<f64>,
    /// Linear warmup steps [default: 100; sft, reward, dpo: 3% of the steps].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Decay after warmup.
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: Sched,
    /// Step at which the decay reaches --min-lr [default: --max-steps].
    #[arg(long)]
    pub decay_steps: Option<u64>,
    /// Decoupled weight decay (AdamW) [default: 0.1; sft, reward, dpo: 0].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Decay 1-D parameters (norm weights, biases) too.
    #[arg(long)]
    pub decay_all: bool,
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.95)]
    pub beta2: f64,
    #[arg(long, default_value_t = 1e-8)]
    pub eps: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f64,
    /// Evaluate on the val split every N steps and at the end (0: never) [default: 250; sft:
    /// once per epoch; reward, dpo: 5 times in the run].
    #[arg(long)]
    pub eval_interval: Option<u64>,
    /// Val batches per evaluation (the same windows each time).
    #[arg(long, default_value_t = 20)]
    pub eval_batches: usize,
    /// Write a checkpoint every N steps (0: only at the end) [default: --eval-interval].
    #[arg(long)]
    pub checkpoint_interval: Option<u64>,
    /// Seed of the initial weights and of the batch order.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Stop (with a checkpoint) once this step is done, as if interrupted.
    #[arg(long)]
    pub stop_at: Option<u64>,
    /// Skip up to N steps whose loss or gradient norm is NaN or infinite (no update; logged
    /// with "skipped": true) before stopping. At 0 the first such step stops the run, with
    /// the weights before it checkpointed [counted over the whole run, resumes included].
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub skip_nonfinite: u64,
    /// (A resumed run keeps its precision; --grad-checkpoint may be turned on there.)
    #[command(flatten)]
    pub compute: wick_cli::Compute,
    /// The dtype of the model folders the run writes (the top level at the end, best/): f32,
    /// bf16 or f16; auto: the --model checkpoint's own (f32 from --config). Training itself
    /// keeps f32 weights and moments, and so does checkpoint/ (exact resumes) [default: auto].
    #[arg(long, value_enum, value_name = "D", conflicts_with = "resume")]
    pub save_dtype: Option<wick_cli::DtypeFlag>,
    // Not a setting of the run: --resume may continue it on another device.
    #[command(flatten)]
    pub device: wick_cli::Device,
    // Reward and dpo: bad preference pairs are set aside (give it again with --resume).
    #[command(flatten)]
    pub skip: wick_cli::SkipInvalid,
    #[command(flatten)]
    pub common: wick_cli::Common,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_spellings_still_parse() {
        let old = Cli::parse_from([
            "train", "--data", "d", "--init", "m", "--out", "o", "--ref", "r", "--beta", "0.3",
            "--task", "dpo",
        ]);
        let new = Cli::parse_from([
            "train",
            "--data",
            "d",
            "--model",
            "m",
            "--output",
            "o",
            "--ref-model",
            "r",
            "--dpo-beta",
            "0.3",
            "--task",
            "dpo",
        ]);
        for c in [old, new] {
            assert_eq!(c.model.model, Some(PathBuf::from("m")));
            assert_eq!(c.output.output, Some(PathBuf::from("o")));
            assert_eq!(c.reference.ref_model, Some(PathBuf::from("r")));
            assert_eq!(c.dpo_beta, 0.3);
        }
    }

    #[test]
    fn the_run_folder_is_needed_unless_resuming_and_old_names_stay_out_of_help() {
        assert!(Cli::try_parse_from(["train", "--data", "d", "--config", "tiny"]).is_err());
        assert!(Cli::try_parse_from(["train", "--data", "d", "--resume", "r"]).is_ok());
        assert!(
            Cli::try_parse_from(["train", "--data", "d", "--model", "m", "--resume", "r"]).is_err()
        );
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("--dpo-beta") && help.contains("--ref-model"));
        assert!(!help.contains("--init") && !help.contains("--beta <"));
    }
}
