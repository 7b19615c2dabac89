//! wick's decoder against transformers on the tiny models in testdata/models (made by
//! scripts/gen_tiny_llama.py): per-token log-probs and last-position logits within 1e-4, and
//! the same greedy continuation.

use candle_core::{Device, Tensor, D};
use serde_json::Value;
use wick_model::Llama;

fn reference(model: &str) -> (Llama, Value) {
    let dir = wick_testkit::testdata(&format!("models/{model}"));
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    (Llama::load(&dir).unwrap(), r)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn check(model: &str) {
    let (m, r) = reference(model);
    let rows: Vec<Vec<u32>> = r["input_ids"].as_array().unwrap().iter().map(ids).collect();
    let (b, t) = (rows.len(), rows[0].len());
    let input = Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu).unwrap();
    let logits = m.forward(&input).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let mut worst = 0f32;
    for (s, row) in rows.iter().enumerate() {
        let want = floats(&r["logprobs"][s]);
        for (p, &next) in row[1..].iter().enumerate() {
            let got: f32 = logp
                .get(s)
                .unwrap()
                .get(p)
                .unwrap()
                .get(next as usize)
                .unwrap()
                .to_scalar()
                .unwrap();
            worst = worst.max((got - want[p]).abs());
        }
        let last: Vec<f32> = logits
            .get(s)
            .unwrap()
            .get(t - 1)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (g, w) in last.iter().zip(floats(&r["last_logits"][s])) {
            worst = worst.max((g - w).abs());
        }
    }
    assert!(worst < 1e-4, "{model}: largest difference {worst}");
    // Greedy continuation by full re-forward (the KV cache comes with generation).
    let mut seq = ids(&r["greedy"]["prompt"]);
    let n = r["greedy"]["max_new_tokens"].as_u64().unwrap() as usize;
    for _ in 0..n {
        let x = Tensor::from_vec(seq.clone(), (1, seq.len()), &Device::Cpu).unwrap();
        let l = m.forward(&x).unwrap();
        let next: u32 = l
            .get(0)
            .unwrap()
            .get(seq.len() - 1)
            .unwrap()
            .argmax(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        seq.push(next);
    }
    let prompt_len = seq.len() - n;
    assert_eq!(
        seq[prompt_len..],
        ids(&r["greedy"]["tokens"])[..],
        "{model}: greedy tokens"
    );
}

#[test]
fn llama_with_grouped_query_attention_matches_transformers() {
    check("llama-gqa");
}

#[test]
fn llama_with_tied_embeddings_and_rope_parameters_matches_transformers() {
    check("llama-tied");
}

#[test]
fn qwen2_with_attention_biases_matches_transformers() {
    check("qwen2-bias");
}

#[test]
fn a_missing_or_misshapen_tensor_is_named() {
    let tmp = std::env::temp_dir().join(format!("wick-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let src = wick_testkit::testdata("models/llama-gqa");
    std::fs::copy(src.join("config.json"), tmp.join("config.json")).unwrap();
    let mut map =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    map.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&map, tmp.join("model.safetensors")).unwrap();
    let e = Llama::load(&tmp).err().unwrap().to_string();
    assert!(
        e.ends_with("missing tensor model.layers.1.mlp.up_proj.weight"),
        "{e}"
    );
    map.insert(
        "model.layers.1.mlp.up_proj.weight".into(),
        Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&map, tmp.join("model.safetensors")).unwrap();
    let e = Llama::load(&tmp).err().unwrap().to_string();
    assert!(
        e.contains("up_proj.weight has shape [3, 3], expected [64, 32]"),
        "{e}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}
