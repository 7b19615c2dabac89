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
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        Config::from_json(&text).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
    }

    pub fn from_json(text: &str) -> std::result::Result<Config, String> {
        let raw: Raw =
            serde_json::from_str(text).map_err(|e| format!("not a usable config.json: {e}"))?;
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
        })
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
