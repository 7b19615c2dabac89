//! Flags and configs that cannot train are refused at start-up, naming the flag or field: zero
//! sizes, and runs whose estimated memory is more than the machine has (before anything is
//! allocated or written).

use wick_testkit::{run, shakespeare_shards};

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

#[test]
fn zero_sizes_are_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let out = tmp.path().join("o");
    for (flag, want) in [
        ("--batch-size", "train: --batch-size must be at least 1"),
        ("--seq-len", "train: --seq-len must be at least 1"),
    ] {
        let r = run(
            TRAIN,
            &[
                "--data",
                data.to_str().unwrap(),
                "--config",
                "tiny",
                "-o",
                out.to_str().unwrap(),
                flag,
                "0",
                "--quiet",
            ],
            b"",
        );
        assert_eq!(r.code, 1, "{flag}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{flag}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
        assert!(!out.join("metrics.jsonl").exists(), "nothing written");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn runs_too_large_for_memory_are_refused_with_the_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let out = tmp.path().join("o");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    // The small preset (256 context) with 100000 sequences a micro-batch: terabytes of
    // activations.
    let started = std::time::Instant::now();
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--config",
            "small",
            "-o",
            o,
            "--batch-size",
            "100000",
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("train: training with --batch-size 100000 x --seq-len 256 ("),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("gradients and AdamW moments"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("TiB of memory, more than this machine's"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(started.elapsed().as_secs_f64() < 10.0, "refused at once");
    assert!(!out.exists(), "nothing written");

    // A config whose weights alone are too large (10^9 layers), from --config and --init.
    let cfg = tmp.path().join("deep.json");
    std::fs::write(&cfg, r#"{"vocab_size": 512, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1000000000, "num_attention_heads": 2, "max_position_embeddings": 32}"#).unwrap();
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--config",
            cfg.to_str().unwrap(),
            "-o",
            o,
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("train: training with --batch-size 12 x --seq-len 32 ("),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("more than this machine's"),
        "{}",
        r.stderr
    );
    let init = tmp.path().join("init");
    std::fs::create_dir_all(&init).unwrap();
    std::fs::copy(&cfg, init.join("config.json")).unwrap();
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--init",
            init.to_str().unwrap(),
            "-o",
            o,
            "--method",
            "lora",
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    // An adapter run keeps only the frozen weights (4 bytes a parameter), still too many.
    assert!(r.stderr.contains("TiB for weights, ~"), "{}", r.stderr);
    assert!(!r.stderr.contains("AdamW"), "{}", r.stderr);
    assert!(
        r.stderr.contains("more than this machine's"),
        "{}",
        r.stderr
    );
}
