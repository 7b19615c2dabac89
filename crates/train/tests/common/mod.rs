//! What the train tests share.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

use serde_json::Value;
use wick_testkit::{run, shakespeare_shards};

/// The run's metrics.jsonl, one value per line.
pub fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub const TRAIN: &str = env!("CARGO_BIN_EXE_train");

pub fn train(args: &[&str]) -> String {
    let r = run(TRAIN, args, b"");
    assert_eq!(r.code, 0, "train {args:?}: {}", r.stderr);
    r.stderr
}

/// A tiny base model (the tiny preset with a 256-token context, so that short examples pack
/// several to a row) pretrained for a few steps on Shakespeare (same tokenizer as the SFT
/// shards).
pub fn base(tmp: &Path) -> String {
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

/// (step, loss as written) of every training line: equal lists mean the same run bit for bit.
pub fn losses(m: &[Value]) -> Vec<(u64, String)> {
    m.iter()
        .filter_map(|v| Some((v["step"].as_u64()?, format!("{}", v.get("loss")?))))
        .collect()
}
