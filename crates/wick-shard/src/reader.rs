//! Memory-mapped shard reading: wick shard directories, directories of llm.c shards, or a
//! single llm.c .bin file. Tokens are read in place, never copied wholesale.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use wick_io::{Error, Result};

use crate::format::{parse_shard, parse_sidecar, HEADER_BYTES, MAGIC_DOCS, MAGIC_MASK};
use crate::manifest::{Manifest, ShardEntry, MANIFEST};
use crate::{Dtype, Split};

#[cfg(target_endian = "big")]
compile_error!(
    "wick-shard reads little-endian shard files in place and needs a little-endian machine"
);

/// A shard's tokens, borrowed from the mapping.
#[derive(Clone, Copy)]
pub enum Tokens<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

impl Tokens<'_> {
    pub fn len(&self) -> usize {
        match self {
            Tokens::U16(t) => t.len(),
            Tokens::U32(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> u32 {
        match self {
            Tokens::U16(t) => t[i] as u32,
            Tokens::U32(t) => t[i],
        }
    }

    /// Appends tokens `start..start+len` to `out` as u32.
    pub fn extend_into(&self, start: usize, len: usize, out: &mut Vec<u32>) {
        match self {
            Tokens::U16(t) => out.extend(t[start..start + len].iter().map(|&x| x as u32)),
            Tokens::U32(t) => out.extend_from_slice(&t[start..start + len]),
        }
    }

    /// The largest id, or None when empty.
    pub fn max(&self) -> Option<u32> {
        // A fold without early exit vectorises: one pass at memory speed.
        match self {
            Tokens::U16(t) => (!t.is_empty()).then(|| t.iter().fold(0, |m, &x| m.max(x)) as u32),
            Tokens::U32(t) => (!t.is_empty()).then(|| t.iter().fold(0, |m, &x| m.max(x))),
        }
    }

    /// The first token whose id is not below `vocab`, as (position, id).
    pub fn first_outside(&self, vocab: usize) -> Option<(usize, u32)> {
        if self.max().is_none_or(|m| (m as usize) < vocab) {
            return None;
        }
        (0..self.len())
            .map(|i| (i, self.get(i)))
            .find(|&(_, id)| id as usize >= vocab)
    }
}

pub struct Shard {
    pub path: PathBuf,
    pub split: Split,
    pub dtype: Dtype,
    /// The manifest's entry, for shards of a wick directory.
    pub entry: Option<ShardEntry>,
    map: Mmap,
    docs: Option<Mmap>,
    mask: Option<Mmap>,
}

fn map(path: &Path) -> Result<Mmap> {
    let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    // SAFETY: shards are written once (under a temporary name) and never modified in place;
    // a reader mapping them is the design this format shares with llm.c.
    unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path.display(), e))
}

/// Reinterprets mapped bytes after the header; the mapping is page-aligned and the header is
/// 1024 bytes, so the cast is always aligned.
fn body<T>(bytes: &[u8]) -> &[T] {
    // SAFETY: u16/u32/u64 have no invalid bit patterns; alignment is checked.
    let (pre, mid, _) = unsafe { bytes[HEADER_BYTES..].align_to::<T>() };
    assert!(pre.is_empty(), "mapping is page-aligned");
    mid
}

impl Shard {
    /// Opens a token file and, when they exist beside it, its `.docs` and `.mask` sidecars.
    pub fn open(path: &Path, split: Split) -> Result<Shard> {
        let tokens = map(path)?;
        let (dtype, _) = parse_shard(&path.display().to_string(), &tokens)?;
        let sidecar = |ext: &str| -> Result<Option<Mmap>> {
            let p = path.with_extension(ext);
            if p.exists() {
                map(&p).map(Some)
            } else {
                Ok(None)
            }
        };
        let shard = Shard {
            path: path.to_path_buf(),
            split,
            dtype,
            entry: None,
            docs: sidecar("docs")?,
            mask: sidecar("mask")?,
            map: tokens,
        };
        if let Some(d) = &shard.docs {
            let name = path.with_extension("docs").display().to_string();
            parse_sidecar(&name, d, MAGIC_DOCS, 8)?;
            check_starts(&name, body(d), shard.len())?;
        }
        if let Some(m) = &shard.mask {
            let name = path.with_extension("mask").display().to_string();
            let n = parse_sidecar(&name, m, MAGIC_MASK, 1)?;
            if n != shard.len() {
                return Err(Error::msg(format!(
                    "{name}: has {n} mask entries for {} tokens",
                    shard.len()
                )));
            }
        }
        Ok(shard)
    }

    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    pub fn tokens(&self) -> Tokens<'_> {
        match self.dtype {
            Dtype::Uint16 => Tokens::U16(body(&self.map)),
            Dtype::Uint32 => Tokens::U32(body(&self.map)),
        }
    }

    pub fn len(&self) -> usize {
        (self.map.len() - HEADER_BYTES) / self.dtype.width()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole file, header included (for checksums).
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Where each document starts, when the `.docs` sidecar exists.
    pub fn doc_starts(&self) -> Option<&[u64]> {
        self.docs.as_deref().map(body)
    }

    pub(crate) fn docs_bytes(&self) -> Option<&[u8]> {
        self.docs.as_deref()
    }

    /// Per-token loss mask (1 = counts as a target), when the `.mask` sidecar exists.
    pub fn mask(&self) -> Option<&[u8]> {
        self.mask.as_deref().map(|m| &m[HEADER_BYTES..])
    }

    pub(crate) fn mask_bytes(&self) -> Option<&[u8]> {
        self.mask.as_deref()
    }

    /// Checks that every id is below `vocab` (one pass over the tokens); the error names the
    /// shard, the token's position in it, its id and the vocabulary size.
    pub fn check_ids(&self, vocab: usize) -> Result<()> {
        match self.tokens().first_outside(vocab) {
            None => Ok(()),
            Some((pos, id)) => Err(Error::msg(format!(
                "{}: token {pos} is id {id}, not below the vocabulary size {vocab}",
                self.name()
            ))),
        }
    }
}

/// Document starts must begin at 0, increase, and lie inside the shard: anything else would
/// make documents of tokens that are not there.
fn check_starts(name: &str, starts: &[u64], tokens: usize) -> Result<()> {
    let mut prev = None;
    for (i, &s) in starts.iter().enumerate() {
        let problem = if s >= tokens as u64 {
            format!("starts at token {s}, past the end of the shard's {tokens} tokens")
        } else if let Some(p) = prev.filter(|&p| s <= p) {
            format!(
                "starts at token {s}, not after document {}'s start {p}",
                i - 1
            )
        } else if i == 0 && s != 0 {
            format!("starts at token {s}: the first document starts at 0")
        } else {
            prev = Some(s);
            continue;
        };
        return Err(Error::msg(format!("{name}: document {i} {problem}")));
    }
    Ok(())
}

pub struct ShardSet {
    pub dir: PathBuf,
    /// Present for wick directories; llm.c data has none.
    pub manifest: Option<Manifest>,
    pub shards: Vec<Shard>,
}

impl ShardSet {
    /// Opens a wick shard directory (by its manifest), a directory of llm.c `.bin` shards
    /// (split by name: "val" in the file name means validation), or one `.bin` file.
    pub fn open(path: impl AsRef<Path>) -> Result<ShardSet> {
        let path = path.as_ref();
        if path.is_file() {
            let shard = Shard::open(path, split_by_name(path))?;
            return Ok(ShardSet {
                dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                manifest: None,
                shards: vec![shard],
            });
        }
        if !path.is_dir() {
            return Err(Error::msg(format!(
                "{}: no such shard directory or file",
                path.display()
            )));
        }
        if path.join(MANIFEST).exists() {
            return Self::open_manifest(path);
        }
        let mut bins: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path.display(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "bin") && !is_hidden(p))
            .collect();
        if bins.is_empty() {
            return Err(Error::msg(format!(
                "{}: has neither {MANIFEST} nor .bin shards",
                path.display()
            )));
        }
        bins.sort();
        let shards = bins
            .iter()
            .map(|p| Shard::open(p, split_by_name(p)))
            .collect::<Result<_>>()?;
        Ok(ShardSet {
            dir: path.to_path_buf(),
            manifest: None,
            shards,
        })
    }

    fn open_manifest(dir: &Path) -> Result<ShardSet> {
        let manifest = Manifest::load(dir)?;
        if let Some(p) = manifest.names_outside().into_iter().next() {
            return Err(Error::msg(format!("{}: {p}", dir.join(MANIFEST).display())));
        }
        let mut shards = Vec::new();
        for e in &manifest.shards {
            let mut s = Shard::open(&dir.join(&e.file), e.split)?;
            if s.dtype != manifest.dtype || s.len() as u64 != e.tokens {
                return Err(Error::msg(format!(
                    "{}: holds {} {} tokens but the manifest says {} {}",
                    s.name(),
                    s.len(),
                    s.dtype.name(),
                    e.tokens,
                    manifest.dtype.name()
                )));
            }
            s.entry = Some(e.clone());
            shards.push(s);
        }
        Ok(ShardSet {
            dir: dir.to_path_buf(),
            manifest: Some(manifest),
            shards,
        })
    }

    pub fn split(&self, split: Split) -> Vec<&Shard> {
        self.shards.iter().filter(|s| s.split == split).collect()
    }

    pub fn tokens(&self, split: Split) -> u64 {
        self.split(split).iter().map(|s| s.len() as u64).sum()
    }

    /// Checks that every id of every shard is below `vocab` (a model's vocabulary: an id past
    /// it indexes no embedding). One pass over the tokens, at memory speed.
    pub fn check_ids(&self, vocab: usize) -> Result<()> {
        self.shards.iter().try_for_each(|s| s.check_ids(vocab))
    }
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn split_by_name(p: &Path) -> Split {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.contains("val") {
        Split::Val
    } else {
        Split::Train
    }
}
