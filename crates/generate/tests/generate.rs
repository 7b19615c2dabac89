//! `generate` end to end on a small random model with the Shakespeare tokenizer: the KV
//! cache changes nothing, sampling is reproducible by seed, EOS stops, bad input is named.

use std::path::Path;

use serde_json::Value;
use wick_model::{Config, Llama};
use wick_testkit::{run, testdata};

const GEN: &str = env!("CARGO_BIN_EXE_generate");

fn tiny_model(dir: &Path, zero_head: bool) {
    let json = r#"{"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 48, "eos_token_id": 0, "initializer_range": 0.5}"#;
    let m = Llama::init(Config::from_json(json).unwrap(), 5).unwrap();
    m.save(dir).unwrap();
    if zero_head {
        // All logits equal: greedy takes the lowest id, 0, which is EOS.
        let mut map = candle_core::safetensors::load(
            dir.join("model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let z = candle_core::Tensor::zeros(
            (512, 32),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        map.insert("lm_head.weight".into(), z);
        candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
    }
    let tok = testdata("tokenizers/shakespeare-512");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tok.join(f), dir.join(f)).unwrap();
    }
}

fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const PROMPTS: &[u8] = b"{\"prompt\": \"To be, or not\", \"id\": 7}\nKING HENRY:\n";

#[test]
fn cache_seed_and_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    tiny_model(&model, false);
    let m = model.to_str().unwrap();
    let base = [
        "--model",
        m,
        "--max-new-tokens",
        "20",
        "--threads",
        "1",
        "--quiet",
    ];
    let greedy = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(["--temperature", "0", "--ignore-eos"]);
        a.extend(extra);
        let r = run(GEN, &a, PROMPTS);
        assert_eq!(r.code, 0, "{}", r.stderr);
        lines(&r.stdout)
    };
    let cached = greedy(&[]);
    let full = greedy(&["--no-cache"]);
    assert_eq!(cached.len(), 2);
    assert_eq!(cached[0]["id"], 7, "other fields pass through");
    assert_eq!(
        cached[1]["prompt"], "KING HENRY:",
        "a text line is a prompt"
    );
    for (c, f) in cached.iter().zip(&full) {
        assert_eq!(c["response_ids"], f["response_ids"]);
        assert_eq!(c["response"], f["response"]);
        assert_eq!(c["response_ids"].as_array().unwrap().len(), 20);
        assert_eq!(c["finish_reason"], "length");
        let (a, b) = (
            c["logprobs"].as_array().unwrap(),
            f["logprobs"].as_array().unwrap(),
        );
        for (x, y) in a.iter().zip(b) {
            assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-4);
            assert!(x.as_f64().unwrap() <= 0.0);
        }
    }
    // The prompt is encoded after the EOS/BOS prefix (id 0 for this tokenizer).
    assert_eq!(cached[0]["prompt_ids"][0], 0);

    let sample = |seed: &str| {
        let mut a = base.to_vec();
        a.extend([
            "--temperature",
            "1.0",
            "--top-k",
            "50",
            "--top-p",
            "0.9",
            "--seed",
            seed,
            "--ignore-eos",
        ]);
        lines(&run(GEN, &a, PROMPTS).stdout)
    };
    let (s1, s2, s3) = (sample("1"), sample("1"), sample("2"));
    assert_eq!(s1, s2, "same seed, same samples");
    assert_ne!(
        s1[0]["response_ids"], s3[0]["response_ids"],
        "another seed, other samples"
    );
    assert_ne!(
        s1[0]["response_ids"], cached[0]["response_ids"],
        "sampling is not greedy"
    );
}

#[test]
fn eos_stops_and_bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    tiny_model(&model, true);
    let m = model.to_str().unwrap();
    let r = run(
        GEN,
        &["--model", m, "--temperature", "0", "--quiet"],
        b"Hello\n",
    );
    let out = lines(&r.stdout);
    assert_eq!(out[0]["response_ids"], serde_json::json!([0]));
    assert_eq!(out[0]["finish_reason"], "eos");
    assert_eq!(out[0]["response"], "", "the EOS is not part of the text");

    let r = run(
        GEN,
        &["--model", m, "--quiet"],
        b"{\"text\": \"no prompt field\"}\n",
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("<stdin>:1") && r.stderr.contains("no string field \"prompt\""),
        "{}",
        r.stderr
    );
    let long = format!("{}\n", "word ".repeat(200));
    let r = run(GEN, &["--model", m, "--quiet"], long.as_bytes());
    assert!(
        r.stderr.contains("longer than the model's context of 48"),
        "{}",
        r.stderr
    );
    let r = run(GEN, &["--model", m, "--top-p", "0"], b"");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--top-p"), "{}", r.stderr);
    // Generation reaching the context ends with finish_reason "context".
    let r = run(
        GEN,
        &[
            "--model",
            m,
            "--quiet",
            "--ignore-eos",
            "--temperature",
            "0",
            "--max-new-tokens",
            "500",
        ],
        b"Hi\n",
    );
    let out = lines(&r.stdout);
    assert_eq!(out[0]["finish_reason"], "context");
    let total = out[0]["prompt_ids"].as_array().unwrap().len()
        + out[0]["response_ids"].as_array().unwrap().len();
    assert_eq!(total, 48);
}

#[test]
fn a_record_after_a_byte_order_mark_is_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    tiny_model(&model, true);
    let m = model.to_str().unwrap();
    let input = tmp.path().join("prompts.jsonl");
    std::fs::write(&input, "\u{feff}{\"prompt\": \"Hi\", \"id\": 7}\nHello\n").unwrap();
    let r = run(
        GEN,
        &[
            "--model",
            m,
            "--temperature",
            "0",
            "--quiet",
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = lines(&r.stdout);
    // Not the whole line, mark and braces, taken as a plain-text prompt.
    assert_eq!(out[0]["prompt"], "Hi");
    assert_eq!(out[0]["id"], 7);
    assert_eq!(out[1]["prompt"], "Hello");
}

/// NaN weights give an error naming the prompt and the model, not text drawn from NaN logits.
#[test]
fn non_finite_outputs_are_an_error_naming_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("nan-model");
    wick_testkit::nan_model(&testdata("eval/choice/model"), &model);
    let r = run(
        GEN,
        &["--model", model.to_str().unwrap(), "--quiet"],
        PROMPTS,
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "<stdin>:1: --model {}: the model gave non-finite logits (NaN)",
            model.display()
        )),
        "{}",
        r.stderr
    );
}
