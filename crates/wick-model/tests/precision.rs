//! Mixed precision and gradient checkpointing against the plain f32 pass, on the tiny fixture
//! models: checkpointed gradients equal the stored-activation ones (every method, every
//! precision), and bf16/fp16 products give the f32 loss and gradients within low-precision
//! tolerance while really rounding (they are not the f32 numbers).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use wick_model::{autocast, BottleneckConfig, Llama, Precision};

#[derive(Clone, Copy, Debug)]
enum Method {
    Full,
    /// LoRA with B moved off zero and dropout on (masks keyed, so a recomputation draws the same).
    Lora,
    Bottleneck,
}

fn model(method: Method) -> Llama {
    let mut m = Llama::load(&wick_testkit::testdata("models/llama-bias")).unwrap();
    match method {
        Method::Full => {}
        Method::Lora => {
            let cfg = wick_model::lora::LoraConfig {
                r: 4,
                alpha: 8.0,
                rslora: false,
                dropout: 0.1,
                targets: wick_model::lora::TARGETS.map(String::from).to_vec(),
            };
            m.add_lora(&cfg, 3).unwrap();
            nudge_adapter(&mut m, "lora_B");
            m.set_dropout_key(Some(42));
        }
        Method::Bottleneck => {
            let c = m.config.hidden_size;
            m.add_bottleneck(&BottleneckConfig::new(c, 4), 5).unwrap();
            nudge_adapter(&mut m, "up");
        }
    }
    m
}

/// Adapters start as the identity (a zero up/B projection), which would give the tensors
/// before them no gradient: move them off zero.
fn nudge_adapter(m: &mut Llama, zero_part: &str) {
    let moved: HashMap<String, Tensor> = m
        .adapter_tensors()
        .into_iter()
        .map(|(n, t)| {
            let t = if n.contains(zero_part) {
                let k = t.elem_count();
                let v: Vec<f32> = (0..k)
                    .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.01)
                    .collect();
                Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
            } else {
                t
            };
            (n, t)
        })
        .collect();
    m.set_adapter_tensors(&moved).unwrap();
}

fn batch() -> Tensor {
    // Two rows of 17 ids below the fixture's vocabulary of 64.
    let ids: Vec<u32> = (0..34u32).map(|i| (i * 7 + 3) % 61).collect();
    Tensor::from_vec(ids, (2, 17), &Device::Cpu).unwrap()
}

/// The loss and every trainable tensor's gradient, in a fixed order.
fn loss_and_grads(
    method: Method,
    p: Precision,
    checkpoint: bool,
    segments: bool,
) -> (f32, Vec<(String, Vec<f32>)>) {
    let mut m = model(method);
    let vars = match method {
        Method::Full => m.make_trainable().unwrap(),
        _ => m.make_adapter_trainable().unwrap(),
    };
    m.set_grad_checkpoint(checkpoint);
    let _autocast = autocast(p);
    let x = batch();
    let seg = segments.then(|| {
        let s: Vec<u32> = (0..32u32).map(|i| u32::from(i % 16 >= 9)).collect();
        Tensor::from_vec(s, (2, 16), &Device::Cpu).unwrap()
    });
    let loss = wick_model::lm_loss(&m, &x, None, seg.as_ref()).unwrap();
    let grads = m.backward(&loss).unwrap();
    let out = vars
        .iter()
        .map(|(name, v)| {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| {
                panic!("{method:?} {p} checkpoint {checkpoint}: {name} has no gradient")
            });
            (name.clone(), g.flatten_all().unwrap().to_vec1().unwrap())
        })
        .collect();
    (loss.to_scalar().unwrap(), out)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn flat(g: &[(String, Vec<f32>)]) -> Vec<f32> {
    g.iter().flat_map(|(_, v)| v.iter().copied()).collect()
}

#[test]
fn checkpointed_gradients_equal_the_stored_activation_ones() {
    for method in [Method::Full, Method::Lora, Method::Bottleneck] {
        for p in [Precision::F32, Precision::Bf16, Precision::F16] {
            for segments in [false, true] {
                let (l0, g0) = loss_and_grads(method, p, false, segments);
                let (l1, g1) = loss_and_grads(method, p, true, segments);
                let what = format!("{method:?} {p} segments {segments}");
                assert_eq!(l0, l1, "{what}: the loss");
                assert_eq!(g0.len(), g1.len());
                for ((name, a), (_, b)) in g0.iter().zip(&g1) {
                    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
                    let gap = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(
                        gap <= 1e-5 * scale,
                        "{what}: {name} differs by {gap} (max |g| {scale})"
                    );
                }
            }
        }
    }
}

#[test]
fn low_precision_products_give_the_f32_loss_and_gradients_within_tolerance() {
    for method in [Method::Full, Method::Lora, Method::Bottleneck] {
        let (l32, g32) = loss_and_grads(method, Precision::F32, false, false);
        for p in [Precision::Bf16, Precision::F16] {
            let (l, g) = loss_and_grads(method, p, false, false);
            // bf16 keeps 8 bits of mantissa, fp16 11: relative loss error well under 1%.
            let tol = if p == Precision::Bf16 { 5e-3 } else { 1e-3 };
            assert!(
                ((l - l32) / l32).abs() < tol,
                "{method:?} {p}: loss {l} vs f32 {l32}"
            );
            assert_ne!(l, l32, "{method:?} {p}: the products were not rounded");
            let c = cosine(&flat(&g), &flat(&g32));
            assert!(c >= 0.99, "{method:?} {p}: gradient cosine {c}");
            for ((name, a), (_, b)) in g.iter().zip(&g32) {
                let c = cosine(a, b);
                assert!(c >= 0.99, "{method:?} {p}: {name} cosine {c}");
            }
        }
    }
}

/// Log-probs of the next token at every position of the batch.
fn logprobs(m: &Llama) -> Vec<f32> {
    let x = batch();
    let logits = m.forward(&x).unwrap();
    wick_model::log_softmax(&logits)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn a_model_kept_in_bf16_or_f16_holds_its_matrices_so_and_scores_like_f32() {
    use candle_core::DType;
    let dir = wick_testkit::testdata("models/llama-bias");
    let m32 = Llama::load(&dir).unwrap();
    let want = logprobs(&m32);
    // The weights themselves are rounded (bf16 keeps 8 bits, f16 11): over 64 tokens of random
    // weights the worst log-prob moves by up to ~0.1 in bf16.
    for (dt, tol) in [(DType::BF16, 0.25), (DType::F16, 0.03)] {
        let m = Llama::load_as(&dir, Some(dt)).unwrap();
        assert_eq!(m.dtype(), dt);
        let kept: Vec<DType> = m.named_tensors().iter().map(|(_, t)| t.dtype()).collect();
        assert!(kept.contains(&dt) && kept.contains(&DType::F32), "{kept:?}");
        for (n, t) in m.named_tensors() {
            let expect = if t.rank() == 2 { dt } else { DType::F32 };
            assert_eq!(t.dtype(), expect, "{n}");
        }
        let got = logprobs(&m);
        let gap = got
            .iter()
            .zip(&want)
            .fold(0f32, |g, (a, b)| g.max((a - b).abs()));
        eprintln!("{dt:?}: worst log-prob gap {gap}");
        assert!(gap < tol, "{dt:?}: log-probs differ by {gap}");
        assert!(gap > 0.0, "{dt:?}: the products were not in {dt:?}");
        // Decoding a row at a time takes the few-rows path; it must agree with the batch.
        let x = batch().narrow(0, 0, 1).unwrap().narrow(1, 0, 1).unwrap();
        let one = m
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let all = m.forward(&batch()).unwrap();
        let first = all
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let gap = one
            .iter()
            .zip(&first)
            .fold(0f32, |g, (a, b)| g.max((a - b).abs()));
        assert!(gap < 1e-4, "{dt:?}: one row vs the batch: {gap}");
    }
    // The checkpoint's own dtype by default: an f32 fixture stays f32.
    assert_eq!(Llama::load_as(&dir, None).unwrap().dtype(), DType::F32);
}

/// Per-token log-probs of each of the fixture's sequences (alone, as transformers scored them).
fn fixture_logprobs(m: &Llama, ids: &[Vec<u32>]) -> Vec<Vec<f32>> {
    ids.iter()
        .map(|row| {
            let x = Tensor::from_vec(row.clone(), (1, row.len()), &Device::Cpu).unwrap();
            let lp = wick_model::log_softmax(&m.forward(&x).unwrap())
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            (0..row.len() - 1)
                .map(|t| lp[t][row[t + 1] as usize])
                .collect()
        })
        .collect()
}

#[test]
fn a_bf16_checkpoint_scores_as_transformers_does_in_bf16() {
    use candle_core::DType;
    let dir = wick_testkit::testdata("models/llama-bf16");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(r["input_ids"].clone()).unwrap();
    let want = |k: &str| -> Vec<Vec<f32>> { serde_json::from_value(r[k].clone()).unwrap() };
    let gap = |a: &[Vec<f32>], b: &[Vec<f32>]| {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .fold(0f32, |g, (x, y)| g.max((x - y).abs()))
    };
    let mean = |v: &[f32]| v.iter().map(|&x| -x as f64).sum::<f64>() / v.len() as f64;
    // auto: the checkpoint's own dtype, without a widened copy.
    let m = Llama::load_as(&dir, None).unwrap();
    assert_eq!((m.dtype(), m.stored_dtype()), (DType::BF16, DType::BF16));
    let got = {
        let _products = autocast(Precision::Bf16);
        fixture_logprobs(&m, &ids)
    };
    let (hf16, hf32) = (want("logprobs_bf16"), want("logprobs_f32"));
    // transformers rounds every activation to bf16, wick only the products' operands: both
    // are within bf16's rounding of the f32 numbers (transformers' own bf16-vs-f32 worst is
    // 0.066 here), and the sequences' mean NLL within 2^-8 relative.
    let g = gap(&got, &hf16);
    assert!(
        g < 0.1,
        "bf16 log-probs vs transformers' bf16: worst gap {g}"
    );
    for (i, (a, b)) in got.iter().zip(&hf16).enumerate() {
        let (a, b) = (mean(a), mean(b));
        assert!(
            (a - b).abs() < b * 2f64.powi(-8),
            "sequence {i}: NLL {a} vs {b}"
        );
    }
    assert!(gap(&got, &hf32) > 1e-4, "computed in f32, not bf16");
    // The same weights widened to f32 give transformers' f32 numbers.
    let m32 = Llama::load_as(&dir, Some(DType::F32)).unwrap();
    let g = gap(&fixture_logprobs(&m32, &ids), &hf32);
    assert!(g < 1e-4, "f32 log-probs vs transformers: worst gap {g}");
}

#[test]
fn a_bf16_model_decodes_transformers_bf16_greedy_continuation() {
    use wick_model::generation::{generate, Sampling, Uniform};
    struct Never;
    impl Uniform for Never {
        fn uniform(&mut self) -> f64 {
            unreachable!("greedy decoding draws nothing")
        }
    }
    let dir = wick_testkit::testdata("models/llama-bf16");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let g = &r["greedy_bf16"];
    let prompt: Vec<u32> = serde_json::from_value(g["prompt"].clone()).unwrap();
    let want: Vec<u32> = serde_json::from_value(g["tokens"].clone()).unwrap();
    let m = Llama::load_as(&dir, None).unwrap();
    let _products = autocast(Precision::Bf16);
    for no_cache in [false, true] {
        let s = Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            max_new_tokens: want.len(),
            no_cache,
        };
        // EOS ignored, as the fixture's generate() was told.
        let out = generate(&m, &prompt, &s, &[], &mut Never).unwrap();
        assert_eq!(out.ids, want, "no_cache {no_cache}");
    }
}
