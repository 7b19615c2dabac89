//! The decoder itself, readable in one sitting: embeddings, `num_layers` blocks of
//! (RMSNorm → attention → residual, RMSNorm → SwiGLU MLP → residual), final RMSNorm, head.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use wick_io::{Error, Result};

use crate::{ops, Config};

pub(crate) fn ce(e: candle_core::Error) -> Error {
    Error::msg(format!("tensor op failed: {e}"))
}

/// A linear layer stored as Hugging Face does: weight [out, in], optional bias [out], and
/// optionally a LoRA adapter on top.
#[derive(Clone)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<Lora>,
}

/// A [r, in], B [out, r], and the factor on B A.
#[derive(Clone)]
struct Lora {
    a: Tensor,
    b: Tensor,
    scale: f64,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // One [N, in] x [in, out] product over all leading dimensions: broadcast_matmul
        // would copy the weight once per batch row, and its gradient would need a sum.
        let mut dims = x.dims().to_vec();
        let inp = dims.pop().expect("at least one dimension");
        let x = x.reshape(((), inp))?;
        let mut y = if x.track_op() && !self.weight.track_op() {
            // A frozen weight under a trainable input (LoRA): no weight gradient.
            ops::frozen_matmul(&x, &self.weight)?
        } else {
            x.matmul(&self.weight.t()?)?
        };
        if let Some(l) = &self.lora {
            // Through the rank-r bottleneck: never forms the [out, in] product B A.
            y = (y + (x.matmul(&l.a.t()?)?.matmul(&l.b.t()?)? * l.scale)?)?;
        }
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        dims.push(y.dim(1)?);
        y.reshape(dims)
    }
}

#[derive(Clone)]
struct Block {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

#[derive(Clone)]
pub struct Llama {
    pub config: Config,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    /// None when tied to the embeddings.
    lm_head: Option<Tensor>,
    /// The LoRA adapter's settings when the linear layers carry one.
    adapter: Option<crate::adapter::LoraConfig>,
}

/// Keys and values of the positions seen so far, per layer, for decoding one token at a time.
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(config: &Config) -> KvCache {
        KvCache {
            layers: vec![None; config.num_layers],
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dim(2).unwrap_or(0),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the weights come from when a model is assembled: a safetensors file or a fresh
/// initialisation. `get` is asked for every Hugging Face tensor name with its shape.
trait Source {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor>;
}

/// Takes tensors out of a safetensors map by Hugging Face name, checking shapes.
struct Loaded {
    map: HashMap<String, Tensor>,
    file: String,
}

impl Source for Loaded {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .map
            .remove(name)
            .ok_or_else(|| Error::msg(format!("{}: missing tensor {name}", self.file)))?;
        if t.dims() != shape {
            return Err(Error::msg(format!(
                "{}: tensor {name} has shape {:?}, expected {shape:?}",
                self.file,
                t.dims()
            )));
        }
        match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 | DType::F64 => {
                t.to_dtype(DType::F32).map_err(ce)
            }
            other => Err(Error::msg(format!(
                "{}: tensor {name} has dtype {other:?}; expected a float type",
                self.file
            ))),
        }
    }
}

/// transformers' initialisation for Llama: normal(0, initializer_range) for every matrix,
/// ones for the norms, zeros for biases. Drawn from a seeded generator so that a run is
/// reproducible.
struct Fresh {
    std: f64,
    rng: crate::init::Normal,
}

impl Source for Fresh {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n)
                .map(|_| (self.rng.sample() * self.std) as f32)
                .collect()
        };
        Tensor::from_vec(data, shape, &Device::Cpu).map_err(ce)
    }
}

/// cos and sin tables [T, head_dim] for positions start..start+t (Hugging Face's layout:
/// the frequencies repeated over both halves).
fn rope_tables(c: &Config, start: usize, t: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let hd = c.head_dim;
    let inv: Vec<f64> = (0..hd / 2)
        .map(|i| c.rope_theta.powf(-((2 * i) as f64) / hd as f64))
        .collect();
    let (mut cos, mut sin) = (Vec::with_capacity(t * hd), Vec::with_capacity(t * hd));
    for p in start..start + t {
        for _half in 0..2 {
            for f in &inv {
                // transformers computes the angle in f32: position * inv_freq.
                let a = (p as f32) * (*f as f32);
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
    }
    Ok((
        Tensor::from_vec(cos, (t, hd), &Device::Cpu)?,
        Tensor::from_vec(sin, (t, hd), &Device::Cpu)?,
    ))
}

impl Llama {
    /// Loads config.json and model.safetensors from a Hugging Face folder.
    pub fn load(dir: &Path) -> Result<Llama> {
        let config = Config::load(&dir.join("config.json"))?;
        let file = dir.join("model.safetensors");
        if !file.exists() {
            return Err(Error::msg(format!(
                "{}: no model.safetensors (sharded and .bin checkpoints are not supported)",
                dir.display()
            )));
        }
        let map = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| Error::msg(format!("{}: cannot read safetensors: {e}", file.display())))?;
        let mut src = Loaded {
            map,
            file: file.display().to_string(),
        };
        let mut model = Llama::assemble(config, &mut src)?;
        if model.config.tie_word_embeddings {
            src.map.remove("lm_head.weight");
        } else {
            model.lm_head = Some(src.get(
                "lm_head.weight",
                &[model.config.vocab_size, model.config.hidden_size],
            )?);
        }
        Ok(model)
    }

    /// A freshly initialised model (transformers' Llama initialisation, seeded).
    pub fn init(config: Config, seed: u64) -> Result<Llama> {
        let mut src = Fresh {
            std: config.initializer_range,
            rng: crate::init::Normal::new(seed),
        };
        let mut model = Llama::assemble(config, &mut src)?;
        if !model.config.tie_word_embeddings {
            let c = &model.config;
            model.lm_head = Some(src.get("lm_head.weight", &[c.vocab_size, c.hidden_size])?);
        }
        Ok(model)
    }

    fn assemble(config: Config, w: &mut dyn Source) -> Result<Llama> {
        let c = &config;
        let (h, hd) = (c.hidden_size, c.head_dim);
        let linear = |w: &mut dyn Source, name: &str, out: usize, inp: usize, bias: bool| {
            Ok::<_, Error>(Linear {
                weight: w.get(&format!("{name}.weight"), &[out, inp])?,
                bias: if bias {
                    Some(w.get(&format!("{name}.bias"), &[out])?)
                } else {
                    None
                },
                lora: None,
            })
        };
        let mut blocks = Vec::with_capacity(c.num_layers);
        for l in 0..c.num_layers {
            let p = format!("model.layers.{l}");
            let (qo, kvo) = (c.num_heads * hd, c.num_kv_heads * hd);
            let q = linear(w, &format!("{p}.self_attn.q_proj"), qo, h, c.qkv_bias)?;
            let k = linear(w, &format!("{p}.self_attn.k_proj"), kvo, h, c.qkv_bias)?;
            let v = linear(w, &format!("{p}.self_attn.v_proj"), kvo, h, c.qkv_bias)?;
            let o = linear(w, &format!("{p}.self_attn.o_proj"), h, qo, false)?;
            let gate = linear(
                w,
                &format!("{p}.mlp.gate_proj"),
                c.intermediate_size,
                h,
                false,
            )?;
            let up = linear(
                w,
                &format!("{p}.mlp.up_proj"),
                c.intermediate_size,
                h,
                false,
            )?;
            let down = linear(
                w,
                &format!("{p}.mlp.down_proj"),
                h,
                c.intermediate_size,
                false,
            )?;
            blocks.push(Block {
                input_norm: w.get(&format!("{p}.input_layernorm.weight"), &[h])?,
                q,
                k,
                v,
                o,
                post_norm: w.get(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                gate,
                up,
                down,
            });
        }
        Ok(Llama {
            embed: w.get("model.embed_tokens.weight", &[c.vocab_size, h])?,
            norm: w.get("model.norm.weight", &[h])?,
            blocks,
            lm_head: None,
            adapter: None,
            config,
        })
    }

    /// Every weight under its Hugging Face name, in a fixed order.
    fn slots(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), &mut self.embed)];
        for (l, b) in self.blocks.iter_mut().enumerate() {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), &mut b.input_norm));
            let linears = [
                ("self_attn.q_proj", &mut b.q),
                ("self_attn.k_proj", &mut b.k),
                ("self_attn.v_proj", &mut b.v),
                ("self_attn.o_proj", &mut b.o),
                ("mlp.gate_proj", &mut b.gate),
                ("mlp.up_proj", &mut b.up),
                ("mlp.down_proj", &mut b.down),
            ];
            for (name, lin) in linears {
                out.push((format!("{p}.{name}.weight"), &mut lin.weight));
                if let Some(bias) = lin.bias.as_mut() {
                    out.push((format!("{p}.{name}.bias"), bias));
                }
            }
            out.push((
                format!("{p}.post_attention_layernorm.weight"),
                &mut b.post_norm,
            ));
        }
        out.push(("model.norm.weight".to_string(), &mut self.norm));
        if let Some(head) = self.lm_head.as_mut() {
            out.push(("lm_head.weight".to_string(), head));
        }
        out
    }

    /// The weights under their Hugging Face names (shared storage, not copies).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut copy = self.clone();
        copy.slots()
            .into_iter()
            .map(|(n, t)| (n, t.clone()))
            .collect()
    }

    /// Turns every weight into a trainable variable and returns them by name.
    pub fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        let mut vars = Vec::new();
        for (name, slot) in self.slots() {
            let var = Var::from_tensor(slot).map_err(ce)?;
            *slot = var.as_tensor().clone();
            vars.push((name, var));
        }
        Ok(vars)
    }

    /// Replaces weights by name (e.g. from a checkpoint); every name must be known.
    pub fn set_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, slot) in self.slots() {
            if let Some(t) = tensors.get(&name) {
                if t.dims() != slot.dims() {
                    return Err(Error::msg(format!(
                        "tensor {name} has shape {:?}, expected {:?}",
                        t.dims(),
                        slot.dims()
                    )));
                }
                *slot = t.clone();
            }
        }
        Ok(())
    }

    /// The linear layer at a Hugging Face module path (`model.layers.3.self_attn.q_proj`).
    fn linear_mut(&mut self, module: &str) -> Option<&mut Linear> {
        self.linears_mut()
            .into_iter()
            .find(|(name, _)| name == module)
            .map(|(_, lin)| lin)
    }

    /// Every linear layer that can carry an adapter, with its module path.
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for (l, blk) in self.blocks.iter_mut().enumerate() {
            for (name, lin) in [
                ("self_attn.q_proj", &mut blk.q),
                ("self_attn.k_proj", &mut blk.k),
                ("self_attn.v_proj", &mut blk.v),
                ("self_attn.o_proj", &mut blk.o),
                ("mlp.gate_proj", &mut blk.gate),
                ("mlp.up_proj", &mut blk.up),
                ("mlp.down_proj", &mut blk.down),
            ] {
                out.push((format!("model.layers.{l}.{name}"), lin));
            }
        }
        out
    }

    /// Adds a fresh LoRA adapter on the configured modules, initialised as PEFT does: A
    /// Kaiming-uniform (a = sqrt(5), so U(-1/sqrt(in), 1/sqrt(in))), seeded; B zeros, so the
    /// model computes exactly what the base does until B moves.
    pub fn add_adapter(&mut self, config: &crate::adapter::LoraConfig, seed: u64) -> Result<()> {
        let mut rng = crate::init::Normal::new(seed ^ 0x4c6f_5241);
        let scale = config.scale();
        for (module, lin) in self.linears_mut() {
            let short = module.rsplit('.').next().unwrap_or("");
            if !config.targets.iter().any(|t| t == short) {
                continue;
            }
            let (out, inp) = (
                lin.weight.dim(0).map_err(ce)?,
                lin.weight.dim(1).map_err(ce)?,
            );
            let bound = 1.0 / (inp as f64).sqrt();
            let a: Vec<f32> = (0..config.r * inp)
                .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
                .collect();
            lin.lora = Some(Lora {
                a: Tensor::from_vec(a, (config.r, inp), &Device::Cpu).map_err(ce)?,
                b: Tensor::zeros((out, config.r), DType::F32, &Device::Cpu).map_err(ce)?,
                scale,
            });
        }
        self.adapter = Some(config.clone());
        Ok(())
    }

    /// The adapter's configuration, when the model carries one.
    pub fn adapter_config(&self) -> Option<&crate::adapter::LoraConfig> {
        self.adapter.as_ref()
    }

    /// The adapter's tensors under PEFT's names.
    pub fn adapter_tensors(&self) -> Vec<(String, Tensor)> {
        let mut copy = self.clone();
        let mut out = Vec::new();
        for (module, lin) in copy.linears_mut() {
            if let Some(l) = &lin.lora {
                out.push((crate::adapter::key(&module, 'A'), l.a.clone()));
                out.push((crate::adapter::key(&module, 'B'), l.b.clone()));
            }
        }
        out
    }

    /// Turns the adapter's A and B (only) into trainable variables; the base stays frozen:
    /// no gradients, no optimiser state.
    pub fn make_adapter_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        let mut vars = Vec::new();
        for (module, lin) in self.linears_mut() {
            if let Some(l) = lin.lora.as_mut() {
                for (which, t) in [('A', &mut l.a), ('B', &mut l.b)] {
                    let var = Var::from_tensor(t).map_err(ce)?;
                    *t = var.as_tensor().clone();
                    vars.push((crate::adapter::key(&module, which), var));
                }
            }
        }
        Ok(vars)
    }

    /// Replaces adapter tensors by PEFT name (from a checkpoint).
    pub fn set_adapter_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (module, lin) in self.linears_mut() {
            if let Some(l) = lin.lora.as_mut() {
                for (which, slot) in [('A', &mut l.a), ('B', &mut l.b)] {
                    let k = crate::adapter::key(&module, which);
                    let t = tensors
                        .get(&k)
                        .ok_or_else(|| Error::msg(format!("missing adapter tensor {k}")))?;
                    if t.dims() != slot.dims() {
                        return Err(Error::msg(format!(
                            "adapter tensor {k}: shape {:?}, expected {:?}",
                            t.dims(),
                            slot.dims()
                        )));
                    }
                    *slot = t.clone();
                }
            }
        }
        Ok(())
    }

    /// Writes the adapter as PEFT does: adapter_config.json and adapter_model.safetensors.
    pub fn save_adapter(&self, dir: &Path, base_model: &str) -> Result<()> {
        let config = self
            .adapter
            .as_ref()
            .ok_or_else(|| Error::msg("the model carries no adapter"))?;
        wick_io::create_dir_all(dir)?;
        wick_io::write_atomic(
            dir.join("adapter_config.json"),
            config.to_json(base_model).as_bytes(),
        )?;
        let tensors: HashMap<String, Tensor> = self.adapter_tensors().into_iter().collect();
        save_safetensors(&tensors, &dir.join("adapter_model.safetensors"))
    }

    /// Puts a LoRA adapter on this model's linear layers (checked against their shapes).
    pub fn apply_adapter(&mut self, adapter: &crate::Adapter) -> Result<()> {
        let scale = adapter.config.scale();
        for (module, (a, b)) in &adapter.weights {
            let lin = self
                .linear_mut(module)
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
                a: a.clone(),
                b: b.clone(),
                scale,
            });
        }
        self.adapter = Some(adapter.config.clone());
        Ok(())
    }

    /// Folds every adapter into its weight: W + s B A.
    pub fn merge_adapter(&mut self) -> Result<()> {
        for (_, lin) in self.linears_mut() {
            if let Some(l) = lin.lora.take() {
                let delta = (l.b.matmul(&l.a).map_err(ce)? * l.scale).map_err(ce)?;
                lin.weight = (&lin.weight + delta).map_err(ce)?;
            }
        }
        self.adapter = None;
        Ok(())
    }

    /// Writes config.json and model.safetensors into `dir` (created if needed), each file
    /// atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        wick_io::create_dir_all(dir)?;
        wick_io::write_atomic(dir.join("config.json"), self.config.to_json().as_bytes())?;
        let tensors: HashMap<String, Tensor> = self.named_tensors().into_iter().collect();
        save_safetensors(&tensors, &dir.join("model.safetensors"))
    }

    /// Logits [B, T, vocab] for token ids [B, T].
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let h = self.hidden(ids, None, None)?;
        self.logits(&h)
    }

    /// Final hidden states [B, T, hidden] (after the last norm). With a cache, `ids` are the
    /// positions after the cached ones and the cache grows by T. `segments` [B, T] u32 keeps
    /// packed documents from attending to each other.
    pub fn hidden(
        &self,
        ids: &Tensor,
        cache: Option<&mut KvCache>,
        segments: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.hidden_inner(ids, cache, segments).map_err(ce)
    }

    /// The output head's weight [vocab, hidden] (the embeddings when tied).
    pub(crate) fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// The output head: logits [.., vocab] from hidden states [.., hidden].
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        Linear {
            weight: head.clone(),
            bias: None,
            lora: None,
        }
        .forward(hidden)
        .map_err(ce)
    }

    fn hidden_inner(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        segments: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, t) = ids.dims2()?;
        let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let past = cache.as_ref().map_or(0, |k| k.len());
        let (cos, sin) = rope_tables(c, past, t)?;
        let mut x =
            self.embed
                .index_select(&ids.flatten_all()?, 0)?
                .reshape((b, t, c.hidden_size))?;
        for (l, blk) in self.blocks.iter().enumerate() {
            let hn = ops::rms_norm(&x, &blk.input_norm, c.rms_norm_eps)?;
            let heads = |lin: &Linear, n: usize| -> candle_core::Result<Tensor> {
                lin.forward(&hn)?.reshape((b, t, n, hd))?.transpose(1, 2)
            };
            let q = ops::rope(&heads(&blk.q, nh)?, &cos, &sin)?;
            let mut k = ops::rope(&heads(&blk.k, nkv)?, &cos, &sin)?;
            let mut v = heads(&blk.v, nkv)?.contiguous()?;
            if let Some(cache) = cache.as_deref_mut() {
                if let Some((pk, pv)) = &cache.layers[l] {
                    k = Tensor::cat(&[pk, &k], 2)?;
                    v = Tensor::cat(&[pv, &v], 2)?;
                }
                cache.layers[l] = Some((k.clone(), v.clone()));
            }
            // Grouped-query attention (each key/value head serves nh / nkv query heads),
            // causal, within documents when packed; y [B, T, nh, hd].
            let y = ops::attention(&q, &k, &v, 1.0 / (hd as f64).sqrt(), segments)?.reshape((
                b,
                t,
                nh * hd,
            ))?;
            x = (x + blk.o.forward(&y)?)?;
            let hn = ops::rms_norm(&x, &blk.post_norm, c.rms_norm_eps)?;
            let mlp = blk.down.forward(&ops::silu_mul(
                &blk.gate.forward(&hn)?,
                &blk.up.forward(&hn)?,
            )?)?;
            x = (x + mlp)?;
        }
        ops::rms_norm(&x, &self.norm, c.rms_norm_eps)
    }
}

/// Mean next-token cross-entropy of a batch [B, T+1] of windows: inputs are the first T
/// tokens, targets the last T. `weights` [B*T] (e.g. an SFT loss mask) weights each target;
/// `segments` [B, T] u32 (packed examples) keeps attention within each example.
/// Differentiable in the weights of the model.
pub fn lm_loss(
    model: &Llama,
    window: &Tensor,
    weights: Option<&Tensor>,
    segments: Option<&Tensor>,
) -> Result<Tensor> {
    head_loss(model, window, weights, segments, true)
}

/// The same loss as a number, with no gradient bookkeeping (evaluation).
pub fn lm_eval_loss(
    model: &Llama,
    window: &Tensor,
    weights: Option<&Tensor>,
    segments: Option<&Tensor>,
) -> Result<f32> {
    head_loss(model, window, weights, segments, false)?
        .to_scalar::<f32>()
        .map_err(ce)
}

fn head_loss(
    model: &Llama,
    window: &Tensor,
    weights: Option<&Tensor>,
    segments: Option<&Tensor>,
    grad: bool,
) -> Result<Tensor> {
    let inner = || -> candle_core::Result<Tensor> {
        let (b, t1) = window.dims2()?;
        let inputs = window.narrow(1, 0, t1 - 1)?;
        let targets = window.narrow(1, 1, t1 - 1)?.flatten_all()?;
        let h = model
            .hidden_inner(&inputs, None, segments)?
            .reshape((b * (t1 - 1), ()))?;
        let head = model.lm_head.as_ref().unwrap_or(&model.embed);
        if grad {
            ops::lm_head_loss(&h, head, &targets, weights)
        } else {
            ops::lm_head_loss(&h.detach(), &head.detach(), &targets, weights)
        }
    };
    inner().map_err(ce)
}

/// Writes tensors as a safetensors file, atomically (temporary file, then rename).
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(tensors, &tmp)
        .map_err(|e| Error::msg(format!("{}: cannot write: {e}", tmp.display())))?;
    // The writer creates the file private (0600); model files are meant to be shared.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))
}

/// Log-probabilities over the vocabulary [.., vocab], without a gradient.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(logits, D::Minus1).map_err(ce)
}
