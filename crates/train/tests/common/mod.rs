//! What the train tests share.

use std::path::Path;

use serde_json::Value;

/// The run's metrics.jsonl, one value per line.
pub fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
