//! `train --task reward` and `--task dpo` on the real preference task of testdata/pref: the
//! reward model is written as a Hugging Face sequence classifier whose scores, read back by
//! rm-score, rank the val pairs exactly as training's val accuracy says; LoRA reward models
//! carry their head in the adapter and are folded for rm-score; DPO starts at loss ln 2 (the
//! policy is its reference) and learns; bad pairs and mismatched references are refused
//! before anything is written.

use std::path::Path;

use serde_json::Value;
use wick_testkit::{run, sibling_bin, testdata};

mod common;

use common::{base, losses, metrics, train, TRAIN};

/// The first `n` pairs of a testdata/pref file.
fn pairs(tmp: &Path, name: &str, n: usize) -> String {
    let text = std::fs::read_to_string(testdata(&format!("pref/{name}.jsonl"))).unwrap();
    let some: Vec<&str> = text.lines().take(n).collect();
    let p = tmp.join(format!("{name}.jsonl"));
    std::fs::write(&p, some.join("\n") + "\n").unwrap();
    p.to_str().unwrap().to_string()
}

fn common_args<'a>(init: &'a str, data: &'a str, val: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "--init",
        init,
        "--data",
        data,
        "--val",
        val,
        "-o",
        out,
        "--batch-size",
        "8",
        "--threads",
        "1",
        "-q",
    ]
}

/// rm-score's rewards of the chosen and rejected side of every pair in `file`.
fn rm_scores(model: &str, file: &str) -> Vec<(f64, f64)> {
    let mut sides = String::new();
    for line in std::fs::read_to_string(file).unwrap().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        for side in ["chosen", "rejected"] {
            sides += &serde_json::json!({"prompt": r["prompt"], "response": r[side]}).to_string();
            sides.push('\n');
        }
    }
    let rm_score = sibling_bin(TRAIN, "rm-score");
    let out = run(&rm_score, &["--model", model, "-q"], sides.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rewards = wick_testkit::numbers(&out.stdout, "reward");
    rewards.chunks(2).map(|c| (c[0], c[1])).collect()
}

fn accuracy(scores: &[(f64, f64)]) -> f64 {
    scores.iter().filter(|(c, r)| c > r).count() as f64 / scores.len() as f64
}

#[test]
fn a_reward_model_learns_and_rm_score_reads_it_as_training_did() {
    let tmp = tempfile::tempdir().unwrap();
    let init = base(tmp.path());
    let data = pairs(tmp.path(), "train", 160);
    let val = pairs(tmp.path(), "heldout", 40);
    let out = tmp.path().join("rm");
    let o = out.to_str().unwrap();
    let mut a = common_args(&init, &data, &val, o);
    a.extend(["--task", "reward", "--epochs", "3", "--lr", "3e-3"]);
    train(&a);

    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(config["num_labels"], 1);
    assert!(config["pad_token_id"].is_u64(), "{config}");
    let w =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(w["score.weight"].dims(), [1, 16]);
    assert!(!w.contains_key("lm_head.weight"));

    let m = metrics(&out);
    let (first, last) = (&m[0], m.last().unwrap());
    assert!(
        last["val_loss"].as_f64().unwrap() < first["val_loss"].as_f64().unwrap() - 0.005
            && last["val_accuracy"].as_f64().unwrap() > first["val_accuracy"].as_f64().unwrap(),
        "held-out Bradley-Terry loss did not fall: {first} -> {last}"
    );
    // The score training compared is the one rm-score reads: same pairs, same ranking.
    let scores = rm_scores(o, &val);
    assert_eq!(accuracy(&scores), last["val_accuracy"].as_f64().unwrap());
    let margin: f64 = scores.iter().map(|(c, r)| c - r).sum::<f64>() / scores.len() as f64;
    assert!((margin - last["val_margin"].as_f64().unwrap()).abs() < 1e-4);
}

#[test]
fn a_lora_reward_model_trains_its_head_and_is_folded_for_rm_score() {
    let tmp = tempfile::tempdir().unwrap();
    let init = base(tmp.path());
    let data = pairs(tmp.path(), "train", 48);
    let val = pairs(tmp.path(), "heldout", 16);
    let out = tmp.path().join("rm-lora");
    let o = out.to_str().unwrap();
    let mut a = common_args(&init, &data, &val, o);
    a.extend(["--task", "reward", "--method", "lora", "--lr", "1e-3"]);
    train(&a);
    let adapter: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(adapter["task_type"], "SEQ_CLS");
    assert_eq!(adapter["modules_to_save"][0], "score");
    let t = candle_core::safetensors::load(
        out.join("adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(t["base_model.model.score.weight"].dims(), [1, 16]);
    // The base stays as it was; the folded classifier beside the adapter scores like training.
    assert!(!candle_core::safetensors::load(
        Path::new(&init).join("model.safetensors"),
        &candle_core::Device::Cpu
    )
    .unwrap()
    .contains_key("score.weight"));
    let m = metrics(&out);
    let last = m.last().unwrap().clone();
    let scores = rm_scores(o, &val);
    assert_eq!(accuracy(&scores), last["val_accuracy"].as_f64().unwrap());

    // Stopped after 3 steps and resumed (adapter and head from the checkpoint): the same run.
    let part = tmp.path().join("part");
    let p = part.to_str().unwrap();
    let mut a = common_args(&init, &data, &val, p);
    a.extend([
        "--task",
        "reward",
        "--method",
        "lora",
        "--lr",
        "1e-3",
        "--stop-at",
        "3",
    ]);
    train(&a);
    train(&["--resume", p, "--data", &data, "-q"]);
    assert_eq!(losses(&metrics(&part)), losses(&m));
    assert_eq!(rm_scores(p, &val), scores);
}

#[test]
fn dpo_starts_at_ln2_against_itself_and_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let init = base(tmp.path());
    let data = pairs(tmp.path(), "train", 160);
    let out = tmp.path().join("dpo");
    let o = out.to_str().unwrap();
    let mut a = common_args(&init, &data, &data, o);
    a.extend([
        "--task", "dpo", "--ref", &init, "--epochs", "2", "--lr", "1e-3",
    ]);
    train(&a);
    let m = metrics(&out);
    // Policy = reference: every implicit reward is 0, the loss -log sigmoid(0).
    assert!((m[0]["val_loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-6);
    assert_eq!(m[0]["val_accuracy"].as_f64().unwrap(), 0.0);
    let last = m.last().unwrap();
    assert!(
        last["val_loss"].as_f64().unwrap() < 0.6,
        "DPO did not learn its own training pairs: {last}"
    );
    assert!(last["val_accuracy"].as_f64().unwrap() > 0.7, "{last}");
    assert!(last["val_margin"].as_f64().unwrap() > 0.0, "{last}");

    // Stopped and resumed (the reference log-probs recomputed from the saved --ref): the same
    // run bit for bit (on as many threads, as for pretraining: the summation order of candle's
    // matmul depends on the thread count, and with another count the losses move by ~1e-7).
    let part = tmp.path().join("part");
    let p = part.to_str().unwrap();
    let mut a = common_args(&init, &data, &data, p);
    a.extend([
        "--task",
        "dpo",
        "--ref",
        &init,
        "--epochs",
        "2",
        "--lr",
        "1e-3",
        "--stop-at",
        "7",
    ]);
    train(&a);
    train(&["--resume", p, "--data", &data, "--threads", "1", "-q"]);
    assert_eq!(losses(&metrics(&part)), losses(&m));
}

#[test]
fn bad_pairs_and_mismatched_references_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let init = base(tmp.path());
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"prompt\": \"a\", \"chosen\": \"b\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("never");
    let b = bad.to_str().unwrap();
    let r = run(
        TRAIN,
        &[
            "--task",
            "reward",
            "--init",
            &init,
            "--data",
            b,
            "-o",
            out.to_str().unwrap(),
            "-q",
        ],
        b"",
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("bad.jsonl:2") && r.stderr.contains("\"rejected\""),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "nothing may be written for bad input");

    // Houlsby adapters cannot become the classifier folder rm-score loads.
    let data = pairs(tmp.path(), "train", 8);
    let r = run(
        TRAIN,
        &[
            "--task",
            "reward",
            "--method",
            "adapter",
            "--init",
            &init,
            "--data",
            &data,
            "-o",
            out.to_str().unwrap(),
            "-q",
        ],
        b"",
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("full or lora"), "{}", r.stderr);
    assert!(!out.exists());

    // A reference with another vocabulary.
    let other = tmp.path().join("other");
    wick_testkit::with_vocab(Path::new(&init), &other, 600);

    let r = run(
        TRAIN,
        &[
            "--task",
            "dpo",
            "--init",
            &init,
            "--ref",
            other.to_str().unwrap(),
            "--data",
            &data,
            "-o",
            out.to_str().unwrap(),
            "-q",
        ],
        b"",
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("vocabulary"), "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn skip_invalid_sets_bad_pairs_aside_and_says_how_many() {
    let tmp = tempfile::tempdir().unwrap();
    let init = base(tmp.path());
    let data = pairs(tmp.path(), "train", 8);
    let mut text = std::fs::read_to_string(&data).unwrap();
    text.insert_str(0, "{\"prompt\": \"a\", \"chosen\": \"b\"}\nnot json\n");
    std::fs::write(&data, text).unwrap();
    let out = tmp.path().join("rm");
    let args = |skip: bool| {
        let mut a = vec![
            "--task",
            "reward",
            "--model",
            &init,
            "--data",
            &data,
            "--max-steps",
            "1",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "-o",
            out.to_str().unwrap(),
        ];
        if skip {
            a.push("--skip-invalid");
        }
        a
    };
    let r = run(TRAIN, &args(false), b"");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("train.jsonl:1"), "{}", r.stderr);
    assert!(!out.exists());
    let r = run(TRAIN, &args(true), b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("train.jsonl:1") && r.stderr.contains("train.jsonl:2"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("2 invalid pairs skipped"), "{}", r.stderr);
    assert!(out.join("model.safetensors").exists());
}
