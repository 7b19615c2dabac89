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

/// The longest line any wick tool reads, terminator excluded: 256 MiB. A longer line (or a
/// stream that never ends one, like /dev/zero) is refused once this much has been read,
/// rather than growing a buffer until memory runs out.
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// The UTF-8 byte-order mark some editors put at the start of a file; skipped there.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a file (or stdin for "-") line by line, counting lines for error messages. A UTF-8
/// byte-order mark at the very start is skipped; lines longer than [`MAX_LINE_BYTES`] are
/// refused.
pub struct LineReader {
    name: String,
    inner: Box<dyn BufRead + Send>,
    line: u64,
    max_line: usize,
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
            max_line: MAX_LINE_BYTES,
        }
    }

    /// Refuses lines longer than `bytes` (terminator excluded) instead of [`MAX_LINE_BYTES`].
    pub fn with_max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    /// The name used in error messages: the path, or `<stdin>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the next line into `buf` (cleared first, terminator stripped) and returns its
    /// number, or `None` at end of input. At most the maximum line length (plus `\r\n`, plus a
    /// byte-order mark on line 1) is read into `buf` before a longer line is refused.
    pub fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>> {
        buf.clear();
        let first = self.line == 0;
        let limit = self.max_line as u64 + 2 + if first { BOM.len() as u64 } else { 0 };
        let n = (&mut self.inner)
            .take(limit)
            .read_until(b'\n', buf)
            .map_err(|e| Error::io(&self.name, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if first && buf.starts_with(BOM) {
            buf.drain(..BOM.len());
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.len() > self.max_line {
            buf.clear();
            return Err(Error::record(
                &self.name,
                self.line,
                format!("line longer than the {} maximum", size(self.max_line)),
            ));
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

/// "256 MiB", or "10-byte" for a size that is not a whole number of MiB.
fn size(bytes: usize) -> String {
    if bytes > 0 && (bytes >> 20) << 20 == bytes {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes}-byte")
    }
}

/// Parses one JSONL line as a JSON object, naming file and line on failure (including bytes
/// that are not UTF-8, which JSON forbids).
pub fn parse_object(file: &str, line: u64, bytes: &[u8]) -> Result<Map<String, Value>> {
    if bytes.starts_with(BOM) {
        // LineReader skips one at the start of a file; this one is further in (files joined
        // with `cat`, say).
        return Err(Error::record(
            file,
            line,
            "starts with a UTF-8 byte-order mark (EF BB BF), which is only skipped at the start of a file",
        ));
    }
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
    fn a_byte_order_mark_is_skipped_at_the_start_of_a_file_only() {
        let data = b"\xEF\xBB\xBF{\"a\":1}\n\xEF\xBB\xBF{\"a\":2}\n".to_vec();
        let mut r = LineReader::from_reader("bom.jsonl", io::Cursor::new(data));
        let mut buf = Vec::new();
        assert_eq!(r.read_line(&mut buf).unwrap(), Some(1));
        assert_eq!(buf, b"{\"a\":1}");
        assert_eq!(parse_object("bom.jsonl", 1, &buf).unwrap()["a"], 1);
        // Further in, it is named rather than passed off as malformed JSON.
        assert_eq!(r.read_line(&mut buf).unwrap(), Some(2));
        assert_eq!(
            parse_object("bom.jsonl", 2, &buf).unwrap_err().to_string(),
            "bom.jsonl:2: starts with a UTF-8 byte-order mark (EF BB BF), which is only skipped at the start of a file"
        );
        // A file that is only a mark is one blank line.
        let mut r = LineReader::from_reader("x", io::Cursor::new(b"\xEF\xBB\xBF".to_vec()));
        assert_eq!(r.read_line(&mut buf).unwrap(), Some(1));
        assert!(buf.is_empty());
        assert_eq!(r.read_line(&mut buf).unwrap(), None);
    }

    #[test]
    fn lines_longer_than_the_maximum_are_refused() {
        let data = b"0123456789\n0123456789\r\n\xEF\xBB\xBF\n0123456789A\n".to_vec();
        let mut r = LineReader::from_reader("long.jsonl", io::Cursor::new(data)).with_max_line(10);
        let mut buf = Vec::new();
        for n in 1..=3 {
            assert_eq!(r.read_line(&mut buf).unwrap(), Some(n));
        }
        assert_eq!(
            r.read_line(&mut buf).unwrap_err().to_string(),
            "long.jsonl:4: line longer than the 10-byte maximum"
        );
        // The last line of a file needs no terminator, and is held to the same limit.
        let mut r = LineReader::from_reader("x", io::Cursor::new(b"01234567890".to_vec()))
            .with_max_line(10);
        assert!(r.read_line(&mut buf).is_err());
    }

    #[test]
    fn a_line_that_never_ends_is_refused_at_256_mib() {
        // What /dev/zero gives: no newline, ever. Only the maximum (plus CRLF) is read.
        let mut r = LineReader::from_reader("/dev/zero", io::repeat(0));
        let mut buf = Vec::new();
        assert_eq!(
            r.read_line(&mut buf).unwrap_err().to_string(),
            "/dev/zero:1: line longer than the 256 MiB maximum"
        );
        assert_eq!(MAX_LINE_BYTES, 1 << 28);
        // A line of exactly the maximum is read whole.
        let data = io::repeat(b'x')
            .take(MAX_LINE_BYTES as u64)
            .chain(&b"\r\n"[..]);
        let mut r = LineReader::from_reader("max", data);
        assert_eq!(r.read_line(&mut buf).unwrap(), Some(1));
        assert_eq!(buf.len(), MAX_LINE_BYTES);
        assert_eq!(r.read_line(&mut buf).unwrap(), None);
    }

    #[test]
    fn unknown_fields_keep_their_order() {
        let m = parse_object("f", 1, br#"{"z":1,"text":"t","a":[1]}"#).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["z", "text", "a"]);
    }
}
