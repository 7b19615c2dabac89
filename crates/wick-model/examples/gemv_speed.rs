//! Decoding-sized products (a few rows of x against a weight matrix): `kernels::gemv` against
//! candle's matmul, to choose `GEMV_MAX_ROWS`.
//!
//!   cargo run --release -p wick-model --example gemv_speed -- [THREADS]

use std::time::Instant;

use candle_core::{Device, Tensor};
use wick_model::kernels as ops;

fn time(
    reps: usize,
    mut f: impl FnMut() -> candle_core::Result<Tensor>,
) -> candle_core::Result<f64> {
    for _ in 0..5 {
        f()?;
    }
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() / reps as f64)
}

fn main() -> candle_core::Result<()> {
    let threads = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number"));
    wick_io::set_threads(threads.or(Some(2))).unwrap();
    for (inp, out) in [(384, 384), (384, 1536), (1536, 384), (384, 4096)] {
        let w = Tensor::randn(0f32, 1.0, (out, inp), &Device::Cpu)?;
        for n in [1, 8, 16, 24, 32] {
            let x = Tensor::randn(0f32, 1.0, (n, inp), &Device::Cpu)?;
            let a = time(200, || x.matmul(&w.t()?))?;
            let b = time(200, || ops::gemv(&x, &w))?;
            let diff = (x.matmul(&w.t()?)? - ops::gemv(&x, &w)?)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            println!(
                "n {n:2} {inp:4}x{out:4}: matmul {:7.4} ms  gemv {:7.4} ms  ({:5.1} GB/s)  max diff {diff:.2e}",
                a * 1e3,
                b * 1e3,
                (out * inp * 4) as f64 / b / 1e9
            );
        }
    }
    Ok(())
}
