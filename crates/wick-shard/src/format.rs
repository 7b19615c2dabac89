//! The byte layout of shard files and their sidecars (docs/FORMATS.md is the full description).
//!
//! Every file starts with llm.c's header: 256 little-endian int32, of which [0] is a magic
//! number, [1] a version and [2] the element count; the rest are zero.

use wick_io::{Error, Result};

pub const HEADER_BYTES: usize = 1024;

/// llm.c's GPT-2 shards: uint16 tokens.
const MAGIC_U16: i32 = 20240520;
const VERSION_U16: i32 = 1;
/// llm.c's LLaMA-3 shards: uint32 tokens.
const MAGIC_U32: i32 = 20240801;
const VERSION_U32: i32 = 7;
/// wick's sidecars: document start offsets (uint64) and per-token loss mask (uint8).
pub const MAGIC_DOCS: i32 = 20241129;
pub const MAGIC_MASK: i32 = 20241130;
pub const SIDECAR_VERSION: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Uint16,
    Uint32,
}

impl Dtype {
    /// uint16 when every id fits (vocabulary of at most 65,536), as llm.c does for GPT-2.
    pub fn for_vocab(vocab_size: usize) -> Dtype {
        if vocab_size <= 1 << 16 {
            Dtype::Uint16
        } else {
            Dtype::Uint32
        }
    }

    pub fn width(self) -> usize {
        match self {
            Dtype::Uint16 => 2,
            Dtype::Uint32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::Uint16 => "uint16",
            Dtype::Uint32 => "uint32",
        }
    }

    fn magic_version(self) -> (i32, i32) {
        match self {
            Dtype::Uint16 => (MAGIC_U16, VERSION_U16),
            Dtype::Uint32 => (MAGIC_U32, VERSION_U32),
        }
    }
}

/// A 1024-byte header: magic, version, count, zeros.
pub fn header(magic: i32, version: i32, count: usize) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[0..4].copy_from_slice(&magic.to_le_bytes());
    h[4..8].copy_from_slice(&version.to_le_bytes());
    h[8..12].copy_from_slice(&(count as i32).to_le_bytes());
    h
}

pub fn shard_header(dtype: Dtype, tokens: usize) -> [u8; HEADER_BYTES] {
    let (m, v) = dtype.magic_version();
    header(m, v, tokens)
}

fn int(bytes: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}

/// Checks a token shard's header and size; returns its dtype and token count.
pub fn parse_shard(name: &str, bytes: &[u8]) -> Result<(Dtype, usize)> {
    if bytes.len() < HEADER_BYTES {
        return Err(Error::msg(format!(
            "{name}: truncated: {} bytes, shorter than the {HEADER_BYTES}-byte header",
            bytes.len()
        )));
    }
    let dtype = match (int(bytes, 0), int(bytes, 1)) {
        (MAGIC_U16, VERSION_U16) => Dtype::Uint16,
        (MAGIC_U32, VERSION_U32) => Dtype::Uint32,
        (MAGIC_U16 | MAGIC_U32, v) => return Err(Error::msg(format!("{name}: unsupported version {v} for magic {}", int(bytes, 0)))),
        (m, _) => return Err(Error::msg(format!("{name}: wrong magic number {m}: not an llm.c/wick token shard (expected {MAGIC_U16} or {MAGIC_U32})"))),
    };
    let count = counted(name, bytes, dtype.width())?;
    Ok((dtype, count))
}

/// Checks a sidecar's header and size; returns its element count.
pub fn parse_sidecar(name: &str, bytes: &[u8], magic: i32, width: usize) -> Result<usize> {
    if bytes.len() < HEADER_BYTES {
        return Err(Error::msg(format!(
            "{name}: truncated: shorter than the {HEADER_BYTES}-byte header"
        )));
    }
    if int(bytes, 0) != magic || int(bytes, 1) != SIDECAR_VERSION {
        return Err(Error::msg(format!(
            "{name}: wrong magic/version {}/{} (expected {magic}/{SIDECAR_VERSION})",
            int(bytes, 0),
            int(bytes, 1)
        )));
    }
    counted(name, bytes, width)
}

fn counted(name: &str, bytes: &[u8], width: usize) -> Result<usize> {
    let count = int(bytes, 2);
    if count < 0 {
        return Err(Error::msg(format!(
            "{name}: negative count {count} in header"
        )));
    }
    let want = HEADER_BYTES + count as usize * width;
    if bytes.len() != want {
        let what = if bytes.len() < want {
            "truncated"
        } else {
            "has trailing bytes"
        };
        return Err(Error::msg(format!(
            "{name}: {what}: header says {count} elements ({want} bytes) but the file has {} bytes",
            bytes.len()
        )));
    }
    Ok(count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(dtype: Dtype, toks: &[u32]) -> Vec<u8> {
        let mut b = shard_header(dtype, toks.len()).to_vec();
        for &t in toks {
            match dtype {
                Dtype::Uint16 => b.extend((t as u16).to_le_bytes()),
                Dtype::Uint32 => b.extend(t.to_le_bytes()),
            }
        }
        b
    }

    #[test]
    fn headers_round_trip() {
        for d in [Dtype::Uint16, Dtype::Uint32] {
            assert_eq!(parse_shard("s", &shard(d, &[1, 2, 3])).unwrap(), (d, 3));
        }
        assert_eq!(Dtype::for_vocab(50257), Dtype::Uint16);
        assert_eq!(Dtype::for_vocab(65536), Dtype::Uint16);
        assert_eq!(Dtype::for_vocab(128256), Dtype::Uint32);
    }

    #[test]
    fn bad_shards_are_named_and_explained() {
        let good = shard(Dtype::Uint16, &[1, 2, 3]);
        let e = parse_shard("a.bin", &good[..good.len() - 1])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "a.bin: truncated: header says 3 elements (1030 bytes) but the file has 1029 bytes"
        );
        let mut bad = good.clone();
        bad[0] = 0;
        assert!(parse_shard("a.bin", &bad)
            .unwrap_err()
            .to_string()
            .starts_with("a.bin: wrong magic number"));
        let mut v7 = good.clone();
        v7[4] = 7;
        assert_eq!(
            parse_shard("a.bin", &v7).unwrap_err().to_string(),
            "a.bin: unsupported version 7 for magic 20240520"
        );
        assert!(parse_shard("a.bin", &good[..100])
            .unwrap_err()
            .to_string()
            .contains("shorter than the 1024-byte header"));
        let mut long = good.clone();
        long.push(0);
        assert!(parse_shard("a.bin", &long)
            .unwrap_err()
            .to_string()
            .contains("trailing bytes"));
    }
}
