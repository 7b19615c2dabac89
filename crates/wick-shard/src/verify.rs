//! `pack verify`: every check a shard directory can fail, each reported on its own line.

use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use crate::manifest::{Manifest, MANIFEST};
use crate::{Shard, ShardSet, Split};

#[derive(Debug, Default)]
pub struct Report {
    pub shards: usize,
    pub tokens: u64,
    pub documents: u64,
    pub problems: Vec<String>,
}

/// Checks headers, sizes, checksums, sidecars, manifest totals and that every id is below the
/// vocabulary size (`vocab` overrides the manifest's; llm.c data without a manifest is only
/// range-checked when it is given).
pub fn verify(path: &Path, vocab: Option<usize>) -> Report {
    let mut r = Report::default();
    if path.is_dir() && path.join(MANIFEST).exists() {
        match Manifest::load(path) {
            Ok(m) => verify_manifest(path, &m, vocab, &mut r),
            Err(e) => r.problems.push(e.to_string()),
        }
    } else if path.is_dir() && !has_bins(path) {
        r.problems.push(format!(
            "{}: no {MANIFEST}: not a complete shard directory (an interrupted pack leaves none)",
            path.display()
        ));
    } else {
        match ShardSet::open(path) {
            Ok(set) => {
                for s in &set.shards {
                    check_ids(s, vocab, &mut r);
                    r.shards += 1;
                    r.tokens += s.len() as u64;
                }
            }
            Err(e) => r.problems.push(e.to_string()),
        }
    }
    r
}

fn has_bins(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut it| {
        it.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "bin")))
    })
}

fn hex(bytes: &[u8]) -> String {
    format!("{:016x}", xxh3_64(bytes))
}

fn verify_manifest(dir: &Path, m: &Manifest, vocab: Option<usize>, r: &mut Report) {
    let vocab = vocab.unwrap_or(m.vocab_size);
    let mut totals = std::collections::BTreeMap::<&str, (u64, u64, u64)>::new();
    for e in &m.shards {
        let path = dir.join(&e.file);
        let name = path.display().to_string();
        let shard = match Shard::open(&path, e.split) {
            Ok(s) => s,
            Err(err) => {
                r.problems.push(err.to_string());
                continue;
            }
        };
        let mut bad = |msg: String| r.problems.push(format!("{name}: {msg}"));
        if shard.dtype != m.dtype {
            bad(format!(
                "is {} but the manifest says {}",
                shard.dtype.name(),
                m.dtype.name()
            ));
        }
        if shard.len() as u64 != e.tokens {
            bad(format!(
                "holds {} tokens but the manifest says {}",
                shard.len(),
                e.tokens
            ));
        }
        let sum = hex(shard.bytes());
        if sum != e.xxh3 {
            bad(format!(
                "checksum mismatch: manifest {}, file {sum}",
                e.xxh3
            ));
        }
        match (shard.docs_bytes(), shard.doc_starts()) {
            (Some(bytes), Some(starts)) => {
                if hex(bytes) != e.docs_xxh3 {
                    bad(format!("{}: checksum mismatch", e.docs_file));
                }
                if starts.len() as u64 != e.documents {
                    bad(format!(
                        "{}: lists {} documents but the manifest says {}",
                        e.docs_file,
                        starts.len(),
                        e.documents
                    ));
                }
                let ordered = starts.first().is_none_or(|&s| s == 0)
                    && starts.windows(2).all(|w| w[0] < w[1])
                    && starts.last().is_none_or(|&s| (s as usize) < shard.len());
                if !ordered {
                    bad(format!(
                        "{}: document starts are not increasing from 0 within the shard",
                        e.docs_file
                    ));
                }
            }
            _ => bad(format!("missing sidecar {}", e.docs_file)),
        }
        match (&e.mask_file, &e.mask_xxh3, shard.mask_bytes()) {
            (Some(f), Some(want), Some(bytes)) => {
                if &hex(bytes) != want {
                    bad(format!("{f}: checksum mismatch"));
                }
                if shard.mask().is_some_and(|m| m.iter().any(|&b| b > 1)) {
                    bad(format!("{f}: mask values other than 0 and 1"));
                }
            }
            (Some(f), _, None) => bad(format!("missing sidecar {f}")),
            _ => {}
        }
        check_ids(&shard, Some(vocab), r);
        let t = totals.entry(e.split.name()).or_default();
        *t = (t.0 + shard.len() as u64, t.1 + e.documents, t.2 + 1);
        r.shards += 1;
        r.tokens += shard.len() as u64;
        r.documents += e.documents;
    }
    for split in [Split::Train, Split::Val] {
        let want = m.split_totals(split);
        let (tokens, documents, shards) = totals.get(split.name()).copied().unwrap_or_default();
        if (want.tokens, want.documents, want.shards) != (tokens, documents, shards) {
            r.problems.push(format!(
                "{}: {} split totals say {} tokens, {} documents, {} shards; the shards hold {tokens}, {documents}, {shards}",
                dir.join(MANIFEST).display(), split.name(), want.tokens, want.documents, want.shards
            ));
        }
    }
}

fn check_ids(shard: &Shard, vocab: Option<usize>, r: &mut Report) {
    let (Some(vocab), Some(max)) = (vocab, shard.tokens().max()) else {
        return;
    };
    if max as usize >= vocab {
        let toks = shard.tokens();
        let pos = (0..toks.len())
            .find(|&i| toks.get(i) as usize >= vocab)
            .unwrap_or(0);
        r.problems.push(format!(
            "{}: token {pos} is id {}, not below the vocabulary size {vocab}",
            shard.name(),
            toks.get(pos)
        ));
    }
}
