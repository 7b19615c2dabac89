//! Turning `"ids"` fields back into text, for inspection.

use serde_json::Value;
use wick_io::{parse_object, read_ids, Error, Line, Result};
use wick_text::Tok;

/// Replaces every `"ids"` field with `"text"` and every `"X_ids"` field with `"X"` (decoded),
/// keeping the other fields; with `raw`, writes the decoded `"ids"` alone as plain text.
pub fn decode_line(
    tok: &Tok,
    file: &str,
    line: &Line,
    skip_special: bool,
    raw: bool,
) -> Result<Vec<u8>> {
    let mut rec = parse_object(file, line.number, &line.bytes)?;
    let err = |msg: String| Error::record(file, line.number, msg);
    let keys: Vec<String> = rec
        .keys()
        .filter(|k| *k == "ids" || k.ends_with("_ids"))
        .cloned()
        .collect();
    if keys.is_empty() {
        return Err(err("no \"ids\" field to decode".into()));
    }
    let mut out = Vec::new();
    for k in keys {
        let ids = read_ids(&rec[&k], &k, tok.vocab_size()).map_err(err)?;
        let text = tok.decode(&ids, skip_special).map_err(err)?;
        if raw {
            if k == "ids" {
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
                return Ok(out);
            }
            continue;
        }
        rec.remove(&k);
        let name = if k == "ids" {
            "text".to_string()
        } else {
            k.trim_end_matches("_ids").to_string()
        };
        rec.insert(name, Value::String(text));
    }
    if raw {
        return Err(err("--raw needs an \"ids\" field".into()));
    }
    serde_json::to_writer(&mut out, &rec).expect("JSON value");
    out.push(b'\n');
    Ok(out)
}
