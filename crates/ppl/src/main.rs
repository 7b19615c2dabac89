use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use ppl::{encode_record, summary, Scorer};
use wick_io::{
    inputs_or_stdin, parse_object, Error, LineReader, Output, Progress, Result, Skipped,
};
use wick_model::Folder;
use wick_shard::{ShardSet, Split};
use wick_text::Templates;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Val,
    Train,
}

/// Perplexity of a model: mean negative log-likelihood per token (nats), perplexity =
/// exp(NLL), bits per token, and bits per byte of text (comparable across tokenizers).
///
/// Scores a shard directory's val split (--data) or JSONL documents (FILES or stdin; text
/// under --field). Each document is scored after the model's BOS token, or EOS when it has
/// none (what a document follows in wick's packed shards). SFT records ({prompt, completion},
/// {instruction, input, output}, chat {messages}) are rendered as `tokenize` renders them
/// (the model folder's chat template, else wick's defaults) and only the response tokens
/// and their EOS are scored, each after its prompt: held-out response perplexity, the figure
/// `train --task sft` reports as val loss. Documents longer than --seq-len
/// are scored in windows; --stride below --seq-len slides them so that later tokens keep
/// context. Prints one JSON object on stdout (or -o); with --per-record, one line per record
/// (the input record plus "tokens", "nll", "ppl", "bits_per_byte") and the total on stderr.
/// Records go through wick's one record renderer; --skip-invalid skips (and counts) those
/// that cannot be read or rendered instead of stopping.
///
/// Examples:
///   ppl --model runs/base --data shards/
///   ppl --model runs/base --per-record docs.jsonl > per-record.jsonl
///   ppl --model runs/base --adapter runs/sft-lora held-out.jsonl    # responses only
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    model: wick_cli::Model,
    /// Shard directory made by `pack` (scores its --split).
    #[arg(long, conflicts_with = "files")]
    data: Option<PathBuf>,
    /// Which split of --data.
    #[arg(long, value_enum, default_value = "val")]
    split: SplitArg,
    /// JSONL documents ('-' or none: stdin).
    files: Vec<String>,
    /// Field holding each document's text.
    #[arg(long, default_value = "text")]
    field: String,
    /// Targets per window [default: the model's context, at most 1024].
    #[arg(long)]
    seq_len: Option<usize>,
    /// Window start every N tokens [default: --seq-len, no overlap].
    #[arg(long)]
    stride: Option<usize>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Score at most this many tokens of --data.
    #[arg(long)]
    max_tokens: Option<usize>,
    #[command(flatten)]
    per_record: wick_cli::PerRecord,
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
    wick_io::run_main("ppl", || {
        wick_io::set_threads(threads)?;
        wick_model::runtime::run(threads, || body(cli))
    })
}

fn body(cli: Cli) -> Result<()> {
    let device = wick_model::runtime::open_device(cli.device.name())?;
    // The config first: the flags are checked against it before the weights are read.
    let model_dir = &cli.model.model;
    let per_record = cli.per_record.per_record;
    let quiet = cli.common.quiet;
    let config = wick_model::Config::load(&model_dir.join("config.json"))?;
    let seq_len = cli
        .seq_len
        .unwrap_or(config.max_position_embeddings.min(1024));
    if cli.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    if seq_len == 0 {
        return Err(Error::msg("--seq-len must be at least 1"));
    }
    let flags = format!("--batch-size {} x --seq-len {seq_len}", cli.batch_size);
    wick_model::memory::check_forward(&config, cli.batch_size, seq_len, &flags)
        .map_err(Error::msg)?;
    let mut folder = Folder::open_as(model_dir, cli.model.adapter.as_deref(), cli.dtype.name())?;
    folder.model.to_device(&device)?;
    // Every product (attention's too) in the dtype the weights are kept in.
    let _autocast = wick_model::autocast(wick_model::Precision::of_dtype(folder.model.dtype()));
    folder.model.keep_transposed_weights()?;
    if seq_len > folder.model.config.max_position_embeddings {
        return Err(Error::msg(format!(
            "--seq-len {seq_len} is longer than the model's context ({})",
            folder.model.config.max_position_embeddings
        )));
    }
    let stride = cli.stride.unwrap_or(seq_len);
    if stride == 0 || stride > seq_len {
        return Err(Error::msg("--stride must be between 1 and --seq-len"));
    }
    let scorer = Scorer::new(&folder.model, seq_len, stride, cli.batch_size);
    let mut progress = Progress::new("ppl", quiet);
    let mut skips = Skipped::new("ppl", quiet);
    let started = Instant::now();
    let mut done = 0u64;
    // When the first batch ended, and the targets scored by then. The first batch pays for the
    // first touch of every buffer (fresh pages, which the kernel zeroes); later ones reuse them.
    // `steady_tokens_per_s` is the rate after it (docs/speed.md has what the first batch costs).
    let mut first_batch: Option<(Instant, u64)> = None;
    let mut tick = |n: u64| {
        done += n;
        first_batch.get_or_insert_with(|| (Instant::now(), done));
        let d = done;
        progress.tick(|s| format!("{d} tokens, {:.0} tokens/s", d as f64 / s));
    };

    // (ids, bytes, record) per document.
    let mut docs: Vec<Vec<u32>> = Vec::new();
    let mut masks: Vec<Vec<u8>> = Vec::new();
    let mut bytes: Vec<u64> = Vec::new();
    let mut records = Vec::new();
    let source;
    // The inputs as messages name them.
    let mut names: Vec<String> = Vec::new();
    if let Some(dir) = &cli.data {
        let set = ShardSet::open(dir)?;
        names.push(dir.display().to_string());
        if let Some(m) = &set.manifest {
            if m.tokenizer.xxh3_128 != folder.tok.hash {
                return Err(Error::msg(format!(
                    "{}: the shards were made with another tokenizer than {}'s",
                    dir.display(),
                    model_dir.display()
                )));
            }
        }
        let split = match cli.split {
            SplitArg::Val => Split::Val,
            SplitArg::Train => Split::Train,
        };
        let mut budget = cli.max_tokens.map_or(usize::MAX, |n| n + 1);
        for shard in set.split(split) {
            let t = shard.tokens();
            let n = t.len().min(budget);
            if n < 2 {
                continue;
            }
            shard.check_ids(folder.model.config.vocab_size)?;
            budget -= n;
            let mut ids = Vec::with_capacity(n);
            t.extend_into(0, n, &mut ids);
            let text = folder.tok.decode(&ids[1..], true).map_err(Error::msg)?;
            bytes.push(text.len() as u64);
            docs.push(ids);
        }
        if docs.is_empty() {
            return Err(Error::msg(format!(
                "{}: the {} split holds no tokens to score",
                dir.display(),
                split.name()
            )));
        }
        source = serde_json::json!({"data": dir, "split": split.name()});
    } else {
        let prefix = folder.doc_prefix();
        let tok = &folder.tok;
        let templates = Templates::for_tok(tok)?;
        for path in inputs_or_stdin(&cli.files) {
            let mut reader = LineReader::open(&path)?;
            names.push(reader.name().to_string());
            let mut buf = Vec::new();
            while let Some(line) = reader.read_line(&mut buf)? {
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                // A record that cannot be read or rendered is skipped with --skip-invalid.
                let read = || -> Result<_> {
                    let rec = parse_object(reader.name(), line, &buf)?;
                    let doc = encode_record(&rec, &cli.field, &templates, tok, &prefix)
                        .map_err(|e| Error::record(reader.name(), line, e))?;
                    Ok((rec, doc))
                };
                let (rec, doc) = match read() {
                    Ok(r) => r,
                    Err(e) if cli.skip.skip_invalid => {
                        skips.note(&e);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                bytes.push(doc.bytes);
                docs.push(doc.ids);
                masks.push(doc.mask);
                if per_record {
                    records.push(rec);
                }
            }
        }
        if docs.is_empty() {
            return Err(Error::msg(format!(
                "{}: no records to score",
                names.join(", ")
            )));
        }
        source = serde_json::json!({"files": inputs_or_stdin(&cli.files)});
    }

    let nll = scorer
        .score(&docs, &masks, &mut tick)
        .map_err(|e| e.context(format!("--model {}", model_dir.display())))?;
    let ended = Instant::now();
    let secs = ended.duration_since(started).as_secs_f64();
    let (sum, tokens): (f64, u64) = nll
        .iter()
        .fold((0.0, 0), |a, n| (a.0 + n.sum, a.1 + n.tokens));
    if tokens == 0 {
        // A perplexity of 1.0 from nothing scored would read as a perfect model.
        return Err(Error::msg(format!(
            "{}: nothing to score: the {} document(s) are empty",
            names.join(", "),
            docs.len()
        )));
    }
    let mut total = summary(sum, tokens, bytes.iter().sum());
    total["documents"] = docs.len().into();
    let responses = masks.iter().filter(|m| !m.is_empty()).count();
    if responses > 0 {
        // SFT records: only their responses were scored.
        total["sft_records"] = responses.into();
    }
    total["model"] = serde_json::json!(model_dir);
    total["source"] = source;
    total["seq_len"] = seq_len.into();
    total["stride"] = stride.into();
    total["seconds"] = secs.into();
    total["tokens_per_s"] = (tokens as f64 / secs).into();
    if let Some((t1, n1)) = first_batch.filter(|&(_, n1)| tokens > n1) {
        let s = ended.duration_since(t1).as_secs_f64();
        total["steady_tokens_per_s"] = ((tokens - n1) as f64 / s).into();
    }
    let skipped = Skipped::suffix(skips.count);
    progress.finish(|_| {
        format!(
            "{tokens} tokens: nll {:.4}, ppl {:.3}, {:.0} tokens/s{skipped}",
            total["nll"].as_f64().unwrap_or(f64::NAN),
            total["ppl"].as_f64().unwrap_or(f64::NAN),
            tokens as f64 / secs
        )
    });
    let mut out = Output::create(cli.output.output.as_deref())?;
    if per_record {
        for ((mut rec, n), b) in records.into_iter().zip(&nll).zip(&bytes) {
            let s = summary(n.sum, n.tokens, *b);
            for k in ["tokens", "nll", "ppl", "bits_per_byte"] {
                rec.insert(k.into(), s[k].clone());
            }
            out.put(serde_json::to_string(&rec).expect("serialises").as_bytes())?;
            out.put(b"\n")?;
        }
        if !quiet {
            eprintln!("{total}");
        }
    } else {
        out.put(format!("{total}\n").as_bytes())?;
    }
    out.finish()
}
