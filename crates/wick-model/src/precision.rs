//! The precision of the model's matrix products, chosen as `torch.autocast` chooses it: inside an
//! [`autocast`] scope the products (projections, attention, output head) round their operands to
//! bf16 or fp16 and accumulate in f32; norms, softmax, losses and the optimizer stay in f32, and
//! so do the weights and activations the ops keep.
//!
//! The scope is the calling thread's (tests and tools on other threads are not affected). Each op
//! reads it when it is recorded, and its backward pass runs its products in the same precision,
//! wherever the backward runs.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The precision of the matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Operands in f32 (the default).
    #[default]
    F32,
    /// Operands rounded to bfloat16 (8 exponent bits, as f32: no overflow, no loss scaling).
    Bf16,
    /// Operands rounded to IEEE half precision (5 exponent bits: values beyond 65504 overflow,
    /// hence a loss scaler when training).
    #[serde(rename = "fp16")]
    F16,
}

impl Precision {
    pub const NAMES: [&'static str; 3] = ["f32", "bf16", "fp16"];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "fp16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Precision, String> {
        match s {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "fp16" | "f16" | "float16" | "half" => Ok(Precision::F16),
            _ => Err(format!(
                "unknown precision '{s}' (expected one of {})",
                Precision::NAMES.join(", ")
            )),
        }
    }
}

/// A `--dtype` name: "auto" (None: the checkpoint's own), "f32", "bf16" or "f16".
pub fn parse_dtype(name: &str) -> wick_io::Result<Option<candle_core::DType>> {
    use candle_core::DType;
    match name {
        "auto" => Ok(None),
        "f32" | "float32" => Ok(Some(DType::F32)),
        "bf16" | "bfloat16" => Ok(Some(DType::BF16)),
        "f16" | "fp16" | "float16" => Ok(Some(DType::F16)),
        _ => Err(wick_io::Error::msg(format!(
            "unknown dtype '{name}' (expected auto, f32, bf16 or f16)"
        ))),
    }
}

/// The `--dtype` name of a dtype ("f32", "bf16", "f16"; anything else reads as "f32").
pub fn dtype_name(dtype: candle_core::DType) -> &'static str {
    match dtype {
        candle_core::DType::BF16 => "bf16",
        candle_core::DType::F16 => "f16",
        _ => "f32",
    }
}

impl Precision {
    /// The precision of the products of a model whose matrices are kept in `dtype`.
    pub fn of_dtype(dtype: candle_core::DType) -> Precision {
        match dtype {
            candle_core::DType::BF16 => Precision::Bf16,
            candle_core::DType::F16 => Precision::F16,
            _ => Precision::F32,
        }
    }
}

thread_local! {
    static CURRENT: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// The product precision of ops recorded now on this thread.
pub fn current() -> Precision {
    CURRENT.with(|c| c.get())
}

/// Products of ops recorded on this thread run in `p` until the guard drops (scopes nest).
#[must_use = "the precision reverts when the guard drops"]
pub fn autocast(p: Precision) -> Autocast {
    let previous = CURRENT.with(|c| c.replace(p));
    Autocast { previous }
}

/// Restores the precision before its [`autocast`] when dropped.
pub struct Autocast {
    previous: Precision,
}

impl Drop for Autocast {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_revert_and_stay_on_their_thread() {
        assert_eq!(current(), Precision::F32);
        {
            let _a = autocast(Precision::Bf16);
            assert_eq!(current(), Precision::Bf16);
            {
                let _b = autocast(Precision::F16);
                assert_eq!(current(), Precision::F16);
                std::thread::spawn(|| assert_eq!(current(), Precision::F32))
                    .join()
                    .unwrap();
            }
            assert_eq!(current(), Precision::Bf16);
        }
        assert_eq!(current(), Precision::F32);
    }

    #[test]
    fn names_round_trip() {
        for p in [Precision::F32, Precision::Bf16, Precision::F16] {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.name())
            );
        }
        assert!("f8".parse::<Precision>().unwrap_err().contains("bf16"));
    }
}
