use std::process::ExitCode;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use dedup::engine::{apply, clusters, single_pass, DupsCursor, Keep, Options, Signer, Summary};
use dedup::minhash::bands_for_threshold;
use dedup::normalize::Normalization;
use dedup::shingle::Shingling;
use wick_cli::{Common, OutputDir, OutputFile, OutputFileRequired, SkipInvalid};
use wick_io::{inputs_or_stdin, Error, Output, Progress, Result};

// No mimalloc here, unlike tokenize: it held much more memory than glibc's malloc at the
// clusters stage, and memory per indexed document is what bounds this tool (docs/speed.md,
// "Measured history: data tools").

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
#[command(
    version,
    args_conflicts_with_subcommands = true,
    verbatim_doc_comment,
    mut_arg("output", |a| a.help("Write kept documents here instead of stdout (atomically)."))
)]
struct Cli {
    #[command(subcommand)]
    stage: Option<Stage>,
    #[command(flatten)]
    args: DedupArgs,
}

/// Scale-out: the same dedup as map/reduce stages over plain files, for inputs that one
/// process should not hold; their result is identical to the single-pass run.
#[derive(Subcommand)]
enum Stage {
    /// Stage 1, per input file (run anywhere, in parallel): write DIR/<file name>.sig.
    #[command(mut_arg("output", |a| a.help("Directory for the signature files (shared: each \
        run adds its inputs' files).")))]
    Signatures {
        #[command(flatten)]
        output: OutputDir,
        /// JSONL inputs; name them the same way to `dedup apply`.
        files: Vec<String>,
        #[command(flatten)]
        hashing: HashArgs,
        #[command(flatten)]
        skip_invalid: SkipInvalid,
        #[command(flatten)]
        common: Common,
    },
    /// Stage 2, over all signature files: write dups.tsv (source, line, kind, similarity, dup_of).
    #[command(mut_arg("output", |a| a.help("Where to write dups.tsv.")))]
    Clusters {
        #[command(flatten)]
        output: OutputFileRequired,
        /// Signature files, or directories of them (taken in file-name order); input order
        /// decides which document of a cluster is first.
        sigs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Keep::First)]
        keep: Keep,
        /// Verify candidate pairs by exact Jaccard (needs `signatures --verify`).
        #[arg(long)]
        verify: bool,
        /// Jaccard threshold for --verify.
        #[arg(long, default_value_t = 0.8)]
        threshold: f64,
    },
    /// Stage 3, per input file: kept documents to stdout, removed ones to --removed.
    Apply {
        /// dups.tsv from `dedup clusters`.
        #[arg(long)]
        dups: PathBuf,
        /// One JSONL input, named as it was to `dedup signatures`.
        file: String,
        #[command(flatten)]
        output: OutputFile,
        #[arg(long)]
        removed: Option<String>,
    },
}

#[derive(Args)]
struct HashArgs {
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    field: String,
    /// Normalisation before hashing: any of nfkc, casefold, whitespace, punct; or none.
    #[arg(long, default_value = "nfkc,casefold,whitespace")]
    normalize: String,
    /// Shingles: auto (word:5, or char:5 for CJK documents), word:N or char:N.
    #[arg(long, default_value = "auto")]
    shingle: String,
    /// LSH bands [default: 14, or chosen by --threshold].
    #[arg(long)]
    bands: Option<usize>,
    /// Rows (hashes) per band [default: 8, or chosen by --threshold].
    #[arg(long)]
    rows: Option<usize>,
    /// Jaccard threshold: without --bands/--rows, choose bands × rows (of 112 hashes) whose
    /// S-curve centres on it; with --verify, the exact Jaccard a pair must reach [default 0.8].
    #[arg(long)]
    threshold: Option<f64>,
    /// Skip exact dedup.
    #[arg(long)]
    no_exact: bool,
    /// Skip near dedup.
    #[arg(long)]
    no_near: bool,
    /// Seed of the MinHash permutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Check candidate pairs by the exact Jaccard of their shingle sets and join only those
    /// reaching --threshold (0.8 when not given); "similarity" is then exact. For the stages:
    /// give it to `signatures` (which then stores the shingle sets) and to `clusters`.
    #[arg(long)]
    verify: bool,
}

#[derive(Args)]
struct DedupArgs {
    /// JSONL inputs; stdin when none is named or for "-". Lines may be up to
    /// 256 MiB; a UTF-8 byte-order mark at the start of a file is skipped.
    files: Vec<String>,
    #[command(flatten)]
    output: OutputFile,
    /// Write removed documents here, with "dup_of", "similarity" and "dup_kind".
    #[arg(long)]
    removed: Option<String>,
    #[command(flatten)]
    hashing: HashArgs,
    /// Which document of a cluster to keep.
    #[arg(long, value_enum, default_value_t = Keep::First)]
    keep: Keep,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    wick_io::run_main("dedup", || match cli.stage {
        None => single(cli.args),
        Some(Stage::Signatures {
            output: OutputDir { output },
            files,
            hashing,
            skip_invalid,
            common,
        }) => {
            let quiet = common.quiet;
            let opts = options(&hashing, skip_invalid.skip_invalid, &common)?;
            wick_io::open_shared_dir(&output, wick_io::Kind::Signatures, "dedup", "-o")?;
            let signer = Signer::new(opts);
            let mut progress = Progress::new("dedup signatures", quiet);
            let mut seen = std::collections::HashSet::new();
            for f in &files {
                let base = Path::new(f)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !seen.insert(base.clone()) {
                    return Err(Error::msg(format!("{f}: another input has the file name {base:?}; signature files are named after inputs")));
                }
                let (docs, _) = signer.signatures(
                    Path::new(f),
                    f,
                    &output.join(format!("{base}.sig")),
                    &mut progress,
                )?;
                progress.finish(|secs| format!("{f}: {docs} documents in {secs:.2} s"));
            }
            Ok(())
        }
        Some(Stage::Clusters {
            output: OutputFileRequired { output },
            sigs,
            keep,
            verify,
            threshold,
        }) => {
            let mut files = Vec::new();
            for p in sigs {
                if p.is_dir() {
                    let mut inside: Vec<PathBuf> = std::fs::read_dir(&p)
                        .map_err(|e| Error::io(p.display(), e))?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|q| q.extension().is_some_and(|x| x == "sig"))
                        .collect();
                    inside.sort();
                    files.extend(inside);
                } else {
                    files.push(p);
                }
            }
            let mut out = Output::create(Some(&output.display().to_string()))?;
            let (docs, exact, near) =
                clusters(&files, keep, verify.then_some(threshold), &mut out)?;
            out.finish()?;
            eprintln!(
                "dedup clusters: {docs} documents, {exact} exact and {near} near duplicates → {}",
                output.display()
            );
            Ok(())
        }
        Some(Stage::Apply {
            dups,
            file,
            output: OutputFile { output },
            removed,
        }) => {
            if let Some(r) = &removed {
                wick_io::check_distinct_outputs(&[
                    ("-o", Path::new(output.as_deref().unwrap_or("-"))),
                    ("--removed", Path::new(r)),
                ])?;
            }
            let mut table = DupsCursor::open(&dups, &file)?;
            let mut kept = Output::create(output.as_deref())?;
            let mut rem = match &removed {
                Some(p) => Some(Output::create(Some(p))?),
                None => None,
            };
            let mut sum = Summary::default();
            apply(
                Path::new(&file),
                &file,
                &mut table,
                &mut kept,
                rem.as_mut(),
                &mut sum,
            )?;
            if let Some(r) = rem {
                r.finish()?;
            }
            kept.finish()
        }
    })
}

fn options(h: &HashArgs, skip_invalid: bool, common: &Common) -> Result<Options> {
    let (bands, rows) = match (h.threshold, h.bands, h.rows) {
        (Some(t), _, _) if !(0.0..=1.0).contains(&t) => {
            return Err(Error::msg(format!(
                "--threshold {t} is not between 0 and 1"
            )))
        }
        (Some(t), None, None) => bands_for_threshold(t, 112),
        (_, b, r) => (b.unwrap_or(14), r.unwrap_or(8)),
    };
    if bands == 0 || rows == 0 {
        return Err(Error::msg("--bands and --rows must be at least 1"));
    }
    wick_io::set_threads(common.threads)?;
    Ok(Options {
        field: h.field.clone(),
        norm: Normalization::parse(&h.normalize).map_err(Error::msg)?,
        shingling: Shingling::parse(&h.shingle).map_err(Error::msg)?,
        bands,
        rows,
        seed: h.seed,
        exact: !h.no_exact,
        near: !h.no_near,
        with_shingles: h.verify,
        skip_invalid,
        quiet: common.quiet,
    })
}

fn single(a: DedupArgs) -> Result<()> {
    let opts = options(&a.hashing, a.skip_invalid.skip_invalid, &a.common)?;
    let output = a.output.output;
    if let Some(removed) = &a.removed {
        wick_io::check_distinct_outputs(&[
            ("-o", Path::new(output.as_deref().unwrap_or("-"))),
            ("--removed", Path::new(removed)),
        ])?;
    }
    let mut kept = Output::create(output.as_deref())?;
    let mut removed = match &a.removed {
        Some(p) => Some(Output::create(Some(p))?),
        None => None,
    };
    let verify = a.hashing.verify.then(|| a.hashing.threshold.unwrap_or(0.8));
    single_pass(
        &opts,
        a.keep,
        verify,
        &inputs_or_stdin(&a.files),
        &mut kept,
        removed.as_mut(),
    )?;
    if let Some(r) = removed {
        r.finish()?;
    }
    kept.finish()
}
