//! Where a model's weights come from (a Hugging Face folder's safetensors, or transformers'
//! initialisation) and where they go (named tensors, trainable variables, a saved folder).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use wick_io::{Error, Result};

use super::{ce, names, Llama, ScoreHead};
use crate::Config;

/// Where the weights come from when a model is assembled: a safetensors file or a fresh
/// initialisation. `get` is asked for every Hugging Face tensor name with its shape.
pub(super) trait Source {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor>;
}

/// Takes tensors out of a safetensors map by Hugging Face name, checking shapes.
struct Loaded {
    map: HashMap<String, Tensor>,
    file: String,
    /// The dtype the matrices are kept in (None: as stored, f64 narrowed to f32). Vectors
    /// (norms, biases) are always f32: the ops that read them compute in f32.
    dtype: Option<DType>,
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
        let want = match (self.dtype, t.dtype()) {
            // The classifier's head is read by a plain f32 product (one row per sequence).
            _ if t.rank() < 2 || name == names::SCORE => DType::F32,
            (Some(d), _) => d,
            (None, DType::F64) => DType::F32,
            (None, d) => d,
        };
        match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 | DType::F64 => t.to_dtype(want).map_err(ce),
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
            .strip_prefix(names::LAYERS)
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
        } else if first == names::LM_HEAD && c.num_labels().is_some() {
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
    if let Some(rest) = name.strip_prefix(names::LAYERS) {
        if let Some((n, tail)) = rest.split_once('.') {
            if let Ok(n) = n.parse() {
                return (names::LAYERS.into(), n, tail.into());
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

impl Llama {
    /// Loads config.json and model.safetensors from a Hugging Face folder.
    ///
    /// Strict: every tensor of the file must be one the config's model uses (an unused one is
    /// an error naming it), every one it uses must be there with its shape, and the weights
    /// must fit in this machine's memory (checked from the config before anything is read).
    pub fn load(dir: &Path) -> Result<Llama> {
        Llama::load_as(dir, Some(DType::F32))
    }

    /// The same with the weight matrices kept in `dtype` (f32, bf16 or f16; None: the
    /// checkpoint's own, transformers' `dtype="auto"`). The products then run in the matrices'
    /// dtype with f32 accumulation; norms, biases and every activation stay f32.
    pub fn load_as(dir: &Path, dtype: Option<DType>) -> Result<Llama> {
        if let Some(d) = dtype {
            if !matches!(d, DType::F32 | DType::BF16 | DType::F16) {
                return Err(Error::msg(format!(
                    "weights can be kept in f32, bf16 or f16, not {d:?}"
                )));
            }
        }
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
        // each tensor is copied out of it, and a fresh page can cost more to fault in than to
        // copy.
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
        let stored = map
            .get(names::EMBED)
            .map(|t| t.dtype())
            .unwrap_or(DType::F32);
        let mut src = Loaded {
            map,
            file: file.display().to_string(),
            dtype,
        };
        let mut model = Llama::load_body(config, &mut src)?;
        if let Some(labels) = model.config.num_labels() {
            let h = model.config.hidden_size;
            model.score = Some(ScoreHead::new(src.get(names::SCORE, &[labels, h])?));
        } else if model.config.tie_word_embeddings {
            // Some writers store the tied head as well: accepted only as the copy it must be.
            if let Some(head) = src.map.remove(names::LM_HEAD) {
                let same = head.dims() == model.embed.dims()
                    && head
                        .to_dtype(DType::F32)
                        .and_then(|h| {
                            h.eq(&model.embed.to_dtype(DType::F32)?)?
                                .min_all()?
                                .to_scalar::<u8>()
                        })
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
                names::LM_HEAD,
                &[model.config.vocab_size, model.config.hidden_size],
            )?);
        }
        src.refuse_unused(&model.config, &config_path)?;
        model.stored_dtype = stored;
        Ok(model)
    }

    /// The dtype the weight matrices are kept in.
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// The dtype of the checkpoint the model was loaded from (f32 for a fresh one): what a
    /// training run saves in unless told otherwise.
    pub fn stored_dtype(&self) -> DType {
        self.stored_dtype
    }

    /// A freshly initialised model (transformers' Llama initialisation, seeded).
    /// Refused before anything is allocated when the weights would not fit in memory.
    pub fn init(config: Config, seed: u64) -> Result<Llama> {
        crate::memory::check_weights(&config).map_err(Error::msg)?;
        let mut src = Fresh {
            std: config.initializer_range,
            rng: crate::init::Normal::new(seed),
        };
        let mut model = Llama::load_body(config, &mut src)?;
        if !model.config.tie_word_embeddings {
            let c = &model.config;
            model.lm_head = Some(src.get(names::LM_HEAD, &[c.vocab_size, c.hidden_size])?);
        }
        Ok(model)
    }

    /// Every weight under its Hugging Face name, in a fixed order.
    fn slots(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut out = vec![(names::EMBED.to_string(), &mut self.embed)];
        for (l, b) in self.blocks.iter_mut().enumerate() {
            let p = names::layer(l);
            out.push((format!("{p}.{}", names::INPUT_NORM), &mut b.input_norm));
            let post_norm = (format!("{p}.{}", names::POST_NORM), &mut b.post_norm);
            for (name, lin) in b.attn.linears_mut().into_iter().chain(b.mlp.linears_mut()) {
                out.push((format!("{p}.{name}.weight"), &mut lin.weight));
                if let Some(bias) = lin.bias.as_mut() {
                    out.push((format!("{p}.{name}.bias"), bias));
                }
            }
            out.push(post_norm);
        }
        out.push((names::NORM.to_string(), &mut self.norm));
        if let Some(head) = self.lm_head.as_mut() {
            out.push((names::LM_HEAD.to_string(), head));
        }
        if let Some(score) = self.score.as_mut() {
            out.push((names::SCORE.to_string(), &mut score.weight));
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

    /// Moves every tensor of the model (weights, adapters, heads) to `device`, before it is made
    /// trainable (a moved variable is a new tensor). Everything the model computes from then on
    /// runs there: on the CPU the fused kernels, elsewhere the reference ops.
    pub fn to_device(&mut self, device: &Device) -> Result<()> {
        if self.device().same_device(device) {
            return Ok(());
        }
        let move_to = |t: &mut Tensor| -> Result<()> {
            *t = t.to_device(device).map_err(ce)?;
            Ok(())
        };
        for (_, t) in self.slots() {
            move_to(t)?;
        }
        for (_, t) in self.adapter_slots() {
            move_to(t)?;
        }
        for (_, lin) in self.linears_mut() {
            // The transposed copies are for the CPU's matrix kernel only.
            lin.transposed = None;
        }
        Ok(())
    }

    /// Stores every projection weight without an adapter transposed, [in, out], for forward
    /// passes that take no gradient (`ppl`, scoring): gemm packs a weight stored [out, in]
    /// again on every product, and reads an [in, out] one as it is, so those products run
    /// faster.
    ///
    /// The weight becomes a strided [out, in] view of the transposed storage, and the
    /// [out, in] original is freed, so this costs no memory (a second copy would, and its
    /// freshly faulted pages would cost time too). The transposed storage
    /// is used only while its view is still the weight and does not train; anything else
    /// reads the view (a copy per call where a kernel needs [out, in] rows), and replacing or
    /// training the weight makes it inert.
    pub fn keep_transposed_weights(&mut self) -> Result<()> {
        if !crate::kernels::cpu::kernels_run_on(&self.device()) {
            // Only the CPU's matrix kernel reads them.
            return Ok(());
        }
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
                *slot = t.to_device(slot.device()).map_err(ce)?;
            }
        }
        Ok(())
    }

    /// Writes config.json and model.safetensors into `dir` (created if needed), each file
    /// atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_as(dir, DType::F32)
    }

    /// The same with every tensor saved in `dtype` (f32, bf16 or f16), as transformers'
    /// `save_pretrained` of a model in that dtype; config.json says so.
    pub fn save_as(&self, dir: &Path, dtype: DType) -> Result<()> {
        wick_io::create_dir_all(dir)?;
        let tensors = self
            .named_tensors()
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_dtype(dtype).map_err(ce)?)))
            .collect::<Result<HashMap<String, Tensor>>>()?;
        save_safetensors(&tensors, &dir.join("model.safetensors"))?;
        // The config last: until it is written the folder still says what it held before.
        wick_io::write_atomic(
            dir.join("config.json"),
            self.config.to_json_as(dtype).as_bytes(),
        )
    }
}

/// Writes tensors as a safetensors file, atomically: a temporary file, synced, then renamed.
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let off_cpu = tensors.values().any(|t| !t.device().is_cpu());
    let moved;
    let tensors = if off_cpu {
        // Read back from the GPU once, here, whoever saves.
        moved = tensors
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu).map_err(ce)?)))
            .collect::<Result<HashMap<String, Tensor>>>()?;
        &moved
    } else {
        tensors
    };
    let f = wick_io::AtomicFile::create(path)?;
    candle_core::safetensors::save(tensors, f.tmp_path())
        .map_err(|e| Error::msg(format!("{}: cannot write: {e}", path.display())))?;
    f.commit()
}
