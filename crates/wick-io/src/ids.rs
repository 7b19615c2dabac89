//! Writing and reading the `"ids"` arrays of JSONL records.

use serde_json::Value;

/// Appends `[1,2,3]` to `out`.
pub fn write_ids<T: itoa::Integer + Copy>(out: &mut Vec<u8>, ids: &[T]) {
    let mut buf = itoa::Buffer::new();
    out.push(b'[');
    for (i, &id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(buf.format(id).as_bytes());
    }
    out.push(b']');
}

/// An `"ids"`-style field as token ids, each checked against the vocabulary size.
pub fn read_ids(v: &Value, field: &str, vocab: usize) -> Result<Vec<u32>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("field \"{field}\" must be a list of token ids"))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| match x.as_u64() {
            Some(id) if (id as usize) < vocab => Ok(id as u32),
            Some(id) => Err(format!(
                "field \"{field}\"[{i}]: id {id} is not below the vocabulary size {vocab}"
            )),
            None => Err(format!("field \"{field}\"[{i}]: {x} is not a token id")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_checked() {
        let mut out = Vec::new();
        write_ids(&mut out, &[0u32, 7, 50256]);
        assert_eq!(out, b"[0,7,50256]");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(read_ids(&v, "ids", 50257).unwrap(), vec![0, 7, 50256]);
        assert_eq!(
            read_ids(&v, "ids", 50256).unwrap_err(),
            "field \"ids\"[2]: id 50256 is not below the vocabulary size 50256"
        );
        let v: Value = serde_json::json!([1, -2]);
        assert_eq!(
            read_ids(&v, "ids", 10).unwrap_err(),
            "field \"ids\"[1]: -2 is not a token id"
        );
        assert!(read_ids(&serde_json::json!("x"), "ids", 10).is_err());
    }
}
