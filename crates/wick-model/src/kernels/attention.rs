//! Causal multi-head attention as one op: `softmax(scale * q k^T) v` per head, with its own
//! backward. Candle's batched matmul runs one small product after another, each split over the
//! threads (a few microseconds of hand-off for 0.1 ms of work at nanoGPT's size), and grouped
//! query attention would copy every key/value head `rep` times. Here each (sequence, key/value
//! head) pair is one task: its query heads' scores, softmax and weighted values are computed on
//! one thread with single-threaded gemm calls, the tasks spread over the threads. The backward
//! pass recomputes the probabilities instead of keeping a [B, H, T, T] tensor alive. Query rows
//! go in blocks that compute only the keys their rows can see, so the masked upper triangle
//! is mostly skipped.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{exp, f32s, fused, output, simd_dispatch, sum_map2, LANES, MIN_TASK_WORK};
use super::product::{cpu_f32, mm, rows, transposed};
use super::reference;
use crate::precision::{current, Precision};

/// Causal attention. q [B, nh, Tq, hd]; k, v [B, nkv, Tk, hd] with nh a multiple of nkv (query
/// head h reads key/value head h / (nh / nkv)) and Tk >= Tq: query i sits at absolute position
/// Tk - Tq + i (so a KV cache works) and sees key j iff j <= Tk - Tq + i and, with `segments`
/// ([B, Tk] u32 document ids of packed sequences), segments[b][j] == segments[b][Tk - Tq + i].
/// Returns y [B, Tq, nh, hd], the layout the output projection reads. Differentiable in q, k, v.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    segments: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, nh, tq, hd) = q.dims4()?;
    let (bk, nkv, tk, hdk) = k.dims4()?;
    if bk != b || hdk != hd || v.dims() != k.dims() || nkv == 0 || nh % nkv != 0 || tk < tq {
        bail!(
            "attention: q {:?}, k {:?}, v {:?} do not fit (need [B, nh, Tq, hd], [B, nkv, Tk, hd] x2, nh a multiple of nkv, Tk >= Tq)",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if let Some(s) = segments {
        if s.dims() != [b, tk] || s.dtype() != DType::U32 {
            bail!(
                "attention: segments must be u32 [B, Tk] = [{b}, {tk}], got {:?} {:?}",
                s.dtype(),
                s.dims()
            );
        }
    }
    if !fused(&[q, k, v]) {
        return reference::attention(q, k, v, scale, segments);
    }
    let op = Attention {
        p: current(),
        scale: scale as f32,
        segments: segments.map(|s| s.contiguous()).transpose()?,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// The same attention with q, k and v packed as heads of one tensor, as `rope_heads` leaves
/// the output of one fused q/k/v projection: qkv [B, nh + 2 nkv, T, hd] holds the nh query
/// heads, then the nkv key heads, then the nkv value heads. Returns y [B, T, nh, hd]; the
/// gradient comes back as one tensor in qkv's layout.
pub fn attention_packed(
    qkv: &Tensor,
    nh: usize,
    nkv: usize,
    scale: f64,
    segments: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, heads, t, _hd) = qkv.dims4()?;
    if nkv == 0 || !nh.is_multiple_of(nkv) || heads != nh + 2 * nkv {
        bail!(
            "attention_packed: qkv {:?} does not hold {nh} query and 2 x {nkv} key/value heads (nh a multiple of nkv)",
            qkv.dims()
        );
    }
    if let Some(s) = segments {
        if s.dims() != [b, t] || s.dtype() != DType::U32 {
            bail!(
                "attention_packed: segments must be u32 [B, T] = [{b}, {t}], got {:?} {:?}",
                s.dtype(),
                s.dims()
            );
        }
    }
    if !fused(&[qkv]) {
        return reference::attention_packed(qkv, nh, nkv, scale, segments);
    }
    qkv.contiguous()?.apply_op1(AttentionPacked {
        p: current(),
        nh,
        nkv,
        scale: scale as f32,
        segments: segments.map(|s| s.contiguous()).transpose()?,
    })
}

struct Attention {
    scale: f32,
    segments: Option<Tensor>,
    p: Precision,
}

#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    nh: usize,
    nkv: usize,
    tq: usize,
    tk: usize,
    hd: usize,
    /// q, k and v (and their gradients) are heads of one [B, nh + 2 nkv, T, hd] tensor
    /// (`attention_packed`) rather than three [B, heads, T, hd] ones.
    packed: bool,
    /// The products' precision (the op's, from when it was recorded).
    prec: Precision,
}

impl Dims {
    fn of(q: &Layout, k: &Layout, prec: Precision) -> Result<Dims> {
        let (b, nh, tq, hd) = q.shape().dims4()?;
        let (_, nkv, tk, _) = k.shape().dims4()?;
        Ok(Dims {
            b,
            nh,
            nkv,
            tq,
            tk,
            hd,
            packed: false,
            prec,
        })
    }

    fn packed(qkv: &Layout, nh: usize, nkv: usize, prec: Precision) -> Result<Dims> {
        let (b, _, t, hd) = qkv.shape().dims4()?;
        Ok(Dims {
            b,
            nh,
            nkv,
            tq: t,
            tk: t,
            hd,
            packed: true,
            prec,
        })
    }

    /// Heads per sequence in the tensor that holds the keys (and, packed, q and v too).
    fn kv_stride(&self) -> usize {
        match self.packed {
            true => self.nh + 2 * self.nkv,
            false => self.nkv,
        }
    }

    /// Offset of query head h's rows in sequence bi.
    fn q_at(&self, bi: usize, h: usize) -> usize {
        match self.packed {
            true => (bi * self.kv_stride() + h) * self.tq * self.hd,
            false => (bi * self.nh + h) * self.tq * self.hd,
        }
    }

    /// Offset of key head g's rows in sequence bi.
    fn k_at(&self, bi: usize, g: usize) -> usize {
        let first = if self.packed { self.nh } else { 0 };
        (bi * self.kv_stride() + first + g) * self.tk * self.hd
    }

    /// Offset of value head g's rows in sequence bi.
    fn v_at(&self, bi: usize, g: usize) -> usize {
        match self.packed {
            true => self.k_at(bi, g) + self.nkv * self.tk * self.hd,
            false => self.k_at(bi, g),
        }
    }

    fn rep(&self) -> usize {
        self.nh / self.nkv
    }

    /// Multiply-adds of one (sequence, kv head) task, for deciding whether to go parallel.
    fn task_work(&self) -> usize {
        self.rep() * self.tq * self.tk * self.hd * 2
    }
}

/// A raw pointer that tasks writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: every task writes only its own (sequence, head) slots; see the callers.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// (A method, so closures capture the whole `Shared`, not its raw-pointer field.)
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers pass offsets inside the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// Runs `f(task)` for task in 0..n, in parallel when the work is worth the hand-off.
fn for_tasks(n: usize, work: usize, f: impl Fn(usize) + Sync + Send) {
    if n <= 1 || rayon::current_num_threads() <= 1 || n * work < 2 * MIN_TASK_WORK {
        (0..n).for_each(f);
    } else {
        (0..n).into_par_iter().for_each(f);
    }
}

/// The keys query row `i` may see: [lo, hi), and within it only those of document `id` when
/// packed (segments), else all.
fn visible(d: &Dims, i: usize, seg: Option<&[u32]>) -> (usize, usize, Option<u32>) {
    let p = d.tk - d.tq + i;
    match seg {
        None => (0, p + 1, None),
        Some(seg) => {
            let id = seg[p];
            let lo = seg[..=p].iter().position(|&s| s == id).unwrap_or(p);
            (lo, p + 1, Some(id))
        }
    }
}

/// Query rows handled together. A block's scores need only the keys its last row can see, so
/// most of the causal upper triangle is never computed: at T = 256, 62.5% of the full
/// products remain (blocks of 32 would leave 56%, but gemm runs 64-row tiles).
const QUERY_BLOCK: usize = 64;

/// Query rows [i0, i1) and the keys [lo, hi) any of them may see.
#[derive(Clone, Copy)]
struct Block {
    i0: usize,
    i1: usize,
    lo: usize,
    hi: usize,
}

impl Block {
    fn rows(&self) -> usize {
        self.i1 - self.i0
    }

    fn keys(&self) -> usize {
        self.hi - self.lo
    }
}

/// The query blocks of one sequence. The last row of a block sees the latest key; with
/// segments any row may see the earliest (a document id may recur later in the sequence).
fn blocks(d: &Dims, seg: Option<&[u32]>) -> Vec<Block> {
    (0..d.tq)
        .step_by(QUERY_BLOCK)
        .map(|i0| {
            let i1 = (i0 + QUERY_BLOCK).min(d.tq);
            Block {
                i0,
                i1,
                lo: (i0..i1).map(|i| visible(d, i, seg).0).min().unwrap_or(0),
                hi: visible(d, i1 - 1, seg).1,
            }
        })
        .collect()
}

/// Scores of one query head's block `b` in `s` (Tq x Tk, only rows b.i0..b.i1, keys
/// b.lo..b.hi are touched) -> probabilities, in place, exactly 0 where a key is not visible.
fn softmax_rows(d: &Dims, s: &mut [f32], b: Block, scale: f32, seg: Option<&[u32]>) {
    for i in b.i0..b.i1 {
        let row = &mut s[i * d.tk..][b.lo..b.hi];
        let (lo, hi, id) = visible(d, i, seg);
        let (lo, hi) = (lo - b.lo, hi - b.lo);
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
        let vis = &mut row[lo..hi];
        match (id, seg) {
            (Some(id), Some(seg)) => {
                let seg = &seg[lo + b.lo..hi + b.lo];
                let mut m = f32::NEG_INFINITY;
                for (&x, &s) in vis.iter().zip(seg) {
                    if s == id && scale * x > m {
                        m = scale * x;
                    }
                }
                let mut sum = 0f32;
                for (x, &s) in vis.iter_mut().zip(seg) {
                    *x = if s == id { exp(scale * *x - m) } else { 0.0 };
                    sum += *x;
                }
                let inv = 1.0 / sum;
                vis.iter_mut().for_each(|x| *x *= inv);
            }
            _ => softmax_row(vis, scale),
        }
    }
}

/// softmax(scale * x) in place; `scale` > 0.
fn softmax_row(x: &mut [f32], scale: f32) {
    #[inline(always)]
    fn body(x: &mut [f32], scale: f32) {
        // Rows of causal attention have every length, so the last partial chunk runs as one
        // more full chunk padded with -inf (whose exp is 0) rather than as a scalar loop: at 16
        // lanes that tail is half of a short row.
        let full = x.len() / LANES * LANES;
        let (head, tail) = x.split_at_mut(full);
        let mut pad = [f32::NEG_INFINITY; LANES];
        pad[..tail.len()].copy_from_slice(tail);
        let mut mx = [f32::NEG_INFINITY; LANES];
        for c in head.chunks_exact(LANES).chain([&pad[..]]) {
            for k in 0..LANES {
                let v = scale * c[k];
                mx[k] = if v > mx[k] { v } else { mx[k] };
            }
        }
        let m = mx
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        // Lane accumulators: a single running sum is a dependency chain that keeps LLVM from
        // vectorising the exp (a visible share of a training step otherwise).
        let mut acc = [0f32; LANES];
        for c in head.chunks_exact_mut(LANES).chain([&mut pad[..]]) {
            for k in 0..LANES {
                c[k] = exp(scale * c[k] - m);
                acc[k] += c[k];
            }
        }
        let n = tail.len();
        tail.copy_from_slice(&pad[..n]);
        let inv = 1.0 / acc.iter().sum::<f32>();
        x.iter_mut().for_each(|v| *v *= inv);
    }
    simd_dispatch!(body(x: &mut [f32], scale: f32))
}

/// Probabilities of query head `h` of sequence `bi`, block `b`, into `p` (Tq x Tk).
#[allow(clippy::too_many_arguments)]
fn probabilities(
    d: &Dims,
    q: &[f32],
    k: &[f32],
    bi: usize,
    h: usize,
    b: Block,
    scale: f32,
    seg: Option<&[u32]>,
    p: &mut [f32],
) {
    let g = h / d.rep();
    let qb = &q[d.q_at(bi, h) + b.i0 * d.hd..][..b.rows() * d.hd];
    let kb = &k[d.k_at(bi, g) + b.lo * d.hd..][..b.keys() * d.hd];
    // SAFETY: the slices hold the m x k and k x n elements the strides reach; the m x n block
    // of p, rows tk apart, starts at (i0, lo) and ends inside p.
    unsafe {
        mm(
            d.prec,
            (b.rows(), b.keys(), d.hd),
            p[b.i0 * d.tk + b.lo..].as_mut_ptr(),
            d.tk,
            qb.as_ptr(),
            rows(d.hd),
            kb.as_ptr(),
            transposed(d.hd),
            1.0,
            false,
            false,
        );
    }
    softmax_rows(d, p, b, scale, seg);
}

/// y [B, Tq, nh, hd] = softmax(scale * q k^T) v, each (sequence, kv head) pair one task.
fn forward(d: &Dims, q: &[f32], k: &[f32], v: &[f32], scale: f32, seg: Option<&[u32]>) -> Vec<f32> {
    let d = *d;
    let mut y = output(d.b * d.tq * d.nh * d.hd);
    let yp = Shared(y.as_mut_ptr());
    for_tasks(d.b * d.nkv, d.task_work(), |task| {
        let (bi, g) = (task / d.nkv, task % d.nkv);
        let seg = seg.map(|s| &s[bi * d.tk..(bi + 1) * d.tk]);
        let mut p = vec![0f32; d.tq * d.tk];
        let vg = &v[d.v_at(bi, g)..][..d.tk * d.hd];
        let blks = blocks(&d, seg);
        for h in g * d.rep()..(g + 1) * d.rep() {
            for &b in &blks {
                probabilities(&d, q, k, bi, h, b, scale, seg, &mut p);
                // SAFETY: y[bi, :, h, :] belongs to this task alone; rows are nh * hd apart.
                unsafe {
                    mm(
                        d.prec,
                        (b.rows(), d.hd, b.keys()),
                        yp.at(((bi * d.tq + b.i0) * d.nh + h) * d.hd),
                        d.nh * d.hd,
                        p[b.i0 * d.tk + b.lo..].as_ptr(),
                        rows(d.tk),
                        vg[b.lo * d.hd..].as_ptr(),
                        rows(d.hd),
                        1.0,
                        false,
                        false,
                    );
                }
            }
        }
    });
    y
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "wick-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::of(lq, lk, self.p)?;
        let (q, k, v) = (
            f32s(sq, lq, "attention q")?,
            f32s(sk, lk, "attention k")?,
            f32s(sv, lv, "attention v")?,
        );
        let seg = segments_data(&self.segments)?;
        let y = forward(&d, q, k, v, self.scale, seg.as_deref());
        Ok((CpuStorage::F32(y), Shape::from((d.b, d.tq, d.nh, d.hd))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let mut dq = output(q.elem_count());
        let mut dk = output(k.elem_count());
        let mut dv = output(v.elem_count());
        {
            let (sq, lq) = q.storage_and_layout();
            let (sk, lk) = k.storage_and_layout();
            let (sv, lv) = v.storage_and_layout();
            let (sdy, ldy) = dy.storage_and_layout();
            let d = Dims::of(lq, lk, self.p)?;
            backward(
                &d,
                cpu_f32(&sq, lq, "attention q")?,
                cpu_f32(&sk, lk, "attention k")?,
                cpu_f32(&sv, lv, "attention v")?,
                cpu_f32(&sdy, ldy, "attention grad")?,
                self.scale,
                segments_data(&self.segments)?.as_deref(),
                (
                    Shared(dq.as_mut_ptr()),
                    Shared(dk.as_mut_ptr()),
                    Shared(dv.as_mut_ptr()),
                ),
            );
        }
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.dims(), dev)?),
            Some(Tensor::from_vec(dk, k.dims(), dev)?),
            Some(Tensor::from_vec(dv, v.dims(), dev)?),
        ))
    }
}

struct AttentionPacked {
    p: Precision,
    nh: usize,
    nkv: usize,
    scale: f32,
    segments: Option<Tensor>,
}

impl CustomOp1 for AttentionPacked {
    fn name(&self) -> &'static str {
        "wick-attention-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::packed(l, self.nh, self.nkv, self.p)?;
        let qkv = f32s(s, l, "attention_packed qkv")?;
        let seg = segments_data(&self.segments)?;
        let y = forward(&d, qkv, qkv, qkv, self.scale, seg.as_deref());
        Ok((CpuStorage::F32(y), Shape::from((d.b, d.tq, d.nh, d.hd))))
    }

    fn bwd(&self, qkv: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let mut dqkv = output(qkv.elem_count());
        {
            let (s, l) = qkv.storage_and_layout();
            let (sdy, ldy) = dy.storage_and_layout();
            let d = Dims::packed(l, self.nh, self.nkv, self.p)?;
            let x = cpu_f32(&s, l, "attention_packed qkv")?;
            let all = Shared(dqkv.as_mut_ptr());
            backward(
                &d,
                x,
                x,
                x,
                cpu_f32(&sdy, ldy, "attention_packed grad")?,
                self.scale,
                segments_data(&self.segments)?.as_deref(),
                (all, all, all),
            );
        }
        Ok(Some(Tensor::from_vec(dqkv, qkv.dims(), qkv.device())?))
    }
}

fn segments_data(seg: &Option<Tensor>) -> Result<Option<Vec<u32>>> {
    seg.as_ref()
        .map(|s| s.flatten_all()?.to_vec1::<u32>())
        .transpose()
}

/// dq, dk, dv from dy [B, Tq, nh, hd], written where `Dims` places q, k and v: three buffers
/// laid out as q, k and v, or for packed heads one buffer three times. Per (sequence, kv head)
/// task, per query head h: P recomputed; dV += P^T dY; dP = dY V^T;
/// dS = scale * P * (dP - rowsum(P * dP)); dQ = dS K; dK += dS^T Q.
#[allow(clippy::too_many_arguments)]
fn backward(
    d: &Dims,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dy: &[f32],
    scale: f32,
    seg: Option<&[u32]>,
    (dqp, dkp, dvp): (Shared, Shared, Shared),
) {
    let d = *d;
    let rep = d.rep();
    for_tasks(d.b * d.nkv, 3 * d.task_work(), |task| {
        let (bi, g) = (task / d.nkv, task % d.nkv);
        let seg = seg.map(|s| &s[bi * d.tk..(bi + 1) * d.tk]);
        let (k_off, v_off) = (d.k_at(bi, g), d.v_at(bi, g));
        let (kg, vg) = (&k[k_off..][..d.tk * d.hd], &v[v_off..][..d.tk * d.hd]);
        let mut p = vec![0f32; d.tq * d.tk];
        let mut ds = vec![0f32; d.tq * d.tk];
        // SAFETY: dk/dv[bi, g] belong to this task alone (packed: disjoint heads of one
        // buffer). Zeroed first: every block below adds into the keys it sees.
        unsafe {
            std::slice::from_raw_parts_mut(dkp.at(k_off), d.tk * d.hd).fill(0.0);
            std::slice::from_raw_parts_mut(dvp.at(v_off), d.tk * d.hd).fill(0.0);
        }
        let blks = blocks(&d, seg);
        for h in g * rep..(g + 1) * rep {
            let qh = &q[d.q_at(bi, h)..][..d.tq * d.hd];
            for &b in &blks {
                probabilities(&d, q, k, bi, h, b, scale, seg, &mut p);
                let at = b.i0 * d.tk + b.lo;
                let dyb = dy[((bi * d.tq + b.i0) * d.nh + h) * d.hd..].as_ptr();
                // SAFETY: as above, and dq[bi, h] is this task's too; the strides stay inside
                // the slices (dy rows are nh * hd apart; p and ds blocks rows tk apart).
                unsafe {
                    let dvb = dvp.at(v_off + b.lo * d.hd);
                    let dkb = dkp.at(k_off + b.lo * d.hd);
                    let dqb = dqp.at(d.q_at(bi, h) + b.i0 * d.hd);
                    mm(
                        d.prec,
                        (b.keys(), d.hd, b.rows()),
                        dvb,
                        d.hd,
                        p[at..].as_ptr(),
                        transposed(d.tk),
                        dyb,
                        rows(d.nh * d.hd),
                        1.0,
                        true,
                        false,
                    );
                    mm(
                        d.prec,
                        (b.rows(), b.keys(), d.hd),
                        ds[at..].as_mut_ptr(),
                        d.tk,
                        dyb,
                        rows(d.nh * d.hd),
                        vg[b.lo * d.hd..].as_ptr(),
                        transposed(d.hd),
                        1.0,
                        false,
                        false,
                    );
                    softmax_grad(&p, &mut ds, d.tk, b, scale);
                    mm(
                        d.prec,
                        (b.rows(), d.hd, b.keys()),
                        dqb,
                        d.hd,
                        ds[at..].as_ptr(),
                        rows(d.tk),
                        kg[b.lo * d.hd..].as_ptr(),
                        rows(d.hd),
                        1.0,
                        false,
                        false,
                    );
                    mm(
                        d.prec,
                        (b.keys(), d.hd, b.rows()),
                        dkb,
                        d.hd,
                        ds[at..].as_ptr(),
                        transposed(d.tk),
                        qh[b.i0 * d.hd..].as_ptr(),
                        rows(d.hd),
                        1.0,
                        true,
                        false,
                    );
                }
            }
        }
    });
}

/// dP -> dS in place over block `b`: scale * P * (dP - sum_j P dP), row by row. Masked keys
/// have P = 0.
fn softmax_grad(p: &[f32], dp: &mut [f32], tk: usize, b: Block, scale: f32) {
    #[inline(always)]
    fn body(p: &[f32], dp: &mut [f32], tk: usize, b: Block, scale: f32) {
        for i in b.i0..b.i1 {
            let pr = &p[i * tk..][b.lo..b.hi];
            let dr = &mut dp[i * tk..][b.lo..b.hi];
            let s = sum_map2(pr, dr, |a, b| a * b);
            for (x, &y) in dr.iter_mut().zip(pr) {
                *x = scale * y * (*x - s);
            }
        }
    }
    simd_dispatch!(body(p: &[f32], dp: &mut [f32], tk: usize, b: Block, scale: f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_row_matches_f64_for_every_tail_length() {
        // Lengths around the lane width exercise the padded last chunk (every remainder, and
        // rows shorter than one chunk).
        for n in 1..=3 * LANES + 1 {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
                .collect();
            let scale = 0.125f32;
            let m = x
                .iter()
                .map(|&v| (scale * v) as f64)
                .fold(f64::MIN, f64::max);
            let e: Vec<f64> = x.iter().map(|&v| ((scale * v) as f64 - m).exp()).collect();
            let z: f64 = e.iter().sum();
            let mut got = x.clone();
            softmax_row(&mut got, scale);
            for (i, (&g, &want)) in got.iter().zip(&e).enumerate() {
                assert!(
                    (g as f64 - want / z).abs() < 1e-6,
                    "length {n}, element {i}: {g} vs {}",
                    want / z
                );
            }
        }
    }
}
