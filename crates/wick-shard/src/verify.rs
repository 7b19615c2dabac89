//! `pack verify`: every check a shard directory can fail, each reported on its own line.

use std::path::Path;

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::manifest::{Manifest, MANIFEST};
use crate::{Shard, ShardSet, Split};

#[derive(Debug, Default)]
pub struct Report {
    pub shards: usize,
    pub tokens: u64,
    pub documents: u64,
    pub problems: Vec<String>,
}

/// Checks headers, sizes, checksums, sidecars (document starts increasing from 0 inside the
/// shard), manifest totals, that the tokenizer the manifest names is there with its checksum,
/// that every file the manifest names lies inside the directory, and that every id is below the
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

/// A file the manifest names that is a link leading out of the directory.
fn escapes(dir: &Path, name: &str) -> Option<String> {
    let (Ok(root), Ok(target)) = (dir.canonicalize(), dir.join(name).canonicalize()) else {
        return None;
    };
    (!target.starts_with(&root)).then(|| {
        format!(
            "{}: leads out of the directory, to {}",
            dir.join(name).display(),
            target.display()
        )
    })
}

fn verify_tokenizer(dir: &Path, m: &Manifest, r: &mut Report) {
    let path = dir.join(&m.tokenizer.file);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let sum = format!("{:032x}", xxh3_128(&bytes));
            if sum != m.tokenizer.xxh3_128 {
                r.problems.push(format!(
                    "{}: checksum mismatch: manifest {}, file {sum} (not the tokenizer the ids came from)",
                    path.display(),
                    m.tokenizer.xxh3_128
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.problems.push(format!(
            "{}: missing: the manifest names it as the tokenizer the ids came from",
            path.display()
        )),
        Err(e) => r.problems.push(format!("{}: {e}", path.display())),
    }
}

fn verify_manifest(dir: &Path, m: &Manifest, vocab: Option<usize>, r: &mut Report) {
    let vocab = vocab.unwrap_or(m.vocab_size);
    let outside = m.names_outside();
    if !outside.is_empty() {
        // Reading those would read (or checksum) files that are not the directory's.
        let manifest = dir.join(MANIFEST);
        r.problems.extend(
            outside
                .into_iter()
                .map(|p| format!("{}: {p}", manifest.display())),
        );
        return;
    }
    let mut names = vec![m.tokenizer.file.as_str()];
    for e in &m.shards {
        names.extend([e.file.as_str(), e.docs_file.as_str()]);
        names.extend(e.mask_file.as_deref());
    }
    r.problems
        .extend(names.into_iter().filter_map(|n| escapes(dir, n)));
    verify_tokenizer(dir, m, r);
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
                // (Starts that do not increase from 0 inside the shard fail Shard::open.)
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
    if let Some(Err(e)) = vocab.map(|v| shard.check_ids(v)) {
        r.problems.push(e.to_string());
    }
}
