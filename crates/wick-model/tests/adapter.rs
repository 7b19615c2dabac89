//! PEFT LoRA adapters against PEFT itself (testdata/models/lora-*, made by
//! scripts/gen_lora_fixture.py with peft 0.21.2 on the llama-gqa base): the adapter's forward
//! (log-probs within 1e-4), the merge (weights within 1e-5 of merge_and_unload), the merged
//! model scoring as base + adapter, and adapters that do not fit.

use std::collections::HashMap;

use candle_core::{Device, Tensor, D};
use serde_json::Value;
use wick_model::{Llama, LoraAdapter};
use wick_testkit::testdata;

fn rows(r: &Value) -> Vec<Vec<u32>> {
    r["input_ids"]
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
        .collect()
}

/// log p(next token) per position of each row, as [rows][T-1].
fn logprobs(m: &Llama, rows: &[Vec<u32>]) -> Vec<Vec<f32>> {
    let (b, t) = (rows.len(), rows[0].len());
    let input = Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu).unwrap();
    let logp = candle_nn::ops::log_softmax(&m.forward(&input).unwrap(), D::Minus1).unwrap();
    let all: Vec<Vec<Vec<f32>>> = logp.to_vec3().unwrap();
    rows.iter()
        .enumerate()
        .map(|(s, row)| (0..t - 1).map(|p| all[s][p][row[p + 1] as usize]).collect())
        .collect()
}

fn max_diff(a: &[Vec<f32>], b: &Value) -> f32 {
    let mut worst = 0f32;
    for (ra, rb) in a.iter().zip(b.as_array().unwrap()) {
        for (x, y) in ra.iter().zip(rb.as_array().unwrap()) {
            worst = worst.max((x - y.as_f64().unwrap() as f32).abs());
        }
    }
    worst
}

fn check(name: &str) {
    let dir = testdata(&format!("models/lora-{name}"));
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let rows = rows(&r);
    let base = Llama::load(&testdata("models/llama-gqa")).unwrap();
    let adapter = LoraAdapter::load(&dir).unwrap();
    assert!((adapter.config.scale() - r["scaling"].as_f64().unwrap()).abs() < 1e-9);

    let mut with = base.clone();
    with.apply_lora(&adapter).unwrap();
    let got = logprobs(&with, &rows);
    let d = max_diff(&got, &r["logprobs"]);
    assert!(
        d <= 1e-4,
        "{name}: adapter log-probs differ from PEFT's by {d}"
    );
    // The adapter matters: without it the log-probs are far off.
    assert!(max_diff(&logprobs(&base, &rows), &r["logprobs"]) > 1e-2);

    let mut merged = with.clone();
    merged.merge_adapter().unwrap();
    let want: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("merged.safetensors"), &Device::Cpu).unwrap();
    let have: HashMap<String, Tensor> = merged.named_tensors().into_iter().collect();
    assert_eq!(have.len(), want.len(), "{name}: merged tensor names");
    for (k, w) in &want {
        let h = &have[k];
        let diff: f32 = (h - w)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(
            diff <= 1e-5,
            "{name}: merged {k} differs from merge_and_unload by {diff}"
        );
    }
    let merged_lp = logprobs(&merged, &rows);
    let d = got
        .iter()
        .flatten()
        .zip(merged_lp.iter().flatten())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        d <= 1e-5,
        "{name}: merged model scores differently from base + adapter: {d}"
    );
}

#[test]
fn plain_lora_matches_peft() {
    check("plain");
}

#[test]
fn rslora_matches_peft() {
    check("rslora");
}

#[test]
fn an_adapter_for_another_base_is_refused() {
    let adapter = LoraAdapter::load(&testdata("models/lora-plain")).unwrap();
    let cfg = r#"{"vocab_size": 64, "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32}"#;
    let mut other = Llama::init(wick_model::Config::from_json(cfg).unwrap(), 1).unwrap();
    let e = other.apply_lora(&adapter).unwrap_err().to_string();
    assert!(e.contains("do not fit"), "{e}");
}

/// Bottleneck adapters (Houlsby's design) against a PyTorch reference (testdata/models/houlsby, made by
/// scripts/gen_houlsby_fixture.py: transformers' Llama with forward hooks adding
/// up(silu(down(h))) after each o_proj and down_proj): log-probs within 1e-4; merging is
/// refused; the wrong base is refused.
#[test]
fn houlsby_adapter_matches_the_torch_reference() {
    let dir = testdata("models/houlsby");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let rows = rows(&r);
    let base = Llama::load(&testdata("models/llama-gqa")).unwrap();
    let mut with = base.clone();
    with.load_adapter(&dir).unwrap();
    assert!(matches!(
        with.adapter(),
        Some(wick_model::AdapterKind::Bottleneck(c)) if c.size == 8 && c.reduction == 4
    ));
    let got = logprobs(&with, &rows);
    let diff = max_diff(&got, &r["logprobs"]);
    assert!(diff < 1e-4, "log-probs differ by {diff}");
    // The adapter matters (so the comparison above means something).
    assert!(max_diff(&logprobs(&base, &rows), &r["logprobs"]) > 1.0);
    let err = with.merge_adapter().unwrap_err().to_string();
    assert!(err.contains("cannot be folded"), "{err}");
    // A base of another width does not take it.
    let cfg = r#"{"vocab_size": 64, "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32}"#;
    let mut other = Llama::init(wick_model::Config::from_json(cfg).unwrap(), 1).unwrap();
    let err = other.load_adapter(&dir).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
}

/// Found with the adapter_folder target of fuzz/: a bottleneck adapter_config.json whose
/// bottleneck_size the weights do not have was believed until the tensors were compared, after
/// the adapter had been built at that size: bottleneck_size 2^40 aborted the process (an
/// allocation of 128 TiB), 10^6 took 0.5 GB and seconds before the refusal. The file's tensors
/// are now checked first.
#[test]
fn a_houlsby_bottleneck_size_the_weights_lack_is_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let src = testdata("models/houlsby");
    let base = Llama::load(&testdata("models/llama-gqa")).unwrap();
    for size in [1u64 << 40, 1_000_000] {
        let mut cfg: Value = serde_json::from_str(
            &std::fs::read_to_string(src.join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        cfg["bottleneck_size"] = size.into();
        std::fs::write(tmp.path().join("adapter_config.json"), cfg.to_string()).unwrap();
        std::fs::copy(
            src.join("adapter_model.safetensors"),
            tmp.path().join("adapter_model.safetensors"),
        )
        .unwrap();
        let err = base
            .clone()
            .load_adapter(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("adapter_model.safetensors: adapter tensor model.layers.0.attn_adapter.down.weight: shape [8, 32]")
                && err.contains(&format!("bottleneck_size {size} in adapter_config.json")),
            "{err}"
        );
    }
}
