//! Where train writes, and what it never overwrites: folders that are not training runs,
//! `/`, the current and the home folder; a run folder in use by another process; and a run
//! that meets a NaN stops with a checkpoint it names, which exists and holds finite weights.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use wick_testkit::{files_under, run, run_env, shakespeare_shards, testdata};

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

fn args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--data",
        data,
        "--config",
        "tiny",
        "-o",
        out,
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--eval-interval",
        "0",
        "--threads",
        "1",
        "--quiet",
    ];
    a.extend(extra);
    a
}

fn all_finite(dir: &Path, file: &str) -> bool {
    let t = candle_core::safetensors::load(dir.join(file), &candle_core::Device::Cpu).unwrap();
    t.values().all(|t| {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|x| x.is_finite())
    })
}

#[test]
fn folders_that_are_not_training_runs_are_refused_and_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    // A Hugging Face model folder: today's main overwrote its weights.
    let hf = tmp.path().join("hf");
    std::fs::create_dir(&hf).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(testdata("models/llama-gqa").join(f), hf.join(f)).unwrap();
    }
    let before = files_under(&hf);
    let r = run(
        TRAIN,
        &args(d, hf.to_str().unwrap(), &["--max-steps", "1"]),
        b"",
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not written by wick"), "{}", r.stderr);
    assert_eq!(files_under(&hf), before);
    // The file system's root, the current folder and the home folder (today's main wrote
    // config.json and model.safetensors into /).
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    for (out, why) in [
        ("/", "root"),
        (".", "current folder"),
        (home.to_str().unwrap(), "home folder"),
    ] {
        let r = run_env(
            TRAIN,
            &args(d, out, &["--max-steps", "1"]),
            &[("HOME", home.to_str().unwrap())],
            b"",
        );
        assert_eq!(r.code, 1, "{out}");
        assert!(r.stderr.contains(why), "{out}: {}", r.stderr);
    }
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
    // A finished run refuses a fresh start over it (that would discard its checkpoint).
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let r = run(TRAIN, &args(d, o, &["--max-steps", "1"]), b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(TRAIN, &args(d, o, &["--max-steps", "1"]), b"");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("use --resume"), "{}", r.stderr);
}

#[test]
fn a_run_folder_in_use_is_refused_to_a_second_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let mut first = Command::new(TRAIN)
        .args(args(
            d,
            o,
            &["--max-steps", "1000000", "--checkpoint-interval", "1"],
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !out.join("checkpoint/state.json").is_file() {
        assert!(
            std::time::Instant::now() < deadline,
            "training never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let resumed = run(TRAIN, &["--data", d, "--resume", o, "--quiet"], b"");
    let restarted = run(TRAIN, &args(d, o, &["--max-steps", "5"]), b"");
    std::process::Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .unwrap();
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(1), "stopped by Ctrl-C");
    assert_eq!(resumed.code, 1);
    assert!(
        resumed
            .stderr
            .contains(&format!("in use by train (pid {})", first.id())),
        "{}",
        resumed.stderr
    );
    assert_eq!(restarted.code, 1);
    assert!(
        restarted.stderr.contains("in use by train") || restarted.stderr.contains("use --resume"),
        "{}",
        restarted.stderr
    );
    // The log has one line per step, none interleaved from the refused processes.
    let steps: Vec<u64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());
    // Once the first has stopped, the run resumes.
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--resume",
            o,
            "--max-steps",
            &(steps.len() as u64 + 1).to_string(),
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_nan_stops_the_run_at_a_named_finite_checkpoint_and_can_be_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    // A learning rate this high overflows within a few steps.
    let extra = [
        "--max-steps",
        "30",
        "--lr",
        "1e3",
        "--warmup",
        "0",
        "--checkpoint-interval",
        "100",
    ];
    let r = run(TRAIN, &args(d, o, &extra), b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    let named = r
        .stderr
        .split("The last good checkpoint (step ")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", r.stderr));
    let step: u64 = named.split(',').next().unwrap().parse().unwrap();
    let dir = named
        .split(" is ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    assert_eq!(Path::new(dir), out.join("checkpoint"), "{}", r.stderr);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"].as_u64(), Some(step));
    for (folder, file) in [
        (out.join("checkpoint"), "model.safetensors"),
        (out.join("checkpoint"), "optimizer.safetensors"),
        (out.clone(), "model.safetensors"),
    ] {
        assert!(all_finite(&folder, file), "{}/{file}", folder.display());
    }
    wick_model::Llama::load(&out).unwrap();

    // Resumed with a budget of skips, the bad steps are logged and passed over.
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--resume",
            o,
            "--skip-nonfinite",
            "2",
            "--quiet",
        ],
        b"",
    );
    let m: Vec<Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let skipped: Vec<&Value> = m.iter().filter(|v| v["skipped"] == true).collect();
    assert!(!skipped.is_empty() && skipped.len() <= 2, "{m:?}");
    assert_eq!(skipped[0]["step"].as_u64(), Some(step + 1));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint/state.json")).unwrap())
            .unwrap();
    assert!(state["skipped"].as_u64().unwrap() >= 1, "{state}");
    assert!(all_finite(&out.join("checkpoint"), "model.safetensors"));
    if r.code != 0 {
        assert!(
            r.stderr.contains("The last good checkpoint"),
            "{}",
            r.stderr
        );
    }
}
