//! One comparison to label: a prompt and two responses, read from a JSONL record in any of the
//! accepted shapes, with the rest of the record kept for the preference written from it.

use serde_json::{Map, Value};
use wick_io::{kind_of, parse_object, Error, Result};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64_with_seed};

/// What identifies a comparison across sessions: xxh3-128 of the prompt and the two responses.
pub type Key = u128;

/// The key of a prompt and two responses, the same whichever response comes first, so a
/// preference written as chosen/rejected identifies the pair it came from, and an input whose
/// responses were listed the other way round is still recognised.
pub fn key(prompt: &str, x: &str, y: &str) -> Key {
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    let mut buf = Vec::with_capacity(24 + prompt.len() + lo.len() + hi.len());
    for s in [prompt, lo, hi] {
        buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
        buf.extend_from_slice(s.as_bytes());
    }
    xxh3_128(&buf)
}

/// The response fields a record may use, in the order they are looked for.
pub const SHAPES: &str =
    r#""response_a" and "response_b", "a" and "b", or "responses": [first, second]"#;

#[derive(Debug, Clone)]
pub struct Pair {
    /// The record's 1-based line in its file.
    pub line: u64,
    pub prompt: String,
    pub a: String,
    pub b: String,
    /// The record's other fields (an id, metadata), kept in the preference written for it.
    pub extra: Map<String, Value>,
}

fn take_string(rec: &mut Map<String, Value>, field: &str) -> std::result::Result<String, String> {
    match rec.remove(field) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(_)) if field == "prompt" => Err(
            "\"prompt\" is an array (a chat message list?): label shows plain text, give the prompt as a string"
                .to_string(),
        ),
        Some(other) => Err(format!("{field:?} must be a string, found {}", kind_of(&other))),
        None => Err(format!("missing {field:?}")),
    }
}

impl Pair {
    /// Reads one JSONL line; a bad record is an error naming the file, line and field.
    pub fn parse(file: &str, line: u64, bytes: &[u8]) -> Result<Pair> {
        let rec = parse_object(file, line, bytes)?;
        Pair::from_record(rec, line).map_err(|m| Error::record(file, line, m))
    }

    pub fn from_record(
        mut rec: Map<String, Value>,
        line: u64,
    ) -> std::result::Result<Pair, String> {
        let prompt = take_string(&mut rec, "prompt")?;
        let (a, b) = if rec.contains_key("response_a") || rec.contains_key("response_b") {
            (
                take_string(&mut rec, "response_a")?,
                take_string(&mut rec, "response_b")?,
            )
        } else if rec.contains_key("a") || rec.contains_key("b") {
            (take_string(&mut rec, "a")?, take_string(&mut rec, "b")?)
        } else if let Some(v) = rec.remove("responses") {
            match v {
                Value::Array(items) if items.len() == 2 => {
                    let mut it = items.into_iter();
                    let mut next = |i: usize| match it.next() {
                        Some(Value::String(s)) => Ok(s),
                        Some(other) => Err(format!(
                            "\"responses\"[{i}] must be a string, found {}",
                            kind_of(&other)
                        )),
                        None => unreachable!("two items"),
                    };
                    (next(0)?, next(1)?)
                }
                Value::Array(items) => {
                    return Err(format!(
                        "\"responses\" has {} items; label compares exactly two",
                        items.len()
                    ))
                }
                other => {
                    return Err(format!(
                        "\"responses\" must be an array of two strings, found {}",
                        kind_of(&other)
                    ))
                }
            }
        } else {
            return Err(format!("no responses to compare: expected {SHAPES}"));
        };
        Ok(Pair {
            line,
            prompt,
            a,
            b,
            extra: rec,
        })
    }

    pub fn key(&self) -> Key {
        key(&self.prompt, &self.a, &self.b)
    }

    /// Whether the pair is shown with its second response on the left. `None` (`--no-swap`):
    /// never. Otherwise a hash of the pair and the seed decides, so about half the pairs are
    /// swapped, the same ones in every session, and a labeller's leaning towards one side
    /// does not favour the first response of the input.
    pub fn swapped(&self, seed: Option<u64>) -> bool {
        match seed {
            None => false,
            Some(seed) => xxh3_64_with_seed(&self.key().to_le_bytes(), seed) & 1 == 1,
        }
    }

    /// The preference record for a verdict: `first_better` is about the input's first
    /// response (`response_a`, `a`, `responses[0]`), whatever side it was shown on. The
    /// record's other fields follow prompt, chosen and rejected.
    pub fn preference(&self, first_better: bool) -> Map<String, Value> {
        let (chosen, rejected) = if first_better {
            (&self.a, &self.b)
        } else {
            (&self.b, &self.a)
        };
        let mut out = Map::new();
        out.insert("prompt".into(), Value::String(self.prompt.clone()));
        out.insert("chosen".into(), Value::String(chosen.clone()));
        out.insert("rejected".into(), Value::String(rejected.clone()));
        for (k, v) in &self.extra {
            if !out.contains_key(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Pair> {
        Pair::parse("in.jsonl", 4, s.as_bytes())
    }

    #[test]
    fn accepts_every_shape() {
        for s in [
            r#"{"prompt":"p","response_a":"x","response_b":"y"}"#,
            r#"{"prompt":"p","a":"x","b":"y"}"#,
            r#"{"prompt":"p","responses":["x","y"]}"#,
        ] {
            let p = parse(s).unwrap();
            assert_eq!(
                (p.prompt.as_str(), p.a.as_str(), p.b.as_str()),
                ("p", "x", "y")
            );
            assert!(p.extra.is_empty());
        }
    }

    #[test]
    fn bad_records_name_file_line_and_field() {
        let cases = [
            (
                r#"{"response_a":"x","response_b":"y"}"#,
                r#"in.jsonl:4: missing "prompt""#,
            ),
            (
                r#"{"prompt":"p","response_a":"x"}"#,
                r#"in.jsonl:4: missing "response_b""#,
            ),
            (
                r#"{"prompt":"p","a":"x","b":3}"#,
                r#"in.jsonl:4: "b" must be a string, found a number"#,
            ),
            (
                r#"{"prompt":"p","responses":["x"]}"#,
                "in.jsonl:4: \"responses\" has 1 items; label compares exactly two",
            ),
            (
                r#"{"prompt":"p","responses":["x",null]}"#,
                "in.jsonl:4: \"responses\"[1] must be a string, found null",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap_err().to_string(), want);
        }
        let e = parse(r#"{"prompt":"p"}"#).unwrap_err().to_string();
        assert!(e.starts_with("in.jsonl:4: no responses to compare"), "{e}");
        let e = parse(r#"{"prompt":[{"role":"user","content":"hi"}],"a":"x","b":"y"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("give the prompt as a string"), "{e}");
    }

    #[test]
    fn key_ignores_response_order_but_not_content() {
        assert_eq!(key("p", "x", "y"), key("p", "y", "x"));
        assert_ne!(key("p", "x", "y"), key("p", "x", "z"));
        assert_ne!(key("px", "", "y"), key("p", "x", "y"));
    }

    #[test]
    fn preference_keeps_extra_fields_after_the_triple() {
        let p = parse(r#"{"id":7,"prompt":"p","a":"x","b":"y","chosen":"stale"}"#).unwrap();
        let pref = p.preference(false);
        assert_eq!(
            serde_json::to_string(&pref).unwrap(),
            r#"{"prompt":"p","chosen":"y","rejected":"x","id":7}"#
        );
    }

    #[test]
    fn about_half_the_pairs_are_swapped_and_no_swap_means_none() {
        let pairs: Vec<Pair> = (0..200)
            .map(|i| parse(&format!(r#"{{"prompt":"p{i}","a":"x","b":"y"}}"#)).unwrap())
            .collect();
        let swapped = pairs.iter().filter(|p| p.swapped(Some(0))).count();
        assert!((70..130).contains(&swapped), "{swapped}");
        assert!(pairs.iter().all(|p| !p.swapped(None)));
        let other = pairs
            .iter()
            .filter(|p| p.swapped(Some(1)) != p.swapped(Some(0)))
            .count();
        assert!(other > 50, "another seed swaps other pairs");
    }
}
