use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use serde_json::{json, Map, Value};
use wick_io::{inputs_or_stdin, Error, LineReader, Output, Progress, Result};
use wick_model::generation::{generate, Sampling, Uniform};
use wick_model::Folder;
use wick_shard::Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Continue prompts with a model.
///
/// Reads JSONL records with a prompt (--field) or plain text lines (FILES or stdin) and writes
/// each record back with "response" (the text), "prompt_ids", "response_ids", "logprobs" (log
/// p of each response token under the distribution it was drawn from: softmax(logits /
/// temperature), before top-k/top-p; plain softmax when greedy) and "finish_reason" (eos,
/// length or context). A prompt is encoded after the model's BOS (EOS when it has none, as
/// documents follow EOS in wick's shards; --no-prefix to encode it alone). Decoding uses
/// the KV cache. --temperature 0 is greedy; sampling is reproducible with --seed (each prompt
/// draws from its own generator, seeded by --seed and its position in the input).
///
/// Examples:
///   generate --model runs/base --max-new-tokens 100 < prompts.jsonl > out.jsonl
///   echo 'To be, or not' | generate --model runs/base --temperature 0
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// An adapter folder (adapter_config.json, adapter_model.safetensors) to load on top of
    /// --model: PEFT LoRA, or a Houlsby adapter from `train --method adapter`.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Prompts: JSONL or text lines ('-' or none: stdin).
    files: Vec<String>,
    /// Field holding the prompt in JSONL records.
    #[arg(long, default_value = "prompt")]
    field: String,
    #[arg(long, default_value_t = 100)]
    max_new_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Sample only among the k most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample only among the most likely tokens holding this much probability (1: all).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Keep going past end-of-sequence tokens (for timing).
    #[arg(long)]
    ignore_eos: bool,
    /// Do not put BOS/EOS before the prompt.
    #[arg(long)]
    no_prefix: bool,
    /// Recompute the whole sequence at every step instead of using the KV cache.
    #[arg(long)]
    no_cache: bool,
    /// Write prompt and response as plain text, one blank line between records, instead of
    /// JSONL (for reading).
    #[arg(long)]
    text: bool,
    /// Output file [default: stdout].
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
    wick_io::run_main("generate", || {
        wick_model::runtime::run(threads, || body(cli))
    })
}

struct Draw(Rng);

impl Uniform for Draw {
    fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn body(cli: Cli) -> Result<()> {
    if cli.temperature < 0.0 || !(0.0..=1.0).contains(&cli.top_p) || cli.top_p == 0.0 {
        return Err(Error::msg(
            "--temperature must be >= 0 and --top-p in (0, 1]",
        ));
    }
    let folder = Folder::open_with_adapter(&cli.model, cli.adapter.as_deref())?;
    let sampling = Sampling {
        temperature: cli.temperature,
        top_k: cli.top_k,
        top_p: cli.top_p,
        max_new_tokens: cli.max_new_tokens,
        no_cache: cli.no_cache,
    };
    let stop = if cli.ignore_eos {
        Vec::new()
    } else {
        folder.stop_ids()
    };
    let prefix = if cli.no_prefix {
        Vec::new()
    } else {
        folder.doc_prefix()
    };
    let mut out = Output::create(cli.output.as_deref())?;
    let mut progress = Progress::new("generate", cli.quiet);
    let started = Instant::now();
    let (mut prompts, mut new_tokens) = (0u64, 0u64);
    for path in inputs_or_stdin(&cli.files) {
        let mut reader = LineReader::open(&path)?;
        let mut buf = Vec::new();
        while let Some(line) = reader.read_line(&mut buf)? {
            let trimmed = buf.trim_ascii_start();
            // A JSON object is a record; any other line is the prompt itself.
            let mut rec: Map<String, Value> = if trimmed.first() == Some(&b'{') {
                wick_io::parse_object(reader.name(), line, &buf)?
            } else {
                let text = String::from_utf8(buf.clone())
                    .map_err(|_| Error::record(reader.name(), line, "not UTF-8"))?;
                let mut m = Map::new();
                m.insert(cli.field.clone(), Value::String(text));
                m
            };
            let prompt = rec.get(&cli.field).and_then(Value::as_str).ok_or_else(|| {
                Error::record(
                    reader.name(),
                    line,
                    format!("no string field {:?}", cli.field),
                )
            })?;
            let mut ids = prefix.clone();
            ids.extend(
                folder
                    .tok
                    .encode(prompt)
                    .map_err(|e| Error::record(reader.name(), line, e))?,
            );
            let mut rng = Draw(Rng::new(
                cli.seed ^ prompts.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
            let g = generate(&folder.model, &ids, &sampling, &stop, &mut rng).map_err(|e| {
                Error::record(
                    reader.name(),
                    line,
                    e.context(format!("--model {}", cli.model.display())),
                )
            })?;
            // The response text leaves out a final end-of-sequence token.
            let visible = match g.finish {
                wick_model::generation::Finish::Eos => &g.ids[..g.ids.len() - 1],
                _ => &g.ids[..],
            };
            let text = folder.tok.decode(visible, false).map_err(Error::msg)?;
            if cli.text {
                out.put(format!("{prompt}{text}\n\n").as_bytes())?;
            }
            rec.insert("response".into(), json!(text));
            rec.insert("prompt_ids".into(), json!(ids));
            rec.insert("response_ids".into(), json!(g.ids));
            rec.insert("logprobs".into(), json!(g.logprobs));
            rec.insert("finish_reason".into(), json!(g.finish.name()));
            if !cli.text {
                out.put(serde_json::to_string(&rec).expect("serialises").as_bytes())?;
                out.put(b"\n")?;
            }
            prompts += 1;
            new_tokens += g.ids.len() as u64;
            let (p, n) = (prompts, new_tokens);
            progress.tick(|s| format!("{p} prompts, {n} tokens, {:.1} tokens/s", n as f64 / s));
        }
    }
    out.finish()?;
    let secs = started.elapsed().as_secs_f64();
    progress.finish(|_| {
        format!(
            "{prompts} prompts, {new_tokens} new tokens in {secs:.2}s ({:.1} tokens/s)",
            new_tokens as f64 / secs
        )
    });
    Ok(())
}
