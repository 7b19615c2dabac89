//! What the ppo-step tests share.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wick_testkit::{run, sibling_bin, tiny_base};

const PPO: &str = env!("CARGO_BIN_EXE_ppo-step");

/// A tiny model pretrained for a few steps on Shakespeare, and 8 sampled rollouts of it with
/// rewards +1 (even lines) and -1 (odd lines).
pub fn setup(tmp: &Path) -> (String, PathBuf) {
    let model = PathBuf::from(tiny_base(&sibling_bin(PPO, "train"), tmp, 64));
    let prompts = "ROMEO:\nJULIET:\nKING:\nHAMLET:\nFirst Citizen:\nO, \nThe \nWhat \n";
    let g = run(
        &sibling_bin(PPO, "generate"),
        &[
            "--model",
            model.to_str().unwrap(),
            "--max-new-tokens",
            "12",
            "--seed",
            "3",
            "-q",
        ],
        prompts.as_bytes(),
    );
    assert_eq!(g.code, 0, "{}", g.stderr);
    let scored: Vec<String> = g
        .stdout
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["reward"] = if i % 2 == 0 { 1.0 } else { -1.0 }.into();
            v.to_string()
        })
        .collect();
    let file = tmp.join("scored.jsonl");
    std::fs::write(&file, scored.join("\n") + "\n").unwrap();
    (model.to_str().unwrap().to_string(), file)
}
