//! Encoding JSONL records to token ids on every core while keeping input order.
//!
//! A reader thread cuts the input into batches of lines; each batch is encoded in parallel
//! and written in order, so memory stays bounded by a few batches whatever the input size.

use rayon::prelude::*;
use serde_json::{Map, Value};
use wick_io::{
    for_each_batch, human_bytes, parse_object, write_behind, write_ids, Error, Line, LineReader,
    Output, Progress, Result, Skipped,
};
use wick_text::{render_preference, render_sft, Encoded, Format, Templates, Tok};

const BATCH_LINES: usize = 2048;
const BATCH_BYTES: usize = 4 << 20;

/// Which kind of record to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatChoice {
    /// Decide per record from its fields.
    Auto,
    /// Plain documents under --field.
    Text,
    /// Alpaca, prompt/completion or chat records.
    Sft,
    /// {prompt, chosen, rejected} records.
    Preference,
}

pub struct EncodeOptions {
    pub field: String,
    pub format: FormatChoice,
    pub append_eos: bool,
    pub drop_text: bool,
    pub skip_invalid: bool,
    pub quiet: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub records: u64,
    pub skipped: u64,
    pub tokens: u64,
    pub bytes: u64,
}

pub struct Encoder<'a> {
    tok: &'a Tok,
    templates: Templates,
    opts: EncodeOptions,
    eos: Option<u32>,
}

impl<'a> Encoder<'a> {
    pub fn new(tok: &'a Tok, opts: EncodeOptions) -> Result<Self> {
        let templates = Templates::for_tok(tok)?;
        // A document separator is needed to append EOS; fail now rather than on line 1.
        let eos = if opts.append_eos {
            Some(tok.require_eos()?)
        } else {
            tok.eos_id
        };
        Ok(Encoder {
            tok,
            templates,
            opts,
            eos,
        })
    }

    /// Encodes every input in turn to `out`, in order, on rayon's global pool (sized by
    /// `wick_io::set_threads`).
    pub fn run(&self, inputs: &[String], out: &mut Output) -> Result<Summary> {
        let mut sum = Summary::default();
        let mut progress = Progress::new("tokenize", self.opts.quiet);
        let mut skips = Skipped::new("tokenize", self.opts.quiet);
        // Reading, encoding and writing overlap: a reader thread, the pool, a writer thread.
        write_behind(out, |sink| {
            for path in inputs {
                let reader = LineReader::open(path)?;
                let name = reader.name().to_string();
                for_each_batch(reader, BATCH_LINES, BATCH_BYTES, |batch| {
                    let encoded: Vec<Result<(Vec<u8>, usize)>> = batch
                        .par_iter()
                        .map(|l| self.encode_line(&name, l))
                        .collect();
                    let mut chunk =
                        Vec::with_capacity(encoded.iter().flatten().map(|e| e.0.len()).sum());
                    for (line, r) in batch.iter().zip(encoded) {
                        sum.bytes += line.bytes.len() as u64 + 1;
                        match r {
                            Ok((bytes, tokens)) => {
                                chunk.extend_from_slice(&bytes);
                                sum.records += 1;
                                sum.tokens += tokens as u64;
                            }
                            Err(e) if self.opts.skip_invalid => {
                                skips.note(&e);
                                sum.skipped = skips.count;
                            }
                            Err(e) => {
                                // Keep what came before the bad record, then stop.
                                sink.send(chunk)?;
                                return Err(e);
                            }
                        }
                    }
                    sink.send(chunk)?;
                    progress.tick(|secs| {
                        format!(
                            "{} records, {} tokens, {} ({:.1} MB/s)",
                            sum.records,
                            sum.tokens,
                            human_bytes(sum.bytes),
                            sum.bytes as f64 / 1e6 / secs
                        )
                    });
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        progress.finish(|secs| {
            let skipped = Skipped::suffix(sum.skipped);
            format!(
                "{} records, {} tokens from {} in {secs:.2} s ({:.1} MB/s){skipped}",
                sum.records,
                sum.tokens,
                human_bytes(sum.bytes),
                sum.bytes as f64 / 1e6 / secs.max(1e-9)
            )
        });
        Ok(sum)
    }

    /// One input line to one output line (with its newline) and its token count.
    pub fn encode_line(&self, file: &str, line: &Line) -> Result<(Vec<u8>, usize)> {
        let rec = parse_object(file, line.number, &line.bytes)?;
        self.encode_record(&line.bytes, rec)
            .map_err(|msg| Error::record(file, line.number, msg))
    }

    fn encode_record(
        &self,
        raw: &[u8],
        mut rec: Map<String, Value>,
    ) -> std::result::Result<(Vec<u8>, usize), String> {
        let field = self.opts.field.as_str();
        let detected = Format::detect(&rec, field);
        let format = match (self.opts.format, detected) {
            (FormatChoice::Text, _) => Format::Text,
            (FormatChoice::Auto, Some(f)) => f,
            (FormatChoice::Sft, Some(f @ (Format::Alpaca | Format::PromptCompletion | Format::Chat))) => f,
            (FormatChoice::Preference, Some(Format::Preference)) => Format::Preference,
            (FormatChoice::Auto, None) => {
                return Err(format!("missing field \"{field}\" (and not an SFT or preference record)"))
            }
            (FormatChoice::Sft, _) => {
                return Err("not an SFT record: needs \"messages\", \"instruction\"+\"output\" or \"prompt\"+\"completion\"".into())
            }
            (FormatChoice::Preference, _) => {
                return Err("not a preference record: needs \"prompt\", \"chosen\" and \"rejected\"".into())
            }
        };
        // (field, values, counts as tokens)
        let fields: Vec<(&str, Vec<u32>, bool)> = match format {
            Format::Text => {
                let text = match rec.get(field) {
                    Some(Value::String(s)) => s,
                    Some(v) => {
                        return Err(format!(
                            "field \"{field}\" must be a string, found {}",
                            wick_io::kind_of(v)
                        ))
                    }
                    None => return Err(format!("missing field \"{field}\"")),
                };
                let mut ids = self.tok.encode(text)?;
                if self.opts.append_eos {
                    ids.extend(self.eos);
                }
                vec![("ids", ids, true)]
            }
            Format::Preference => {
                let p = render_preference(&rec, &self.templates)?;
                vec![
                    ("prompt_ids", self.tok.encode_pieces(&p.prompt)?.ids, true),
                    ("chosen_ids", self.tok.encode_pieces(&p.chosen)?.ids, true),
                    (
                        "rejected_ids",
                        self.tok.encode_pieces(&p.rejected)?.ids,
                        true,
                    ),
                ]
            }
            sft => {
                let Encoded { ids, mask } =
                    self.tok
                        .encode_pieces(&render_sft(&rec, sft, &self.templates)?)?;
                vec![
                    ("ids", ids, true),
                    ("mask", mask.into_iter().map(u32::from).collect(), false),
                ]
            }
        };
        let tokens = fields.iter().filter(|f| f.2).map(|f| f.1.len()).sum();
        let drop = if self.opts.drop_text {
            format.source_fields(field)
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(raw.len() + 8 * tokens + 32);
        if drop.is_empty() && fields.iter().all(|(k, _, _)| !rec.contains_key(*k)) {
            // Fast path: the input line, byte for byte, with the new fields spliced in before
            // its closing brace.
            let body = raw.trim_ascii_end();
            out.extend_from_slice(&body[..body.len() - 1]);
            for (i, (k, values, _)) in fields.iter().enumerate() {
                if !rec.is_empty() || i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(format!("\"{k}\":").as_bytes());
                write_ids(&mut out, values);
            }
            out.push(b'}');
        } else {
            for k in drop {
                rec.remove(k);
            }
            for (k, values, _) in fields {
                rec.insert(k.to_string(), values.into());
            }
            serde_json::to_writer(&mut out, &rec).expect("JSON value");
        }
        out.push(b'\n');
        Ok((out, tokens))
    }
}
