//! Whole-example batches for supervised fine-tuning: packing, padding, masks, epochs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use wick_shard::{Dtype, EpochLoader, Examples, PackOptions, Packer, ShardSet, Split, PAD_SEGMENT};

const EOS: u32 = 999;

fn gpt2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tokenizers/gpt2/tokenizer.json")
}

/// Example d has 3 + d % 11 prompt-and-response tokens, id d * 20 + i (unique), the second
/// half trained on; pack appends EOS (trained on).
fn pack_examples(dir: &Path, n: u32, masks: bool) -> ShardSet {
    let o = PackOptions {
        shard_tokens: 64,
        dtype: Dtype::Uint16,
        val_fraction: 0.0,
        split_key: "id".into(),
        shuffle_seed: None,
        vocab_size: 1000,
        eos_id: EOS,
    };
    let mut p = Packer::create(dir, o, &gpt2(), "hash").unwrap();
    for d in 0..n {
        let len = 3 + d % 11;
        let ids: Vec<u32> = (0..len).map(|i| d * 20 + i).collect();
        let mask: Vec<u8> = (0..len).map(|i| u8::from(i >= len / 2)).collect();
        p.add(format!("{d}").as_bytes(), &ids, masks.then_some(&mask[..]))
            .unwrap();
    }
    p.finish().unwrap();
    ShardSet::open(dir).unwrap()
}

fn example_of(id: u32) -> Option<(u32, u32)> {
    (id != EOS).then_some((id / 20, id % 20))
}

/// Checks one row against the rules: tokens are whole examples (or a truncated last one) then
/// padding; weights are 1 exactly where input and target are in one example and the target's
/// mask (second half, or EOS) is 1.
fn check_row(tokens: &[u32], weights: &[f32], segments: &[u32]) -> Vec<u32> {
    let t = weights.len();
    assert_eq!(tokens.len(), t + 1);
    let mut seen = Vec::new();
    let mut j = 0;
    while j <= t {
        let Some((d, 0)) = example_of(tokens[j]) else {
            // padding to the end of the row
            assert!(tokens[j..].iter().all(|&x| x == EOS));
            for k in j..t {
                assert_eq!(segments[k], PAD_SEGMENT);
                assert_eq!(weights[k], 0.0);
            }
            break;
        };
        let len = 3 + d % 11;
        seen.push(d);
        let start = j;
        for i in 0..=len {
            if j > t {
                break; // truncated
            }
            let want = if i < len { d * 20 + i } else { EOS };
            assert_eq!(tokens[j], want, "example {d} token {i}");
            if j < t {
                assert_eq!(segments[j], segments[start], "segment of example {d}");
            }
            if j > start {
                let trained = i >= len / 2; // EOS (i == len) too
                assert_eq!(weights[j - 1], f32::from(u8::from(trained)), "{d}:{i}");
            }
            j += 1;
        }
        if j <= t && j > start {
            // the last input of the example must not predict the next one's first token
            assert_eq!(weights[j - 1], 0.0);
        }
    }
    seen
}

#[test]
fn packed_rows_hold_whole_examples_once_per_epoch_and_train_only_on_responses() {
    let tmp = tempfile::tempdir().unwrap();
    let set = pack_examples(&tmp.path().join("s"), 40, true);
    let ex = Examples::new(&set, Split::Train, EOS).unwrap();
    assert_eq!(ex.len(), 40);
    let t = 24;
    let plan = ex.plan(t, true, Some(7));
    let mut count = HashMap::new();
    for row in &plan {
        for &i in row {
            *count.entry(i).or_insert(0) += 1;
        }
    }
    assert_eq!(count.len(), 40);
    assert!(count.values().all(|&c| c == 1));
    // examples are 4..=14 tokens with EOS: packing puts several in a row
    assert!(plan.len() < 25, "{} rows", plan.len());
    let b = ex.batch(&plan, t, true);
    assert_eq!((b.b, b.t), (plan.len(), t));
    assert_eq!(b.examples, 40);
    assert_eq!(b.truncated, 0);
    let mut all = Vec::new();
    for r in 0..b.b {
        all.extend(check_row(
            &b.tokens[r * (t + 1)..][..t + 1],
            &b.weights[r * t..][..t],
            &b.segments[r * t..][..t],
        ));
    }
    all.sort();
    assert_eq!(all, (0..40).collect::<Vec<_>>());
    // Every trained target is one of the mask's 1s, none lost: per example len - len/2 + 1
    // (EOS) minus nothing, since the first token (mask 0) is never a target anyway.
    let want: f64 = (0..40u32)
        .map(|d| (3 + d % 11 - (3 + d % 11) / 2 + 1) as f64)
        .sum();
    assert_eq!(b.trained(), want);
}

#[test]
fn long_examples_are_truncated_and_unpacked_rows_pad_to_the_longest() {
    let tmp = tempfile::tempdir().unwrap();
    let set = pack_examples(&tmp.path().join("s"), 12, true);
    let ex = Examples::new(&set, Split::Train, EOS).unwrap();
    let t = 8; // rows of 9 tokens; examples 10 (d = 6) and longer get cut
    assert_eq!(ex.longer_than(t), 5);
    let plan = ex.plan(t, true, None);
    let b = ex.batch(&plan, t, true);
    assert_eq!(b.truncated, 5);
    for r in 0..b.b {
        check_row(
            &b.tokens[r * (t + 1)..][..t + 1],
            &b.weights[r * t..][..t],
            &b.segments[r * t..][..t],
        );
    }
    // Without packing: one example per row, as wide as the longest in the batch.
    let rows = ex.plan(100, false, None);
    assert_eq!(rows.len(), 12);
    let b = ex.batch(&rows[..3], 100, false); // examples 0..3: 3, 4, 5 tokens + EOS
    assert_eq!((b.b, b.t), (3, 5));
    for r in 0..3 {
        let seen = check_row(
            &b.tokens[r * 6..][..6],
            &b.weights[r * 5..][..5],
            &b.segments[r * 5..][..5],
        );
        assert_eq!(seen, vec![r as u32]);
    }
}

#[test]
fn epochs_reshuffle_and_a_seek_resumes_the_same_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let set = pack_examples(&tmp.path().join("s"), 40, true);
    let make = || {
        EpochLoader::new(
            Examples::new(&set, Split::Train, EOS).unwrap(),
            5,
            3,
            24,
            true,
        )
    };
    let mut a = make();
    let per_epoch = a.rows_per_epoch();
    let batches: Vec<_> = (0..12).map(|_| a.next_batch()).collect();
    assert!(
        a.epoch >= 1,
        "12 batches of 3 rows run past one epoch of {per_epoch} rows"
    );
    // Epoch 0 and epoch 1 see the examples in different orders.
    let ex = Examples::new(&set, Split::Train, EOS).unwrap();
    assert_ne!(ex.plan(24, true, Some(1)), ex.plan(24, true, Some(2)));
    // Resuming from (epoch, row) after batch 4 gives batches 5.. exactly.
    let mut b = make();
    for _ in 0..5 {
        b.next_batch();
    }
    let (epoch, row) = (b.epoch, b.row);
    let mut c = make();
    c.seek(epoch, row);
    for want in &batches[5..] {
        assert_eq!(&c.next_batch(), want);
    }
}

#[test]
fn shards_without_a_mask_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let set = pack_examples(&tmp.path().join("s"), 5, false);
    let err = Examples::new(&set, Split::Train, EOS)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no loss mask") && err.contains("--task sft"),
        "{err}"
    );
}

/// Found by fuzzing (the shards target of fuzz/): a damaged .mask with bytes other than 0 and 1
/// (pack writes only those; `pack verify` reports others) made token_counts count each byte's
/// value as that many trained tokens (255 for 0xFF), more tokens than the examples have, while
/// the batches train only where the mask is 1. The count now agrees with the batches.
#[test]
fn a_damaged_mask_counts_as_the_batches_train() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let set = pack_examples(&dir, 6, true);
    assert_eq!(set.split(Split::Train).len(), 1);
    let mask_file = set.split(Split::Train)[0].path.with_extension("mask");
    drop(set);
    let mut bytes = std::fs::read(&mask_file).unwrap();
    for (i, b) in bytes[1024..].iter_mut().enumerate() {
        if i % 3 == 0 {
            *b = [0xFF, 2, 1][i % 9 / 3];
        }
    }
    std::fs::write(&mask_file, &bytes).unwrap();
    let set = ShardSet::open(&dir).unwrap();
    let ex = Examples::new(&set, Split::Train, EOS).unwrap();
    let (all, trained) = ex.token_counts();
    assert!(trained <= all, "{trained} trained of {all} tokens");
    // Every example whole, one per row: the batch trains on each mask-1 token but the first
    // of its example (nothing predicts that one).
    let shard = set.split(Split::Train)[0];
    let mask = shard.mask().unwrap();
    let firsts = shard
        .doc_starts()
        .unwrap()
        .iter()
        .filter(|&&s| mask[s as usize] == 1)
        .count() as u64;
    let rows = ex.plan(64, false, None);
    let batch = ex.batch(&rows, 64, false);
    assert_eq!(batch.truncated, 0);
    let weighted = batch.weights.iter().filter(|&&w| w == 1.0).count() as u64;
    assert_eq!(trained, weighted + firsts);
}
