//! Packing documents into a shard directory.
//!
//! Documents stream into one spill file per split (tokens and masks, in arrival order) with a
//! small index; `finish` then writes them out, shuffled if asked, as shards of whole documents.
//! Memory holds only the index (16 bytes a document), whatever the corpus size. Everything is
//! built in a hidden sibling directory ([`wick_io::OutDir`]) that replaces the destination only
//! when complete, and only when the destination is an earlier shard folder of wick's, so a
//! killed run never leaves a directory `pack verify` accepts, nor damages a previous one.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use wick_io::{Error, Result};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::format::{header, shard_header, MAGIC_DOCS, MAGIC_MASK, SIDECAR_VERSION};
use crate::manifest::{Manifest, ShardEntry, SplitTotals, TokenizerInfo, MANIFEST};
use crate::{Dtype, Rng, Split};

pub struct PackOptions {
    /// Target tokens per shard; shards hold whole documents, so a shard closes before the
    /// document that would overflow it (a single longer document gets a shard of its own).
    pub shard_tokens: usize,
    pub dtype: Dtype,
    pub val_fraction: f64,
    pub split_key: String,
    /// Shuffle documents within each split with this seed; `None` keeps input order.
    pub shuffle_seed: Option<u64>,
    pub vocab_size: usize,
    pub eos_id: u32,
}

/// A document's split depends only on its key (its id, or its content): adding documents to a
/// corpus never moves the old ones between train and val.
pub fn split_of(key: &[u8], val_fraction: f64) -> Split {
    let h = xxh3_64(key);
    if (h as f64) < val_fraction * 18_446_744_073_709_551_616.0 {
        Split::Val
    } else {
        Split::Train
    }
}

struct Spill {
    tokens: BufWriter<File>,
    masks: BufWriter<File>,
    /// (first token, length) of each document in the spill.
    docs: Vec<(u64, u32)>,
    len: u64,
}

pub struct Packer {
    staging: wick_io::OutDir,
    opts: PackOptions,
    manifest: Manifest,
    spills: Vec<Spill>,
}

const SPLITS: [Split; 2] = [Split::Train, Split::Val];

impl Packer {
    /// Starts a pack into `out`, copying `tokenizer_json` (and its tokenizer_config.json) in.
    pub fn create(
        out: &Path,
        opts: PackOptions,
        tokenizer_json: &Path,
        tokenizer_hash: &str,
    ) -> Result<Packer> {
        if opts.dtype == Dtype::Uint16 && opts.vocab_size > 1 << 16 {
            return Err(Error::msg(format!(
                "a vocabulary of {} does not fit uint16 shards; use uint32",
                opts.vocab_size
            )));
        }
        if !(0.0..=1.0).contains(&opts.val_fraction) {
            return Err(Error::msg(format!(
                "--val-fraction {} is not between 0 and 1",
                opts.val_fraction
            )));
        }
        if opts.shard_tokens == 0 || opts.shard_tokens > i32::MAX as usize {
            return Err(Error::msg(format!(
                "--shard-tokens must be between 1 and {} (llm.c's int32 count)",
                i32::MAX
            )));
        }
        let staging = wick_io::OutDir::create(out, wick_io::Kind::Shards, "pack", "-o")?;
        copy(tokenizer_json, &staging.path().join("tokenizer.json"))?;
        let config = tokenizer_json.with_file_name("tokenizer_config.json");
        if config.exists() {
            copy(&config, &staging.path().join("tokenizer_config.json"))?;
        }
        let mut spills = Vec::new();
        for split in SPLITS {
            let open = |suffix: &str| -> Result<BufWriter<File>> {
                let p = staging
                    .path()
                    .join(format!("{}.{suffix}.spill", split.name()));
                Ok(BufWriter::with_capacity(
                    1 << 20,
                    File::create(&p).map_err(|e| Error::io(p.display(), e))?,
                ))
            };
            spills.push(Spill {
                tokens: open("tokens")?,
                masks: open("mask")?,
                docs: Vec::new(),
                len: 0,
            });
        }
        let tokenizer = TokenizerInfo {
            file: "tokenizer.json".into(),
            xxh3_128: tokenizer_hash.to_string(),
        };
        let manifest = Manifest::new(
            tokenizer,
            opts.vocab_size,
            opts.eos_id,
            opts.dtype,
            opts.val_fraction,
            opts.split_key.clone(),
            opts.shuffle_seed,
            opts.shard_tokens,
        );
        Ok(Packer {
            staging,
            opts,
            manifest,
            spills,
        })
    }

    /// Adds one document. An EOS is appended unless the ids already end with one (with mask 1:
    /// learning to stop counts). Errors say what was wrong with the document, for the caller to
    /// prefix with file and line.
    pub fn add(
        &mut self,
        key: &[u8],
        ids: &[u32],
        mask: Option<&[u8]>,
    ) -> std::result::Result<Split, String> {
        if let Some((i, id)) = ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= self.opts.vocab_size)
        {
            return Err(format!(
                "ids[{i}]: id {id} is not below the vocabulary size {}",
                self.opts.vocab_size
            ));
        }
        if let Some(m) = mask {
            if m.len() != ids.len() {
                return Err(format!(
                    "\"mask\" has {} entries but \"ids\" has {}",
                    m.len(),
                    ids.len()
                ));
            }
            if m.iter().any(|&b| b > 1) {
                return Err("\"mask\" entries must be 0 or 1".into());
            }
            if !self.manifest.has_mask {
                // Masks are spilled only once a record has one; documents before it count whole.
                for spill in &mut self.spills {
                    spill
                        .masks
                        .write_all(&vec![1u8; spill.len as usize])
                        .map_err(|e| format!("writing the spill file: {e}"))?;
                }
                self.manifest.has_mask = true;
            }
        }
        let eos = self.opts.eos_id;
        let add_eos = ids.last() != Some(&eos);
        let split = split_of(key, self.opts.val_fraction);
        let spill = &mut self.spills[split as usize];
        let len = ids.len() + add_eos as usize;
        let io = |e: std::io::Error| format!("writing the spill file: {e}");
        // The spill already holds tokens in the shard's width, so shards are plain copies of it.
        let mut buf = Vec::with_capacity(self.opts.dtype.width() * len);
        for &id in ids.iter().chain(add_eos.then_some(&eos)) {
            match self.opts.dtype {
                Dtype::Uint16 => buf.extend_from_slice(&(id as u16).to_le_bytes()),
                Dtype::Uint32 => buf.extend_from_slice(&id.to_le_bytes()),
            }
        }
        spill.tokens.write_all(&buf).map_err(io)?;
        if self.manifest.has_mask {
            match mask {
                Some(m) => spill.masks.write_all(m).map_err(io)?,
                None => spill.masks.write_all(&vec![1u8; ids.len()]).map_err(io)?,
            }
            if add_eos {
                spill.masks.write_all(&[1]).map_err(io)?;
            }
        }
        spill.docs.push((spill.len, len as u32));
        spill.len += len as u64;
        Ok(split)
    }

    /// Writes the shards and the manifest, then moves the directory into place.
    pub fn finish(mut self) -> Result<Manifest> {
        let dir = self.staging.path().to_path_buf();
        let spills = std::mem::take(&mut self.spills);
        for (split, spill) in SPLITS.into_iter().zip(spills) {
            let Spill {
                tokens,
                masks,
                mut docs,
                len,
            } = spill;
            let tokens_path = dir.join(format!("{}.tokens.spill", split.name()));
            let mask_path = dir.join(format!("{}.mask.spill", split.name()));
            finish_writer(tokens, &tokens_path)?;
            finish_writer(masks, &mask_path)?;
            if let Some(seed) = self.opts.shuffle_seed {
                // Each split has its own stream, so train order does not depend on val's size.
                Rng::new(seed ^ (split as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    .shuffle(&mut docs);
            }
            let mut totals = SplitTotals::default();
            if len > 0 {
                let toks = map(&tokens_path)?;
                let masks = if self.manifest.has_mask {
                    Some(map(&mask_path)?)
                } else {
                    None
                };
                let mut start = 0;
                while start < docs.len() {
                    let mut end = start;
                    let mut n = 0usize;
                    while end < docs.len()
                        && (end == start || n + docs[end].1 as usize <= self.opts.shard_tokens)
                    {
                        n += docs[end].1 as usize;
                        end += 1;
                    }
                    let name = format!("{}_{:06}", split.name(), totals.shards);
                    let mask = masks.as_deref();
                    let entry = write_shard(
                        &dir,
                        &name,
                        split,
                        self.opts.dtype,
                        &docs[start..end],
                        &toks,
                        mask,
                    )?;
                    totals.tokens += entry.tokens;
                    totals.documents += entry.documents;
                    totals.shards += 1;
                    self.manifest.shards.push(entry);
                    start = end;
                }
            }
            remove(&tokens_path)?;
            remove(&mask_path)?;
            self.manifest
                .splits
                .insert(split.name().to_string(), totals);
        }
        let mpath = dir.join(MANIFEST);
        fs::write(&mpath, self.manifest.to_json()).map_err(|e| Error::io(mpath.display(), e))?;
        self.staging.commit()?;
        Ok(self.manifest)
    }
}

fn finish_writer(w: BufWriter<File>, path: &Path) -> Result<()> {
    w.into_inner()
        .map_err(|e| Error::io(path.display(), e.into_error()))?;
    Ok(())
}

fn map(path: &Path) -> Result<memmap2::Mmap> {
    let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    // SAFETY: the spill file is private to this process's staging directory and no longer written.
    unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path.display(), e))
}

fn remove(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(|e| Error::io(path.display(), e))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| Error::io(from.display(), e))
}

/// Writes a file while hashing its bytes.
struct Hashed {
    w: BufWriter<File>,
    h: Xxh3,
    path: PathBuf,
}

impl Hashed {
    fn create(path: PathBuf) -> Result<Hashed> {
        let f = File::create(&path).map_err(|e| Error::io(path.display(), e))?;
        Ok(Hashed {
            w: BufWriter::with_capacity(1 << 20, f),
            h: Xxh3::new(),
            path,
        })
    }
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.h.update(b);
        self.w
            .write_all(b)
            .map_err(|e| Error::io(self.path.display(), e))
    }
    fn finish(self) -> Result<String> {
        let f = self
            .w
            .into_inner()
            .map_err(|e| Error::io(self.path.display(), e.into_error()))?;
        f.sync_all()
            .map_err(|e| Error::io(self.path.display(), e))?;
        Ok(format!("{:016x}", self.h.digest()))
    }
}

fn write_shard(
    dir: &Path,
    name: &str,
    split: Split,
    dtype: Dtype,
    docs: &[(u64, u32)],
    spill: &[u8],
    masks: Option<&[u8]>,
) -> Result<ShardEntry> {
    let ntok: usize = docs.iter().map(|d| d.1 as usize).sum();
    let mut bin = Hashed::create(dir.join(format!("{name}.bin")))?;
    let mut idx = Hashed::create(dir.join(format!("{name}.docs")))?;
    bin.put(&shard_header(dtype, ntok))?;
    idx.put(&header(MAGIC_DOCS, SIDECAR_VERSION, docs.len()))?;
    let mut mask = match masks {
        Some(_) => {
            let mut m = Hashed::create(dir.join(format!("{name}.mask")))?;
            m.put(&header(MAGIC_MASK, SIDECAR_VERSION, ntok))?;
            Some(m)
        }
        None => None,
    };
    let mut offset = 0u64;
    for &(start, len) in docs {
        idx.put(&offset.to_le_bytes())?;
        offset += len as u64;
        let (a, b) = (start as usize, start as usize + len as usize);
        let w = dtype.width();
        bin.put(&spill[w * a..w * b])?;
        if let (Some(m), Some(all)) = (mask.as_mut(), masks) {
            m.put(&all[a..b])?;
        }
    }
    let (mask_file, mask_xxh3) = match mask {
        Some(m) => (Some(format!("{name}.mask")), Some(m.finish()?)),
        None => (None, None),
    };
    Ok(ShardEntry {
        file: format!("{name}.bin"),
        split,
        tokens: ntok as u64,
        documents: docs.len() as u64,
        xxh3: bin.finish()?,
        docs_file: format!("{name}.docs"),
        docs_xxh3: idx.finish()?,
        mask_file,
        mask_xxh3,
    })
}
