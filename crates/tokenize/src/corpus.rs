//! The training corpus as a stream of texts: JSONL documents or plain text files, read lazily
//! so that tokenizer training holds word counts, never the corpus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wick_io::{parse_object, Error, LineReader, Result};

/// Plain text is fed in chunks of whole lines (newlines kept, so that the tokenizer learns
/// them) of about this many bytes.
const TEXT_CHUNK: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CorpusFormat {
    /// JSONL for .jsonl/.json files and stdin, plain text otherwise.
    Auto,
    Jsonl,
    Text,
}

#[derive(Default)]
pub struct CorpusStats {
    pub docs: AtomicU64,
    pub bytes: AtomicU64,
    pub skipped: AtomicU64,
}

/// Streams the texts of `files`; the first error ends the stream and is kept for [`Corpus::finish`].
pub struct Corpus {
    files: Vec<String>,
    field: String,
    format: CorpusFormat,
    skip_invalid: bool,
    pub stats: Arc<CorpusStats>,
    error: Arc<Mutex<Option<Error>>>,
}

impl Corpus {
    pub fn new(files: Vec<String>, field: &str, format: CorpusFormat, skip_invalid: bool) -> Self {
        Corpus {
            files,
            field: field.to_string(),
            format,
            skip_invalid,
            stats: Arc::default(),
            error: Arc::default(),
        }
    }

    fn is_jsonl(&self, path: &str) -> bool {
        match self.format {
            CorpusFormat::Jsonl => true,
            CorpusFormat::Text => false,
            CorpusFormat::Auto => {
                path == "-" || path.ends_with(".jsonl") || path.ends_with(".json")
            }
        }
    }

    /// The texts, in file order. Check [`Corpus::finish`] after consuming it.
    pub fn texts(&self) -> impl Iterator<Item = String> + Send + '_ {
        self.files.iter().flat_map(move |path| {
            let jsonl = self.is_jsonl(path);
            let mut reader = match LineReader::open(path) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.fail(e);
                    None
                }
            };
            let mut buf = Vec::new();
            std::iter::from_fn(move || {
                let r = reader.as_mut()?;
                let next = if jsonl {
                    self.next_doc(r, &mut buf)
                } else {
                    self.next_chunk(r, &mut buf)
                };
                match next {
                    Ok(Some(text)) => {
                        self.stats.docs.fetch_add(1, Ordering::Relaxed);
                        Some(text)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        self.fail(e);
                        None
                    }
                }
            })
        })
    }

    fn fail(&self, e: Error) {
        self.error.lock().expect("not poisoned").get_or_insert(e);
    }

    fn next_doc(&self, r: &mut LineReader, buf: &mut Vec<u8>) -> Result<Option<String>> {
        while let Some(line) = r.read_line(buf)? {
            self.stats
                .bytes
                .fetch_add(buf.len() as u64 + 1, Ordering::Relaxed);
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = parse_object(r.name(), line, buf).and_then(|mut rec| {
                match rec.remove(&self.field) {
                    Some(serde_json::Value::String(s)) => Ok(s),
                    Some(_) => Err(Error::record(
                        r.name(),
                        line,
                        format!("field \"{}\" must be a string", self.field),
                    )),
                    None => Err(Error::record(
                        r.name(),
                        line,
                        format!("missing field \"{}\"", self.field),
                    )),
                }
            });
            match text {
                Ok(t) => return Ok(Some(t)),
                Err(_) if self.skip_invalid => {
                    self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn next_chunk(&self, r: &mut LineReader, buf: &mut Vec<u8>) -> Result<Option<String>> {
        let mut chunk = String::new();
        while chunk.len() < TEXT_CHUNK {
            let Some(line) = r.read_line(buf)? else { break };
            self.stats
                .bytes
                .fetch_add(buf.len() as u64 + 1, Ordering::Relaxed);
            match std::str::from_utf8(buf) {
                Ok(s) => {
                    chunk.push_str(s);
                    chunk.push('\n');
                }
                Err(_) if self.skip_invalid => {
                    self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let msg = format!(
                        "not valid UTF-8 (bad byte at column {})",
                        e.valid_up_to() + 1
                    );
                    return Err(Error::record(r.name(), line, msg));
                }
            }
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }

    /// The first error met while streaming, if any.
    pub fn finish(&self) -> Result<()> {
        match self.error.lock().expect("not poisoned").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
