//! bf16 products against f32 ones: GFLOP/s of the f32 gemm (`mm`) and of `mm_bf16`'s kernels
//! (AMX, AVX512_BF16, rounded copies through the f32 gemm) on the shapes a training step of the
//! "small" preset runs (2048 rows: batch 8 x 256 tokens), on 1 and 2 threads, and GB/s of
//! weights read by the f32 `gemv` and `gemv_bf16` at one row. Each figure is the median of
//! several runs, the kinds taking turns so that drift in the machine's speed hits all alike.
//!
//!   cargo run --release -p wick-model --example lowp_speed -- [REPS] [products|gemv]

use std::time::Instant;

use candle_core::{Device, Tensor};
use wick_model::kernels::lowp::bench::{self, Kind};

// As the tools run: with mimalloc keeping freed memory (`runtime::run`), the packed and rounded
// copies each product allocates come back without page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per call of each closure: warmed up, then `reps` rounds of one call each, medians.
fn time_all(reps: usize, fs: &mut [Box<dyn FnMut() + '_>]) -> Vec<f64> {
    for f in fs.iter_mut() {
        f();
    }
    let mut t = vec![Vec::new(); fs.len()];
    for _ in 0..reps {
        for (f, t) in fs.iter_mut().zip(t.iter_mut()) {
            let s = Instant::now();
            f();
            t.push(s.elapsed().as_secs_f64());
        }
    }
    t.into_iter().map(median).collect()
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1 << 23) as f32 - 1.0
        })
        .collect()
}

struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    lhs_t: bool,
    rhs_t: bool,
}

const fn shape(
    name: &'static str,
    (m, n, k): (usize, usize, usize),
    lhs_t: bool,
    rhs_t: bool,
) -> Shape {
    Shape {
        name,
        m,
        n,
        k,
        lhs_t,
        rhs_t,
    }
}

fn main() {
    wick_model::runtime::run(Some(2), measure)
}

fn measure() {
    let reps: usize = std::env::args()
        .nth(1)
        .map_or(7, |a| a.parse().expect("REPS: a number"));
    let only = std::env::args().nth(2);
    if only.as_deref() != Some("gemv") {
        products(reps);
    }
    if only.as_deref() != Some("products") {
        gemvs(reps);
    }
}

fn products(reps: usize) {
    // The "small" preset: hidden 384, intermediate 1536, vocabulary 4096; 2048 rows.
    let (t, h, f, v) = (2048, 384, 1536, 4096);
    let shapes = [
        shape("qkv x.Wt", (t, 3 * h, h), false, true),
        shape("gate+up x.Wt", (t, 2 * f, h), false, true),
        shape("down x.Wt", (t, h, f), false, true),
        shape("qkv dX=dY.W", (t, h, 3 * h), false, false),
        shape("qkv dW=dYt.X", (3 * h, h, t), true, false),
        shape("down dW=dYt.X", (h, f, t), true, false),
        shape("lm-head x.Wt", (t, v, h), false, true),
        shape("lm-head dX=dY.W", (t, h, v), false, false),
        shape("lm-head dW=dYt.X", (v, h, t), true, false),
        shape("square", (2048, 2048, 2048), false, false),
    ];
    let kinds = [Kind::F32, Kind::Amx, Kind::Avx512Bf16, Kind::Bf16ViaF32];
    let names = ["f32", "amx", "avx512bf16", "bf16-via-f32", "amx rhs-bf16"];
    println!("mm_bf16 chooses: {}", Kind::chosen());
    println!(
        "GFLOP/s; amx rhs-bf16: rhs stored as bf16 (a bf16 model's weight); x f32: speed over \
         f32's; pack: the share of amx's time spent packing the operands"
    );
    print!("{:<17} {:>15} {:>3}", "product", "m x n x k", "thr");
    for n in names {
        print!(" {n:>12}");
    }
    println!(
        " {:>7} {:>7} {:>7} {:>5}",
        "x amx", "x avx", "x via", "pack"
    );
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| {
            for s in &shapes {
                let (m, n, k) = (s.m, s.n, s.k);
                let dims = (m, n, k);
                let (a, b) = (values(m * k, 1), values(k * n, 2));
                let mut bufs: Vec<Vec<f32>> = kinds.iter().map(|_| vec![0f32; m * n]).collect();
                let b16 = bench::to_bf16(&b);
                let mut d16 = vec![0f32; m * n];
                let (a, b, b16) = (&a, &b, &b16);
                let mut fs: Vec<Box<dyn FnMut() + '_>> = kinds
                    .iter()
                    .zip(bufs.iter_mut())
                    .map(|(&kind, d)| {
                        Box::new(move || {
                            if kind.available() {
                                bench::product(kind, d, a, s.lhs_t, b, s.rhs_t, dims, true)
                            }
                        }) as Box<dyn FnMut()>
                    })
                    .collect();
                fs.push(Box::new(|| {
                    if Kind::Amx.available() {
                        bench::product_bf16_rhs(
                            Kind::Amx,
                            &mut d16,
                            a,
                            s.lhs_t,
                            b16,
                            s.rhs_t,
                            dims,
                            true,
                        )
                    }
                }));
                fs.push(Box::new(|| {
                    bench::pack_only(Kind::Amx, a, s.lhs_t, b, s.rhs_t, dims, true)
                }));
                let secs = time_all(reps, &mut fs);
                let gf = |secs: f64| 2.0 * (m * n * k) as f64 / secs / 1e9;
                print!("{:<17} {:>15} {threads:>3}", s.name, format!("{m}x{n}x{k}"));
                for (kind, &t) in kinds.iter().chain(&[Kind::Amx]).zip(&secs) {
                    let g = if kind.available() { gf(t) } else { f64::NAN };
                    print!(" {g:>12.1}");
                }
                let x = |i: usize| {
                    if kinds[i].available() {
                        secs[0] / secs[i]
                    } else {
                        f64::NAN
                    }
                };
                println!(
                    " {:>7.2} {:>7.2} {:>7.2} {:>4.0}%",
                    x(1),
                    x(2),
                    x(3),
                    100.0 * secs[5] / secs[1]
                );
            }
        });
    }
}

fn gemvs(reps: usize) {
    let (h, f, v) = (384, 1536, 4096);
    println!();
    println!(
        "{:<22} {:>3} {:>10} {:>10} {:>6}",
        "gemv, 1 row", "thr", "f32 GB/s", "bf16 GB/s", "ratio"
    );
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| {
            for (out, inp) in [(4 * h, h), (h, f), (v, h), (16384, 2048)] {
                let wf = values(out * inp, 3);
                let wb = bench::to_bf16(&wf);
                let x = values(inp, 4);
                let wt = Tensor::from_slice(&wf, (out, inp), &Device::Cpu).unwrap();
                let xt = Tensor::from_slice(&x, (1, inp), &Device::Cpu).unwrap();
                let mut d = vec![0f32; out];
                let reps = (reps * 40).max(20);
                let secs = time_all(
                    reps,
                    &mut [
                        Box::new(|| {
                            std::hint::black_box(wick_model::kernels::gemv(&xt, &wt).unwrap());
                        }),
                        Box::new(|| bench::gemv_bf16(&mut d, &x, &wb, 1, out, inp)),
                    ],
                );
                let bytes = (out * inp) as f64;
                println!(
                    "{:<22} {threads:>3} {:>10.1} {:>10.1} {:>6.2}",
                    format!("[{out} x {inp}] weight"),
                    4.0 * bytes / secs[0] / 1e9,
                    2.0 * bytes / secs[1] / 1e9,
                    secs[0] / secs[1],
                );
            }
        });
    }
}
