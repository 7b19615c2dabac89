//! Gradient checkpointing (activation recomputation) per decoder block, as
//! `torch.utils.checkpoint` does it: the forward pass keeps only each block's input and output,
//! and the backward pass runs the block's forward again, this time recording its graph, to get
//! the gradients of its input and of its trainable tensors. Memory for activations goes from
//! every op's saved tensors in every layer to one layer's plus two tensors per layer, for about
//! one more forward pass of compute.
//!
//! How it fits candle's autograd: the block's output enters the graph through one custom op
//! whose only differentiable argument is the block's input. The op's backward recomputes the
//! block and returns the input's gradient; the gradients of the block's own tensors, which a
//! custom op cannot hand back, go to a store that `Llama::backward` merges into the result.

use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Shape, Tensor, Var};

use super::{Block, DropoutKeys, Rope};
use crate::precision::{self, Precision};

/// Gradients of block tensors collected by the recomputations of one backward pass.
#[derive(Clone, Default)]
pub(super) struct Collected(Arc<Mutex<Option<GradStore>>>);

impl Collected {
    fn add(&self, more: GradStore) -> candle_core::Result<()> {
        let mut slot = self.0.lock().expect("not poisoned");
        match slot.as_mut() {
            Some(store) => store.extend(more),
            None => {
                *slot = Some(more);
                Ok(())
            }
        }
    }

    /// The gradients collected so far, leaving none.
    pub(super) fn take(&self) -> Option<GradStore> {
        self.0.lock().expect("not poisoned").take()
    }
}

/// y = block(x) with only x and y kept for the backward pass.
pub(super) fn block_forward(
    block: &Block,
    x: &Tensor,
    rope: &Rope,
    segments: Option<&Tensor>,
    keys: DropoutKeys,
    collected: &Collected,
) -> candle_core::Result<Tensor> {
    // The op enters the graph only through a tracked argument: x, or where x is constant
    // (LoRA's frozen embeddings below the first block) one of the block's own trainable tensors.
    let Some(anchor) = block.tensors().into_iter().find(|t| t.is_variable()) else {
        // Nothing in the block trains: no gradient of its own to recompute for.
        return block.forward(x, rope, None, segments, keys);
    };
    // The graph of this forward pass is dropped with `y`'s tracked handle at the end of the
    // statement: only the values survive.
    let y = block
        .forward(&x.detach(), rope, None, segments, keys)?
        .detach();
    x.apply_op2(
        &anchor,
        Recompute {
            y: Mutex::new(Some(y)),
            block: block.clone(),
            rope: rope.clone(),
            segments: segments.cloned(),
            keys,
            precision: precision::current(),
            collected: collected.clone(),
        },
    )
}

struct Recompute {
    /// The block's output, computed before the op was recorded; the op's forward takes it (so
    /// that the graph holds one copy of it, the op's result, not two).
    y: Mutex<Option<Tensor>>,
    block: Block,
    rope: Rope,
    segments: Option<Tensor>,
    keys: DropoutKeys,
    /// The products' precision when the forward pass ran: the recomputation uses it too.
    precision: Precision,
    collected: Collected,
}

impl CustomOp2 for Recompute {
    fn name(&self) -> &'static str {
        "wick-recompute-block"
    }

    fn cpu_fwd(
        &self,
        _x: &CpuStorage,
        _lx: &Layout,
        _anchor: &CpuStorage,
        _la: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some(y) = self.y.lock().expect("not poisoned").take() else {
            candle_core::bail!("recompute: the forward pass ran twice");
        };
        let shape = y.shape().clone();
        let data = y.flatten_all()?.to_vec1::<f32>()?;
        Ok((CpuStorage::F32(data), shape))
    }

    /// The same on a GPU: a copy of y's elements. Compiled in every build (without the `cuda`
    /// feature candle's stand-in CUDA backend only errs), so that CI type-checks it.
    fn cuda_fwd(
        &self,
        _x: &CudaStorage,
        _lx: &Layout,
        _anchor: &CudaStorage,
        _la: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        use candle_core::backend::{BackendDevice, BackendStorage};
        let Some(y) = self.y.lock().expect("not poisoned").take() else {
            candle_core::bail!("recompute: the forward pass ran twice");
        };
        let (storage, ly) = y.storage_and_layout();
        let candle_core::Storage::Cuda(y) = &*storage else {
            candle_core::bail!("recompute: the block's output is not on the GPU");
        };
        let mut out = y.device().zeros_impl(ly.shape(), y.dtype())?;
        y.copy_strided_src(&mut out, 0, ly)?;
        Ok((out, ly.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _anchor: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let _autocast = precision::autocast(self.precision);
        let xv = Var::from_tensor(&x.detach())?;
        let y = self.block.forward(
            xv.as_tensor(),
            &self.rope,
            None,
            self.segments.as_ref(),
            self.keys,
        )?;
        // d(sum(y * dy))/dθ is dy's vector-Jacobian product: the gradients the outer pass
        // would have computed through the block.
        let mut grads = (y * dy.detach())?.sum_all()?.backward()?;
        let dx = grads.remove(xv.as_tensor()).filter(|_| x.track_op());
        let mut own = GradStore::default();
        for t in self.block.tensors() {
            if t.is_variable() {
                if let Some(g) = grads.remove(&t) {
                    own.insert(&t, g);
                }
            }
        }
        self.collected.add(own)?;
        // The anchor's gradient, if it has one, is among the block's own, collected above.
        Ok((dx, None))
    }
}
