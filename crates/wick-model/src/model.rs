//! The decoder, readable in one sitting: embeddings, `num_layers` blocks of (RMSNorm →
//! attention → residual, RMSNorm → SwiGLU MLP → residual), final RMSNorm, head. Each part owns
//! its `load` (from Hugging Face's tensor names, listed once in `names`) and its `forward`; the
//! math of every op is in `kernels` (fused CPU kernels) and `kernels::reference` (the same in
//! plain candle ops).
//!
//! Around this file: `weights` (where tensors come from, saving, making them trainable),
//! `heads` (losses and scores through the output head, the classifier head) and `adapters`
//! (LoRA adapters on the linear layers, bottleneck adapters after attention and MLP).

use candle_core::{Device, Tensor, TensorId};
use wick_io::{Error, Result};

use crate::kernels;
use crate::Config;

mod adapters;
mod checkpoint;
mod heads;
mod weights;

pub use adapters::{AdapterKind, BottleneckAdapter};
pub use heads::{lm_eval_loss, lm_loss, log_softmax, ScoreHead};
pub use weights::save_safetensors;
use weights::Source;

/// The one conversion of candle's errors into wick's (the candle error stays the source).
pub fn candle_error(e: candle_core::Error) -> Error {
    Error::lib("tensor op failed", e)
}
pub(crate) use candle_error as ce;

/// Hugging Face's tensor names, each written once: loading, saving, training and adapters all
/// go through these.
pub(crate) mod names {
    pub const EMBED: &str = "model.embed_tokens.weight";
    pub const NORM: &str = "model.norm.weight";
    pub const LM_HEAD: &str = "lm_head.weight";
    /// A sequence classifier's head (reward models).
    pub const SCORE: &str = "score.weight";
    pub const LAYERS: &str = "model.layers.";
    pub const INPUT_NORM: &str = "input_layernorm.weight";
    pub const POST_NORM: &str = "post_attention_layernorm.weight";
    /// q, k, v, o.
    pub const ATTENTION: [&str; 4] = [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
    ];
    /// gate, up, down.
    pub const MLP: [&str; 3] = ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

    /// The prefix of layer `l`'s tensors.
    pub fn layer(l: usize) -> String {
        format!("{LAYERS}{l}")
    }
}

/// A linear layer stored as Hugging Face does: weight [out, in], optional bias [out], and
/// optionally a LoRA adapter on top.
#[derive(Clone)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<adapters::Lora>,
    /// `weight` transposed, [in, out], with the id of the tensor it was copied from (see
    /// `Llama::keep_transposed_weights`); used only while that is still the weight.
    transposed: Option<(TensorId, Tensor)>,
}

/// The product kernel a linear layer runs, chosen from what takes a gradient: candle's own
/// matmul computes both operands' gradients whatever trains, and packs a weight stored [out, in]
/// again on every call, so each case below has a kernel that does only what it needs.
enum Product<'a> {
    /// A frozen weight with its LoRA adapter and no dropout: one op, one [N, out] tensor.
    FrozenWithLora(&'a adapters::Lora),
    /// No gradient anywhere and the weight kept transposed: read as it is, not packed again.
    Transposed(&'a Tensor),
    /// No gradient anywhere and a few rows (decoding).
    FewRows,
    /// A frozen weight under a trainable input (the base under an adapter): no weight gradient.
    FrozenWeight,
    /// The weight trains (or nothing else applies).
    Trainable,
}

impl Linear {
    fn load(w: &mut dyn Source, name: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: w.get(&format!("{name}.weight"), &[out, inp])?,
            bias: match bias {
                true => Some(w.get(&format!("{name}.bias"), &[out])?),
                false => None,
            },
            lora: None,
            transposed: None,
        })
    }

    /// The kept transposed copy, when it is still a copy of the weight and the weight does not
    /// train (a Var keeps its id while the optimizer changes it).
    fn transposed_weight(&self) -> Option<&Tensor> {
        match &self.transposed {
            Some((id, wt)) if *id == self.weight.id() && !self.weight.track_op() => Some(wt),
            _ => None,
        }
    }

    fn product(&self, x: &Tensor, dropout: bool) -> candle_core::Result<Product<'_>> {
        let (x_grad, w_grad) = (x.track_op(), self.weight.track_op());
        Ok(match (&self.lora, self.transposed_weight()) {
            (Some(l), _) if !dropout && !w_grad => Product::FrozenWithLora(l),
            (_, Some(wt)) if !x_grad => Product::Transposed(wt),
            _ if !x_grad && !w_grad && x.dim(0)? <= kernels::GEMV_MAX_ROWS => Product::FewRows,
            _ if x_grad && !w_grad => Product::FrozenWeight,
            _ => Product::Trainable,
        })
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
        let w = &self.weight;
        let product = self.product(&x, dropout.is_some())?;
        let lora_done = matches!(product, Product::FrozenWithLora(_));
        let mut y = match product {
            Product::FrozenWithLora(l) => kernels::lora_matmul(&x, w, &l.a, &l.b, l.scale)?,
            Product::Transposed(wt) => kernels::matmul_t(&x, wt)?,
            Product::FewRows => kernels::gemv(&x, w)?,
            Product::FrozenWeight => kernels::frozen_matmul(&x, w)?,
            Product::Trainable => kernels::linear(&x, w)?,
        };
        if let (Some(l), false) = (&self.lora, lora_done) {
            // Through the rank-r bottleneck: never forms the [out, in] product B A.
            y = (y + l.forward(&x, dropout)?)?;
        }
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
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
/// None when nothing takes a gradient (for evaluation the fused and separate products run
/// equally fast, and the copy is then pure cost), when a part has a LoRA adapter (its dropout
/// and bottleneck are per layer), when only some have a bias, and where the fused kernels do
/// not run (the packed layout is theirs; the reference ops would only copy it apart again).
fn fuse(parts: &[&Linear], x: &Tensor) -> candle_core::Result<Option<Linear>> {
    let training = x.track_op() || parts.iter().any(|l| l.weight.track_op());
    if !training
        || parts
            .iter()
            .any(|l| l.lora.is_some() || !kernels::cpu::kernels_run_on(l.weight.device()))
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

/// The LoRA dropout keys of one layer's linear layers (training only): a distinct key per
/// layer and module, so that a step's masks are the same whenever it is recomputed.
#[derive(Clone, Copy)]
struct DropoutKeys {
    base: Option<u64>,
    layer: usize,
}

impl DropoutKeys {
    fn slot(self, slot: u64) -> Option<u64> {
        let l = self.layer as u64;
        self.base
            .map(|k| k ^ (l << 8 | slot).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

/// cos and sin tables [T, head_dim] for the positions being computed.
#[derive(Clone)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// Positions start..start+t, in Hugging Face's layout: the frequencies repeated over both
    /// halves; on `device`.
    fn new(c: &Config, start: usize, t: usize, device: &Device) -> candle_core::Result<Rope> {
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
        Ok(Rope {
            cos: Tensor::from_vec(cos, (t, hd), device)?,
            sin: Tensor::from_vec(sin, (t, hd), device)?,
        })
    }
}

/// Causal grouped-query self-attention: each key/value head serves num_heads / num_kv_heads
/// query heads; within documents when packed.
#[derive(Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// A bottleneck adapter on the output, when the model carries them.
    adapter: Option<BottleneckAdapter>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(w: &mut dyn Source, layer: &str, c: &Config) -> Result<Attention> {
        let [q, k, v, o] = names::ATTENTION.map(|n| format!("{layer}.{n}"));
        let (h, qo, kvo) = (
            c.hidden_size,
            c.num_heads * c.head_dim,
            c.num_kv_heads * c.head_dim,
        );
        Ok(Attention {
            q: Linear::load(w, &q, qo, h, c.qkv_bias)?,
            k: Linear::load(w, &k, kvo, h, c.qkv_bias)?,
            v: Linear::load(w, &v, kvo, h, c.qkv_bias)?,
            o: Linear::load(w, &o, h, qo, c.o_bias)?,
            adapter: None,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
        })
    }

    /// x [B, T, hidden] -> [B, T, hidden]. With a cache, x holds the positions after the cached
    /// ones, whose keys and values it then gains.
    fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        segments: Option<&Tensor>,
        keys: DropoutKeys,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let scale = 1.0 / (hd as f64).sqrt();
        let fused = match cache {
            None => fuse(&[&self.q, &self.k, &self.v], x)?,
            Some(_) => None,
        };
        // y [B, T, nh, hd]
        let y = if let Some(qkv) = fused {
            // One product [B, T, heads, hd]; rope_heads rotates q and k and lays every head's
            // rows out contiguously, [B, heads, T, hd], in the same pass.
            let qkv = qkv.forward(x)?.reshape((b, t, nh + 2 * nkv, hd))?;
            let qkv = kernels::rope_heads(&qkv, nh + nkv, &rope.cos, &rope.sin)?;
            kernels::attention_packed(&qkv, nh, nkv, scale, segments)?
        } else {
            let heads = |lin: &Linear, n: usize, slot: u64| -> candle_core::Result<Tensor> {
                lin.forward_train(x, keys.slot(slot))?
                    .reshape((b, t, n, hd))?
                    .transpose(1, 2)
            };
            let q = kernels::rope(&heads(&self.q, nh, 0)?, &rope.cos, &rope.sin)?;
            let mut k = kernels::rope(&heads(&self.k, nkv, 1)?, &rope.cos, &rope.sin)?;
            let mut v = heads(&self.v, nkv, 2)?.contiguous()?;
            if let Some(cache) = cache {
                if let Some((pk, pv)) = cache.as_ref() {
                    k = Tensor::cat(&[pk, &k], 2)?;
                    v = Tensor::cat(&[pv, &v], 2)?;
                }
                *cache = Some((k.clone(), v.clone()));
            }
            kernels::attention(&q, &k, &v, scale, segments)?
        };
        let y = self
            .o
            .forward_train(&y.reshape((b, t, nh * hd))?, keys.slot(3))?;
        match &self.adapter {
            Some(a) => a.forward(&y),
            None => Ok(y),
        }
    }

    fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 4] {
        let [q, k, v, o] = names::ATTENTION;
        [
            (q, &mut self.q),
            (k, &mut self.k),
            (v, &mut self.v),
            (o, &mut self.o),
        ]
    }
}

/// SwiGLU: down(silu(gate(x)) * up(x)).
#[derive(Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    /// A bottleneck adapter on the output, when the model carries them.
    adapter: Option<BottleneckAdapter>,
}

impl Mlp {
    fn load(w: &mut dyn Source, layer: &str, c: &Config) -> Result<Mlp> {
        let [gate, up, down] = names::MLP.map(|n| format!("{layer}.{n}"));
        let (h, i) = (c.hidden_size, c.intermediate_size);
        Ok(Mlp {
            gate: Linear::load(w, &gate, i, h, c.mlp_bias)?,
            up: Linear::load(w, &up, i, h, c.mlp_bias)?,
            down: Linear::load(w, &down, h, i, c.mlp_bias)?,
            adapter: None,
        })
    }

    /// `decoding`: a KV cache is in use (no gate/up fusion; it pays only in training).
    fn forward(
        &self,
        x: &Tensor,
        decoding: bool,
        keys: DropoutKeys,
    ) -> candle_core::Result<Tensor> {
        let fused = match decoding {
            false => fuse(&[&self.gate, &self.up], x)?,
            true => None,
        };
        let act = match fused {
            Some(gu) => kernels::silu_mul_packed(&gu.forward(x)?)?,
            None => kernels::silu_mul(
                &self.gate.forward_train(x, keys.slot(4))?,
                &self.up.forward_train(x, keys.slot(5))?,
            )?,
        };
        let y = self.down.forward_train(&act, keys.slot(6))?;
        match &self.adapter {
            Some(a) => a.forward(&y),
            None => Ok(y),
        }
    }

    fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 3] {
        let [gate, up, down] = names::MLP;
        [
            (gate, &mut self.gate),
            (up, &mut self.up),
            (down, &mut self.down),
        ]
    }
}

/// One decoder layer: pre-norm attention and pre-norm MLP, each added to the residual stream.
#[derive(Clone)]
struct Block {
    input_norm: Tensor,
    attn: Attention,
    post_norm: Tensor,
    mlp: Mlp,
    eps: f64,
}

impl Block {
    fn load(w: &mut dyn Source, l: usize, c: &Config) -> Result<Block> {
        let p = names::layer(l);
        let h = c.hidden_size;
        // In this order, so that a file's first missing tensor is the one named.
        let attn = Attention::load(w, &p, c)?;
        let mlp = Mlp::load(w, &p, c)?;
        Ok(Block {
            input_norm: w.get(&format!("{p}.{}", names::INPUT_NORM), &[h])?,
            attn,
            post_norm: w.get(&format!("{p}.{}", names::POST_NORM), &[h])?,
            mlp,
            eps: c.rms_norm_eps,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        segments: Option<&Tensor>,
        keys: DropoutKeys,
    ) -> candle_core::Result<Tensor> {
        let decoding = cache.is_some();
        let h = kernels::rms_norm(x, &self.input_norm, self.eps)?;
        let x = (x + self.attn.forward(&h, rope, cache, segments, keys)?)?;
        let h = kernels::rms_norm(&x, &self.post_norm, self.eps)?;
        x + self.mlp.forward(&h, decoding, keys)?
    }

    /// Every tensor of the layer, adapters' included (shared storage, not copies).
    fn tensors(&self) -> Vec<Tensor> {
        let mut b = self.clone();
        let mut out = vec![b.input_norm.clone(), b.post_norm.clone()];
        for (_, lin) in b.linears_mut() {
            out.push(lin.weight.clone());
            out.extend(lin.bias.clone());
            if let Some(l) = &lin.lora {
                out.extend([l.a.clone(), l.b.clone()]);
            }
        }
        for a in [&mut b.attn.adapter, &mut b.mlp.adapter]
            .into_iter()
            .flatten()
        {
            out.extend(a.slots().into_iter().map(|(_, _, t)| t.clone()));
        }
        out
    }

    /// Every linear layer with its name within the layer, attention's then the MLP's.
    fn linears_mut(&mut self) -> impl Iterator<Item = (&'static str, &mut Linear)> {
        self.attn
            .linears_mut()
            .into_iter()
            .chain(self.mlp.linears_mut())
    }
}

#[derive(Clone)]
pub struct Llama {
    pub config: Config,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    /// None when tied to the embeddings (or for a sequence classifier).
    lm_head: Option<Tensor>,
    /// A sequence classifier's head (reward models).
    score: Option<ScoreHead>,
    /// The adapter's settings when the model carries one.
    adapter: Option<AdapterKind>,
    /// Some while training: keys the LoRA dropout masks of the next forward pass.
    dropout_key: Option<u64>,
    /// Some with gradient checkpointing on: where recomputed blocks leave their gradients.
    recompute: Option<checkpoint::Collected>,
    /// The dtype of the checkpoint the weights came from.
    stored_dtype: candle_core::DType,
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

impl Llama {
    /// The layers and final norm from `w`, heads left to the caller (they depend on the
    /// checkpoint: tied, untied or a classifier's).
    fn load_body(config: Config, w: &mut dyn Source) -> Result<Llama> {
        let c = &config;
        // Not reserved up front: the weight estimate (checked before) counts parameters, not a
        // layer's own ~700 bytes, so 38 million layers of a few parameters each passed it and
        // reserving them aborted; a loaded model's layers each need their tensors in the file.
        let mut blocks = Vec::new();
        for l in 0..c.num_layers {
            blocks.push(Block::load(w, l, c)?);
        }
        Ok(Llama {
            embed: w.get(names::EMBED, &[c.vocab_size, c.hidden_size])?,
            norm: w.get(names::NORM, &[c.hidden_size])?,
            blocks,
            lm_head: None,
            score: None,
            adapter: None,
            dropout_key: None,
            recompute: None,
            stored_dtype: candle_core::DType::F32,
            config,
        })
    }

    /// Training mode for the next forward passes: Some(key) turns LoRA dropout on with masks
    /// drawn from `key` (derive it from the seed, step and micro-batch); None (the default)
    /// is evaluation: no dropout.
    pub fn set_dropout_key(&mut self, key: Option<u64>) {
        self.dropout_key = key;
    }

    /// Gradient checkpointing: with `on`, forward passes keep only each block's input and
    /// output, and [`Llama::backward`] recomputes each block (see `model::checkpoint`).
    pub fn set_grad_checkpoint(&mut self, on: bool) {
        self.recompute = on.then(checkpoint::Collected::default);
    }

    /// The gradients of `loss` for every trainable tensor: `loss.backward()`, plus what the
    /// recomputed blocks collected when checkpointing is on.
    pub fn backward(&self, loss: &Tensor) -> Result<candle_core::backprop::GradStore> {
        let mut grads = loss.backward().map_err(ce)?;
        if let Some(more) = self.recompute.as_ref().and_then(|c| c.take()) {
            grads.extend(more).map_err(ce)?;
        }
        Ok(grads)
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

    fn hidden_inner(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        segments: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, t) = ids.dims2()?;
        let past = cache.as_ref().map_or(0, |k| k.len());
        let device = self.device();
        let rope = Rope::new(c, past, t, &device)?;
        // Callers make their ids on the model's device; one made elsewhere is moved (a no-op
        // when it is already there) rather than refused.
        let ids = &ids.to_device(&device)?;
        let segments = segments.map(|s| s.to_device(&device)).transpose()?;
        let segments = segments.as_ref();
        // Activations are f32 whatever the weights are kept in.
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .to_dtype(candle_core::DType::F32)?
            .reshape((b, t, c.hidden_size))?;
        for (l, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|k| &mut k.layers[l]);
            let keys = DropoutKeys {
                base: self.dropout_key,
                layer: l,
            };
            x = match (&self.recompute, layer_cache) {
                (Some(collected), None) => {
                    checkpoint::block_forward(block, &x, &rope, segments, keys, collected)?
                }
                (_, layer_cache) => block.forward(&x, &rope, layer_cache, segments, keys)?,
            };
        }
        kernels::rms_norm(&x, &self.norm, c.rms_norm_eps)
    }

    /// The device the weights are on, where every tensor the model reads must be made.
    pub fn device(&self) -> Device {
        self.embed.device().clone()
    }

    /// The output head's weight [vocab, hidden] (the embeddings when tied).
    pub(crate) fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// The output head: logits [.., vocab] from hidden states [.., hidden].
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Linear {
            weight: self.head().clone(),
            bias: None,
            lora: None,
            transposed: None,
        }
        .forward(hidden)
        .map_err(ce)
    }
}
