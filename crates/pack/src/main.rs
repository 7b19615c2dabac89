use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pack::{info, info_json, pack_inputs};
use wick_cli::{OutputDirUnlessSubcommand, Quiet, SkipInvalid};
use wick_io::{human_bytes, inputs_or_stdin, Error, Progress, Result};
use wick_shard::{verify, Dtype, PackOptions, Packer, ShardSet};
use wick_text::Tok;

/// Pack tokenized JSONL ("ids", optional "mask") into a directory of llm.c-compatible token
/// shards with a manifest; verify and inspect shard directories.
///
/// Each document ends with EOS (appended when its ids do not already end with it). A document
/// goes to val or train by a hash of its "id" field (or of its ids), so it stays in its split
/// when the corpus grows; documents are shuffled within each split with --seed. Shards hold
/// whole documents; beside each <split>_NNNNNN.bin are .docs (document starts) and, when the
/// records carry masks, .mask (1 = token counts for loss). See docs/FORMATS.md.
///
/// Examples:
///   tokenize -t tokenizer.json corpus.jsonl | pack -t tokenizer.json -o shards/
///   pack verify shards/
///   pack info shards/
#[derive(Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    mut_arg("output", |a| a.help(
        "Output shard directory: new, empty, or an earlier pack output (replaced only when the \
         new one is complete); a folder holding files wick did not write is refused."
    ))
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    pack: PackArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Check headers, sizes, checksums, sidecars, that every id is below the vocabulary size,
    /// that the tokenizer the manifest names is there (same checksum), and that every file the
    /// manifest names lies inside the directory.
    Verify {
        /// Shard directory, directory of llm.c shards, or one .bin file.
        dir: PathBuf,
        /// Vocabulary size to check ids against (default: the manifest's).
        #[arg(long)]
        vocab_size: Option<usize>,
    },
    /// Tokens, documents, splits and dtype of a shard directory.
    Info {
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DtypeChoice {
    /// uint16 when the vocabulary fits (as llm.c's GPT-2 shards), else uint32.
    Auto,
    Uint16,
    Uint32,
}

#[derive(Args)]
struct PackArgs {
    /// The tokenizer.json (or model folder) the ids came from; it is copied into the directory.
    #[arg(long, short = 't', required = true)]
    tokenizer: Option<PathBuf>,
    #[command(flatten)]
    output: OutputDirUnlessSubcommand,
    /// Tokenized JSONL inputs; stdin when none is named or for "-". Lines may be up to
    /// 256 MiB; a UTF-8 byte-order mark at the start of a file is skipped.
    files: Vec<String>,
    /// Fraction of documents for the val split.
    #[arg(long, default_value_t = 0.01)]
    val_fraction: f64,
    /// Field whose value decides a document's split (its ids when the record has none).
    #[arg(long, default_value = "id")]
    split_key: String,
    /// Seed of the document shuffle within each split.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Keep input order instead of shuffling.
    #[arg(long)]
    no_shuffle: bool,
    /// Tokens per shard (llm.c's default); shards hold whole documents.
    #[arg(long, default_value_t = 100_000_000)]
    shard_tokens: usize,
    /// Token width on disk.
    #[arg(long, value_enum, default_value_t = DtypeChoice::Auto)]
    dtype: DtypeChoice,
    /// Field holding the ids.
    #[arg(long, default_value = "ids")]
    field: String,
    /// EOS token to use instead of the one tokenizer_config.json names.
    #[arg(long)]
    eos: Option<String>,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
    #[command(flatten)]
    quiet: Quiet,
}

// Records are allocated on one thread and freed on another, many small vectors each: mimalloc
// takes less CPU than glibc's malloc here (docs/speed.md, "Measured history: data tools").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    wick_io::run_main("pack", || match cli.command {
        Some(Command::Verify { dir, vocab_size }) => {
            let r = verify(&dir, vocab_size);
            for p in &r.problems {
                eprintln!("pack verify: {p}");
            }
            if r.problems.is_empty() {
                println!(
                    "{}: OK: {} shards, {} tokens, {} documents",
                    dir.display(),
                    r.shards,
                    r.tokens,
                    r.documents
                );
                Ok(())
            } else {
                Err(Error::msg(format!(
                    "{}: {} problem(s) found",
                    dir.display(),
                    r.problems.len()
                )))
            }
        }
        Some(Command::Info { dir, json }) => {
            let set = ShardSet::open(&dir)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&info_json(&set)).expect("JSON value")
                );
            } else {
                print!("{}", info(&set));
            }
            Ok(())
        }
        None => pack(cli.pack),
    })
}

fn pack(a: PackArgs) -> Result<()> {
    let mut tok = Tok::load(a.tokenizer.expect("required by clap"))?;
    if let Some(eos) = &a.eos {
        tok.set_eos(eos)?;
    }
    let vocab_size = tok.vocab_size();
    let dtype = match a.dtype {
        DtypeChoice::Auto => Dtype::for_vocab(vocab_size),
        DtypeChoice::Uint16 => Dtype::Uint16,
        DtypeChoice::Uint32 => Dtype::Uint32,
    };
    let opts = PackOptions {
        shard_tokens: a.shard_tokens,
        dtype,
        val_fraction: a.val_fraction,
        split_key: a.split_key.clone(),
        shuffle_seed: (!a.no_shuffle).then_some(a.seed),
        vocab_size,
        eos_id: tok.require_eos()?,
    };
    let out = a.output.output.expect("required by clap");
    let mut packer = Packer::create(&out, opts, &tok.path, &tok.hash)?;
    let mut progress = Progress::new("pack", a.quiet.quiet);
    let sum = pack_inputs(
        &mut packer,
        &inputs_or_stdin(&a.files),
        &a.field,
        &a.split_key,
        a.skip_invalid.skip_invalid,
        &mut progress,
    )?;
    let m = packer.finish()?;
    progress.finish(|secs| {
        let skipped = wick_io::Skipped::suffix(sum.skipped);
        format!("{} documents ({} val), {} tokens incl. EOS from {} → {} shards in {} ({secs:.2} s){skipped}",
            sum.documents, sum.val_documents, m.splits.values().map(|s| s.tokens).sum::<u64>(),
            human_bytes(sum.bytes), m.shards.len(), out.display())
    });
    Ok(())
}
