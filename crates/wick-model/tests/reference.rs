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
    check_with(model, false)
}

/// `transposed`: with `keep_transposed_weights`, the forward-only path (the reference inputs
/// are 24 rows, above the decoding path's limit, so the projections take it).
fn check_with(model: &str, transposed: bool) {
    let (mut m, r) = reference(model);
    if transposed {
        m.keep_transposed_weights().unwrap();
    }
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
fn llama_with_attention_and_mlp_biases_matches_transformers() {
    // attention_bias: q, k, v and o biases; mlp_bias: gate, up and down biases.
    check("llama-bias");
}

#[test]
fn transposed_weights_match_transformers_too() {
    check_with("llama-gqa", true);
    check_with("qwen2-bias", true);
    check_with("llama-bias", true);
}

/// The largest difference of two models' logits on the reference batch.
fn logits_gap(a: &Llama, b: &Llama, r: &Value) -> f32 {
    let rows: Vec<Vec<u32>> = r["input_ids"].as_array().unwrap().iter().map(ids).collect();
    let x = Tensor::from_vec(rows.concat(), (rows.len(), rows[0].len()), &Device::Cpu).unwrap();
    let (la, lb) = (a.forward(&x).unwrap(), b.forward(&x).unwrap());
    (la - lb)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn every_llama_bias_moves_the_numbers() {
    // The fixture can tell a loader that drops any kind of bias: zeroing the o_proj biases, or
    // the MLP's, changes the logits well beyond the comparison's 1e-4.
    let (m, r) = reference("llama-bias");
    for kind in [
        "self_attn.q_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    ] {
        let mut zeroed = m.clone();
        let zeros: std::collections::HashMap<String, Tensor> = m
            .named_tensors()
            .into_iter()
            .filter(|(n, _)| n.ends_with(&format!("{kind}.bias")))
            .map(|(n, t)| (n, t.zeros_like().unwrap()))
            .collect();
        assert_eq!(zeros.len(), 2, "{kind}: one bias a layer");
        zeroed.set_tensors(&zeros).unwrap();
        let gap = logits_gap(&m, &zeroed, &r);
        assert!(gap > 1e-2, "{kind} biases change the logits by only {gap}");
    }
}

#[test]
fn bias_gradients_match_torch_through_the_fused_training_products() {
    // make_trainable: the q/k/v and gate/up products run fused, each with its biases.
    let (mut m, r) = reference("llama-bias");
    let vars = m.make_trainable().unwrap();
    let rows: Vec<Vec<u32>> = r["input_ids"].as_array().unwrap().iter().map(ids).collect();
    let x = Tensor::from_vec(rows.concat(), (rows.len(), rows[0].len()), &Device::Cpu).unwrap();
    let loss = wick_model::lm_loss(&m, &x, None, None).unwrap();
    let want = &r["grads"];
    let got: f32 = loss.to_scalar().unwrap();
    assert!(
        (got - want["loss"].as_f64().unwrap() as f32).abs() < 1e-5,
        "loss {got} vs {}",
        want["loss"]
    );
    let store = loss.backward().unwrap();
    let first8 = want["first8"].as_object().unwrap();
    assert_eq!(first8.len(), 8);
    for (name, values) in first8 {
        let var = &vars.iter().find(|(n, _)| n == name).unwrap().1;
        let g: Vec<f32> = store
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in g.iter().zip(floats(values)) {
            assert!(
                (a - b).abs() < 1e-5 + 1e-3 * b.abs(),
                "{name}: gradient {a} vs torch {b}"
            );
        }
    }
}

#[test]
fn lora_on_biased_layers_computes_its_merge() {
    // An adapter on every projection (B non-zero) over biased layers: the adapter's forward
    // pass, the frozen-weight fused path and the folded weights agree, and the biases stay.
    let (base, r) = reference("llama-bias");
    let mut m = base.clone();
    let cfg = wick_model::lora::LoraConfig {
        r: 4,
        alpha: 8.0,
        rslora: false,
        dropout: 0.0,
        targets: wick_model::lora::TARGETS.map(String::from).to_vec(),
    };
    m.add_lora(&cfg, 3).unwrap();
    let moved: std::collections::HashMap<String, Tensor> = m
        .adapter_tensors()
        .into_iter()
        .map(|(n, t)| {
            let t = if n.contains("lora_B") {
                t.ones_like().unwrap().affine(0.05, 0.0).unwrap()
            } else {
                t
            };
            (n, t)
        })
        .collect();
    m.set_adapter_tensors(&moved).unwrap();
    let mut merged = m.clone();
    merged.merge_adapter().unwrap();
    assert!(
        logits_gap(&m, &base, &r) > 1e-2,
        "the adapter does something"
    );
    let gap = logits_gap(&m, &merged, &r);
    assert!(gap < 1e-4, "adapter vs merged: {gap}");
    let biases = |x: &Llama| {
        x.named_tensors()
            .into_iter()
            .filter(|(n, _)| n.ends_with(".bias"))
            .count()
    };
    assert_eq!(biases(&merged), 14);
}

#[test]
fn kept_transposed_weights_never_stand_in_for_changed_or_training_weights() {
    let dir = wick_testkit::testdata("models/llama-gqa");
    let input = Tensor::from_vec((0..24u32).collect(), (2, 12), &Device::Cpu).unwrap();
    let mut m = Llama::load(&dir).unwrap();
    let before = m.named_tensors();
    m.keep_transposed_weights().unwrap();
    // The weights, now views of their transposed storage, read as before.
    for ((name, a), (_, b)) in before.iter().zip(m.named_tensors()) {
        assert_eq!(a.dims(), b.dims(), "{name}");
        let same = a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            == b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(same, "{name} changed");
    }
    // Replaced weights: the copies of the old ones must not be used.
    let mut changed = std::collections::HashMap::new();
    for (name, t) in m.named_tensors() {
        if name.ends_with("proj.weight") {
            changed.insert(name, (t * 0.5).unwrap());
        }
    }
    m.set_tensors(&changed).unwrap();
    let mut fresh = Llama::load(&dir).unwrap();
    fresh.set_tensors(&changed).unwrap();
    let diff = (m.forward(&input).unwrap() - fresh.forward(&input).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "stale transposed copies used: {diff}");
    // Trainable weights: the forward-only product must step aside so gradients flow.
    let mut t = Llama::load(&dir).unwrap();
    t.keep_transposed_weights().unwrap();
    let vars = t.make_trainable().unwrap();
    let loss = t
        .forward(&input)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let (_, q) = vars
        .iter()
        .find(|(n, _)| n == "model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    let g = grads.get(q).expect("q_proj has a gradient");
    let norm = g
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(norm > 0.0);
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
    // A truncated file (the header cut short) and an empty one are named, not mapped blindly.
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    for cut in [1000, 0] {
        std::fs::write(tmp.join("model.safetensors"), &bytes[..cut]).unwrap();
        let e = Llama::load(&tmp).err().unwrap().to_string();
        assert!(
            e.contains("model.safetensors: cannot read safetensors"),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

struct NoDraw;
impl wick_model::generation::Uniform for NoDraw {
    fn uniform(&mut self) -> f64 {
        unreachable!("greedy decoding draws nothing")
    }
}

/// Greedy decoding through the KV cache gives transformers' continuation, and the same
/// ids and log-probs as recomputing every position.
fn check_generation(model: &str) {
    use wick_model::generation::{generate, Sampling};
    let (m, r) = reference(model);
    let prompt = ids(&r["greedy"]["prompt"]);
    let n = r["greedy"]["max_new_tokens"].as_u64().unwrap() as usize;
    let mut s = Sampling {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        max_new_tokens: n,
        no_cache: false,
    };
    let cached = generate(&m, &prompt, &s, &[], &mut NoDraw).unwrap();
    assert_eq!(
        cached.ids,
        ids(&r["greedy"]["tokens"]),
        "{model}: cached greedy tokens"
    );
    s.no_cache = true;
    let full = generate(&m, &prompt, &s, &[], &mut NoDraw).unwrap();
    assert_eq!(cached.ids, full.ids, "{model}");
    for (a, b) in cached.logprobs.iter().zip(&full.logprobs) {
        assert!((a - b).abs() < 1e-5, "{model}: cached {a} vs full {b}");
    }
}

#[test]
fn kv_cache_generation_matches_transformers_and_full_recompute() {
    for m in ["llama-gqa", "llama-tied", "qwen2-bias", "llama-bias"] {
        check_generation(m);
    }
}

#[test]
fn saved_folders_load_back_identically_under_hugging_face_names() {
    // The last: weights stored transposed (strided [out, in] views) save as [out, in] too.
    for (name, transposed) in [
        ("llama-gqa", false),
        ("llama-tied", false),
        ("qwen2-bias", false),
        ("qwen2-bias", true),
        ("llama-bias", false),
        ("llama-bias", true),
    ] {
        let src = wick_testkit::testdata(&format!("models/{name}"));
        let mut m = Llama::load(&src).unwrap();
        if transposed {
            m.keep_transposed_weights().unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        m.save(tmp.path()).unwrap();
        let original =
            candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
        let saved =
            candle_core::safetensors::load(tmp.path().join("model.safetensors"), &Device::Cpu)
                .unwrap();
        let mut a: Vec<&String> = original.keys().collect();
        let mut b: Vec<&String> = saved.keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}: the same tensor names as transformers wrote");
        for (k, t) in &original {
            let d: f32 = (t - &saved[k])
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(d, 0.0, "{name}: {k} changed");
        }
        let back = Llama::load(tmp.path()).unwrap();
        assert_eq!(back.config.to_json(), m.config.to_json());
        let cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join("config.json")).unwrap())
                .unwrap();
        let orig: Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap())
                .unwrap();
        for k in [
            "model_type",
            "architectures",
            "vocab_size",
            "num_key_value_heads",
            "tie_word_embeddings",
            "rope_parameters",
            "rope_theta",
            "eos_token_id",
            "attention_bias",
            "mlp_bias",
        ] {
            assert_eq!(cfg.get(k), orig.get(k), "{name}: config field {k}");
        }
    }
}

#[test]
fn fresh_models_are_seeded_and_initialised_like_transformers() {
    let c = wick_model::Config::from_json(r#"{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "initializer_range": 0.02}"#).unwrap();
    let a = Llama::init(c.clone(), 7).unwrap().named_tensors();
    let b = Llama::init(c.clone(), 7).unwrap().named_tensors();
    let other = Llama::init(c, 8).unwrap().named_tensors();
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(
            x.to_dtype(candle_core::DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{n}: same seed, same weights"
        );
    }
    let w = a
        .iter()
        .find(|(n, _)| n == "model.layers.0.mlp.up_proj.weight")
        .unwrap()
        .1
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    let std = (w.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt();
    assert!(
        mean.abs() < 2e-3 && (std - 0.02).abs() < 1e-3,
        "normal(0, 0.02): mean {mean}, std {std}"
    );
    let norm = a
        .iter()
        .find(|(n, _)| n == "model.norm.weight")
        .unwrap()
        .1
        .to_vec1::<f32>()
        .unwrap();
    assert!(norm.iter().all(|&x| x == 1.0));
    let o = other
        .iter()
        .find(|(n, _)| n == "model.layers.0.mlp.up_proj.weight")
        .unwrap()
        .1
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(w, o, "another seed, other weights");
}
