//! ppo-step on rollouts of a tiny model: the first iteration from the reference itself sees
//! no KL; an update makes rewarded responses more likely and penalised ones less; the value
//! head, optimiser state and iteration count carry over to the next step; LoRA steps leave
//! the base alone; bad rollouts and mismatched references are refused before anything is
//! written.

use std::path::Path;

use ppo_step::rollouts::{self, Rollout};
use ppo_step::step::{recompute, Options};
use ppo_step::value_head::ValueHead;
use serde_json::Value;
use wick_model::Llama;
use wick_rl::ppo::Hyper;
use wick_testkit::run;

const PPO: &str = env!("CARGO_BIN_EXE_ppo-step");

mod common;

use common::setup;

fn step(args: &[&str]) -> Value {
    let r = run(PPO, args, b"");
    assert_eq!(r.code, 0, "ppo-step {args:?}: {}", r.stderr);
    serde_json::from_str(r.stdout.trim()).unwrap()
}

fn opts() -> Options {
    Options {
        hyper: Hyper::default(),
        epochs: 1,
        minibatches: 1,
        lr: 0.0,
        temperature: 1.0,
        grad_clip: 1.0,
        batch_size: 4,
        seed: 1,
    }
}

/// Summed log-probs of each rollout's response under `model`.
fn response_logprobs(model: &Llama, rollouts: &[Rollout]) -> Vec<f64> {
    let v = ValueHead::zeros(model.config.hidden_size, &candle_core::Device::Cpu).unwrap();
    recompute(model, &v, model, rollouts, &opts())
        .unwrap()
        .rollouts
        .iter()
        .map(|r| r.logprobs.iter().sum())
        .collect()
}

#[test]
fn an_update_follows_the_rewards_and_carries_its_state_to_the_next_step() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, scored) = setup(tmp.path());
    let s = scored.to_str().unwrap();
    let out1 = tmp.path().join("p1");
    let o1 = out1.to_str().unwrap();
    let stats = step(&[
        "--model",
        &model,
        "--ref-model",
        &model,
        "-o",
        o1,
        "--lr",
        "3e-3",
        s,
        "-q",
    ]);
    // The policy is its reference: every KL estimate is exactly 0.
    assert_eq!(stats["kl"].as_f64().unwrap(), 0.0, "{stats}");
    assert_eq!(stats["iteration"], 1);
    assert_eq!(stats["score"].as_f64().unwrap(), 0.0);
    assert!(stats["entropy"].as_f64().unwrap() > 0.0);
    assert_eq!(stats["updates"].as_f64().unwrap(), 4.0);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "value_head.safetensors",
        "ppo_optimizer.safetensors",
        "ppo_state.json",
    ] {
        assert!(out1.join(f).is_file(), "{f} missing");
    }

    // Rewarded responses became more likely, penalised ones less.
    let rollouts = rollouts::read(&[s.to_string()], 64, 512, &[]).unwrap();
    let before = response_logprobs(&Llama::load(Path::new(&model)).unwrap(), &rollouts);
    let after = response_logprobs(&Llama::load(&out1).unwrap(), &rollouts);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if rollouts[i].reward > 0.0 {
            assert!(a > b, "rollout {i} (reward +1): log-prob {b} -> {a}");
        } else {
            assert!(a < b, "rollout {i} (reward -1): log-prob {b} -> {a}");
        }
    }

    // The next step starts from the first one's value head, moments and count.
    let out2 = tmp.path().join("p2");
    let stats2 = step(&[
        "--model",
        o1,
        "--ref-model",
        &model,
        "-o",
        out2.to_str().unwrap(),
        s,
        "-q",
    ]);
    assert_eq!(stats2["iteration"], 2);
    assert!(stats2["kl"].as_f64().unwrap() > 0.0, "{stats2}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("ppo_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["optimizer_steps"], 8);
    let v1 = ValueHead::load(&out1, 16, &candle_core::Device::Cpu)
        .unwrap()
        .unwrap();
    let w = v1
        .weight
        .as_tensor()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(w > 0.0, "the value head learned nothing");
}

#[test]
fn lora_steps_write_an_adapter_and_leave_the_base_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, scored) = setup(tmp.path());
    let s = scored.to_str().unwrap();
    let weights = std::fs::read(Path::new(&model).join("model.safetensors")).unwrap();
    let out1 = tmp.path().join("l1");
    let o1 = out1.to_str().unwrap();
    step(&[
        "--model",
        &model,
        "--ref-model",
        &model,
        "--method",
        "lora",
        "-o",
        o1,
        "--lr",
        "1e-2",
        s,
        "-q",
    ]);
    assert!(out1.join("adapter_config.json").is_file());
    assert!(out1.join("value_head.safetensors").is_file());
    assert!(!out1.join("model.safetensors").exists());
    let out2 = tmp.path().join("l2");
    let stats = step(&[
        "--model",
        &model,
        "--adapter",
        o1,
        "--ref-model",
        &model,
        "-o",
        out2.to_str().unwrap(),
        s,
        "-q",
    ]);
    assert_eq!(stats["iteration"], 2);
    assert!(stats["kl"].as_f64().unwrap() != 0.0, "{stats}");
    assert_eq!(
        weights,
        std::fs::read(Path::new(&model).join("model.safetensors")).unwrap()
    );
}

#[test]
fn bad_rollouts_and_references_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, scored) = setup(tmp.path());
    let lines: Vec<String> = std::fs::read_to_string(&scored)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let out = tmp.path().join("never");
    let o = out.to_str().unwrap();
    let check = |name: &str, edit: &dyn Fn(&mut Value), want: &str| {
        let mut v: Value = serde_json::from_str(&lines[2]).unwrap();
        edit(&mut v);
        let f = tmp.path().join(name);
        std::fs::write(&f, format!("{}\n{}\n{v}\n", lines[0], lines[1])).unwrap();
        let r = run(
            PPO,
            &[
                "--model",
                &model,
                "--ref-model",
                &model,
                "-o",
                o,
                f.to_str().unwrap(),
                "-q",
            ],
            b"",
        );
        assert_ne!(r.code, 0, "{name}");
        assert!(
            r.stderr.contains(&format!("{name}:3")) && r.stderr.contains(want),
            "{name}: {}",
            r.stderr
        );
        assert!(!out.exists(), "{name}: something was written");
    };
    check(
        "unscored.jsonl",
        &|v| {
            v.as_object_mut().unwrap().remove("reward");
        },
        "rm-score",
    );
    check(
        "long.jsonl",
        &|v| {
            v["response_ids"] = vec![5u32; 80].into();
        },
        "context",
    );
    check(
        "foreign.jsonl",
        &|v| {
            v["response_ids"] = vec![5000u32].into();
        },
        "vocabulary",
    );

    let other = tmp.path().join("other");
    wick_testkit::with_vocab(Path::new(&model), &other, 600);
    let r = run(
        PPO,
        &[
            "--model",
            &model,
            "--ref-model",
            other.to_str().unwrap(),
            "-o",
            o,
            scored.to_str().unwrap(),
            "-q",
        ],
        b"",
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("vocabulary"), "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn skip_invalid_passes_over_bad_rollouts_and_counts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, scored) = setup(tmp.path());
    let good = std::fs::read_to_string(&scored).unwrap();
    let f = tmp.path().join("mixed.jsonl");
    std::fs::write(&f, format!("not json\n{good}{{\"reward\": 1}}\n")).unwrap();
    let out = tmp.path().join("next");
    let args = |extra: &'static str| {
        let mut a = vec![
            "--model".to_string(),
            model.clone(),
            "--ref-model".into(),
            model.clone(),
            "-o".into(),
            out.to_str().unwrap().into(),
            f.to_str().unwrap().into(),
        ];
        a.push(extra.into());
        a
    };
    let r = run(
        PPO,
        &args("-q").iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
    );
    assert_ne!(r.code, 0, "a bad record stops the run by default");
    assert!(!out.exists());
    let r = run(
        PPO,
        &args("--skip-invalid")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("skipped 2 invalid records"),
        "{}",
        r.stderr
    );
    let stats: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(stats["rollouts"], good.lines().count());
}

#[test]
fn low_precision_steps_follow_the_rewards_and_fp16_carries_its_loss_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, scored) = setup(tmp.path());
    let s = scored.to_str().unwrap();
    let rollouts = rollouts::read(&[s.to_string()], 64, 512, &[]).unwrap();
    let before = response_logprobs(&Llama::load(Path::new(&model)).unwrap(), &rollouts);
    for p in ["bf16", "fp16"] {
        let out = tmp.path().join(p);
        let o = out.to_str().unwrap();
        let args = [
            "--model",
            &model,
            "--ref-model",
            &model,
            "-o",
            o,
            "--lr",
            "3e-3",
            "--precision",
            p,
            "--grad-checkpoint",
            s,
            "-q",
        ];
        let stats = step(&args);
        // Old and new log-probs come from the same precision: the policy is its reference.
        assert_eq!(stats["kl"].as_f64().unwrap(), 0.0, "{p}: {stats}");
        assert_eq!(stats["updates"].as_f64().unwrap(), 4.0, "{p}: {stats}");
        let after = response_logprobs(&Llama::load(&out).unwrap(), &rollouts);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let up = rollouts[i].reward > 0.0;
            assert!(up == (a > b), "{p}: rollout {i}: log-prob {b} -> {a}");
        }
        let state: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("ppo_state.json")).unwrap())
                .unwrap();
        if p == "fp16" {
            assert_eq!(stats["loss_scale"].as_f64(), Some(65536.0), "{stats}");
            assert_eq!(state["loss_scaler"]["growth_tracker"], 4, "{state}");
            let next = tmp.path().join("fp16-2");
            step(&[
                "--model",
                o,
                "--ref-model",
                &model,
                "-o",
                next.to_str().unwrap(),
                "--precision",
                p,
                s,
                "-q",
            ]);
            let state: Value = serde_json::from_str(
                &std::fs::read_to_string(next.join("ppo_state.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(
                state["loss_scaler"]["growth_tracker"], 8,
                "carried over: {state}"
            );
        } else {
            assert!(stats.get("loss_scale").is_none() && state.get("loss_scaler").is_none());
        }
    }
}

#[test]
fn the_device_path_updates_as_the_fused_kernels_do() {
    // WICK_REFERENCE_OPS=1 runs on the CPU what --device cuda runs (candle's own ops, AdamW
    // with tensor moments): the same statistics within float tolerance, for a full and a LoRA
    // update, the second one continuing from the first one's state.
    let tmp = tempfile::tempdir().unwrap();
    let (model, scored) = setup(tmp.path());
    let s = scored.to_str().unwrap();
    let stats = |name: &str, env: &[(&str, &str)], extra: &[&str]| -> Value {
        let out = tmp.path().join(name);
        let mut args = vec![
            "--model",
            &model,
            "--ref-model",
            &model,
            "--lr",
            "3e-3",
            "-q",
        ];
        let o = out.to_str().unwrap().to_string();
        args.extend(["-o", &o, s]);
        args.extend(extra);
        let r = wick_testkit::run_env(PPO, &args, env, b"");
        assert_eq!(r.code, 0, "ppo-step {args:?}: {}", r.stderr);
        serde_json::from_str(r.stdout.trim()).unwrap()
    };
    let reference = [("WICK_REFERENCE_OPS", "1")];
    for (method, extra) in [("full", &[][..]), ("lora", &["--method", "lora"][..])] {
        let a = stats(&format!("{method}-fused"), &[], extra);
        let b = stats(&format!("{method}-ref"), &reference, extra);
        for k in [
            "entropy",
            "pg_loss",
            "vf_loss",
            "loss",
            "approx_kl",
            "grad_norm",
        ] {
            let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                "{method} {k}: {x} vs {y}"
            );
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        let r = run(
            PPO,
            &[
                "--model",
                &model,
                "--ref-model",
                &model,
                "-o",
                "x",
                "--device",
                "cuda",
                s,
            ],
            b"",
        );
        assert_eq!(r.code, 1);
        assert_eq!(
            r.stderr.trim_end(),
            "ppo-step: --device cuda: this build has no CUDA support; build with --features cuda (make cuda)"
        );
    }
}
