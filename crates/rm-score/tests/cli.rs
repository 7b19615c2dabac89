//! rm-score end to end on the tiny reward model of testdata/models/llama-rm (with the
//! character tokenizer of testdata/eval/choice): records in, the same records out in order with
//! "reward" equal to the library's score of the rendered ids; bad models and records refused.

use std::path::Path;

use serde_json::{Map, Value};
use wick_model::reward::sequence_scores;
use wick_model::Llama;
use wick_testkit::{run, testdata};
use wick_text::{render_sft, Format, Templates, Tok};

const BIN: &str = env!("CARGO_BIN_EXE_rm-score");

/// llama-rm with a tokenizer beside it.
fn folder(dir: &Path, edit: impl Fn(&mut Value)) {
    std::fs::create_dir_all(dir).unwrap();
    let rm = testdata("models/llama-rm");
    std::fs::copy(rm.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(rm.join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(testdata("eval/choice/model").join(f), dir.join(f)).unwrap();
    }
}

#[test]
fn scores_every_record_in_order_as_the_library_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rm");
    folder(&dir, |_| {});
    let input = [
        r#"{"id": 1, "prompt": "to be, or not to be:", "response": " that is the question"}"#,
        r#"{"id": 2, "prompt": "the rest", "response": " is silence"}"#,
        r#"{"id": 3, "prompt": "o", "completion": "!"}"#,
        r#"{"id": 4, "text": "something is rotten in the state of denmark"}"#,
        r#"{"id": 5, "prompt": "", "response": "words, words, words"}"#,
    ]
    .join("\n");
    let r = run(
        BIN,
        &["--model", dir.to_str().unwrap(), "--batch-size", "2", "-q"],
        input.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: Vec<Map<String, Value>> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), 5);
    let model = Llama::load(&dir).unwrap();
    let tok = Tok::load(&dir).unwrap();
    let t = Templates::new(None, None, None).unwrap();
    for (i, (line, got)) in input.lines().zip(&out).enumerate() {
        let rec: Map<String, Value> = serde_json::from_str(line).unwrap();
        assert_eq!(got["id"], rec["id"], "order kept");
        let mut m = Map::new();
        let (p, c) = match (
            rec.get("prompt"),
            rec.get("response"),
            rec.get("completion"),
        ) {
            (Some(p), Some(c), _) | (Some(p), None, Some(c)) => (p.clone(), c.clone()),
            _ => (Value::from(""), rec["text"].clone()),
        };
        m.insert("prompt".into(), p);
        m.insert("completion".into(), c);
        let ids = tok
            .encode_pieces(&render_sft(&m, Format::PromptCompletion, &t).unwrap())
            .unwrap()
            .ids;
        assert_eq!(*ids.last().unwrap(), 2, "the response ends in EOS");
        let want = sequence_scores(&model, &[&ids], 0).unwrap()[0][0];
        let reward = got["reward"].as_f64().unwrap() as f32;
        assert!(
            (reward - want).abs() < 1e-5,
            "record {i}: {reward} vs {want}"
        );
    }
}

#[test]
fn the_device_path_scores_as_the_fused_kernels_do() {
    // WICK_REFERENCE_OPS=1 runs on the CPU what --device cuda runs (candle's own ops).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rm");
    folder(&dir, |_| {});
    let input = "{\"prompt\": \"to be, or not to be:\", \"response\": \" that is the question\"}\n{\"text\": \"the rest is silence\"}\n";
    let score = |env: &[(&str, &str)]| -> Vec<f64> {
        let args = ["--model", dir.to_str().unwrap(), "--device", "cpu", "-q"];
        let r = wick_testkit::run_env(BIN, &args, env, input.as_bytes());
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["reward"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (fused, reference) = (score(&[]), score(&[("WICK_REFERENCE_OPS", "1")]));
    assert_eq!(fused.len(), 2);
    for (a, b) in fused.iter().zip(&reference) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    #[cfg(not(feature = "cuda"))]
    {
        let r = run(
            BIN,
            &["--model", dir.to_str().unwrap(), "--device", "cuda"],
            input.as_bytes(),
        );
        assert_eq!(r.code, 1);
        assert_eq!(
            r.stderr.trim_end(),
            "rm-score: --device cuda: this build has no CUDA support; build with --features cuda (make cuda)"
        );
    }
}

#[test]
fn models_and_records_it_cannot_score_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let no_pad = tmp.path().join("no-pad");
    folder(&no_pad, |c| {
        c.as_object_mut().unwrap().remove("pad_token_id");
    });
    let r = run(
        BIN,
        &["--model", no_pad.to_str().unwrap()],
        b"{\"text\": \"a\"}\n",
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("pad_token_id"), "{}", r.stderr);

    let lm = tmp.path().join("lm");
    folder(&lm, |c| {
        c["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
    });
    let r = run(
        BIN,
        &["--model", lm.to_str().unwrap()],
        b"{\"text\": \"a\"}\n",
    );
    assert_ne!(r.code, 0);
    // (No lm_head in the file either: the load itself says so.)
    assert!(
        r.stderr.contains("not a reward model") || r.stderr.contains("lm_head"),
        "{}",
        r.stderr
    );

    let ok = tmp.path().join("ok");
    folder(&ok, |_| {});
    let r = run(
        BIN,
        &["--model", ok.to_str().unwrap(), "--batch-size", "0"],
        b"{\"text\": \"a\"}\n",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("--batch-size must be at least 1"),
        "{}",
        r.stderr
    );
    let long = format!("{{\"text\": \"{}\"}}\n", "a".repeat(300));
    let input = format!("{{\"text\": \"fine\"}}\n{long}");
    let r = run(BIN, &["--model", ok.to_str().unwrap()], input.as_bytes());
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("<stdin>:2") && r.stderr.contains("context"),
        "{}",
        r.stderr
    );
    let r = run(
        BIN,
        &["--model", ok.to_str().unwrap()],
        b"{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n",
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("preference pair"), "{}", r.stderr);
    // --skip-invalid: the too-long record, the preference pair and a line that is not JSON are
    // counted on stderr; the others are scored, in order.
    let input = format!(
        "{{\"id\": 1, \"text\": \"fine\"}}\n{long}{{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}}\nnot json\n{{\"id\": 5, \"text\": \"also fine\"}}\n"
    );
    let r = run(
        BIN,
        &["--model", ok.to_str().unwrap(), "--skip-invalid"],
        input.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ids: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, [1, 5]);
    assert!(
        r.stderr.contains("rm-score: skipped <stdin>:2:")
            && r.stderr.contains("<stdin>:3: a preference pair")
            && r.stderr.contains("3 invalid skipped"),
        "{}",
        r.stderr
    );
}

/// --truncate scores an over-long record on its last `context` tokens: the same reward as
/// a record holding just that tail (one character per token, EOS last).
#[test]
fn truncate_scores_the_last_context_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = tmp.path().join("ok");
    folder(&ok, |_| {});
    let r = run(
        BIN,
        &["--model", ok.to_str().unwrap(), "--batch-size", "0"],
        b"{\"text\": \"a\"}\n",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("--batch-size must be at least 1"),
        "{}",
        r.stderr
    );
    let text: String = (0..300)
        .map(|i| ["a", "b", "c", "d", "e"][i * 7 % 5])
        .collect();
    let tail = &text[text.len() - 127..];
    let input = format!("{{\"text\": \"{text}\"}}\n{{\"text\": \"{tail}\"}}\n");
    let r = run(
        BIN,
        &["--model", ok.to_str().unwrap(), "--truncate", "-q"],
        input.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rewards = wick_testkit::numbers(&r.stdout, "reward");
    assert_eq!(rewards.len(), 2);
    assert_eq!(rewards[0], rewards[1]);
}

/// NaN weights give an error naming the model, not `"reward": null`.
#[test]
fn non_finite_outputs_are_an_error_naming_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let rm = tmp.path().join("rm");
    folder(&rm, |_| {});
    let model = tmp.path().join("nan-rm");
    wick_testkit::nan_model(&rm, &model);
    let r = run(
        BIN,
        &["--model", model.to_str().unwrap(), "--quiet"],
        b"{\"prompt\": \"a\", \"response\": \"b\"}\n",
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "--model {}: the model gave non-finite scores (NaN)",
            model.display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn dtype_keeps_the_weights_in_half_precision_and_scores_close_to_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rm");
    folder(&dir, |_| {});
    let input = [
        r#"{"prompt": "to be, or not to be:", "response": " that is the question"}"#,
        r#"{"prompt": "the rest", "response": " is silence"}"#,
    ]
    .join("\n");
    let rewards = |dtype: &str| -> Vec<f64> {
        let r = run(
            BIN,
            &["--model", dir.to_str().unwrap(), "--dtype", dtype, "-q"],
            input.as_bytes(),
        );
        assert_eq!(r.code, 0, "{dtype}: {}", r.stderr);
        r.stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["reward"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (f32s, auto) = (rewards("f32"), rewards("auto"));
    assert_eq!(f32s, auto, "an f32 checkpoint stays f32");
    for dtype in ["bf16", "f16"] {
        let got = rewards(dtype);
        assert_ne!(got, f32s, "{dtype}: computed in {dtype}");
        for (a, b) in got.iter().zip(&f32s) {
            assert!(
                (a - b).abs() < 0.05 * b.abs().max(0.1),
                "{dtype}: {a} vs f32 {b}"
            );
        }
    }
    let r = run(
        BIN,
        &["--model", dir.to_str().unwrap(), "--dtype", "f8"],
        b"",
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("f8"), "{}", r.stderr);
}
