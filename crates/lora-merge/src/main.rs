use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use wick_io::{Error, Kind, OutDir, Result};
use wick_model::{Adapter, Llama};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Fold a LoRA adapter into its base model: W' = W + (alpha / r) B A (alpha / sqrt(r) with
/// rsLoRA), for every layer the adapter holds.
///
/// Reads a Hugging Face base folder (config.json, model.safetensors) and a PEFT LoRA adapter
/// folder (adapter_config.json, adapter_model.safetensors; wick's `train --method lora` writes
/// the same), and writes a complete Hugging Face folder: config.json (the base's), the merged
/// model.safetensors, and the base's tokenizer files. The output is built in a temporary folder
/// beside it and swapped into place, so it is never half-written; an existing -o is replaced
/// only when it is an earlier lora-merge output that holds nothing else. Adapters that add layers
/// (Houlsby bottleneck adapters) cannot be folded into the weights: load them beside the base
/// with the tools' --adapter instead.
///
/// Example:
///   lora-merge --base base/ --adapter runs/sft-lora -o merged/
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// The base model's Hugging Face folder.
    #[arg(long)]
    base: PathBuf,
    /// The adapter folder.
    #[arg(long)]
    adapter: PathBuf,
    /// Output folder (new, empty, or an earlier lora-merge output to replace).
    #[arg(short, long)]
    output: PathBuf,
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    wick_io::run_main("lora-merge", || body(cli))
}

/// Houlsby adapters are refused with the reason, not as an unknown PEFT type.
fn check_mergeable(adapter: &Path) -> Result<()> {
    if wick_model::houlsby::is_houlsby(adapter) {
        return Err(Error::msg(format!(
            "{}: a Houlsby (bottleneck) adapter adds layers and cannot be folded into the weights; load it beside the base with --adapter",
            adapter.display()
        )));
    }
    Ok(())
}

fn body(cli: Cli) -> Result<()> {
    wick_io::check_replaceable(&cli.output, Kind::Model, "-o")?;
    check_mergeable(&cli.adapter)?;
    let mut model = Llama::load(&cli.base)?;
    let adapter = Adapter::load(&cli.adapter)?;
    model
        .apply_adapter(&adapter)
        .map_err(|e| e.context(cli.adapter.display()))?;
    model.merge_adapter()?;

    let dir = OutDir::create(&cli.output, Kind::Model, "lora-merge", "-o")?;
    model.save(dir.path())?;
    wick_train::copy_tokenizer_files(&cli.base, dir.path())?;
    dir.commit()?;
    if !cli.quiet {
        let c = &adapter.config;
        eprintln!(
            "lora-merge: {} layers merged (r {}, alpha {}, scale {:.6}{}) -> {}",
            adapter.weights.len(),
            c.r,
            c.alpha,
            c.scale(),
            if c.rslora { ", rsLoRA" } else { "" },
            cli.output.display()
        );
    }
    Ok(())
}
