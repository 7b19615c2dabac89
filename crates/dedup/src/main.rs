use std::process::ExitCode;

use clap::Parser;
use dedup::engine::{Dedup, Keep, Options};
use dedup::minhash::bands_for_threshold;
use dedup::normalize::Normalization;
use dedup::shingle::Shingling;
use wick_io::{inputs_or_stdin, Error, Output, Result};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Remove exact and near-duplicate documents from JSONL: kept documents to stdout, in input
/// order.
///
/// Exact duplicates: equal xxh3-128 of the normalised text. Near duplicates: MinHash with
/// locality-sensitive hashing (datatrove's defaults: 14 bands × 8 rows = 112 hashes) over word
/// 5-grams, or character 5-grams for CJK text; documents sharing a band are joined by
/// union-find and each cluster keeps its first (or longest) document. --removed writes every
/// removed document with "dup_of" (the kept document's "id", or file:line), "similarity" (1
/// for exact duplicates, else the MinHash estimate against the kept document) and "dup_kind".
///
/// Examples:
///   dedup --removed removed.jsonl corpus.jsonl > kept.jsonl
///   dedup --threshold 0.9 --shingle char:5 zh.jsonl > kept.jsonl
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// JSONL inputs; stdin when none is named or for "-".
    files: Vec<String>,
    /// Write kept documents here instead of stdout.
    #[arg(long, short = 'o')]
    output: Option<String>,
    /// Write removed documents here, with "dup_of", "similarity" and "dup_kind".
    #[arg(long)]
    removed: Option<String>,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    field: String,
    /// Normalisation before hashing: any of nfkc, casefold, whitespace, punct; or none.
    #[arg(long, default_value = "nfkc,casefold,whitespace")]
    normalize: String,
    /// Shingles: auto (word:5, or char:5 for CJK documents), word:N or char:N.
    #[arg(long, default_value = "auto")]
    shingle: String,
    /// LSH bands.
    #[arg(long, default_value_t = 14)]
    bands: usize,
    /// Rows (hashes) per band.
    #[arg(long, default_value_t = 8)]
    rows: usize,
    /// Jaccard threshold: choose bands × rows (of 112 hashes) whose S-curve centres on it,
    /// instead of --bands/--rows.
    #[arg(long, conflicts_with_all = ["bands", "rows"])]
    threshold: Option<f64>,
    /// Skip exact dedup.
    #[arg(long)]
    no_exact: bool,
    /// Skip near dedup.
    #[arg(long)]
    no_near: bool,
    /// Which document of a cluster to keep.
    #[arg(long, value_enum, default_value_t = Keep::First)]
    keep: Keep,
    /// Seed of the MinHash permutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip (and count) bad records instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    wick_io::run_main("dedup", || run(cli))
}

fn run(cli: Cli) -> Result<()> {
    let (bands, rows) = match cli.threshold {
        Some(t) if !(0.0..=1.0).contains(&t) => {
            return Err(Error::msg(format!(
                "--threshold {t} is not between 0 and 1"
            )))
        }
        Some(t) => bands_for_threshold(t, 112),
        None => (cli.bands, cli.rows),
    };
    if bands == 0 || rows == 0 {
        return Err(Error::msg("--bands and --rows must be at least 1"));
    }
    let opts = Options {
        field: cli.field,
        norm: Normalization::parse(&cli.normalize).map_err(Error::msg)?,
        shingling: Shingling::parse(&cli.shingle).map_err(Error::msg)?,
        bands,
        rows,
        seed: cli.seed,
        exact: !cli.no_exact,
        near: !cli.no_near,
        keep: cli.keep,
        skip_invalid: cli.skip_invalid,
        quiet: cli.quiet,
    };
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .map_err(|e| Error::msg(e.to_string()))?;
    }
    let mut kept = Output::create(cli.output.as_deref())?;
    let mut removed = match &cli.removed {
        Some(p) => Some(Output::create(Some(p))?),
        None => None,
    };
    Dedup::new(opts).run(&inputs_or_stdin(&cli.files), &mut kept, removed.as_mut())?;
    if let Some(r) = removed {
        r.finish()?;
    }
    kept.finish()
}
