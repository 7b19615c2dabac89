//! AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments),
//! with moments that can be saved and restored — candle-nn's keeps them private — and
//! nanoGPT's parameter groups: weight decay only on weights with two or more dimensions.
//!
//! The update runs in place on the parameters' storage (one pass over parameter, gradient
//! and both moments), and folds in the gradient-clipping factor so clipping costs no pass.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Device, InplaceOp2, Layout, Storage, Tensor, Var};
use rayon::prelude::*;
use wick_io::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Also decay 1-D parameters (norm weights, biases); nanoGPT and wick's default do not.
    pub decay_all: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            decay_all: false,
        }
    }
}

struct Param {
    name: String,
    var: Var,
    decay: bool,
    m: Vec<f32>,
    v: Vec<f32>,
}

pub struct AdamW {
    pub config: AdamWConfig,
    params: Vec<Param>,
    /// Updates taken so far (torch's `step`, used for bias correction).
    pub step: u64,
}

/// One gradient per parameter, in the optimiser's order (None: the parameter got none).
pub struct Grads(pub Vec<Option<Tensor>>);

use wick_model::candle_error as ce;

/// Runs `f` on the contiguous f32 data of a CPU tensor.
pub(crate) fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous().map_err(ce)?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::msg("the optimiser runs on CPU tensors only"));
    };
    let data = cpu.as_slice::<f32>().map_err(ce)?;
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::msg("non-contiguous tensor"))?;
    Ok(f(&data[a..b]))
}

/// Elements per task of the update and of the norm: big enough that handing a task to another
/// thread costs little next to it.
const CHUNK: usize = 1 << 16;

struct Update<'a> {
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    decay: f32,
    beta1: f32,
    beta2: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
    grad_scale: f32,
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "adamw-update"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (p, g) else {
            candle_core::bail!("adamw: parameters and gradients must be f32");
        };
        let (Some((p0, p1)), Some((g0, g1))) = (pl.contiguous_offsets(), gl.contiguous_offsets())
        else {
            candle_core::bail!("adamw: non-contiguous parameter or gradient");
        };
        let (p, g) = (&mut p[p0..p1], &g[g0..g1]);
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        let (scale, decay, beta1, beta2) = (self.grad_scale, self.decay, self.beta1, self.beta2);
        let (bc2_sqrt, eps, step_size) = (self.bc2_sqrt, self.eps, self.step_size);
        // Element by element, so splitting over the threads changes no bits.
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = g * scale;
                    *p *= decay;
                    *m += (g - *m) * (1.0 - beta1);
                    *v = *v * beta2 + g * g * (1.0 - beta2);
                    let denom = v.sqrt() / bc2_sqrt + eps;
                    *p -= step_size * (*m / denom);
                }
            });
        Ok(())
    }
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<AdamW> {
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                if var.dtype() != candle_core::DType::F32 || !var.device().is_cpu() {
                    return Err(Error::msg(format!(
                        "{name}: the optimiser needs f32 CPU weights"
                    )));
                }
                let n = var.elem_count();
                Ok(Param {
                    decay: config.decay_all || var.rank() >= 2,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                    name,
                    var,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            config,
            params,
            step: 0,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|p| p.name.as_str())
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.var))
    }

    /// Number of trainable values.
    pub fn len(&self) -> usize {
        self.params.iter().map(|p| p.m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// This step's gradient for each parameter, out of a backward pass.
    pub fn grads(&self, store: &GradStore) -> Grads {
        Grads(
            self.params
                .iter()
                .map(|p| store.get(p.var.as_tensor()).cloned())
                .collect(),
        )
    }

    /// Adds another micro-batch's gradients (gradient accumulation).
    pub fn accumulate(acc: &mut Grads, more: Grads) -> Result<()> {
        for (a, m) in acc.0.iter_mut().zip(more.0) {
            *a = match (a.take(), m) {
                (Some(x), Some(y)) => Some((x + y).map_err(ce)?),
                (x, y) => x.or(y),
            };
        }
        Ok(())
    }

    /// L2 norm of all gradients together (what torch's clip_grad_norm_ measures). Each tensor is
    /// summed in fixed chunks, over the threads, and the chunks' sums are added in order: the
    /// same bits at any thread count.
    pub fn global_norm(grads: &Grads) -> Result<f64> {
        let mut sum = 0f64;
        for g in grads.0.iter().flatten() {
            let chunks: Vec<f64> = with_slice(g, |s| {
                s.par_chunks(CHUNK)
                    .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
                    .collect()
            })?;
            sum += chunks.iter().sum::<f64>();
        }
        Ok(sum.sqrt())
    }

    /// One update at learning rate `lr`; every gradient is first multiplied by `grad_scale`
    /// (the clipping factor, 1 when not clipping). Parameters without a gradient are left
    /// alone, as torch does.
    pub fn update(&mut self, grads: &Grads, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for (p, g) in self.params.iter_mut().zip(&grads.0) {
            let Some(g) = g else { continue };
            let g = g.contiguous().map_err(ce)?;
            let op = Update {
                m: RefCell::new(&mut p.m),
                v: RefCell::new(&mut p.v),
                decay: if p.decay {
                    (1.0 - lr * c.weight_decay) as f32
                } else {
                    1.0
                },
                beta1: c.beta1 as f32,
                beta2: c.beta2 as f32,
                step_size: (lr / bc1) as f32,
                bc2_sqrt: bc2.sqrt() as f32,
                eps: c.eps as f32,
                grad_scale: grad_scale as f32,
            };
            p.var
                .as_tensor()
                .inplace_op2(&g, &op)
                .map_err(|e| Error::msg(format!("{}: update failed: {e}", p.name)))?;
        }
        Ok(())
    }

    /// The first parameter whose values or moments hold NaN or infinity, described ("NAME
    /// holds non-finite weights"); `None` when all are finite.
    pub fn nonfinite(&self) -> Result<Option<String>> {
        for p in &self.params {
            let weights_ok = with_slice(p.var.as_tensor(), |s| {
                s.par_chunks(CHUNK).all(|c| c.iter().all(|x| x.is_finite()))
            })?;
            let moments_ok = p.m.iter().chain(&p.v).all(|x| x.is_finite());
            if !(weights_ok && moments_ok) {
                return Ok(Some(format!(
                    "{} holds non-finite {} (NaN or infinity)",
                    p.name,
                    if weights_ok {
                        "optimiser moments"
                    } else {
                        "weights"
                    }
                )));
            }
        }
        Ok(None)
    }

    /// The moments under torch-like names (`exp_avg.NAME`, `exp_avg_sq.NAME`).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            let shape = p.var.shape().clone();
            out.insert(
                format!("exp_avg.{}", p.name),
                Tensor::from_slice(&p.m, shape.clone(), &Device::Cpu).map_err(ce)?,
            );
            out.insert(
                format!("exp_avg_sq.{}", p.name),
                Tensor::from_slice(&p.v, shape, &Device::Cpu).map_err(ce)?,
            );
        }
        Ok(out)
    }

    /// Restores moments saved by `state_tensors`; every parameter must be present.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for p in &mut self.params {
            for (key, dst) in [("exp_avg", &mut p.m), ("exp_avg_sq", &mut p.v)] {
                let name = format!("{key}.{}", p.name);
                let t = state
                    .get(&name)
                    .ok_or_else(|| Error::msg(format!("optimiser state has no {name}")))?;
                if t.elem_count() != dst.len() {
                    return Err(Error::msg(format!(
                        "optimiser state {name} has {} values, the parameter {}",
                        t.elem_count(),
                        dst.len()
                    )));
                }
                with_slice(t, |s| dst.copy_from_slice(s))?;
            }
        }
        self.step = step;
        Ok(())
    }
}
