//! `train --task sft` on the real SFT task of testdata/sft: packing several examples per row
//! with block-diagonal attention computes exactly what one example per row does, the loss
//! counts only response tokens, runs are sized in epochs, LoRA SFT learns and resumes exactly,
//! and data without a loss mask is refused before anything is written.

use std::path::Path;

use serde_json::Value;
use wick_testkit::{run, sft_shards};

mod common;

use common::{base, losses, metrics, train, TRAIN};

fn first_val(dir: &Path) -> f64 {
    metrics(dir)[0]["val_loss"].as_f64().unwrap()
}

#[test]
fn packed_rows_score_the_same_as_one_example_per_row() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let sft = sft_shards(&tmp.path().join("sft"));
    let step0 = |out: &str, extra: &[&str]| -> (f64, String) {
        let o = tmp.path().join(out);
        let mut a = vec![
            "--task",
            "sft",
            "--init",
            &base,
            "--data",
            sft.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
            "--max-steps",
            "1",
            "--eval-interval",
            "1",
            "--eval-batches",
            "1000",
            "--batch-size",
            "4",
            "--seq-len",
            "256",
            "--threads",
            "1",
        ];
        a.extend(extra);
        let stderr = train(&a);
        (first_val(&o), stderr)
    };
    // Every val example, response tokens only: packed (several examples a row, block-diagonal
    // attention) and one per row (padded) must agree up to float rounding. Without the
    // block-diagonal mask each packed example would see the ones before it and score
    // differently.
    let (packed, said) = step0("packed", &[]);
    let (single, _) = step0("single", &["--no-packing"]);
    // "train: sft: N examples (...), R rows of 257 tokens per epoch (packed)": several a row.
    let num = |before: &str| -> f64 {
        let head = said.split(before).next().unwrap();
        head.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (examples, rows) = (num(" examples ("), num(" rows of 257"));
    assert!(
        rows < 0.6 * examples,
        "{rows} rows for {examples} examples: {said}"
    );
    assert!(
        (packed - single).abs() < 1e-5 * single,
        "packed {packed} vs one per row {single}"
    );
    assert!(packed > 0.5 && packed < 10.0, "{packed}");

    // `ppl` on the same val records as JSONL (rendered, responses only) gives the same
    // figure: held-out response perplexity is what SFT's val loss reports.
    let tok = wick_text::Tok::load(Path::new(&base)).unwrap();
    let templates = wick_text::Templates::new(None, None, None).unwrap();
    let model = wick_model::Llama::load(Path::new(&base)).unwrap();
    let (mut docs, mut masks) = (Vec::new(), Vec::new());
    let text = std::fs::read_to_string(wick_testkit::testdata("sft/train.jsonl")).unwrap();
    for line in text.lines() {
        let rec: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let key = rec["id"].to_string();
        if wick_shard::split_of(key.as_bytes(), 0.1) != wick_shard::Split::Val {
            continue;
        }
        let d = ppl::encode_record(&rec, "text", &templates, &tok, &[]).unwrap();
        docs.push(d.ids);
        masks.push(d.mask);
    }
    assert!(docs.len() > 20, "{} val records", docs.len());
    let nll = ppl::Scorer::new(&model, 256, 256, 8)
        .score(&docs, &masks, |_| {})
        .unwrap();
    let (sum, n) = nll
        .iter()
        .fold((0.0, 0), |a, x| (a.0 + x.sum, a.1 + x.tokens));
    let by_ppl = sum / n as f64;
    assert!(
        (by_ppl - packed).abs() < 1e-5 * packed,
        "ppl {by_ppl} vs train's val loss {packed}"
    );
}

#[test]
fn lora_sft_learns_in_epochs_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let sft = sft_shards(&tmp.path().join("sft"));
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--task",
            "sft",
            "--method",
            "lora",
            "--init",
            &base,
            "--data",
            sft.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--lr",
            "3e-3",
            "--lora-r",
            "4",
            "--lora-targets",
            "q,v,up,down",
            "--batch-size",
            "16",
            "--seq-len",
            "256",
            "--eval-batches",
            "8",
            "--threads",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let full = tmp.path().join("full");
    let a = args(&full, &[]);
    let stderr = train(&a.iter().map(String::as_str).collect::<Vec<_>>());
    // "N examples ..., R rows of 257 tokens per epoch": 2 epochs of R rows in batches of 16.
    let rows: f64 = stderr
        .split(" rows of 257 tokens per epoch")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {stderr}"));
    let m = metrics(&full);
    let last = m.last().unwrap();
    assert_eq!(
        last["step"].as_u64().unwrap(),
        (2.0 * rows / 16.0).ceil() as u64
    );
    let epoch = last["epoch"].as_f64().unwrap();
    // (Later epochs pack into a few more or fewer rows than the first.)
    assert!((1.95..2.05).contains(&epoch), "epoch {epoch}");
    // Evaluated once per epoch (and at step 0); the response loss falls.
    let vals: Vec<f64> = m
        .iter()
        .filter_map(|v| v.get("val_loss")?.as_f64())
        .collect();
    assert_eq!(vals.len(), 3, "{vals:?}");
    assert!(vals[2] < vals[0] - 0.1, "val loss {vals:?}");
    // Only the adapter was written.
    assert!(full.join("adapter_model.safetensors").exists());
    assert!(!full.join("model.safetensors").exists());

    // Stopped in the middle of the first epoch, resumed: the same losses bit for bit.
    let part = tmp.path().join("part");
    let mut a = args(&part, &["--stop-at", "5"]);
    a.push("-q".into());
    train(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let p = part.to_str().unwrap();
    train(&["--resume", p, "--data", sft.to_str().unwrap(), "-q"]);
    assert_eq!(losses(&metrics(&part)), losses(&m));
}

#[test]
fn sft_refuses_data_without_a_loss_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let pre = tmp.path().join("pre");
    let out = tmp.path().join("out");
    let r = run(
        TRAIN,
        &[
            "--task",
            "sft",
            "--init",
            &base,
            "--data",
            pre.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no loss mask"), "{}", r.stderr);
    assert!(!out.exists(), "nothing written");
}

#[test]
fn houlsby_adapters_start_as_the_base_train_alone_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let base_bytes = std::fs::read(Path::new(&base).join("model.safetensors")).unwrap();
    let sft = sft_shards(&tmp.path().join("sft"));
    let args = |out: &Path, method: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--task",
            "sft",
            "--method",
            method,
            "--adapter-reduction",
            "4",
            "--init",
            &base,
            "--data",
            sft.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--lr",
            "3e-3",
            "--batch-size",
            "16",
            "--seq-len",
            "256",
            "--eval-batches",
            "8",
            "--threads",
            "1",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let go = |a: Vec<String>| train(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let whole = tmp.path().join("whole");
    go(args(&whole, "adapter", &[]));
    let full = tmp.path().join("full");
    go(args(&full, "full", &["--max-steps", "1"]));
    // The up projection starts at zero: step 0 computes the base's function, to the bit.
    assert_eq!(first_val(&whole).to_bits(), first_val(&full).to_bits());
    let m = metrics(&whole);
    let vals: Vec<f64> = m
        .iter()
        .filter_map(|v| v.get("val_loss")?.as_f64())
        .collect();
    assert!(vals[vals.len() - 1] < vals[0] - 0.1, "val loss {vals:?}");
    // The folder holds the adapter alone, in wick's Houlsby layout; the base is untouched.
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "HOULSBY");
    assert_eq!(cfg["bottleneck_size"], 4); // hidden 16 / 4
    assert!(!whole.join("model.safetensors").exists());
    assert_eq!(
        std::fs::read(Path::new(&base).join("model.safetensors")).unwrap(),
        base_bytes
    );
    let load = |f: &Path| candle_core::safetensors::load(f, &candle_core::Device::Cpu).unwrap();
    let adapter = load(&whole.join("adapter_model.safetensors"));
    assert_eq!(adapter.len(), 2 * 2 * 4, "{:?}", adapter.keys());
    assert_eq!(
        adapter["model.layers.1.mlp_adapter.up.weight"].dims(),
        &[16, 4]
    );
    // Moments (m, v) for the 16 adapter tensors only.
    let opt = load(&whole.join("checkpoint/optimizer.safetensors"));
    assert_eq!(opt.len(), 2 * 16);
    assert!(
        opt.keys().all(|k| k.contains("_adapter.")),
        "{:?}",
        opt.keys()
    );

    // Stopped and resumed: the same losses, bit for bit.
    let part = tmp.path().join("part");
    go(args(&part, "adapter", &["--stop-at", "4"]));
    let p = part.to_str().unwrap();
    train(&["--resume", p, "--data", sft.to_str().unwrap(), "-q"]);
    assert_eq!(losses(&metrics(&part)), losses(&m));
}

#[test]
fn lora_dropout_changes_training_not_evaluation_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let sft = sft_shards(&tmp.path().join("sft"));
    let run_to = |out: &Path, dropout: &str, extra: &[&str]| {
        let mut a = vec![
            "--task",
            "sft",
            "--method",
            "lora",
            "--lora-dropout",
            dropout,
            "--init",
            &base,
            "--data",
            sft.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--max-steps",
            "6",
            "--eval-interval",
            "6",
            "--lr",
            "1e-2",
            "--batch-size",
            "8",
            "--seq-len",
            "256",
            "--eval-batches",
            "4",
            "--threads",
            "1",
            "-q",
        ];
        a.extend(extra);
        train(&a);
        metrics(out)
    };
    let plain = run_to(&tmp.path().join("plain"), "0", &[]);
    let drop = run_to(&tmp.path().join("drop"), "0.3", &[]);
    // Evaluation never drops: step 0 (B = 0) is the same model either way.
    assert_eq!(plain[0]["val_loss"], drop[0]["val_loss"]);
    // Training does: once B has moved, the losses part.
    let (lp, ld) = (losses(&plain), losses(&drop));
    assert_eq!(lp[0], ld[0], "step 1: B = 0, the adapter path adds nothing");
    assert_ne!(lp[5], ld[5]);
    // The masks are keyed by seed, step and micro-batch: a resumed run draws the same ones.
    let part = tmp.path().join("part");
    run_to(&part, "0.3", &["--stop-at", "3"]);
    train(&[
        "--resume",
        part.to_str().unwrap(),
        "--data",
        sft.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(losses(&metrics(&part)), ld);
}

#[test]
fn train_continues_an_adapter_folder_from_where_it_ended() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let sft = sft_shards(&tmp.path().join("sft"));
    let d = sft.to_str().unwrap();
    let common = [
        "--task",
        "sft",
        "--init",
        &base,
        "--data",
        d,
        "--max-steps",
        "4",
        "--eval-interval",
        "4",
        "--lr",
        "1e-2",
        "--batch-size",
        "8",
        "--seq-len",
        "256",
        "--eval-batches",
        "4",
        "--threads",
        "1",
        "-q",
    ];
    for (method, extra) in [
        ("lora", ["--lora-r", "2"]),
        ("adapter", ["--adapter-reduction", "8"]),
    ] {
        let first = tmp.path().join(format!("{method}-1"));
        let mut a = common.to_vec();
        a.extend(["--method", method, "-o", first.to_str().unwrap()]);
        a.extend(extra);
        train(&a);
        let end = metrics(&first).last().unwrap()["val_loss"]
            .as_f64()
            .unwrap();
        // --adapter: the run starts from the saved adapter (its settings kept, so no --method
        // or rank is needed): its step-0 val loss is where the first run ended, to the bit.
        let second = tmp.path().join(format!("{method}-2"));
        let mut a = common.to_vec();
        a.extend([
            "--adapter",
            first.to_str().unwrap(),
            "-o",
            second.to_str().unwrap(),
        ]);
        train(&a);
        assert_eq!(first_val(&second).to_bits(), end.to_bits(), "{method}");
        assert!(second.join("adapter_model.safetensors").exists());
    }
    // Full training cannot continue an adapter without merging it.
    let mut a = common.to_vec();
    let lora = tmp.path().join("lora-1");
    let out = tmp.path().join("full");
    a.extend([
        "--method",
        "full",
        "--adapter",
        lora.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let r = run(TRAIN, &a, b"");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("lora-merge"), "{}", r.stderr);
}
