//! `train --precision` and `--grad-checkpoint` end to end on Shakespeare with the tiny preset:
//! bf16 and fp16 runs follow the f32 run's losses within tolerance, checkpointing changes no
//! number, a forced fp16 overflow is skipped by the loss scaler (that step alone), and bf16 and
//! fp16 runs stopped and resumed reproduce the uninterrupted ones bit for bit.

use std::path::Path;

use serde_json::Value;
use wick_testkit::{run, run_env, shakespeare_shards};

mod common;

use common::{losses, metrics, TRAIN};

fn args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--data",
        data,
        "--config",
        "tiny",
        "-o",
        out,
        "--batch-size",
        "8",
        "--seq-len",
        "32",
        "--lr",
        "3e-3",
        "--warmup",
        "5",
        "--max-steps",
        "16",
        "--eval-interval",
        "8",
        "--eval-batches",
        "2",
        "--threads",
        "1",
        "--quiet",
    ];
    a.extend_from_slice(extra);
    a
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Vec<Value> {
    let r = run(
        TRAIN,
        &args(data.to_str().unwrap(), out.to_str().unwrap(), extra),
        b"",
    );
    assert_eq!(r.code, 0, "train {extra:?}: {}", r.stderr);
    metrics(out)
}

fn loss_values(m: &[Value]) -> Vec<f64> {
    m.iter().filter_map(|v| v.get("loss")?.as_f64()).collect()
}

#[test]
fn bf16_and_fp16_follow_f32_and_checkpointing_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let t = tmp.path();
    let f32_run = train(&data, &t.join("f32"), &[]);
    let f32_ckpt = train(&data, &t.join("f32-ckpt"), &["--grad-checkpoint"]);
    assert_eq!(
        losses(&f32_run),
        losses(&f32_ckpt),
        "recomputation must not change the numbers"
    );
    let reference = loss_values(&f32_run);
    assert_eq!(reference.len(), 16);
    for p in ["bf16", "fp16"] {
        let m = train(&data, &t.join(p), &["--precision", p, "--grad-checkpoint"]);
        let l = loss_values(&m);
        assert_eq!(l.len(), 16, "{p}: every step trained");
        // The same trajectory: the first loss (the same weights) within 1%, and every later
        // one within 3% of f32's (rounding differences compound over 16 updates).
        assert!(
            ((l[0] - reference[0]) / reference[0]).abs() < 0.01,
            "{p}: first loss {} vs f32 {}",
            l[0],
            reference[0]
        );
        for (i, (a, b)) in l.iter().zip(&reference).enumerate() {
            assert!(
                ((a - b) / b).abs() < 0.03,
                "{p}: step {} loss {a} vs f32 {b}",
                i + 1
            );
        }
        assert_ne!(l, reference, "{p}: the products were rounded");
        let run_json: Value =
            serde_json::from_str(&std::fs::read_to_string(t.join(p).join("run.json")).unwrap())
                .unwrap();
        assert_eq!(run_json["settings"]["precision"], p, "{run_json}");
        let scaled = m.iter().any(|v| v.get("loss_scale").is_some());
        assert_eq!(
            scaled,
            p == "fp16",
            "{p}: loss_scale is logged for fp16 only"
        );
        assert!(
            m.iter().all(|v| v.get("skipped").is_none()),
            "{p}: no step skipped"
        );
    }
}

#[test]
fn a_forced_fp16_overflow_skips_that_step_and_halves_the_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let (plain, forced) = (tmp.path().join("plain"), tmp.path().join("forced"));
    let (d, o) = (data.to_str().unwrap(), forced.to_str().unwrap());
    train(&data, &plain, &["--precision", "fp16"]);
    let r = run_env(
        TRAIN,
        &args(d, o, &["--precision", "fp16"]),
        &[("WICK_FP16_OVERFLOW_AT", "5")],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (mp, mf) = (metrics(&plain), metrics(&forced));
    let steps = |m: &[Value]| -> Vec<Value> {
        m.iter()
            .filter(|v| v.get("loss").is_some())
            .cloned()
            .collect()
    };
    let (sp, sf) = (steps(&mp), steps(&mf));
    assert_eq!(sp.len(), sf.len());
    let skipped: Vec<u64> = sf
        .iter()
        .filter(|v| v.get("skipped").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(skipped, [5], "exactly the forced step is skipped");
    let scale = |v: &Value| v["loss_scale"].as_f64().unwrap();
    assert!(sf[..5].iter().all(|v| scale(v) == 65536.0));
    assert!(
        sf[5..].iter().all(|v| scale(v) == 32768.0),
        "backed off once"
    );
    // Up to the forced step the runs are the same; step 6 starts from step 4's weights in
    // the forced run, so its loss is step 5's of the plain run on other data: they differ.
    assert_eq!(losses(&mp)[..5], losses(&mf)[..5]);
    assert_ne!(losses(&mp)[5..], losses(&mf)[5..]);
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(forced.join("checkpoint/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["overflow_skipped"], 1);
    assert_eq!(state["loss_scaler"]["scale"], 32768.0);
    assert_eq!(state["skipped"], 0, "not counted against --skip-nonfinite");
}

#[test]
fn bf16_and_fp16_runs_resume_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    for p in ["bf16", "fp16"] {
        let (a, b) = (
            tmp.path().join(format!("{p}-a")),
            tmp.path().join(format!("{p}-b")),
        );
        train(&data, &a, &["--precision", p]);
        train(&data, &b, &["--precision", p, "--stop-at", "11"]);
        let resume = |extra: &[&str]| {
            let mut v = vec!["--data", d, "--resume", b.to_str().unwrap(), "--quiet"];
            v.extend_from_slice(extra);
            run(TRAIN, &v, b"")
        };
        let refused = resume(&["--precision", "f32"]);
        assert_ne!(refused.code, 0);
        assert!(
            refused.stderr.contains("keeps the run's --precision"),
            "{}",
            refused.stderr
        );
        let r = resume(&["--threads", "1", "--grad-checkpoint"]);
        assert_eq!(r.code, 0, "{p}: {}", r.stderr);
        assert_eq!(
            losses(&metrics(&a)),
            losses(&metrics(&b)),
            "{p}: same losses"
        );
        let wa = std::fs::read(a.join("model.safetensors")).unwrap();
        let wb = std::fs::read(b.join("model.safetensors")).unwrap();
        assert!(wa == wb, "{p}: final weights differ");
    }
}

/// The dtype of every tensor of a safetensors file, by name.
fn dtypes(file: &Path) -> Vec<(String, candle_core::DType)> {
    let t = candle_core::safetensors::load(file, &candle_core::Device::Cpu).unwrap();
    let mut v: Vec<_> = t.into_iter().map(|(n, t)| (n, t.dtype())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn a_run_from_a_bf16_checkpoint_trains_f32_masters_and_saves_bf16() {
    use candle_core::DType;
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let base = wick_testkit::testdata("models/llama-bf16");
    let run_from = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "--data",
            data.to_str().unwrap(),
            "--model",
            base.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--batch-size",
            "4",
            "--seq-len",
            "32",
            "--max-steps",
            "4",
            "--eval-interval",
            "2",
            "--eval-batches",
            "1",
            "--threads",
            "1",
            "--quiet",
        ];
        a.extend_from_slice(extra);
        let r = run(TRAIN, &a, b"");
        assert_eq!(r.code, 0, "{}", r.stderr);
    };
    let (auto, f32_out) = (tmp.path().join("auto"), tmp.path().join("f32"));
    run_from(&auto, &[]);
    let all = |v: Vec<(String, DType)>, d: DType| v.iter().all(|(_, x)| *x == d);
    assert!(all(dtypes(&auto.join("model.safetensors")), DType::BF16));
    assert!(all(
        dtypes(&auto.join("best/model.safetensors")),
        DType::BF16
    ));
    // The checkpoint keeps the f32 masters: the updates were not rounded away.
    assert!(all(
        dtypes(&auto.join("checkpoint/model.safetensors")),
        DType::F32
    ));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(auto.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["dtype"], "bfloat16");
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(auto.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        settings["settings"]["save_dtype"], "bf16",
        "auto resolved at the start"
    );
    let m = wick_model::Llama::load_as(&auto, None).unwrap();
    assert_eq!(m.dtype(), DType::BF16);
    run_from(&f32_out, &["--save-dtype", "f32"]);
    assert!(all(dtypes(&f32_out.join("model.safetensors")), DType::F32));
    // The same training either way: the f32 folder rounds to the bf16 one.
    let (a, b) = (
        candle_core::safetensors::load(auto.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap(),
        candle_core::safetensors::load(
            f32_out.join("model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap(),
    );
    for (name, t) in &a {
        let rounded = b[name].to_dtype(DType::BF16).unwrap();
        let same = t
            .eq(&rounded)
            .unwrap()
            .min_all()
            .unwrap()
            .to_scalar::<u8>()
            .unwrap();
        assert_eq!(same, 1, "{name}");
    }
}

#[test]
fn every_task_and_method_trains_in_bf16_and_fp16_with_checkpointing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = common::base(t);
    let sft = wick_testkit::sft_shards(&t.join("sft"));
    let pref = wick_testkit::testdata("pref/train.jsonl");
    let pairs = t.join("pairs.jsonl");
    let some: Vec<String> = std::fs::read_to_string(pref)
        .unwrap()
        .lines()
        .take(24)
        .map(String::from)
        .collect();
    std::fs::write(&pairs, some.join("\n") + "\n").unwrap();
    let (sft, pairs) = (sft.to_str().unwrap(), pairs.to_str().unwrap());
    let cases: [(&str, &str, &str, &[&str]); 4] = [
        ("sft", "lora", sft, &["--seq-len", "256"]),
        ("sft", "adapter", sft, &["--seq-len", "256"]),
        ("reward", "full", pairs, &[]),
        ("dpo", "lora", pairs, &["--ref-model", &base]),
    ];
    for (task, method, data, extra) in cases {
        let run_in = |p: &str, ckpt: bool| -> Vec<f64> {
            let out = t.join(format!("{task}-{method}-{p}-{ckpt}"));
            let mut a = vec![
                "--task",
                task,
                "--method",
                method,
                "--model",
                &base,
                "--data",
                data,
                "-o",
                out.to_str().unwrap(),
                "--batch-size",
                "4",
                "--max-steps",
                "3",
                "--eval-interval",
                "0",
                "--lr",
                "1e-3",
                "--precision",
                p,
                "--threads",
                "1",
                "-q",
            ];
            if ckpt {
                a.push("--grad-checkpoint");
            }
            a.extend_from_slice(extra);
            common::train(&a);
            loss_values(&metrics(&out))
        };
        let reference = run_in("f32", false);
        assert_eq!(reference.len(), 3, "{task} {method}");
        for p in ["bf16", "fp16"] {
            let l = run_in(p, true);
            assert_eq!(l.len(), 3, "{task} {method} {p}");
            for (a, b) in l.iter().zip(&reference) {
                assert!(
                    ((a - b) / b).abs() < 0.02,
                    "{task} {method} {p}: loss {a} vs f32 {b}"
                );
            }
        }
    }
}
