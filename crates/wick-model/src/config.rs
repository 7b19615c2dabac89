//! config.json as transformers writes it for Llama and Qwen2, resolved to what the model needs.

use std::path::Path;

use serde::Deserialize;
use wick_io::{Error, Result};

#[derive(Debug, Deserialize)]
struct RopeParameters {
    rope_theta: f64,
    #[serde(default)]
    rope_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default)]
    rms_norm_eps: Option<f64>,
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: Option<bool>,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    max_position_embeddings: Option<usize>,
    #[serde(default)]
    initializer_range: Option<f64>,
    #[serde(default)]
    eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    bos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pad_token_id: Option<serde_json::Value>,
}

/// `eos_token_id` is an int, a list of ints or null in transformers' configs.
fn token_ids(v: &Option<serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect(),
        _ => Vec::new(),
    }
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
    /// Biases on the q, k and v projections (Qwen2 always has them).
    pub qkv_bias: bool,
    pub max_position_embeddings: usize,
    /// Standard deviation of the normal initialisation (transformers' `initializer_range`).
    pub initializer_range: f64,
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// The config.json as read, so that saving keeps every field wick does not use.
    pub json: serde_json::Map<String, serde_json::Value>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        Config::from_json(&text).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
    }

    pub fn from_json(text: &str) -> std::result::Result<Config, String> {
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("not a usable config.json: {e}"))?;
        let raw: Raw = serde_json::from_value(serde_json::Value::Object(json.clone()))
            .map_err(|e| format!("not a usable config.json: {e}"))?;
        if let Some(t) = raw.model_type.as_deref() {
            if !matches!(t, "llama" | "qwen2" | "mistral") {
                return Err(format!(
                    "model_type {t:?} is not supported (llama, qwen2 or mistral)"
                ));
            }
        }
        let qwen2 = raw.model_type.as_deref() == Some("qwen2");
        if let Some(act) = raw.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(format!("hidden_act {act:?} is not supported (only silu)"));
        }
        // transformers 5 writes rope_parameters; older configs a top-level rope_theta.
        let rope_theta = match (&raw.rope_parameters, raw.rope_theta) {
            (Some(p), _) => {
                if let Some(t) = p.rope_type.as_deref().filter(|t| *t != "default") {
                    return Err(format!(
                        "rope_type {t:?} is not supported yet (only default)"
                    ));
                }
                p.rope_theta
            }
            (None, Some(t)) => t,
            (None, None) => 10_000.0,
        };
        let heads = raw.num_attention_heads;
        let kv = raw.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv == 0 || !heads.is_multiple_of(kv) {
            return Err(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}"
            ));
        }
        let head_dim = raw.head_dim.unwrap_or(raw.hidden_size / heads);
        if !head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {head_dim} must be even for rotary embeddings"
            ));
        }
        Ok(Config {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: heads,
            num_kv_heads: kv,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            qkv_bias: raw.attention_bias.unwrap_or(qwen2),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(2048),
            initializer_range: raw.initializer_range.unwrap_or(0.02),
            eos_token_ids: token_ids(&raw.eos_token_id),
            bos_token_id: token_ids(&raw.bos_token_id).first().copied(),
            pad_token_id: token_ids(&raw.pad_token_id).first().copied(),
            json,
        })
    }

    /// Some(labels) for a sequence-classification model (`architectures` names a
    /// `...ForSequenceClassification`, e.g. a reward model with 1 label): its head is
    /// `score.weight` [labels, hidden] instead of lm_head. Labels from `num_labels`, else
    /// `id2label`, else transformers' default of 2.
    pub fn num_labels(&self) -> Option<usize> {
        let classifier = self
            .json
            .get("architectures")
            .and_then(|a| a.as_array())
            .is_some_and(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .any(|x| x.ends_with("ForSequenceClassification"))
            });
        if !classifier {
            return None;
        }
        let from_map = self
            .json
            .get("id2label")
            .and_then(|m| m.as_object())
            .map(|m| m.len());
        Some(
            self.json
                .get("num_labels")
                .and_then(|n| n.as_u64())
                .map(|n| n as usize)
                .or(from_map)
                .unwrap_or(2),
        )
    }

    /// config.json for this model, as transformers reads it: the fields read in are kept,
    /// the ones wick resolves are written back in their plain spelling.
    pub fn to_json(&self) -> String {
        use serde_json::{json, Value};
        let mut m = self.json.clone();
        let mut set = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        if !self.json.contains_key("model_type") {
            set("model_type", json!("llama"));
            set("architectures", json!(["LlamaForCausalLM"]));
        }
        set("vocab_size", json!(self.vocab_size));
        set("hidden_size", json!(self.hidden_size));
        set("intermediate_size", json!(self.intermediate_size));
        set("num_hidden_layers", json!(self.num_layers));
        set("num_attention_heads", json!(self.num_heads));
        set("num_key_value_heads", json!(self.num_kv_heads));
        set("head_dim", json!(self.head_dim));
        set("rms_norm_eps", json!(self.rms_norm_eps));
        set("tie_word_embeddings", json!(self.tie_word_embeddings));
        set("attention_bias", json!(self.qkv_bias));
        set(
            "max_position_embeddings",
            json!(self.max_position_embeddings),
        );
        set("hidden_act", json!("silu"));
        set("initializer_range", json!(self.initializer_range));
        // Keep whichever rope spelling the file had; write both when it had neither.
        match m.get_mut("rope_parameters") {
            Some(Value::Object(p)) => {
                p.insert("rope_theta".into(), json!(self.rope_theta));
            }
            _ => {
                m.insert("rope_theta".into(), json!(self.rope_theta));
            }
        }
        let ids = |v: &[u32]| match v {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        m.insert("eos_token_id".into(), ids(&self.eos_token_ids));
        m.insert(
            "bos_token_id".into(),
            self.bos_token_id.map_or(Value::Null, |x| json!(x)),
        );
        m.insert(
            "pad_token_id".into(),
            self.pad_token_id.map_or(Value::Null, |x| json!(x)),
        );
        m.remove("torch_dtype");
        m.insert("dtype".into(), json!("float32"));
        serde_json::to_string_pretty(&Value::Object(m)).unwrap() + "\n"
    }

    /// Parameters that take part in matrix products (for FLOP estimates), and all of them.
    pub fn param_counts(&self) -> (usize, usize) {
        let (h, hd, i) = (self.hidden_size, self.head_dim, self.intermediate_size);
        let attn = h * hd * (self.num_heads * 2 + self.num_kv_heads * 2)
            + if self.qkv_bias {
                hd * (self.num_heads + 2 * self.num_kv_heads)
            } else {
                0
            };
        let block = attn + 3 * h * i + 2 * h;
        let head = self.vocab_size * h;
        let embed = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * h
        };
        let matmul = self.num_layers * block + head;
        (matmul, matmul + embed + h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#""vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4"#;

    #[test]
    fn rope_theta_from_either_spelling() {
        let top = Config::from_json(&format!("{{{BASE}, \"rope_theta\": 500000.0}}")).unwrap();
        assert_eq!(top.rope_theta, 500000.0);
        let nested = Config::from_json(&format!("{{{BASE}, \"rope_theta\": 1.0, \"rope_parameters\": {{\"rope_type\": \"default\", \"rope_theta\": 1e6}}}}")).unwrap();
        assert_eq!(
            nested.rope_theta, 1e6,
            "rope_parameters wins, as in transformers"
        );
        assert_eq!(
            Config::from_json(&format!("{{{BASE}}}"))
                .unwrap()
                .rope_theta,
            10000.0
        );
    }

    #[test]
    fn defaults_and_refusals() {
        let c = Config::from_json(&format!("{{{BASE}, \"model_type\": \"qwen2\"}}")).unwrap();
        assert!(c.qkv_bias);
        assert_eq!((c.num_kv_heads, c.head_dim), (4, 8));
        let e = Config::from_json(&format!("{{{BASE}, \"num_key_value_heads\": 3}}")).unwrap_err();
        assert!(e.contains("not a multiple"), "{e}");
        let e = Config::from_json(&format!(
            "{{{BASE}, \"rope_parameters\": {{\"rope_type\": \"yarn\", \"rope_theta\": 1.0}}}}"
        ))
        .unwrap_err();
        assert!(e.contains("yarn"), "{e}");
        assert!(Config::from_json("{\"vocab_size\": 3}")
            .unwrap_err()
            .contains("not a usable config.json"));
    }
}
