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

/// A model folder with the chat tokenizer folder `chat` (testdata/chat/) whose greedy choice is
/// always `token`: every embedding is all ones, the blocks add nothing (their output
/// projections are zero) and only `token`'s row of the head is non-zero.
fn always_says(dir: &Path, chat: &str, token: u32) {
    let json = r#"{"vocab_size": 520, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128, "eos_token_id": 0}"#;
    Llama::init(Config::from_json(json).unwrap(), 5)
        .unwrap()
        .save(dir)
        .unwrap();
    let cpu = candle_core::Device::Cpu;
    let f32 = candle_core::DType::F32;
    let file = dir.join("model.safetensors");
    let mut w = candle_core::safetensors::load(&file, &cpu).unwrap();
    w.insert(
        "model.embed_tokens.weight".into(),
        candle_core::Tensor::ones((520, 32), f32, &cpu).unwrap(),
    );
    for l in 0..2 {
        for (name, shape) in [("self_attn.o_proj", (32, 32)), ("mlp.down_proj", (32, 64))] {
            w.insert(
                format!("model.layers.{l}.{name}.weight"),
                candle_core::Tensor::zeros(shape, f32, &cpu).unwrap(),
            );
        }
    }
    let mut head = vec![0f32; 520 * 32];
    head[token as usize * 32..(token as usize + 1) * 32].fill(1.0);
    w.insert(
        "lm_head.weight".into(),
        candle_core::Tensor::from_vec(head, (520, 32), &cpu).unwrap(),
    );
    candle_core::safetensors::save(&w, &file).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        let src = testdata("chat").join(chat).join(f);
        if src.exists() {
            std::fs::copy(src, dir.join(f)).unwrap();
        }
    }
}

/// `{messages}` records: the prompt is the folder's chat template with the generation prompt,
/// token for token what transformers' apply_chat_template(add_generation_prompt=True) gives
/// (testdata/chat/expected.json), and the reply stops at the end-of-turn token, from
/// generation_config.json's eos_token_id list (qwen2) or from the template alone (llama3).
/// `{prompt}` records keep the plain stop rule.
#[test]
fn chat_records_use_the_template_and_stop_at_the_end_of_turn() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(testdata("chat/expected.json")).unwrap())
            .unwrap();
    let records = std::fs::read(testdata("chat/records.jsonl")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (chat, end_of_turn) in [("qwen2", 513), ("llama3", 515)] {
        let model = tmp.path().join(chat);
        always_says(&model, chat, end_of_turn);
        let m = model.to_str().unwrap();
        let args = [
            "--model",
            m,
            "--temperature",
            "0",
            "--max-new-tokens",
            "4",
            "--quiet",
        ];
        let r = run(GEN, &args, &records);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let out = lines(&r.stdout);
        assert_eq!(out.len(), 5);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o["id"], expected["records"][i], "input fields pass through");
            assert_eq!(
                o["prompt_ids"], expected[chat]["ids"][i],
                "{chat} {}",
                o["id"]
            );
            assert_eq!(o["response_ids"], serde_json::json!([end_of_turn]));
            assert_eq!(o["finish_reason"], "eos", "{chat} {}", o["id"]);
            assert_eq!(o["response"], "");
        }
        // Plain prompts stop where they did: at config.json's and the tokenizer's EOS only.
        let r = run(GEN, &args, b"{\"prompt\": \"Hello\"}\n");
        let out = lines(&r.stdout);
        assert_eq!(out[0]["finish_reason"], "length", "{chat}");
        assert_eq!(
            out[0]["response_ids"],
            serde_json::json!(vec![end_of_turn; 4])
        );
        // --ignore-eos goes past the end of the turn too.
        let first = records.split(|&b| b == b'\n').next().unwrap();
        let r = run(GEN, &[&args[..], &["--ignore-eos"]].concat(), first);
        assert_eq!(lines(&r.stdout)[0]["finish_reason"], "length");
        // --text writes the rendered prompt, then the reply.
        let r = run(GEN, &[&args[..], &["--text"]].concat(), first);
        assert_eq!(
            r.stdout,
            format!("{}\n\n", expected[chat]["texts"][0].as_str().unwrap())
        );
    }
}

#[test]
fn skip_invalid_counts_bad_records() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    tiny_model(&model, true);
    let m = model.to_str().unwrap();
    let input = b"{\"prompt\": 3}\n{\"prompt\": \"Hi\", \"id\": 1}\n{not json\n{\"messages\": [{\"role\": \"user\"}]}\nHello\n";
    let r = run(GEN, &["--model", m, "--temperature", "0"], input);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("<stdin>:1"), "{}", r.stderr);
    let r = run(
        GEN,
        &["--model", m, "--temperature", "0", "--skip-invalid"],
        input,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = lines(&r.stdout);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["id"], 1);
    assert_eq!(out[1]["prompt"], "Hello");
    assert!(
        r.stderr
            .contains("generate: skipped <stdin>:1: no string field \"prompt\"")
            && r.stderr
                .contains("<stdin>:4: each message needs a string \"content\"")
            && r.stderr.contains("3 invalid skipped"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_device_path_generates_as_the_fused_kernels_do() {
    // WICK_REFERENCE_OPS=1 runs on the CPU what --device cuda runs: the same greedy tokens
    // (KV cache and all) and log-probs within float tolerance.
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    tiny_model(&model, false);
    let m = model.to_str().unwrap();
    let args = [
        "--model",
        m,
        "--max-new-tokens",
        "12",
        "--temperature",
        "0",
        "--ignore-eos",
        "--threads",
        "1",
        "--quiet",
    ];
    let gen = |env: &[(&str, &str)]| {
        let r = wick_testkit::run_env(GEN, &args, env, PROMPTS);
        assert_eq!(r.code, 0, "{}", r.stderr);
        lines(&r.stdout)
    };
    let (fused, reference) = (gen(&[]), gen(&[("WICK_REFERENCE_OPS", "1")]));
    assert_eq!(fused.len(), 2);
    for (a, b) in fused.iter().zip(&reference) {
        assert_eq!(a["response_ids"], b["response_ids"]);
        let lp = |v: &Value| -> Vec<f64> {
            v["logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        for (x, y) in lp(a).iter().zip(lp(b)) {
            assert!((x - y).abs() < 1e-4, "log-prob {x} vs {y}");
        }
    }
}

#[test]
#[cfg(not(feature = "cuda"))]
fn device_cuda_is_refused_without_the_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    tiny_model(&model, false);
    let r = run(
        GEN,
        &["--model", model.to_str().unwrap(), "--device", "cuda:0"],
        PROMPTS,
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim_end(),
        "generate: --device cuda:0: this build has no CUDA support; build with --features cuda (make cuda)"
    );
}
