//! The machine's f32 multiply-add ceiling: GFLOP/s of a loop of independent AVX-512 FMAs on
//! registers, run on each of N threads at once. No matrix product can beat it, so it is the
//! yardstick for the products' GFLOP/s that `matmul_peak` and `WICK_GEMM_PROFILE=1` print, and
//! for what a model tool could reach at all (docs/speed.md).
//!
//!   cargo run --release -p wick-model --example fma_peak -- [THREADS] [SECONDS]

use std::time::Instant;

/// Independent accumulators: an FMA has 4 cycles of latency and two issue ports, so 8 are
/// needed to keep both ports busy; 12 leaves slack.
const ACC: usize = 12;
const LANES: usize = 16;
/// FMAs per accumulator between clock reads.
const REPS: usize = 1 << 20;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_block(seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(seed); ACC];
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    for _ in 0..REPS {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    let mut total = _mm512_setzero_ps();
    for x in acc {
        total = _mm512_add_ps(total, x);
    }
    _mm512_reduce_add_ps(total)
}

/// FLOPs per call of `fma_block`.
const BLOCK_FLOPS: f64 = (2 * ACC * LANES * REPS) as f64;

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("fma_peak: measures AVX-512 FMAs, so x86-64 only");
    std::process::exit(1);
}

#[cfg(target_arch = "x86_64")]
fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args
        .next()
        .map_or(2, |a| a.parse().expect("THREADS: a number"));
    let seconds: f64 = args
        .next()
        .map_or(2.0, |a| a.parse().expect("SECONDS: a number"));
    if !is_x86_feature_detected!("avx512f") {
        eprintln!("fma_peak: this CPU has no AVX-512; nothing to measure");
        std::process::exit(1);
    }
    let per_thread: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let started = Instant::now();
                    let (mut blocks, mut sink) = (0usize, 0f32);
                    while started.elapsed().as_secs_f64() < seconds {
                        // SAFETY: avx512f was detected above.
                        sink += unsafe { fma_block(t as f32 + 1.0) };
                        blocks += 1;
                    }
                    std::hint::black_box(sink);
                    blocks as f64 * BLOCK_FLOPS / started.elapsed().as_secs_f64() / 1e9
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for (t, g) in per_thread.iter().enumerate() {
        println!("thread {t}: {g:.1} GFLOP/s");
    }
    println!(
        "all {threads} threads: {:.1} GFLOP/s (f32, AVX-512 FMA on registers)",
        per_thread.iter().sum::<f64>()
    );
}
