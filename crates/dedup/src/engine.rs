//! Dedup as three stages whose intermediates are plain files, datatrove-style:
//!
//! 1. **signatures** (per input file, anywhere): each document's exact hash, length, LSH band
//!    hashes, MinHash signature and label go to a `.sig` file;
//! 2. **clusters** (over all `.sig` files): documents with equal exact hashes, or equal hashes
//!    in any band, are joined by union-find; each cluster keeps its first (or longest)
//!    document; every other document becomes a line of `dups.tsv`;
//! 3. **apply** (per input file): lines listed in `dups.tsv` go to the removed output, the rest
//!    to the kept output, in order.
//!
//! A single-pass run is exactly these stages over temporary files, so both give the same bytes.
//! The clusters stage holds per document its band hashes (8 bytes a band) and 40 bytes more.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value;
use wick_io::{
    for_each_batch, human_bytes, parse_object, AtomicFile, Error, LineReader, Output, Progress,
    Result,
};
use xxhash_rust::xxh3::xxh3_128;

use crate::minhash::{estimate, MinHasher};
use crate::normalize::Normalization;
use crate::shingle::{jaccard, shingles, Shingling};

const BATCH_LINES: usize = 1024;
const BATCH_BYTES: usize = 4 << 20;
const SIG_MAGIC: &[u8; 8] = b"WICKSIG\0";
const SIG_VERSION: u32 = 1;

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
    /// Store each document's shingle set, so that `clusters` can verify candidate pairs.
    pub with_shingles: bool,
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

/// Settings that must agree between the signature files clustered together.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    bands: u32,
    rows: u32,
    seed: u64,
    norm: u32,
    shingle: (u32, u32),
    exact: bool,
    near: bool,
    with_shingles: bool,
}

impl Settings {
    fn of(o: &Options) -> Settings {
        Settings {
            bands: o.bands as u32,
            rows: o.rows as u32,
            seed: o.seed,
            norm: o.norm.code(),
            shingle: o.shingling.code(),
            exact: o.exact,
            near: o.near,
            with_shingles: o.with_shingles && o.near,
        }
    }

    fn write(&self, w: &mut impl Write, source: &str) -> std::io::Result<()> {
        w.write_all(SIG_MAGIC)?;
        for v in [
            SIG_VERSION,
            self.bands,
            self.rows,
            self.norm,
            self.shingle.0,
            self.shingle.1,
            self.exact as u32,
            self.near as u32,
            self.with_shingles as u32,
        ] {
            w.write_all(&v.to_le_bytes())?;
        }
        w.write_all(&self.seed.to_le_bytes())?;
        w.write_all(&(source.len() as u32).to_le_bytes())?;
        w.write_all(source.as_bytes())
    }

    /// Reads a header; returns the settings, the source name and the header length.
    fn read(r: &mut impl Read, path: &Path) -> Result<(Settings, String, u64)> {
        let bad = |what: &str| {
            Error::msg(format!(
                "{}: not a dedup signature file ({what})",
                path.display()
            ))
        };
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|_| bad("too short"))?;
        if &magic != SIG_MAGIC {
            return Err(bad("wrong magic"));
        }
        let mut u = [0u32; 9];
        for v in &mut u {
            *v = read_u32(r).map_err(|_| bad("truncated header"))?;
        }
        if u[0] != SIG_VERSION {
            return Err(bad(&format!("version {}", u[0])));
        }
        let seed = read_u64(r).map_err(|_| bad("truncated header"))?;
        let n = read_u32(r).map_err(|_| bad("truncated header"))? as usize;
        let mut name = vec![0u8; n];
        r.read_exact(&mut name)
            .map_err(|_| bad("truncated header"))?;
        let s = Settings {
            bands: u[1],
            rows: u[2],
            norm: u[3],
            shingle: (u[4], u[5]),
            exact: u[6] != 0,
            near: u[7] != 0,
            with_shingles: u[8] != 0,
            seed,
        };
        Ok((
            s,
            String::from_utf8_lossy(&name).into_owned(),
            (8 + 36 + 8 + 4 + n) as u64,
        ))
    }
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// What stage 1 computes for one document.
struct Computed {
    exact: u128,
    len: u32,
    /// Empty when the text has no shingles: such documents are never near duplicates.
    bands: Vec<u64>,
    sig: Vec<u32>,
    /// The raw JSON of the record's "id", if any.
    label: Vec<u8>,
    /// The shingle set, when it is to be stored.
    set: Vec<u64>,
}

pub struct Signer {
    opts: Options,
    hasher: MinHasher,
}

impl Signer {
    pub fn new(opts: Options) -> Signer {
        let hasher = MinHasher::new(opts.bands, opts.rows, opts.seed);
        Signer { opts, hasher }
    }

    fn compute(&self, file: &str, line: &wick_io::Line) -> Result<Computed> {
        // Only the text and "id" are needed: the other fields stay raw, unparsed. Anything odd
        // goes through parse_object, which words the error.
        let field = &self.opts.field;
        let rec: std::collections::HashMap<std::borrow::Cow<str>, &serde_json::value::RawValue> =
            match std::str::from_utf8(&line.bytes)
                .ok()
                .and_then(|t| serde_json::from_str(t).ok())
            {
                Some(r) => r,
                None => {
                    parse_object(file, line.number, &line.bytes)?;
                    return Err(Error::record(file, line.number, "malformed JSON"));
                }
            };
        let text: std::borrow::Cow<str> = match rec
            .get(field.as_str())
            .map(|v| serde_json::from_str(v.get()))
        {
            Some(Ok(t)) => t,
            Some(Err(_)) => {
                let v: Value = serde_json::from_str(rec[field.as_str()].get()).expect("valid JSON");
                let msg = format!(
                    "field \"{field}\" must be a string, found {}",
                    wick_io::kind_of(&v)
                );
                return Err(Error::record(file, line.number, msg));
            }
            None => {
                return Err(Error::record(
                    file,
                    line.number,
                    format!("missing field \"{field}\""),
                ))
            }
        };
        let text = text.as_ref();
        let norm = self.opts.norm.apply(text);
        let set = if self.opts.near {
            shingles(&norm, self.opts.shingling, self.opts.seed)
        } else {
            Vec::new()
        };
        let sig = if self.opts.near {
            self.hasher.signature(&set)
        } else {
            Vec::new()
        };
        let bands = if set.is_empty() {
            Vec::new()
        } else {
            self.hasher.band_hashes(&sig)
        };
        // Re-serialised, so that the label is the same JSON however the input spaced it.
        let label = rec
            .get("id")
            .map(|v| {
                serde_json::to_vec(&serde_json::from_str::<Value>(v.get()).expect("valid JSON"))
                    .expect("JSON value")
            })
            .unwrap_or_default();
        let set = if self.opts.with_shingles {
            set
        } else {
            Vec::new()
        };
        Ok(Computed {
            exact: xxh3_128(norm.as_bytes()),
            len: norm.chars().count() as u32,
            bands,
            sig,
            label,
            set,
        })
    }

    /// Stage 1 for one input: writes its signature file (atomically). `name` is how the input
    /// is known in dups.tsv.
    pub fn signatures(
        &self,
        input: &Path,
        name: &str,
        out: &Path,
        progress: &mut Progress,
    ) -> Result<(u64, u64)> {
        let f = File::open(input).map_err(|e| Error::io(name, e))?;
        let reader = LineReader::from_reader(name.to_string(), f);
        let mut w = AtomicFile::create(out)?;
        let io = |e| Error::io(out.display(), e);
        Settings::of(&self.opts).write(&mut w, name).map_err(io)?;
        let (mut docs, mut bytes) = (0u64, 0u64);
        let mut skips = wick_io::Skipped::new("dedup", self.opts.quiet);
        for_each_batch(reader, BATCH_LINES, BATCH_BYTES, |batch| {
            let computed: Vec<Result<Computed>> =
                batch.par_iter().map(|l| self.compute(name, l)).collect();
            let mut buf = Vec::new();
            for (line, c) in batch.iter().zip(computed) {
                bytes += line.bytes.len() as u64 + 1;
                match c {
                    Ok(c) => {
                        // tag 0: a document.
                        buf.push(0u8);
                        buf.extend_from_slice(&line.number.to_le_bytes());
                        buf.extend_from_slice(&c.exact.to_le_bytes());
                        buf.extend_from_slice(&c.len.to_le_bytes());
                        buf.push(!c.bands.is_empty() as u8);
                        let nb = if self.opts.near { self.opts.bands } else { 0 };
                        for k in 0..nb {
                            buf.extend_from_slice(
                                &c.bands.get(k).copied().unwrap_or(0).to_le_bytes(),
                            );
                        }
                        for v in &c.sig {
                            buf.extend_from_slice(&v.to_le_bytes());
                        }
                        buf.extend_from_slice(&(c.label.len() as u32).to_le_bytes());
                        buf.extend_from_slice(&c.label);
                        if self.opts.with_shingles && self.opts.near {
                            buf.extend_from_slice(&(c.set.len() as u32).to_le_bytes());
                            for h in &c.set {
                                buf.extend_from_slice(&h.to_le_bytes());
                            }
                        }
                        docs += 1;
                    }
                    Err(e) if self.opts.skip_invalid => {
                        skips.note(&e);
                        // tag 1: a skipped line, dropped by apply as the single pass drops it.
                        buf.push(1u8);
                        buf.extend_from_slice(&line.number.to_le_bytes());
                    }
                    Err(e) => return Err(e),
                }
            }
            w.write_all(&buf).map_err(io)?;
            progress.tick(|secs| {
                format!(
                    "hashing {name}: {docs} documents, {} ({:.0} docs/s)",
                    human_bytes(bytes),
                    docs as f64 / secs
                )
            });
            Ok(())
        })?;
        // Trailer (tag 2): the document count, so that clusters can size its tables exactly;
        // a file without one was cut short.
        let mut trailer = vec![2u8];
        trailer.extend_from_slice(&docs.to_le_bytes());
        w.write_all(&trailer).map_err(io)?;
        w.commit()?;
        Ok((docs, skips.count))
    }
}

/// One removed line of an input, as dups.tsv lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    pub kind: String,
    pub similarity: f64,
    /// JSON: the kept document's "id", or "file:line".
    pub dup_of: String,
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

    /// Joins the documents whose keys are equal.
    fn join_equal<K: Ord + Copy>(&mut self, keyed: &mut [(K, u32)]) {
        keyed.sort_unstable();
        for w in keyed.windows(2) {
            if w[0].0 == w[1].0 {
                self.union(w[0].1, w[1].1);
            }
        }
    }
}

/// Stage 2: clusters the documents of `sigs` (in that order) and writes dups.tsv lines
/// `source<TAB>line<TAB>kind<TAB>similarity<TAB>dup_of-json`, in document order. Returns
/// (documents, exact removed, near removed).
pub fn clusters(
    sigs: &[PathBuf],
    keep: Keep,
    verify: Option<f64>,
    out: &mut dyn Write,
) -> Result<(u64, u64, u64)> {
    let mut settings: Option<Settings> = None;
    let mut sources: Vec<String> = Vec::new();
    // Per document: where it is, what it hashes to.
    let (mut file_of, mut line_of, mut offset_of) =
        (Vec::<u32>::new(), Vec::<u32>::new(), Vec::<u64>::new());
    let (mut exact, mut lens, mut bands) =
        (Vec::<u128>::new(), Vec::<u32>::new(), Vec::<u64>::new());
    let mut unbanded: HashSet<u32> = HashSet::new();
    let mut skipped: Vec<(u32, u64)> = Vec::new();
    let mut files = Vec::new();
    // Size every table once from the trailers: growing them by doubling would cost up to twice
    // the memory at the end.
    let mut total = 0usize;
    for path in sigs {
        let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
        let len = f
            .metadata()
            .map_err(|e| Error::io(path.display(), e))?
            .len();
        let mut t = [0u8; 9];
        if len < 9 || f.read_exact_at(&mut t, len - 9).is_err() || t[0] != 2 {
            return Err(Error::msg(format!(
                "{}: truncated signature file (no trailer)",
                path.display()
            )));
        }
        total += u64::from_le_bytes(t[1..].try_into().expect("8 bytes")) as usize;
    }
    for v in [&mut file_of, &mut line_of, &mut lens] {
        v.reserve_exact(total);
    }
    offset_of.reserve_exact(total);
    exact.reserve_exact(total);
    for (fi, path) in sigs.iter().enumerate() {
        let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
        let mut r = BufReader::with_capacity(1 << 20, &f);
        let (s, source, mut pos) = Settings::read(&mut r, path)?;
        match &settings {
            None => settings = Some(s.clone()),
            Some(first) if *first != s => {
                return Err(Error::msg(format!("{}: made with other settings than {} (bands, rows, seed, normalisation and shingles must agree)", path.display(), sigs[0].display())))
            }
            _ => {}
        }
        let nb = if s.near { s.bands as usize } else { 0 };
        let perms = if s.near {
            (s.bands * s.rows) as usize
        } else {
            0
        };
        let trunc = || Error::msg(format!("{}: truncated signature file", path.display()));
        let mut tag = [0u8; 1];
        loop {
            if r.read(&mut tag).map_err(|e| Error::io(path.display(), e))? == 0 {
                break;
            }
            let line = read_u64(&mut r).map_err(|_| trunc())?;
            if tag[0] == 2 {
                break;
            }
            if tag[0] == 1 {
                skipped.push((fi as u32, line));
                pos += 9;
                continue;
            }
            let mut fixed = vec![0u8; 16 + 4 + 1 + 8 * nb];
            r.read_exact(&mut fixed).map_err(|_| trunc())?;
            let id = exact.len() as u32;
            exact.push(u128::from_le_bytes(
                fixed[0..16].try_into().expect("16 bytes"),
            ));
            lens.push(u32::from_le_bytes(
                fixed[16..20].try_into().expect("4 bytes"),
            ));
            if fixed[20] == 0 {
                unbanded.insert(id);
            }
            bands.extend(
                fixed[21..]
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
            file_of.push(fi as u32);
            line_of.push(line as u32);
            pos += 9 + fixed.len() as u64;
            offset_of.push(pos);
            let mut sig_and_len = vec![0u8; 4 * perms];
            r.read_exact(&mut sig_and_len).map_err(|_| trunc())?;
            let label_len = read_u32(&mut r).map_err(|_| trunc())?;
            std::io::copy(&mut (&mut r).take(label_len as u64), &mut std::io::sink())
                .map_err(|_| trunc())?;
            pos += 4 * perms as u64 + 4 + label_len as u64;
            if s.with_shingles {
                let count = read_u32(&mut r).map_err(|_| trunc())? as u64;
                std::io::copy(&mut (&mut r).take(8 * count), &mut std::io::sink())
                    .map_err(|_| trunc())?;
                pos += 4 + 8 * count;
            }
        }
        sources.push(source);
        files.push(f);
    }
    let Some(s) = settings else {
        return Ok((0, 0, 0));
    };
    let nb = if s.near { s.bands as usize } else { 0 };
    let perms = if s.near {
        (s.bands * s.rows) as usize
    } else {
        0
    };
    let n = exact.len();
    let mut c = Clusters {
        parent: (0..n as u32).collect(),
        len: lens,
        keep,
    };
    if s.exact {
        // Sorting document numbers by hash takes 4 bytes a document, (hash, number) pairs 32.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&i| (exact[i as usize], i));
        for w in order.windows(2) {
            if exact[w[0] as usize] == exact[w[1] as usize] {
                c.union(w[0], w[1]);
            }
        }
    }
    let read_at = |i: u32, len: usize, skip: u64| -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let f = &files[file_of[i as usize] as usize];
        f.read_exact_at(&mut buf, offset_of[i as usize] + skip)
            .map_err(|e| Error::io(sigs[file_of[i as usize] as usize].display(), e))?;
        Ok(buf)
    };
    if verify.is_some() && !s.with_shingles {
        return Err(Error::msg(format!(
            "{}: made without shingle sets; run `dedup signatures --verify`",
            sigs[0].display()
        )));
    }
    // The stored shingle set of a document (for --verify).
    let shingles_of = |i: u32| -> Result<Vec<u64>> {
        let label_len = u32::from_le_bytes(
            read_at(i, 4, 4 * perms as u64)?
                .try_into()
                .expect("4 bytes"),
        ) as u64;
        let at = 4 * perms as u64 + 4 + label_len;
        let count = u32::from_le_bytes(read_at(i, 4, at)?.try_into().expect("4 bytes")) as usize;
        Ok(read_at(i, 8 * count, at + 4)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    };
    // One buffer for every band, sized once (a collected iterator would grow by doubling).
    let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(if nb > 0 { n } else { 0 });
    for b in 0..nb {
        keyed.clear();
        keyed.extend(
            (0..n as u32)
                .filter(|i| !unbanded.contains(i))
                .map(|i| (bands[i as usize * nb + b], i)),
        );
        match verify {
            None => c.join_equal(&mut keyed),
            Some(t) => {
                // Candidates share a band; a pair joins only if its exact Jaccard reaches t.
                keyed.sort_unstable();
                for run in keyed.chunk_by(|x, y| x.0 == y.0).filter(|r| r.len() > 1) {
                    let sets: Vec<Vec<u64>> = run
                        .iter()
                        .map(|&(_, i)| shingles_of(i))
                        .collect::<Result<_>>()?;
                    for j in 1..run.len() {
                        // Bounded so that a huge bucket cannot make this quadratic.
                        for k in (0..j).rev().take(64) {
                            if c.find(run[j].1) != c.find(run[k].1)
                                && jaccard(&sets[j], &sets[k]) >= t
                            {
                                c.union(run[j].1, run[k].1);
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    drop(keyed);
    drop(bands);

    let sig = |i: u32| -> Result<Vec<u32>> {
        Ok(read_at(i, 4 * perms, 0)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    };
    let label = |i: u32| -> Result<String> {
        let len = u32::from_le_bytes(
            read_at(i, 4, 4 * perms as u64)?
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        if len > 0 {
            return Ok(
                String::from_utf8_lossy(&read_at(i, len, 4 * perms as u64 + 4)?).into_owned(),
            );
        }
        let fi = file_of[i as usize] as usize;
        Ok(Value::from(format!("{}:{}", sources[fi], line_of[i as usize])).to_string())
    };
    // Rows stream out in document order, the skipped lines merged in where they were.
    let write = |out: &mut dyn Write, f: u32, line: u64, rest: &str| -> Result<()> {
        writeln!(out, "{}\t{line}\t{rest}", sources[f as usize])
            .map_err(|e| Error::io("dups.tsv", e))
    };
    let mut skipped = skipped.into_iter().peekable();
    let (mut n_exact, mut n_near) = (0u64, 0u64);
    let mut labels: HashMap<u32, String> = HashMap::new();
    for i in 0..n as u32 {
        let at = (file_of[i as usize], line_of[i as usize] as u64);
        while let Some(&(f, l)) = skipped.peek().filter(|s| **s < at) {
            write(out, f, l, "invalid\t0\tnull")?;
            skipped.next();
        }
        let root = c.find(i);
        if root == i {
            continue;
        }
        let is_exact = s.exact && exact[i as usize] == exact[root as usize];
        let similarity = if is_exact || !s.near {
            1.0
        } else if verify.is_some() {
            jaccard(&shingles_of(i)?, &shingles_of(root)?)
        } else {
            estimate(&sig(i)?, &sig(root)?)
        };
        if is_exact {
            n_exact += 1;
        } else {
            n_near += 1;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = labels.entry(root) {
            e.insert(label(root)?);
        }
        let kind = if is_exact { "exact" } else { "near" };
        write(
            out,
            at.0,
            at.1,
            &format!("{kind}\t{similarity}\t{}", labels[&root]),
        )?;
    }
    for (f, l) in skipped {
        write(out, f, l, "invalid\t0\tnull")?;
    }
    Ok((n as u64, n_exact, n_near))
}

/// The dups.tsv rows of one source, read as the input is: rows of a source must come in line
/// order (as `dedup clusters` writes them), so memory stays constant however many are removed.
pub struct DupsCursor {
    lines: std::io::Lines<BufReader<File>>,
    path: String,
    source: String,
    row: u64,
    next: Option<(u64, Removal)>,
}

impl DupsCursor {
    pub fn open(path: &Path, source: &str) -> Result<DupsCursor> {
        let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
        let mut c = DupsCursor {
            lines: BufReader::new(f).lines(),
            path: path.display().to_string(),
            source: source.to_string(),
            row: 0,
            next: None,
        };
        c.advance()?;
        Ok(c)
    }

    fn advance(&mut self) -> Result<()> {
        let prev = self.next.take().map(|n| n.0);
        for line in self.lines.by_ref() {
            self.row += 1;
            let line = line.map_err(|e| Error::io(&self.path, e))?;
            let bad = |msg: &str| Error::record(&self.path, self.row, msg);
            let cols: Vec<&str> = line.splitn(5, '\t').collect();
            if cols.len() != 5 {
                return Err(bad(
                    "expected source<TAB>line<TAB>kind<TAB>similarity<TAB>dup_of",
                ));
            }
            if cols[0] != self.source {
                continue;
            }
            let n: u64 = cols[1].parse().map_err(|_| bad("line is not a number"))?;
            if prev.is_some_and(|p| n <= p) {
                return Err(bad(
                    "rows of a source are not in line order (sort -t$'\\t' -k1,1 -k2,2n)",
                ));
            }
            let similarity: f64 = cols[3]
                .parse()
                .map_err(|_| bad("similarity is not a number"))?;
            self.next = Some((
                n,
                Removal {
                    kind: cols[2].to_string(),
                    similarity,
                    dup_of: cols[4].to_string(),
                },
            ));
            return Ok(());
        }
        Ok(())
    }

    /// The removal listed for input line `line`, if any.
    fn take(&mut self, line: u64) -> Result<Option<Removal>> {
        match &self.next {
            Some((n, _)) if *n == line => {
                let r = self.next.as_ref().map(|x| x.1.clone());
                self.advance()?;
                Ok(r)
            }
            Some((n, _)) if *n < line => Err(Error::msg(format!(
                "{}: lists line {n} of {}, which is blank or missing",
                self.path, self.source
            ))),
            _ => Ok(None),
        }
    }

    /// After the input: rows past its end mean dups.tsv belongs to another version of it.
    fn finish(&self) -> Result<()> {
        match &self.next {
            Some((n, _)) => Err(Error::msg(format!(
                "{}: lists line {n} of {}, past its end",
                self.path, self.source
            ))),
            None => Ok(()),
        }
    }
}

/// Stage 3 for one input: kept lines to `kept` byte for byte; removed ones to `removed` with
/// "dup_of", "similarity" and "dup_kind"; skipped invalid lines to neither.
pub fn apply(
    input: &Path,
    name: &str,
    dups: &mut DupsCursor,
    kept: &mut Output,
    mut removed: Option<&mut Output>,
    sum: &mut Summary,
) -> Result<()> {
    let f = File::open(input).map_err(|e| Error::io(name, e))?;
    for_each_batch(
        LineReader::from_reader(name.to_string(), f),
        BATCH_LINES,
        BATCH_BYTES,
        |batch| {
            let mut chunk = Vec::new();
            for line in &batch {
                let Some(r) = dups.take(line.number)? else {
                    chunk.extend_from_slice(&line.bytes);
                    chunk.push(b'\n');
                    sum.kept += 1;
                    sum.docs += 1;
                    continue;
                };
                match r.kind.as_str() {
                    "invalid" => {
                        sum.skipped += 1;
                        continue;
                    }
                    "exact" => sum.exact_removed += 1,
                    _ => sum.near_removed += 1,
                }
                sum.docs += 1;
                if let Some(out) = removed.as_deref_mut() {
                    let mut rec = parse_object(name, line.number, &line.bytes)?;
                    let dup_of: Value = serde_json::from_str(&r.dup_of).map_err(|e| {
                        Error::msg(format!("dups.tsv: bad dup_of {:?}: {e}", r.dup_of))
                    })?;
                    rec.insert("dup_of".into(), dup_of);
                    rec.insert("similarity".into(), Value::from(r.similarity));
                    rec.insert("dup_kind".into(), Value::from(r.kind.as_str()));
                    let mut bytes = serde_json::to_vec(&rec).expect("JSON value");
                    bytes.push(b'\n');
                    out.put(&bytes)?;
                }
            }
            kept.put(&chunk)
        },
    )?;
    dups.finish()
}

/// The three stages over temporary files: what `dedup FILES...` does.
pub fn single_pass(
    opts: &Options,
    keep: Keep,
    verify: Option<f64>,
    paths: &[String],
    kept: &mut Output,
    mut removed: Option<&mut Output>,
) -> Result<Summary> {
    let mut progress = Progress::new("dedup", opts.quiet);
    let tmp = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let mut with = opts.clone();
    with.with_shingles |= verify.is_some();
    let signer = Signer::new(with);
    let mut inputs = Vec::new();
    let mut sigs = Vec::new();
    let mut bytes = 0u64;
    for (k, p) in paths.iter().enumerate() {
        let (path, name) = if p == "-" {
            let copy = tmp.path().join(format!("stdin-{k}"));
            let mut f = File::create(&copy).map_err(|e| Error::io(copy.display(), e))?;
            std::io::copy(&mut std::io::stdin().lock(), &mut f)
                .map_err(|e| Error::io("<stdin>", e))?;
            (copy, "<stdin>".to_string())
        } else {
            (PathBuf::from(p), p.clone())
        };
        bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // A file named twice stays two inputs.
        let source = if paths[..k].contains(p) {
            format!("{name}#{k}")
        } else {
            name.clone()
        };
        let sig = tmp.path().join(format!("{k}.sig"));
        signer.signatures(&path, &source, &sig, &mut progress)?;
        sigs.push(sig);
        inputs.push((path, name, source));
    }
    let dups_path = tmp.path().join("dups.tsv");
    {
        let mut w = BufWriter::new(
            File::create(&dups_path).map_err(|e| Error::io(dups_path.display(), e))?,
        );
        clusters(&sigs, keep, verify, &mut w)?;
        w.flush().map_err(|e| Error::io(dups_path.display(), e))?;
    }
    let mut sum = Summary::default();
    for (path, name, source) in &inputs {
        let mut dups = DupsCursor::open(&dups_path, source)?;
        apply(
            path,
            name,
            &mut dups,
            kept,
            removed.as_deref_mut(),
            &mut sum,
        )?;
    }
    progress.finish(|secs| {
        let skipped = wick_io::Skipped::suffix(sum.skipped);
        format!(
            "{} documents in, {} kept, {} exact and {} near duplicates removed in {secs:.2} s ({:.0} docs/s, {}){skipped}",
            sum.docs, sum.kept, sum.exact_removed, sum.near_removed, sum.docs as f64 / secs.max(1e-9), human_bytes(bytes)
        )
    });
    Ok(sum)
}
