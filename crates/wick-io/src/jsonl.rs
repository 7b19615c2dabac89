//! Line-oriented reading of JSONL (and plain text) from files or stdin.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use serde_json::{Map, Value};

use crate::{Error, Result};

/// One input line, without its line terminator, with its 1-based number in its file.
#[derive(Debug, Clone)]
pub struct Line {
    pub number: u64,
    pub bytes: Vec<u8>,
}

/// Reads a file (or stdin for "-") line by line, counting lines for error messages.
pub struct LineReader {
    name: String,
    inner: Box<dyn BufRead + Send>,
    line: u64,
}

impl LineReader {
    pub fn open(path: &str) -> Result<Self> {
        let (name, inner): (String, Box<dyn Read + Send>) = if path == "-" {
            ("<stdin>".to_string(), Box::new(io::stdin()))
        } else {
            let f = File::open(path).map_err(|e| Error::io(path, e))?;
            (path.to_string(), Box::new(f))
        };
        Ok(Self::from_reader(name, inner))
    }

    pub fn from_reader(name: impl Into<String>, inner: impl Read + Send + 'static) -> Self {
        LineReader {
            name: name.into(),
            inner: Box::new(BufReader::with_capacity(1 << 20, inner)),
            line: 0,
        }
    }

    /// The name used in error messages: the path, or `<stdin>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the next line into `buf` (cleared first, terminator stripped) and returns its
    /// number, or `None` at end of input.
    pub fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>> {
        buf.clear();
        let n = self
            .inner
            .read_until(b'\n', buf)
            .map_err(|e| Error::io(&self.name, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(Some(self.line))
    }

    /// Reads up to `max_lines` non-blank lines or about `max_bytes` bytes, whichever comes
    /// first; an empty batch means end of input. Blank lines are skipped, as most JSONL
    /// readers do.
    pub fn read_batch(&mut self, max_lines: usize, max_bytes: usize) -> Result<Vec<Line>> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < max_lines && bytes < max_bytes {
            let mut buf = Vec::new();
            let Some(number) = self.read_line(&mut buf)? else {
                break;
            };
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            bytes += buf.len();
            batch.push(Line { number, bytes: buf });
        }
        Ok(batch)
    }
}

/// Parses one JSONL line as a JSON object, naming file and line on failure (including bytes
/// that are not UTF-8, which JSON forbids).
pub fn parse_object(file: &str, line: u64, bytes: &[u8]) -> Result<Map<String, Value>> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(Error::record(
            file,
            line,
            format!(
                "not valid UTF-8 (bad byte at column {})",
                e.valid_up_to() + 1
            ),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::record(
            file,
            line,
            format!("expected a JSON object, found {}", kind_of(&other)),
        )),
        Err(e) => Err(Error::record(file, line, format!("malformed JSON: {e}"))),
    }
}

/// A short name for a JSON value's type, for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lines_and_strips_crlf_and_skips_blank_lines() {
        let data = b"{\"a\":1}\r\n\n  \n{\"a\":2}\n{\"a\":3}".to_vec();
        let mut r = LineReader::from_reader("x.jsonl", io::Cursor::new(data));
        let batch = r.read_batch(100, 1 << 20).unwrap();
        let got: Vec<(u64, &[u8])> = batch.iter().map(|l| (l.number, &l.bytes[..])).collect();
        assert_eq!(
            got,
            vec![(1, &b"{\"a\":1}"[..]), (4, b"{\"a\":2}"), (5, b"{\"a\":3}")]
        );
        assert!(r.read_batch(100, 1 << 20).unwrap().is_empty());
    }

    #[test]
    fn batches_respect_line_limit() {
        let data = b"1\n2\n3\n4\n5\n".to_vec();
        let mut r = LineReader::from_reader("x", io::Cursor::new(data));
        assert_eq!(r.read_batch(2, 1 << 20).unwrap().len(), 2);
        assert_eq!(r.read_batch(2, 1 << 20).unwrap()[0].number, 3);
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let e = parse_object("in.jsonl", 7, b"{\"text\": ")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("in.jsonl:7: malformed JSON"), "{e}");
        let e = parse_object("in.jsonl", 3, b"[1,2]")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "in.jsonl:3: expected a JSON object, found an array");
        let e = parse_object("in.jsonl", 2, b"{\"text\": \"caf\xe9\"}")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "in.jsonl:2: not valid UTF-8 (bad byte at column 14)");
    }

    #[test]
    fn unknown_fields_keep_their_order() {
        let m = parse_object("f", 1, br#"{"z":1,"text":"t","a":[1]}"#).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["z", "text", "a"]);
    }
}
