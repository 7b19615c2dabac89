use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};
use tokenize::corpus::{Corpus, CorpusFormat};
use tokenize::decode::decode_line;
use tokenize::encode::{EncodeOptions, Encoder, FormatChoice};
use wick_cli::{Common, OutputFile, OutputFileRequired, SkipInvalid};
use wick_io::{
    human_bytes, inputs_or_stdin, Kind, LineReader, OutDir, Output, Progress, Result, Skipped,
};
use wick_text::{save_trained, train_bpe, Tok, TrainOptions};

/// Encode JSONL documents, SFT and preference records to token ids; train a byte-level BPE
/// tokenizer; decode ids back to text.
///
/// Documents: {"text": ...} gets "ids" (EOS appended). SFT records — Alpaca
/// {instruction,input,output}, {prompt,completion}, chat {messages} — get "ids" and "mask"
/// (1 = response token, trained on). Preference records {prompt,chosen,rejected} get
/// "prompt_ids", "chosen_ids", "rejected_ids". Other fields are kept. Output order is input
/// order; all cores are used.
///
/// Examples:
///   tokenize train --vocab-size 8000 -o tokenizer.json corpus.jsonl
///   tokenize --tokenizer tokenizer.json corpus.jsonl > ids.jsonl
///   tokenize decode --tokenizer tokenizer.json < ids.jsonl
#[derive(Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    encode: EncodeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GPT-2 style byte-level BPE tokenizer (writes tokenizer.json and tokenizer_config.json).
    #[command(mut_arg("output", |a| a.value_name("PATH").help(TRAIN_OUTPUT_HELP)))]
    Train(TrainArgs),
    /// Encode records to ids (the default command).
    Encode(EncodeArgs),
    /// Decode "ids" (and "*_ids") fields back to text.
    Decode(DecodeArgs),
}

#[derive(Args)]
struct EncodeArgs {
    /// tokenizer.json, or a Hugging Face model folder holding one (its tokenizer_config.json
    /// supplies the EOS token and chat template).
    #[arg(long, short = 't', required = true)]
    tokenizer: Option<PathBuf>,
    /// JSONL inputs; stdin when none is named or for "-". Lines may be up to
    /// 256 MiB; a UTF-8 byte-order mark at the start of a file is skipped.
    files: Vec<String>,
    #[command(flatten)]
    output: OutputFile,
    /// Field holding a document's text.
    #[arg(long, default_value = "text")]
    field: String,
    /// Kind of records to expect.
    #[arg(long, value_enum, default_value_t = FormatChoice::Auto)]
    format: FormatChoice,
    /// Do not append the EOS token to plain documents.
    #[arg(long)]
    no_eos: bool,
    /// EOS token to use instead of the one tokenizer_config.json names.
    #[arg(long)]
    eos: Option<String>,
    /// Drop the source text fields from the output.
    #[arg(long)]
    drop_text: bool,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct TrainArgs {
    /// Corpus files: JSONL documents, or plain text (by extension; see --format); stdin when none.
    files: Vec<String>,
    #[command(flatten)]
    output: OutputFileRequired,
    /// Vocabulary size, including the 256 byte tokens and the special tokens.
    #[arg(long, default_value_t = 32000)]
    vocab_size: usize,
    /// Merge only pairs seen at least this often.
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
    /// Special tokens, comma-separated; they take ids 0, 1, …; the first is EOS (and BOS).
    #[arg(long, value_delimiter = ',', default_value = "<|endoftext|>")]
    special_tokens: Vec<String>,
    /// Field holding the text in JSONL input.
    #[arg(long, default_value = "text")]
    field: String,
    /// Input format.
    #[arg(long, value_enum, default_value_t = CorpusFormat::Auto)]
    format: CorpusFormat,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct DecodeArgs {
    /// tokenizer.json or model folder.
    #[arg(long, short = 't')]
    tokenizer: PathBuf,
    /// JSONL inputs with "ids"; stdin when none.
    files: Vec<String>,
    /// Leave special tokens (e.g. EOS) out of the text.
    #[arg(long)]
    skip_special: bool,
    /// Write the decoded "ids" as plain text, one record per line, instead of JSONL.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    output: OutputFile,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
}

// Records are allocated on one thread and freed on another, many small vectors each: mimalloc
// takes less CPU than glibc's malloc here (docs/speed.md, "Measured history: data tools").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    wick_io::run_main("tokenize", || match cli.command {
        Some(Command::Train(a)) => train(a),
        Some(Command::Decode(a)) => decode(a),
        Some(Command::Encode(a)) => encode(a),
        None => encode(cli.encode),
    })
}

/// `tokenize train -o`: a file or a folder.
const TRAIN_OUTPUT_HELP: &str = "Where to write the tokenizer. A folder (an existing one, or a \
    name ending in /) gets tokenizer.json and tokenizer_config.json (which names EOS and BOS), \
    written whole; an existing folder is replaced only when it is an earlier `tokenize train` \
    output. Any other name gets that tokenizer.json file alone (EOS is then the first of the \
    usual names in its vocabulary).";

fn encode(a: EncodeArgs) -> Result<()> {
    let mut tok = Tok::load(a.tokenizer.expect("required by clap"))?;
    if let Some(eos) = &a.eos {
        tok.set_eos(eos)?;
    }
    let opts = EncodeOptions {
        field: a.field,
        format: a.format,
        append_eos: !a.no_eos,
        drop_text: a.drop_text,
        skip_invalid: a.skip_invalid.skip_invalid,
        quiet: a.common.quiet,
    };
    let encoder = Encoder::new(&tok, opts)?;
    wick_io::set_threads(a.common.threads)?;
    let mut out = Output::create(a.output.output.as_deref())?;
    encoder.run(&inputs_or_stdin(&a.files), &mut out)?;
    out.finish()
}

fn train(a: TrainArgs) -> Result<()> {
    let output = &a.output.output;
    let as_dir = output.is_dir() || output.as_os_str().to_string_lossy().ends_with('/');
    if as_dir {
        // Checked before the corpus is read: a folder is replaced only when it is an earlier
        // tokenizer folder of wick's.
        wick_io::check_replaceable(output, Kind::Tokenizer, "-o")?;
    } else if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        wick_io::create_dir_all(dir)?;
    }
    let corpus = Corpus::new(
        inputs_or_stdin(&a.files),
        &a.field,
        a.format,
        a.skip_invalid.skip_invalid,
    );
    let opts = TrainOptions {
        vocab_size: a.vocab_size,
        min_frequency: a.min_frequency,
        special_tokens: a.special_tokens,
    };
    wick_io::set_threads(a.common.threads)?;
    let mut progress = Progress::new("tokenize train", a.common.quiet);
    let done = AtomicBool::new(false);
    let vocab = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                progress.tick(|_| {
                    let st = &corpus.stats;
                    format!(
                        "counting words: {} documents, {}",
                        st.docs.load(Ordering::Relaxed),
                        human_bytes(st.bytes.load(Ordering::Relaxed))
                    )
                });
            }
        });
        let r = (|| {
            let trained = train_bpe(corpus.texts(), &opts)?;
            // An input error ends the stream early: report it rather than save a tokenizer
            // trained on part of the corpus.
            corpus.finish()?;
            if as_dir {
                let dir = OutDir::create(output, Kind::Tokenizer, "tokenize", "-o")?;
                let vocab =
                    save_trained(&trained, &opts, &dir.path().join("tokenizer.json"), true)?;
                dir.commit()?;
                Ok(vocab)
            } else {
                save_trained(&trained, &opts, output, false)
            }
        })();
        done.store(true, Ordering::Relaxed);
        r
    })?;
    let st = &corpus.stats;
    progress.finish(|secs| {
        let skipped = wick_io::Skipped::suffix(st.skipped.load(Ordering::Relaxed));
        format!(
            "{} tokens learned from {} documents ({}) in {secs:.1} s → {}{skipped}",
            vocab,
            st.docs.load(Ordering::Relaxed),
            human_bytes(st.bytes.load(Ordering::Relaxed)),
            output.display()
        )
    });
    Ok(())
}

fn decode(a: DecodeArgs) -> Result<()> {
    let tok = Tok::load(&a.tokenizer)?;
    let mut out = Output::create(a.output.output.as_deref())?;
    let mut skips = Skipped::new("tokenize decode", false);
    for path in inputs_or_stdin(&a.files) {
        let mut reader = LineReader::open(&path)?;
        loop {
            let batch = reader.read_batch(1024, 1 << 20)?;
            if batch.is_empty() {
                break;
            }
            for line in &batch {
                match decode_line(&tok, reader.name(), line, a.skip_special, a.raw) {
                    Ok(text) => out.put(&text)?,
                    Err(e) if a.skip_invalid.skip_invalid => skips.note(&e),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    out.finish()?;
    if skips.count > 0 {
        eprintln!("tokenize decode: {} invalid skipped", skips.count);
    }
    Ok(())
}
