//! Bottleneck adapters, Houlsby et al.'s design (2019, "Parameter-Efficient Transfer Learning for
//! NLP"): after the attention block's output projection and after the MLP's down projection,
//! before each residual add, h <- h + up(act(down(h))), down [m, hidden] and up [hidden, m] with
//! biases, m = hidden / reduction. The up projection starts at zero, so a fresh adapter computes
//! exactly the base model's function.
//!
//! PEFT has no bottleneck adapters (AdapterHub's `adapters` library does, in its own format),
//! so the folder is wick's, laid out like PEFT's: `adapter_config.json` with `"peft_type":
//! "HOULSBY"` and `adapter_model.safetensors` with keys
//! `model.layers.<i>.{attn,mlp}_adapter.{down,up}.{weight,bias}`. Adapters add layers and
//! cannot be folded into the base weights; tools load them beside the base.

use std::path::Path;

use serde_json::Value;
use wick_io::{Error, Result};

/// Where adapters sit in each layer.
pub const PLACES: [&str; 2] = ["attn_adapter", "mlp_adapter"];

#[derive(Clone, Debug, PartialEq)]
pub struct BottleneckConfig {
    /// hidden / bottleneck.
    pub reduction: usize,
    /// The bottleneck width m.
    pub size: usize,
    /// The nonlinearity between the projections; "silu" (swish, AdapterHub's default for
    /// Houlsby) is what wick computes.
    pub non_linearity: String,
}

impl BottleneckConfig {
    /// The adapter for a model of width `hidden`: m = hidden / reduction, at least 1.
    pub fn new(hidden: usize, reduction: usize) -> BottleneckConfig {
        BottleneckConfig {
            reduction,
            size: (hidden / reduction.max(1)).max(1),
            non_linearity: "silu".into(),
        }
    }

    pub fn to_json(&self, base_model: &str) -> String {
        let v = serde_json::json!({
            "peft_type": "HOULSBY",
            "base_model_name_or_path": base_model,
            "reduction_factor": self.reduction,
            "bottleneck_size": self.size,
            "non_linearity": self.non_linearity,
            "placement": "after self_attn.o_proj and after mlp.down_proj, before each residual add",
            "up_init": "zeros",
            "library": "wick",
        });
        serde_json::to_string_pretty(&v).expect("serialises") + "\n"
    }

    /// Reads adapter_config.json of a bottleneck adapter folder.
    pub fn read(file: &Path) -> Result<BottleneckConfig> {
        let bad = |msg: String| Error::msg(format!("{}: {msg}", file.display()));
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file.display(), e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let num = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(format!("\"{k}\" must be a positive integer")))
        };
        let act = v
            .get("non_linearity")
            .and_then(Value::as_str)
            .unwrap_or("silu");
        if !matches!(act, "silu" | "swish") {
            return Err(bad(format!(
                "non_linearity {act:?}: only \"silu\" (swish) is supported"
            )));
        }
        Ok(BottleneckConfig {
            reduction: num("reduction_factor")? as usize,
            size: num("bottleneck_size")? as usize,
            non_linearity: "silu".into(),
        })
    }
}

/// The tensor name of one adapter parameter: layer, place (attn_adapter / mlp_adapter),
/// projection (down / up), weight or bias.
pub fn key(layer: usize, place: &str, proj: &str, what: &str) -> String {
    format!("model.layers.{layer}.{place}.{proj}.{what}")
}

/// What kind of adapter folder this is, from its adapter_config.json: true for a bottleneck
/// adapter (`"peft_type": "HOULSBY"`).
pub fn is_bottleneck(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("adapter_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("peft_type")?.as_str().map(str::to_string))
        .is_some_and(|k| k.eq_ignore_ascii_case("houlsby"))
}
