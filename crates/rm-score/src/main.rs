use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use serde_json::{json, Map, Value};
use wick_io::{inputs_or_stdin, Error, LineReader, Output, Progress, Result};
use wick_model::reward::sequence_scores;
use wick_model::Folder;
use wick_text::{render_sft, Format, Piece, Templates};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Score responses with a reward model: JSONL records in, the same records out (input order)
/// with "reward" added.
///
/// The model is a Hugging Face sequence-classification folder with one label
/// (LlamaForSequenceClassification: config.json with a pad_token_id, model.safetensors with
/// score.weight, tokenizer.json), as transformers or `train --task reward` writes it. Records
/// are rendered as `tokenize` renders SFT records — {prompt, response} (what `generate`
/// writes), {prompt, completion}, chat {messages}, or plain {text} — the response followed by
/// EOS; the score is read at the last token that is not the pad id, as transformers does.
///
/// Examples:
///   generate --model policy/ < prompts.jsonl | rm-score --model rm/ > scored.jsonl
///   rm-score --model rm/ --field text docs.jsonl
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// The reward model's folder.
    #[arg(long)]
    model: PathBuf,
    /// An adapter folder (LoRA or Houlsby) on top of --model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// JSONL records ('-' or none: stdin).
    files: Vec<String>,
    /// Field holding a plain document (records without prompt/response or messages).
    #[arg(long, default_value = "text")]
    field: String,
    /// Score records longer than the reward model's context on their last `context` tokens
    /// (the earliest ones are dropped; the score is read at the end) instead of refusing them.
    #[arg(long)]
    truncate: bool,
    /// Records per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Write here instead of stdout (atomically).
    #[arg(short, long)]
    output: Option<String>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.threads;
    wick_io::run_main("rm-score", || {
        wick_model::runtime::run(threads, || body(cli))
    })
}

/// The pieces a record is scored on: prompt (if any), response, EOS.
fn pieces(
    rec: &Map<String, Value>,
    field: &str,
    t: &Templates,
) -> std::result::Result<Vec<Piece>, String> {
    if let (Some(p), Some(r)) = (rec.get("prompt"), rec.get("response")) {
        let mut m = Map::new();
        m.insert("prompt".into(), p.clone());
        m.insert("completion".into(), r.clone());
        return render_sft(&m, Format::PromptCompletion, t);
    }
    match Format::detect(rec, field) {
        Some(Format::Text) => {
            let text = rec[field]
                .as_str()
                .ok_or_else(|| format!("field {field:?} must be a string"))?;
            let mut m = Map::new();
            m.insert("prompt".into(), json!(""));
            m.insert("completion".into(), json!(text));
            render_sft(&m, Format::PromptCompletion, t)
        }
        Some(Format::Preference) => Err(
            "a preference pair: score its chosen and rejected responses as separate records".into(),
        ),
        Some(f) => render_sft(rec, f, t),
        None => Err(format!(
            "nothing to score: expected prompt + response, prompt + completion, messages or {field:?}"
        )),
    }
}

fn body(cli: Cli) -> Result<()> {
    if cli.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    let mut folder = Folder::open_with_adapter(&cli.model, cli.adapter.as_deref())?;
    folder.model.keep_transposed_weights()?;
    let config = &folder.model.config;
    match config.num_labels() {
        Some(1) => {}
        Some(n) => {
            return Err(Error::msg(format!(
                "{}: a classifier with {n} labels; a reward model has one (num_labels 1)",
                cli.model.display()
            )))
        }
        None => {
            return Err(Error::msg(format!(
                "{}: not a reward model (config.json's architectures name no ...ForSequenceClassification)",
                cli.model.display()
            )))
        }
    }
    let pad = config.pad_token_id.ok_or_else(|| {
        Error::msg(format!(
            "{}/config.json has no pad_token_id: a reward model needs one to find each sequence's last token",
            cli.model.display()
        ))
    })?;
    let context = config.max_position_embeddings;
    let tok = &folder.tok;
    let templates = Templates::for_tok(tok)?;
    let mut out = Output::create(cli.output.as_deref())?;
    let mut progress = Progress::new("rm-score", cli.quiet);
    let started = Instant::now();
    let mut done = 0u64;
    let mut truncated = 0u64;
    let mut batch: Vec<(Map<String, Value>, Vec<u32>)> = Vec::new();
    let flush = |batch: &mut Vec<(Map<String, Value>, Vec<u32>)>, out: &mut Output| -> Result<()> {
        let rows: Vec<&[u32]> = batch.iter().map(|(_, ids)| ids.as_slice()).collect();
        let scores = sequence_scores(&folder.model, &rows, pad)
            .map_err(|e| e.context(format!("--model {}", cli.model.display())))?;
        for ((mut rec, _), s) in batch.drain(..).zip(scores) {
            rec.insert("reward".into(), json!(s[0]));
            out.put(serde_json::to_string(&rec).expect("serialises").as_bytes())?;
            out.put(b"\n")?;
        }
        Ok(())
    };
    for path in inputs_or_stdin(&cli.files) {
        let mut reader = LineReader::open(&path)?;
        let mut buf = Vec::new();
        while let Some(line) = reader.read_line(&mut buf)? {
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let rec = wick_io::parse_object(reader.name(), line, &buf)?;
            let bad = |e: String| Error::record(reader.name(), line, e);
            let p = pieces(&rec, &cli.field, &templates).map_err(bad)?;
            let mut ids = tok.encode_pieces(&p).map_err(bad)?.ids;
            if ids.len() > context && cli.truncate {
                ids.drain(..ids.len() - context);
                truncated += 1;
            }
            if ids.len() > context {
                return Err(bad(format!(
                    "{} tokens, longer than the reward model's context of {context} (--truncate scores the last {context})",
                    ids.len()
                )));
            }
            batch.push((rec, ids));
            if batch.len() >= cli.batch_size {
                flush(&mut batch, &mut out)?;
            }
            done += 1;
            let d = done;
            progress.tick(|s| format!("{d} records, {:.1} records/s", d as f64 / s));
        }
    }
    flush(&mut batch, &mut out)?;
    out.finish()?;
    let secs = started.elapsed().as_secs_f64();
    progress.finish(|_| {
        format!(
            "{done} records scored in {secs:.2}s{}",
            if truncated > 0 {
                format!(" ({truncated} cut to their last {context} tokens)")
            } else {
                String::new()
            }
        )
    });
    Ok(())
}
