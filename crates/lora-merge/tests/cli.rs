//! `lora-merge` end to end: the merged folder equals PEFT's merge_and_unload, the merged model
//! scores exactly as base + adapter, and what cannot be merged is refused
//! without writing anything.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;
use wick_testkit::{run, testdata};

const MERGE: &str = env!("CARGO_BIN_EXE_lora-merge");

/// Runs lora-merge: (exit code, stdout, stderr).
fn merge(base: &Path, adapter: &Path, out: &Path) -> (i32, String, String) {
    merge_as("--model", base, adapter, out)
}

/// Runs lora-merge naming the base model with `model_flag`.
fn merge_as(model_flag: &str, base: &Path, adapter: &Path, out: &Path) -> (i32, String, String) {
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let args = [
        model_flag.into(),
        arg(base),
        "--adapter".into(),
        arg(adapter),
        "-o".into(),
        arg(out),
    ];
    run(
        MERGE,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
    )
    .parts()
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

#[test]
fn merges_like_peft_and_writes_a_complete_folder() {
    for name in ["plain", "rslora"] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("merged");
        let adapter = testdata(&format!("models/lora-{name}"));
        // The choice fixture's model is llama-gqa plus a tokenizer: a complete base folder.
        let base = testdata("eval/choice/model");
        let (code, _, err) = merge(&base, &adapter, &out);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("layers merged"), "{err}");
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            assert!(out.join(f).is_file(), "{name}: {f} missing");
        }
        let cfg = |p: &Path| -> Value {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        assert_eq!(
            cfg(&out.join("config.json")),
            cfg(&base.join("config.json"))
        );
        let got = tensors(&out.join("model.safetensors"));
        let want = tensors(&adapter.join("merged.safetensors"));
        assert_eq!(got.len(), want.len());
        for (k, w) in &want {
            let d: f32 = (&got[k] - w)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(
                d <= 1e-5,
                "{name}: {k} differs from merge_and_unload by {d}"
            );
        }
        // The merged folder scores as base + adapter (the tools' --adapter path).
        let doc: Vec<u32> = vec![1, 20, 15, 3, 28, 15, 3, 40, 20, 3, 22, 15, 5, 9, 30, 2];
        let score = |f: &wick_model::Folder| -> Vec<f32> {
            wick_model::sequence_logprobs(&f.model, &[&doc])
                .unwrap()
                .remove(0)
        };
        let merged = score(&wick_model::Folder::open(&out).unwrap());
        let layered = score(&wick_model::Folder::open_with_adapter(&base, Some(&adapter)).unwrap());
        let plain = score(&wick_model::Folder::open(&base).unwrap());
        let diff =
            |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff(&merged, &layered) <= 1e-5,
            "{name}: merged scores differ from base + adapter"
        );
        assert!(
            diff(&merged, &plain) > 1e-3,
            "{name}: the adapter changed nothing"
        );
    }
}

#[test]
fn what_cannot_be_merged_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("merged");
    let gqa = testdata("models/llama-gqa");
    let qwen = testdata("models/qwen2-bias");
    let plain = testdata("models/lora-plain");
    // A DoRA adapter, a Houlsby adapter, a missing adapter.
    let dora = tmp.path().join("dora");
    std::fs::create_dir(&dora).unwrap();
    let cfg = std::fs::read_to_string(plain.join("adapter_config.json")).unwrap();
    std::fs::write(
        dora.join("adapter_config.json"),
        cfg.replace("\"use_dora\": false", "\"use_dora\": true"),
    )
    .unwrap();
    std::fs::copy(
        plain.join("adapter_model.safetensors"),
        dora.join("adapter_model.safetensors"),
    )
    .unwrap();
    let houlsby = tmp.path().join("houlsby");
    std::fs::create_dir(&houlsby).unwrap();
    std::fs::write(
        houlsby.join("adapter_config.json"),
        "{\"peft_type\": \"HOULSBY\", \"reduction\": 16}",
    )
    .unwrap();
    let cases: &[(&Path, &Path, &str)] = &[
        (&qwen, &plain, "do not fit"),
        (&gqa, &dora, "DoRA"),
        (&gqa, &houlsby, "cannot be folded"),
        (&gqa, &tmp.path().join("nope"), "nope"),
    ];
    for (base, adapter, want) in cases {
        let (code, _, err) = merge(base, adapter, &out);
        assert_eq!(code, 1, "{adapter:?}: {err}");
        assert!(
            err.contains(want),
            "{adapter:?}: expected {want:?} in {err}"
        );
        assert!(!out.exists(), "{adapter:?}: output written after an error");
    }
    // An existing folder that lora-merge did not write is not overwritten, even when it looks
    // like a model folder.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), "x").unwrap();
    std::fs::copy(gqa.join("config.json"), out.join("config.json")).unwrap();
    let (code, _, err) = merge(&gqa, &plain, &out);
    assert_eq!(code, 1);
    assert!(err.contains("not written by wick"), "{err}");
    assert!(out.join("keep").is_file());
    // Its own earlier output is replaced whole; with a file of the user's in it, it is not.
    std::fs::remove_dir_all(&out).unwrap();
    for _ in 0..2 {
        let (code, _, err) = merge(&gqa, &plain, &out);
        assert_eq!(code, 0, "{err}");
    }
    std::fs::write(out.join("notes.md"), "mine").unwrap();
    let (code, _, err) = merge(&gqa, &plain, &out);
    assert_eq!(code, 1);
    assert!(err.contains("holds notes.md"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.md")).unwrap(),
        "mine"
    );
}

#[test]
fn the_old_spelling_base_still_names_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (new, old) = (tmp.path().join("new"), tmp.path().join("old"));
    let adapter = testdata("models/lora-plain");
    let base = testdata("eval/choice/model");
    let (code, _, err) = merge_as("--base", &base, &adapter, &old);
    assert_eq!(code, 0, "{err}");
    assert_eq!(merge(&base, &adapter, &new).0, 0);
    assert_eq!(
        std::fs::read(old.join("model.safetensors")).unwrap(),
        std::fs::read(new.join("model.safetensors")).unwrap()
    );
}
