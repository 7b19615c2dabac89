use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use serde_json::Value;
use wick_cli::{Common, OptionalModel, PerRecord, SkipInvalid};
use wick_io::{inputs_or_stdin, write_atomic, Error, Output, Progress, Result, Skipped};
use wick_metrics::rouge::RougeTokenizer;
use wick_metrics::sacre_tok::Tokenize;

use eval::tasks::{stream, Classification, Fields, GenMetrics, GenOptions, Generation, Lang, Qa};

// eval is a model tool when built with its `model` feature; mimalloc either way.
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
/// generation: each record holds a prediction (--pred-field, default "response", what
/// `generate` writes) and one or more references (--ref-field: a string or an array of
/// strings). BLEU is the corpus score over all records, with sacreBLEU's defaults (13a
/// tokenization, exp smoothing; --tokenize zh for Chinese), chrF/chrF++ likewise; ROUGE is the
/// mean over records of rouge-score's per-pair scores (--stem for its Porter stemming; with
/// --lang zh, one token per character, since rouge-score's own tokenizer drops CJK text). Per
/// record: sentence BLEU, chrF, ROUGE F-measures.
///
/// qa: a prediction and the accepted answers (--ref-field: a string, an array, or SQuAD's
/// {"text": [...]}); the best answer counts.
///
/// classification: labels as strings, numbers or booleans. Labels that only predictions use,
/// or that are never predicted, are listed in the report.
///
/// choice: records with a context (--context-field), endings (--endings-field, an array) and
/// optionally the index of the right one (--label-field, a number or numeric string). It runs
/// a model, so it needs eval built with its `model` feature (the default).
///
/// Every --*-field flag names a field of the input records. A bad record (not JSON, a field
/// missing or of the wrong kind) stops eval with its file and line; --skip-invalid skips and
/// counts it instead.
///
/// Examples (in a shell, a bare `eval` is the builtin: run this one by its path, e.g.
/// ./target/release/eval, or as `env eval ...`):
///   eval --task generation --pred-field response --ref-field reference < joined.jsonl
///   eval --task generation --lang zh --per-record generated.jsonl > scored.jsonl
///   eval --task qa --pred-field prediction --ref-field answers dev.jsonl
///   eval --task choice --model runs/base < hellaswag-style.jsonl
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    #[arg(long, value_enum)]
    task: Task,
    /// JSONL inputs ('-' or none: stdin).
    files: Vec<String>,
    /// Field holding the prediction.
    #[arg(
        long = "pred-field",
        alias = "pred",
        default_value = "response",
        value_name = "FIELD"
    )]
    pred: String,
    /// Field holding the reference(s) or answers.
    #[arg(
        long = "ref-field",
        alias = "ref",
        default_value = "reference",
        value_name = "FIELD"
    )]
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
    #[command(flatten)]
    per_record: PerRecord,
    /// Also write the report to this file (atomically).
    #[arg(long)]
    report: Option<PathBuf>,
    #[command(flatten)]
    model: OptionalModel,
    // choice: the dtype the model's weights stay in.
    #[command(flatten)]
    dtype: wick_cli::Dtype,
    // choice: where the model runs.
    #[command(flatten)]
    device: wick_cli::Device,
    /// choice: field holding the context.
    #[arg(
        long = "context-field",
        alias = "context",
        default_value = "context",
        value_name = "FIELD"
    )]
    context: String,
    /// choice: field holding the candidate endings.
    #[arg(
        long = "endings-field",
        alias = "endings",
        default_value = "endings",
        value_name = "FIELD"
    )]
    endings: String,
    /// choice: field holding the index of the right ending.
    #[arg(
        long = "label-field",
        alias = "label",
        default_value = "label",
        value_name = "FIELD"
    )]
    label: String,
    /// choice: put between context and each ending (lm-evaluation-harness's default).
    #[arg(long, default_value = " ")]
    delimiter: String,
    /// choice: sequences per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.common.threads;
    wick_io::run_main("eval", || run(threads, || body(cli)))
}

/// The model runtime's setup (threads, allocator) when the model task is built in.
#[cfg(feature = "model")]
fn run(threads: Option<usize>, f: impl FnOnce() -> Result<()> + Send) -> Result<()> {
    wick_model::runtime::run(threads, f)
}

/// Without the model task, the metric tasks need only the thread pool.
#[cfg(not(feature = "model"))]
fn run(threads: Option<usize>, f: impl FnOnce() -> Result<()> + Send) -> Result<()> {
    wick_io::set_threads(threads)?;
    f()
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
    match (cli.task, &cli.model.model) {
        (Task::Choice, None) => return Err(Error::msg("--task choice needs --model DIR")),
        (Task::Choice, Some(_)) => {}
        (_, Some(_)) => return Err(Error::msg("--model is only used by --task choice")),
        _ => {}
    }
    let skip_invalid = cli.skip_invalid.skip_invalid;

    let started = Instant::now();
    let inputs = inputs_or_stdin(&cli.files);
    let mut out = Output::create(None)?;
    let per_record = cli.per_record.per_record.then_some(&mut out);
    let mut progress = Progress::new("eval", cli.common.quiet);
    let mut skips = Skipped::new("eval", cli.common.quiet);
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
            skip_invalid.then_some(&mut skips),
        )?,
        Task::Qa => stream(
            &inputs,
            Qa::new(fields, lang),
            per_record,
            skip_invalid.then_some(&mut skips),
        )?,
        Task::Classification => stream(
            &inputs,
            Classification::new(fields),
            per_record,
            skip_invalid.then_some(&mut skips),
        )?,
        Task::Choice => choice_task(
            &cli,
            &inputs,
            per_record,
            skip_invalid.then_some(&mut skips),
            &mut progress,
        )?,
    };
    if skips.count > 0 {
        report["skipped"] = skips.count.into();
    }
    report["seconds"] = started.elapsed().as_secs_f64().into();
    progress.finish(|secs| {
        format!(
            "{} records in {secs:.2}s{}",
            report["records"],
            Skipped::suffix(skips.count)
        )
    });
    let report_line = format!("{report}\n");
    if let Some(path) = &cli.report {
        write_atomic(path, report_line.as_bytes())?;
    }
    if cli.per_record.per_record {
        if !cli.common.quiet {
            eprint!("{report_line}");
        }
    } else {
        out.put(report_line.as_bytes())?;
    }
    out.finish()
}

/// `--task choice`: loads the model, scores every record's endings. Returns the report.
#[cfg(feature = "model")]
fn choice_task(
    cli: &Cli,
    inputs: &[String],
    per_record: Option<&mut Output>,
    skips: Option<&mut Skipped>,
    progress: &mut Progress,
) -> Result<Value> {
    use eval::choice::{choice, ChoiceOptions};
    use eval::records::{read_all, Record};

    let dir = cli.model.model.as_deref().expect("checked by the caller");
    let device = wick_model::runtime::open_device(cli.device.name())?;
    let mut folder =
        wick_model::Folder::open_as(dir, cli.model.adapter.as_deref(), cli.dtype.name())?;
    folder.model.to_device(&device)?;
    let _autocast = wick_model::autocast(wick_model::Precision::of_dtype(folder.model.dtype()));
    folder.model.keep_transposed_weights()?;
    let mut skips = skips;
    let records = read_all(inputs, skips.as_deref_mut())?;
    if records.is_empty() {
        return Err(Error::msg(format!("no records in {}", inputs.join(", "))));
    }
    let s = choice(
        &records,
        &folder,
        &ChoiceOptions {
            context: cli.context.clone(),
            endings: cli.endings.clone(),
            label: cli.label.clone(),
            delimiter: cli.delimiter.clone(),
            batch: cli.batch_size,
        },
        skips,
        |done, total| progress.tick(|_| format!("{done}/{total} endings scored")),
    )
    .map_err(|e| e.context(format!("--model {}", dir.display())))?;
    if let Some(out) = per_record {
        let mut records: Vec<Option<Record>> = records.into_iter().map(Some).collect();
        for (i, scores) in s.per_record {
            let mut fields = records[i].take().expect("each record once").fields;
            fields.extend(scores);
            let line = serde_json::to_string(&Value::Object(fields)).expect("serialises");
            out.put(line.as_bytes())?;
            out.put(b"\n")?;
        }
    }
    let mut report = s.report;
    report["model"] = serde_json::json!(cli.model.model);
    Ok(report)
}

/// Built without the `model` feature: the metric tasks only.
#[cfg(not(feature = "model"))]
fn choice_task(
    _: &Cli,
    _: &[String],
    _: Option<&mut Output>,
    _: Option<&mut Skipped>,
    _: &mut Progress,
) -> Result<Value> {
    Err(Error::msg(
        "--task choice runs a model, and this eval was built without its `model` feature \
         (cargo build -p eval --features model, the default); the generation, qa and \
         classification tasks work without it",
    ))
}
