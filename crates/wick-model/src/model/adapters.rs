//! Adapters on the decoder: LoRA adapters on its linear layers (PEFT's format, foldable into
//! the weights) or bottleneck adapters after its attention and MLP (added layers, Houlsby et
//! al.'s design). Either way only the adapter's tensors train; the base stays frozen — no
//! gradients, no optimiser state.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use wick_io::{Error, Result};

use super::{ce, save_safetensors, Block, Linear, Llama};
use crate::bottleneck::{self, BottleneckConfig};
use crate::kernels;
use crate::lora::{LoraAdapter, LoraConfig};

/// Which adapter a model carries.
#[derive(Clone, Debug)]
pub enum AdapterKind {
    Lora(LoraConfig),
    Bottleneck(BottleneckConfig),
}

/// A LoRA adapter on one linear layer: A [r, in], B [out, r], the factor on B A, and the
/// dropout on the adapter's input (applied only while training).
#[derive(Clone)]
pub(super) struct Lora {
    pub(super) a: Tensor,
    pub(super) b: Tensor,
    pub(super) scale: f64,
    pub(super) dropout: f64,
}

impl Lora {
    /// scale (dropout(x) A^T) B^T for x [N, in]: through the rank-r bottleneck, never forming
    /// the [out, in] product B A.
    pub(super) fn forward(
        &self,
        x: &Tensor,
        dropout_key: Option<u64>,
    ) -> candle_core::Result<Tensor> {
        let xd = match dropout_key {
            Some(key) => (x * dropout_mask(key, x.dim(0)?, x.dim(1)?, self.dropout, x.device())?)?,
            None => x.clone(),
        };
        kernels::linear(&kernels::linear(&xd, &self.a)?, &self.b)? * self.scale
    }
}

/// Inverted dropout's mask for x [n, k]: each entry 0 with probability p, else 1 / (1 - p),
/// from a counter-based generator keyed by `key`, so that a step's masks are the same
/// whenever it is recomputed (an exact resume).
fn dropout_mask(
    key: u64,
    n: usize,
    k: usize,
    p: f64,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut rng = crate::init::Normal::new(key);
    let keep = (1.0 / (1.0 - p)) as f32;
    let v: Vec<f32> = (0..n * k)
        .map(|_| if rng.uniform() > p { keep } else { 0.0 })
        .collect();
    // Drawn on the CPU whatever the device: the same masks everywhere, so a run may move.
    Tensor::from_vec(v, (n, k), &Device::Cpu)?.to_device(device)
}

/// A bottleneck adapter: h + up(silu(down(h))), down [m, hidden] and up [hidden, m] with
/// biases.
#[derive(Clone)]
pub struct BottleneckAdapter {
    down: Linear,
    up: Linear,
}

impl BottleneckAdapter {
    pub(super) fn forward(&self, h: &Tensor) -> candle_core::Result<Tensor> {
        h + self.up.forward(&self.down.forward(h)?.silu()?)?
    }

    pub(super) fn slots(&mut self) -> [(&'static str, &'static str, &mut Tensor); 4] {
        let (d, u) = (&mut self.down, &mut self.up);
        [
            ("down", "weight", &mut d.weight),
            (
                "down",
                "bias",
                d.bias.as_mut().expect("adapters have biases"),
            ),
            ("up", "weight", &mut u.weight),
            ("up", "bias", u.bias.as_mut().expect("adapters have biases")),
        ]
    }
}

fn plain(weight: Tensor, bias: Tensor) -> Linear {
    Linear {
        weight,
        bias: Some(bias),
        lora: None,
        transposed: None,
    }
}

/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's Kaiming-uniform default with a = sqrt(5),
/// which PEFT uses for LoRA's A and AdapterHub for a bottleneck's down projection.
fn kaiming_uniform(
    rng: &mut crate::init::Normal,
    rows: usize,
    fan_in: usize,
    device: &Device,
) -> Result<Tensor> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let v: Vec<f32> = (0..rows * fan_in)
        .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
        .collect();
    Tensor::from_vec(v, (rows, fan_in), device).map_err(ce)
}

fn zeros(shape: &[usize], device: &Device) -> Result<Tensor> {
    Tensor::zeros(shape, DType::F32, device).map_err(ce)
}

fn block_linears(blocks: &mut [Block]) -> Vec<(String, &mut Linear)> {
    let mut out = Vec::new();
    for (l, blk) in blocks.iter_mut().enumerate() {
        let p = super::names::layer(l);
        for (name, lin) in blk.linears_mut() {
            out.push((format!("{p}.{name}"), lin));
        }
    }
    out
}

/// A classifier head's name in an adapter file (PEFT saves `modules_to_save` so).
pub const SCORE_KEY: &str = "base_model.model.score.weight";

impl Llama {
    /// Every linear layer that can carry a LoRA adapter, with its module path.
    pub(super) fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        block_linears(&mut self.blocks)
    }

    /// Every adapter tensor under its file name (PEFT's for LoRA), in a fixed order; a
    /// classifier's head last, since it trains with the adapter (PEFT's `modules_to_save`).
    pub(super) fn adapter_slots(&mut self) -> Vec<(String, &mut Tensor)> {
        let Llama {
            blocks,
            adapter,
            score,
            ..
        } = self;
        let mut out = Vec::new();
        if matches!(adapter, Some(AdapterKind::Bottleneck(_))) {
            for (l, blk) in blocks.iter_mut().enumerate() {
                for (place, b) in bottleneck::PLACES
                    .iter()
                    .zip([&mut blk.attn.adapter, &mut blk.mlp.adapter])
                {
                    if let Some(b) = b.as_mut() {
                        for (proj, what, t) in b.slots() {
                            out.push((bottleneck::key(l, place, proj, what), t));
                        }
                    }
                }
            }
        } else {
            for (module, lin) in block_linears(blocks) {
                if let Some(l) = lin.lora.as_mut() {
                    out.push((crate::lora::key(&module, 'A'), &mut l.a));
                    out.push((crate::lora::key(&module, 'B'), &mut l.b));
                }
            }
        }
        if adapter.is_some() {
            out.extend(
                score
                    .as_mut()
                    .map(|s| (SCORE_KEY.to_string(), &mut s.weight)),
            );
        }
        out
    }

    /// Adds fresh LoRA adapters on the configured modules, initialised as PEFT does: A
    /// Kaiming-uniform (a = sqrt(5), so U(-1/sqrt(in), 1/sqrt(in))), seeded; B zeros, so the
    /// model computes exactly what the base does until B moves.
    pub fn add_lora(&mut self, config: &LoraConfig, seed: u64) -> Result<()> {
        let mut rng = crate::init::Normal::new(seed ^ 0x4c6f_5241);
        let scale = config.scale();
        let dev = &self.device();
        for (module, lin) in self.linears_mut() {
            let short = module.rsplit('.').next().unwrap_or("");
            if !config.targets.iter().any(|t| t == short) {
                continue;
            }
            let (out, inp) = (
                lin.weight.dim(0).map_err(ce)?,
                lin.weight.dim(1).map_err(ce)?,
            );
            lin.lora = Some(Lora {
                a: kaiming_uniform(&mut rng, config.r, inp, dev)?,
                b: zeros(&[out, config.r], dev)?,
                scale,
                dropout: config.dropout,
            });
        }
        self.adapter = Some(AdapterKind::Lora(config.clone()));
        Ok(())
    }

    /// Adds fresh bottleneck adapters after every attention block and MLP: down projection
    /// Kaiming-uniform (seeded), up projection and both biases zero, so the model computes
    /// exactly what the base does until the up projection moves.
    pub fn add_bottleneck(&mut self, config: &BottleneckConfig, seed: u64) -> Result<()> {
        let mut rng = crate::init::Normal::new(seed ^ 0x486f_756c);
        let (h, m) = (self.config.hidden_size, config.size);
        let dev = &self.device();
        for blk in &mut self.blocks {
            for slot in [&mut blk.attn.adapter, &mut blk.mlp.adapter] {
                *slot = Some(BottleneckAdapter {
                    down: plain(kaiming_uniform(&mut rng, m, h, dev)?, zeros(&[m], dev)?),
                    up: plain(zeros(&[h, m], dev)?, zeros(&[h], dev)?),
                });
            }
        }
        self.adapter = Some(AdapterKind::Bottleneck(config.clone()));
        Ok(())
    }

    /// The adapter the model carries, if any.
    pub fn adapter(&self) -> Option<&AdapterKind> {
        self.adapter.as_ref()
    }

    /// The adapter's tensors under their file names (PEFT's for LoRA).
    pub fn adapter_tensors(&self) -> Vec<(String, Tensor)> {
        let mut copy = self.clone();
        copy.adapter_slots()
            .into_iter()
            .map(|(n, t)| (n, t.clone()))
            .collect()
    }

    /// Turns the adapter's tensors (only) into trainable variables; the base stays frozen.
    pub fn make_adapter_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        let mut vars = Vec::new();
        for (name, slot) in self.adapter_slots() {
            let var = Var::from_tensor(slot).map_err(ce)?;
            *slot = var.as_tensor().clone();
            vars.push((name, var));
        }
        Ok(vars)
    }

    /// Replaces adapter tensors by name (from a checkpoint or an adapter file); every one the
    /// model carries must be there, with its shape.
    pub fn set_adapter_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (k, slot) in self.adapter_slots() {
            if k == SCORE_KEY && !tensors.contains_key(&k) {
                continue; // an adapter without the head leaves the classifier's own
            }
            let t = tensors
                .get(&k)
                .ok_or_else(|| Error::msg(format!("missing adapter tensor {k}")))?;
            if t.dims() != slot.dims() {
                return Err(Error::msg(format!(
                    "adapter tensor {k}: shape {:?}, expected {:?} (an adapter for another base model?)",
                    t.dims(),
                    slot.dims()
                )));
            }
            *slot = t.to_device(slot.device()).map_err(ce)?;
        }
        Ok(())
    }

    /// Writes the adapter folder: adapter_config.json and adapter_model.safetensors (PEFT's
    /// files for LoRA; wick's bottleneck layout otherwise).
    pub fn save_adapter(&self, dir: &Path, base_model: &str) -> Result<()> {
        let mut config = match &self.adapter {
            Some(AdapterKind::Lora(c)) => c.to_json(base_model),
            Some(AdapterKind::Bottleneck(c)) => c.to_json(base_model),
            None => return Err(Error::msg("the model carries no adapter")),
        };
        if self.score.is_some() {
            // A classifier's adapter also carries its head, as PEFT's SEQ_CLS adapters do.
            let mut v: serde_json::Value = serde_json::from_str(&config).expect("our own JSON");
            v["modules_to_save"] = serde_json::json!(["score"]);
            v["task_type"] = serde_json::json!("SEQ_CLS");
            config = serde_json::to_string_pretty(&v).expect("serialises") + "\n";
        }
        wick_io::create_dir_all(dir)?;
        wick_io::write_atomic(dir.join("adapter_config.json"), config.as_bytes())?;
        let tensors: HashMap<String, Tensor> = self.adapter_tensors().into_iter().collect();
        save_safetensors(&tensors, &dir.join("adapter_model.safetensors"))
    }

    /// Puts a LoRA adapter on this model's linear layers (checked against their shapes).
    pub fn apply_lora(&mut self, adapter: &LoraAdapter) -> Result<()> {
        let scale = adapter.config.scale();
        for (module, (a, b)) in &adapter.weights {
            let lin = self
                .linears_mut()
                .into_iter()
                .find(|(name, _)| name == module)
                .map(|(_, lin)| lin)
                .ok_or_else(|| Error::msg(format!("adapter: the model has no layer {module}")))?;
            let (out, inp) = (
                lin.weight.dim(0).map_err(ce)?,
                lin.weight.dim(1).map_err(ce)?,
            );
            if a.dim(1).map_err(ce)? != inp || b.dim(0).map_err(ce)? != out {
                return Err(Error::msg(format!(
                    "adapter: {module} has lora_A {:?} and lora_B {:?}, which do not fit its weight [{out}, {inp}] (an adapter for another base model?)",
                    a.dims(),
                    b.dims()
                )));
            }
            lin.lora = Some(Lora {
                a: a.to_device(lin.weight.device()).map_err(ce)?,
                b: b.to_device(lin.weight.device()).map_err(ce)?,
                scale,
                dropout: adapter.config.dropout,
            });
        }
        self.adapter = Some(AdapterKind::Lora(adapter.config.clone()));
        Ok(())
    }

    /// Loads a bottleneck adapter folder onto this model (every tensor checked against the
    /// model's width).
    pub fn load_bottleneck(&mut self, dir: &Path) -> Result<()> {
        let config = BottleneckConfig::read(&dir.join("adapter_config.json"))?;
        let file = dir.join("adapter_model.safetensors");
        let tensors = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| Error::msg(format!("{}: cannot read: {e}", file.display())))?;
        // Every tensor is checked against the config before the adapter is built: building it
        // allocates (and draws) a bottleneck of bottleneck_size, which the file must hold.
        let (h, m) = (self.config.hidden_size, config.size);
        for l in 0..self.blocks.len() {
            for place in bottleneck::PLACES {
                for (proj, what, shape) in [
                    ("down", "weight", vec![m, h]),
                    ("down", "bias", vec![m]),
                    ("up", "weight", vec![h, m]),
                    ("up", "bias", vec![h]),
                ] {
                    let k = bottleneck::key(l, place, proj, what);
                    let t = tensors.get(&k).ok_or_else(|| {
                        Error::msg(format!("{}: missing adapter tensor {k}", file.display()))
                    })?;
                    if t.dims() != shape {
                        return Err(Error::msg(format!(
                            "{}: adapter tensor {k}: shape {:?}, expected {shape:?} (bottleneck_size {m} in adapter_config.json, hidden_size {h} of the base model)",
                            file.display(),
                            t.dims()
                        )));
                    }
                }
            }
        }
        self.add_bottleneck(&config, 0)?;
        self.set_adapter_tensors(&tensors)
            .map_err(|e| e.context(file.display()))?;
        let known = self.adapter_slots().len();
        if tensors.len() != known {
            return Err(Error::msg(format!(
                "{}: {} tensors, but a bottleneck adapter for this model has {known}",
                file.display(),
                tensors.len()
            )));
        }
        Ok(())
    }

    /// Loads an adapter folder of either kind (told apart by its adapter_config.json).
    pub fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        if bottleneck::is_bottleneck(dir) {
            self.load_bottleneck(dir)
        } else {
            self.apply_lora(&LoraAdapter::load(dir)?)
        }
    }

    /// Folds every LoRA adapter into its weight: W + s B A. Bottleneck adapters add layers and
    /// cannot be folded.
    pub fn merge_adapter(&mut self) -> Result<()> {
        if matches!(self.adapter, Some(AdapterKind::Bottleneck(_))) {
            return Err(Error::msg(
                "a Houlsby (bottleneck) adapter adds layers and cannot be folded into the weights",
            ));
        }
        for (_, lin) in self.linears_mut() {
            if let Some(l) = lin.lora.take() {
                let delta = (l.b.matmul(&l.a).map_err(ce)? * l.scale).map_err(ce)?;
                lin.weight = (&lin.weight + delta).map_err(ce)?;
            }
        }
        self.adapter = None;
        Ok(())
    }
}
