//! The decoder itself, readable in one sitting: embeddings, `num_layers` blocks of
//! (RMSNorm → attention → residual, RMSNorm → SwiGLU MLP → residual), final RMSNorm, head.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use wick_io::{Error, Result};

use crate::Config;

fn ce(e: candle_core::Error) -> Error {
    Error::msg(format!("tensor op failed: {e}"))
}

/// A linear layer stored as Hugging Face does: weight [out, in], optional bias [out].
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.broadcast_matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

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

pub struct Llama {
    pub config: Config,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    /// None when tied to the embeddings.
    lm_head: Option<Tensor>,
}

/// Takes tensors out of a safetensors map by Hugging Face name, checking shapes.
struct Weights {
    map: HashMap<String, Tensor>,
    file: String,
}

impl Weights {
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
        t.to_dtype(DType::F32).map_err(ce)
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let weight = self.get(&format!("{name}.weight"), &[out, inp])?;
        let bias = if bias {
            Some(self.get(&format!("{name}.bias"), &[out])?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    // Written out rather than candle_nn::ops::rms_norm, which has no backward pass.
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)
}

/// Hugging Face's rotary embedding: the head dimension's two halves are rotated as pairs
/// (x_i, x_{i+d/2}), not interleaved.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

impl Llama {
    /// Loads config.json and model.safetensors from a Hugging Face folder.
    pub fn load(dir: &Path) -> Result<Llama> {
        let config = Config::load(&dir.join("config.json"))?;
        let file = dir.join("model.safetensors");
        let map = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| Error::msg(format!("{}: cannot read safetensors: {e}", file.display())))?;
        let mut w = Weights {
            map,
            file: file.display().to_string(),
        };
        let c = &config;
        let (h, hd) = (c.hidden_size, c.head_dim);
        let embed = w.get("model.embed_tokens.weight", &[c.vocab_size, h])?;
        let mut blocks = Vec::with_capacity(c.num_layers);
        for l in 0..c.num_layers {
            let p = format!("model.layers.{l}");
            blocks.push(Block {
                input_norm: w.get(&format!("{p}.input_layernorm.weight"), &[h])?,
                q: w.linear(
                    &format!("{p}.self_attn.q_proj"),
                    c.num_heads * hd,
                    h,
                    c.qkv_bias,
                )?,
                k: w.linear(
                    &format!("{p}.self_attn.k_proj"),
                    c.num_kv_heads * hd,
                    h,
                    c.qkv_bias,
                )?,
                v: w.linear(
                    &format!("{p}.self_attn.v_proj"),
                    c.num_kv_heads * hd,
                    h,
                    c.qkv_bias,
                )?,
                o: w.linear(&format!("{p}.self_attn.o_proj"), h, c.num_heads * hd, false)?,
                post_norm: w.get(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                gate: w.linear(&format!("{p}.mlp.gate_proj"), c.intermediate_size, h, false)?,
                up: w.linear(&format!("{p}.mlp.up_proj"), c.intermediate_size, h, false)?,
                down: w.linear(&format!("{p}.mlp.down_proj"), h, c.intermediate_size, false)?,
            });
        }
        let norm = w.get("model.norm.weight", &[h])?;
        let lm_head = if c.tie_word_embeddings {
            w.map.remove("lm_head.weight");
            None
        } else {
            Some(w.get("lm_head.weight", &[c.vocab_size, h])?)
        };
        Ok(Llama {
            config,
            embed,
            blocks,
            norm,
            lm_head,
        })
    }

    /// cos and sin tables [T, head_dim] for positions 0..t.
    fn rope_tables(&self, t: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let hd = self.config.head_dim;
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| (self.config.rope_theta.powf(-((2 * i) as f64) / hd as f64)) as f32)
            .collect();
        let inv = Tensor::new(inv.as_slice(), &Device::Cpu)?;
        let pos = Tensor::arange(0u32, t as u32, &Device::Cpu)?.to_dtype(DType::F32)?;
        let freqs = pos.unsqueeze(1)?.broadcast_mul(&inv.unsqueeze(0)?)?;
        let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?;
        Ok((emb.cos()?, emb.sin()?))
    }

    /// Logits [B, T, vocab] for token ids [B, T].
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_inner(ids).map_err(ce)
    }

    fn forward_inner(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, t) = ids.dims2()?;
        let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let (cos, sin) = self.rope_tables(t)?;
        let mut x =
            self.embed
                .index_select(&ids.flatten_all()?, 0)?
                .reshape((b, t, c.hidden_size))?;
        // Causal mask: -inf above the diagonal.
        let mask: Vec<f32> = (0..t * t)
            .map(|k| {
                if k % t > k / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu)?;
        for blk in &self.blocks {
            let hn = rms_norm(&x, &blk.input_norm, c.rms_norm_eps)?;
            let q = blk
                .q
                .forward(&hn)?
                .reshape((b, t, nh, hd))?
                .transpose(1, 2)?;
            let k = blk
                .k
                .forward(&hn)?
                .reshape((b, t, nkv, hd))?
                .transpose(1, 2)?;
            let v = blk
                .v
                .forward(&hn)?
                .reshape((b, t, nkv, hd))?
                .transpose(1, 2)?;
            let q = rope(&q.contiguous()?, &cos, &sin)?;
            let k = rope(&k.contiguous()?, &cos, &sin)?;
            // Grouped-query attention: each key/value head serves nh / nkv query heads.
            let rep = nh / nkv;
            let expand = |x: Tensor| -> candle_core::Result<Tensor> {
                if rep == 1 {
                    return Ok(x);
                }
                x.unsqueeze(2)?
                    .expand((b, nkv, rep, t, hd))?
                    .reshape((b, nh, t, hd))
            };
            let (k, v) = (expand(k)?, expand(v.contiguous()?)?);
            let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(&mask)?;
            // candle_nn::ops::softmax keeps the graph; softmax_last_dim would not.
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, nh * hd))?;
            x = (x + blk.o.forward(&y)?)?;
            let hn = rms_norm(&x, &blk.post_norm, c.rms_norm_eps)?;
            let mlp = blk
                .down
                .forward(&(blk.gate.forward(&hn)?.silu()? * blk.up.forward(&hn)?)?)?;
            x = (x + mlp)?;
        }
        let x = rms_norm(&x, &self.norm, c.rms_norm_eps)?;
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        x.broadcast_matmul(&head.t()?)
    }
}
