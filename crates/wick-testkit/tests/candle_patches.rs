//! One test per change wick makes to candle-core (vendor/candle-core/PATCHED.md). Each checks
//! that the patched code gives the right answer and that the patch is in effect: run against
//! upstream's code, the test named after a patch fails.
//!
//! The binary's allocator fills every fresh allocation with 0xFF bytes (a NaN in f32), so an
//! output element that no kernel wrote shows up as NaN instead of a lucky zero.

use std::alloc::{GlobalAlloc, Layout, System};

use candle_core::{DType, Device, Tensor, Var};

struct DirtyAlloc;

// SAFETY: forwards to the system allocator; only writes into the block it just returned.
unsafe impl GlobalAlloc for DirtyAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            std::ptr::write_bytes(p, 0xFF, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout)
    }
}

#[global_allocator]
static ALLOC: DirtyAlloc = DirtyAlloc;

fn cpu() -> Device {
    Device::Cpu
}

/// Small integers, so that every product and sum below is exact in f32.
fn ints(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + seed * 3) % 9) as f32 - 4.0)
        .collect()
}

/// Patch 1 (backprop.rs, `GradStore::accumulate`): the first gradient that reaches a node is
/// stored as it is, made contiguous when it is a view, instead of being added to zeros.
#[test]
fn accumulate_stores_the_first_gradient_as_it_is() -> candle_core::Result<()> {
    // The tell: upstream's 0 + g turns a gradient of -0.0 into +0.0; stored as it is, it stays.
    let x = Var::from_vec(vec![1f32, 2.0, 3.0], 3, &cpu())?;
    let minus_zero = Tensor::from_vec(vec![-0f32; 3], 3, &cpu())?;
    let grads = x.mul(&minus_zero)?.sum_all()?.backward()?;
    let g = grads.get(&x).expect("a gradient for x").to_vec1::<f32>()?;
    assert_eq!(g, [0.0; 3]);
    assert!(
        g.iter().all(|v| v.is_sign_negative()),
        "the first gradient was added to zeros (upstream's or_insert + add): {g:?}"
    );

    // Views as first gradients: the transpose's gradient reaches x as a transposed view, the
    // sum's as a broadcast (stride 0); both are stored contiguous and equal the reference.
    let (rows, cols) = (3, 4);
    let x = Var::from_vec(ints(rows * cols, 1), (rows, cols), &cpu())?;
    let w = Tensor::from_vec(ints(rows * cols, 2), (cols, rows), &cpu())?;
    let grads = x.t()?.mul(&w)?.sum_all()?.backward()?;
    let g = grads.get(&x).expect("a gradient for x");
    assert!(g.is_contiguous(), "the gradient of x is a view");
    assert_eq!(g.dims(), [rows, cols]);
    assert_eq!(g.to_vec2::<f32>()?, w.t()?.to_vec2::<f32>()?);

    let grads = x.sum_all()?.backward()?;
    let g = grads.get(&x).expect("a gradient for x");
    assert!(g.is_contiguous(), "the gradient of x is a broadcast view");
    assert_eq!(g.to_vec2::<f32>()?, vec![vec![1f32; cols]; rows]);

    // A node reached twice: the first gradient stored, the second added to it (and the stored
    // one is not changed in place: y's own gradient is still w).
    let y = x.affine(1.0, 0.0)?;
    let loss = (y.mul(&w.t()?)? + y.mul(&w.t()?)?.affine(3.0, 0.0)?)?.sum_all()?;
    let grads = loss.backward()?;
    let want: Vec<Vec<f32>> = w
        .t()?
        .to_vec2::<f32>()?
        .iter()
        .map(|r| r.iter().map(|v| 4.0 * v).collect())
        .collect();
    let g = grads.get(&x).expect("a gradient for x");
    assert!(g.is_contiguous());
    assert_eq!(g.to_vec2::<f32>()?, want);
    Ok(())
}

/// The names of this process's threads (/proc/self/task/*/comm).
fn thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim_end().to_string())
        .collect()
}

/// Patch 2 (cpu_backend/utils.rs, `unary_map_vec_par` / `binary_map_vec_par`): element-wise
/// ops on 64K elements or more run on the caller's rayon pool, and candle's barrier pool (its
/// threads are named candle-bp-N) is never started.
#[test]
fn large_elementwise_ops_run_on_the_callers_rayon_pool() -> candle_core::Result<()> {
    if !std::path::Path::new("/proc/self/task").is_dir() {
        eprintln!("no /proc/self/task: skipped");
        return Ok(());
    }
    // With 2 threads the barrier pool would start one thread of its own (on first use; no
    // other test here runs an element-wise op this large).
    std::env::set_var("CANDLE_NUM_THREADS", "2");
    let n = 1 << 17; // above the parallel split's 64K elements
    let a = Tensor::arange(0f32, n as f32, &cpu())?;
    let b = Tensor::ones(n, DType::F32, &cpu())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a rayon pool");
    let two = Tensor::new(&[2f32], &cpu())?;
    // A binary op on two vectors, one with a broadcast scalar, a unary op.
    let (sum, plus_two, sqr) = pool.install(|| -> candle_core::Result<_> {
        Ok(((&a + &b)?, a.broadcast_add(&two)?, a.sqr()?))
    })?;
    let (sum, plus_two, sqr) = (
        sum.to_vec1::<f32>()?,
        plus_two.to_vec1::<f32>()?,
        sqr.to_vec1::<f32>()?,
    );
    for (i, ((&s, &p), &q)) in sum.iter().zip(&plus_two).zip(&sqr).enumerate() {
        let x = i as f32;
        assert_eq!(s, x + 1.0, "element {i} of the sum");
        assert_eq!(p, x + 2.0, "element {i} of the broadcast sum");
        assert_eq!(q, x * x, "element {i} of the square");
    }
    assert_eq!(sum.len(), n);
    let names = thread_names();
    assert!(!names.is_empty(), "no threads listed in /proc/self/task");
    assert!(
        !names.iter().any(|t| t.starts_with("candle-bp")),
        "candle's barrier pool was started: threads {names:?}"
    );
    Ok(())
}
