//! GFLOP/s of candle's CPU matmul on the shapes a training step runs (forward and both backward
//! products), to tell how much of a step's time the matrix products alone need. Runs on a rayon
//! worker, as the tools do (`runtime::run`): from the main thread every product is injected
//! into the pool, which measured 10-30% slower here.
//!
//!   cargo run --release -p wick-model --example matmul_peak -- M K N [M K N ...]

use std::time::Instant;

use candle_core::{Device, Tensor};

fn main() -> candle_core::Result<()> {
    let dims: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let dims = if dims.is_empty() {
        vec![
            2048, 384, 384, 2048, 384, 1536, 2048, 1536, 384, 2048, 384, 4096,
        ]
    } else {
        dims
    };
    wick_model::runtime::run(Some(2), || peaks(&dims))
}

fn peaks(dims: &[usize]) -> candle_core::Result<()> {
    for s in dims.chunks(3) {
        let (m, k, n) = (s[0], s[1], s[2]);
        let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
        let bt = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)?.t()?;
        let at = Tensor::randn(0f32, 1.0, (k, m), &Device::Cpu)?.t()?;
        for (name, x, y) in [("A B", &a, &b), ("A Bt", &a, &bt), ("At B", &at, &b)] {
            for _ in 0..3 {
                x.matmul(y)?;
            }
            let reps = 20;
            let t = Instant::now();
            for _ in 0..reps {
                x.matmul(y)?;
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{m}x{k}x{n} {name:5} {:7.3} ms {:6.1} GFLOP/s",
                s * 1e3,
                2.0 * (m * k * n) as f64 / s / 1e9
            );
        }
    }
    Ok(())
}
