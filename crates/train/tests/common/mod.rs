//! What the train tests share.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

use serde_json::Value;
use wick_testkit::run;

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

/// A tiny base model with a 256-token context (so that short examples pack several to a row),
/// pretrained for a few steps on Shakespeare (same tokenizer as the SFT shards).
pub fn base(tmp: &Path) -> String {
    wick_testkit::tiny_base(TRAIN, tmp, 256)
}

/// (step, loss as written) of every training line: equal lists mean the same run bit for bit.
pub fn losses(m: &[Value]) -> Vec<(u64, String)> {
    m.iter()
        .filter_map(|v| Some((v["step"].as_u64()?, format!("{}", v.get("loss")?))))
        .collect()
}
