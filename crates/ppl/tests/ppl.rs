//! `ppl` against transformers' log-probs (tiny fixture model) and end to end on shards and
//! JSONL documents.

use std::path::Path;

use ppl::{plan, Scorer};
use serde_json::Value;
use wick_model::{Config, Llama};
use wick_testkit::{run, shakespeare_shards, testdata};

const PPL: &str = env!("CARGO_BIN_EXE_ppl");

#[test]
fn scores_equal_transformers_log_probs() {
    let dir = testdata("models/llama-gqa");
    let model = Llama::load(&dir).unwrap();
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let docs: Vec<Vec<u32>> = r["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect();
    let want: Vec<f64> = r["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            -row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .sum::<f64>()
        })
        .collect();
    // One window per document, batched together.
    let got = Scorer::new(&model, 64, 64, 8)
        .score(&docs, &[], |_| {})
        .unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.tokens, 11);
        assert!(
            (g.sum - w).abs() < 1e-3,
            "nll sum {} vs transformers {w}",
            g.sum
        );
    }
    // Short windows lose context, so the NLL changes, but every token is still counted once.
    let windows = Scorer::new(&model, 4, 4, 3)
        .score(&docs, &[], |_| {})
        .unwrap();
    assert_eq!(windows[0].tokens, 11);
    assert!((windows[0].sum - want[0]).abs() > 1e-4);
    // A sliding window whose context covers the whole document is the same as one window.
    let slide = Scorer::new(&model, 11, 1, 2)
        .score(&docs, &[], |_| {})
        .unwrap();
    assert!((slide[0].sum - got[0].sum).abs() < 1e-3);
    assert_eq!(plan(12, 11, 1).len(), 1);
}

fn tiny_model(dir: &Path) {
    let json = r#"{"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 48, "eos_token_id": 0}"#;
    Llama::init(Config::from_json(json).unwrap(), 3)
        .unwrap()
        .save(dir)
        .unwrap();
    let tok = testdata("tokenizers/shakespeare-512");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tok.join(f), dir.join(f)).unwrap();
    }
}

#[test]
fn shards_and_documents_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let model = tmp.path().join("model");
    tiny_model(&model);
    let m = model.to_str().unwrap();
    let r = run(
        PPL,
        &[
            "--model",
            m,
            "--data",
            data.to_str().unwrap(),
            "--threads",
            "1",
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let set = wick_shard::ShardSet::open(&data).unwrap();
    let val = set.tokens(wick_shard::Split::Val);
    assert_eq!(
        v["tokens"].as_u64().unwrap(),
        val - set.split(wick_shard::Split::Val).len() as u64
    );
    let nll = v["nll"].as_f64().unwrap();
    // A random model is close to uniform over 512 tokens.
    assert!((nll - 512f64.ln()).abs() < 0.2, "{nll}");
    assert!((v["ppl"].as_f64().unwrap() - nll.exp()).abs() < 1e-6);
    assert!((v["bits_per_token"].as_f64().unwrap() - nll / std::f64::consts::LN_2).abs() < 1e-9);
    let bpb = v["bits_per_byte"].as_f64().unwrap();
    assert!(
        bpb > 0.5 && bpb < v["bits_per_token"].as_f64().unwrap(),
        "{bpb}"
    );
    // Several batches: the rate after the first one is reported too.
    let windows = v["tokens"].as_u64().unwrap().div_ceil(48);
    assert!(
        windows > 8,
        "{windows} windows: the test needs more than one batch"
    );
    let steady = v["steady_tokens_per_s"].as_f64().unwrap();
    assert!(steady.is_finite() && steady > 0.0, "{steady}");

    // Documents: per-document lines keep the record and add the scores; the total on stderr
    // is the token-weighted mean of the documents'.
    let docs = "{\"id\": 1, \"text\": \"To be, or not to be, that is the question.\"}\n{\"id\": 2, \"text\": \"Now is the winter of our discontent made glorious summer by this sun of York; and all the clouds that lour'd upon our house in the deep bosom of the ocean buried.\"}\n";
    let r = run(
        PPL,
        &[
            "--model",
            m,
            "--per-record",
            "--seq-len",
            "16",
            "--stride",
            "8",
            "--batch-size",
            "64",
            "--threads",
            "1",
        ],
        docs.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["id"], 2);
    let total: Value =
        serde_json::from_str(r.stderr.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    let (mut sum, mut n) = (0.0, 0);
    for l in &lines {
        let t = l["tokens"].as_u64().unwrap();
        sum += l["nll"].as_f64().unwrap() * t as f64;
        n += t;
        assert!(l["text"].is_string() && l["bits_per_byte"].is_number());
    }
    assert_eq!(total["tokens"].as_u64().unwrap(), n);
    // One batch: no rate after the first.
    assert!(total.get("steady_tokens_per_s").is_none(), "{total}");
    assert!((total["nll"].as_f64().unwrap() - sum / n as f64).abs() < 1e-9);
    // Every text token is a target: the document is scored after the BOS/EOS prefix.
    let tok = wick_text::Tok::load(&model).unwrap();
    let want = tok
        .encode("To be, or not to be, that is the question.")
        .unwrap()
        .len() as u64;
    assert_eq!(lines[0]["tokens"].as_u64().unwrap(), want);
}

#[test]
fn bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model);
    let m = model.to_str().unwrap();
    let r = run(
        PPL,
        &["--model", m, "--quiet"],
        b"{\"text\": \"fine\"}\n{\"txt\": \"no text\"}\n",
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("<stdin>:2") && r.stderr.contains("no string field \"text\""),
        "{}",
        r.stderr
    );
    let r = run(PPL, &["--model", m, "--quiet"], b"not json\n");
    assert!(r.stderr.contains("<stdin>:1"), "{}", r.stderr);
    // --skip-invalid: the bad records are counted on stderr and the rest scored.
    let r = run(
        PPL,
        &["--model", m, "--skip-invalid", "--per-record"],
        b"{\"text\": \"fine\"}\n{\"txt\": \"no text\"}\nnot json\n{\"text\": \"also fine\"}\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("ppl: skipped <stdin>:2: no string field \"text\"")
            && r.stderr.contains("<stdin>:3")
            && r.stderr.contains("2 invalid skipped"),
        "{}",
        r.stderr
    );
    let r = run(PPL, &["--model", m, "--seq-len", "100"], b"");
    assert!(
        r.stderr.contains("longer than the model's context"),
        "{}",
        r.stderr
    );

    // Shards made with another tokenizer than the model's.
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let other = tmp.path().join("other");
    tiny_model(&other);
    let mut t = std::fs::read_to_string(other.join("tokenizer.json")).unwrap();
    t.push('\n');
    std::fs::write(other.join("tokenizer.json"), t).unwrap();
    let r = run(
        PPL,
        &[
            "--model",
            other.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        b"",
    );
    assert!(r.stderr.contains("another tokenizer"), "{}", r.stderr);

    // A tokenizer with more tokens than the model has embeddings.
    std::fs::copy(
        testdata("tokenizers/gpt2/tokenizer.json"),
        other.join("tokenizer.json"),
    )
    .unwrap();
    let r = run(PPL, &["--model", other.to_str().unwrap()], b"");
    assert!(
        r.stderr
            .contains("50257 tokens but the model's vocabulary is 512"),
        "{}",
        r.stderr
    );

    // A folder without weights.
    std::fs::remove_file(other.join("model.safetensors")).unwrap();
    let r = run(PPL, &["--model", other.to_str().unwrap()], b"");
    assert!(r.stderr.contains("no model.safetensors"), "{}", r.stderr);
}

#[test]
fn degenerate_and_oversized_flags_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model);
    let m = model.to_str().unwrap();
    for (args, want) in [
        (
            ["--batch-size", "0"],
            "ppl: --batch-size must be at least 1",
        ),
        (["--seq-len", "0"], "ppl: --seq-len must be at least 1"),
    ] {
        let r = run(
            PPL,
            &[&["--model", m, "--quiet"][..], &args[..]].concat(),
            b"{\"text\": \"a\"}\n",
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(want), "{}", r.stderr);
    }
    // 10^12 windows a batch: refused from the estimate, before the model is read.
    #[cfg(target_os = "linux")]
    {
        let r = run(
            PPL,
            &["--model", m, "--quiet", "--batch-size", "1000000000000"],
            b"",
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("ppl: scoring with --batch-size 1000000000000 x --seq-len 48 ("),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("more than this machine's"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
}

#[test]
fn empty_input_and_damaged_shards_are_errors_not_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model);
    let m = model.to_str().unwrap();
    let args = ["--model", m, "--threads", "1", "--quiet"];

    // Nothing read: an error, not {"ppl": 1.0}.
    let r = run(PPL, &args, b"");
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.stderr, "ppl: <stdin>: no records to score\n");
    assert_eq!(r.stdout, "");
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let r = run(PPL, &[&args[..], &[empty.to_str().unwrap()]].concat(), b"");
    assert_eq!(
        r.stderr,
        format!("ppl: {}: no records to score\n", empty.display())
    );
    // Records whose documents have no token to score.
    let r = run(PPL, &args, b"{\"text\": \"\"}\n");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "ppl: <stdin>: nothing to score: the 1 document(s) are empty\n"
    );
    // Per document, an empty one has no figures (null), not a perfect 1.0. (--per-doc is the
    // old spelling of --per-record, kept as a hidden alias.)
    let r = run(
        PPL,
        &[&args[..], &["--per-doc"]].concat(),
        b"{\"text\": \"\"}\n{\"text\": \"To be, or not to be\"}\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["tokens"], 0);
    assert!(
        lines[0]["ppl"].is_null() && lines[0]["nll"].is_null(),
        "{}",
        lines[0]
    );
    assert!(lines[1]["ppl"].as_f64().unwrap() > 1.0);

    // A byte-order mark at the start of the file changes nothing.
    let docs = "{\"id\": 1, \"text\": \"To be, or not to be\"}\n{\"id\": 2, \"text\": \"that is the question\"}\n";
    let plain = tmp.path().join("plain.jsonl");
    let bom = tmp.path().join("bom.jsonl");
    std::fs::write(&plain, docs).unwrap();
    std::fs::write(&bom, format!("\u{feff}{docs}")).unwrap();
    let per_doc = |f: &Path| {
        let r = run(
            PPL,
            &[&args[..], &["--per-record", f.to_str().unwrap()]].concat(),
            b"",
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    assert_eq!(per_doc(&bom), per_doc(&plain));
    assert_eq!(per_doc(&bom).lines().count(), 2);

    // An id past the model's vocabulary in a shard: named with its shard and position, not a
    // tensor library's index-select message.
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let val = data.join("val_000000.bin");
    let mut b = std::fs::read(&val).unwrap();
    b[1024 + 2 * 5..1024 + 2 * 6].copy_from_slice(&600u16.to_le_bytes());
    std::fs::write(&val, b).unwrap();
    let r = run(
        PPL,
        &[&args[..], &["--data", data.to_str().unwrap()]].concat(),
        b"",
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "ppl: {}: token 5 is id 600, not below the vocabulary size 512\n",
            val.display()
        )
    );
}

/// `--adapter` puts a PEFT LoRA adapter on the base: the same scores as the merged model.
#[test]
fn adapter_scores_like_the_merged_model() {
    let base = testdata("eval/choice/model"); // llama-gqa with a character tokenizer
    let adapter = testdata("models/lora-rslora");
    let tmp = tempfile::tempdir().unwrap();
    let merged = tmp.path().join("merged");
    let mut m = Llama::load(&base).unwrap();
    m.apply_lora(&wick_model::LoraAdapter::load(&adapter).unwrap())
        .unwrap();
    m.merge_adapter().unwrap();
    m.save(&merged).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(base.join(f), merged.join(f)).unwrap();
    }
    let doc = b"{\"text\": \"to be, or not to be: that is the question.\"}\n";
    let nll = |args: &[&str]| -> f64 {
        let (code, out, err) = run(PPL, args, doc).parts();
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(out.trim()).unwrap()["nll"]
            .as_f64()
            .unwrap()
    };
    let (b, a, mg) = (
        base.to_str().unwrap(),
        adapter.to_str().unwrap(),
        merged.to_str().unwrap(),
    );
    let layered = nll(&["--model", b, "--adapter", a, "-q"]);
    let folded = nll(&["--model", mg, "-q"]);
    let plain = nll(&["--model", b, "-q"]);
    assert!((layered - folded).abs() < 1e-6, "{layered} vs {folded}");
    assert!(
        (layered - plain).abs() > 1e-2,
        "the adapter changed nothing"
    );
    let (code, _, err) = run(
        PPL,
        &["--model", b, "--adapter", "/no/such/adapter", "-q"],
        doc,
    )
    .parts();
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/adapter"), "{err}");
}

/// The element-wise kernels' builds (AVX-512, AVX2; WICK_NO_AVX512=1 picks AVX2 where both
/// exist) do the same float operations in the same order: the same NLL to the last bit.
#[test]
fn the_avx512_and_avx2_kernels_score_to_the_same_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model);
    let score = |no_avx512: bool| {
        let mut cmd = std::process::Command::new(PPL);
        cmd.args([
            "--model",
            model.to_str().unwrap(),
            "--threads",
            "1",
            "--quiet",
        ]);
        if no_avx512 {
            cmd.env("WICK_NO_AVX512", "1");
        } else {
            cmd.env_remove("WICK_NO_AVX512");
        }
        let out = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                // Rows of every length up to 47 reach the softmax's padded last chunk.
                let doc = "{\"text\": \"Now is the winter of our discontent made glorious summer by this sun of York; and all the clouds that lour'd upon our house in the deep bosom of the ocean buried.\"}\n";
                c.stdin.take().unwrap().write_all(doc.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["nll"].as_f64().unwrap().to_bits()
    };
    assert_eq!(score(false), score(true));
}

/// NaN weights give an error naming the model, not `"ppl": null`.
#[test]
fn non_finite_outputs_are_an_error_naming_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("nan-model");
    wick_testkit::nan_model(&testdata("eval/choice/model"), &model);
    let r = run(
        PPL,
        &["--model", model.to_str().unwrap(), "--quiet"],
        b"{\"text\": \"To be, or not to be\"}\n",
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
    assert_eq!(r.stdout, "");
}

#[test]
fn dtype_bf16_scores_a_bf16_checkpoint_as_transformers_does() {
    let dir = testdata("models/llama-bf16");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let texts = dir.join("texts.jsonl");
    let nlls = |dtype: &str| -> Vec<f64> {
        let out = run(
            PPL,
            &[
                "--model",
                dir.to_str().unwrap(),
                "--dtype",
                dtype,
                "--per-record",
                "-q",
                texts.to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["nll"].as_f64())
            .collect()
    };
    let want = |k: &str| -> Vec<f64> { serde_json::from_value(r[k].clone()).unwrap() };
    let (bf16, auto, f32) = (nlls("bf16"), nlls("auto"), nlls("f32"));
    assert_eq!(bf16.len(), 3);
    assert_eq!(bf16, auto, "auto keeps the checkpoint's bf16");
    for (i, (a, b)) in bf16.iter().zip(want("mean_nll_bf16")).enumerate() {
        assert!(
            (a - b).abs() < b * 2f64.powi(-8),
            "bf16 sequence {i}: {a} vs {b}"
        );
    }
    for (i, (a, b)) in f32.iter().zip(want("mean_nll_f32")).enumerate() {
        assert!((a - b).abs() < 1e-5, "f32 sequence {i}: {a} vs {b}");
    }
    assert_ne!(bf16, f32);
}

#[test]
fn the_device_path_scores_as_transformers_does() {
    // WICK_REFERENCE_OPS=1 runs on the CPU what --device cuda runs (candle's own ops): the bf16
    // fixture's per-sequence NLL as transformers computes it, weights kept in f32 and in bf16.
    let dir = testdata("models/llama-bf16");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let texts = dir.join("texts.jsonl");
    let nlls = |dtype: &str| -> Vec<f64> {
        let args = [
            "--model",
            dir.to_str().unwrap(),
            "--dtype",
            dtype,
            "--device",
            "cpu",
            "--per-record",
            "-q",
            texts.to_str().unwrap(),
        ];
        let out = wick_testkit::run_env(PPL, &args, &[("WICK_REFERENCE_OPS", "1")], b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["nll"].as_f64())
            .collect()
    };
    let want = |k: &str| -> Vec<f64> { serde_json::from_value(r[k].clone()).unwrap() };
    let (bf16, f32) = (nlls("bf16"), nlls("f32"));
    assert_eq!(bf16.len(), 3);
    for (i, (a, b)) in bf16.iter().zip(want("mean_nll_bf16")).enumerate() {
        assert!(
            (a - b).abs() < b * 2f64.powi(-8),
            "bf16 sequence {i}: {a} vs {b}"
        );
    }
    for (i, (a, b)) in f32.iter().zip(want("mean_nll_f32")).enumerate() {
        assert!((a - b).abs() < 1e-5, "f32 sequence {i}: {a} vs {b}");
    }
}

#[test]
#[cfg(not(feature = "cuda"))]
fn device_cuda_is_refused_without_the_feature() {
    let m = testdata("eval/choice/model");
    let r = run(
        PPL,
        &["--model", m.to_str().unwrap(), "--device", "cuda"],
        b"x\n",
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim_end(),
        "ppl: --device cuda: this build has no CUDA support; build with --features cuda (make cuda)"
    );
    let r = run(
        PPL,
        &["--model", m.to_str().unwrap(), "--device", "cuda:x"],
        b"x\n",
    );
    assert_eq!(
        r.stderr.trim_end(),
        "ppl: --device cuda:x: unknown device 'cuda:x' (expected cpu, cuda or cuda:N)"
    );
}
