//! The matrix product the fused ops call directly (gemm, as candle's own matmul does), and a way
//! to read a tensor's f32 data in place from inside a backward pass.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use candle_core::{bail, CpuStorage, Layout, Result, Storage};
use gemm::{gemm, Parallelism};

use super::lowp::{self, Src};
use crate::Precision;

/// How a matrix is laid out: elements `rs` apart down a column, `cs` apart along a row.
#[derive(Clone, Copy)]
pub(super) struct Strides {
    pub rs: usize,
    pub cs: usize,
}

/// Row-major with rows `rs` apart.
pub(super) fn rows(rs: usize) -> Strides {
    Strides { rs, cs: 1 }
}

/// The transpose of a row-major matrix with rows `rs` apart.
pub(super) fn transposed(rs: usize) -> Strides {
    Strides { rs: 1, cs: rs }
}

/// dst (m x n, rows `dst_rs` apart) = beta * lhs (m x k) * rhs (k x n), plus dst when
/// `accumulate`, with the operands in precision `p` (rounded to it; the products and their sum
/// in f32, as torch.autocast's matmul). `parallel`: split over rayon's threads (one big product)
/// or stay on this thread (many small ones already spread over the threads).
///
/// # Safety
/// The pointers must reach every element the sizes and strides address; dst must not overlap
/// the inputs.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn mm(
    p: Precision,
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    l: Strides,
    rhs: *const f32,
    r: Strides,
    beta: f32,
    accumulate: bool,
    parallel: bool,
) {
    mm_src(
        p,
        (m, n, k),
        dst,
        dst_rs,
        Src::F32(lhs),
        l,
        Src::F32(rhs),
        r,
        beta,
        accumulate,
        parallel,
    )
}

/// `mm` over operands that may be stored as bf16 bits: the one place a product's kernel is
/// chosen (and timed). A bf16 operand is only ever a weight, whose type sets the precision.
///
/// # Safety
/// As `mm`'s.
#[allow(clippy::too_many_arguments)]
unsafe fn mm_src(
    p: Precision,
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: Src,
    l: Strides,
    rhs: Src,
    r: Strides,
    beta: f32,
    accumulate: bool,
    parallel: bool,
) {
    let started = profiling().then(Instant::now);
    let low = match (p, lhs, rhs) {
        (Precision::F32, Src::F32(a), Src::F32(b)) => {
            mm_f32(
                (m, n, k),
                dst,
                dst_rs,
                a,
                l,
                b,
                r,
                beta,
                accumulate,
                parallel,
            );
            None
        }
        (Precision::F16, ..) => Some(lowp::mm_f16 as LowpProduct),
        _ => Some(lowp::mm_bf16 as LowpProduct),
    };
    if let Some(product) = low {
        product(
            (m, n, k),
            dst,
            dst_rs,
            lhs,
            l,
            rhs,
            r,
            beta,
            accumulate,
            parallel,
        );
    }
    if let Some(t) = started {
        record((m, n, k, parallel), t);
    }
}

/// `lowp::mm_bf16` and `lowp::mm_f16`.
type LowpProduct =
    unsafe fn((usize, usize, usize), *mut f32, usize, Src, Strides, Src, Strides, f32, bool, bool);

/// `mm` in f32: the gemm crate, as candle's own matmul.
///
/// # Safety
/// As `mm`'s.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn mm_f32(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    l: Strides,
    rhs: *const f32,
    r: Strides,
    beta: f32,
    accumulate: bool,
    parallel: bool,
) {
    let parallelism = match rayon::current_num_threads() {
        n if parallel && n > 1 => Parallelism::Rayon(n),
        _ => Parallelism::None,
    };
    gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        l.cs as isize,
        l.rs as isize,
        rhs,
        r.cs as isize,
        r.rs as isize,
        if accumulate { 1.0 } else { 0.0 },
        beta,
        false,
        false,
        false,
        parallelism,
    );
}

/// A weight operand as stored: f32, or the bits of a model kept in bf16 or f16. Weights are
/// only ever the right-hand operand.
#[derive(Clone, Copy)]
pub(super) enum Weight<'a> {
    F32(&'a [f32]),
    Bf16(&'a [half::bf16]),
    F16(&'a [half::f16]),
}

impl<'a> From<&'a [f32]> for Weight<'a> {
    fn from(w: &'a [f32]) -> Weight<'a> {
        Weight::F32(w)
    }
}

impl Weight<'_> {
    fn len(&self) -> usize {
        match self {
            Weight::F32(w) => w.len(),
            Weight::Bf16(w) => w.len(),
            Weight::F16(w) => w.len(),
        }
    }
}

/// `mm` with the right-hand operand a weight as stored. A half-precision weight sets the
/// product's precision: the left operand is rounded to the weight's type, as a model kept in
/// bf16 computes.
///
/// # Safety
/// As `mm`'s.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn mm_w(
    p: Precision,
    dims: (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    l: Strides,
    rhs: Weight,
    r: Strides,
    beta: f32,
    accumulate: bool,
    parallel: bool,
) {
    match rhs {
        Weight::F32(w) => mm_src(
            p,
            dims,
            dst,
            dst_rs,
            Src::F32(lhs),
            l,
            Src::F32(w.as_ptr()),
            r,
            beta,
            accumulate,
            parallel,
        ),
        Weight::Bf16(w) => mm_src(
            Precision::Bf16,
            dims,
            dst,
            dst_rs,
            Src::F32(lhs),
            l,
            Src::Bf16(w.as_ptr().cast()),
            r,
            beta,
            accumulate,
            parallel,
        ),
        Weight::F16(w) => {
            // No stored-f16 operand in lowp: widened (exactly) per product, then rounded back as
            // it packs. f16 models are the rare case on CPUs; bf16 is the fast one.
            let wide: Vec<f32> = w.iter().map(|x| x.to_f32()).collect();
            mm_src(
                Precision::F16,
                dims,
                dst,
                dst_rs,
                Src::F32(lhs),
                l,
                Src::F32(wide.as_ptr()),
                r,
                beta,
                accumulate,
                parallel,
            )
        }
    }
}

/// A weight's data in place: f32, bf16 or f16, contiguous.
pub(super) fn cpu_weight<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<Weight<'a>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{what}: expected a contiguous weight");
    };
    Ok(match s {
        CpuStorage::F32(v) => Weight::F32(&v[a..b]),
        CpuStorage::BF16(v) => Weight::Bf16(&v[a..b]),
        CpuStorage::F16(v) => Weight::F16(&v[a..b]),
        _ => bail!("{what}: expected an f32, bf16 or f16 weight"),
    })
}

/// `cpu_weight` of a tensor's storage (inside a backward pass, or a weight an op holds).
pub(super) fn storage_weight<'a>(s: &'a Storage, l: &Layout, what: &str) -> Result<Weight<'a>> {
    match s {
        Storage::Cpu(c) => cpu_weight(c, l, what),
        _ => bail!("{what}: the fused kernels run on the CPU only"),
    }
}

/// dst (n x out) = x (n x inp) times w (out x inp) transposed, split over the threads: rows of
/// an input times a weight stored [out, in], as Hugging Face stores it.
pub(super) fn x_wt<'a>(
    p: Precision,
    dst: &mut [f32],
    x: &[f32],
    w: impl Into<Weight<'a>>,
    (n, out, inp): (usize, usize, usize),
) {
    x_times(p, dst, x, w.into(), transposed(inp), (n, out, inp))
}

/// dst (n x out) = x (n x inp) times wt (inp x out), split over the threads: rows of an input
/// times a weight kept transposed, [in, out] (see `matmul_t`).
pub(super) fn x_w<'a>(
    p: Precision,
    dst: &mut [f32],
    x: &[f32],
    wt: impl Into<Weight<'a>>,
    (n, out, inp): (usize, usize, usize),
) {
    x_times(p, dst, x, wt.into(), rows(out), (n, out, inp))
}

/// dst (n x out) = x (n x inp) times the inp x out matrix `rhs` laid out as `r`.
fn x_times(
    p: Precision,
    dst: &mut [f32],
    x: &[f32],
    rhs: Weight,
    r: Strides,
    (n, out, inp): (usize, usize, usize),
) {
    assert!(
        dst.len() >= n * out && x.len() >= n * inp && rhs.len() >= out * inp,
        "x_times: buffers too short for [{n}, {inp}] x [{inp}, {out}]"
    );
    // SAFETY: the sizes are checked above (either layout of rhs spans out * inp elements); dst
    // is borrowed mutably, so it overlaps neither input.
    unsafe {
        mm_w(
            p,
            (n, out, inp),
            dst.as_mut_ptr(),
            out,
            x.as_ptr(),
            rows(inp),
            rhs,
            r,
            1.0,
            false,
            true,
        )
    }
}

/// (m, n, k, parallel) -> (calls, nanoseconds).
type Timings = BTreeMap<(usize, usize, usize, bool), (u64, u64)>;

static TIMINGS: Mutex<Timings> = Mutex::new(BTreeMap::new());

/// WICK_GEMM_PROFILE=1 times every product the fused ops run (read once; off, a product pays
/// one branch).
fn profiling() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("WICK_GEMM_PROFILE").is_some_and(|v| v != "0"))
}

fn record(key: (usize, usize, usize, bool), started: Instant) {
    let ns = started.elapsed().as_nanos() as u64;
    let mut t = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    let e = t.entry(key).or_default();
    e.0 += 1;
    e.1 += ns;
}

/// With WICK_GEMM_PROFILE=1, a table of the products run so far, by shape, slowest total
/// first: how much of a run the matrix products take and how fast each shape goes. Products
/// split over the threads are timed on the calling thread (wall time); single-threaded ones
/// (attention's, run side by side) are summed over the threads. `wall`: the run's own time.
pub fn products_report(wall: f64) -> Option<String> {
    if !profiling() {
        return None;
    }
    let t = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    Some(report(&t, wall))
}

fn report(t: &Timings, wall: f64) -> String {
    let mut rows: Vec<_> = t.iter().collect();
    rows.sort_by_key(|(_, &(_, ns))| std::cmp::Reverse(ns));
    let secs = |par: bool| {
        let ns: u64 = rows.iter().filter(|r| r.0 .3 == par).map(|r| r.1 .1).sum();
        ns as f64 / 1e9
    };
    let mut out = format!(
        "matrix products (WICK_GEMM_PROFILE): {:.3} s split over the threads and {:.3} s \
         on single threads (summed) in {wall:.3} s wall\n{:>6} {:>6} {:>6} {:>8} {:>9} {:>9} {:>8}\n",
        secs(true),
        secs(false),
        "m",
        "n",
        "k",
        "threads",
        "calls",
        "seconds",
        "GFLOP/s"
    );
    for (&(m, n, k, par), &(calls, ns)) in rows {
        let flops = 2.0 * (m * n * k) as f64 * calls as f64;
        out += &format!(
            "{m:>6} {n:>6} {k:>6} {:>8} {calls:>9} {:>9.3} {:>8.1}\n",
            if par { "all" } else { "one" },
            ns as f64 / 1e9,
            flops / ns.max(1) as f64
        );
    }
    out
}

/// The f32 data of a CPU tensor's storage, borrowed (no copy), as `f32s` reads it.
pub(super) fn cpu_f32<'a>(s: &'a Storage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => super::cpu::f32s(c, l, what),
        _ => bail!("{what}: the backward pass runs on the CPU only"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_sums_by_kind_and_lists_the_slowest_shape_first() {
        let mut t = Timings::new();
        // 2 * 100 * 200 * 300 flops * 10 calls in 0.024 s = 5 GFLOP/s.
        t.insert((100, 200, 300, true), (10, 24_000_000));
        t.insert((64, 64, 64, false), (1000, 50_000_000));
        t.insert((8, 8, 8, true), (1, 1_000_000));
        let r = report(&t, 2.0);
        let lines: Vec<&str> = r.lines().collect();
        assert!(
            lines[0].contains("0.025 s split over the threads and 0.050 s on single threads"),
            "{r}"
        );
        assert!(lines[0].ends_with("in 2.000 s wall"), "{r}");
        let fields = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            fields(lines[2]),
            ["64", "64", "64", "one", "1000", "0.050", "10.5"]
        );
        assert_eq!(
            fields(lines[3]),
            ["100", "200", "300", "all", "10", "0.024", "5.0"]
        );
        assert_eq!(lines.len(), 5);
    }
}
