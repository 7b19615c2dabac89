//! LoRA adapters in PEFT's format: `adapter_config.json` and `adapter_model.safetensors` with
//! keys like `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` (A [r, in],
//! B [out, r]). A linear layer with an adapter computes x W^T + s (x A^T) B^T, s = alpha / r
//! (alpha / sqrt(r) with rsLoRA); merging folds s B A into W.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use wick_io::{Error, Result};

/// The linear layers an adapter may target, by their Hugging Face module name.
pub const TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub rslora: bool,
    pub dropout: f64,
    /// Short module names (q_proj, ...).
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// The factor on B A: alpha / r, or alpha / sqrt(r) with rsLoRA.
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }
}

impl LoraConfig {
    /// adapter_config.json as PEFT writes it for these settings (PEFT reads it back with
    /// `PeftModel.from_pretrained`).
    pub fn to_json(&self, base_model: &str) -> String {
        let v = serde_json::json!({
            "alpha_pattern": {},
            "base_model_name_or_path": base_model,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "layers_pattern": null,
            "layers_to_transform": null,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "modules_to_save": null,
            "peft_type": "LORA",
            "r": self.r,
            "rank_pattern": {},
            "revision": null,
            "target_modules": self.targets,
            "task_type": "CAUSAL_LM",
            "use_dora": false,
            "use_rslora": self.rslora,
        });
        serde_json::to_string_pretty(&v).expect("serialises") + "\n"
    }
}

/// The PEFT tensor name of a module's A or B.
pub fn key(module: &str, which: char) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

/// A loaded LoRA adapter: its configuration and (A, B) per module path
/// (`model.layers.0.self_attn.q_proj`).
#[derive(Clone)]
pub struct LoraAdapter {
    pub config: LoraConfig,
    pub weights: BTreeMap<String, (Tensor, Tensor)>,
}

fn bad(file: &Path, msg: impl std::fmt::Display) -> Error {
    Error::msg(format!("{}: {msg}", file.display()))
}

/// Reads and checks adapter_config.json: a plain LoRA adapter is all wick applies; every PEFT
/// option that would change the computation is refused by name rather than ignored.
pub fn read_config(file: &Path) -> Result<LoraConfig> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file.display(), e))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| bad(file, format!("malformed JSON: {e}")))?;
    let peft_type = v.get("peft_type").and_then(Value::as_str).unwrap_or("");
    if peft_type != "LORA" {
        return Err(bad(
            file,
            format!("peft_type {peft_type:?}: only LoRA adapters (\"LORA\") are supported"),
        ));
    }
    let truthy = |k: &str| v.get(k).is_some_and(|x| x.as_bool() == Some(true));
    let nonempty = |k: &str| match v.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    for (key, what) in [
        ("use_dora", "DoRA (use_dora)"),
        ("fan_in_fan_out", "fan_in_fan_out (Conv1D-style weights)"),
        ("lora_bias", "LoRA biases (lora_bias)"),
        ("use_qalora", "QA-LoRA (use_qalora)"),
    ] {
        if truthy(key) {
            return Err(bad(file, format!("{what} is not supported")));
        }
    }
    for (key, what) in [
        ("rank_pattern", "per-module ranks (rank_pattern)"),
        ("alpha_pattern", "per-module alphas (alpha_pattern)"),
        (
            "modules_to_save",
            "fully trained extra modules (modules_to_save)",
        ),
        ("layer_replication", "replicated layers (layer_replication)"),
        (
            "target_parameters",
            "adapters on raw parameters (target_parameters)",
        ),
        (
            "trainable_token_indices",
            "trainable token embeddings (trainable_token_indices)",
        ),
        (
            "alora_invocation_tokens",
            "activated LoRA (alora_invocation_tokens)",
        ),
        ("use_bdlora", "BD-LoRA (use_bdlora)"),
    ] {
        if nonempty(key) {
            return Err(bad(file, format!("{what} are not supported")));
        }
    }
    if let Some(b) = v.get("bias").and_then(Value::as_str) {
        if b != "none" {
            return Err(bad(
                file,
                format!("bias {b:?} is not supported (only \"none\")"),
            ));
        }
    }
    let r = v
        .get("r")
        .and_then(Value::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| bad(file, "\"r\" must be a positive integer"))? as usize;
    let alpha = v
        .get("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| bad(file, "\"lora_alpha\" must be a number"))?;
    let targets = match v.get("target_modules") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(file, "\"target_modules\" must hold strings"))?,
        // A regular expression in PEFT; the tensors below say which modules it matched.
        Some(Value::String(_)) => Vec::new(),
        _ => return Err(bad(file, "\"target_modules\" is missing")),
    };
    for t in &targets {
        if !TARGETS.contains(&t.as_str()) {
            return Err(bad(
                file,
                format!(
                    "target module {t:?} is not supported (choose from {})",
                    TARGETS.join(", ")
                ),
            ));
        }
    }
    Ok(LoraConfig {
        r,
        alpha,
        rslora: truthy("use_rslora"),
        dropout: v.get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        targets,
    })
}

impl LoraAdapter {
    /// Loads a PEFT LoRA adapter folder.
    pub fn load(dir: &Path) -> Result<LoraAdapter> {
        let config = read_config(&dir.join("adapter_config.json"))?;
        let file = dir.join("adapter_model.safetensors");
        if !file.is_file() {
            return Err(bad(
                dir,
                "no adapter_model.safetensors (adapter_model.bin is not supported)",
            ));
        }
        let map = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| bad(&file, format!("cannot read safetensors: {e}")))?;
        let mut halves: HashMap<String, (Option<Tensor>, Option<Tensor>)> = HashMap::new();
        for (key, t) in map {
            let (module, which) = parse_key(&key).ok_or_else(|| {
                bad(&file, format!("unexpected tensor {key:?} (expected base_model.model.<module>.lora_A/lora_B.weight)"))
            })?;
            let t = t.to_dtype(DType::F32).map_err(|e| bad(&file, e))?;
            let slot = halves.entry(module).or_default();
            if which == 'A' {
                slot.0 = Some(t);
            } else {
                slot.1 = Some(t);
            }
        }
        let mut weights = BTreeMap::new();
        for (module, (a, b)) in halves {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(bad(
                    &file,
                    format!("{module}: lora_A and lora_B must both be present"),
                ));
            };
            let short = module.rsplit('.').next().unwrap_or("");
            if !TARGETS.contains(&short) {
                return Err(bad(
                    &file,
                    format!("{module}: only {} can carry LoRA", TARGETS.join(", ")),
                ));
            }
            if a.dims().len() != 2
                || b.dims().len() != 2
                || a.dim(0).ok() != Some(config.r)
                || b.dim(1).ok() != Some(config.r)
            {
                return Err(bad(
                    &file,
                    format!(
                        "{module}: lora_A {:?} and lora_B {:?} do not have rank r = {}",
                        a.dims(),
                        b.dims(),
                        config.r
                    ),
                ));
            }
            weights.insert(module, (a, b));
        }
        if weights.is_empty() {
            return Err(bad(&file, "holds no LoRA weights"));
        }
        Ok(LoraAdapter { config, weights })
    }
}

/// `base_model.model.<module>.lora_A.weight` (optionally with PEFT's adapter name before
/// `.weight`) -> (module, 'A' or 'B').
fn parse_key(key: &str) -> Option<(String, char)> {
    let rest = key.strip_prefix("base_model.model.")?;
    for (tag, which) in [(".lora_A.", 'A'), (".lora_B.", 'B')] {
        if let Some(i) = rest.find(tag) {
            let tail = &rest[i + tag.len()..];
            if tail == "weight" || tail.ends_with(".weight") {
                return Some((rest[..i].to_string(), which));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_peft_writes_them() {
        assert_eq!(
            parse_key("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight"),
            Some(("model.layers.3.mlp.up_proj".to_string(), 'B'))
        );
        assert_eq!(
            parse_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"),
            Some(("model.layers.0.self_attn.q_proj".to_string(), 'A'))
        );
        assert_eq!(parse_key("model.layers.0.self_attn.q_proj.weight"), None);
    }

    #[test]
    fn unsupported_options_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("wick-adapter-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("adapter_config.json");
        let base = r#""peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]"#;
        for (extra, want) in [
            (r#", "use_dora": true"#, "DoRA"),
            (r#", "rank_pattern": {"q_proj": 8}"#, "rank_pattern"),
            (r#", "bias": "all""#, "bias"),
            (r#", "modules_to_save": ["lm_head"]"#, "modules_to_save"),
        ] {
            std::fs::write(&f, format!("{{{base}{extra}}}")).unwrap();
            let e = read_config(&f).unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
        std::fs::write(&f, format!("{{{base}, \"use_rslora\": true}}")).unwrap();
        let c = read_config(&f).unwrap();
        assert!((c.scale() - 4.0).abs() < 1e-12);
        std::fs::write(&f, r#"{"peft_type": "IA3", "r": 4}"#).unwrap();
        assert!(read_config(&f)
            .unwrap_err()
            .to_string()
            .contains("only LoRA"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
