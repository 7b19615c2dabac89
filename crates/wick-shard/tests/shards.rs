//! Packing, reading, sampling and verifying shard directories, and reading llm.c's own files.

use std::fs;
use std::path::{Path, PathBuf};

use wick_shard::{
    split_of, verify, Dtype, PackOptions, Packer, Sampler, Sequential, ShardSet, Split,
};

const VOCAB: usize = 1000;
const EOS: u32 = 999;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

fn opts(
    val_fraction: f64,
    shuffle_seed: Option<u64>,
    shard_tokens: usize,
    dtype: Dtype,
) -> PackOptions {
    PackOptions {
        shard_tokens,
        dtype,
        val_fraction,
        split_key: "id".into(),
        shuffle_seed,
        vocab_size: VOCAB,
        eos_id: EOS,
    }
}

/// What `pack` records as the tokenizer's identity (verify checks the copy against it).
fn gpt2_hash() -> String {
    let bytes = fs::read(fixture("tokenizers/gpt2/tokenizer.json")).unwrap();
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}

/// Documents of varied lengths whose ids encode (document, position).
fn docs(n: u32) -> Vec<(String, Vec<u32>)> {
    (0..n)
        .map(|d| {
            (
                format!("\"doc{d}\""),
                (0..(d % 17 + 3)).map(|i| (d * 7 + i) % 900).collect(),
            )
        })
        .collect()
}

fn pack(
    dir: &Path,
    o: PackOptions,
    docs: &[(String, Vec<u32>)],
    masks: bool,
) -> wick_shard::Manifest {
    let mut p = Packer::create(
        dir,
        o,
        &fixture("tokenizers/gpt2/tokenizer.json"),
        &gpt2_hash(),
    )
    .unwrap();
    for (key, ids) in docs {
        let mask: Vec<u8> = ids.iter().map(|&i| (i % 2) as u8).collect();
        p.add(key.as_bytes(), ids, masks.then_some(&mask[..]))
            .unwrap();
    }
    p.finish().unwrap()
}

/// Splits every shard of a split back into documents, using the .docs sidecar.
fn read_docs(set: &ShardSet, split: Split) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for s in set.split(split) {
        let starts = s.doc_starts().unwrap();
        for (i, &a) in starts.iter().enumerate() {
            let b = starts.get(i + 1).map_or(s.len(), |&b| b as usize);
            let mut v = Vec::new();
            s.tokens().extend_into(a as usize, b - a as usize, &mut v);
            out.push(v);
        }
    }
    out
}

#[test]
fn unshuffled_pack_reads_back_in_order_with_eos_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shards");
    let d = docs(50);
    let m = pack(&dir, opts(0.0, None, 64, Dtype::Uint16), &d, false);
    let set = ShardSet::open(&dir).unwrap();
    let got = read_docs(&set, Split::Train);
    let want: Vec<Vec<u32>> = d
        .iter()
        .map(|(_, ids)| ids.iter().copied().chain([EOS]).collect())
        .collect();
    assert_eq!(got, want);
    // Whole documents per shard, none over the target unless alone.
    assert!(m.shards.len() > 5);
    assert!(m.shards.iter().all(|s| s.tokens <= 64));
    assert_eq!(m.splits["train"].documents, 50);
    assert!(verify(&dir, None).problems.is_empty());
    assert!(dir.join("tokenizer.json").exists());
}

#[test]
fn shuffle_is_seeded_and_keeps_every_document() {
    let tmp = tempfile::tempdir().unwrap();
    let d = docs(200);
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    pack(&a, opts(0.1, Some(5), 1 << 20, Dtype::Uint16), &d, false);
    pack(&b, opts(0.1, Some(5), 1 << 20, Dtype::Uint16), &d, false);
    pack(&c, opts(0.1, Some(6), 1 << 20, Dtype::Uint16), &d, false);
    for split in ["train_000000", "val_000000"] {
        assert_eq!(
            fs::read(a.join(format!("{split}.bin"))).unwrap(),
            fs::read(b.join(format!("{split}.bin"))).unwrap()
        );
    }
    assert_ne!(
        fs::read(a.join("train_000000.bin")).unwrap(),
        fs::read(c.join("train_000000.bin")).unwrap()
    );
    let set = ShardSet::open(&a).unwrap();
    let mut all: Vec<Vec<u32>> = read_docs(&set, Split::Train)
        .into_iter()
        .chain(read_docs(&set, Split::Val))
        .collect();
    let mut want: Vec<Vec<u32>> = d
        .iter()
        .map(|(_, ids)| ids.iter().copied().chain([EOS]).collect())
        .collect();
    all.sort();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn a_documents_split_does_not_change_when_the_corpus_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let small = docs(100);
    let big = docs(300);
    let val_ids = |dir: &Path, d: &[(String, Vec<u32>)]| {
        let m = pack(dir, opts(0.2, Some(1), 1 << 20, Dtype::Uint16), d, false);
        let set = ShardSet::open(dir).unwrap();
        let mut v = read_docs(&set, Split::Val);
        v.sort();
        (m, v)
    };
    let (m1, v1) = val_ids(&tmp.path().join("s"), &small);
    let (_, v2) = val_ids(&tmp.path().join("b"), &big);
    assert!(
        v1.iter().all(|doc| v2.contains(doc)),
        "every val document of the small corpus is val in the big one"
    );
    let val = m1.splits["val"].documents as f64 / 100.0;
    assert!((0.08..0.35).contains(&val), "val fraction {val}");
    assert_eq!(split_of(b"\"doc1\"", 0.0), Split::Train);
    assert_eq!(split_of(b"\"doc1\"", 1.0), Split::Val);
}

#[test]
fn masks_travel_in_sidecars_and_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let d = docs(30);
    let m = pack(&dir, opts(0.0, None, 1 << 20, Dtype::Uint32), &d, true);
    assert!(m.has_mask);
    let set = ShardSet::open(&dir).unwrap();
    let s = &set.shards[0];
    assert_eq!(s.dtype, Dtype::Uint32);
    let mask = s.mask().unwrap();
    let toks = s.tokens();
    // Odd ids were masked in, EOS (appended) always counts.
    for (i, &m) in mask.iter().enumerate() {
        let t = toks.get(i);
        assert_eq!(m, if t == EOS { 1 } else { (t % 2) as u8 }, "token {i}");
    }
    let b = Sampler::new(&set, Split::Train, 4, 8, 0)
        .unwrap()
        .next_batch();
    let bm = b.mask.unwrap();
    assert_eq!(bm.len(), 4 * 9);
    for (t, m) in b.tokens.iter().zip(bm) {
        assert_eq!(m, if *t == EOS { 1 } else { (t % 2) as u8 });
    }
}

#[test]
fn sampler_windows_are_real_and_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    pack(&dir, opts(0.0, None, 100, Dtype::Uint16), &docs(80), false);
    let set = ShardSet::open(&dir).unwrap();
    let (b, t) = (3, 16);
    let mut s1 = Sampler::new(&set, Split::Train, b, t, 42).unwrap();
    let mut s2 = Sampler::new(&set, Split::Train, b, t, 42).unwrap();
    for _ in 0..20 {
        let x = s1.next_batch();
        assert_eq!(x, s2.next_batch());
        assert_eq!(x.tokens.len(), b * (t + 1));
        // Each row occurs contiguously in some shard.
        for row in x.tokens.chunks(t + 1) {
            let found = set.shards.iter().any(|sh| {
                let mut all = Vec::new();
                sh.tokens().extend_into(0, sh.len(), &mut all);
                all.windows(t + 1).any(|w| w == row)
            });
            assert!(found);
        }
    }
    // Saving the state and resuming continues the same sequence.
    let state = s1.rng;
    let next = s1.next_batch();
    let mut s3 = Sampler::new(&set, Split::Train, b, t, 0).unwrap();
    s3.rng = state;
    assert_eq!(s3.next_batch(), next);
    assert!(Sampler::new(&set, Split::Train, 1, 1000, 0).is_err());
}

#[test]
fn sequential_windows_cover_each_target_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    pack(
        &dir,
        opts(0.0, None, 1 << 20, Dtype::Uint16),
        &docs(40),
        false,
    );
    let set = ShardSet::open(&dir).unwrap();
    let n = set.shards[0].len();
    let t = 10;
    let rows: Vec<Vec<u32>> = Sequential::new(&set, Split::Train, 4, t)
        .unwrap()
        .flat_map(|b| {
            b.tokens
                .chunks(t + 1)
                .map(<[u32]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(rows.len(), (n - 1) / t);
    let mut all = Vec::new();
    set.shards[0].tokens().extend_into(0, n, &mut all);
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(&all[k * t..k * t + t + 1], &row[..]);
    }
}

#[test]
fn reads_llmc_shards_written_by_numpy() {
    let docs: Vec<Vec<u32>> = fs::read_to_string(fixture("fixtures/llmc/docs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect();
    let want: Vec<u32> = docs.concat();
    let expected: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixture("fixtures/llmc/expected.json")).unwrap())
            .unwrap();
    assert_eq!(want.len() as u64, expected["num_tokens"].as_u64().unwrap());
    for (file, dtype) in [
        ("gpt2_u16.bin", Dtype::Uint16),
        ("gpt2_u32.bin", Dtype::Uint32),
    ] {
        let set = ShardSet::open(fixture("fixtures/llmc").join(file)).unwrap();
        let s = &set.shards[0];
        assert_eq!(s.dtype, dtype);
        let mut got = Vec::new();
        s.tokens().extend_into(0, s.len(), &mut got);
        assert_eq!(got, want, "{file}");
    }
    let set = ShardSet::open(fixture("fixtures/llmc")).unwrap();
    assert!(set.manifest.is_none());
    assert_eq!(set.shards.len(), 2);
}

#[test]
fn packed_shard_is_byte_identical_to_llmc_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(fixture("fixtures/llmc/docs.jsonl")).unwrap();
    for (dtype, file) in [
        (Dtype::Uint16, "gpt2_u16.bin"),
        (Dtype::Uint32, "gpt2_u32.bin"),
    ] {
        let dir = tmp.path().join(file);
        let o = PackOptions {
            vocab_size: 50257,
            eos_id: 50256,
            ..opts(0.0, None, 1 << 20, dtype)
        };
        let mut p =
            Packer::create(&dir, o, &fixture("tokenizers/gpt2/tokenizer.json"), "h").unwrap();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ids: Vec<u32> = v["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            p.add(v["id"].to_string().as_bytes(), &ids, None).unwrap();
        }
        p.finish().unwrap();
        assert_eq!(
            fs::read(dir.join("train_000000.bin")).unwrap(),
            fs::read(fixture("fixtures/llmc").join(file)).unwrap()
        );
    }
}

#[test]
fn verify_finds_each_kind_of_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        pack(
            &dir,
            opts(0.0, None, 1 << 20, Dtype::Uint16),
            &docs(20),
            true,
        );
        dir
    };
    let problems = |dir: &Path| verify(dir, None).problems.join("\n");

    let dir = fresh("flip");
    let bin = dir.join("train_000000.bin");
    let mut b = fs::read(&bin).unwrap();
    b[1030] ^= 1;
    fs::write(&bin, &b).unwrap();
    assert!(
        problems(&dir).contains("train_000000.bin: checksum mismatch"),
        "{}",
        problems(&dir)
    );

    let dir = fresh("trunc");
    let bin = dir.join("train_000000.bin");
    let b = fs::read(&bin).unwrap();
    fs::write(&bin, &b[..b.len() - 2]).unwrap();
    assert!(
        problems(&dir).contains("train_000000.bin: truncated"),
        "{}",
        problems(&dir)
    );

    let dir = fresh("magic");
    let bin = dir.join("train_000000.bin");
    let mut b = fs::read(&bin).unwrap();
    b[0] = 1;
    fs::write(&bin, &b).unwrap();
    assert!(
        problems(&dir).contains("wrong magic number"),
        "{}",
        problems(&dir)
    );

    let dir = fresh("vocab");
    assert!(verify(&dir, Some(500))
        .problems
        .join("\n")
        .contains("not below the vocabulary size 500"));

    let dir = fresh("mask");
    fs::remove_file(dir.join("train_000000.mask")).unwrap();
    assert!(
        problems(&dir).contains("missing sidecar train_000000.mask"),
        "{}",
        problems(&dir)
    );

    let dir = fresh("manifest");
    fs::remove_file(dir.join("manifest.json")).unwrap();
    let set = ShardSet::open(&dir).unwrap();
    assert!(set.manifest.is_none(), "still readable as llm.c shards");
}

#[test]
fn an_unfinished_pack_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    {
        let mut p = Packer::create(
            &dir,
            opts(0.0, None, 1 << 20, Dtype::Uint16),
            &fixture("tokenizers/gpt2/tokenizer.json"),
            "h",
        )
        .unwrap();
        p.add(b"1", &[1, 2, 3], None).unwrap();
    }
    assert!(!dir.exists());
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "staging directory removed"
    );
    assert!(!verify(&dir, None).problems.is_empty());
}

#[test]
fn repacking_replaces_an_earlier_directory_but_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    pack(
        &dir,
        opts(0.0, None, 1 << 20, Dtype::Uint16),
        &docs(5),
        false,
    );
    pack(
        &dir,
        opts(0.0, None, 1 << 20, Dtype::Uint16),
        &docs(9),
        false,
    );
    assert_eq!(
        ShardSet::open(&dir).unwrap().manifest.unwrap().splits["train"].documents,
        9
    );
    let other = tmp.path().join("notes");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("todo.txt"), "keep me").unwrap();
    let err = Packer::create(
        &other,
        opts(0.0, None, 10, Dtype::Uint16),
        &fixture("tokenizers/gpt2/tokenizer.json"),
        "h",
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("not written by wick"), "{err}");
    // A manifest.json is not enough to count as wick's: any tool could have written one.
    fs::write(other.join("manifest.json"), "{}").unwrap();
    assert!(Packer::create(
        &other,
        opts(0.0, None, 10, Dtype::Uint16),
        &fixture("tokenizers/gpt2/tokenizer.json"),
        "h",
    )
    .is_err());
    assert_eq!(
        fs::read_to_string(other.join("todo.txt")).unwrap(),
        "keep me"
    );
    // Nor is wick's own shard folder once the user has put a file of theirs in it.
    fs::write(dir.join("README.md"), "my notes").unwrap();
    let err = Packer::create(
        &dir,
        opts(0.0, None, 10, Dtype::Uint16),
        &fixture("tokenizers/gpt2/tokenizer.json"),
        "h",
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("holds README.md"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.join("README.md")).unwrap(),
        "my notes"
    );
}

#[test]
fn empty_input_gives_a_valid_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("e");
    let m = pack(&dir, opts(0.1, Some(1), 100, Dtype::Uint16), &[], false);
    assert!(m.shards.is_empty());
    let r = verify(&dir, None);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.tokens, 0);
}

#[test]
fn bad_documents_are_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = Packer::create(
        &tmp.path().join("x"),
        opts(0.0, None, 100, Dtype::Uint16),
        &fixture("tokenizers/gpt2/tokenizer.json"),
        "h",
    )
    .unwrap();
    assert_eq!(
        p.add(b"a", &[1, 1000], None).unwrap_err(),
        "ids[1]: id 1000 is not below the vocabulary size 1000"
    );
    assert_eq!(
        p.add(b"a", &[1, 2], Some(&[1])).unwrap_err(),
        "\"mask\" has 1 entries but \"ids\" has 2"
    );
    let big = PackOptions {
        vocab_size: 70000,
        ..opts(0.0, None, 100, Dtype::Uint16)
    };
    assert!(Packer::create(
        &tmp.path().join("y"),
        big,
        &fixture("tokenizers/gpt2/tokenizer.json"),
        "h"
    )
    .is_err());
}

/// Rewrites the document starts of a `.docs` sidecar in place (header kept).
fn edit_starts(docs: &Path, f: impl FnOnce(&mut Vec<u64>)) -> Vec<u64> {
    let b = fs::read(docs).unwrap();
    let mut starts: Vec<u64> = b[1024..]
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    f(&mut starts);
    let mut out = b[..1024].to_vec();
    for s in &starts {
        out.extend(s.to_le_bytes());
    }
    fs::write(docs, out).unwrap();
    starts
}

#[test]
fn document_starts_past_the_end_or_out_of_order_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        pack(
            &dir,
            opts(0.0, None, 1 << 20, Dtype::Uint16),
            &docs(20),
            true,
        );
        dir
    };
    let open_err = |dir: &Path| ShardSet::open(dir).err().expect("refused").to_string();

    // Past the end: the SFT loader used to panic slicing the mask (exit 101).
    let dir = fresh("past");
    let docs_file = dir.join("train_000000.docs");
    edit_starts(&docs_file, |s| s[3] = 1_000_000_000);
    let tokens = ShardSet::open(fresh("count")).unwrap().shards[0].len();
    let want = format!(
        "{}: document 3 starts at token 1000000000, past the end of the shard's {tokens} tokens",
        docs_file.display()
    );
    assert_eq!(open_err(&dir), want);
    assert!(
        verify(&dir, None).problems.contains(&want),
        "{:?}",
        verify(&dir, None).problems
    );

    // Not increasing: the loader used to make examples of other documents' tokens.
    let dir = fresh("order");
    let docs_file = dir.join("train_000000.docs");
    let s = edit_starts(&docs_file, |s| s.swap(3, 4));
    assert_eq!(
        open_err(&dir),
        format!(
            "{}: document 4 starts at token {}, not after document 3's start {}",
            docs_file.display(),
            s[4],
            s[3]
        )
    );

    // Not from 0.
    let dir = fresh("first");
    let docs_file = dir.join("train_000000.docs");
    edit_starts(&docs_file, |s| s[0] = 1);
    assert!(
        open_err(&dir).ends_with("document 0 starts at token 1: the first document starts at 0"),
        "{}",
        open_err(&dir)
    );
}

#[test]
fn ids_outside_the_vocabulary_are_found_with_their_shard_and_position() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    pack(
        &dir,
        opts(0.0, None, 1 << 20, Dtype::Uint32),
        &docs(20),
        false,
    );
    let set = ShardSet::open(&dir).unwrap();
    set.check_ids(VOCAB).unwrap();
    let shard = &set.shards[0];
    let toks = shard.tokens();
    let pos = (0..toks.len()).find(|&i| toks.get(i) >= 800).unwrap();
    let e = set.check_ids(800).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: token {pos} is id {}, not below the vocabulary size 800",
            shard.name(),
            toks.get(pos)
        )
    );
    // An llm.c file written by someone else: the same check, on the raw file.
    let bin = tmp.path().join("x_train.bin");
    let mut b = fs::read(dir.join("train_000000.bin")).unwrap();
    let at = 1024 + 4 * 7;
    b[at..at + 4].copy_from_slice(&70_000u32.to_le_bytes());
    fs::write(&bin, &b).unwrap();
    let e = ShardSet::open(&bin)
        .unwrap()
        .check_ids(VOCAB)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: token 7 is id 70000, not below the vocabulary size 1000",
            bin.display()
        )
    );
}

#[test]
fn verify_checks_the_tokenizer_and_that_files_stay_inside_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        pack(
            &dir,
            opts(0.0, None, 1 << 20, Dtype::Uint16),
            &docs(20),
            false,
        );
        dir
    };
    let problems = |dir: &Path| verify(dir, None).problems;
    assert_eq!(problems(&fresh("good")), Vec::<String>::new());

    let dir = fresh("no-tokenizer");
    fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert_eq!(
        problems(&dir),
        vec![format!(
            "{}: missing: the manifest names it as the tokenizer the ids came from",
            dir.join("tokenizer.json").display()
        )]
    );

    let dir = fresh("other-tokenizer");
    fs::copy(
        fixture("tokenizers/shakespeare-512/tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    let p = problems(&dir);
    assert!(
        p.len() == 1 && p[0].contains("tokenizer.json: checksum mismatch"),
        "{p:?}"
    );

    // A manifest naming a file in another directory: verify used to check that one.
    let edit = |dir: &Path, from: &str, to: &str| {
        let m = dir.join("manifest.json");
        let text = fs::read_to_string(&m).unwrap();
        assert!(text.contains(from));
        fs::write(&m, text.replace(from, to)).unwrap();
    };
    let good = tmp.path().join("good");
    let dir = fresh("parent");
    edit(&dir, "\"train_000000.bin\"", "\"../good/train_000000.bin\"");
    fs::remove_file(dir.join("train_000000.bin")).unwrap();
    let want = format!(
        "{}: shard \"../good/train_000000.bin\" is not a file name inside the directory",
        dir.join("manifest.json").display()
    );
    assert_eq!(problems(&dir), vec![want.clone()]);
    assert_eq!(ShardSet::open(&dir).err().unwrap().to_string(), want);

    let dir = fresh("absolute");
    let abs = good.join("tokenizer.json").display().to_string();
    edit(
        &dir,
        "\"file\": \"tokenizer.json\"",
        &format!("\"file\": {abs:?}"),
    );
    assert_eq!(
        problems(&dir),
        vec![format!(
            "{}: tokenizer {abs:?} is not a file name inside the directory",
            dir.join("manifest.json").display()
        )]
    );

    // A link out of the directory.
    #[cfg(unix)]
    {
        let dir = fresh("link");
        fs::remove_file(dir.join("tokenizer.json")).unwrap();
        std::os::unix::fs::symlink(good.join("tokenizer.json"), dir.join("tokenizer.json"))
            .unwrap();
        let p = problems(&dir);
        assert!(
            p.len() == 1 && p[0].contains("tokenizer.json: leads out of the directory, to "),
            "{p:?}"
        );
    }
}

/// Found by fuzzing (the shards target of fuzz/): a manifest whose split was "trai\n" gave an
/// error of two lines (serde quotes the string raw); wick's errors are one line.
#[test]
fn a_manifest_error_quoting_a_line_break_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    pack(&dir, opts(0.0, None, 1000, Dtype::Uint16), &docs(5), false);
    let path = dir.join("manifest.json");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replacen("\"split\": \"train\"", "\"split\": \"trai\\n\"", 1),
    )
    .unwrap();
    let err = ShardSet::open(&dir).err().unwrap().to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(
        err.contains("manifest.json: not a wick shard manifest: unknown variant `trai\\n`"),
        "{err}"
    );
    let report = verify(&dir, None);
    assert!(
        report.problems.iter().all(|p| !p.contains('\n')),
        "{report:?}"
    );
}
