//! AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments),
//! with moments that can be saved and restored — candle-nn's keeps them private — and
//! nanoGPT's parameter groups: weight decay only on weights with two or more dimensions.
//!
//! The update runs in place on the parameters' storage (one pass over parameter, gradient
//! and both moments), and folds in the gradient-clipping factor so clipping costs no pass.
//! Parameters off the CPU (a GPU's) keep their moments as tensors beside them and are updated by
//! the same arithmetic in candle ops, which run where the tensors are.

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
    moments: Moments,
}

/// A parameter's first and second moments (torch's exp_avg, exp_avg_sq).
enum Moments {
    /// A CPU parameter's: updated in place by one fused pass (`Update`).
    Cpu { m: Vec<f32>, v: Vec<f32> },
    /// Tensors on the parameter's device, replaced at each update (`update_tensors`).
    Tensors { m: Tensor, v: Tensor },
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

/// The constants of one update, rounded to f32 as the CPU pass computes with them.
#[derive(Clone, Copy)]
struct Step {
    decay: f32,
    beta1: f32,
    beta2: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
    grad_scale: f32,
}

/// One update of a parameter whose moments are tensors, with the CPU pass's arithmetic in the
/// same order, op by op (each scalar an f32, as there), so that on the CPU it gives the same
/// numbers and on a GPU the same math. Returns the new moments; the parameter is overwritten.
fn update_tensors(
    var: &Var,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    k: Step,
) -> Result<(Tensor, Tensor)> {
    let f = |x: f32| x as f64;
    let inner = || -> candle_core::Result<(Tensor, Tensor)> {
        let g = (g * f(k.grad_scale))?;
        let m = (m + ((&g - m)? * f(1.0 - k.beta1))?)?;
        let v = ((v * f(k.beta2))? + (g.sqr()? * f(1.0 - k.beta2))?)?;
        // Divided, not multiplied by a reciprocal (what `tensor / scalar` would do).
        let bc2_sqrt = Tensor::new(k.bc2_sqrt, v.device())?;
        let denom = (v.sqrt()?.broadcast_div(&bc2_sqrt)? + f(k.eps))?;
        let p = ((var.as_tensor() * f(k.decay))? - ((&m / denom)? * f(k.step_size))?)?;
        var.set(&p)?;
        Ok((m, v))
    };
    inner().map_err(ce)
}

/// Whether every value of `t` is finite: on the CPU by a pass over its data; elsewhere by
/// 0 t, which is 0 for a finite value and NaN for any other, summed on the device.
fn all_finite(t: &Tensor) -> Result<bool> {
    if t.device().is_cpu() {
        return with_slice(t, |s| {
            s.par_chunks(CHUNK).all(|c| c.iter().all(|x| x.is_finite()))
        });
    }
    let s = (t * 0.0)
        .and_then(|d| d.sum_all())
        .and_then(|d| d.to_scalar::<f32>())
        .map_err(ce)?;
    Ok(s.is_finite())
}

impl AdamW {
    /// The optimiser of `vars` (f32): CPU parameters' moments in memory, updated by one fused
    /// pass; other devices' as tensors beside them. WICK_REFERENCE_OPS=1 (the switch that runs
    /// the GPU's path on the CPU) gives CPU parameters tensor moments too.
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<AdamW> {
        AdamW::build(vars, config, wick_model::kernels::reference_ops())
    }

    /// The same with every parameter's moments kept as tensors and updated by candle ops, the
    /// path of parameters on a GPU, wherever the parameters are (tests compare it with the
    /// CPU pass).
    pub fn with_tensor_moments(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<AdamW> {
        AdamW::build(vars, config, true)
    }

    fn build(vars: Vec<(String, Var)>, config: AdamWConfig, tensors: bool) -> Result<AdamW> {
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                if var.dtype() != candle_core::DType::F32 {
                    return Err(Error::msg(format!(
                        "{name}: the optimiser needs f32 weights"
                    )));
                }
                let n = var.elem_count();
                let moments = if tensors || !var.device().is_cpu() {
                    let zeros = || var.zeros_like().map_err(ce);
                    Moments::Tensors {
                        m: zeros()?,
                        v: zeros()?,
                    }
                } else {
                    Moments::Cpu {
                        m: vec![0.0; n],
                        v: vec![0.0; n],
                    }
                };
                Ok(Param {
                    decay: config.decay_all || var.rank() >= 2,
                    moments,
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
        self.params.iter().map(|p| p.var.elem_count()).sum()
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
    ///
    /// Gradients off the CPU are squared and summed in f64 on their device, into one number
    /// read back once.
    pub fn global_norm(grads: &Grads) -> Result<f64> {
        let mut sum = 0f64;
        let mut on_device: Option<Tensor> = None;
        for g in grads.0.iter().flatten() {
            if !g.device().is_cpu() {
                let s = g
                    .to_dtype(candle_core::DType::F64)
                    .and_then(|g| g.sqr()?.sum_all())
                    .map_err(ce)?;
                on_device = Some(match on_device {
                    None => s,
                    Some(acc) => (acc + s).map_err(ce)?,
                });
                continue;
            }
            let chunks: Vec<f64> = with_slice(g, |s| {
                s.par_chunks(CHUNK)
                    .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
                    .collect()
            })?;
            sum += chunks.iter().sum::<f64>();
        }
        if let Some(t) = on_device {
            sum += t.to_scalar::<f64>().map_err(ce)?;
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
            let k = Step {
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
            let failed = |e: Error| Error::msg(format!("{}: update failed: {e}", p.name));
            match &mut p.moments {
                Moments::Cpu { m, v } => {
                    let op = Update {
                        m: RefCell::new(m),
                        v: RefCell::new(v),
                        decay: k.decay,
                        beta1: k.beta1,
                        beta2: k.beta2,
                        step_size: k.step_size,
                        bc2_sqrt: k.bc2_sqrt,
                        eps: k.eps,
                        grad_scale: k.grad_scale,
                    };
                    p.var
                        .as_tensor()
                        .inplace_op2(&g, &op)
                        .map_err(|e| failed(ce(e)))?;
                }
                Moments::Tensors { m, v } => {
                    (*m, *v) = update_tensors(&p.var, &g, m, v, k).map_err(failed)?;
                }
            }
        }
        Ok(())
    }

    /// The first parameter whose values or moments hold NaN or infinity, described ("NAME
    /// holds non-finite weights"); `None` when all are finite.
    pub fn nonfinite(&self) -> Result<Option<String>> {
        for p in &self.params {
            let weights_ok = all_finite(p.var.as_tensor())?;
            let moments_ok = match &p.moments {
                Moments::Cpu { m, v } => m.iter().chain(v).all(|x| x.is_finite()),
                Moments::Tensors { m, v } => all_finite(m)? && all_finite(v)?,
            };
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

    /// The moments under torch-like names (`exp_avg.NAME`, `exp_avg_sq.NAME`), on the CPU.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            let shape = p.var.shape().clone();
            let (m, v) = match &p.moments {
                Moments::Cpu { m, v } => (
                    Tensor::from_slice(m, shape.clone(), &Device::Cpu).map_err(ce)?,
                    Tensor::from_slice(v, shape, &Device::Cpu).map_err(ce)?,
                ),
                Moments::Tensors { m, v } => (
                    m.to_device(&Device::Cpu).map_err(ce)?,
                    v.to_device(&Device::Cpu).map_err(ce)?,
                ),
            };
            out.insert(format!("exp_avg.{}", p.name), m);
            out.insert(format!("exp_avg_sq.{}", p.name), v);
        }
        Ok(out)
    }

    /// Restores moments saved by `state_tensors` (on any device: a run may move between
    /// machines); every parameter must be present.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for p in &mut self.params {
            let n = p.var.elem_count();
            let saved = |key: &str| -> Result<&Tensor> {
                let name = format!("{key}.{}", p.name);
                let t = state
                    .get(&name)
                    .ok_or_else(|| Error::msg(format!("optimiser state has no {name}")))?;
                if t.elem_count() != n {
                    return Err(Error::msg(format!(
                        "optimiser state {name} has {} values, the parameter {n}",
                        t.elem_count(),
                    )));
                }
                Ok(t)
            };
            let (sm, sv) = (saved("exp_avg")?, saved("exp_avg_sq")?);
            match &mut p.moments {
                Moments::Cpu { m, v } => {
                    with_slice(sm, |s| m.copy_from_slice(s))?;
                    with_slice(sv, |s| v.copy_from_slice(s))?;
                }
                Moments::Tensors { m, v } => {
                    let place = |t: &Tensor| {
                        t.to_dtype(candle_core::DType::F32)
                            .and_then(|t| t.reshape(p.var.shape())?.to_device(p.var.device()))
                            .map_err(ce)
                    };
                    (*m, *v) = (place(sm)?, place(sv)?);
                }
            }
        }
        self.step = step;
        Ok(())
    }
}
