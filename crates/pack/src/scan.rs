//! A narrow, fast reader for the one shape of record `pack` sees most: a JSON object whose
//! `ids` array is all it needs, beside a long text it skips. It validates what it skips (string
//! escapes and control characters; nested values and scalars through serde_json) and gives up —
//! returning `None` for serde_json to take over with its precise errors — on anything unusual:
//! escaped or repeated keys, non-integer ids, ids over u32.
//!
//! serde_json's derive alone was several times slower, which made `pack` the bottleneck of
//! `tokenize | pack` (docs/speed.md, "Measured history: data tools").

use serde::de::IgnoredAny;

pub struct Fields<'a> {
    pub ids: Option<Vec<u32>>,
    pub mask: Option<Vec<u8>>,
    /// The raw JSON text of the split key's value.
    pub key: Option<&'a [u8]>,
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string starting at the opening quote; returns its raw contents. Escapes and control
    /// characters are checked, not decoded.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.i += 1;
        let start = self.i;
        loop {
            let rest = &self.b[self.i..];
            let k = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[..k].iter().any(|&c| c < 0x20) {
                return None;
            }
            self.i += k;
            if rest[k] == b'"' {
                self.i += 1;
                return Some(&self.b[start..self.i - 1]);
            }
            match *self.b.get(self.i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                b'u' => {
                    let hex = self.b.get(self.i + 2..self.i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.i += 6;
                }
                _ => return None,
            }
        }
    }

    /// Skips any value, checking it is valid JSON.
    fn skip_value(&mut self) -> Option<&'a [u8]> {
        self.ws();
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                    self.i += 1;
                    if depth == 0 {
                        break;
                    }
                }
                serde_json::from_slice::<IgnoredAny>(&self.b[start..self.i]).ok()?;
            }
            _ => {
                while self.i < self.b.len()
                    && !matches!(
                        self.b[self.i],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'
                    )
                {
                    self.i += 1;
                }
                serde_json::from_slice::<IgnoredAny>(&self.b[start..self.i]).ok()?;
            }
        }
        Some(&self.b[start..self.i])
    }

    /// `[1,2,3]` of integers that fit `T`: the hot loop of `pack`, so it works on the bytes
    /// directly.
    fn uints<T: TryFrom<u64>>(&mut self) -> Option<Vec<T>> {
        self.eat(b'[')?;
        let b = self.b;
        let mut i = self.i;
        let mut out = Vec::with_capacity(b.len().saturating_sub(i) / 6);
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
                *i += 1;
            }
        };
        skip_ws(&mut i);
        if b.get(i) == Some(&b']') {
            self.i = i + 1;
            return Some(out);
        }
        loop {
            skip_ws(&mut i);
            let start = i;
            let mut v: u64 = 0;
            while let Some(&c) = b.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                v = v * 10 + d as u64;
                i += 1;
                if i - start > 10 {
                    return None;
                }
            }
            let digits = i - start;
            if digits == 0 || (digits > 1 && b[start] == b'0') {
                return None;
            }
            out.push(T::try_from(v).ok()?);
            skip_ws(&mut i);
            match *b.get(i)? {
                b',' => i += 1,
                b']' => {
                    self.i = i + 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }
}

/// The ids, mask and split key of one record, or `None` when serde_json should decide.
pub fn scan<'a>(line: &'a [u8], ids_field: &str, split_key: &str) -> Option<Fields<'a>> {
    let mut c = Cursor { b: line, i: 0 };
    let mut f = Fields {
        ids: None,
        mask: None,
        key: None,
    };
    c.eat(b'{')?;
    c.ws();
    if c.peek()? == b'}' {
        c.i += 1;
    } else {
        loop {
            c.ws();
            if c.peek()? != b'"' {
                return None;
            }
            let key = c.string()?;
            if key.contains(&b'\\') {
                return None;
            }
            c.eat(b':')?;
            if key == ids_field.as_bytes() {
                if f.ids.is_some() {
                    return None;
                }
                f.ids = Some(c.uints::<u32>()?);
            } else if key == b"mask" {
                if f.mask.is_some() {
                    return None;
                }
                f.mask = Some(c.uints::<u8>()?);
            } else {
                let v = c.skip_value()?;
                if key == split_key.as_bytes() {
                    if f.key.is_some() {
                        return None;
                    }
                    f.key = Some(v);
                }
            }
            c.ws();
            match c.peek()? {
                b',' => c.i += 1,
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    c.ws();
    (c.i == line.len()).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> (Option<Vec<u32>>, Option<Vec<u8>>, Option<String>) {
        let f = scan(line.as_bytes(), "ids", "id").expect("scanned");
        (
            f.ids,
            f.mask,
            f.key.map(|k| String::from_utf8(k.to_vec()).unwrap()),
        )
    }

    #[test]
    fn reads_ids_mask_and_key_and_skips_the_rest() {
        let line = r#" {"id": "a/1", "text": "say \"hi\"\n\u00e9", "meta": {"x": [1, {"y": null}]}, "ids": [ 0, 17 ,50256], "mask": [0,1,1], "n": -1.5e3, "ok": true} "#;
        assert_eq!(
            ok(line),
            (
                Some(vec![0, 17, 50256]),
                Some(vec![0, 1, 1]),
                Some("\"a/1\"".into())
            )
        );
        assert_eq!(
            ok(r#"{"ids":[],"id":7}"#),
            (Some(vec![]), None, Some("7".into()))
        );
        assert_eq!(ok("{}"), (None, None, None));
    }

    #[test]
    fn leaves_anything_doubtful_to_serde() {
        for bad in [
            r#"{"ids": [1, 2]"#,           // truncated
            r#"{"ids": [1, 2],}"#,         // trailing comma
            r#"{"ids": [1, -2]}"#,         // negative
            r#"{"ids": [1, 2.0]}"#,        // not an integer
            r#"{"ids": [01]}"#,            // leading zero
            r#"{"ids": [4294967296]}"#,    // over u32
            r#"{"ids": [1], "ids": [2]}"#, // repeated
            r#"{"i\u0064s": [1]}"#,        // escaped key
            r#"{"text": "bad \q escape", "ids": [1]}"#,
            "{\"text\": \"raw\ttab\", \"ids\": [1]}",
            r#"{"meta": [1,}, "ids": [1]}"#,
            r#"{"n": 1x, "ids": [1]}"#,
            r#"{"ids": [1]} x"#,
            r#"[1, 2]"#,
            r#"{"mask": [256], "ids": [1]}"#,
        ] {
            assert!(scan(bad.as_bytes(), "ids", "id").is_none(), "{bad}");
        }
    }

    #[test]
    fn agrees_with_serde_on_real_records() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/fixtures/gpt2_ids.jsonl"
        ))
        .unwrap();
        for line in text.lines() {
            let f = scan(line.as_bytes(), "ids", "name").expect(line);
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let want: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
            assert_eq!(f.ids.unwrap(), want);
            assert_eq!(f.key.unwrap(), v["name"].to_string().as_bytes());
        }
    }
}
