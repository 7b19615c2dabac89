//! Forward + backward time of the fused attention kernel against the plain-candle reference
//! (`kernels::reference::attention`), which is what other devices and dtypes run.
//!
//!   cargo run --release -p wick-model --example attention_speed -- B NH NKV T HD

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use wick_model::kernels::{self, reference};

fn main() -> candle_core::Result<()> {
    wick_io::set_threads(None).unwrap();
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|x| x.parse().expect("a number"))
        .collect();
    let (b, nh, nkv, t, hd) = if a.len() == 5 {
        (a[0], a[1], a[2], a[3], a[4])
    } else {
        (12, 4, 4, 64, 32)
    };
    let q = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, nh, t, hd), &Device::Cpu)?)?;
    let k = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, nkv, t, hd), &Device::Cpu)?)?;
    let v = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, nkv, t, hd), &Device::Cpu)?)?;
    let r = Tensor::randn(0f32, 1.0, (b, t, nh, hd), &Device::Cpu)?;
    let scale = 1.0 / (hd as f64).sqrt();
    for (name, which) in [
        ("fused", 0),
        ("reference", 1),
        ("fused", 0),
        ("reference", 1),
    ] {
        let reps = 20;
        let mut fwd = 0.0;
        let t0 = Instant::now();
        for _ in 0..reps {
            let t1 = Instant::now();
            let y = match which {
                0 => kernels::attention(&q, &k, &v, scale, None)?,
                _ => reference::attention(&q, &k, &v, scale, None)?,
            };
            fwd += t1.elapsed().as_secs_f64();
            (y * &r)?.sum_all()?.backward()?;
        }
        let total = t0.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{name:9} fwd {:7.3} ms  fwd+bwd {:7.3} ms",
            fwd / reps as f64 * 1e3,
            total * 1e3
        );
    }
    Ok(())
}
