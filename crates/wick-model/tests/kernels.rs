//! Every fused kernel of wick_model::kernels against its plain-candle composition in
//! `kernels::reference`: forward values and gradients (of a random weighted sum of the output),
//! on odd shapes, shapes big enough to run in parallel, strided inputs, KV-cache and
//! packed-sequence masks.

use candle_core::{DType, Device, Tensor, Var};
use wick_model::kernels as ops;
use wick_model::kernels::reference;

// ------------------------------------------------------------------------------ helpers

/// A deterministic generator (SplitMix64) so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut r = wick_io::Rng::new(self.0);
        let z = r.next_u64();
        self.0 = r.state;
        z
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn tensor(&mut self, shape: &[usize], amp: f32) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| amp * self.unit()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % n as u64) as u32
    }
}

fn var(t: &Tensor) -> Var {
    Var::from_tensor(t).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// max |a - b| <= tol * max(1, max |b|): relative to the tensor's scale, absolute near 0.
fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    let (a, b) = (flat(a), flat(b));
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0f32, 0);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let d = (x - y).abs();
        assert!(!d.is_nan(), "{what}: NaN at {i} ({x} vs {y})");
        if d > worst {
            (worst, at) = (d, i);
        }
    }
    assert!(
        worst <= tol * scale,
        "{what}: max diff {worst} at {at} ({} vs {}), scale {scale}",
        a[at],
        b[at]
    );
}

fn assert_nonzero(what: &str, t: &Tensor) {
    let v = flat(t);
    let nz = v.iter().filter(|x| **x != 0.0).count();
    assert!(
        nz * 10 >= v.len() * 9,
        "{what}: only {nz} of {} gradient entries are non-zero",
        v.len()
    );
}

const TOL: f32 = 1e-5;

// ------------------------------------------------------------------------------ references

fn rms_norm_ref(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    reference::rms_norm(x, w, eps).unwrap()
}

fn rope_ref(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    reference::rope(x, cos, sin).unwrap()
}

/// Hugging Face's cos/sin tables [T, D] for positions 0..t.
fn rope_tables(t: usize, d: usize) -> (Tensor, Tensor) {
    let mut cos = Vec::new();
    let mut sin = Vec::new();
    for p in 0..t {
        for j in 0..d {
            let f = p as f32 * 10000f32.powf(-((2 * (j % (d / 2))) as f32) / d as f32);
            cos.push(f.cos());
            sin.push(f.sin());
        }
    }
    let dev = &Device::Cpu;
    (
        Tensor::from_vec(cos, (t, d), dev).unwrap(),
        Tensor::from_vec(sin, (t, d), dev).unwrap(),
    )
}

// ------------------------------------------------------------------------------ rms_norm

#[test]
fn rms_norm_matches_composition() {
    let mut rng = Rng(1);
    for shape in [
        vec![3, 5, 7],
        vec![2, 33],
        vec![768, 128],
        vec![1, 1],
        vec![4, 3, 64],
    ] {
        let d = *shape.last().unwrap();
        let x0 = rng.tensor(&shape, 2.0);
        let w0 = (rng.tensor(&[d], 0.5) + 1.0).unwrap();
        let r = rng.tensor(&shape, 1.0);
        let (x, w) = (var(&x0), var(&w0));
        let y = ops::rms_norm(&x, &w, 1e-5).unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (xr, wr) = (var(&x0), var(&w0));
        let yr = rms_norm_ref(&xr, &wr, 1e-5);
        let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("rms_norm {shape:?}");
        assert_close(&format!("{what} y"), &y, &yr, TOL);
        let (dx, dw) = (g.get(&x).unwrap(), g.get(&w).unwrap());
        assert_close(&format!("{what} dx"), dx, gr.get(&xr).unwrap(), TOL);
        assert_close(&format!("{what} dw"), dw, gr.get(&wr).unwrap(), TOL);
        if d > 1 {
            // With D = 1, y = sign(x) * w and dx is 0 (up to eps).
            assert_nonzero(&format!("{what} dx"), dx);
        }
        assert_nonzero(&format!("{what} dw"), dw);
    }
}

#[test]
fn rms_norm_frozen_weight_and_strided_input() {
    let mut rng = Rng(2);
    let x0 = rng.tensor(&[6, 4, 10], 1.0);
    let w = (rng.tensor(&[6], 0.5) + 1.0).unwrap(); // a constant: no gradient asked for
    let r = rng.tensor(&[4, 10, 6], 1.0);
    let x = var(&x0);
    // A permuted (non-contiguous) input.
    let xt = x.permute((1, 2, 0)).unwrap();
    let y = ops::rms_norm(&xt, &w, 1e-6).unwrap();
    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let xr = var(&x0);
    let yr = rms_norm_ref(&xr.permute((1, 2, 0)).unwrap(), &w, 1e-6);
    let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close("y", &y, &yr, TOL);
    assert_close("dx", g.get(&x).unwrap(), gr.get(&xr).unwrap(), TOL);
    assert!(g.get(&w).is_none());
}

// ------------------------------------------------------------------------------ rope

#[test]
fn rope_matches_composition() {
    let mut rng = Rng(3);
    for (b, h, t, d, hf_tables) in [
        (2, 3, 5, 8, true),
        (1, 2, 7, 6, true),
        (12, 4, 64, 32, true),
        (2, 2, 3, 10, false), // random tables: halves of cos/sin differ
        (1, 1, 1, 2, false),
    ] {
        let (cos, sin) = if hf_tables {
            rope_tables(t, d)
        } else {
            (rng.tensor(&[t, d], 1.0), rng.tensor(&[t, d], 1.0))
        };
        let x0 = rng.tensor(&[b, h, t, d], 1.0);
        let r = rng.tensor(&[b, h, t, d], 1.0);
        let x = var(&x0);
        let y = ops::rope(&x, &cos, &sin).unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let xr = var(&x0);
        let yr = rope_ref(&xr, &cos, &sin);
        let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("rope {:?}", [b, h, t, d]);
        assert_close(&format!("{what} y"), &y, &yr, TOL);
        let dx = g.get(&x).unwrap();
        assert_close(&format!("{what} dx"), dx, gr.get(&xr).unwrap(), TOL);
        assert_nonzero(&format!("{what} dx"), dx);
    }
}

#[test]
fn rope_reads_transposed_views() {
    // As in attention: q = linear(x).reshape(B, T, H, D).transpose(1, 2), not made contiguous.
    let mut rng = Rng(4);
    let (b, t, h, d) = (3, 9, 4, 16);
    let (cos, sin) = rope_tables(t, d);
    let x0 = rng.tensor(&[b, t, h, d], 1.0);
    let r = rng.tensor(&[b, h, t, d], 1.0);
    let x = var(&x0);
    let xt = x.transpose(1, 2).unwrap();
    assert!(!xt.is_contiguous());
    let y = ops::rope(&xt, &cos, &sin).unwrap();
    assert!(y.is_contiguous());
    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let xr = var(&x0);
    let yr = rope_ref(
        &xr.transpose(1, 2).unwrap().contiguous().unwrap(),
        &cos,
        &sin,
    );
    let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close("y", &y, &yr, TOL);
    assert_close("dx", g.get(&x).unwrap(), gr.get(&xr).unwrap(), TOL);
    // A view whose last dim is strided is copied first, and still right.
    let xs = x0
        .transpose(2, 3)
        .unwrap()
        .contiguous()
        .unwrap()
        .transpose(2, 3)
        .unwrap();
    assert!(!xs.is_contiguous());
    let (c2, s2) = rope_tables(h, d);
    assert_close(
        "strided last dim",
        &ops::rope(&xs, &c2, &s2).unwrap(),
        &rope_ref(&x0, &c2, &s2),
        TOL,
    );
}

// ------------------------------------------------------------------------------ causal softmax

/// Random packed-document ids [B, Tk]: runs of 1..=4 tokens, plus (if `reuse`) ids that
/// repeat after another document, which the mask must still treat by id.
fn segments(rng: &mut Rng, b: usize, tk: usize, reuse: bool) -> Vec<Vec<u32>> {
    (0..b)
        .map(|_| {
            let mut row = Vec::new();
            let mut id = 0;
            while row.len() < tk {
                let len = 1 + rng.below(4) as usize;
                let this = if reuse && id > 1 && rng.below(3) == 0 {
                    id - 2
                } else {
                    id
                };
                row.extend(std::iter::repeat_n(this, len.min(tk - row.len())));
                id += 1;
            }
            row
        })
        .collect()
}

/// The fused attention against scores + causal softmax + weighted values composed from basic
/// ops (keys and values repeated for grouped-query heads), values and all three gradients.
#[test]
fn attention_matches_composition() {
    let mut rng = Rng(11);
    // (B, nh, nkv, Tq, Tk, hd)
    let cases = [
        (2, 4, 2, 5, 5, 8),
        (2, 4, 4, 3, 7, 8),     // Tq < Tk (KV cache): queries at positions 4..7
        (1, 6, 2, 1, 9, 16),    // one-token decode step, rep 3
        (3, 2, 1, 13, 13, 4),   // odd sizes, one KV head
        (12, 4, 4, 64, 64, 32), // nanoGPT's shape: runs in parallel
        (2, 6, 3, 17, 40, 16),
        // Longer than the 64-row query blocks, which skip keys no row of theirs can see: a
        // partial last block, and Tq < Tk across blocks.
        (2, 4, 2, 150, 150, 8),
        (1, 2, 1, 70, 200, 8),
    ];
    for (b, nh, nkv, tq, tk, hd) in cases {
        for seg_kind in 0..3 {
            let seg = match seg_kind {
                0 => None,
                1 => Some(segments(&mut rng, b, tk, false)),
                _ => Some(segments(&mut rng, b, tk, true)),
            };
            let seg_t = seg
                .as_ref()
                .map(|s| Tensor::from_vec(s.concat(), (b, tk), &Device::Cpu).unwrap());
            let scale = 1.0 / (hd as f64).sqrt();
            let (q0, k0, v0) = (
                rng.tensor(&[b, nh, tq, hd], 1.5),
                rng.tensor(&[b, nkv, tk, hd], 1.5),
                rng.tensor(&[b, nkv, tk, hd], 1.0),
            );
            let r = rng.tensor(&[b, tq, nh, hd], 1.0);
            let (q, k, v) = (var(&q0), var(&k0), var(&v0));
            let y = ops::attention(&q, &k, &v, scale, seg_t.as_ref()).unwrap();
            let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (qr, kr, vr) = (var(&q0), var(&k0), var(&v0));
            let yr = reference::attention(&qr, &kr, &vr, scale, seg_t.as_ref()).unwrap();
            let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let what = format!(
                "attention {:?} segments {seg_kind}",
                [b, nh, nkv, tq, tk, hd]
            );
            assert_close(&format!("{what} y"), &y, &yr, TOL);
            for (name, x, xr) in [("dq", &q, &qr), ("dk", &k, &kr), ("dv", &v, &vr)] {
                let d = g.get(x).unwrap();
                assert_close(&format!("{what} {name}"), d, gr.get(xr).unwrap(), TOL);
                // (A query that sees one key has a constant output: its dq row is 0.)
                if seg_kind == 0 && name != "dq" {
                    assert_nonzero(&format!("{what} {name}"), d);
                }
            }
        }
    }
}

/// The packed forms the model uses for fused projections (q/k/v heads side by side in one
/// [B, T, heads, hd] tensor, laid out [B, heads, T, hd] by rope_heads; gate and up side by side
/// in each row) against the unpacked ops on views of the same tensor: values, and the gradient
/// of the packed tensor.
#[test]
fn packed_attention_and_rope_match_the_unpacked_ops_on_views() {
    let mut rng = Rng(12);
    // (B, T, nh, nkv, hd)
    let cases = [
        (2, 5, 4, 2, 8),
        (3, 13, 2, 1, 4),
        (1, 1, 2, 2, 4),    // one position
        (12, 64, 4, 4, 32), // nanoGPT's shape: runs in parallel
        (2, 40, 6, 3, 16),
        (2, 130, 4, 2, 8), // three query blocks
    ];
    for (b, t, nh, nkv, hd) in cases {
        let heads = nh + 2 * nkv;
        let (cos, sin) = rope_tables(t, hd);
        for seg_kind in 0..3 {
            let seg = match seg_kind {
                0 => None,
                1 => Some(segments(&mut rng, b, t, false)),
                _ => Some(segments(&mut rng, b, t, true)),
            };
            let seg_t = seg
                .as_ref()
                .map(|s| Tensor::from_vec(s.concat(), (b, t), &Device::Cpu).unwrap());
            let scale = 1.0 / (hd as f64).sqrt();
            let x0 = rng.tensor(&[b, t, heads, hd], 1.5);
            let r = rng.tensor(&[b, t, nh, hd], 1.0);
            let rr = rng.tensor(&[b, heads, t, hd], 1.0);
            let x = var(&x0);
            let roped = ops::rope_heads(&x, nh + nkv, &cos, &sin).unwrap();
            let y = ops::attention_packed(&roped, nh, nkv, scale, seg_t.as_ref()).unwrap();
            let loss = ((&y * &r).unwrap().sum_all().unwrap()
                + (&roped * &rr).unwrap().sum_all().unwrap())
            .unwrap();
            let g = loss.backward().unwrap();

            let xr = var(&x0);
            let head =
                |from: usize, n: usize| xr.narrow(2, from, n).unwrap().transpose(1, 2).unwrap();
            let (q, k, v) = (
                rope_ref(&head(0, nh), &cos, &sin),
                rope_ref(&head(nh, nkv), &cos, &sin),
                head(nh + nkv, nkv),
            );
            let roped_r = Tensor::cat(&[&q, &k, &v], 1).unwrap();
            let yr = reference::attention(&q, &k, &v, scale, seg_t.as_ref()).unwrap();
            let loss_r = ((&yr * &r).unwrap().sum_all().unwrap()
                + (&roped_r * &rr).unwrap().sum_all().unwrap())
            .unwrap();
            let gr = loss_r.backward().unwrap();
            let what = format!("packed {:?} segments {seg_kind}", [b, t, nh, nkv, hd]);
            assert_close(&format!("{what} rope_heads"), &roped, &roped_r, TOL);
            assert_close(&format!("{what} y"), &y, &yr, TOL);
            let d = g.get(&x).unwrap();
            assert_close(&format!("{what} dqkv"), d, gr.get(&xr).unwrap(), TOL);
            if seg_kind == 0 {
                assert_nonzero(&format!("{what} dqkv"), d);
            }
        }
    }
}

#[test]
fn packed_silu_mul_matches_silu_mul_on_the_halves() {
    let mut rng = Rng(13);
    for shape in [vec![3, 7, 22], vec![1000, 2], vec![12, 64, 694], vec![1, 2]] {
        let gu0 = rng.tensor(&shape, 6.0);
        let last = shape.len() - 1;
        let i = shape[last] / 2;
        let gu = var(&gu0);
        let y = ops::silu_mul_packed(&gu).unwrap();
        let r = rng.tensor(y.dims(), 1.0);
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gur = var(&gu0);
        let yr = reference::silu_mul_packed(&gur).unwrap();
        // The reference itself is silu_mul on the halves.
        let halves = reference::silu_mul(
            &gu0.narrow(last, 0, i).unwrap(),
            &gu0.narrow(last, i, i).unwrap(),
        );
        assert_close("halves", &halves.unwrap(), &yr, 0.0);
        let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("silu_mul_packed {shape:?}");
        assert_close(&format!("{what} y"), &y, &yr, TOL);
        let d = g.get(&gu).unwrap();
        assert_close(&format!("{what} dgu"), d, gr.get(&gur).unwrap(), TOL);
        assert_nonzero(&format!("{what} dgu"), d);
    }
    assert!(ops::silu_mul_packed(&rng.tensor(&[2, 3], 1.0)).is_err());
}

// ------------------------------------------------------------------------------ silu_mul

#[test]
fn silu_mul_matches_composition() {
    let mut rng = Rng(7);
    for shape in [vec![3, 7, 11], vec![1000], vec![12, 64, 347], vec![1]] {
        let g0 = rng.tensor(&shape, 6.0);
        let u0 = rng.tensor(&shape, 2.0);
        let r = rng.tensor(&shape, 1.0);
        let (g, u) = (var(&g0), var(&u0));
        let y = ops::silu_mul(&g, &u).unwrap();
        let gs = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (gr, ur) = (var(&g0), var(&u0));
        let yr = reference::silu_mul(&gr, &ur).unwrap();
        let grs = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("silu_mul {shape:?}");
        assert_close(&format!("{what} y"), &y, &yr, TOL);
        let (dg, du) = (gs.get(&g).unwrap(), gs.get(&u).unwrap());
        assert_close(&format!("{what} dgate"), dg, grs.get(&gr).unwrap(), TOL);
        assert_close(&format!("{what} dup"), du, grs.get(&ur).unwrap(), TOL);
        assert_nonzero(&format!("{what} dgate"), dg);
        assert_nonzero(&format!("{what} dup"), du);
    }
}

/// The fused head + cross-entropy against the head's product followed by the composed
/// cross-entropy: loss and the gradients of h and of the head's weight, with and without
/// weights, and the gradient-free path.
#[test]
fn lm_head_loss_matches_composition() {
    let mut rng = Rng(12);
    for (n, hd, v) in [(7, 5, 13), (33, 16, 1000), (768, 128, 4096), (1, 3, 5)] {
        let targets: Vec<u32> = (0..n).map(|_| rng.below(v as u32)).collect();
        let t = Tensor::from_vec(targets, n, &Device::Cpu).unwrap();
        let weights: Vec<f32> = (0..n)
            .map(|i| [0.0, 1.0, 0.5, 2.0][(i * 7 + 1) % 4])
            .collect();
        let zeros = vec![0f32; n];
        for w in [None, Some(weights), Some(zeros)] {
            let w = w.map(|w| Tensor::from_vec(w, n, &Device::Cpu).unwrap());
            let (h0, e0) = (rng.tensor(&[n, hd], 2.0), rng.tensor(&[v, hd], 1.0));
            let (h, e) = (var(&h0), var(&e0));
            let loss = ops::lm_head_loss(&h, &e, &t, w.as_ref()).unwrap();
            let g = (&loss * 0.7).unwrap().backward().unwrap();
            let (hr, er) = (var(&h0), var(&e0));
            let lr = reference::lm_head_loss(&hr, &er, &t, w.as_ref()).unwrap();
            let gr = (&lr * 0.7).unwrap().backward().unwrap();
            let what = format!(
                "lm_head_loss [{n}, {hd}] x [{v}, {hd}] weights {:?}",
                w.as_ref().map(|_| ())
            );
            assert_close(&format!("{what} loss"), &loss, &lr, TOL);
            for (name, x, xr) in [("dh", &h, &hr), ("dw", &e, &er)] {
                let got = g.get(x).unwrap();
                match gr.get(xr) {
                    Some(want) => assert_close(&format!("{what} {name}"), got, want, TOL),
                    // The reference multiplies by 0 when the weights sum to 0 (no graph).
                    None => assert!(flat(got).iter().all(|&x| x == 0.0), "{what} {name} not 0"),
                }
            }
            // Without gradients (detached inputs): the same value.
            let plain = ops::lm_head_loss(&h0, &e0, &t, w.as_ref()).unwrap();
            assert_eq!(flat(&plain), flat(&loss), "{what}: value without gradients");
        }
    }
}

#[test]
fn lm_head_logprobs_match_the_reference() {
    let mut rng = Rng(13);
    for (n, hd, v) in [(7, 5, 13), (300, 32, 4096), (1, 3, 5)] {
        let targets: Vec<u32> = (0..n).map(|_| rng.below(v as u32)).collect();
        let t = Tensor::from_vec(targets, n, &Device::Cpu).unwrap();
        let (h, w) = (rng.tensor(&[n, hd], 3.0), rng.tensor(&[v, hd], 1.0));
        let got = ops::lm_head_logprobs(&h, &w, &t).unwrap();
        let want = reference::lm_head_logprobs(&h, &w, &t).unwrap();
        assert_close(
            &format!("lm_head_logprobs [{n}, {hd}] x [{v}, {hd}]"),
            &got,
            &want,
            TOL,
        );
    }
}

/// The differentiable log-probs (DPO, PPO) against log_softmax + gather of the product:
/// values, and the gradients of h and the head for a random weighting of the outputs; the
/// entropy against -sum p log p.
#[test]
fn lm_head_logprobs_train_and_entropy_match_composition() {
    let mut rng = Rng(14);
    for (n, hd, v) in [(7, 5, 13), (300, 32, 1000), (1, 3, 5)] {
        let targets: Vec<u32> = (0..n).map(|_| rng.below(v as u32)).collect();
        let t = Tensor::from_vec(targets, n, &Device::Cpu).unwrap();
        let (h0, w0) = (rng.tensor(&[n, hd], 3.0), rng.tensor(&[v, hd], 1.0));
        let coef = rng.tensor(&[n], 1.0);
        let (h, w) = (var(&h0), var(&w0));
        let lp = ops::lm_head_logprobs_train(&h, &w, &t).unwrap();
        let g = (&lp * &coef)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (hr, wr) = (var(&h0), var(&w0));
        let lpr = reference::lm_head_logprobs(&hr, &wr, &t).unwrap();
        let gr = (&lpr * &coef)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let what = format!("lm_head_logprobs_train [{n}, {hd}] x [{v}, {hd}]");
        assert_close(&format!("{what} value"), &lp, &lpr, TOL);
        assert_close(
            &format!("{what} dh"),
            g.get(&h).unwrap(),
            gr.get(&hr).unwrap(),
            TOL,
        );
        assert_close(
            &format!("{what} dw"),
            g.get(&w).unwrap(),
            gr.get(&wr).unwrap(),
            TOL,
        );
        let ent = ops::lm_head_entropy(&h0, &w0).unwrap();
        let ent_ref = reference::lm_head_entropy(&h0, &w0).unwrap();
        assert_close(&format!("{what} entropy"), &ent, &ent_ref, TOL);
    }
}

#[test]
fn frozen_matmul_matches_matmul_and_gives_the_weight_no_gradient() {
    let mut rng = Rng(14);
    for (n, inp, out) in [(7, 5, 3), (768, 128, 384), (1, 4, 9)] {
        let (x0, w) = (rng.tensor(&[n, inp], 1.0), rng.tensor(&[out, inp], 1.0));
        let r = rng.tensor(&[n, out], 1.0);
        let x = var(&x0);
        let y = ops::frozen_matmul(&x, &w).unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let xr = var(&x0);
        let yr = reference::linear(&xr, &w).unwrap();
        let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("frozen_matmul [{n}, {inp}] x [{out}, {inp}]");
        assert_close(&format!("{what} y"), &y, &yr, TOL);
        assert_close(
            &format!("{what} dx"),
            g.get(&x).unwrap(),
            gr.get(&xr).unwrap(),
            TOL,
        );
        assert!(
            g.get(&w).is_none(),
            "{what}: the frozen weight got a gradient"
        );
    }
}

/// The forward-only product with a weight kept transposed, [in, out], as
/// `Llama::keep_transposed_weights` stores it, against the reference on the [out, in] weight.
#[test]
fn matmul_t_matches_the_reference_on_the_untransposed_weight() {
    let mut rng = Rng(16);
    for (n, inp, out) in [(7, 5, 3), (300, 128, 384), (1, 4, 9)] {
        let (x, w) = (rng.tensor(&[n, inp], 1.0), rng.tensor(&[out, inp], 1.0));
        let wt = w.t().unwrap().contiguous().unwrap();
        let y = ops::matmul_t(&x, &wt).unwrap();
        let want = reference::linear(&x, &w).unwrap();
        assert_close(
            &format!("matmul_t [{n}, {inp}] x [{inp}, {out}]"),
            &y,
            &want,
            TOL,
        );
    }
    let x = var(&rng.tensor(&[2, 4], 1.0));
    let y = ops::matmul_t(&x, &rng.tensor(&[4, 3], 1.0)).unwrap();
    // Forward only: the result is cut from the graph, so callers use it only where nothing
    // takes a gradient.
    assert!(!y.track_op());
}

#[test]
fn linear_matches_matmul_and_gives_each_tracked_operand_a_contiguous_gradient() {
    let mut rng = Rng(15);
    for (n, inp, out) in [(7, 5, 3), (768, 128, 384), (1, 4, 9), (0, 3, 2)] {
        let (x0, w0) = (rng.tensor(&[n, inp], 1.0), rng.tensor(&[out, inp], 1.0));
        let r = rng.tensor(&[n, out], 1.0);
        let (x, w) = (var(&x0), var(&w0));
        let y = ops::linear(&x, &w).unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (xr, wr) = (var(&x0), var(&w0));
        let yr = reference::linear(&xr, &wr).unwrap();
        let gr = (&yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("linear [{n}, {inp}] x [{out}, {inp}]");
        assert_close(&format!("{what} y"), &y, &yr, TOL);
        for (name, a, b) in [("dx", &x, &xr), ("dw", &w, &wr)] {
            let d = g.get(a).unwrap();
            assert!(d.is_contiguous(), "{what} {name}: a strided gradient");
            assert_close(&format!("{what} {name}"), d, gr.get(b).unwrap(), TOL);
        }
        // A constant operand gets no gradient.
        let y = ops::linear(&x0, &w).unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&x0).is_none());
        assert_close(
            &format!("{what} dw, constant x"),
            g.get(&w).unwrap(),
            gr.get(&wr).unwrap(),
            TOL,
        );
    }
    assert!(ops::linear(&rng.tensor(&[2, 3], 1.0), &rng.tensor(&[4, 5], 1.0)).is_err());
}

#[test]
fn gemv_matches_a_double_precision_product_and_each_row_alone() {
    let mut rng = Rng(15);
    // Every tile shape (1, 2-3, 4-7 and 8+ rows of x), slices of 16 with and without a tail,
    // and outputs big enough to be split over the threads.
    for n in 1..=ops::GEMV_MAX_ROWS + 1 {
        for (inp, out) in [(1, 3), (15, 9), (16, 4), (17, 1), (100, 37), (384, 1536)] {
            let (x, w) = (rng.tensor(&[n, inp], 1.0), rng.tensor(&[out, inp], 1.0));
            let y = ops::gemv(&x, &w).unwrap();
            let (xv, wv) = (flat(&x), flat(&w));
            let want: Vec<f32> = (0..n * out)
                .map(|e| {
                    let (i, j) = (e / out, e % out);
                    (0..inp)
                        .map(|c| xv[i * inp + c] as f64 * wv[j * inp + c] as f64)
                        .sum::<f64>() as f32
                })
                .collect();
            let want = Tensor::from_vec(want, (n, out), &Device::Cpu).unwrap();
            let what = format!("gemv [{n}, {inp}] x [{out}, {inp}]");
            assert_close(&what, &y, &want, 1e-5);
            // A row's result does not depend on the rows decoded beside it (batched decoding
            // gives each sequence what it would get alone).
            for i in 0..n {
                let alone = ops::gemv(&x.narrow(0, i, 1).unwrap(), &w).unwrap();
                assert_eq!(
                    flat(&alone),
                    flat(&y.narrow(0, i, 1).unwrap()),
                    "{what}: row {i} alone"
                );
            }
        }
    }
    let x = var(&rng.tensor(&[1, 4], 1.0));
    let err = ops::gemv(&x, &rng.tensor(&[3, 4], 1.0)).unwrap_err();
    assert!(err.to_string().contains("inference only"), "{err}");
}

#[test]
fn head_loss_is_stable_for_huge_logits() {
    let dev = &Device::Cpu;
    // An identity head makes the hidden states the logits.
    let x = Tensor::new(&[[1000f32, 0.0, -1000.0], [-1e30, 1e30, 0.0]], dev).unwrap();
    let head = Tensor::eye(3, DType::F32, dev).unwrap();
    let t = Tensor::new(&[0u32, 1], dev).unwrap();
    let loss = ops::lm_head_loss(&x, &head, &t, None).unwrap();
    assert!(loss.to_scalar::<f32>().unwrap().abs() < 1e-6);
    let lp = flat(&ops::lm_head_logprobs(&x, &head, &t).unwrap());
    assert!(lp.iter().all(|v| v.abs() < 1e-6), "{lp:?}");
}

// ------------------------------------------------------------------------------ errors

#[test]
fn bad_inputs_are_errors_not_panics() {
    let dev = &Device::Cpu;
    let x64 = Tensor::zeros((2, 4), DType::F64, dev).unwrap();
    let x = Tensor::zeros((2, 4), DType::F32, dev).unwrap();
    let w = Tensor::ones(4, DType::F32, dev).unwrap();
    // Not f32: the reference composition runs instead of the kernel.
    assert_close(
        "rms_norm f64",
        &ops::rms_norm(&x64, &w.to_dtype(DType::F64).unwrap(), 1e-5)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap(),
        &ops::rms_norm(&x, &w, 1e-5).unwrap(),
        TOL,
    );
    assert!(ops::rms_norm(&x, &Tensor::ones(3, DType::F32, dev).unwrap(), 1e-5).is_err());
    let (cos, sin) = rope_tables(3, 4);
    let q = Tensor::zeros((1, 2, 3, 4), DType::F32, dev).unwrap();
    assert!(ops::rope(&q, &cos, &sin).is_ok());
    assert!(ops::rope(&q.to_dtype(DType::F64).unwrap(), &cos, &sin).is_ok());
    assert!(ops::rope(
        &Tensor::zeros((1, 2, 3, 5), DType::F32, dev).unwrap(),
        &cos,
        &sin
    )
    .is_err());
    assert!(ops::rope(
        &Tensor::zeros((1, 2, 4, 4), DType::F32, dev).unwrap(),
        &cos,
        &sin
    )
    .is_err());
    let (q1, k1) = (
        Tensor::zeros((1, 1, 4, 2), DType::F32, dev).unwrap(),
        Tensor::zeros((1, 1, 3, 2), DType::F32, dev).unwrap(),
    );
    assert!(ops::attention(&q1, &k1, &k1, 1.0, None).is_err()); // Tq > Tk
    let q2 = Tensor::zeros((2, 1, 3, 2), DType::F32, dev).unwrap();
    let bad_seg = Tensor::zeros((2, 3), DType::F32, dev).unwrap();
    assert!(ops::attention(&q2, &q2, &q2, 1.0, Some(&bad_seg)).is_err());
    let seg = Tensor::zeros((2, 3), DType::U32, dev).unwrap();
    assert!(ops::attention(&q2, &q2, &q2, 1.0, Some(&seg)).is_ok());
    assert!(ops::silu_mul(&x, &w).is_err());
    let head = Tensor::eye(4, DType::F32, dev).unwrap(); // logits = x
    let t = Tensor::new(&[1u32, 4], dev).unwrap(); // 4 is out of range for V = 4
    assert!(ops::lm_head_loss(&x, &head, &t, None).is_err());
    assert!(ops::lm_head_logprobs(&x, &head, &t).is_err());
    let t = Tensor::new(&[1u32, 3], dev).unwrap();
    assert!(ops::lm_head_loss(&x, &head, &t.to_dtype(DType::F32).unwrap(), None).is_err());
    assert!(ops::lm_head_loss(&x, &head, &t, Some(&w)).is_err()); // weights must be [N]
    assert!(ops::lm_head_loss(&x, &head, &t, None).is_ok());
}

// ------------------------------------------------------------------------------ threading

/// Forward values and gradients of every op on inputs big enough to be split over threads
/// (more than 32K elements of work).
fn all_ops_with_grads(seed: u64) -> Vec<(String, Tensor)> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let x = var(&rng.tensor(&[600, 96], 2.0));
    let w = var(&rng.tensor(&[96], 1.0));
    let q = var(&rng.tensor(&[8, 6, 40, 32], 1.0));
    let seg = Tensor::from_vec(
        segments(&mut rng, 8, 80, true).concat(),
        (8, 80),
        &Device::Cpu,
    )
    .unwrap();
    let h = var(&rng.tensor(&[300, 40], 2.0));
    let head = var(&rng.tensor(&[500, 40], 1.0));
    let targets: Vec<u32> = (0..300).map(|_| rng.below(500)).collect();
    let targets = Tensor::from_vec(targets, 300, &Device::Cpu).unwrap();
    let (cos, sin) = rope_tables(40, 32);
    let qkv = var(&rng.tensor(&[8, 40, 8, 32], 1.0));
    let seg40 = seg.narrow(1, 0, 40).unwrap();
    let roped = ops::rope_heads(&qkv, 6, &cos, &sin).unwrap();
    let ys = [
        ops::rms_norm(&x, &w, 1e-5).unwrap(),
        ops::rope(&q, &cos, &sin).unwrap(),
        ops::silu_mul(&x, &x.sin().unwrap()).unwrap(),
        ops::attention_packed(&roped, 4, 2, 0.2, Some(&seg40)).unwrap(),
        ops::silu_mul_packed(&x).unwrap(),
        ops::linear(&x, &x.narrow(0, 0, 50).unwrap()).unwrap(),
    ];
    let mut loss = ops::lm_head_loss(&h, &head, &targets, None).unwrap();
    for (k, y) in ys.iter().enumerate() {
        out.push((format!("y{k}"), y.clone()));
        let r = rng.tensor(y.dims(), 1.0);
        loss = (loss + (y * r).unwrap().sum_all().unwrap()).unwrap();
    }
    out.push(("loss".into(), loss.clone()));
    let g = loss.backward().unwrap();
    for (name, v) in [
        ("dx", &x),
        ("dw", &w),
        ("dq", &q),
        ("dh", &h),
        ("dhead", &head),
        ("dqkv", &qkv),
    ] {
        out.push((name.into(), g.get(v).unwrap().clone()));
    }
    out
}

#[test]
fn serial_and_parallel_kernels_agree() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| all_ops_with_grads(11))
    };
    let (one, many) = (run(1), run(3));
    for ((name, a), (_, b)) in one.iter().zip(&many) {
        // Row kernels give identical bits; only cross-row sums (loss, dw) may round differently.
        assert_close(&format!("{name}: 1 vs 3 threads"), b, a, 1e-6);
    }
}

#[test]
fn only_tracked_inputs_get_gradients() {
    let mut rng = Rng(12);
    let (g0, u0) = (rng.tensor(&[5, 9], 3.0), rng.tensor(&[5, 9], 1.0));
    let g = var(&g0);
    let y = ops::silu_mul(&g, &u0).unwrap(); // up is a constant
    let grads = y.sum_all().unwrap().backward().unwrap();
    let gr = var(&g0);
    let want = reference::silu_mul(&gr, &u0).unwrap().sum_all().unwrap();
    let want = want.backward().unwrap();
    assert_close("dgate", grads.get(&g).unwrap(), want.get(&gr).unwrap(), TOL);
    assert!(grads.get(&u0).is_none());
    // A trained norm weight on constant activations.
    let w = var(&rng.tensor(&[9], 1.0));
    let y = ops::rms_norm(&u0, &w, 1e-5).unwrap();
    let grads = (y * &g0).unwrap().sum_all().unwrap().backward().unwrap();
    let wr = var(w.as_tensor());
    let want = (rms_norm_ref(&u0, &wr, 1e-5) * &g0)
        .unwrap()
        .sum_all()
        .unwrap();
    let want = want.backward().unwrap();
    assert_close("dw", grads.get(&w).unwrap(), want.get(&wr).unwrap(), TOL);
    assert!(grads.get(&u0).is_none());
}

#[test]
fn lora_matmul_matches_the_composition_and_leaves_the_base_without_gradient() {
    let mut rng = Rng(15);
    for (n, inp, out, r, x_trains) in [
        (7, 5, 3, 2, true),
        (768, 128, 384, 8, true),
        (33, 16, 48, 4, false),
    ] {
        let (x0, w) = (rng.tensor(&[n, inp], 1.0), rng.tensor(&[out, inp], 1.0));
        let (a0, b0) = (rng.tensor(&[r, inp], 0.5), rng.tensor(&[out, r], 0.5));
        let res = rng.tensor(&[n, out], 1.0);
        let scale = 1.7;
        let (x, a, b) = (var(&x0), var(&a0), var(&b0));
        let xin = if x_trains {
            x.as_tensor().clone()
        } else {
            x0.clone()
        };
        let y = ops::lora_matmul(&xin, &w, &a, &b, scale).unwrap();
        let g = (&y * &res).unwrap().sum_all().unwrap().backward().unwrap();
        let (xr, ar, br) = (var(&x0), var(&a0), var(&b0));
        let xrin = if x_trains {
            xr.as_tensor().clone()
        } else {
            x0.clone()
        };
        let yr = reference::lora_matmul(&xrin, &w, &ar, &br, scale).unwrap();
        let gr = (&yr * &res).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("lora_matmul n {n} in {inp} out {out} r {r}");
        assert_close(&format!("{what} y"), &y, &yr, TOL);
        for (name, mine, theirs) in [("dA", &a, &ar), ("dB", &b, &br)] {
            assert_close(
                &format!("{what} {name}"),
                g.get(mine).unwrap(),
                gr.get(theirs).unwrap(),
                TOL,
            );
        }
        if x_trains {
            assert_close(
                &format!("{what} dx"),
                g.get(&x).unwrap(),
                gr.get(&xr).unwrap(),
                TOL,
            );
        } else {
            assert!(g.get(&x).is_none());
        }
        assert!(
            g.get(&w).is_none(),
            "{what}: the frozen weight got a gradient"
        );
    }
}

/// Rounds to bf16 and back.
fn bf16(t: &Tensor) -> Tensor {
    t.to_dtype(DType::BF16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

#[test]
fn reference_products_follow_autocast_as_the_kernels_do() {
    // The path a GPU runs: under autocast(Bf16) the reference products take bf16 operands (as
    // torch.autocast casts a matmul's inputs) and come back in f32; the fused kernels do the
    // same with f32 results, so the two agree to bf16's rounding of the result, and both stay
    // off the f32 product by far more than that.
    use wick_model::{autocast, Precision};
    let mut rng = Rng(23);
    let (x0, w0) = (rng.tensor(&[37, 48], 1.0), rng.tensor(&[29, 48], 1.0));
    let r = rng.tensor(&[37, 29], 1.0);
    let exact = bf16(&x0).matmul(&bf16(&w0).t().unwrap()).unwrap();
    let f32_product = x0.matmul(&w0.t().unwrap()).unwrap();
    let _bf16 = autocast(Precision::Bf16);
    let (x, w) = (var(&x0), var(&w0));
    let y = reference::linear(&x, &w).unwrap();
    assert_eq!(y.dtype(), DType::F32);
    // Operands rounded, the sum in f32, the result rounded once more: within 2^-8 relative.
    assert_close("reference linear vs bf16 operands", &y, &exact, 8e-3);
    assert_close("its rounding", &y, &bf16(&exact), 0.0);
    let gap = (&y - &f32_product)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(gap.to_scalar::<f32>().unwrap() > 1e-3, "rounded to bf16");
    let fused = ops::linear(&var(&x0), &var(&w0)).unwrap();
    assert_close("reference vs fused linear", &y, &fused, 8e-3);
    // The backward pass's products are bf16 too, and agree with the kernel's.
    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let (xf, wf) = (var(&x0), var(&w0));
    let gf = (&ops::linear(&xf, &wf).unwrap() * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let dx = g.get(&x).unwrap();
    assert_eq!(dx.dtype(), DType::F32);
    assert_close("dx", dx, gf.get(&xf).unwrap(), 8e-3);
    assert_close("dw", g.get(&w).unwrap(), gf.get(&wf).unwrap(), 8e-3);
    let dx_exact = bf16(&r).matmul(&bf16(&w0)).unwrap();
    assert_close("dx of bf16 operands", dx, &dx_exact, 8e-3);

    // Attention's two products and the output head's, against the kernels under the same scope.
    let (b, nh, nkv, t, hd) = (2, 4, 2, 9, 8);
    let (q0, k0, v0) = (
        rng.tensor(&[b, nh, t, hd], 1.5),
        rng.tensor(&[b, nkv, t, hd], 1.5),
        rng.tensor(&[b, nkv, t, hd], 1.0),
    );
    let yr = reference::attention(&q0, &k0, &v0, 0.35, None).unwrap();
    let yk = ops::attention(&q0, &k0, &v0, 0.35, None).unwrap();
    assert_close("attention under bf16", &yr, &yk, 2e-2);
    let y32 = {
        let _f32 = autocast(Precision::F32);
        reference::attention(&q0, &k0, &v0, 0.35, None).unwrap()
    };
    let gap = (&yr - &y32).unwrap().abs().unwrap().max_all().unwrap();
    assert!(gap.to_scalar::<f32>().unwrap() > 1e-4, "attention rounded");
    let h = rng.tensor(&[6, 48], 1.0);
    let head = rng.tensor(&[50, 48], 0.5);
    let targets = Tensor::from_vec(vec![1u32, 7, 49, 0, 3, 22], 6, &Device::Cpu).unwrap();
    let lr = reference::lm_head_loss(&h, &head, &targets, None).unwrap();
    let lk = ops::lm_head_loss(&h, &head, &targets, None).unwrap();
    assert_close("head loss under bf16", &lr, &lk, 2e-3);
}
