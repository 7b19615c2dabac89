//! One AdamW step of wick against torch.optim.AdamW on the same tiny model and batch
//! (testdata/models/llama-gqa/adamw_step.json and after_adamw.safetensors, written by
//! scripts/gen_tiny_llama.py), and gradient coverage of every parameter.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde_json::Value;
use wick_model::{lm_loss, Llama};
use wick_train::{AdamW, AdamWConfig};

fn fixture() -> (std::path::PathBuf, Value) {
    let dir = wick_testkit::testdata("models/llama-gqa");
    let v = serde_json::from_str(&std::fs::read_to_string(dir.join("adamw_step.json")).unwrap())
        .unwrap();
    (dir, v)
}

fn batch(v: &Value) -> Tensor {
    let rows: Vec<u32> = v["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
        })
        .collect();
    Tensor::from_vec(rows, (2, 12), &Device::Cpu).unwrap()
}

fn first8(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[..8].to_vec()
}

fn close(got: &[f32], want: &Value, tol: f32, what: &str) {
    for (g, w) in got.iter().zip(want.as_array().unwrap()) {
        let w = w.as_f64().unwrap() as f32;
        assert!((g - w).abs() <= tol, "{what}: got {got:?}, want {want}");
    }
}

#[test]
fn one_step_matches_torch_adamw() {
    let (dir, fx) = fixture();
    let mut model = Llama::load(&dir).unwrap();
    let vars = model.make_trainable().unwrap();
    let mut opt = AdamW::new(
        vars,
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            decay_all: false,
        },
    )
    .unwrap();
    let x = batch(&fx);
    let loss = lm_loss(&model, &x, None, None).unwrap();
    let before: f32 = loss.to_scalar().unwrap();
    assert!(
        (before - fx["loss_before"].as_f64().unwrap() as f32).abs() < 1e-5,
        "{before}"
    );
    let grads = opt.grads(&loss.backward().unwrap());
    let norm = AdamW::global_norm(&grads).unwrap();
    assert!(
        (norm - fx["grad_global_l2_norm"].as_f64().unwrap()).abs() < 1e-4,
        "{norm}"
    );
    let names: Vec<String> = opt.names().map(String::from).collect();
    for (name, want) in fx["tensors"].as_object().unwrap() {
        let i = names.iter().position(|n| n == name).unwrap();
        close(
            &first8(grads.0[i].as_ref().unwrap()),
            &want["grad_first8"],
            1e-5,
            name,
        );
    }
    opt.update(&grads, 1e-3, 1.0).unwrap();
    // Every tensor against torch's, not just the three sampled in the JSON.
    let after =
        candle_core::safetensors::load(dir.join("after_adamw.safetensors"), &Device::Cpu).unwrap();
    let mut worst = 0f32;
    for (name, t) in model.named_tensors() {
        let want = &after[&name];
        let d: f32 = (t - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        worst = worst.max(d);
    }
    assert!(
        worst < 2e-6,
        "largest difference from torch after the step: {worst}"
    );
    for (name, want) in fx["tensors"].as_object().unwrap() {
        let t = &model
            .named_tensors()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1;
        close(&first8(t), &want["after_first8"], 2e-6, name);
    }
    let after_loss: f32 = lm_loss(&model, &x, None, None)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((after_loss - fx["loss_after"].as_f64().unwrap() as f32).abs() < 1e-4);
}

#[test]
fn optimiser_state_round_trips_and_steps_identically() {
    let (dir, fx) = fixture();
    let x = batch(&fx);
    let run = |steps: usize, restore_after: Option<usize>| -> Vec<f32> {
        let mut model = Llama::load(&dir).unwrap();
        let mut opt = AdamW::new(model.make_trainable().unwrap(), AdamWConfig::default()).unwrap();
        let mut losses = vec![];
        for s in 0..steps {
            if Some(s) == restore_after {
                // Rebuild model and optimiser from saved tensors, as a resume does.
                let weights = model.named_tensors().into_iter().collect();
                let state = opt.state_tensors().unwrap();
                let step = opt.step;
                let mut fresh = Llama::load(&dir).unwrap();
                fresh.set_tensors(&weights).unwrap();
                let mut o =
                    AdamW::new(fresh.make_trainable().unwrap(), AdamWConfig::default()).unwrap();
                o.load_state(&state, step).unwrap();
                model = fresh;
                opt = o;
            }
            let loss = lm_loss(&model, &x, None, None).unwrap();
            losses.push(loss.to_scalar::<f32>().unwrap());
            let g = opt.grads(&loss.backward().unwrap());
            opt.update(&g, 1e-3, 0.5).unwrap();
        }
        losses
    };
    let straight = run(4, None);
    let resumed = run(4, Some(2));
    assert_eq!(straight, resumed, "bit-identical after restoring the state");
    assert!(straight[3] < straight[0]);
}

#[test]
fn every_parameter_receives_a_gradient() {
    for name in ["llama-gqa", "llama-tied", "qwen2-bias"] {
        let dir = wick_testkit::testdata(&format!("models/{name}"));
        let mut model = Llama::load(&dir).unwrap();
        let vars = model.make_trainable().unwrap();
        let x = Tensor::from_vec(
            (0..26u32).map(|i| (i * 7 + 3) % 64).collect(),
            (2, 13),
            &Device::Cpu,
        )
        .unwrap();
        let loss = lm_loss(&model, &x, None, None).unwrap();
        // Training fuses the q/k/v and gate/up products (with their biases for qwen2-bias);
        // evaluation runs them apart, the path checked against transformers.
        let train_loss: f32 = loss.to_scalar().unwrap();
        let eval_loss = wick_model::lm_eval_loss(&model, &x, None, None).unwrap();
        assert!(
            (train_loss - eval_loss).abs() < 1e-5,
            "{name}: training loss {train_loss}, evaluation loss {eval_loss}"
        );
        let store = loss.backward().unwrap();
        for (n, v) in &vars {
            let g = store
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: {n} has no gradient"));
            let m: f32 = g.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(m > 0.0, "{name}: {n} has an all-zero gradient");
        }
        assert!(vars.iter().any(|(n, _)| n.ends_with("norm.weight")));
    }
}

/// The largest |a - b| over two tensors' values.
fn max_gap(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn tensor_moments_update_as_the_cpu_pass_does() {
    // The path of parameters on a GPU (moments as tensors, candle ops), here on the CPU,
    // against the fused CPU pass: the same weights and moments after every step, with weight
    // decay, clipping and a parameter without a gradient; and the state saved by either loads
    // into the other.
    let (dir, fx) = fixture();
    let x = batch(&fx);
    let config = AdamWConfig {
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let mut cpu_model = Llama::load(&dir).unwrap();
    let mut dev_model = Llama::load(&dir).unwrap();
    let mut cpu = AdamW::new(cpu_model.make_trainable().unwrap(), config).unwrap();
    let mut dev = AdamW::with_tensor_moments(dev_model.make_trainable().unwrap(), config).unwrap();
    for step in 0..4 {
        let mut grads = Vec::new();
        for (model, opt) in [(&cpu_model, &cpu), (&dev_model, &dev)] {
            let loss = lm_loss(model, &x, None, None).unwrap();
            let mut g = opt.grads(&loss.backward().unwrap());
            // A parameter without a gradient this step is left alone (its moments too).
            g.0[1] = None;
            grads.push(g);
        }
        let norms = grads.iter().map(|g| AdamW::global_norm(g).unwrap());
        let norms: Vec<f64> = norms.collect();
        assert_eq!(norms[0], norms[1], "step {step}: the same gradients");
        cpu.update(&grads[0], 1e-3, 0.7).unwrap();
        dev.update(&grads[1], 1e-3, 0.7).unwrap();
        let (a, b) = (cpu_model.named_tensors(), dev_model.named_tensors());
        for ((name, ta), (_, tb)) in a.iter().zip(&b) {
            let gap = max_gap(ta, tb);
            assert!(gap <= 1e-6, "step {step}: {name} differs by {gap}");
        }
        let (sa, sb) = (cpu.state_tensors().unwrap(), dev.state_tensors().unwrap());
        assert_eq!(sa.len(), sb.len());
        for (k, ta) in &sa {
            let gap = max_gap(ta, &sb[k]);
            assert!(gap <= 1e-6, "step {step}: {k} differs by {gap}");
        }
    }
    assert_eq!(cpu.len(), dev.len());
    assert_eq!(cpu.nonfinite().unwrap(), None);
    assert_eq!(dev.nonfinite().unwrap(), None);
    // Either optimiser's state resumes in the other.
    let (cpu_state, dev_state, step) = (
        cpu.state_tensors().unwrap(),
        dev.state_tensors().unwrap(),
        cpu.step,
    );
    let mut m1 = Llama::load(&dir).unwrap();
    let mut into_dev = AdamW::with_tensor_moments(m1.make_trainable().unwrap(), config).unwrap();
    into_dev.load_state(&cpu_state, step).unwrap();
    let mut m2 = Llama::load(&dir).unwrap();
    let mut into_cpu = AdamW::new(m2.make_trainable().unwrap(), config).unwrap();
    into_cpu.load_state(&dev_state, step).unwrap();
    for (k, t) in into_dev.state_tensors().unwrap() {
        assert_eq!(max_gap(&t, &cpu_state[&k]), 0.0, "{k}");
    }
    for (k, t) in into_cpu.state_tensors().unwrap() {
        assert_eq!(max_gap(&t, &dev_state[&k]), 0.0, "{k}");
    }
    assert!(into_dev.load_state(&HashMap::new(), 0).is_err());
}

#[test]
fn tensor_moments_report_non_finite_values() {
    let (dir, fx) = fixture();
    let mut model = Llama::load(&dir).unwrap();
    let mut opt =
        AdamW::with_tensor_moments(model.make_trainable().unwrap(), AdamWConfig::default())
            .unwrap();
    let loss = lm_loss(&model, &batch(&fx), None, None).unwrap();
    let mut g = opt.grads(&loss.backward().unwrap());
    // An infinite gradient makes the second moment of that parameter infinite.
    let first = g.0[0].as_ref().unwrap();
    g.0[0] = Some((first.ones_like().unwrap() * f64::INFINITY).unwrap());
    opt.update(&g, 1e-3, 1.0).unwrap();
    let what = opt.nonfinite().unwrap().expect("caught");
    let name = opt.names().next().unwrap().to_string();
    assert!(what.starts_with(&name), "{what}");
}
