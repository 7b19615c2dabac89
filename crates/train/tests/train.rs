//! `train` end to end on a real corpus (Shakespeare, 512-token BPE) with the tiny preset:
//! the val loss falls, a stopped and resumed run reproduces the uninterrupted one bit for
//! bit, the output folder loads as a model, and bad input is refused before training.

use serde_json::Value;
use wick_testkit::{run, shakespeare_shards};

mod common;

use common::metrics;

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

fn losses(m: &[Value]) -> Vec<(u64, f64)> {
    m.iter()
        .filter_map(|v| Some((v["step"].as_u64()?, v.get("loss")?.as_f64()?)))
        .collect()
}

fn base_args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
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
        "10",
        "--threads",
        "1",
        "--quiet",
    ]
}

#[test]
fn pretraining_lowers_val_loss_and_writes_a_model_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let out = tmp.path().join("run");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    // A little wider than the tiny preset, so that it can learn more than token frequencies.
    let cfg = tmp.path().join("config.json");
    std::fs::write(&cfg, r#"{"vocab_size": 512, "hidden_size": 48, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}"#).unwrap();
    let mut args = base_args(d, o);
    args[3] = cfg.to_str().unwrap();
    args.extend([
        "--max-steps",
        "300",
        "--eval-interval",
        "100",
        "--eval-batches",
        "8",
    ]);
    let r = run(TRAIN, &args, b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = metrics(&out);
    let vals: Vec<f64> = m
        .iter()
        .filter_map(|v| v.get("val_loss")?.as_f64())
        .collect();
    assert_eq!(vals.len(), 4, "at steps 0, 100, 200, 300");
    // ln(512) = 6.24 at the start; a model that learned the corpus' frequent pieces is far below.
    assert!(vals[0] > 6.0, "{vals:?}");
    assert!(
        vals[3] < vals[0] - 1.5,
        "val loss did not fall enough: {vals:?}"
    );
    assert!(vals[1] > vals[2] && vals[2] > vals[3], "{vals:?}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "best/model.safetensors",
        "checkpoint/optimizer.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let model = wick_model::Llama::load(&out).unwrap();
    assert_eq!(model.config.vocab_size, 512);
    let line = &m[10];
    for k in [
        "step",
        "loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "step_ms",
        "elapsed_s",
        "tokens",
    ] {
        assert!(line.get(k).is_some(), "metrics line lacks {k}: {line}");
    }
}

#[test]
fn a_stopped_and_resumed_run_matches_an_uninterrupted_one_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let d = data.to_str().unwrap();
    let extra = [
        "--max-steps",
        "24",
        "--eval-interval",
        "8",
        "--eval-batches",
        "2",
        "--grad-accum",
        "2",
    ];
    let mut args = base_args(d, a.to_str().unwrap());
    args.extend(extra);
    assert_eq!(run(TRAIN, &args, b"").code, 0);
    let mut args = base_args(d, b.to_str().unwrap());
    args.extend(extra);
    args.extend(["--stop-at", "13"]);
    assert_eq!(run(TRAIN, &args, b"").code, 0);
    // The checkpoint is taken at the stop, not at the last interval.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("checkpoint/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 13);
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--resume",
            b.to_str().unwrap(),
            "--threads",
            "1",
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!(losses(&ma), losses(&mb), "same losses, bit for bit");
    assert_eq!(losses(&ma).len(), 24);
    let vals = |m: &[Value]| {
        m.iter()
            .filter_map(|v| v.get("val_loss")?.as_f64())
            .collect::<Vec<_>>()
    };
    assert_eq!(vals(&ma), vals(&mb));
    let wa = std::fs::read(a.join("model.safetensors")).unwrap();
    let wb = std::fs::read(b.join("model.safetensors")).unwrap();
    assert!(wa == wb, "final weights differ");
}

#[test]
fn bad_input_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let d = data.to_str().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();

    // A model whose vocabulary is smaller than the shards' tokenizer.
    let cfg = tmp.path().join("small-vocab.json");
    std::fs::write(&cfg, r#"{"vocab_size": 100, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32}"#).unwrap();
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
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("512 tokens but the model's vocabulary is 100"),
        "{}",
        r.stderr
    );
    assert!(!out.join("metrics.jsonl").exists(), "nothing written");

    // Longer sequences than the model's context.
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--config",
            "tiny",
            "--seq-len",
            "64",
            "-o",
            o,
            "--quiet",
        ],
        b"",
    );
    assert!(
        r.stderr.contains("longer than the model's context"),
        "{}",
        r.stderr
    );

    // A malformed config and an unknown preset.
    std::fs::write(&cfg, "{\"vocab_size\": 512,").unwrap();
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
    assert!(
        r.stderr.contains("not a usable config.json"),
        "{}",
        r.stderr
    );
    let r = run(
        TRAIN,
        &["--data", d, "--config", "huge", "-o", o, "--quiet"],
        b"",
    );
    assert!(
        r.stderr.contains("neither a file nor a preset"),
        "{}",
        r.stderr
    );

    // An output path that cannot be a directory.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--config",
            "tiny",
            "-o",
            file.join("run").to_str().unwrap(),
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("a-file"), "{}", r.stderr);

    // Continuing from a model made with another tokenizer.
    let init = tmp.path().join("init");
    let mut c =
        wick_model::Config::from_json(&train::presets::config_json("tiny", 600).unwrap()).unwrap();
    c.eos_token_ids = vec![0];
    wick_model::Llama::init(c, 1).unwrap().save(&init).unwrap();
    std::fs::copy(
        wick_testkit::testdata("tokenizers/gpt2/tokenizer.json"),
        init.join("tokenizer.json"),
    )
    .unwrap();
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--init",
            init.to_str().unwrap(),
            "-o",
            o,
            "--quiet",
        ],
        b"",
    );
    assert!(
        r.stderr.contains("not the tokenizer the shards"),
        "{}",
        r.stderr
    );

    // Weights that give a NaN loss stop the run with a clear message.
    std::fs::remove_file(init.join("tokenizer.json")).unwrap();
    let mut map =
        candle_core::safetensors::load(init.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let nan = candle_core::Tensor::full(f32::NAN, (600, 16), &candle_core::Device::Cpu).unwrap();
    map.insert("lm_head.weight".into(), nan);
    candle_core::safetensors::save(&map, init.join("model.safetensors")).unwrap();
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--init",
            init.to_str().unwrap(),
            "-o",
            o,
            "--eval-interval",
            "0",
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("lm_head.weight holds non-finite weights (NaN or infinity): training cannot start from it"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "refused before the run folder is made");
}

/// Overwrites token `pos` of a uint16 shard.
fn set_token(bin: &std::path::Path, pos: usize, id: u16) {
    let mut b = std::fs::read(bin).unwrap();
    b[1024 + 2 * pos..1024 + 2 * pos + 2].copy_from_slice(&id.to_le_bytes());
    std::fs::write(bin, b).unwrap();
}

/// Rewrites the document starts of a `.docs` sidecar.
fn edit_starts(docs: &std::path::Path, f: impl FnOnce(&mut Vec<u64>)) -> Vec<u64> {
    let b = std::fs::read(docs).unwrap();
    let mut starts: Vec<u64> = b[1024..]
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    f(&mut starts);
    let mut out = b[..1024].to_vec();
    starts.iter().for_each(|s| out.extend(s.to_le_bytes()));
    std::fs::write(docs, out).unwrap();
    starts
}

#[test]
fn damaged_shards_are_refused_naming_the_file_and_place() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let train = |args: &[&str]| {
        let tail = ["-o", o, "--quiet", "--threads", "1", "--max-steps", "2"];
        let r = run(TRAIN, &[args, &tail].concat(), b"");
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
        assert!(!out.join("metrics.jsonl").exists(), "nothing trained");
        r.stderr
    };

    // An id the model has no embedding for (the manifest says 512 tokens; the file disagrees).
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let bin = data.join("train_000000.bin");
    set_token(&bin, 3, 600);
    let d = data.to_str().unwrap();
    assert_eq!(
        train(&["--data", d, "--config", "tiny"]),
        format!(
            "train: {}: token 3 is id 600, not below the vocabulary size 512\n",
            bin.display()
        )
    );

    // llm.c shards (no manifest) with a preset, which needs the manifest's vocabulary size.
    std::fs::remove_file(data.join("manifest.json")).unwrap();
    set_token(&bin, 3, 5);
    assert_eq!(
        train(&["--data", d, "--config", "tiny"]),
        format!("train: {d}: no manifest.json, so the vocabulary size is unknown (llm.c shards do not record it) and --config tiny cannot size the model: give --config a config.json with \"vocab_size\", or pack the data with `pack`\n")
    );

    // Document starts past the end of the shard (a panic, exit 101, before) or out of order
    // (examples made of other documents' tokens, before).
    for (name, damage) in [
        (
            "past",
            (|s: &mut Vec<u64>| s[3] = 1 << 40) as fn(&mut Vec<u64>),
        ),
        ("order", |s: &mut Vec<u64>| s.swap(3, 4)),
    ] {
        let sft = wick_testkit::sft_shards(&tmp.path().join(name));
        let docs = sft.join("train_000000.docs");
        let s = edit_starts(&docs, damage);
        let tokens = (std::fs::metadata(sft.join("train_000000.bin"))
            .unwrap()
            .len()
            - 1024)
            / 2;
        let want = if name == "past" {
            format!(
                "document 3 starts at token {}, past the end of the shard's {tokens} tokens",
                1u64 << 40
            )
        } else {
            format!(
                "document 4 starts at token {}, not after document 3's start {}",
                s[4], s[3]
            )
        };
        assert_eq!(
            train(&[
                "--task",
                "sft",
                "--data",
                sft.to_str().unwrap(),
                "--config",
                "tiny"
            ]),
            format!("train: {}: {want}\n", docs.display())
        );
    }
}

#[test]
fn ctrl_c_writes_a_checkpoint_that_resumes() {
    signal_writes_a_checkpoint_that_resumes("INT", "Ctrl-C");
}

#[test]
fn sigterm_writes_a_checkpoint_that_resumes() {
    signal_writes_a_checkpoint_that_resumes("TERM", "SIGTERM");
}

fn signal_writes_a_checkpoint_that_resumes(signal: &str, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = shakespeare_shards(&tmp.path().join("shards"));
    let out = tmp.path().join("run");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let mut args = base_args(d, o);
    args.extend(["--max-steps", "1000000", "--eval-interval", "0"]);
    let child = std::process::Command::new(TRAIN)
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is training, then interrupt it as a terminal's Ctrl-C (or `kill`) would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(out.join("metrics.jsonl")).map_or(0, |s| s.lines().count()) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "training never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let r = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted ({name}) at step")) && stderr.contains("--resume"),
        "{stderr}"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint/state.json")).unwrap())
            .unwrap();
    let step = state["step"].as_u64().unwrap();
    assert_eq!(
        losses(&metrics(&out)).last().unwrap().0,
        step,
        "the checkpoint is the last logged step"
    );
    wick_model::Llama::load(&out).unwrap();
    let r = run(
        TRAIN,
        &[
            "--data",
            d,
            "--resume",
            o,
            "--max-steps",
            &(step + 2).to_string(),
            "--quiet",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(losses(&metrics(&out)).len() as u64, step + 2);
}
