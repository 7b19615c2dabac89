//! `train --method lora` on a real corpus: only the adapter trains (the base's file is
//! untouched and the optimiser holds moments for A and B alone), the adapter starts as the
//! identity (step-0 val loss = the base's, bit for bit), learns, is written in PEFT's format,
//! and a stopped LoRA run resumes exactly.

use serde_json::Value;
use wick_testkit::{run, shakespeare_shards};

mod common;

use common::metrics;

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

fn vals(m: &[Value]) -> Vec<(u64, f64)> {
    m.iter()
        .filter_map(|v| Some((v["step"].as_u64()?, v.get("val_loss")?.as_f64()?)))
        .collect()
}

fn train(args: &[&str]) {
    let r = run(TRAIN, args, b"");
    assert_eq!(r.code, 0, "train {args:?}: {}", r.stderr);
}

const COMMON: [&str; 10] = [
    "--batch-size",
    "8",
    "--seq-len",
    "32",
    "--warmup",
    "5",
    "--threads",
    "1",
    "--eval-batches",
    "4",
];

#[test]
fn lora_trains_only_the_adapter_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    let base = tmp.path().join("base");
    let b = base.to_str().unwrap();
    let mut args = vec![
        "--data",
        d,
        "--config",
        "tiny",
        "-o",
        b,
        "--max-steps",
        "30",
        "--eval-interval",
        "30",
        "--lr",
        "3e-3",
        "-q",
    ];
    args.extend(COMMON);
    train(&args);
    let base_bytes = std::fs::read(base.join("model.safetensors")).unwrap();
    let base_val = vals(&metrics(&base)).last().unwrap().1;

    let lora_args = |out: &str| -> Vec<String> {
        let mut a: Vec<String> = [
            "--data",
            d,
            "--init",
            b,
            "--method",
            "lora",
            "--lora-r",
            "8",
            "--lora-alpha",
            "16",
            "--lora-targets",
            "q,k,v,o,gate,up,down",
            "-o",
            out,
            "--max-steps",
            "80",
            "--eval-interval",
            "40",
            "--lr",
            "1e-2",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(COMMON.iter().map(|s| s.to_string()));
        a
    };
    let whole = tmp.path().join("lora");
    let w = whole.to_str().unwrap();
    let a = lora_args(w);
    train(&a.iter().map(String::as_str).collect::<Vec<_>>());

    // The base is untouched; the run directory is an adapter folder in PEFT's format.
    assert_eq!(
        std::fs::read(base.join("model.safetensors")).unwrap(),
        base_bytes
    );
    assert!(!whole.join("model.safetensors").exists());
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 8);
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!([
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj"
        ])
    );
    let adapter = wick_model::LoraAdapter::load(&whole).unwrap();
    assert_eq!(adapter.weights.len(), 2 * 7, "2 layers x 7 targets");
    assert!(adapter
        .weights
        .keys()
        .any(|k| k == "model.layers.1.mlp.gate_proj"));
    // Optimiser moments only for A and B: 2 tensors (m, v) per trained tensor.
    let opt = candle_core::safetensors::load(
        whole.join("checkpoint/optimizer.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(
        opt.keys()
            .all(|k| k.contains(".lora_A.") || k.contains(".lora_B.")),
        "{:?}",
        opt.keys()
    );
    assert_eq!(opt.len(), 2 * 2 * 14);

    // B starts at zero: the step-0 model is the base, to the bit; then it learns.
    let v = vals(&metrics(&whole));
    assert_eq!(v[0], (0, base_val), "step-0 val loss must equal the base's");
    assert!(
        v.last().unwrap().1 < base_val - 1e-3,
        "LoRA did not learn: {v:?}"
    );
    let moved = adapter.weights.values().all(|(_, b)| {
        b.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    });
    assert!(moved, "every B left zero");

    // Stopped at 40 and resumed: the same losses and the same adapter, bit for bit.
    let split = tmp.path().join("split");
    let s = split.to_str().unwrap();
    let mut first = lora_args(s);
    first.extend(["--stop-at".to_string(), "40".to_string()]);
    train(&first.iter().map(String::as_str).collect::<Vec<_>>());
    train(&["--data", d, "--resume", s, "-q", "--threads", "1"]);
    let key = |m: &[Value]| -> Vec<(u64, Option<f64>, Option<f64>)> {
        m.iter()
            .map(|v| {
                (
                    v["step"].as_u64().unwrap(),
                    v.get("loss").and_then(Value::as_f64),
                    v.get("val_loss").and_then(Value::as_f64),
                )
            })
            .collect()
    };
    assert_eq!(key(&metrics(&split)), key(&metrics(&whole)));
    assert_eq!(
        std::fs::read(split.join("adapter_model.safetensors")).unwrap(),
        std::fs::read(whole.join("adapter_model.safetensors")).unwrap()
    );
}

#[test]
fn lora_needs_a_base_and_sane_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    let o = tmp.path().join("o");
    let o = o.to_str().unwrap();
    for (extra, want) in [
        (vec!["--config", "tiny"], "--model"),
        (vec!["--init", d, "--lora-targets", "q,lm_head"], "lm_head"),
        (vec!["--init", d, "--lora-dropout", "1.5"], "--lora-dropout"),
        (vec!["--init", d, "--lora-r", "0"], "--lora-r"),
    ] {
        let mut args = vec!["--data", d, "--method", "lora", "-o", o, "-q"];
        args.extend(extra.iter());
        let r = run(TRAIN, &args, b"");
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(want),
            "{args:?}: expected {want:?} in {}",
            r.stderr
        );
    }
}
