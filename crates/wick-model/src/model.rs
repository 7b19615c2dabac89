//! The decoder itself, readable in one sitting: embeddings, `num_layers` blocks of
//! (RMSNorm → attention → residual, RMSNorm → SwiGLU MLP → residual), final RMSNorm, head.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, TensorId, Var, D};
use wick_io::{Error, Result};

use crate::{ops, Config};

mod adapters;

pub use adapters::AdapterKind;

/// The one conversion of candle's errors into wick's (the candle error stays the source).
pub fn candle_error(e: candle_core::Error) -> Error {
    Error::lib("tensor op failed", e)
}
pub(crate) use candle_error as ce;

/// A linear layer stored as Hugging Face does: weight [out, in], optional bias [out], and
/// optionally a LoRA adapter on top.
#[derive(Clone)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<Lora>,
    /// `weight` transposed, [in, out], with the id of the tensor it was copied from (see
    /// `Llama::keep_transposed_weights`); used only while that is still the weight.
    transposed: Option<(TensorId, Tensor)>,
}

/// A [r, in], B [out, r], the factor on B A, and the dropout on the adapter's input (applied
/// only while training).
#[derive(Clone)]
struct Lora {
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f64,
}

/// Inverted dropout's mask for x [n, k]: each entry 0 with probability p, else 1 / (1 - p),
/// from a counter-based generator keyed by `key`, so that a step's masks are the same
/// whenever it is recomputed (an exact resume).
fn dropout_mask(key: u64, n: usize, k: usize, p: f64) -> candle_core::Result<Tensor> {
    let mut rng = crate::init::Normal::new(key);
    let keep = (1.0 / (1.0 - p)) as f32;
    let v: Vec<f32> = (0..n * k)
        .map(|_| if rng.uniform() > p { keep } else { 0.0 })
        .collect();
    Tensor::from_vec(v, (n, k), &Device::Cpu)
}

impl Linear {
    /// The kept transposed copy, when it is still a copy of the weight and the weight does not
    /// train (a Var keeps its id while the optimizer changes it).
    fn transposed_weight(&self) -> Option<&Tensor> {
        match &self.transposed {
            Some((id, wt)) if *id == self.weight.id() && !self.weight.track_op() => Some(wt),
            _ => None,
        }
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_train(x, None)
    }

    /// `dropout_key` Some: training, and the LoRA input goes through dropout keyed by it.
    fn forward_train(&self, x: &Tensor, dropout_key: Option<u64>) -> candle_core::Result<Tensor> {
        // One [N, in] x [in, out] product over all leading dimensions: broadcast_matmul
        // would copy the weight once per batch row, and its gradient would need a sum.
        let mut dims = x.dims().to_vec();
        let inp = dims.pop().expect("at least one dimension");
        let x = x.reshape(((), inp))?;
        let dropout = dropout_key.filter(|_| self.lora.as_ref().is_some_and(|l| l.dropout > 0.0));
        if let (Some(l), None, false) = (&self.lora, dropout, self.weight.track_op()) {
            // A frozen weight with its adapter: one op, one [N, out] tensor.
            let y = ops::lora_matmul(&x, &self.weight, &l.a, &l.b, l.scale)?;
            let y = match &self.bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            };
            dims.push(y.dim(1)?);
            return y.reshape(dims);
        }
        let mut y = if let Some(wt) = self.transposed_weight().filter(|_| !x.track_op()) {
            ops::matmul_t(&x, wt)?
        } else if !x.track_op() && !self.weight.track_op() && x.dim(0)? <= ops::GEMV_MAX_ROWS {
            // Decoding: a few rows against every weight (no gradients anywhere).
            ops::gemv(&x, &self.weight)?
        } else if x.track_op() && !self.weight.track_op() {
            // A frozen weight under a trainable input (LoRA): no weight gradient.
            ops::frozen_matmul(&x, &self.weight)?
        } else {
            ops::linear(&x, &self.weight)?
        };
        if let Some(l) = &self.lora {
            let xd = match dropout {
                Some(key) => (&x * dropout_mask(key, x.dim(0)?, inp, l.dropout)?)?,
                _ => x.clone(),
            };
            // Through the rank-r bottleneck: never forms the [out, in] product B A.
            y = (y + (ops::linear(&ops::linear(&xd, &l.a)?, &l.b)? * l.scale)?)?;
        }
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        dims.push(y.dim(1)?);
        y.reshape(dims)
    }
}

/// The layers `parts`, applied to `x`, as one whose output is theirs side by side, so that in
/// training one product replaces several in each direction: the input is packed for the matrix
/// kernel once, and its gradient is one product instead of several and their sum. The weights
/// are concatenated on every call (a copy that is small next to a batch's product), so the
/// parameters stay the Hugging Face tensors, each with its own gradient.
///
/// None when nothing takes a gradient: for evaluation the fused and separate products measured
/// the same (small preset, forward only, 336 vs 334 ms) and the copy is then pure cost. None
/// too when a part has a LoRA adapter (its dropout and bottleneck are per layer), when only
/// some have a bias, and off the CPU.
fn fuse(parts: &[&Linear], x: &Tensor) -> candle_core::Result<Option<Linear>> {
    let training = x.track_op() || parts.iter().any(|l| l.weight.track_op());
    if !training
        || parts
            .iter()
            .any(|l| l.lora.is_some() || !l.weight.device().is_cpu())
    {
        return Ok(None);
    }
    let biases: Vec<&Tensor> = parts.iter().filter_map(|l| l.bias.as_ref()).collect();
    if !(biases.is_empty() || biases.len() == parts.len()) {
        return Ok(None);
    }
    let weights: Vec<&Tensor> = parts.iter().map(|l| &l.weight).collect();
    Ok(Some(Linear {
        weight: Tensor::cat(&weights, 0)?,
        bias: match biases.is_empty() {
            true => None,
            false => Some(Tensor::cat(&biases, 0)?),
        },
        lora: None,
        transposed: None,
    }))
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
    /// Houlsby adapters after the attention output and after the MLP, when present.
    attn_adapter: Option<adapters::Bottleneck>,
    mlp_adapter: Option<adapters::Bottleneck>,
}

#[derive(Clone)]
pub struct Llama {
    pub config: Config,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    /// None when tied to the embeddings (or for a sequence classifier).
    lm_head: Option<Tensor>,
    /// A sequence classifier's head (`score.weight` [labels, hidden]; reward models).
    score: Option<Tensor>,
    /// The adapter's settings when the model carries one (LoRA on the linear layers, or
    /// Houlsby bottlenecks in the blocks).
    adapter: Option<AdapterKind>,
    /// Some while training: keys the LoRA dropout masks of the next forward pass.
    dropout_key: Option<u64>,
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

impl Loaded {
    /// Errs naming the tensors left over once the model has taken its own: a checkpoint is
    /// understood entirely or refused, never read in part.
    fn refuse_unused(&self, c: &Config, config_path: &Path) -> Result<()> {
        let mut left: Vec<&String> = self.map.keys().collect();
        if left.is_empty() {
            return Ok(());
        }
        left.sort_by_key(|n| natural_key(n));
        let first = left[0];
        let more = match left.len() {
            1 => String::new(),
            n => format!(" (and {} more: {})", n - 1, natural_tail(&left[1..])),
        };
        // What in config.json leaves it out, where that is plain from its name.
        let layer = first
            .strip_prefix("model.layers.")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        let hint = if layer.is_some_and(|l| l >= c.num_layers) {
            format!("num_hidden_layers is {}", c.num_layers)
        } else if first.ends_with(".bias") && c.family != crate::Family::Llama {
            format!(
                "model_type {:?} has biases on q, k and v at most, whatever attention_bias and mlp_bias say",
                c.family_name()
            )
        } else if first.contains(".self_attn.") && first.ends_with(".bias") {
            format!("attention_bias is {}", c.o_bias)
        } else if first.contains(".mlp.") && first.ends_with(".bias") {
            format!("mlp_bias is {}", c.mlp_bias)
        } else if first == "lm_head.weight" && c.num_labels().is_some() {
            "a sequence classifier has a score head instead".into()
        } else {
            "no such tensor in this model".into()
        };
        Err(Error::msg(format!(
            "{}: tensor {first}{more} is not used by the model {} describes ({hint}); refusing to ignore it",
            self.file,
            config_path.display()
        )))
    }
}

/// Sorts layer numbers as numbers (layer 2 before layer 10).
fn natural_key(name: &str) -> (String, usize, String) {
    if let Some(rest) = name.strip_prefix("model.layers.") {
        if let Some((n, tail)) = rest.split_once('.') {
            if let Ok(n) = n.parse() {
                return ("model.layers.".into(), n, tail.into());
            }
        }
    }
    (name.into(), 0, String::new())
}

/// Up to three more names, for the error.
fn natural_tail(names: &[&String]) -> String {
    let shown: Vec<&str> = names.iter().take(3).map(|s| s.as_str()).collect();
    let mut t = shown.join(", ");
    if names.len() > 3 {
        t.push_str(", ...");
    }
    t
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
    /// Training mode for the next forward passes: Some(key) turns LoRA dropout on with masks
    /// drawn from `key` (derive it from the seed, step and micro-batch); None (the default)
    /// is evaluation: no dropout.
    pub fn set_dropout_key(&mut self, key: Option<u64>) {
        self.dropout_key = key;
    }

    /// Loads config.json and model.safetensors from a Hugging Face folder.
    ///
    /// Strict: every tensor of the file must be one the config's model uses (an unused one is
    /// an error naming it), every one it uses must be there with its shape, and the weights
    /// must fit in this machine's memory (checked from the config before anything is read).
    pub fn load(dir: &Path) -> Result<Llama> {
        let config_path = dir.join("config.json");
        let config = Config::load(&config_path)?;
        crate::memory::check_weights(&config)
            .map_err(|e| Error::msg(format!("{}: {e}", config_path.display())))?;
        let file = dir.join("model.safetensors");
        if !file.exists() {
            return Err(Error::msg(format!(
                "{}: no model.safetensors (sharded and .bin checkpoints are not supported)",
                dir.display()
            )));
        }
        // Mapped rather than read: reading copies the whole file into a fresh buffer before
        // each tensor is copied out of it, and on this project's VM a fresh page costs more to
        // fault in than to copy (the small model: 69 MB of such pages saved at every start).
        let map = (|| -> candle_core::Result<HashMap<String, Tensor>> {
            use candle_core::safetensors::{Load, MmapedSafetensors};
            // SAFETY: the map lives only inside this closure and every tensor is copied out of
            // it before it returns; a file truncated meanwhile by another process would fault,
            // as with any memory-mapped reader.
            let st = unsafe { MmapedSafetensors::new(&file)? };
            st.tensors()
                .into_iter()
                .map(|(name, view)| Ok((name, view.load(&Device::Cpu)?)))
                .collect()
        })()
        .map_err(|e| Error::msg(format!("{}: cannot read safetensors: {e}", file.display())))?;
        let mut src = Loaded {
            map,
            file: file.display().to_string(),
        };
        let mut model = Llama::assemble(config, &mut src)?;
        if let Some(labels) = model.config.num_labels() {
            let h = model.config.hidden_size;
            model.score = Some(src.get("score.weight", &[labels, h])?);
        } else if model.config.tie_word_embeddings {
            // Some writers store the tied head as well: accepted only as the copy it must be.
            if let Some(head) = src.map.remove("lm_head.weight") {
                let same = head.dims() == model.embed.dims()
                    && head
                        .to_dtype(DType::F32)
                        .and_then(|h| h.eq(&model.embed)?.min_all()?.to_scalar::<u8>())
                        .map_err(ce)?
                        == 1;
                if !same {
                    return Err(Error::msg(format!(
                        "{}: lm_head.weight differs from model.embed_tokens.weight, but {} has tie_word_embeddings true",
                        src.file,
                        config_path.display()
                    )));
                }
            }
        } else {
            model.lm_head = Some(src.get(
                "lm_head.weight",
                &[model.config.vocab_size, model.config.hidden_size],
            )?);
        }
        src.refuse_unused(&model.config, &config_path)?;
        Ok(model)
    }

    /// A freshly initialised model (transformers' Llama initialisation, seeded).
    /// Refused before anything is allocated when the weights would not fit in memory.
    pub fn init(config: Config, seed: u64) -> Result<Llama> {
        crate::memory::check_weights(&config).map_err(Error::msg)?;
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
                transposed: None,
            })
        };
        // Not reserved up front: the weight estimate (checked before) counts parameters, not a
        // layer's own ~700 bytes, so 38 million layers of a few parameters each passed it and
        // reserving them aborted; a loaded model's layers each need their tensors in the file.
        let mut blocks = Vec::new();
        for l in 0..c.num_layers {
            let p = format!("model.layers.{l}");
            let (qo, kvo) = (c.num_heads * hd, c.num_kv_heads * hd);
            let q = linear(w, &format!("{p}.self_attn.q_proj"), qo, h, c.qkv_bias)?;
            let k = linear(w, &format!("{p}.self_attn.k_proj"), kvo, h, c.qkv_bias)?;
            let v = linear(w, &format!("{p}.self_attn.v_proj"), kvo, h, c.qkv_bias)?;
            let o = linear(w, &format!("{p}.self_attn.o_proj"), h, qo, c.o_bias)?;
            let gate = linear(
                w,
                &format!("{p}.mlp.gate_proj"),
                c.intermediate_size,
                h,
                c.mlp_bias,
            )?;
            let up = linear(
                w,
                &format!("{p}.mlp.up_proj"),
                c.intermediate_size,
                h,
                c.mlp_bias,
            )?;
            let down = linear(
                w,
                &format!("{p}.mlp.down_proj"),
                h,
                c.intermediate_size,
                c.mlp_bias,
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
                attn_adapter: None,
                mlp_adapter: None,
            });
        }
        Ok(Llama {
            embed: w.get("model.embed_tokens.weight", &[c.vocab_size, h])?,
            norm: w.get("model.norm.weight", &[h])?,
            blocks,
            lm_head: None,
            score: None,
            adapter: None,
            dropout_key: None,
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
        if let Some(score) = self.score.as_mut() {
            out.push(("score.weight".to_string(), score));
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

    /// Stores every projection weight without an adapter transposed, [in, out], for forward
    /// passes that take no gradient (`ppl`, scoring): gemm packs a weight stored [out, in]
    /// again on every product, and reads an [in, out] one as it is, so those products run
    /// 2-19% faster (measured on the small and nano presets' shapes, 2 threads).
    ///
    /// The weight becomes a strided [out, in] view of the transposed storage, and the
    /// [out, in] original is freed, so this costs no memory: a kept second copy had been 57 MB
    /// of the small model, and freshly faulted pages are slow on a VM. The transposed storage
    /// is used only while its view is still the weight and does not train; anything else
    /// reads the view (a copy per call where a kernel needs [out, in] rows), and replacing or
    /// training the weight makes it inert.
    pub fn keep_transposed_weights(&mut self) -> Result<()> {
        for (_, lin) in self.linears_mut() {
            if lin.lora.is_some() || lin.transposed_weight().is_some() {
                // An adapter's layer takes its own fused path, which wants [out, in].
                continue;
            }
            let wt = lin.weight.t().and_then(|t| t.contiguous()).map_err(ce)?;
            lin.weight = wt.t().map_err(ce)?;
            lin.transposed = Some((lin.weight.id(), wt));
        }
        Ok(())
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

    /// Turns a causal LM into a sequence classifier with `labels` outputs (a reward model has
    /// one), as transformers' `...ForSequenceClassification` loads a causal checkpoint: the LM
    /// head goes, a `score` head drawn from N(0, initializer_range) (seeded) takes its place,
    /// and config.json will name the classifier and its pad id.
    pub fn into_classifier(&mut self, labels: usize, pad: u32, seed: u64) -> Result<()> {
        let c = &mut self.config;
        let archs: Vec<String> = c
            .json
            .get("architectures")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .filter(|a: &Vec<String>| !a.is_empty())
            .unwrap_or_else(|| vec!["LlamaForCausalLM".into()]);
        let archs: Vec<String> = archs
            .iter()
            .map(|a| {
                let stem = a.strip_suffix("ForCausalLM").unwrap_or(a);
                let stem = stem
                    .strip_suffix("ForSequenceClassification")
                    .unwrap_or(stem);
                format!("{stem}ForSequenceClassification")
            })
            .collect();
        let id2label: serde_json::Map<String, serde_json::Value> = (0..labels)
            .map(|i| (i.to_string(), format!("LABEL_{i}").into()))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = (0..labels)
            .map(|i| (format!("LABEL_{i}"), i.into()))
            .collect();
        c.json.insert("architectures".into(), archs.into());
        c.json.insert("num_labels".into(), labels.into());
        c.json.insert("id2label".into(), id2label.into());
        c.json.insert("label2id".into(), label2id.into());
        c.pad_token_id = Some(pad);
        let mut rng = crate::init::Normal::new(seed ^ 0x5c0e);
        let std = c.initializer_range;
        let data: Vec<f32> = (0..labels * c.hidden_size)
            .map(|_| (rng.sample() * std) as f32)
            .collect();
        self.score =
            Some(Tensor::from_vec(data, (labels, c.hidden_size), &Device::Cpu).map_err(ce)?);
        self.lm_head = None;
        Ok(())
    }

    /// log p(target) through the output head for hidden states h [N, hidden] and targets [N]
    /// -> [N]; differentiable in the model when `grad` (DPO, PPO).
    pub fn head_logprobs(&self, h: &Tensor, targets: &Tensor, grad: bool) -> Result<Tensor> {
        if grad {
            ops::lm_head_logprobs_train(h, self.head(), targets).map_err(ce)
        } else {
            ops::lm_head_logprobs(&h.detach(), &self.head().detach(), targets).map_err(ce)
        }
    }

    /// The entropy of the next-token distribution for hidden states h [N, hidden] -> [N].
    pub fn head_entropy(&self, h: &Tensor) -> Result<Tensor> {
        ops::lm_head_entropy(&h.detach(), &self.head().detach()).map_err(ce)
    }

    /// A sequence classifier's head `score.weight` [labels, hidden], if this is one.
    pub fn score_head(&self) -> Option<&Tensor> {
        self.score.as_ref()
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
            transposed: None,
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
            // A distinct dropout key per layer and module (LoRA dropout, training only).
            let key = |slot: u64| {
                self.dropout_key
                    .map(|k| k ^ ((l as u64) << 8 | slot).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            };
            let hn = ops::rms_norm(&x, &blk.input_norm, c.rms_norm_eps)?;
            let scale = 1.0 / (hd as f64).sqrt();
            // Grouped-query attention (each key/value head serves nh / nkv query heads),
            // causal, within documents when packed; y [B, T, nh, hd].
            let fused = match cache {
                None => fuse(&[&blk.q, &blk.k, &blk.v], &hn)?,
                Some(_) => None,
            };
            let y = if let Some(qkv) = fused {
                // One product [B, T, heads, hd]; rope_heads rotates q and k and lays every
                // head's rows out contiguously, [B, heads, T, hd], in the same pass.
                let qkv = qkv
                    .forward_train(&hn, None)?
                    .reshape((b, t, nh + 2 * nkv, hd))?;
                let qkv = ops::rope_heads(&qkv, nh + nkv, &cos, &sin)?;
                ops::attention_packed(&qkv, nh, nkv, scale, segments)?
            } else {
                let heads = |lin: &Linear, n: usize, slot: u64| -> candle_core::Result<Tensor> {
                    lin.forward_train(&hn, key(slot))?
                        .reshape((b, t, n, hd))?
                        .transpose(1, 2)
                };
                let q = ops::rope(&heads(&blk.q, nh, 0)?, &cos, &sin)?;
                let mut k = ops::rope(&heads(&blk.k, nkv, 1)?, &cos, &sin)?;
                let mut v = heads(&blk.v, nkv, 2)?.contiguous()?;
                if let Some(cache) = cache.as_deref_mut() {
                    if let Some((pk, pv)) = &cache.layers[l] {
                        k = Tensor::cat(&[pk, &k], 2)?;
                        v = Tensor::cat(&[pv, &v], 2)?;
                    }
                    cache.layers[l] = Some((k.clone(), v.clone()));
                }
                ops::attention(&q, &k, &v, scale, segments)?
            }
            .reshape((b, t, nh * hd))?;
            let mut attn = blk.o.forward_train(&y, key(3))?;
            if let Some(a) = &blk.attn_adapter {
                attn = a.forward(&attn)?;
            }
            x = (x + attn)?;
            let hn = ops::rms_norm(&x, &blk.post_norm, c.rms_norm_eps)?;
            let fused = match cache {
                None => fuse(&[&blk.gate, &blk.up], &hn)?,
                Some(_) => None,
            };
            let act = match fused {
                Some(gu) => ops::silu_mul_packed(&gu.forward_train(&hn, None)?)?,
                None => ops::silu_mul(
                    &blk.gate.forward_train(&hn, key(4))?,
                    &blk.up.forward_train(&hn, key(5))?,
                )?,
            };
            let mut mlp = blk.down.forward_train(&act, key(6))?;
            if let Some(a) = &blk.mlp_adapter {
                mlp = a.forward(&mlp)?;
            }
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

/// Writes tensors as a safetensors file, atomically: a temporary file, synced, then renamed.
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let f = wick_io::AtomicFile::create(path)?;
    candle_core::safetensors::save(tensors, f.tmp_path())
        .map_err(|e| Error::msg(format!("{}: cannot write: {e}", path.display())))?;
    f.commit()
}

/// Log-probabilities over the vocabulary [.., vocab], without a gradient.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(logits, D::Minus1).map_err(ce)
}
