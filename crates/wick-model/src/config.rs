//! config.json as transformers writes it for Llama, Qwen2 and Mistral, resolved to what the
//! model needs. Strict: every key that changes the computation is either implemented or refused
//! by name, and degenerate values are refused naming the field (see docs/FORMATS.md).

use std::path::Path;

use serde_json::{Map, Value};
use wick_io::{Error, Result};

/// The transformers model class a config describes (its `model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `llama` (also a config without `model_type`): `attention_bias` puts biases on q, k, v
    /// and o; `mlp_bias` on gate, up and down.
    Llama,
    /// `qwen2`: biases on q, k and v always, never on o or the MLP.
    Qwen2,
    /// `mistral`: no biases; a sliding window on every layer unless `sliding_window` is null.
    Mistral,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Mistral => "mistral",
        }
    }

    /// The prefix of its transformers classes (`LlamaForCausalLM`).
    fn class(self) -> &'static str {
        match self {
            Family::Llama => "Llama",
            Family::Qwen2 => "Qwen2",
            Family::Mistral => "Mistral",
        }
    }

    /// transformers' default `max_position_embeddings` for the class.
    fn default_context(self) -> usize {
        match self {
            Family::Llama => 2048,
            Family::Qwen2 => 32768,
            Family::Mistral => 4096 * 32,
        }
    }
}

/// Typed, named access to config.json's fields; null reads as absent, as in transformers.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn uint(&self, key: &str) -> std::result::Result<Option<usize>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("{key} must be a non-negative integer, not {v}")),
        }
    }

    fn required(&self, key: &str) -> std::result::Result<usize, String> {
        self.uint(key)?
            .ok_or_else(|| format!("not a usable config.json: {key} is missing"))
    }

    fn float(&self, key: &str) -> std::result::Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("{key} must be a number, not {v}")),
        }
    }

    fn flag(&self, key: &str) -> std::result::Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| format!("{key} must be true or false, not {v}")),
        }
    }

    fn text(&self, key: &str) -> std::result::Result<Option<&str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| format!("{key} must be a string, not {v}")),
        }
    }
}

/// `eos_token_id` is an int, a list of ints or null in transformers' configs.
fn token_ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a
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
    pub family: Family,
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
    /// Biases on the q, k and v projections (Qwen2 always has them; Llama with
    /// `attention_bias`).
    pub qkv_bias: bool,
    /// A bias on the attention output projection o_proj (Llama with `attention_bias`).
    pub o_bias: bool,
    /// Biases on gate_proj, up_proj and down_proj (Llama with `mlp_bias`).
    pub mlp_bias: bool,
    pub max_position_embeddings: usize,
    /// Standard deviation of the normal initialisation (transformers' `initializer_range`).
    pub initializer_range: f64,
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// The config.json as read, so that saving keeps every field wick does not use.
    pub json: Map<String, Value>,
}

/// The rotary embedding's settings as transformers 5 resolves them: `rope_scaling` (the older
/// spelling) wins over `rope_parameters`; `rope_theta` and `partial_rotary_factor` come from
/// that dict, else from the top level. Returns rope_theta; anything but plain RoPE is refused.
fn rope(f: &Fields) -> std::result::Result<f64, String> {
    let (key, dict) = match (f.get("rope_scaling"), f.get("rope_parameters")) {
        (Some(s), _) => ("rope_scaling", Some(s)),
        (None, Some(p)) => ("rope_parameters", Some(p)),
        (None, None) => ("rope_parameters", None),
    };
    let empty = Map::new();
    let dict = match dict {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(v) => return Err(format!("{key} must be an object, not {v}")),
    };
    if let Some((layer, _)) = dict.iter().find(|(_, v)| v.is_object()) {
        return Err(format!(
            "{key} per layer type ({layer:?}) is not implemented"
        ));
    }
    let inner = Fields(dict);
    let kind = match inner.text("rope_type")? {
        Some(t) => Some(t),
        None => inner.text("type")?,
    };
    if let Some(t) = kind.filter(|t| *t != "default") {
        return Err(format!(
            "{key} type {t:?} is not implemented (only default RoPE)"
        ));
    }
    let partial = match inner.float("partial_rotary_factor")? {
        Some(p) => Some(p),
        None => f.float("partial_rotary_factor")?,
    };
    if let Some(p) = partial.filter(|p| *p != 1.0) {
        return Err(format!(
            "partial_rotary_factor {p} is not implemented (rotary embeddings over the whole head only)"
        ));
    }
    let theta = match inner.float("rope_theta")? {
        Some(t) => t,
        None => f.float("rope_theta")?.unwrap_or(10_000.0),
    };
    if !(theta > 0.0 && theta.is_finite()) {
        return Err(format!("rope_theta must be a positive number, not {theta}"));
    }
    Ok(theta)
}

/// Refuses a sliding attention window that can matter: one shorter than the context on any
/// layer that uses it (transformers' Qwen2: `use_sliding_window` and the layers from
/// `max_window_layers` on, or those `layer_types` names; Mistral: every layer, 4096 when the
/// key is absent). Llama has none (transformers ignores the key there).
fn sliding_window(
    f: &Fields,
    family: Family,
    layers: usize,
    context: usize,
) -> std::result::Result<(), String> {
    let window = match family {
        Family::Llama => return Ok(()),
        Family::Qwen2 if !f.flag("use_sliding_window")?.unwrap_or(false) => None,
        Family::Qwen2 | Family::Mistral => match f.0.get("sliding_window") {
            None => Some(4096),
            Some(_) => f.uint("sliding_window")?,
        },
    };
    let types: Option<Vec<&str>> = match f.get("layer_types") {
        None => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| format!("layer_types must be a list of strings, not {v}"))
                })
                .collect::<std::result::Result<_, _>>()?,
        ),
        Some(v) => return Err(format!("layer_types must be a list of strings, not {v}")),
    };
    if let Some(t) = types
        .iter()
        .flatten()
        .find(|t| !matches!(**t, "full_attention" | "sliding_attention"))
    {
        return Err(format!(
            "layer_types {t:?} is not implemented (only full_attention)"
        ));
    }
    let Some(w) = window.filter(|&w| w < context) else {
        return Ok(());
    };
    let sliding: Vec<usize> = match (family, &types) {
        (Family::Qwen2, Some(t)) => (0..t.len())
            .filter(|&i| t[i] == "sliding_attention")
            .collect(),
        (Family::Qwen2, None) => {
            let from = f.uint("max_window_layers")?.unwrap_or(28);
            (from..layers).collect()
        }
        _ => (0..layers).collect(),
    };
    match sliding.first() {
        None => Ok(()),
        Some(first) => Err(format!(
            "sliding_window {w} (layer {first}{}) is shorter than the context (max_position_embeddings {context}): sliding-window attention is not implemented",
            if sliding.len() > 1 { format!(" and {} more", sliding.len() - 1) } else { String::new() }
        )),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        Config::from_json(&text).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
    }

    pub fn from_json(text: &str) -> std::result::Result<Config, String> {
        let json: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| format!("not a usable config.json: {e}"))?;
        let f = Fields(&json);
        let family = match f.text("model_type")? {
            None | Some("llama") => Family::Llama,
            Some("qwen2") => Family::Qwen2,
            Some("mistral") => Family::Mistral,
            Some(t) => {
                return Err(format!(
                    "model_type {t:?} is not supported (llama, qwen2 or mistral)"
                ))
            }
        };
        if let Some(archs) = f.get("architectures") {
            let names = archs
                .as_array()
                .ok_or_else(|| format!("architectures must be a list, not {archs}"))?;
            for a in names {
                let fits = a.as_str().is_some_and(|a| {
                    a.strip_prefix(family.class()).is_some_and(|head| {
                        matches!(head, "ForCausalLM" | "ForSequenceClassification")
                    })
                });
                if !fits {
                    return Err(format!(
                        "architectures {a} is not supported for model_type {:?} (only {c}ForCausalLM or {c}ForSequenceClassification)",
                        family.name(),
                        c = family.class()
                    ));
                }
            }
        }
        if let Some(act) = f
            .text("hidden_act")?
            .filter(|a| !matches!(*a, "silu" | "swish"))
        {
            return Err(format!("hidden_act {act:?} is not implemented (only silu)"));
        }
        if let Some(q) = f.get("quantization_config") {
            let method = q.get("quant_method").and_then(Value::as_str).unwrap_or("?");
            return Err(format!(
                "quantization_config (quant_method {method:?}) is not implemented: wick reads float weights"
            ));
        }
        if let Some(p) = f.float("attention_dropout")?.filter(|p| *p != 0.0) {
            return Err(format!("attention_dropout {p} is not implemented (only 0)"));
        }
        let rope_theta = rope(&f)?;
        let vocab_size = f.required("vocab_size")?;
        let hidden_size = f.required("hidden_size")?;
        let intermediate_size = f.required("intermediate_size")?;
        let num_layers = f.required("num_hidden_layers")?;
        let heads = f.required("num_attention_heads")?;
        for (key, v) in [
            ("vocab_size", vocab_size),
            ("hidden_size", hidden_size),
            ("intermediate_size", intermediate_size),
            ("num_attention_heads", heads),
        ] {
            if v == 0 {
                return Err(format!("{key} must be at least 1, not 0"));
            }
        }
        let kv = f.uint("num_key_value_heads")?.unwrap_or(heads);
        if kv == 0 {
            return Err("num_key_value_heads must be at least 1, not 0".into());
        }
        if !heads.is_multiple_of(kv) {
            return Err(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}"
            ));
        }
        let head_dim = f.uint("head_dim")?.unwrap_or(hidden_size / heads);
        if head_dim == 0 {
            return Err(format!(
                "head_dim must be at least 1, not 0 (hidden_size {hidden_size} / num_attention_heads {heads} when not given)"
            ));
        }
        if !head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {head_dim} must be even for rotary embeddings"
            ));
        }
        let rms_norm_eps = f.float("rms_norm_eps")?.unwrap_or(1e-6);
        if !(rms_norm_eps >= 0.0 && rms_norm_eps.is_finite()) {
            return Err(format!(
                "rms_norm_eps must be a non-negative number, not {rms_norm_eps}"
            ));
        }
        let initializer_range = f.float("initializer_range")?.unwrap_or(0.02);
        if !(initializer_range >= 0.0 && initializer_range.is_finite()) {
            return Err(format!(
                "initializer_range must be a non-negative number, not {initializer_range}"
            ));
        }
        let max_position_embeddings = f
            .uint("max_position_embeddings")?
            .unwrap_or(family.default_context());
        if max_position_embeddings == 0 {
            return Err("max_position_embeddings must be at least 1, not 0".into());
        }
        sliding_window(&f, family, num_layers, max_position_embeddings)?;
        // As transformers' classes build their layers: Llama reads both flags; Qwen2 and
        // Mistral ignore them (a checkpoint with other biases is then refused for its unused
        // tensors).
        let (attention_bias, mlp_bias) = (f.flag("attention_bias")?, f.flag("mlp_bias")?);
        let (qkv_bias, o_bias, mlp_bias) = match family {
            Family::Llama => {
                let a = attention_bias.unwrap_or(false);
                (a, a, mlp_bias.unwrap_or(false))
            }
            Family::Qwen2 => (true, false, false),
            Family::Mistral => (false, false, false),
        };
        let config = Config {
            family,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads: heads,
            num_kv_heads: kv,
            head_dim,
            rms_norm_eps,
            rope_theta,
            tie_word_embeddings: f.flag("tie_word_embeddings")?.unwrap_or(false),
            qkv_bias,
            o_bias,
            mlp_bias,
            max_position_embeddings,
            initializer_range,
            eos_token_ids: token_ids(f.get("eos_token_id")),
            bos_token_id: token_ids(f.get("bos_token_id")).first().copied(),
            pad_token_id: token_ids(f.get("pad_token_id")).first().copied(),
            json,
        };
        if config.num_labels() == Some(0) {
            return Err("num_labels must be at least 1 for a sequence classifier, not 0".into());
        }
        Ok(config)
    }

    /// The `model_type` (llama, qwen2 or mistral).
    pub fn family_name(&self) -> &'static str {
        self.family.name()
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
        self.to_json_as(candle_core::DType::F32)
    }

    /// config.json for weights saved in `dtype` (transformers 5's "dtype" key).
    pub fn to_json_as(&self, dtype: candle_core::DType) -> String {
        use serde_json::{json, Value};
        let mut m = self.json.clone();
        let mut set = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        if !self.json.contains_key("model_type") {
            set("model_type", json!("llama"));
            // Kept when given: a sequence classifier (a reward model) says so there alone.
            if self.json.get("architectures").is_none_or(Value::is_null) {
                set("architectures", json!(["LlamaForCausalLM"]));
            }
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
        if self.family == Family::Llama {
            // transformers' Llama has one switch for all four attention projections.
            debug_assert_eq!(self.qkv_bias, self.o_bias);
            set("attention_bias", json!(self.o_bias));
            set("mlp_bias", json!(self.mlp_bias));
        }
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
        let name = match dtype {
            candle_core::DType::BF16 => "bfloat16",
            candle_core::DType::F16 => "float16",
            _ => "float32",
        };
        m.insert("dtype".into(), json!(name));
        serde_json::to_string_pretty(&Value::Object(m)).unwrap() + "\n"
    }

    /// Parameters that take part in matrix products (for FLOP estimates), and all of them
    /// (saturating: a config too large for memory gives usize::MAX, not an overflow).
    pub fn param_counts(&self) -> (usize, usize) {
        let (matmul, all) = crate::memory::param_counts(self);
        let fit = |n: u128| usize::try_from(n).unwrap_or(usize::MAX);
        (fit(matmul), fit(all))
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

    fn err(extra: &str) -> String {
        Config::from_json(&format!("{{{BASE}{extra}}}")).unwrap_err()
    }

    fn ok(extra: &str) -> Config {
        Config::from_json(&format!("{{{BASE}{extra}}}")).unwrap()
    }

    #[test]
    fn defaults_and_refusals() {
        let c = ok(r#", "model_type": "qwen2""#);
        assert!(c.qkv_bias && !c.o_bias && !c.mlp_bias);
        assert_eq!((c.num_kv_heads, c.head_dim), (4, 8));
        let e = err(r#", "num_key_value_heads": 3"#);
        assert!(e.contains("not a multiple"), "{e}");
        assert!(Config::from_json("{\"vocab_size\": 3}")
            .unwrap_err()
            .contains("not a usable config.json: hidden_size is missing"));
    }

    #[test]
    fn llama_biases_follow_attention_bias_and_mlp_bias() {
        let c = ok("");
        assert!(!c.qkv_bias && !c.o_bias && !c.mlp_bias);
        let c = ok(r#", "attention_bias": true"#);
        assert!(c.qkv_bias && c.o_bias && !c.mlp_bias, "q, k, v and o");
        let c = ok(r#", "mlp_bias": true"#);
        assert!(!c.qkv_bias && !c.o_bias && c.mlp_bias);
        // As transformers' classes: Qwen2 has q/k/v biases whatever the flags say, Mistral none.
        let c = ok(r#", "model_type": "qwen2", "attention_bias": false, "mlp_bias": true"#);
        assert!(c.qkv_bias && !c.o_bias && !c.mlp_bias);
        let c = ok(r#", "model_type": "mistral", "sliding_window": null, "attention_bias": true"#);
        assert!(!c.qkv_bias && !c.o_bias && !c.mlp_bias);
        // Saved and read back, the flags survive.
        let c = ok(r#", "attention_bias": true, "mlp_bias": true"#);
        let back = Config::from_json(&c.to_json()).unwrap();
        assert!(back.qkv_bias && back.o_bias && back.mlp_bias);
        let back = Config::from_json(&ok("").to_json()).unwrap();
        assert!(!back.o_bias && !back.mlp_bias);
    }

    #[test]
    fn keys_that_change_the_math_are_refused_by_name() {
        for (extra, want) in [
            (
                r#", "rope_scaling": {"type": "linear", "factor": 2.0}"#,
                r#"rope_scaling type "linear" is not implemented"#,
            ),
            (
                r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#,
                r#"rope_scaling type "llama3" is not implemented"#,
            ),
            (
                r#", "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}, "rope_parameters": {"rope_type": "default", "rope_theta": 1.0}"#,
                r#"rope_scaling type "dynamic""#,
            ),
            (
                r#", "rope_parameters": {"rope_type": "yarn", "rope_theta": 1.0}"#,
                r#"rope_parameters type "yarn" is not implemented"#,
            ),
            (
                r#", "rope_parameters": {"rope_type": "longrope", "rope_theta": 1.0}"#,
                r#"rope_parameters type "longrope""#,
            ),
            (
                r#", "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1.0}}"#,
                r#"rope_parameters per layer type ("full_attention") is not implemented"#,
            ),
            (
                r#", "partial_rotary_factor": 0.5"#,
                "partial_rotary_factor 0.5 is not implemented",
            ),
            (
                r#", "rope_parameters": {"rope_type": "default", "rope_theta": 1.0, "partial_rotary_factor": 0.25}"#,
                "partial_rotary_factor 0.25 is not implemented",
            ),
            (
                r#", "hidden_act": "gelu""#,
                r#"hidden_act "gelu" is not implemented"#,
            ),
            (
                r#", "hidden_act": "relu""#,
                r#"hidden_act "relu" is not implemented"#,
            ),
            (
                r#", "model_type": "qwen2", "use_sliding_window": true, "sliding_window": 64, "max_window_layers": 1, "max_position_embeddings": 128"#,
                "sliding_window 64 (layer 1) is shorter than the context (max_position_embeddings 128): sliding-window attention is not implemented",
            ),
            (
                r#", "model_type": "qwen2", "use_sliding_window": true, "sliding_window": 64, "layer_types": ["sliding_attention", "full_attention"], "max_position_embeddings": 128"#,
                "sliding_window 64 (layer 0)",
            ),
            (
                r#", "model_type": "qwen2", "layer_types": ["chunked_attention", "full_attention"]"#,
                r#"layer_types "chunked_attention" is not implemented"#,
            ),
            (
                r#", "model_type": "mistral", "max_position_embeddings": 8192"#,
                "sliding_window 4096 (layer 0 and 1 more) is shorter than the context (max_position_embeddings 8192)",
            ),
            (
                r#", "model_type": "mistral", "sliding_window": 100, "max_position_embeddings": 128"#,
                "sliding_window 100 (layer 0 and 1 more)",
            ),
            (
                r#", "attention_dropout": 0.1"#,
                "attention_dropout 0.1 is not implemented",
            ),
            (
                r#", "quantization_config": {"quant_method": "gptq", "bits": 4}"#,
                r#"quantization_config (quant_method "gptq") is not implemented"#,
            ),
            (
                r#", "model_type": "gemma""#,
                r#"model_type "gemma" is not supported"#,
            ),
            (
                r#", "architectures": ["LlamaForTokenClassification"]"#,
                "architectures \"LlamaForTokenClassification\" is not supported for model_type \"llama\"",
            ),
            (
                r#", "model_type": "llama", "architectures": ["Qwen2ForCausalLM"]"#,
                "architectures \"Qwen2ForCausalLM\" is not supported for model_type \"llama\"",
            ),
            (r#", "mlp_bias": "yes""#, "mlp_bias must be true or false"),
            (
                r#", "architectures": ["LlamaForSequenceClassification"], "num_labels": 0"#,
                "num_labels must be at least 1",
            ),
        ] {
            let e = err(extra);
            assert!(e.contains(want), "{extra}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn settings_that_leave_the_math_alone_are_accepted() {
        for extra in [
            r#", "rope_scaling": null, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}"#,
            r#", "rope_scaling": {"type": "default"}"#,
            r#", "partial_rotary_factor": 1.0, "pretraining_tp": 4, "torch_dtype": "bfloat16", "use_cache": false, "transformers_version": "4.40.0""#,
            r#", "hidden_act": "swish", "attention_dropout": 0.0, "quantization_config": null"#,
            // Llama has no sliding window in transformers: the key does nothing there.
            r#", "sliding_window": 4, "max_position_embeddings": 128"#,
            // Qwen2's window is off unless use_sliding_window, and harmless when it covers the context.
            r#", "model_type": "qwen2", "use_sliding_window": false, "sliding_window": 4, "max_window_layers": 0"#,
            r#", "model_type": "qwen2", "use_sliding_window": true, "sliding_window": 128, "max_window_layers": 0, "max_position_embeddings": 128"#,
            r#", "model_type": "qwen2", "use_sliding_window": true, "sliding_window": 64, "max_window_layers": 28, "max_position_embeddings": 128"#,
            r#", "model_type": "mistral", "sliding_window": null, "architectures": ["MistralForCausalLM"]"#,
            r#", "architectures": ["LlamaForCausalLM"], "model_type": "llama""#,
            r#", "architectures": ["LlamaForSequenceClassification"], "num_labels": 1"#,
        ] {
            let c = Config::from_json(&format!("{{{BASE}{extra}}}"));
            assert!(c.is_ok(), "{extra}: {}", c.unwrap_err());
        }
    }

    #[test]
    fn degenerate_values_are_refused_naming_the_field() {
        for (extra, want) in [
            (
                r#", "hidden_size": 0"#,
                "hidden_size must be at least 1, not 0",
            ),
            (
                r#", "vocab_size": 0"#,
                "vocab_size must be at least 1, not 0",
            ),
            (
                r#", "intermediate_size": 0"#,
                "intermediate_size must be at least 1, not 0",
            ),
            (
                r#", "num_attention_heads": 0"#,
                "num_attention_heads must be at least 1, not 0",
            ),
            (
                r#", "num_key_value_heads": 0"#,
                "num_key_value_heads must be at least 1, not 0",
            ),
            (r#", "head_dim": 0"#, "head_dim must be at least 1, not 0"),
            (
                r#", "hidden_size": 2, "num_attention_heads": 4"#,
                "head_dim must be at least 1, not 0 (hidden_size 2 / num_attention_heads 4",
            ),
            (r#", "head_dim": 7"#, "head_dim 7 must be even"),
            (
                r#", "rope_theta": 0"#,
                "rope_theta must be a positive number, not 0",
            ),
            (
                r#", "rope_parameters": {"rope_type": "default", "rope_theta": -5.0}"#,
                "rope_theta must be a positive number, not -5",
            ),
            (
                r#", "rms_norm_eps": -1e-5"#,
                "rms_norm_eps must be a non-negative number, not -0.00001",
            ),
            (
                r#", "max_position_embeddings": 0"#,
                "max_position_embeddings must be at least 1, not 0",
            ),
            (
                r#", "initializer_range": -0.02"#,
                "initializer_range must be a non-negative number",
            ),
            (
                r#", "hidden_size": -32"#,
                "hidden_size must be a non-negative integer, not -32",
            ),
            (
                r#", "num_hidden_layers": 2.5"#,
                "num_hidden_layers must be a non-negative integer, not 2.5",
            ),
            (
                r#", "rms_norm_eps": "small""#,
                "rms_norm_eps must be a number",
            ),
        ] {
            // A later key replaces BASE's in serde_json's map.
            let e = err(extra);
            assert!(e.contains(want), "{extra}: {e}");
        }
    }
}
