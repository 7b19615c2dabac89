use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use serde_json::Value;
use wick_io::{inputs_or_stdin, write_atomic, Error, Output, Progress, Result};
use wick_metrics::rouge::RougeTokenizer;
use wick_metrics::sacre_tok::Tokenize;

use eval::choice::{choice, ChoiceOptions};
use eval::records::read_all;
use eval::tasks::{stream, Classification, Fields, GenMetrics, GenOptions, Generation, Lang, Qa};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, ValueEnum)]
enum Task {
    /// Corpus BLEU (sacreBLEU), chrF and chrF++ (sacreBLEU), mean ROUGE-1/2/L (rouge-score).
    Generation,
    /// Exact match and token F1 (SQuAD v1.1's script; --lang zh: CMRC 2018's, by character).
    Qa,
    /// Accuracy, per-class precision/recall/F1, macro/micro/weighted averages, confusion matrix
    /// (scikit-learn's definitions, 0 where a ratio is 0/0).
    Classification,
    /// Multiple choice by log-likelihood with --model (lm-evaluation-harness's acc, acc_norm).
    Choice,
}

#[derive(Clone, Copy, ValueEnum)]
enum LangArg {
    En,
    Zh,
}

/// Score model outputs against references, or a model on multiple-choice questions.
///
/// Reads JSONL records (FILES or stdin) and prints one JSON report on stdout. With
/// --per-record, stdout gets each input record back with its own scores added and the report
/// goes to stderr (and to --report FILE, if given).
///
/// generation: each record holds a prediction (--pred, default "response", what `generate`
/// writes) and one or more references (--ref: a string or an array of strings). BLEU is the
/// corpus score over all records, with sacreBLEU's defaults (13a tokenization, exp smoothing;
/// --tokenize zh for Chinese), chrF/chrF++ likewise; ROUGE is the mean over records of
/// rouge-score's per-pair scores (--stem for its Porter stemming; with --lang zh, one token per
/// character, since rouge-score's own tokenizer drops CJK text). Per record: sentence BLEU,
/// chrF, ROUGE F-measures.
///
/// qa: a prediction and the accepted answers (--ref: a string, an array, or SQuAD's
/// {"text": [...]}); the best answer counts.
///
/// classification: labels as strings, numbers or booleans. Labels that only predictions use,
/// or that are never predicted, are listed in the report.
///
/// choice: records with a context (--context), endings (--endings, an array) and optionally
/// the index of the right one (--label, a number or numeric string).
///
/// Examples:
///   eval --task generation --pred response --ref reference < joined.jsonl
///   eval --task generation --lang zh --per-record generated.jsonl > scored.jsonl
///   eval --task qa --pred prediction --ref answers dev.jsonl
///   eval --task choice --model runs/base < hellaswag-style.jsonl
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    #[arg(long, value_enum)]
    task: Task,
    /// JSONL inputs ('-' or none: stdin).
    files: Vec<String>,
    /// Field holding the prediction.
    #[arg(long, default_value = "response")]
    pred: String,
    /// Field holding the reference(s) or answers.
    #[arg(long = "ref", default_value = "reference")]
    reference: String,
    /// Language of the text: zh picks sacreBLEU's zh tokenizer, character ROUGE and CMRC's QA
    /// scoring.
    #[arg(long, value_enum, default_value = "en")]
    lang: LangArg,
    /// BLEU tokenizer: 13a, zh, char or none [default: 13a; zh with --lang zh].
    #[arg(long)]
    tokenize: Option<String>,
    /// Generation metrics to compute (comma-separated: bleu, chrf, chrf++, rouge).
    #[arg(long, default_value = "bleu,chrf,chrf++,rouge")]
    metrics: String,
    /// ROUGE with rouge-score's Porter stemming (use_stemmer=True).
    #[arg(long)]
    stem: bool,
    /// Write each record with its scores to stdout (JSONL); the report goes to stderr.
    #[arg(long)]
    per_record: bool,
    /// Also write the report to this file (atomically).
    #[arg(long)]
    report: Option<PathBuf>,
    /// choice: Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: Option<PathBuf>,
    /// choice: an adapter folder (PEFT LoRA or wick's Houlsby) to load on top of --model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// choice: field holding the context.
    #[arg(long, default_value = "context")]
    context: String,
    /// choice: field holding the candidate endings.
    #[arg(long, default_value = "endings")]
    endings: String,
    /// choice: field holding the index of the right ending.
    #[arg(long, default_value = "label")]
    label: String,
    /// choice: put between context and each ending (lm-evaluation-harness's default).
    #[arg(long, default_value = " ")]
    delimiter: String,
    /// choice: sequences per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.threads;
    wick_io::run_main("eval", || wick_model::runtime::run(threads, || body(cli)))
}

fn body(cli: Cli) -> Result<()> {
    let lang = match cli.lang {
        LangArg::En => Lang::En,
        LangArg::Zh => Lang::Zh,
    };
    let fields = Fields {
        pred: cli.pred.clone(),
        reference: cli.reference.clone(),
    };
    // Settle every option before reading input, so a typo fails at once.
    let tokenize = match cli.tokenize.as_deref() {
        Some(name) => Tokenize::parse(name).ok_or_else(|| {
            Error::msg(format!("--tokenize {name:?}: choose 13a, zh, char or none"))
        })?,
        None if lang == Lang::Zh => Tokenize::Zh,
        None => Tokenize::T13a,
    };
    let metrics =
        GenMetrics::parse(&cli.metrics).map_err(|e| Error::msg(format!("--metrics: {e}")))?;
    if cli.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    let folder = match (cli.task, &cli.model) {
        (Task::Choice, Some(dir)) => {
            let mut f = wick_model::Folder::open_with_adapter(dir, cli.adapter.as_deref())?;
            f.model.keep_transposed_weights()?;
            Some(f)
        }
        (Task::Choice, None) => return Err(Error::msg("--task choice needs --model DIR")),
        (_, Some(_)) => return Err(Error::msg("--model is only used by --task choice")),
        _ => None,
    };

    let started = Instant::now();
    let inputs = inputs_or_stdin(&cli.files);
    let mut out = Output::create(None)?;
    let per_record = cli.per_record.then_some(&mut out);
    let mut progress = Progress::new("eval", cli.quiet);
    let mut report = match cli.task {
        Task::Generation => stream(
            &inputs,
            Generation::new(GenOptions {
                fields,
                tokenize,
                rouge: match lang {
                    Lang::Zh => RougeTokenizer::Chars,
                    Lang::En => RougeTokenizer::Default { stem: cli.stem },
                },
                metrics,
            }),
            per_record,
        )?,
        Task::Qa => stream(&inputs, Qa::new(fields, lang), per_record)?,
        Task::Classification => stream(&inputs, Classification::new(fields), per_record)?,
        Task::Choice => {
            let records = read_all(&inputs)?;
            if records.is_empty() {
                return Err(Error::msg(format!("no records in {}", inputs.join(", "))));
            }
            let folder = folder.as_ref().expect("checked above");
            let s = choice(
                &records,
                folder,
                &ChoiceOptions {
                    context: cli.context.clone(),
                    endings: cli.endings.clone(),
                    label: cli.label.clone(),
                    delimiter: cli.delimiter.clone(),
                    batch: cli.batch_size,
                },
                |done, total| progress.tick(|_| format!("{done}/{total} endings scored")),
            )
            .map_err(|e| e.context(format!("--model {}", folder_name(&cli))))?;
            if let Some(out) = per_record {
                for (rec, scores) in records.into_iter().zip(s.per_record) {
                    let mut fields = rec.fields;
                    fields.extend(scores);
                    let line = serde_json::to_string(&Value::Object(fields)).expect("serialises");
                    out.put(line.as_bytes())?;
                    out.put(b"\n")?;
                }
            }
            let mut report = s.report;
            report["model"] = serde_json::json!(cli.model);
            report
        }
    };
    report["seconds"] = started.elapsed().as_secs_f64().into();
    progress.finish(|secs| format!("{} records in {secs:.2}s", report["records"]));
    let report_line = format!("{report}\n");
    if let Some(path) = &cli.report {
        write_atomic(path, report_line.as_bytes())?;
    }
    if cli.per_record {
        if !cli.quiet {
            eprint!("{report_line}");
        }
    } else {
        out.put(report_line.as_bytes())?;
    }
    out.finish()
}

/// The model as the user named it, for errors about its outputs.
fn folder_name(cli: &Cli) -> String {
    cli.model
        .as_deref()
        .map(|m| m.display().to_string())
        .unwrap_or_default()
}
