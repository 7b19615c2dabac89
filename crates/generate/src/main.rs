use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use serde_json::{json, Map, Value};
use wick_io::{inputs_or_stdin, Error, LineReader, Output, Progress, Result, Skipped};
use wick_model::generation::{generate, Sampling, Uniform};
use wick_model::Folder;
use wick_shard::Rng;
use wick_text::{Reading, Rendered, Renderer};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Continue prompts with a model.
///
/// Reads prompts (FILES or stdin): plain text lines, and JSONL records rendered by wick's one
/// record renderer (as `tokenize` and `ppl` render them):
///   {"prompt": ...}       the text under --field, continued as it is, after the model's BOS
///                         (EOS when it has none, as documents follow EOS in wick's shards;
///                         --no-prefix to encode it alone);
///   {"messages": [...]}   a chat, rendered with the folder's chat template (tokenizer_config.json's
///                         chat_template, else wick's default) with the generation prompt added,
///                         as transformers' apply_chat_template(add_generation_prompt=True): the
///                         template puts any BOS itself;
///   {"instruction", "input"}  Alpaca: the prompt SFT trains with (a user turn through the
///                         folder's chat template, else Stanford Alpaca's prompt).
/// A templated prompt (chat, Alpaca) stops at the end of the assistant's turn: at any of
/// generation_config.json's eos_token_id (one id or a list), config.json's, the tokenizer's EOS,
/// and the special token the template closes an assistant turn with (<|im_end|>, <|eot_id|>);
/// a plain prompt at config.json's EOS and the tokenizer's.
///
/// Each record is written back with "response" (the text, without the final stop token),
/// "prompt_ids", "response_ids", "logprobs" (log p of each response token under the
/// distribution it was drawn from: softmax(logits / temperature), before top-k/top-p; plain
/// softmax when greedy) and "finish_reason" (eos, length or context). Decoding uses the KV
/// cache. --temperature 0 is greedy; sampling is reproducible with --seed (each prompt draws
/// from its own generator, seeded by --seed and its position in the input).
///
/// Examples:
///   generate --model runs/base --max-new-tokens 100 < prompts.jsonl > out.jsonl
///   echo 'To be, or not' | generate --model runs/base --temperature 0
///   echo '{"messages": [{"role": "user", "content": "Hi"}]}' | generate --model runs/sft --text
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    model: wick_cli::Model,
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
    /// Keep going past end-of-sequence and end-of-turn tokens (for timing).
    #[arg(long)]
    ignore_eos: bool,
    /// Do not put BOS/EOS before a plain prompt.
    #[arg(long)]
    no_prefix: bool,
    /// Recompute the whole sequence at every step instead of using the KV cache.
    #[arg(long)]
    no_cache: bool,
    /// Write prompt and response as plain text, one blank line between records, instead of
    /// JSONL (for reading).
    #[arg(long)]
    text: bool,
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
    wick_io::run_main("generate", || {
        wick_io::set_threads(threads)?;
        wick_model::runtime::run(threads, || body(cli))
    })
}

struct Draw(Rng);

impl Uniform for Draw {
    fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `eos_token_id` of the folder's generation_config.json (one id or a list; none without the
/// file), which transformers' `generate` stops at.
fn generation_config_eos(dir: &Path) -> Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::msg(format!("{}: malformed JSON: {e}", path.display())))?;
    let id = |v: &Value| v.as_u64().and_then(|x| u32::try_from(x).ok());
    let ids = match v.get("eos_token_id") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(id).collect(),
        Some(one) => id(one).map(|x| vec![x]),
    };
    ids.ok_or_else(|| {
        Error::msg(format!(
            "{}: eos_token_id must be a token id or a list of them",
            path.display()
        ))
    })
}

/// The ids a reply to a templated (chat or Alpaca) prompt stops at: the plain prompts' stop ids,
/// generation_config.json's eos_token_id and the template's end-of-turn token.
fn turn_stop_ids(folder: &Folder, renderer: &Renderer, model: &Path) -> Result<Vec<u32>> {
    let mut ids = folder.stop_ids();
    ids.extend(generation_config_eos(model)?);
    ids.extend(renderer.end_of_turn(&folder.tok));
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn body(cli: Cli) -> Result<()> {
    if cli.temperature < 0.0 || !(0.0..=1.0).contains(&cli.top_p) || cli.top_p == 0.0 {
        return Err(Error::msg(
            "--temperature must be >= 0 and --top-p in (0, 1]",
        ));
    }
    let device = wick_model::runtime::open_device(cli.device.name())?;
    let model_dir = &cli.model.model;
    let mut folder = Folder::open_as(model_dir, cli.model.adapter.as_deref(), cli.dtype.name())?;
    folder.model.to_device(&device)?;
    // Every product (attention's too) in the dtype the weights are kept in.
    let _autocast = wick_model::autocast(wick_model::Precision::of_dtype(folder.model.dtype()));
    let renderer = Renderer::new(&folder.tok, &cli.field, Reading::Prompt)?;
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
    // Read at the first templated prompt, so that runs on plain prompts read what they did.
    let mut turn_stop: Option<Vec<u32>> = cli.ignore_eos.then(Vec::new);
    let prefix = if cli.no_prefix {
        Vec::new()
    } else {
        folder.doc_prefix()
    };
    let context = folder.model.config.max_position_embeddings;
    let mut out = Output::create(cli.output.output.as_deref())?;
    let quiet = cli.common.quiet;
    let mut progress = Progress::new("generate", quiet);
    let mut skips = Skipped::new("generate", quiet);
    let started = Instant::now();
    let (mut prompts, mut new_tokens) = (0u64, 0u64);
    for path in inputs_or_stdin(&cli.files) {
        let mut reader = LineReader::open(&path)?;
        let mut buf = Vec::new();
        while let Some(line) = reader.read_line(&mut buf)? {
            // A record that cannot be read, rendered or fitted is skipped with --skip-invalid.
            let prompt = match read_prompt(
                (reader.name(), line),
                &buf,
                &cli.field,
                &renderer,
                &folder,
                &prefix,
                context,
            ) {
                Ok(p) => p,
                Err(e) => {
                    if cli.skip.skip_invalid {
                        skips.note(&e);
                        continue;
                    }
                    return Err(e);
                }
            };
            let Prompt {
                mut rec,
                rendered,
                ids,
            } = prompt;
            let stop = if rendered.is_templated() {
                if turn_stop.is_none() {
                    turn_stop = Some(turn_stop_ids(&folder, &renderer, model_dir)?);
                }
                turn_stop.as_deref().expect("just set")
            } else {
                &stop
            };
            let mut rng = Draw(Rng::new(
                cli.seed ^ prompts.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
            let g = generate(&folder.model, &ids, &sampling, stop, &mut rng).map_err(|e| {
                Error::record(
                    reader.name(),
                    line,
                    e.context(format!("--model {}", model_dir.display())),
                )
            })?;
            // The response text leaves out a final end-of-sequence token.
            let visible = match g.finish {
                wick_model::generation::Finish::Eos => &g.ids[..g.ids.len() - 1],
                _ => &g.ids[..],
            };
            let text = folder.tok.decode(visible, false).map_err(Error::msg)?;
            if cli.text {
                out.put(format!("{}{text}\n\n", rendered.text()).as_bytes())?;
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
    let skipped = Skipped::suffix(skips.count);
    progress.finish(|_| {
        format!(
            "{prompts} prompts, {new_tokens} new tokens in {secs:.2}s ({:.1} tokens/s){skipped}",
            new_tokens as f64 / secs
        )
    });
    Ok(())
}

/// One input line as a prompt: the record (a text line becomes `{field: line}`), its rendering
/// and the ids the model continues.
struct Prompt {
    rec: Map<String, Value>,
    rendered: Rendered,
    ids: Vec<u32>,
}

fn read_prompt(
    (name, line): (&str, u64),
    buf: &[u8],
    field: &str,
    renderer: &Renderer,
    folder: &Folder,
    prefix: &[u32],
    context: usize,
) -> Result<Prompt> {
    let bad = |e: String| Error::record(name, line, e);
    let trimmed = buf.trim_ascii_start();
    // A JSON object is a record; any other line is the prompt itself.
    let rec: Map<String, Value> = if trimmed.first() == Some(&b'{') {
        wick_io::parse_object(name, line, buf)?
    } else {
        let text = String::from_utf8(buf.to_vec()).map_err(|_| bad("not UTF-8".into()))?;
        let mut m = Map::new();
        m.insert(field.to_string(), Value::String(text));
        m
    };
    let rendered = renderer.render(&rec).map_err(bad)?;
    let ids = rendered.encode(&folder.tok, prefix).map_err(bad)?.ids;
    // What generate() refuses, checked here so that --skip-invalid can skip it.
    if ids.is_empty() {
        return Err(bad("empty prompt (no tokens)".into()));
    }
    if ids.len() > context {
        return Err(bad(format!(
            "the prompt is {} tokens, longer than the model's context of {context}",
            ids.len()
        )));
    }
    Ok(Prompt { rec, rendered, ids })
}
