//! Filtering JSONL files on every core while keeping input order: a reader thread cuts the
//! input into batches, each batch is judged in parallel, and kept records are written in order
//! by a writer thread (crates/tokenize/src/encode.rs has the same shape).

use std::collections::BTreeMap;
use std::io::Write;

use rayon::prelude::*;
use serde_json::Value;
use wick_io::{
    for_each_batch, human_bytes, parse_object, write_behind, AtomicFile, Error, Line, LineReader,
    Output, Progress, Result,
};

use crate::{FilterConfig, Script};

const BATCH_LINES: usize = 1024;
const BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Field holding a document's text.
    pub field: String,
    /// Skip (and count) bad records instead of stopping at the first.
    pub skip_invalid: bool,
    pub quiet: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            field: "text".into(),
            skip_invalid: false,
            quiet: false,
        }
    }
}

/// Counts for the summary on stderr.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Documents read (invalid records not counted).
    pub docs: u64,
    pub kept: u64,
    /// Invalid records skipped under `--skip-invalid`.
    pub skipped: u64,
    /// Input bytes.
    pub bytes: u64,
    /// Documents whose text cleaning changed.
    pub cleaned: u64,
    /// Kept documents that C4 removed lines from.
    pub rewritten: u64,
    /// Documents judged as CJK.
    pub cjk: u64,
    /// Dropped documents by reason.
    pub reasons: BTreeMap<String, u64>,
}

impl Summary {
    pub fn dropped(&self) -> u64 {
        self.docs - self.kept
    }

    /// The summary lines (without the tool's name).
    pub fn report(&self, secs: f64) -> String {
        let pct = |n: u64| 100.0 * n as f64 / self.docs.max(1) as f64;
        let mut s = format!(
            "{} documents in, {} kept ({:.1}%), {} dropped; {} in {secs:.2} s ({:.1} MB/s)",
            self.docs,
            self.kept,
            pct(self.kept),
            self.dropped(),
            human_bytes(self.bytes),
            self.bytes as f64 / 1e6 / secs.max(1e-9)
        );
        s += &format!(
            "\n  {} cleaned, {} shortened by c4 line removal, {} CJK",
            self.cleaned, self.rewritten, self.cjk
        );
        if self.skipped > 0 {
            s += &format!("\n  {} invalid records skipped", self.skipped);
        }
        let mut reasons: Vec<(&String, &u64)> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let width = reasons.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (reason, n) in reasons {
            s += &format!("\n  {reason:<width$} {n:>9} ({:.1}%)", pct(*n));
        }
        s
    }
}

/// One record's fate.
#[derive(Debug)]
pub enum Outcome {
    Kept {
        /// The output line, newline included.
        line: Vec<u8>,
        cleaned: bool,
        rewritten: bool,
        cjk: bool,
    },
    Dropped {
        /// The record with `"filter_reason"`, newline included (empty when not asked for).
        line: Vec<u8>,
        reason: String,
        cleaned: bool,
        cjk: bool,
    },
}

pub struct Filter {
    pub config: FilterConfig,
    pub opts: RunOptions,
}

impl Filter {
    pub fn new(config: FilterConfig, opts: RunOptions) -> Self {
        Filter { config, opts }
    }

    /// Filters every input in turn: kept records to `out`, dropped ones (with
    /// `"filter_reason"`) to `rejected` when given. Prints the summary unless quiet. Documents
    /// are judged on rayon's global pool (sized by `wick_io::set_threads`).
    pub fn run(
        &self,
        inputs: &[String],
        out: &mut Output,
        mut rejected: Option<&mut AtomicFile>,
    ) -> Result<Summary> {
        let mut sum = Summary::default();
        let mut skips = wick_io::Skipped::new("filter", self.opts.quiet);
        let mut progress = Progress::new("filter", self.opts.quiet);
        let want_rejected = rejected.is_some();
        write_behind(out, |sink| {
            for path in inputs {
                let reader = LineReader::open(path)?;
                let name = reader.name().to_string();
                for_each_batch(reader, BATCH_LINES, BATCH_BYTES, |batch| {
                    let outcomes: Vec<Result<Outcome>> = batch
                        .par_iter()
                        .map(|l| self.process_line(&name, l, want_rejected))
                        .collect();
                    let mut chunk = Vec::new();
                    let mut dropped = Vec::new();
                    for (line, r) in batch.iter().zip(outcomes) {
                        sum.bytes += line.bytes.len() as u64 + 1;
                        match r {
                            Ok(o) => {
                                sum.docs += 1;
                                match o {
                                    Outcome::Kept {
                                        line,
                                        cleaned,
                                        rewritten,
                                        cjk,
                                    } => {
                                        sum.kept += 1;
                                        sum.cleaned += u64::from(cleaned);
                                        sum.rewritten += u64::from(rewritten);
                                        sum.cjk += u64::from(cjk);
                                        chunk.extend_from_slice(&line);
                                    }
                                    Outcome::Dropped {
                                        line,
                                        reason,
                                        cleaned,
                                        cjk,
                                    } => {
                                        sum.cleaned += u64::from(cleaned);
                                        sum.cjk += u64::from(cjk);
                                        *sum.reasons.entry(reason).or_default() += 1;
                                        dropped.extend_from_slice(&line);
                                    }
                                }
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
                    if let Some(f) = rejected.as_deref_mut() {
                        f.write_all(&dropped)
                            .map_err(|e| Error::io(f.path().display(), e))?;
                    }
                    sink.send(chunk)?;
                    progress.tick(|secs| {
                        format!(
                            "{} documents, {} kept, {} ({:.1} MB/s)",
                            sum.docs,
                            sum.kept,
                            human_bytes(sum.bytes),
                            sum.bytes as f64 / 1e6 / secs
                        )
                    });
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        progress.finish(|secs| sum.report(secs));
        Ok(sum)
    }

    /// Judges one input line.
    pub fn process_line(&self, file: &str, line: &Line, want_rejected: bool) -> Result<Outcome> {
        let mut rec = parse_object(file, line.number, &line.bytes)?;
        let field = self.opts.field.as_str();
        // Taken out of the record (its place kept) so the record can be updated afterwards.
        let text = match rec.get_mut(field) {
            Some(Value::String(s)) => std::mem::take(s),
            Some(v) => {
                return Err(Error::record(
                    file,
                    line.number,
                    format!(
                        "field \"{field}\" must be a string, found {}",
                        wick_io::kind_of(v)
                    ),
                ))
            }
            None => {
                return Err(Error::record(
                    file,
                    line.number,
                    format!("missing field \"{field}\""),
                ))
            }
        };
        let j = self.config.judge(&text);
        let cjk = j.script == Script::Cjk;
        let cleaned = matches!(j.cleaned, std::borrow::Cow::Owned(_));
        match j.verdict {
            Ok(()) => {
                let line = if j.changed() {
                    let new = j.kept_text().to_string();
                    rec[field] = Value::String(new);
                    to_line(&rec)
                } else {
                    // The input line, byte for byte.
                    let mut v = Vec::with_capacity(line.bytes.len() + 1);
                    v.extend_from_slice(&line.bytes);
                    v.push(b'\n');
                    v
                };
                Ok(Outcome::Kept {
                    line,
                    cleaned,
                    rewritten: j.rewritten.is_some(),
                    cjk,
                })
            }
            Err(reason) => {
                let reason = reason.to_string();
                let line = if want_rejected {
                    // The text as judged: cleaned, before any C4 line removal.
                    rec[field] = Value::String(j.cleaned.into_owned());
                    rec.insert("filter_reason".into(), Value::String(reason.clone()));
                    to_line(&rec)
                } else {
                    Vec::new()
                };
                Ok(Outcome::Dropped {
                    line,
                    reason,
                    cleaned,
                    cjk,
                })
            }
        }
    }
}

fn to_line(rec: &serde_json::Map<String, Value>) -> Vec<u8> {
    let mut v = serde_json::to_vec(rec).expect("JSON value");
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u64, s: &str) -> Line {
        Line {
            number: n,
            bytes: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn records_keep_other_fields_and_get_reasons() {
        let f = Filter::new(FilterConfig::default(), RunOptions::default());
        match f
            .process_line(
                "x.jsonl",
                &line(1, r#"{"id":7,"text":"tiny","meta":{"a":1}}"#),
                true,
            )
            .unwrap()
        {
            Outcome::Dropped { line, reason, .. } => {
                assert_eq!(reason, "gopher_quality:min_words");
                assert_eq!(
                    String::from_utf8(line).unwrap(),
                    "{\"id\":7,\"text\":\"tiny\",\"meta\":{\"a\":1},\"filter_reason\":\"gopher_quality:min_words\"}\n"
                );
            }
            o => panic!("{o:?}"),
        }
        let e = f
            .process_line("x.jsonl", &line(3, r#"{"id":7}"#), false)
            .unwrap_err();
        assert_eq!(e.to_string(), "x.jsonl:3: missing field \"text\"");
        let e = f
            .process_line("x.jsonl", &line(4, r#"{"text":5}"#), false)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.jsonl:4: field \"text\" must be a string, found a number"
        );
    }

    #[test]
    fn unchanged_records_pass_byte_for_byte() {
        let off = FilterConfig {
            gopher_repetition: None,
            gopher_quality: None,
            c4: None,
            fineweb: None,
            ..FilterConfig::default()
        };
        let f = Filter::new(off, RunOptions::default());
        let raw = r#"{"text": "caf\u00e9",  "z": 1}"#;
        match f.process_line("x", &line(1, raw), false).unwrap() {
            Outcome::Kept { line, cleaned, .. } => {
                assert_eq!(line, format!("{raw}\n").into_bytes());
                assert!(!cleaned);
            }
            o => panic!("{o:?}"),
        }
        let raw = r#"{"z": 1, "text": "\u001b[32mgreen\u001b[m"}"#;
        match f.process_line("x", &line(1, raw), false).unwrap() {
            Outcome::Kept { line, cleaned, .. } => {
                assert_eq!(line, b"{\"z\":1,\"text\":\"green\"}\n");
                assert!(cleaned);
            }
            o => panic!("{o:?}"),
        }
    }
}
