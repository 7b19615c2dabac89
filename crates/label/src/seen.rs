//! What earlier sessions decided, read back from the preferences file and its `.seen` sidecar,
//! and the appending of new decisions to them, one whole line per decision.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use wick_io::{parse_object, Error, Result};

use crate::pair::{key, Key};

/// How a comparison was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// One response was better: a record in the preferences file.
    Labelled,
    Tie,
    Skip,
}

impl Seen {
    pub fn name(self) -> &'static str {
        match self {
            Seen::Labelled => "labelled",
            Seen::Tie => "tie",
            Seen::Skip => "skip",
        }
    }
}

/// The sidecar of a preferences file: `prefs.jsonl` → `prefs.jsonl.seen`.
pub fn sidecar_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".seen");
    PathBuf::from(s)
}

/// The non-blank lines of a file that may not exist yet (then none), with their 1-based
/// numbers. A file whose last line has no line feed was cut short by an interrupted session:
/// that is an error naming the line, since guessing would either lose a decision or keep half
/// a record.
fn complete_lines(path: &Path) -> Result<Vec<(u64, Vec<u8>)>> {
    let name = path.display();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(name, e)),
    };
    // A byte-order mark at the start (an editor's) is skipped, as every JSONL reader does.
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut lines: Vec<(u64, Vec<u8>)> = body
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix(b"\r").unwrap_or(l).to_vec()))
        .collect();
    // split leaves an empty piece after the last line feed.
    let last = lines.pop().expect("split yields at least one piece");
    if !last.1.is_empty() {
        return Err(Error::record(
            name,
            last.0,
            "incomplete last line (a session was interrupted while writing it): \
             delete or complete that line, then run label again",
        ));
    }
    lines.retain(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
    Ok(lines)
}

fn string_field<'a>(
    rec: &'a serde_json::Map<String, Value>,
    field: &str,
) -> std::result::Result<&'a str, String> {
    match rec.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "{field:?} must be a string, found {}",
            wick_io::kind_of(other)
        )),
        None => Err(format!("missing {field:?}")),
    }
}

/// Every decision recorded so far: the pairs of the preferences file (labelled) and the
/// sidecar's ties and skips (a later sidecar line overrides an earlier one; a preference
/// overrides both). With `revisit_skipped`, earlier skips are forgotten so they are shown again.
pub fn load_decided(
    output: &Path,
    sidecar: &Path,
    revisit_skipped: bool,
) -> Result<HashMap<Key, Seen>> {
    let mut decided = HashMap::new();
    // Both files are checked for a cut-short last line before either is trusted.
    let prefs = complete_lines(output)?;
    let seen = complete_lines(sidecar)?;
    let sname = sidecar.display().to_string();
    for (line, bytes) in seen {
        let rec = parse_object(&sname, line, &bytes)?;
        let bad = |m: String| Error::record(&sname, line, m);
        let hex = string_field(&rec, "key").map_err(bad)?;
        let k = u128::from_str_radix(hex, 16)
            .map_err(|_| bad(format!("\"key\" {hex:?} is not a hexadecimal hash")))?;
        let d = match string_field(&rec, "decision").map_err(bad)? {
            "tie" => Seen::Tie,
            "skip" => Seen::Skip,
            other => {
                return Err(bad(format!(
                    "\"decision\" is {other:?}; expected \"tie\" or \"skip\""
                )))
            }
        };
        if revisit_skipped && d == Seen::Skip {
            decided.remove(&k);
        } else {
            decided.insert(k, d);
        }
    }
    let oname = output.display().to_string();
    for (line, bytes) in prefs {
        let rec = parse_object(&oname, line, &bytes)?;
        let get = |f: &str| string_field(&rec, f).map_err(|m| Error::record(&oname, line, m));
        let k = key(get("prompt")?, get("chosen")?, get("rejected")?);
        decided.insert(k, Seen::Labelled);
    }
    Ok(decided)
}

/// The sidecar line for a tie or a skip.
pub fn sidecar_line(k: Key, decision: Seen, input_line: u64) -> String {
    json!({"key": format!("{k:032x}"), "decision": decision.name(), "line": input_line}).to_string()
}

/// A file that decisions are appended to, a whole line per write and flushed at once, so a
/// session killed at any moment loses nothing it was told. Opened on the first line, so a
/// session that decides nothing creates nothing.
pub struct Appender {
    path: PathBuf,
    file: Option<File>,
}

impl Appender {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Appender {
            path: path.into(),
            file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `line` and a line feed in one write.
    pub fn append(&mut self, line: &str) -> Result<()> {
        let name = self.path.display();
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| Error::io(&name, e))?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        f.write_all(&buf).map_err(|e| Error::io(&name, e))?;
        f.flush().map_err(|e| Error::io(&name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_sits_beside_the_output() {
        assert_eq!(
            sidecar_path(Path::new("out/prefs.jsonl")),
            PathBuf::from("out/prefs.jsonl.seen")
        );
    }

    #[test]
    fn reads_back_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p.jsonl");
        let side = sidecar_path(&out);
        assert!(load_decided(&out, &side, false).unwrap().is_empty());
        let mut o = Appender::new(&out);
        let mut s = Appender::new(&side);
        o.append(r#"{"prompt":"p","chosen":"x","rejected":"y","id":1}"#)
            .unwrap();
        s.append(&sidecar_line(key("q", "x", "y"), Seen::Skip, 2))
            .unwrap();
        s.append(&sidecar_line(key("r", "x", "y"), Seen::Skip, 3))
            .unwrap();
        s.append(&sidecar_line(key("r", "x", "y"), Seen::Tie, 3))
            .unwrap();
        let d = load_decided(&out, &side, false).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[&key("p", "y", "x")], Seen::Labelled);
        assert_eq!(d[&key("q", "x", "y")], Seen::Skip);
        assert_eq!(d[&key("r", "x", "y")], Seen::Tie, "the later line wins");
        let d = load_decided(&out, &side, true).unwrap();
        assert_eq!(d.len(), 2, "skips forgotten");
    }

    #[test]
    fn a_cut_short_last_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p.jsonl");
        std::fs::write(
            &out,
            "{\"prompt\":\"p\",\"chosen\":\"x\",\"rejected\":\"y\"}\n\n{\"prompt\":\"q\",\"cho",
        )
        .unwrap();
        let e = load_decided(&out, &sidecar_path(&out), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{}:3: incomplete last line", out.display())),
            "{e}"
        );
    }

    #[test]
    fn a_byte_order_mark_at_the_start_of_the_output_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p.jsonl");
        std::fs::write(
            &out,
            "\u{feff}{\"prompt\":\"p\",\"chosen\":\"x\",\"rejected\":\"y\"}\n",
        )
        .unwrap();
        let d = load_decided(&out, &sidecar_path(&out), false).unwrap();
        assert_eq!(d[&key("p", "x", "y")], Seen::Labelled);
    }

    #[test]
    fn foreign_records_in_the_output_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p.jsonl");
        std::fs::write(&out, "{\"prompt\":\"p\",\"chosen\":\"x\"}\n").unwrap();
        let e = load_decided(&out, &sidecar_path(&out), false)
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("{}:1: missing \"rejected\"", out.display()));
    }
}
