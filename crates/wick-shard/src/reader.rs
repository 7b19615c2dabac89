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
        match self {
            Tokens::U16(t) => t.iter().max().map(|&x| x as u32),
            Tokens::U32(t) => t.iter().max().copied(),
        }
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
            parse_sidecar(
                &path.with_extension("docs").display().to_string(),
                d,
                MAGIC_DOCS,
                8,
            )?;
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
