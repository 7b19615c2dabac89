//! Input records: JSONL objects remembered with their file and line, and the ways a prediction
//! or reference may be written in them.

use serde_json::{Map, Value};
use wick_io::{kind_of, parse_object, Error, Line, LineReader, Result, Skipped};

pub struct Record {
    pub file: String,
    pub line: u64,
    pub fields: Map<String, Value>,
}

impl Record {
    pub fn error(&self, msg: impl std::fmt::Display) -> Error {
        Error::record(&self.file, self.line, msg)
    }

    fn get(&self, field: &str, flag: &str) -> Result<&Value> {
        self.fields.get(field).ok_or_else(|| {
            let have: Vec<&str> = self.fields.keys().map(String::as_str).collect();
            self.error(format!(
                "no field {field:?} (the record has: {}); name another with {flag}",
                have.join(", ")
            ))
        })
    }

    /// A text field (a string).
    pub fn text(&self, field: &str, flag: &str) -> Result<&str> {
        match self.get(field, flag)? {
            Value::String(s) => Ok(s),
            v => Err(self.error(format!(
                "field {field:?} should be a string, found {}",
                kind_of(v)
            ))),
        }
    }

    /// One or more texts: a string, an array of strings, or SQuAD's `{"text": [...]}`.
    pub fn texts(&self, field: &str, flag: &str) -> Result<Vec<String>> {
        let v = self.get(field, flag)?;
        let v = match v {
            Value::Object(o) if o.contains_key("text") => &o["text"],
            v => v,
        };
        let texts = match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.clone()),
                    x => Err(self.error(format!(
                        "field {field:?} should hold strings, found {} in its array",
                        kind_of(x)
                    ))),
                })
                .collect::<Result<Vec<_>>>()?,
            v => {
                return Err(self.error(format!(
                    "field {field:?} should be a string or an array of strings, found {}",
                    kind_of(v)
                )))
            }
        };
        if texts.is_empty() {
            return Err(self.error(format!("field {field:?} is an empty array")));
        }
        Ok(texts)
    }

    /// A class label: a string, or a number or boolean written as JSON writes it.
    pub fn label(&self, field: &str, flag: &str) -> Result<String> {
        match self.get(field, flag)? {
            Value::String(s) => Ok(s.clone()),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
            v => Err(self.error(format!(
                "field {field:?} should be a label (string, number or boolean), found {}",
                kind_of(v)
            ))),
        }
    }
}

/// Parses one line as a record.
pub fn parse_record(file: &str, l: &Line) -> Result<Record> {
    Ok(Record {
        file: file.to_string(),
        line: l.number,
        fields: parse_object(file, l.number, &l.bytes)?,
    })
}

/// Every record of the inputs ("-" is stdin), blank lines skipped. With `skips`, a line that
/// is not a JSON object is noted there and left out; without, it is an error.
pub fn read_all(paths: &[String], mut skips: Option<&mut Skipped>) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for path in paths {
        let mut reader = LineReader::open(path)?;
        while let Some(line) = reader.read_line(&mut buf)? {
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let fields = match (
                parse_object(reader.name(), line, &buf),
                skips.as_deref_mut(),
            ) {
                (Ok(f), _) => f,
                (Err(e), Some(skips)) => {
                    skips.note(&e);
                    continue;
                }
                (Err(e), None) => return Err(e),
            };
            out.push(Record {
                file: reader.name().to_string(),
                line,
                fields,
            });
        }
    }
    Ok(out)
}
