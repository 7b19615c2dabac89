use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use serde_json::{json, Map, Value};
use wick_io::{inputs_or_stdin, Error, LineReader, Output, Progress, Result, Skipped};
use wick_model::reward::sequence_scores;
use wick_model::Folder;
use wick_text::{Reading, Renderer};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Score responses with a reward model: JSONL records in, the same records out (input order)
/// with "reward" added.
///
/// The model is a Hugging Face sequence-classification folder with one label
/// (LlamaForSequenceClassification: config.json with a pad_token_id, model.safetensors with
/// score.weight, tokenizer.json), as transformers or `train --task reward` writes it. Records
/// go through wick's one record renderer, as `tokenize` renders SFT records — {prompt,
/// response} (what `generate` writes), {prompt, completion}, Alpaca {instruction, input,
/// output}, chat {messages}, or plain {text} (a response to an empty prompt) — the response
/// followed by EOS; the score is read at the last token that is not the pad id, as
/// transformers does. --skip-invalid skips (and counts) records that cannot be read, rendered
/// or fitted instead of stopping.
///
/// Examples:
///   generate --model policy/ < prompts.jsonl | rm-score --model rm/ > scored.jsonl
///   rm-score --model rm/ --field text docs.jsonl
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    model: wick_cli::Model,
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
    #[command(flatten)]
    skip: wick_cli::SkipInvalid,
    #[command(flatten)]
    output: wick_cli::OutputFile,
    #[command(flatten)]
    dtype: wick_cli::Dtype,
    #[command(flatten)]
    device: wick_cli::Device,
    #[command(flatten)]
    common: wick_cli::Common,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.common.threads;
    wick_io::run_main("rm-score", || {
        wick_io::set_threads(threads)?;
        wick_model::runtime::run(threads, || body(cli))
    })
}

fn body(cli: Cli) -> Result<()> {
    if cli.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    let device = wick_model::runtime::open_device(cli.device.name())?;
    let model_dir = &cli.model.model;
    let mut folder = Folder::open_as(model_dir, cli.model.adapter.as_deref(), cli.dtype.name())?;
    folder.model.to_device(&device)?;
    // Every product (attention's too) in the dtype the weights are kept in.
    let _autocast = wick_model::autocast(wick_model::Precision::of_dtype(folder.model.dtype()));
    folder.model.keep_transposed_weights()?;
    let config = &folder.model.config;
    match config.num_labels() {
        Some(1) => {}
        Some(n) => {
            return Err(Error::msg(format!(
                "{}: a classifier with {n} labels; a reward model has one (num_labels 1)",
                model_dir.display()
            )))
        }
        None => {
            return Err(Error::msg(format!(
                "{}: not a reward model (config.json's architectures name no ...ForSequenceClassification)",
                model_dir.display()
            )))
        }
    }
    let pad = config.pad_token_id.ok_or_else(|| {
        Error::msg(format!(
            "{}/config.json has no pad_token_id: a reward model needs one to find each sequence's last token",
            model_dir.display()
        ))
    })?;
    let context = config.max_position_embeddings;
    let tok = &folder.tok;
    let renderer = Renderer::new(tok, &cli.field, Reading::Response)?;
    let prefix = folder.doc_prefix();
    let mut out = Output::create(cli.output.output.as_deref())?;
    let mut progress = Progress::new("rm-score", cli.common.quiet);
    let mut skips = Skipped::new("rm-score", cli.common.quiet);
    let started = Instant::now();
    let mut done = 0u64;
    let mut truncated = 0u64;
    let mut batch: Vec<(Map<String, Value>, Vec<u32>)> = Vec::new();
    let flush = |batch: &mut Vec<(Map<String, Value>, Vec<u32>)>, out: &mut Output| -> Result<()> {
        let rows: Vec<&[u32]> = batch.iter().map(|(_, ids)| ids.as_slice()).collect();
        let scores = sequence_scores(&folder.model, &rows, pad)
            .map_err(|e| e.context(format!("--model {}", model_dir.display())))?;
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
            // A record that cannot be read, rendered or fitted is skipped with --skip-invalid.
            let read = || -> Result<(Map<String, Value>, Vec<u32>, bool)> {
                let rec = wick_io::parse_object(reader.name(), line, &buf)?;
                let bad = |e: String| Error::record(reader.name(), line, e);
                let rendered = renderer.render(&rec).map_err(bad)?;
                let mut ids = rendered.encode(tok, &prefix).map_err(bad)?.ids;
                let cut = ids.len() > context && cli.truncate;
                if cut {
                    ids.drain(..ids.len() - context);
                }
                if ids.len() > context {
                    return Err(bad(format!(
                        "{} tokens, longer than the reward model's context of {context} (--truncate scores the last {context})",
                        ids.len()
                    )));
                }
                Ok((rec, ids, cut))
            };
            let (rec, ids) = match read() {
                Ok((rec, ids, cut)) => {
                    truncated += cut as u64;
                    (rec, ids)
                }
                Err(e) if cli.skip.skip_invalid => {
                    skips.note(&e);
                    continue;
                }
                Err(e) => return Err(e),
            };
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
    let skipped = Skipped::suffix(skips.count);
    progress.finish(|_| {
        format!(
            "{done} records scored in {secs:.2}s{}{skipped}",
            if truncated > 0 {
                format!(" ({truncated} cut to their last {context} tokens)")
            } else {
                String::new()
            }
        )
    });
    Ok(())
}
