//! The flag vocabulary of the wick tools, defined once: each group here is `#[command(flatten)]`ed
//! into the tools that take it, so the same thing has the same name, letter and help everywhere.
//!
//! | flag | meaning | old spellings (hidden aliases) |
//! |---|---|---|
//! | `-o, --output` | where the tool writes | `--out` |
//! | `--model DIR` | the Hugging Face model folder a tool reads | `--init` (train), `--policy` (ppo-step), `--base` (lora-merge) |
//! | `--adapter DIR` | an adapter folder (LoRA or bottleneck) on top of `--model` | |
//! | `--ref-model DIR` | a frozen reference model (DPO, PPO's KL) | `--ref` |
//! | `--lora-r`, `--lora-alpha`, `--lora-dropout`, `--rslora`, `--lora-targets` | a new LoRA adapter | |
//! | `--threads N` | worker threads | |
//! | `-q, --quiet` | no progress on stderr | |
//! | `--skip-invalid` | skip bad records (counted) instead of stopping | |
//! | `--per-record` | one output line per input record | `--per-doc` |
//! | `--precision P`, `--grad-checkpoint` | how a training tool computes (mixed precision, recomputation) | |
//! | `--dtype D` | the dtype a tool keeps a model's weights in | |
//! | `--device DEV` | where a model tool runs its model: cpu, cuda, cuda:N | |
//!
//! Tool-specific renames that are not groups here: train's `--dpo-beta` (was `--beta`, beside
//! AdamW's `--beta1/--beta2`); eval's field names end in `-field` (`--pred-field`, `--ref-field`,
//! `--context-field`, `--endings-field`, `--label-field`); plot's `--image-format` (was
//! `--format`, which is tokenize's input format).
//!
//! Each group comes in the variants the tools need (required or optional, one or many): the
//! common ones first, then the data tools' variants, then the training tools'. A variant keeps
//! its group's names, letters and old spellings; only what is required differs.
//!
//! The groups only parse; a tool's `main` maps them onto its library's types, and the libraries
//! word their errors in their own terms (a binary names the flag when it maps an error back).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// `--threads` and `-q/--quiet`: on every tool that does enough work to show progress.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Worker threads [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress or summary on stderr (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,
}

/// `-q/--quiet` alone, for tools that run on one thread.
#[derive(Args, Debug, Clone, Default)]
pub struct Quiet {
    /// No progress or summary on stderr (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--skip-invalid`: on every tool that reads JSONL records.
#[derive(Args, Debug, Clone, Default)]
pub struct SkipInvalid {
    /// Skip records that are not valid (not JSON, no usable field, …), counting them on
    /// stderr, instead of stopping at the first with its file and line.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// `-o/--output FILE`, where '-' or no flag is stdout.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputFile {
    /// Output file ('-': stdout) [default: stdout]. Written to a temporary file and renamed
    /// into place when complete.
    #[arg(short, long, value_name = "FILE", alias = "out")]
    pub output: Option<String>,
}

/// `-o/--output DIR`, a folder the tool writes (replaced only if wick wrote it).
#[derive(Args, Debug, Clone)]
pub struct OutputDir {
    /// Output folder: new, empty, or one this tool wrote before (replaced whole when the new
    /// one is complete); a folder holding files wick did not write is refused.
    #[arg(short, long, value_name = "DIR", alias = "out")]
    pub output: PathBuf,
}

/// `--model DIR` (required) and `--adapter DIR`: the model a tool reads.
#[derive(Args, Debug, Clone)]
pub struct Model {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR", aliases = ["init", "policy", "base"])]
    pub model: PathBuf,
    /// An adapter folder (adapter_config.json, adapter_model.safetensors) on top of --model:
    /// a PEFT LoRA adapter, or a bottleneck adapter from `train --method adapter`.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
}

/// `--precision` and `--grad-checkpoint`: how a training tool computes.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Precision and memory")]
pub struct Compute {
    /// Mixed precision, as torch.autocast: the matrix products (projections, attention, output
    /// head) round their operands to bf16 or fp16 and accumulate in f32; weights, AdamW
    /// moments, norms, softmax and the loss stay in f32. bf16 uses the CPU's AVX512_BF16 dot
    /// products where it has them. fp16 scales the loss as torch.amp.GradScaler does (2^16 at
    /// first, x2 after 2000 finite steps in a row, x0.5 with the step skipped when a gradient
    /// is inf/NaN; such steps are logged "skipped": true) [default: f32].
    #[arg(long, value_enum, value_name = "P")]
    pub precision: Option<PrecisionFlag>,
    /// Gradient checkpointing: keep only each decoder block's input and output, and recompute
    /// the block in the backward pass (far less memory for activations at long sequences, for
    /// about one more forward pass of compute).
    #[arg(long)]
    pub grad_checkpoint: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionFlag {
    F32,
    Bf16,
    Fp16,
}

impl Compute {
    /// The precision's name as wick-model spells it ("f32", "bf16", "fp16").
    pub fn precision_name(&self) -> &'static str {
        match self.precision {
            None | Some(PrecisionFlag::F32) => "f32",
            Some(PrecisionFlag::Bf16) => "bf16",
            Some(PrecisionFlag::Fp16) => "fp16",
        }
    }
}

/// `--dtype`: the dtype the weights of the model a tool reads stay in, in memory.
#[derive(Args, Debug, Clone, Default)]
pub struct Dtype {
    /// Keep the weights in this dtype (bf16 and f16 halve the bytes read per token, and the
    /// products run in it with f32 accumulation); auto: the checkpoint's own (config.json's
    /// dtype / torch_dtype, else the tensors') [default: auto].
    #[arg(long, value_enum, value_name = "D")]
    pub dtype: Option<DtypeFlag>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtypeFlag {
    Auto,
    F32,
    Bf16,
    F16,
}

impl Dtype {
    /// The dtype's name as wick-model spells it ("auto", "f32", "bf16", "f16").
    pub fn name(&self) -> &'static str {
        self.dtype.map_or("auto", DtypeFlag::name)
    }
}

impl DtypeFlag {
    pub fn name(self) -> &'static str {
        match self {
            DtypeFlag::Auto => "auto",
            DtypeFlag::F32 => "f32",
            DtypeFlag::Bf16 => "bf16",
            DtypeFlag::F16 => "f16",
        }
    }
}

/// `--device`: where a model tool runs its model. Only parsed here: `wick_model::device` opens
/// it (and refuses CUDA in a build without it).
#[derive(Args, Debug, Clone, Default)]
pub struct Device {
    /// Where the model runs: cpu, cuda (the first GPU) or cuda:N. On a GPU every op runs as
    /// candle's CUDA kernels, --precision bf16 as bf16 products on the tensor cores; needs a
    /// build with --features cuda (make cuda) [default: cpu].
    #[arg(long, value_name = "DEV")]
    pub device: Option<String>,
}

impl Device {
    /// The device's name as given ("cpu" when not).
    pub fn name(&self) -> &str {
        self.device.as_deref().unwrap_or("cpu")
    }
}

/// `--ref-model DIR`: a frozen reference model.
#[derive(Args, Debug, Clone, Default)]
pub struct RefModel {
    /// The frozen reference model (usually the model training starts from) [default: --model].
    #[arg(long = "ref-model", value_name = "DIR", alias = "ref")]
    pub ref_model: Option<PathBuf>,
}

/// The settings of a new LoRA adapter, as PEFT's LoraConfig names them.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "LoRA (with --method lora)")]
pub struct Lora {
    /// LoRA rank.
    #[arg(long, default_value_t = 8, value_name = "R")]
    pub lora_r: usize,
    /// LoRA alpha: the update is scaled by alpha / r (alpha / sqrt(r) with --rslora).
    #[arg(long, default_value_t = 16.0, value_name = "ALPHA")]
    pub lora_alpha: f64,
    /// Dropout on the LoRA branch's input during training.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub lora_dropout: f64,
    /// Rank-stabilised scaling, alpha / sqrt(r).
    #[arg(long)]
    pub rslora: bool,
    /// Projections that get a LoRA adapter: any of q,k,v,o,gate,up,down, or all.
    #[arg(long, default_value = "q,k,v,o", value_name = "LIST")]
    pub lora_targets: String,
}

/// `--per-record`: one output line per input record.
#[derive(Args, Debug, Clone, Default)]
pub struct PerRecord {
    /// Write one JSON line per input record (the record plus its figures) on stdout, and the
    /// totals on stderr.
    #[arg(long, alias = "per-doc")]
    pub per_record: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Tool {
        #[command(flatten)]
        model: Model,
        #[command(flatten)]
        reference: RefModel,
        #[command(flatten)]
        output: OutputFile,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        per_record: PerRecord,
    }

    #[test]
    fn new_names_and_old_spellings_parse_the_same() {
        let new = Tool::parse_from([
            "t",
            "--model",
            "m",
            "--ref-model",
            "r",
            "-o",
            "x",
            "--per-record",
            "-q",
        ]);
        let old = Tool::parse_from([
            "t",
            "--init",
            "m",
            "--ref",
            "r",
            "--out",
            "x",
            "--per-doc",
            "-q",
        ]);
        for t in [new, old] {
            assert_eq!(t.model.model, PathBuf::from("m"));
            assert_eq!(t.reference.ref_model, Some(PathBuf::from("r")));
            assert_eq!(t.output.output.as_deref(), Some("x"));
            assert!(t.per_record.per_record && t.common.quiet);
        }
        assert!(Tool::try_parse_from(["t"]).is_err(), "--model is required");
    }

    #[derive(Parser)]
    struct ModelTool {
        #[command(flatten)]
        device: Device,
    }

    #[test]
    fn device_defaults_to_cpu_and_takes_any_name_for_the_model_library_to_judge() {
        assert_eq!(ModelTool::parse_from(["t"]).device.name(), "cpu");
        for d in ["cpu", "cuda", "cuda:1", "tpu"] {
            assert_eq!(ModelTool::parse_from(["t", "--device", d]).device.name(), d);
        }
        assert!(ModelTool::try_parse_from(["t", "--device"]).is_err());
    }

    #[test]
    fn old_spellings_stay_out_of_help() {
        let help = <Tool as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("--ref-model") && help.contains("--per-record"));
        assert!(!help.contains("--per-doc") && !help.contains("--init"));
    }
}

// ---------------------------------------------------------------------------------------------
// Variants for the data and evaluation tools (dedup, tokenize, pack, plot, label, eval). A tool
// whose flag says more than the shared help overrides the help with
// `#[command(mut_arg("output", |a| a.help("...")))]`; the names, letters and aliases stay these.

/// `-o/--output FILE`, required: a file the tool must be given (no stdout).
#[derive(Args, Debug, Clone)]
pub struct OutputFileRequired {
    /// Output file, written to a temporary file and renamed into place when complete.
    #[arg(short, long, value_name = "FILE", alias = "out")]
    pub output: PathBuf,
}

/// `-o/--output FILE`, any number of times: each gets the same output (plot's PNG and SVG).
#[derive(Args, Debug, Clone, Default)]
pub struct OutputFiles {
    /// Output file ('-': stdout); give it more than once for several [default: stdout].
    #[arg(short, long, value_name = "FILE", alias = "out")]
    pub output: Vec<String>,
}

/// `-o/--output DIR` for a tool with subcommands that do not take it: required when no
/// subcommand is given (clap's `subcommand_negates_reqs`), hence an `Option`.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputDirUnlessSubcommand {
    /// Output folder: new, empty, or one this tool wrote before (replaced whole when the new
    /// one is complete); a folder holding files wick did not write is refused.
    #[arg(short, long, value_name = "DIR", alias = "out", required = true)]
    pub output: Option<PathBuf>,
}

/// `--model DIR` and `--adapter DIR` for a tool where only some tasks read a model (eval).
#[derive(Args, Debug, Clone, Default)]
pub struct OptionalModel {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR", aliases = ["init", "policy", "base"])]
    pub model: Option<PathBuf>,
    /// An adapter folder (adapter_config.json, adapter_model.safetensors) on top of --model:
    /// a PEFT LoRA adapter, or a bottleneck adapter from `train --method adapter`.
    #[arg(long, value_name = "DIR", requires = "model")]
    pub adapter: Option<PathBuf>,
}

#[cfg(test)]
mod data_tool_variant_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Tool {
        #[command(flatten)]
        required: OutputFileRequired,
        #[command(flatten)]
        model: OptionalModel,
    }

    #[derive(Parser)]
    struct Many {
        #[command(flatten)]
        outputs: OutputFiles,
    }

    #[test]
    fn variants_take_the_same_names_and_old_spellings() {
        let t = Tool::parse_from(["t", "--out", "f", "--base", "m"]);
        assert_eq!(t.required.output, PathBuf::from("f"));
        assert_eq!(t.model.model, Some(PathBuf::from("m")));
        assert!(Tool::try_parse_from(["t"]).is_err(), "-o is required");
        let m = Many::parse_from(["t", "-o", "a.png", "--out", "b.svg", "--output", "c"]);
        assert_eq!(m.outputs.output, ["a.png", "b.svg", "c"]);
    }
}

// Variants for the training tools (train, ppo-step).

/// `-o/--output DIR` for a run folder that `--resume DIR` (a flag of the tool's own) can
/// stand in for: `train`.
#[derive(Args, Debug, Clone, Default)]
pub struct RunOutputDir {
    /// Output folder (a Hugging Face folder plus checkpoint/, best/, metrics.jsonl): new,
    /// empty, or an earlier run folder of this tool's without a checkpoint.
    #[arg(
        short,
        long,
        value_name = "DIR",
        alias = "out",
        required_unless_present = "resume"
    )]
    pub output: Option<PathBuf>,
}

/// `--ref-model DIR`, required: a tool that always measures against a reference (`ppo-step`).
#[derive(Args, Debug, Clone)]
pub struct RequiredRefModel {
    /// The frozen reference model (usually the model training started from).
    #[arg(long = "ref-model", value_name = "DIR", alias = "ref")]
    pub ref_model: PathBuf,
}

/// `--ref-model DIR` without a default: a tool where only some tasks take a reference
/// (`train --task dpo`).
#[derive(Args, Debug, Clone, Default)]
pub struct TaskRefModel {
    /// DPO: the frozen reference model (usually the --model folder).
    #[arg(long = "ref-model", value_name = "DIR", alias = "ref")]
    pub ref_model: Option<PathBuf>,
}
