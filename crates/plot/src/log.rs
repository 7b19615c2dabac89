//! Reading metrics logs: one JSON object per line, every numeric field a series over the x
//! field (`step` unless told otherwise).
//!
//! A log that is still being written may end in a torn line (no final newline, not yet valid
//! JSON): it is skipped and counted. A bad line anywhere else is an error naming file and line,
//! or, with `--skip-invalid`, skipped and counted.
//! Values that are not finite numbers (null, strings, booleans, and Python's `NaN` /
//! `Infinity`, which `json.dumps` writes) are skipped.

use std::io::Read;

use serde_json::{Map, Value};
use wick_io::{Error, Result};

/// One field of a log: (x, y) points sorted by x, one per x (a later line wins).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub field: String,
    pub points: Vec<(f64, f64)>,
}

/// Everything plotted from one log file.
#[derive(Debug, Clone)]
pub struct Log {
    /// The path as given (`<stdin>` for `-`).
    pub path: String,
    /// Series in the order their fields first appear in the file.
    pub series: Vec<Series>,
    /// The largest x of any line.
    pub last_x: f64,
    /// A torn last line (a run still writing) that was skipped.
    pub torn_tail: bool,
    /// Bad lines skipped (only with `skip_invalid`), and the first of them.
    pub skipped: u64,
    pub first_skipped: Option<String>,
}

impl Log {
    pub fn get(&self, field: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.field == field)
    }
}

/// Reads and parses a log file (`-` is stdin); with `skip_invalid`, bad lines are skipped and
/// counted instead of failing.
pub fn read_log(path: &str, x_field: &str, skip_invalid: bool) -> Result<Log> {
    let (name, bytes) = if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("<stdin>", e))?;
        ("<stdin>".to_string(), buf)
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        (path.to_string(), bytes)
    };
    parse_log_with(&name, &bytes, x_field, skip_invalid)
}

/// Parses a log's bytes; `name` is used in error messages. A bad line is an error.
pub fn parse_log(name: &str, bytes: &[u8], x_field: &str) -> Result<Log> {
    parse_log_with(name, bytes, x_field, false)
}

/// Parses a log's bytes; with `skip_invalid`, a bad line is skipped and counted.
pub fn parse_log_with(name: &str, bytes: &[u8], x_field: &str, skip_invalid: bool) -> Result<Log> {
    let mut skipped = 0u64;
    let mut first_skipped = None;
    let mut series: Vec<Series> = Vec::new();
    let mut records = 0u64;
    let mut with_x = 0u64;
    let mut torn_tail = false;
    let mut last_x = f64::NEG_INFINITY;

    // A byte-order mark at the start (an editor's) is skipped, as every JSONL reader does.
    let mut rest = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut number = 0u64;
    while !rest.is_empty() {
        number += 1;
        let (line, terminated) = match memchr_newline(rest) {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                (line, true)
            }
            None => {
                let line = rest;
                rest = &[];
                (line, false)
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let rec = match parse_line(name, number, line) {
            Ok(rec) => rec,
            // The writer is mid-line: what is there so far is not a record yet.
            Err(_) if !terminated => {
                torn_tail = true;
                break;
            }
            Err(e) if skip_invalid => {
                skipped += 1;
                first_skipped.get_or_insert_with(|| e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        records += 1;
        let Some(x) = rec.get(x_field).and_then(finite) else {
            continue;
        };
        with_x += 1;
        last_x = last_x.max(x);
        for (key, value) in &rec {
            if key == x_field {
                continue;
            }
            let Some(y) = finite(value) else {
                continue;
            };
            match series.iter_mut().find(|s| &s.field == key) {
                Some(s) => s.points.push((x, y)),
                None => series.push(Series {
                    field: key.clone(),
                    points: vec![(x, y)],
                }),
            }
        }
    }

    if records == 0 {
        return Err(Error::msg(format!(
            "{name}: empty log (no metrics lines{})",
            if torn_tail {
                ", only a partly written one"
            } else {
                ""
            }
        )));
    }
    if with_x == 0 {
        return Err(Error::msg(format!(
            "{name}: no line has a numeric {x_field:?} for the x axis (--x picks another field)"
        )));
    }
    if series.is_empty() {
        return Err(Error::msg(format!(
            "{name}: no numeric fields to plot besides {x_field:?}"
        )));
    }
    for s in &mut series {
        sort_dedup(&mut s.points);
    }
    Ok(Log {
        path: name.to_string(),
        series,
        last_x,
        torn_tail,
        skipped,
        first_skipped,
    })
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn finite(v: &Value) -> Option<f64> {
    v.as_f64().filter(|y| y.is_finite())
}

/// A line as a JSON object; Python's non-standard `NaN`, `Infinity` and `-Infinity` literals
/// are read as null.
fn parse_line(name: &str, number: u64, line: &[u8]) -> Result<Map<String, Value>> {
    match wick_io::parse_object(name, number, line) {
        Ok(rec) => Ok(rec),
        Err(e) => match nan_to_null(line) {
            Some(fixed) => wick_io::parse_object(name, number, &fixed).map_err(|_| e),
            None => Err(e),
        },
    }
}

/// Replaces bare `NaN`, `Infinity` and `-Infinity` outside strings with `null`; `None` when
/// there are none.
fn nan_to_null(line: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(line.len());
    let mut changed = false;
    let mut in_string = false;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if in_string {
            out.push(c);
            if c == b'\\' && i + 1 < line.len() {
                out.push(line[i + 1]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        let word = [&b"-Infinity"[..], b"Infinity", b"NaN"]
            .into_iter()
            .find(|w| line[i..].starts_with(w));
        if let Some(w) = word {
            out.extend_from_slice(b"null");
            changed = true;
            i += w.len();
            continue;
        }
        if c == b'"' {
            in_string = true;
        }
        out.push(c);
        i += 1;
    }
    changed.then_some(out)
}

/// Sorts by x (stable) and keeps the last point of each x: a log that repeats steps (a run
/// resumed by hand and appended to) reads as its latest values.
fn sort_dedup(points: &mut Vec<(f64, f64)>) {
    if points.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for &p in points.iter() {
        match out.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => out.push(p),
        }
    }
    *points = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(text: &str) -> Result<Log> {
        parse_log("m.jsonl", text.as_bytes(), "step")
    }

    #[test]
    fn fields_become_series_in_order_of_appearance() {
        let l = log(concat!(
            "{\"step\":0,\"val_loss\":6.2,\"elapsed_s\":0.0}\n",
            "{\"step\":1,\"loss\":6.1,\"lr\":1e-4,\"note\":\"warm\",\"ok\":true}\n",
            "{\"step\":2,\"loss\":5.9,\"lr\":2e-4,\"val_loss\":5.95}\n",
        ))
        .unwrap();
        let names: Vec<&str> = l.series.iter().map(|s| s.field.as_str()).collect();
        assert_eq!(names, ["val_loss", "elapsed_s", "loss", "lr"]);
        assert_eq!(l.get("val_loss").unwrap().points, [(0.0, 6.2), (2.0, 5.95)]);
        assert_eq!(l.get("loss").unwrap().points, [(1.0, 6.1), (2.0, 5.9)]);
        assert_eq!(l.last_x, 2.0);
        assert!(!l.torn_tail);
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped() {
        let l = log("\u{feff}{\"step\":1,\"loss\":6.1}\n{\"step\":2,\"loss\":5.9}\n").unwrap();
        assert_eq!(l.get("loss").unwrap().points, [(1.0, 6.1), (2.0, 5.9)]);
    }

    #[test]
    fn bad_lines_are_skipped_and_counted_when_asked() {
        let text = "{\"step\": 1, \"loss\": 2}\nnot json\n{\"step\": 2, \"loss\": 1}\n";
        assert!(parse_log("m.jsonl", text.as_bytes(), "step").is_err());
        let l = parse_log_with("m.jsonl", text.as_bytes(), "step", true).unwrap();
        assert_eq!(l.skipped, 1);
        assert!(l.first_skipped.as_ref().unwrap().contains("m.jsonl:2"));
        assert_eq!(l.get("loss").unwrap().points, [(1.0, 2.0), (2.0, 1.0)]);
    }

    #[test]
    fn torn_last_line_is_skipped() {
        let l =
            log("{\"step\":1,\"loss\":6.1}\n{\"step\":2,\"loss\":5.9}\n{\"step\":3,\"lo").unwrap();
        assert!(l.torn_tail);
        assert_eq!(l.get("loss").unwrap().points.len(), 2);
        // A complete last line without a newline is a record.
        let l = log("{\"step\":1,\"loss\":6.1}\n{\"step\":2,\"loss\":5.9}").unwrap();
        assert!(!l.torn_tail);
        assert_eq!(l.get("loss").unwrap().points.len(), 2);
    }

    #[test]
    fn bad_line_in_the_middle_names_file_and_line() {
        let e = log("{\"step\":1,\"loss\":6.1}\n\n{\"step\":2,\"lo\n{\"step\":3,\"loss\":5.9}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.jsonl:3: malformed JSON"), "{e}");
        // A terminated bad last line is not torn: the writer finished it.
        let e = log("{\"step\":1,\"loss\":6.1}\n[1]\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "m.jsonl:2: expected a JSON object, found an array");
    }

    #[test]
    fn empty_logs_and_logs_without_x_are_errors() {
        assert_eq!(
            log("").unwrap_err().to_string(),
            "m.jsonl: empty log (no metrics lines)"
        );
        assert_eq!(
            log("\n  \n").unwrap_err().to_string(),
            "m.jsonl: empty log (no metrics lines)"
        );
        assert_eq!(
            log("{\"step\":1,\"lo").unwrap_err().to_string(),
            "m.jsonl: empty log (no metrics lines, only a partly written one)"
        );
        let e = log("{\"iter\":1,\"loss\":2}\n").unwrap_err().to_string();
        assert!(e.contains("no line has a numeric \"step\""), "{e}");
        let e = log("{\"step\":1,\"name\":\"x\"}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no numeric fields"), "{e}");
    }

    #[test]
    fn non_finite_and_non_numeric_values_are_skipped() {
        let l = log(concat!(
            "{\"step\":1,\"loss\":NaN,\"kl\":-Infinity,\"s\":\"NaN \\\" Infinity\"}\n",
            "{\"step\":2,\"loss\":null,\"kl\":0.5}\n",
            "{\"step\":3,\"loss\":2.5,\"kl\":Infinity}\n",
        ))
        .unwrap();
        assert_eq!(l.get("loss").unwrap().points, [(3.0, 2.5)]);
        assert_eq!(l.get("kl").unwrap().points, [(2.0, 0.5)]);
        assert!(l.get("s").is_none());
    }

    #[test]
    fn other_x_fields_and_repeated_steps() {
        let text =
            "{\"step\":1,\"tokens\":100,\"loss\":3}\n{\"step\":2,\"tokens\":200,\"loss\":2}\n";
        let l = parse_log("m", text.as_bytes(), "tokens").unwrap();
        assert_eq!(l.get("loss").unwrap().points, [(100.0, 3.0), (200.0, 2.0)]);
        assert_eq!(l.get("step").unwrap().points, [(100.0, 1.0), (200.0, 2.0)]);
        let l = log("{\"step\":1,\"loss\":3}\n{\"step\":2,\"loss\":2}\n{\"step\":1,\"loss\":4}\n")
            .unwrap();
        assert_eq!(l.get("loss").unwrap().points, [(1.0, 4.0), (2.0, 2.0)]);
    }

    #[test]
    fn crlf_line_ends() {
        let l = log("{\"step\":1,\"loss\":3}\r\n{\"step\":2,\"loss\":2}\r\n").unwrap();
        assert_eq!(l.get("loss").unwrap().points.len(), 2);
    }
}
