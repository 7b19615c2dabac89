//! The path a GPU runs, tested on the CPU: with WICK_REFERENCE_OPS=1 every op is the
//! `kernels::reference` composition of candle ops and AdamW keeps tensor moments, as on
//! `--device cuda`. Full and LoRA runs, f32 and bf16 autocast, with --grad-checkpoint, follow
//! the fused kernels' losses within tolerance; a run moves between the two paths on --resume
//! (the device is not one of the run's settings); and --device is refused clearly where this
//! build cannot honour it.

use std::path::Path;

use serde_json::Value;
use wick_testkit::{run, run_env, sft_shards, shakespeare_shards};

mod common;

use common::{metrics, TRAIN};

const REFERENCE: (&str, &str) = ("WICK_REFERENCE_OPS", "1");

/// (step, loss) of every training line.
type Losses = Vec<(u64, f64)>;

fn losses(m: &[Value]) -> Losses {
    m.iter()
        .filter_map(|v| Some((v["step"].as_u64()?, v.get("loss")?.as_f64()?)))
        .collect()
}

fn train_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let r = run_env(TRAIN, args, env, b"");
    assert_eq!(r.code, 0, "train {args:?} {env:?}: {}", r.stderr);
    r.stderr
}

/// The largest |loss gap| between two runs' training lines, which must cover the same steps.
fn worst_gap(a: &[(u64, f64)], b: &[(u64, f64)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((sa, la), (sb, lb))| {
            assert_eq!(sa, sb);
            (la - lb).abs()
        })
        .fold(0.0, f64::max)
}

/// Trains `args` into `dir/fused` and, with the reference ops, `dir/reference`; returns both
/// runs' losses.
fn both_paths(dir: &Path, args: &[&str]) -> (Losses, Losses) {
    let run_in = |name: &str, env: &[(&str, &str)]| {
        let out = dir.join(name);
        let mut a = args.to_vec();
        let o = out.to_str().unwrap().to_string();
        a.extend(["-o", &o]);
        train_env(&a, env);
        losses(&metrics(&out))
    };
    (run_in("fused", &[]), run_in("reference", &[REFERENCE]))
}

/// Grouped-query attention (4 query heads on 2 key/value heads), two layers, 512 tokens.
fn gqa_config(dir: &Path) -> String {
    let path = dir.join("gqa.json");
    std::fs::write(
        &path,
        r#"{"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}"#,
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

const STEPS: &str = "12";

/// The tolerances, in nats, on a loss of ~6.2 (the tiny models' ln 512) falling over 12 steps,
/// ten times the gaps measured: f32's two paths differ only in summation order (at most 1e-6
/// here); bf16's also in where they round (the fused kernels round the products' operands and
/// keep f32 results, candle's bf16 matmul rounds its result too: at most 2.3e-4). On these
/// small weights bf16 moves the loss little (the reference path's bf16 run is 3e-4 from its f32
/// run), so this checks the path trains alike; that its products do round to bf16 is checked
/// op by op in wick-model's tests/kernels.rs.
const TOL_F32: f64 = 1e-5;
const TOL_BF16: f64 = 2e-3;

#[test]
fn full_runs_on_the_reference_ops_follow_the_fused_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let config = gqa_config(tmp.path());
    let mut reference_runs = Vec::new();
    for (precision, tol) in [("f32", TOL_F32), ("bf16", TOL_BF16)] {
        let dir = tmp.path().join(precision);
        let (fused, reference) = both_paths(
            &dir,
            &[
                "--data",
                data.to_str().unwrap(),
                "--config",
                &config,
                "--batch-size",
                "4",
                "--seq-len",
                "32",
                "--lr",
                "3e-3",
                "--warmup",
                "3",
                "--max-steps",
                STEPS,
                "--eval-interval",
                "6",
                "--eval-batches",
                "2",
                "--threads",
                "1",
                "--precision",
                precision,
                "--grad-checkpoint",
                "-q",
            ],
        );
        assert_eq!(fused.len(), 12);
        let gap = worst_gap(&fused, &reference);
        eprintln!("full {precision}: worst loss gap {gap:.3e} (tolerance {tol:e})");
        assert!(gap <= tol, "full {precision}: losses differ by {gap}");
        assert!(fused.last().unwrap().1 < fused[0].1 - 0.1, "it learns");
        // Evaluation takes the reference path too.
        let val = |run: &str| -> Vec<f64> {
            metrics(&dir.join(run))
                .iter()
                .filter_map(|v| v.get("val_loss")?.as_f64())
                .collect()
        };
        let (vf, vr) = (val("fused"), val("reference"));
        assert_eq!(vf.len(), 3);
        for (a, b) in vf.iter().zip(&vr) {
            assert!(
                (a - b).abs() <= tol,
                "full {precision}: val loss {a} vs {b}"
            );
        }
        reference_runs.push(reference);
    }
    let rounding = worst_gap(&reference_runs[0], &reference_runs[1]);
    eprintln!("full: the reference path's bf16 run differs from its f32 run by {rounding:.3e}");
    assert!(
        rounding > 0.0,
        "the reference ops rounded the products to bf16"
    );
}

#[test]
fn lora_sft_on_the_reference_ops_follows_the_fused_kernels() {
    // Packed SFT examples: the reference attention gets segments, the loss weights.
    let tmp = tempfile::tempdir().unwrap();
    let base = common::base(tmp.path());
    let data = sft_shards(&tmp.path().join("sft"));
    for (precision, tol) in [("f32", TOL_F32), ("bf16", TOL_BF16)] {
        let (fused, reference) = both_paths(
            &tmp.path().join(precision),
            &[
                "--task",
                "sft",
                "--method",
                "lora",
                "--lora-dropout",
                "0.1",
                "--model",
                &base,
                "--data",
                data.to_str().unwrap(),
                "--batch-size",
                "4",
                "--seq-len",
                "64",
                "--lr",
                "1e-2",
                "--max-steps",
                STEPS,
                "--eval-interval",
                "0",
                "--threads",
                "1",
                "--precision",
                precision,
                "--grad-checkpoint",
                "-q",
            ],
        );
        let gap = worst_gap(&fused, &reference);
        eprintln!("lora {precision}: worst loss gap {gap:.3e} (tolerance {tol:e})");
        assert!(gap <= tol, "lora {precision}: losses differ by {gap}");
    }
}

#[test]
fn a_run_moves_between_the_paths_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    let config = gqa_config(tmp.path());
    let args = |out: &str| -> Vec<String> {
        [
            "--data",
            d,
            "--config",
            &config,
            "-o",
            out,
            "--batch-size",
            "4",
            "--seq-len",
            "32",
            "--max-steps",
            "8",
            "--eval-interval",
            "0",
            "--threads",
            "1",
            "-q",
        ]
        .map(String::from)
        .to_vec()
    };
    let straight = tmp.path().join("straight");
    let s: Vec<String> = args(straight.to_str().unwrap());
    train_env(&s.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    // Four steps on the reference path (tensor moments), four more on the fused kernels.
    let moved = tmp.path().join("moved");
    let mut a = args(moved.to_str().unwrap());
    a.extend(["--stop-at", "4"].map(String::from));
    train_env(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[REFERENCE],
    );
    let m = moved.to_str().unwrap();
    train_env(&["--resume", m, "--data", d, "--device", "cpu", "-q"], &[]);
    let gap = worst_gap(&losses(&metrics(&straight)), &losses(&metrics(&moved)));
    assert!(gap <= TOL_F32, "the moved run's losses differ by {gap}");
}

#[test]
#[cfg(not(feature = "cuda"))]
fn device_flag_errors_name_the_flag_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for (device, want) in [
        (
            "cuda",
            "train: --device cuda: this build has no CUDA support; build with --features cuda (make cuda)",
        ),
        (
            "cuda:1",
            "train: --device cuda:1: this build has no CUDA support; build with --features cuda (make cuda)",
        ),
        (
            "gpu",
            "train: --device gpu: unknown device 'gpu' (expected cpu, cuda or cuda:N)",
        ),
    ] {
        let r = run(
            TRAIN,
            &[
                "--data",
                "nowhere",
                "--config",
                "tiny",
                "-o",
                out.to_str().unwrap(),
                "--device",
                device,
            ],
            b"",
        );
        assert_eq!(r.code, 1);
        assert_eq!(r.stderr.trim_end(), want);
        assert!(!out.exists(), "nothing written");
    }
}
