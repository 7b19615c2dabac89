//! A shard directory built from one input: its parts are manifest.json, train.bin,
//! train.docs, train.mask, val.bin, val.docs and val.mask, in that order (an empty or missing
//! part: no such file; no manifest makes it a directory of llm.c shards), beside a fixed
//! tokenizer.json. Opened with ShardSet::open (the directory and train.bin alone), then every
//! reader runs on it: ids checked, random and sequential windows, SFT examples and their
//! batches, and `pack verify` with and without a vocabulary. Oracles besides "no panic":
//! batches have the shapes asked for, and errors are one line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wick_fuzz::{one_line, parts, temp_dir, write};
use wick_shard::{verify, EpochLoader, Examples, Sampler, Sequential, ShardSet, Split};

const FILES: [&str; 7] = [
    "manifest.json",
    "train.bin",
    "train.docs",
    "train.mask",
    "val.bin",
    "val.docs",
    "val.mask",
];

fn err(e: impl std::fmt::Display) {
    one_line(&e.to_string());
}

fn read_all(set: &ShardSet, b: usize, t: usize, seed: u64) {
    let vocab = set.manifest.as_ref().map_or(1 << 16, |m| m.vocab_size);
    set.check_ids(vocab).err().map(err);
    for split in [Split::Train, Split::Val] {
        let _ = set.tokens(split);
        match Sampler::new(set, split, b, t, seed) {
            Ok(mut s) => {
                for _ in 0..3 {
                    let batch = s.next_batch();
                    assert_eq!(batch.tokens.len(), b * (t + 1));
                    if let Some(m) = &batch.mask {
                        assert_eq!(m.len(), batch.tokens.len());
                    }
                }
            }
            Err(e) => err(e),
        }
        match Sequential::new(set, split, b, t) {
            Ok(seq) => {
                for batch in seq.take(64) {
                    assert!(batch.b >= 1 && batch.b <= b);
                    assert_eq!(batch.tokens.len(), batch.b * (t + 1));
                }
            }
            Err(e) => err(e),
        }
        for packing in [false, true] {
            let examples = match Examples::new(set, split, 0) {
                Ok(x) => x,
                Err(e) => {
                    err(e);
                    break;
                }
            };
            let (all, trained) = examples.token_counts();
            assert!(trained <= all);
            let _ = examples.longer_than(t);
            let rows = examples.plan(t, packing, None);
            assert!(rows.iter().all(|r| !r.is_empty()));
            let mut loader = EpochLoader::new(examples, seed, b, t, packing);
            assert!(loader.rows_per_epoch() >= 1);
            for _ in 0..3 {
                let batch = loader.next_batch();
                assert_eq!(batch.b, b);
                assert_eq!(batch.tokens.len(), b * (batch.t + 1));
                assert_eq!(batch.weights.len(), b * batch.t);
                assert_eq!(batch.segments.len(), b * batch.t);
                assert!(batch.t <= t);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = temp_dir();
    for (name, bytes) in FILES.iter().zip(parts(data, FILES.len())) {
        if !bytes.is_empty() {
            write(dir.path(), name, bytes);
        }
    }
    write(dir.path(), "tokenizer.json", b"{}");
    // Small windows and batches, varied by the input.
    let h = data
        .iter()
        .fold(0usize, |h, &x| h.wrapping_mul(31) ^ x as usize);
    let (b, t, seed) = (1 + h % 3, 1 + h / 3 % 16, h as u64);
    match ShardSet::open(dir.path()) {
        Ok(set) => read_all(&set, b, t, seed),
        Err(e) => err(e),
    }
    match ShardSet::open(dir.path().join("train.bin")) {
        Ok(set) => read_all(&set, b, t, seed),
        Err(e) => err(e),
    }
    for vocab in [None, Some(h % 70_000)] {
        let report = verify(dir.path(), vocab);
        for p in &report.problems {
            one_line(p);
        }
    }
});
