use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use wick_cli::{Model, OutputDir, Quiet};
use wick_io::{Error, Kind, OutDir, Result};
use wick_model::{Llama, LoraAdapter};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Fold a LoRA adapter into its base model: W' = W + (alpha / r) B A (alpha / sqrt(r) with
/// rsLoRA), for every layer the adapter holds.
///
/// Reads a Hugging Face model folder (config.json, model.safetensors) and a PEFT LoRA adapter
/// folder (adapter_config.json, adapter_model.safetensors; wick's `train --method lora` writes
/// the same), and writes a complete Hugging Face folder: config.json (the base's), the merged
/// model.safetensors, and the base's tokenizer files. The output is built in a temporary folder
/// beside it and swapped into place, so it is never half-written; an existing -o is replaced
/// only when it is an earlier lora-merge output that holds nothing else. Adapters that add layers
/// (Houlsby bottleneck adapters) cannot be folded into the weights: load them beside the base
/// with the tools' --adapter instead.
///
/// Example:
///   lora-merge --model base/ --adapter runs/sft-lora -o merged/
#[derive(Parser)]
#[command(
    version,
    verbatim_doc_comment,
    mut_arg("model", |a| a.help("The base model's Hugging Face folder (config.json, \
        model.safetensors, tokenizer files).")),
    mut_arg("adapter", |a| a.required(true).help("The LoRA adapter folder (PEFT's \
        adapter_config.json, adapter_model.safetensors)."))
)]
struct Cli {
    #[command(flatten)]
    model: Model,
    #[command(flatten)]
    output: OutputDir,
    #[command(flatten)]
    quiet: Quiet,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    wick_io::run_main("lora-merge", || body(cli))
}

/// Houlsby adapters are refused with the reason, not as an unknown PEFT type.
fn check_mergeable(adapter: &Path) -> Result<()> {
    if wick_model::bottleneck::is_bottleneck(adapter) {
        return Err(Error::msg(format!(
            "{}: a Houlsby (bottleneck) adapter adds layers and cannot be folded into the weights; load it beside the base with --adapter",
            adapter.display()
        )));
    }
    Ok(())
}

fn body(cli: Cli) -> Result<()> {
    let base = &cli.model.model;
    let adapter_dir = cli.model.adapter.as_deref().expect("required by clap");
    let output = &cli.output.output;
    wick_io::check_replaceable(output, Kind::Model, "-o")?;
    check_mergeable(adapter_dir)?;
    let mut model = Llama::load(base)?;
    let adapter = LoraAdapter::load(adapter_dir)?;
    model
        .apply_lora(&adapter)
        .map_err(|e| e.context(adapter_dir.display()))?;
    model.merge_adapter()?;

    let dir = OutDir::create(output, Kind::Model, "lora-merge", "-o")?;
    model.save(dir.path())?;
    wick_text::copy_tokenizer_files(base, dir.path())?;
    dir.commit()?;
    if !cli.quiet.quiet {
        let c = &adapter.config;
        eprintln!(
            "lora-merge: {} layers merged (r {}, alpha {}, scale {:.6}{}) -> {}",
            adapter.weights.len(),
            c.r,
            c.alpha,
            c.scale(),
            if c.rslora { ", rsLoRA" } else { "" },
            output.display()
        );
    }
    Ok(())
}
