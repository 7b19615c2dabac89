use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use wick_io::{Error, Result};
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
/// beside it and renamed into place, so it is never half-written. Adapters that add layers
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
    /// Output folder (must not exist, or be empty).
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
    if cli.output.exists()
        && std::fs::read_dir(&cli.output)
            .map_err(|e| Error::io(cli.output.display(), e))?
            .next()
            .is_some()
    {
        return Err(Error::msg(format!(
            "{}: exists and is not empty; choose another -o",
            cli.output.display()
        )));
    }
    check_mergeable(&cli.adapter)?;
    let mut model = Llama::load(&cli.base)?;
    let adapter = Adapter::load(&cli.adapter)?;
    model
        .apply_adapter(&adapter)
        .map_err(|e| e.context(cli.adapter.display()))?;
    model.merge_adapter()?;

    let parent = match cli.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    wick_io::create_dir_all(&parent)?;
    let name = cli
        .output
        .file_name()
        .ok_or_else(|| Error::msg(format!("{}: not a folder name", cli.output.display())))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let write = || -> Result<()> {
        model.save(&tmp)?;
        wick_train::copy_tokenizer_files(&cli.base, &tmp)?;
        if cli.output.exists() {
            std::fs::remove_dir(&cli.output).map_err(|e| Error::io(cli.output.display(), e))?;
        }
        std::fs::rename(&tmp, &cli.output).map_err(|e| Error::io(cli.output.display(), e))
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
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
