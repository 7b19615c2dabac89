//! Single-pass dedup in three phases over the input:
//! 1. every document's exact hash, length and LSH band hashes (kept in memory: 8 bytes a band
//!    plus 24 a document) and its MinHash signature (spilled to a temporary file);
//! 2. clusters: documents with equal exact hashes, or equal hashes in any band, are joined by
//!    union-find; each cluster keeps its first (or longest) document;
//! 3. the input is read again and each line goes to the kept or the removed output, in order.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use serde_json::Value;
use wick_io::{
    for_each_batch, human_bytes, parse_object, Error, LineReader, Output, Progress, Result,
};
use xxhash_rust::xxh3::xxh3_128;

use crate::minhash::{estimate, MinHasher};
use crate::normalize::Normalization;
use crate::shingle::{shingles, Shingling};

const BATCH_LINES: usize = 1024;
const BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Keep {
    /// The first document of a cluster, in input order.
    First,
    /// The longest (by normalised text), the first among equals.
    Longest,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub field: String,
    pub norm: Normalization,
    pub shingling: Shingling,
    pub bands: usize,
    pub rows: usize,
    pub seed: u64,
    pub exact: bool,
    pub near: bool,
    pub keep: Keep,
    pub skip_invalid: bool,
    pub quiet: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub docs: u64,
    pub kept: u64,
    pub exact_removed: u64,
    pub near_removed: u64,
    pub skipped: u64,
}

/// What phase 1 computes for one document.
struct Computed {
    exact: u128,
    len: u32,
    /// Empty when the text has no shingles: such documents are never near duplicates.
    bands: Vec<u64>,
    sig: Vec<u64>,
}

/// Union-find whose root is always the document a cluster keeps.
struct Clusters {
    parent: Vec<u32>,
    len: Vec<u32>,
    keep: Keep,
}

impl Clusters {
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    fn better(&self, a: u32, b: u32) -> bool {
        match self.keep {
            Keep::First => a < b,
            Keep::Longest => {
                (self.len[a as usize], std::cmp::Reverse(a))
                    > (self.len[b as usize], std::cmp::Reverse(b))
            }
        }
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            if self.better(ra, rb) {
                self.parent[rb as usize] = ra;
            } else {
                self.parent[ra as usize] = rb;
            }
        }
    }
}

pub struct Dedup {
    opts: Options,
    hasher: MinHasher,
}

/// An input as read twice: a file by its path, stdin through a temporary copy.
struct Input {
    name: String,
    path: std::path::PathBuf,
    _tmp: Option<tempfile::NamedTempFile>,
}

fn materialise(path: &str) -> Result<Input> {
    if path != "-" {
        return Ok(Input {
            name: path.to_string(),
            path: path.into(),
            _tmp: None,
        });
    }
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| Error::io("temporary file", e))?;
    std::io::copy(&mut std::io::stdin().lock(), tmp.as_file_mut())
        .map_err(|e| Error::io("<stdin>", e))?;
    Ok(Input {
        name: "<stdin>".into(),
        path: tmp.path().to_path_buf(),
        _tmp: Some(tmp),
    })
}

fn open(input: &Input) -> Result<LineReader> {
    let f = File::open(&input.path).map_err(|e| Error::io(&input.name, e))?;
    Ok(LineReader::from_reader(input.name.clone(), f))
}

impl Dedup {
    pub fn new(opts: Options) -> Dedup {
        let hasher = MinHasher::new(opts.bands, opts.rows, opts.seed);
        Dedup { opts, hasher }
    }

    fn compute(&self, file: &str, line: &wick_io::Line) -> Result<Computed> {
        let rec = parse_object(file, line.number, &line.bytes)?;
        let text = match rec.get(&self.opts.field) {
            Some(Value::String(s)) => s,
            Some(v) => {
                return Err(Error::record(
                    file,
                    line.number,
                    format!(
                        "field \"{}\" must be a string, found {}",
                        self.opts.field,
                        wick_io::kind_of(v)
                    ),
                ))
            }
            None => {
                return Err(Error::record(
                    file,
                    line.number,
                    format!("missing field \"{}\"", self.opts.field),
                ))
            }
        };
        let norm = self.opts.norm.apply(text);
        let set = if self.opts.near {
            shingles(&norm, self.opts.shingling, self.opts.seed)
        } else {
            Vec::new()
        };
        let sig = self.hasher.signature(&set);
        let bands = if set.is_empty() {
            Vec::new()
        } else {
            self.hasher.band_hashes(&sig)
        };
        Ok(Computed {
            exact: xxh3_128(norm.as_bytes()),
            len: norm.chars().count() as u32,
            bands,
            sig,
        })
    }

    /// Runs all three phases: kept documents to `kept`, removed ones (with "dup_of",
    /// "similarity" and "dup_kind") to `removed`.
    pub fn run(
        &self,
        paths: &[String],
        kept: &mut Output,
        mut removed: Option<&mut Output>,
    ) -> Result<Summary> {
        let mut progress = Progress::new("dedup", self.opts.quiet);
        let inputs: Vec<Input> = paths
            .iter()
            .map(|p| materialise(p))
            .collect::<Result<_>>()?;
        let nb = if self.opts.near { self.opts.bands } else { 0 };
        let perms = self.hasher.bands * self.hasher.rows;
        let mut exact: Vec<u128> = Vec::new();
        let mut lens: Vec<u32> = Vec::new();
        let mut bands: Vec<u64> = Vec::new();
        let mut invalid: HashSet<(usize, u64)> = HashSet::new();
        let mut unbanded: HashSet<u32> = HashSet::new();
        let mut sum = Summary::default();
        let mut bytes = 0u64;
        let sig_file = tempfile::tempfile().map_err(|e| Error::io("temporary file", e))?;
        let mut sigs = BufWriter::with_capacity(1 << 20, &sig_file);

        // Phase 1.
        for (fi, input) in inputs.iter().enumerate() {
            for_each_batch(open(input)?, BATCH_LINES, BATCH_BYTES, |batch| {
                let computed: Vec<Result<Computed>> = batch
                    .par_iter()
                    .map(|l| self.compute(&input.name, l))
                    .collect();
                for (line, c) in batch.iter().zip(computed) {
                    bytes += line.bytes.len() as u64 + 1;
                    match c {
                        Ok(c) => {
                            exact.push(c.exact);
                            lens.push(c.len);
                            if c.bands.is_empty() {
                                unbanded.insert(exact.len() as u32 - 1);
                                bands.extend(std::iter::repeat_n(0, nb));
                            } else {
                                bands.extend_from_slice(&c.bands);
                            }
                            for v in &c.sig {
                                sigs.write_all(&v.to_le_bytes())
                                    .map_err(|e| Error::io("temporary file", e))?;
                            }
                            sum.docs += 1;
                        }
                        Err(e) if self.opts.skip_invalid => {
                            if sum.skipped < 5 && !self.opts.quiet {
                                eprintln!("dedup: skipped {e}");
                            }
                            sum.skipped += 1;
                            invalid.insert((fi, line.number));
                        }
                        Err(e) => return Err(e),
                    }
                }
                progress.tick(|secs| {
                    format!(
                        "hashing: {} documents, {} ({:.0} docs/s)",
                        sum.docs,
                        human_bytes(bytes),
                        sum.docs as f64 / secs
                    )
                });
                Ok(())
            })?;
        }
        sigs.flush().map_err(|e| Error::io("temporary file", e))?;
        drop(sigs);
        let n = exact.len();
        if n > u32::MAX as usize {
            return Err(Error::msg(
                "more than 4 billion documents: use the dedup signatures/clusters/apply stages",
            ));
        }

        // Phase 2.
        let mut clusters = Clusters {
            parent: (0..n as u32).collect(),
            len: lens,
            keep: self.opts.keep,
        };
        if self.opts.exact {
            let mut order: Vec<(u128, u32)> = exact
                .iter()
                .enumerate()
                .map(|(i, &h)| (h, i as u32))
                .collect();
            order.sort_unstable();
            for w in order.windows(2) {
                if w[0].0 == w[1].0 {
                    clusters.union(w[0].1, w[1].1);
                }
            }
        }
        for b in 0..nb {
            let mut order: Vec<(u64, u32)> = (0..n as u32)
                .filter(|i| !unbanded.contains(i))
                .map(|i| (bands[i as usize * nb + b], i))
                .collect();
            order.sort_unstable();
            for w in order.windows(2) {
                if w[0].0 == w[1].0 {
                    clusters.union(w[0].1, w[1].1);
                }
            }
        }
        drop(bands);
        let roots: Vec<u32> = (0..n as u32).map(|i| clusters.find(i)).collect();

        // Labels ("id" or file:line) of the documents others are duplicates of.
        let needed: HashSet<u32> = roots
            .iter()
            .enumerate()
            .filter(|(i, &r)| *i as u32 != r)
            .map(|(_, &r)| r)
            .collect();
        let mut labels: HashMap<u32, Value> = HashMap::new();
        if !needed.is_empty() {
            self.each_doc(&inputs, &invalid, |i, name, line| {
                if needed.contains(&i) {
                    labels.insert(i, label(name, line));
                }
                Ok(())
            })?;
        }

        // Phase 3.
        let read_sig = |i: u32| -> Result<Vec<u64>> {
            let mut buf = vec![0u8; perms * 8];
            sig_file
                .read_exact_at(&mut buf, i as u64 * perms as u64 * 8)
                .map_err(|e| Error::io("temporary file", e))?;
            Ok(buf
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect())
        };
        self.each_doc(&inputs, &invalid, |i, name, line| {
            let root = roots[i as usize];
            if root == i {
                sum.kept += 1;
                kept.put(&line.bytes)?;
                return kept.put(b"\n");
            }
            let is_exact = self.opts.exact && exact[i as usize] == exact[root as usize];
            let similarity = if is_exact || !self.opts.near {
                1.0
            } else {
                estimate(&read_sig(i)?, &read_sig(root)?)
            };
            if is_exact {
                sum.exact_removed += 1;
            } else {
                sum.near_removed += 1;
            }
            if let Some(out) = removed.as_deref_mut() {
                let mut rec = parse_object(name, line.number, &line.bytes)?;
                rec.insert("dup_of".into(), labels[&root].clone());
                rec.insert("similarity".into(), Value::from(similarity));
                rec.insert(
                    "dup_kind".into(),
                    Value::from(if is_exact { "exact" } else { "near" }),
                );
                let mut bytes = serde_json::to_vec(&rec).expect("JSON value");
                bytes.push(b'\n');
                out.put(&bytes)?;
            }
            Ok(())
        })?;
        progress.finish(|secs| {
            let skipped = if sum.skipped > 0 { format!(", {} invalid skipped", sum.skipped) } else { String::new() };
            format!(
                "{} documents in, {} kept, {} exact and {} near duplicates removed in {secs:.2} s ({:.0} docs/s, {}){skipped}",
                sum.docs, sum.kept, sum.exact_removed, sum.near_removed, sum.docs as f64 / secs.max(1e-9), human_bytes(bytes)
            )
        });
        Ok(sum)
    }

    /// Calls `f(doc index, file name, line)` for every valid document, in order.
    fn each_doc(
        &self,
        inputs: &[Input],
        invalid: &HashSet<(usize, u64)>,
        mut f: impl FnMut(u32, &str, &wick_io::Line) -> Result<()>,
    ) -> Result<()> {
        let mut i = 0u32;
        for (fi, input) in inputs.iter().enumerate() {
            for_each_batch(open(input)?, BATCH_LINES, BATCH_BYTES, |batch| {
                for line in &batch {
                    if invalid.contains(&(fi, line.number)) {
                        continue;
                    }
                    f(i, &input.name, line)?;
                    i += 1;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// How a kept document is named in "dup_of": its "id" field, else file:line.
fn label(file: &str, line: &wick_io::Line) -> Value {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<Value>,
    }
    match serde_json::from_slice::<Id>(&line.bytes) {
        Ok(Id { id: Some(v) }) => v,
        _ => Value::from(format!("{file}:{}", line.number)),
    }
}
