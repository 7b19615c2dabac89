//! Strict loading: a checkpoint is understood entirely or refused. Tensors the config's model
//! does not use, configs too large for the machine's memory and degenerate configs are errors
//! that name what is wrong, before anything large is allocated.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use wick_model::{Config, Llama};

fn read_config(dir: &Path) -> serde_json::Map<String, Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

fn write_config(dir: &Path, c: &serde_json::Map<String, Value>) {
    std::fs::write(dir.join("config.json"), serde_json::to_string(c).unwrap()).unwrap();
}

/// A copy of a fixture folder's config.json and model.safetensors, with the tensors changed.
fn copy_with(
    fixture: &str,
    dir: &Path,
    change: impl FnOnce(&mut HashMap<String, Tensor>),
) -> HashMap<String, Tensor> {
    let src = wick_testkit::testdata(&format!("models/{fixture}"));
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let mut map =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    change(&mut map);
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
    map
}

fn load_err(dir: &Path) -> String {
    match Llama::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn an_unused_tensor_is_refused_naming_it_and_the_file() {
    // An o_proj bias in a Llama checkpoint whose config says attention_bias false: before, it
    // loaded and the bias was silently dropped.
    let tmp = tempfile::tempdir().unwrap();
    copy_with("llama-gqa", tmp.path(), |m| {
        m.insert("model.layers.0.self_attn.o_proj.bias".into(), zeros(&[32]));
    });
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors: tensor model.layers.0.self_attn.o_proj.bias is not used by the model"), "{e}");
    assert!(e.contains("(attention_bias is false)"), "{e}");
    assert!(!e.contains('\n'), "{e}");

    // Any name the model has no place for.
    copy_with("llama-gqa", tmp.path(), |m| {
        m.insert("model.rotary_emb.inv_freq".into(), zeros(&[4]));
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("tensor model.rotary_emb.inv_freq is not used"),
        "{e}"
    );

    // An MLP bias without mlp_bias, and Qwen2 (which transformers builds without o and MLP
    // biases whatever the config says) with an o_proj bias.
    copy_with("llama-gqa", tmp.path(), |m| {
        m.insert("model.layers.1.mlp.down_proj.bias".into(), zeros(&[32]));
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("tensor model.layers.1.mlp.down_proj.bias is not used"),
        "{e}"
    );
    assert!(e.contains("(mlp_bias is false)"), "{e}");
    copy_with("qwen2-bias", tmp.path(), |m| {
        m.insert("model.layers.0.self_attn.o_proj.bias".into(), zeros(&[32]));
    });
    let mut c = read_config(tmp.path());
    c.insert("attention_bias".into(), true.into());
    write_config(tmp.path(), &c);
    let e = load_err(tmp.path());
    assert!(
        e.contains("tensor model.layers.0.self_attn.o_proj.bias is not used"),
        "{e}"
    );
    assert!(
        e.contains("model_type \"qwen2\" has biases on q, k and v at most"),
        "{e}"
    );
}

#[test]
fn a_biased_checkpoint_under_a_bias_free_config_is_refused() {
    // The llama-bias fixture with its config's bias flags turned off: all its biases are left.
    let tmp = tempfile::tempdir().unwrap();
    copy_with("llama-bias", tmp.path(), |_| {});
    let mut c = read_config(tmp.path());
    c.insert("mlp_bias".into(), false.into());
    write_config(tmp.path(), &c);
    let e = load_err(tmp.path());
    assert!(
        e.contains("tensor model.layers.0.mlp.down_proj.bias (and 5 more: "),
        "{e}"
    );
    c.insert("attention_bias".into(), false.into());
    c.insert("mlp_bias".into(), true.into());
    write_config(tmp.path(), &c);
    let e = load_err(tmp.path());
    assert!(
        e.contains("tensor model.layers.0.self_attn.k_proj.bias (and 7 more: "),
        "{e}"
    );
    // And the other way round: biases the config promises but the file lacks are missing.
    c.insert("attention_bias".into(), true.into());
    write_config(tmp.path(), &c);
    copy_with("llama-gqa", tmp.path(), |_| {});
    write_config(tmp.path(), &c);
    let e = load_err(tmp.path());
    assert!(
        e.ends_with("missing tensor model.layers.0.self_attn.q_proj.bias"),
        "{e}"
    );
}

#[test]
fn fewer_layers_in_the_config_than_in_the_checkpoint_are_refused() {
    // A 4-layer checkpoint read with num_hidden_layers 0 (which loaded before: an embedding,
    // a norm and a head) and with 2.
    let tmp = tempfile::tempdir().unwrap();
    let json = r#"{"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "max_position_embeddings": 32}"#;
    Llama::init(Config::from_json(json).unwrap(), 1)
        .unwrap()
        .save(tmp.path())
        .unwrap();
    assert_eq!(Llama::load(tmp.path()).unwrap().config.num_layers, 4);
    let mut c = read_config(tmp.path());
    for (layers, first, more) in [
        (0, "model.layers.0.input_layernorm.weight", 35),
        (2, "model.layers.2.input_layernorm.weight", 17),
    ] {
        c.insert("num_hidden_layers".into(), layers.into());
        write_config(tmp.path(), &c);
        let e = load_err(tmp.path());
        assert!(
            e.contains(&format!("tensor {first} (and {more} more: ")),
            "{layers}: {e}"
        );
        assert!(
            e.contains(&format!("(num_hidden_layers is {layers})")),
            "{e}"
        );
    }
}

#[test]
fn a_tied_head_in_the_file_must_be_the_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let map = copy_with("llama-tied", tmp.path(), |m| {
        let e = m["model.embed_tokens.weight"].clone();
        m.insert("lm_head.weight".into(), e);
    });
    // The same values: the copy some writers keep; read as the tie.
    Llama::load(tmp.path()).unwrap();
    let mut map = map;
    let other = (&map["lm_head.weight"] + 1.0).unwrap();
    map.insert("lm_head.weight".into(), other);
    candle_core::safetensors::save(&map, tmp.path().join("model.safetensors")).unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains("lm_head.weight differs from model.embed_tokens.weight, but"),
        "{e}"
    );
    assert!(e.contains("has tie_word_embeddings true"), "{e}");
}

#[test]
fn a_classifier_with_an_lm_head_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    copy_with("llama-rm", tmp.path(), |m| {
        m.insert("lm_head.weight".into(), zeros(&[64, 32]));
    });
    let e = load_err(tmp.path());
    assert!(e.contains("tensor lm_head.weight is not used"), "{e}");
    assert!(
        e.contains("a sequence classifier has a score head instead"),
        "{e}"
    );
}

#[test]
fn refused_config_keys_are_named_by_the_loader_with_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    copy_with("llama-gqa", tmp.path(), |_| {});
    let mut c = read_config(tmp.path());
    c.insert(
        "rope_scaling".into(),
        serde_json::json!({"rope_type": "llama3", "factor": 8.0}),
    );
    write_config(tmp.path(), &c);
    let e = load_err(tmp.path());
    assert!(
        e.contains("config.json: rope_scaling type \"llama3\" is not implemented"),
        "{e}"
    );
    c.remove("rope_scaling");
    c.insert("rms_norm_eps".into(), (-1e-5).into());
    write_config(tmp.path(), &c);
    let e = load_err(tmp.path());
    assert!(
        e.contains("config.json: rms_norm_eps must be a non-negative number"),
        "{e}"
    );
}

/// A huge config: refused from its size alone, in well under a second and without touching
/// memory (the file holds no such tensors; a loader that allocated first would abort).
#[cfg(target_os = "linux")]
#[test]
fn configs_too_large_for_memory_are_refused_with_the_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    copy_with("llama-gqa", tmp.path(), |_| {});
    let base = read_config(tmp.path());
    for (key, value, want) in [
        (
            "vocab_size",
            1_000_000_000_000u64,
            "vocab_size 1000000000000 x hidden_size 32 x 2 (embeddings and head)",
        ),
        (
            "num_hidden_layers",
            1_000_000_000,
            "num_hidden_layers 1000000000 x 9280 per layer",
        ),
        ("hidden_size", 10_000_000_000, "hidden_size 10000000000"),
    ] {
        let mut c = base.clone();
        c.insert(key.into(), value.into());
        write_config(tmp.path(), &c);
        let started = std::time::Instant::now();
        let e = load_err(tmp.path());
        assert!(e.contains("config.json: the model ("), "{key}: {e}");
        assert!(e.contains(want), "{key}: {e}");
        assert!(e.contains("parameters x 4 bytes"), "{key}: {e}");
        assert!(e.contains("more than this machine's"), "{key}: {e}");
        assert!(e.contains(" available"), "{key}: {e}");
        assert!(!e.contains('\n'), "{e}");
        assert!(started.elapsed().as_secs_f64() < 1.0, "{key}: slow refusal");
        // A fresh model from the same config is refused the same way.
        let config = Config::from_json(&serde_json::to_string(&c).unwrap()).unwrap();
        let e = Llama::init(config, 0).err().unwrap().to_string();
        assert!(e.starts_with("the model ("), "{key}: {e}");
    }
    // 10^12 x 32 x 2 x 4 bytes: the estimate's figure.
    let mut c = base.clone();
    c.insert("vocab_size".into(), 1_000_000_000_000u64.into());
    write_config(tmp.path(), &c);
    let e = load_err(tmp.path());
    assert!(e.contains("needs ~232.8 TiB of memory"), "{e}");
}

#[test]
fn a_fresh_model_with_biases_saves_and_loads_them() {
    let json = r#"{"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "attention_bias": true, "mlp_bias": true}"#;
    let m = Llama::init(Config::from_json(json).unwrap(), 4).unwrap();
    let biases: Vec<String> = m
        .named_tensors()
        .into_iter()
        .filter(|(n, t)| {
            n.ends_with(".bias")
                && t.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    == 0.0
        })
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        biases.len(),
        14,
        "q, k, v, o, gate, up, down: zeros, as transformers"
    );
    assert!(biases.contains(&"model.layers.1.self_attn.o_proj.bias".to_string()));
    let tmp = tempfile::tempdir().unwrap();
    m.save(tmp.path()).unwrap();
    let c = read_config(tmp.path());
    assert_eq!(c["attention_bias"], true);
    assert_eq!(c["mlp_bias"], true);
    let back = Llama::load(tmp.path()).unwrap();
    assert_eq!(back.named_tensors().len(), m.named_tensors().len());
}

/// Found by fuzzing (the model_folder target of fuzz/): a sequence classifier whose
/// config.json has no model_type (transformers then reads it as Llama) was saved back as a
/// LlamaForCausalLM, so the saved reward model no longer loaded ("missing tensor
/// lm_head.weight"). Saving keeps its architectures.
#[test]
fn a_classifier_without_model_type_saves_as_a_classifier() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rm");
    std::fs::create_dir(&dir).unwrap();
    copy_with("llama-rm", &dir, |_| {});
    let mut c = read_config(&dir);
    assert!(c.remove("model_type").is_some());
    write_config(&dir, &c);
    let model = Llama::load(&dir).unwrap();
    assert_eq!(model.config.num_labels(), Some(1));
    let saved = tmp.path().join("saved");
    model.save(&saved).unwrap();
    let back = Llama::load(&saved).unwrap();
    assert_eq!(back.config.num_labels(), Some(1));
    assert_eq!(
        read_config(&saved)["architectures"],
        serde_json::json!(["LlamaForSequenceClassification"])
    );
}

/// Found with the model_folder target of fuzz/: a config.json of many layers of a few
/// parameters each (here 13: hidden_size 1, head_dim 2) passed the weight estimate, and the
/// loader then reserved room for every layer (about 700 bytes each, 13 times the weights),
/// aborting on an allocation larger than the machine before reading one tensor. The layers
/// are no longer reserved, so the file's missing tensors are reported.
#[test]
fn many_tiny_layers_are_not_reserved_before_their_tensors_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // As many 52-byte layers as 90% of the memory available (the estimate passes), or 10^6.
    let layers = wick_model::memory::available().map_or(1_000_000, |a| a / 52 * 9 / 10);
    let config = serde_json::json!({
        "vocab_size": 4, "hidden_size": 1, "intermediate_size": 1, "head_dim": 2,
        "num_hidden_layers": layers, "num_attention_heads": 1, "num_key_value_heads": 1,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let map = HashMap::from([("model.embed_tokens.weight".to_string(), zeros(&[4, 1]))]);
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
    let e = load_err(dir);
    assert!(
        e.ends_with("model.safetensors: missing tensor model.layers.0.self_attn.q_proj.weight"),
        "{e}"
    );
}
