#![cfg(feature = "model")]
//! `eval --task choice` against log-likelihoods computed with transformers
//! (testdata/eval/choice/, made by scripts/gen_choice_fixture.py), and its input errors.

use serde_json::Value;
use wick_testkit::{run, testdata};

const EVAL: &str = env!("CARGO_BIN_EXE_eval");

fn model() -> String {
    testdata("eval/choice/model").to_str().unwrap().to_string()
}

fn expected() -> Value {
    let text = std::fs::read_to_string(testdata("eval/choice/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn logliks_equal_transformers() {
    let want = expected();
    let want_records = want["records"].as_array().unwrap();
    let data = testdata("eval/choice/choice.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let report_path = tmp.path().join("report.json");
    let m = model();
    // The default batch and one sequence per pass: padding must not change a score.
    for batch in ["16", "1", "3"] {
        let r = run(
            EVAL,
            &[
                "--task",
                "choice",
                "--model",
                &m,
                "--per-record",
                "--report",
                report_path.to_str().unwrap(),
                "--batch-size",
                batch,
                "--threads",
                "1",
                "--quiet",
                data.to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let got = lines(&r.stdout);
        assert_eq!(got.len(), want_records.len());
        let mut max_diff = 0f64;
        for (g, w) in got.iter().zip(want_records) {
            assert_eq!(g["id"], w["id"], "records come back in order");
            let gl = g["logliks"].as_array().unwrap();
            let wl = w["logliks"].as_array().unwrap();
            assert_eq!(gl.len(), wl.len(), "{}", w["id"]);
            for (a, b) in gl.iter().zip(wl) {
                let d = (a.as_f64().unwrap() - b.as_f64().unwrap()).abs();
                max_diff = max_diff.max(d);
                assert!(
                    d < 1e-4,
                    "record {}: loglik {a} vs transformers {b}",
                    w["id"]
                );
            }
            assert_eq!(g["pred"], w["pred"], "record {}", w["id"]);
            assert_eq!(g["pred_norm"], w["pred_norm"], "record {}", w["id"]);
            let label = w["label"].as_u64().unwrap();
            assert_eq!(g["correct"], Value::Bool(w["pred"] == label), "{}", w["id"]);
            assert_eq!(
                g["correct_norm"],
                Value::Bool(w["pred_norm"] == label),
                "{}",
                w["id"]
            );
            // The record itself comes back, the label as it was written.
            assert!(g["context"].is_string() && g["endings"].is_array());
        }
        eprintln!("batch {batch}: max |loglik - transformers| = {max_diff:e}");
        let report = read_json(&report_path);
        assert_eq!(report["task"], "choice");
        assert_eq!(report["records"], want_records.len());
        assert_eq!(report["labelled"], want["labelled"]);
        assert_eq!(report["sequences"], 4 * want_records.len());
        let acc = report["acc"].as_f64().unwrap();
        let acc_norm = report["acc_norm"].as_f64().unwrap();
        assert!((acc - want["acc"].as_f64().unwrap()).abs() < 1e-12, "{acc}");
        assert!(
            (acc_norm - want["acc_norm"].as_f64().unwrap()).abs() < 1e-12,
            "{acc_norm}"
        );
    }

    // Without --per-record the report alone is on stdout.
    let r = run(
        EVAL,
        &["--task", "choice", "--model", &m, "--quiet"],
        &std::fs::read(&data).unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["acc"], want["acc"]);
    assert_eq!(report["acc_norm"], want["acc_norm"]);
}

/// Runs `eval --task choice` on `jsonl` written to a file; returns (code, stdout, stderr, path).
fn run_file(jsonl: &str, extra: &[&str]) -> (i32, String, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("in.jsonl");
    std::fs::write(&path, jsonl).unwrap();
    let p = path.to_str().unwrap().to_string();
    let m = model();
    let mut args = vec!["--task", "choice", "--model", &m, "--quiet"];
    args.extend_from_slice(extra);
    args.push(&p);
    let (code, out, err) = run(EVAL, &args, b"").parts();
    (code, out, err, p)
}

#[test]
fn one_ending_names_file_and_line() {
    let (code, _, err, path) = run_file(
        "{\"context\": \"to be\", \"endings\": [\"or not\", \"to sleep\"], \"label\": 0}\n\
         {\"context\": \"to be\", \"endings\": [\"or not\"], \"label\": 0}\n",
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{path}:2:")), "{err}");
    assert!(err.contains("two endings"), "{err}");
}

#[test]
fn label_out_of_range_names_the_field() {
    for label in ["4", "\"7\"", "-1", "\"two\"", "1.5"] {
        let (code, _, err, path) = run_file(
            &format!(
                "{{\"context\": \"to be\", \"endings\": [\"a\", \"b\", \"c\", \"d\"], \"label\": {label}}}\n"
            ),
            &[],
        );
        assert_eq!(code, 1, "label {label}: {err}");
        assert!(err.contains(&format!("{path}:1:")), "{err}");
        assert!(err.contains("\"label\""), "{err}");
    }
    // --label-field names another field, and the message names it.
    let (code, _, err, _) = run_file(
        "{\"q\": \"to be\", \"endings\": [\"a\", \"b\"], \"answer\": 2}\n",
        &["--context-field", "q", "--label-field", "answer"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("\"answer\""), "{err}");
}

#[test]
fn needs_a_model() {
    let r = run(
        EVAL,
        &["--task", "choice"],
        b"{\"context\": \"a\", \"endings\": [\"b\", \"c\"]}\n",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--model"), "{}", r.stderr);
    // And --model is refused by the tasks that do not use it.
    let m = model();
    let r = run(EVAL, &["--task", "qa", "--model", &m], b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--model"), "{}", r.stderr);
}

#[test]
fn no_label_scores_without_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let report_path = tmp.path().join("report.json");
    let (code, out, err, _) = run_file(
        "{\"context\": \"to be, or not to be,\", \"endings\": [\"that is the question:\", \"what a piece of work is a man\", \"the rest is silence.\"]}\n\
         {\"context\": \"fair is foul, \", \"endings\": [\"and foul is fair:\", \"when shall we three meet again\"], \"label\": null}\n",
        &["--per-record", "--report", report_path.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let got = lines(&out);
    assert_eq!(got.len(), 2);
    for (g, n) in got.iter().zip([3, 2]) {
        assert_eq!(g["logliks"].as_array().unwrap().len(), n);
        assert!(g["pred"].as_u64().unwrap() < n as u64);
        assert!(g["pred_norm"].as_u64().unwrap() < n as u64);
        assert!(g.get("correct").is_none() && g.get("correct_norm").is_none());
    }
    let report = read_json(&report_path);
    assert_eq!(report["labelled"], 0);
    assert!(report["acc"].is_null(), "{report}");
    assert!(report["acc_norm"].is_null(), "{report}");
    assert_eq!(report["sequences"], 5);
}

#[test]
fn a_zero_batch_size_is_refused() {
    let (code, _, err, _) = run_file(
        "{\"context\": \"to be\", \"endings\": [\"or not\", \"to sleep\"], \"label\": 0}\n",
        &["--batch-size", "0"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("eval: --batch-size must be at least 1"),
        "{err}"
    );
}

/// NaN weights give an error naming the model, not an accuracy computed from NaN scores.
#[test]
fn non_finite_outputs_are_an_error_naming_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("nan-model");
    wick_testkit::nan_model(&testdata("eval/choice/model"), &model);
    let choices = testdata("eval/choice/choice.jsonl");
    let r = run(
        EVAL,
        &[
            "--task",
            "choice",
            "--model",
            model.to_str().unwrap(),
            "--quiet",
            choices.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "--model {}: the model gave non-finite log-probabilities (NaN)",
            model.display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn the_device_path_scores_choices_as_transformers_does() {
    // WICK_REFERENCE_OPS=1 runs on the CPU what --device cuda runs (candle's own ops).
    let want = expected();
    let data = testdata("eval/choice/choice.jsonl");
    let m = model();
    let r = wick_testkit::run_env(
        EVAL,
        &[
            "--task",
            "choice",
            "--model",
            &m,
            "--device",
            "cpu",
            "--per-record",
            "--threads",
            "1",
            "--quiet",
            data.to_str().unwrap(),
        ],
        &[("WICK_REFERENCE_OPS", "1")],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = lines(&r.stdout);
    for (g, w) in got.iter().zip(want["records"].as_array().unwrap()) {
        for (a, b) in g["logliks"]
            .as_array()
            .unwrap()
            .iter()
            .zip(w["logliks"].as_array().unwrap())
        {
            let d = (a.as_f64().unwrap() - b.as_f64().unwrap()).abs();
            assert!(
                d < 1e-4,
                "record {}: loglik {a} vs transformers {b}",
                w["id"]
            );
        }
    }
}

#[test]
#[cfg(not(feature = "cuda"))]
fn device_cuda_is_refused_without_the_feature() {
    let data = testdata("eval/choice/choice.jsonl");
    let r = run(
        EVAL,
        &[
            "--task",
            "choice",
            "--model",
            &model(),
            "--device",
            "cuda",
            data.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim_end(),
        "eval: --device cuda: this build has no CUDA support; build with --features cuda (make cuda)"
    );
}
