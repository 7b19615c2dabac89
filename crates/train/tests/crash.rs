//! A kill at any instant leaves a run that `--resume` finishes exactly as if nothing had
//! happened: the process is killed (SIGKILL, through wick_io's fault points) at every write,
//! rename and unlink of a short run in turn, resumed, and the run folder compared file by
//! file with an uninterrupted run's.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use wick_testkit::{fault_points, files_under, run, run_killed_at, shakespeare_shards};

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

fn args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
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
        "--max-steps",
        "3",
        "--checkpoint-interval",
        "2",
        "--eval-interval",
        "2",
        "--eval-batches",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]
}

/// The run folder's files, less what legitimately differs between two runs: the lock's pid,
/// and times in the metrics and the state.
fn comparable(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = files_under(dir);
    files.remove(".lock");
    let strip = |bytes: &[u8], keys: &[&str]| -> Vec<u8> {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let mut v: Value = serde_json::from_str(line).unwrap();
            for k in keys {
                v.as_object_mut().unwrap().remove(*k);
            }
            out.push_str(&v.to_string());
            out.push('\n');
        }
        out.into_bytes()
    };
    let m = strip(
        &files["metrics.jsonl"],
        &["tokens_per_s", "step_ms", "elapsed_s"],
    );
    files.insert("metrics.jsonl".into(), m);
    let state = files["checkpoint/state.json"].clone();
    let state: Value = serde_json::from_slice(&state).unwrap();
    let mut state = state;
    state.as_object_mut().unwrap().remove("elapsed_s");
    files.insert(
        "checkpoint/state.json".into(),
        state.to_string().into_bytes(),
    );
    files
}

fn differences(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| match (a.contains_key(n), b.contains_key(n)) {
            (true, true) => format!("{n} differs"),
            (true, false) => format!("{n} missing"),
            _ => format!("{n} left over"),
        })
        .collect()
}

/// Kills `train ARGS -o OUT` at each fault point of an uninterrupted run in turn, resumes it
/// (or, killed before the run recorded its start, runs it again), and compares the folder with
/// the uninterrupted run's. Returns the number of points.
fn kill_everywhere(tmp: &Path, data: &str, args: &dyn Fn(&str) -> Vec<String>) -> usize {
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let reference = tmp.join("reference");
    let a = strs(&args(reference.to_str().unwrap()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let points = fault_points(TRAIN, &a, b"");
    let expected = comparable(&reference);
    assert!(
        points.iter().filter(|p| p.contains("checkpoint")).count() >= 20,
        "the checkpoints' writes are among the points: {points:#?}"
    );
    for (i, what) in points.iter().enumerate() {
        let n = i + 1;
        let out = tmp.join(format!("killed-{n}"));
        let o = out.to_str().unwrap();
        let a = args(o);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run_killed_at(TRAIN, &a, n, b"");
        let r = run(TRAIN, &["--data", data, "--resume", o, "--quiet"], b"");
        if r.code != 0 && r.stderr.contains("had not started") {
            // Killed before the run recorded how it started: the same command starts it.
            let again = run(TRAIN, &a, b"");
            assert_eq!(again.code, 0, "killed at {n} ({what}): {}", again.stderr);
        } else {
            assert_eq!(r.code, 0, "killed at {n} ({what}): {}", r.stderr);
        }
        let diff = differences(&expected, &comparable(&out));
        assert!(diff.is_empty(), "killed at {n} ({what}): {diff:?}");
        let beside: Vec<String> = std::fs::read_dir(tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(beside.is_empty(), "killed at {n} ({what}): {beside:?}");
        std::fs::remove_dir_all(&out).unwrap();
    }
    points.len()
}

#[test]
fn a_kill_at_any_write_rename_or_unlink_resumes_to_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    let runs = tmp.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let n = kill_everywhere(&runs, d, &|o| {
        args(d, o).into_iter().map(String::from).collect()
    });
    assert!(n > 60, "{n} points");
}

/// The same for a LoRA fine-tune, whose checkpoints and top-level files are PEFT adapter files
/// beside a base that stays where it is.
#[test]
fn a_killed_lora_sft_run_resumes_to_the_same_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let base = wick_testkit::tiny_base(TRAIN, tmp.path(), 64);
    let data = wick_testkit::sft_shards(&tmp.path().join("sft"));
    let d = data.to_str().unwrap();
    let runs = tmp.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let n = kill_everywhere(&runs, d, &|o| {
        [
            "--task",
            "sft",
            "--method",
            "lora",
            "--init",
            &base,
            "--data",
            d,
            "-o",
            o,
            "--batch-size",
            "2",
            "--seq-len",
            "32",
            "--max-steps",
            "3",
            "--checkpoint-interval",
            "2",
            "--eval-interval",
            "2",
            "--eval-batches",
            "1",
            "--threads",
            "1",
            "--quiet",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    });
    assert!(n > 60, "{n} points");
}
