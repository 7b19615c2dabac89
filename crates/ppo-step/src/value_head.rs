//! The value head that sits beside the policy on its last hidden state: v = w h + b, saved
//! as TRL's `AutoModelForCausalLMWithValueHead` names it (value_head.safetensors with
//! `v_head.summary.weight` [1, hidden] and `v_head.summary.bias` [1]).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use wick_io::{Error, Result};

pub const FILE: &str = "value_head.safetensors";
const WEIGHT: &str = "v_head.summary.weight";
const BIAS: &str = "v_head.summary.bias";

use wick_model::candle_error as ce;

pub struct ValueHead {
    pub weight: Var,
    pub bias: Var,
}

impl ValueHead {
    /// A fresh head on `device` (the policy's): zeros, so the first values are 0 and the first
    /// advantages are the rewards' GAE alone.
    pub fn zeros(hidden: usize, device: &Device) -> Result<ValueHead> {
        Ok(ValueHead {
            weight: Var::zeros((1, hidden), DType::F32, device).map_err(ce)?,
            bias: Var::zeros(1, DType::F32, device).map_err(ce)?,
        })
    }

    /// The head saved in `dir`, put on `device`, or None when it has none.
    pub fn load(dir: &Path, hidden: usize, device: &Device) -> Result<Option<ValueHead>> {
        let path = dir.join(FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let t = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| Error::msg(format!("{}: cannot read: {e}", path.display())))?;
        let get = |k: &str, shape: &[usize]| -> Result<Var> {
            let x = t
                .get(k)
                .ok_or_else(|| Error::msg(format!("{}: no tensor {k}", path.display())))?;
            if x.dims() != shape {
                return Err(Error::msg(format!(
                    "{}: {k} has shape {:?}, expected {shape:?} (a value head for another model?)",
                    path.display(),
                    x.dims()
                )));
            }
            let x = x.to_dtype(DType::F32).and_then(|x| x.to_device(device));
            Var::from_tensor(&x.map_err(ce)?).map_err(ce)
        };
        Ok(Some(ValueHead {
            weight: get(WEIGHT, &[1, hidden])?,
            bias: get(BIAS, &[1])?,
        }))
    }

    /// Values [N] of hidden states [N, hidden].
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        h.matmul(&self.weight.as_tensor().t().map_err(ce)?)
            .and_then(|v| v.squeeze(1))
            .and_then(|v| v.broadcast_add(self.bias.as_tensor()))
            .map_err(ce)
    }

    pub fn vars(&self) -> Vec<(String, Var)> {
        vec![
            (WEIGHT.to_string(), self.weight.clone()),
            (BIAS.to_string(), self.bias.clone()),
        ]
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let t: HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        wick_model::save_safetensors(&t, &dir.join(FILE))
    }
}
