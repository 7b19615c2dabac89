//! `train --task sft` on the real SFT task of testdata/sft: packing several examples per row
//! with block-diagonal attention computes exactly what one example per row does, the loss
//! counts only response tokens, runs are sized in epochs, LoRA SFT learns and resumes exactly,
//! and data without a loss mask is refused before anything is written.

use std::path::Path;

use serde_json::Value;
use wick_testkit::{run, sft_shards, shakespeare_shards};

mod common;

use common::metrics;

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

fn train(args: &[&str]) -> String {
    let r = run(TRAIN, args, b"");
    assert_eq!(r.code, 0, "train {args:?}: {}", r.stderr);
    r.stderr
}

fn first_val(dir: &Path) -> f64 {
    metrics(dir)[0]["val_loss"].as_f64().unwrap()
}

fn losses(m: &[Value]) -> Vec<(u64, String)> {
    m.iter()
        .filter_map(|v| Some((v["step"].as_u64()?, format!("{}", v.get("loss")?))))
        .collect()
}

/// A tiny base model (the tiny preset with a 256-token context, so that short examples pack
/// several to a row) pretrained for a few steps on Shakespeare (same tokenizer as the SFT
/// shards).
fn base(tmp: &Path) -> String {
    let data = shakespeare_shards(&tmp.join("pre"));
    let out = tmp.join("base");
    let cfg = tmp.join("tiny128.json");
    std::fs::write(&cfg, r#"{"vocab_size": 512, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 256}"#).unwrap();
    train(&[
        "--data",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-steps",
        "20",
        "--eval-interval",
        "0",
        "--lr",
        "3e-3",
        "--warmup",
        "2",
        "--batch-size",
        "8",
        "--seq-len",
        "32",
        "--threads",
        "1",
        "-q",
    ]);
    out.to_str().unwrap().to_string()
}

#[test]
fn packed_rows_score_the_same_as_one_example_per_row() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let sft = sft_shards(&tmp.path().join("sft"));
    let step0 = |out: &str, extra: &[&str]| -> (f64, String) {
        let o = tmp.path().join(out);
        let mut a = vec![
            "--task",
            "sft",
            "--init",
            &base,
            "--data",
            sft.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
            "--max-steps",
            "1",
            "--eval-interval",
            "1",
            "--eval-batches",
            "1000",
            "--batch-size",
            "4",
            "--seq-len",
            "256",
            "--threads",
            "1",
        ];
        a.extend(extra);
        let stderr = train(&a);
        (first_val(&o), stderr)
    };
    // Every val example, response tokens only: packed (several examples a row, block-diagonal
    // attention) and one per row (padded) must agree up to float rounding. Without the
    // block-diagonal mask each packed example would see the ones before it and score
    // differently.
    let (packed, said) = step0("packed", &[]);
    let (single, _) = step0("single", &["--no-packing"]);
    // "train: sft: N examples (...), R rows of 257 tokens per epoch (packed)": several a row.
    let num = |before: &str| -> f64 {
        let head = said.split(before).next().unwrap();
        head.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (examples, rows) = (num(" examples ("), num(" rows of 257"));
    assert!(
        rows < 0.6 * examples,
        "{rows} rows for {examples} examples: {said}"
    );
    assert!(
        (packed - single).abs() < 1e-5 * single,
        "packed {packed} vs one per row {single}"
    );
    assert!(packed > 0.5 && packed < 10.0, "{packed}");
}

#[test]
fn lora_sft_learns_in_epochs_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let sft = sft_shards(&tmp.path().join("sft"));
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--task",
            "sft",
            "--method",
            "lora",
            "--init",
            &base,
            "--data",
            sft.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--lr",
            "3e-3",
            "--lora-r",
            "4",
            "--lora-targets",
            "q,v,up,down",
            "--batch-size",
            "16",
            "--seq-len",
            "256",
            "--eval-batches",
            "8",
            "--threads",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let full = tmp.path().join("full");
    let a = args(&full, &[]);
    let stderr = train(&a.iter().map(String::as_str).collect::<Vec<_>>());
    // "N examples ..., R rows of 257 tokens per epoch": 2 epochs of R rows in batches of 16.
    let rows: f64 = stderr
        .split(" rows of 257 tokens per epoch")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {stderr}"));
    let m = metrics(&full);
    let last = m.last().unwrap();
    assert_eq!(
        last["step"].as_u64().unwrap(),
        (2.0 * rows / 16.0).ceil() as u64
    );
    let epoch = last["epoch"].as_f64().unwrap();
    // (Later epochs pack into a few more or fewer rows than the first.)
    assert!((1.95..2.05).contains(&epoch), "epoch {epoch}");
    // Evaluated once per epoch (and at step 0); the response loss falls.
    let vals: Vec<f64> = m
        .iter()
        .filter_map(|v| v.get("val_loss")?.as_f64())
        .collect();
    assert_eq!(vals.len(), 3, "{vals:?}");
    assert!(vals[2] < vals[0] - 0.1, "val loss {vals:?}");
    // Only the adapter was written.
    assert!(full.join("adapter_model.safetensors").exists());
    assert!(!full.join("model.safetensors").exists());

    // Stopped in the middle of the first epoch, resumed: the same losses bit for bit.
    let part = tmp.path().join("part");
    let mut a = args(&part, &["--stop-at", "5"]);
    a.push("-q".into());
    train(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let p = part.to_str().unwrap();
    train(&["--resume", p, "--data", sft.to_str().unwrap(), "-q"]);
    assert_eq!(losses(&metrics(&part)), losses(&m));
}

#[test]
fn sft_refuses_data_without_a_loss_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let pre = tmp.path().join("pre");
    let out = tmp.path().join("out");
    let r = run(
        TRAIN,
        &[
            "--task",
            "sft",
            "--init",
            &base,
            "--data",
            pre.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no loss mask"), "{}", r.stderr);
    assert!(!out.exists(), "nothing written");
}
