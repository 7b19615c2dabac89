//! What every tool's end-to-end tests need: the repository's testdata/, and running the tool's
//! binary with arguments and some standard input.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A path under the repository's testdata/.
pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

/// What a run of a tool gave back.
#[derive(Debug)]
pub struct Out {
    /// The exit status (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn parts(self) -> (i32, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

/// The numeric field `field` of every JSONL line of a tool's output (e.g. rm-score's rewards).
pub fn numbers(jsonl: &str, field: &str) -> Vec<f64> {
    jsonl
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v[field]
                .as_f64()
                .unwrap_or_else(|| panic!("no number {field:?} in {l}"))
        })
        .collect()
}

/// Another workspace binary beside `own` (a `CARGO_BIN_EXE_*` path): for tests that chain
/// tools across crates. `cargo test --workspace` (`make test`) builds them all first.
pub fn sibling_bin(own: &str, name: &str) -> String {
    let p = std::path::Path::new(own).with_file_name(name);
    assert!(
        p.is_file(),
        "{} is not built: run the workspace's tests (make test), or cargo build -p {name} first",
        p.display()
    );
    p.to_str().expect("UTF-8 path").to_string()
}

/// Runs `bin` with `args`, feeding `stdin` from another thread (so a tool that writes before it
/// has read everything cannot deadlock the test), and collects its output.
pub fn run(bin: &str, args: &[&str], stdin: &[u8]) -> Out {
    run_env(bin, args, &[], stdin)
}

/// [`run`] with extra environment variables.
pub fn run_env(bin: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Out {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let mut input = child.stdin.take().expect("piped");
    let bytes = stdin.to_vec();
    // A tool may exit before reading all of stdin (bad usage, an early error): ignore EPIPE.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("wait for the tool");
    writer.join().expect("stdin writer");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// The 512-token test tokenizer (testdata/tokenizers/shakespeare-512) and a packer into `out`
/// with it (10% val by key, shuffled with seed 1337), as `pack` would make.
fn test_packer(out: &std::path::Path) -> (wick_text::Tok, wick_shard::Packer) {
    let tok = wick_text::Tok::load(testdata("tokenizers/shakespeare-512")).expect("tokenizer");
    let opts = wick_shard::PackOptions {
        shard_tokens: 100_000_000,
        dtype: wick_shard::Dtype::Uint16,
        val_fraction: 0.1,
        split_key: "id".into(),
        shuffle_seed: Some(1337),
        vocab_size: tok.vocab_size(),
        eos_id: tok.require_eos().expect("eos"),
    };
    let packer = wick_shard::Packer::create(out, opts, &tok.path, &tok.hash).expect("start a pack");
    (tok, packer)
}

/// Packs testdata/english.jsonl (Shakespeare) with the 512-token tokenizer in
/// testdata/tokenizers/shakespeare-512 into a shard directory `out` (10% val), the way
/// `tokenize | pack` would, for the model tools' tests.
pub fn shakespeare_shards(out: &std::path::Path) -> PathBuf {
    let (tok, mut packer) = test_packer(out);
    let text = std::fs::read_to_string(testdata("english.jsonl")).expect("english.jsonl");
    for (i, line) in text.lines().enumerate() {
        let rec: serde_json::Value = serde_json::from_str(line).expect("JSONL");
        let ids = tok
            .encode(rec["text"].as_str().expect("text"))
            .expect("encode");
        packer
            .add(format!("doc-{i}").as_bytes(), &ids, None)
            .expect("add");
    }
    packer.finish().expect("finish the pack");
    out.to_path_buf()
}

/// Packs the SFT task testdata/sft/train.jsonl (prompt/completion records: the prompt masked
/// out, the completion and EOS trained on) with the 512-token tokenizer into a shard directory
/// `out` (10% val), the way `tokenize | pack` would.
pub fn sft_shards(out: &std::path::Path) -> PathBuf {
    use wick_text::{render_sft, Format, Templates};
    let (tok, mut packer) = test_packer(out);
    let templates = Templates::new(None, None, None).expect("templates");
    let text = std::fs::read_to_string(testdata("sft/train.jsonl")).expect("sft/train.jsonl");
    for line in text.lines() {
        let rec: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).expect("JSONL");
        let pieces = render_sft(&rec, Format::PromptCompletion, &templates).expect("render");
        let enc = tok.encode_pieces(&pieces).expect("encode");
        packer
            .add(rec["id"].to_string().as_bytes(), &enc.ids, Some(&enc.mask))
            .expect("add");
    }
    packer.finish().expect("finish the pack");
    out.to_path_buf()
}

/// A tiny model (2 layers x 16 wide, the 512-token test tokenizer, context `context`)
/// pretrained for 20 steps on Shakespeare by the `train` binary at `train`, in `tmp/base`.
pub fn tiny_base(train: &str, tmp: &std::path::Path, context: usize) -> String {
    let data = shakespeare_shards(&tmp.join("pre"));
    let out = tmp.join("base");
    let cfg = tmp.join("tiny.json");
    let json = format!(
        r#"{{"vocab_size": 512, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": {context}}}"#
    );
    std::fs::write(&cfg, json).unwrap();
    let r = run(
        train,
        &[
            "--data",
            data.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--max-steps",
            "20",
            "--eval-interval",
            "0",
            "--lr",
            "3e-3",
            "--warmup",
            "2",
            "--batch-size",
            "8",
            "--seq-len",
            "32",
            "--threads",
            "1",
            "-q",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "train (tiny base): {}", r.stderr);
    out.to_str().unwrap().to_string()
}

/// A copy of the model folder `model` in `out` whose vocabulary is `vocab` (embeddings and
/// head zero-filled to that size): a model that does not belong with the first one.
pub fn with_vocab(model: &std::path::Path, out: &std::path::Path, vocab: usize) {
    std::fs::create_dir_all(out).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    config["vocab_size"] = vocab.into();
    std::fs::write(out.join("config.json"), config.to_string()).unwrap();
    let cpu = candle_core::Device::Cpu;
    let mut w = candle_core::safetensors::load(model.join("model.safetensors"), &cpu).unwrap();
    for k in ["model.embed_tokens.weight", "lm_head.weight"] {
        if let Some(t) = w.get(k) {
            let grown =
                candle_core::Tensor::zeros((vocab, t.dim(1).unwrap()), t.dtype(), &cpu).unwrap();
            w.insert(k.to_string(), grown);
        }
    }
    candle_core::safetensors::save(&w, out.join("model.safetensors")).unwrap();
}

/// The fault-injection points (see `wick_io::fault`) that `bin args` passes through when
/// nothing goes wrong, in order: each is a place where a kill could come.
pub fn fault_points(bin: &str, args: &[&str], stdin: &[u8]) -> Vec<String> {
    let log = tempfile::NamedTempFile::new().expect("a temporary file");
    let path = log.path().to_str().expect("UTF-8 path").to_string();
    let r = run_env(bin, args, &[("WICK_FAULT_LOG", &path)], stdin);
    assert_eq!(r.code, 0, "{bin} {args:?}: {}", r.stderr);
    std::fs::read_to_string(log.path())
        .expect("the fault log")
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, what)| what).to_string())
        .collect()
}

/// Runs `bin args` and kills it (SIGKILL) at fault point `n`; asserts that it died there.
pub fn run_killed_at(bin: &str, args: &[&str], n: usize, stdin: &[u8]) {
    let r = run_env(bin, args, &[("WICK_FAULT_AT", &n.to_string())], stdin);
    assert_eq!(
        r.code, -1,
        "{bin} {args:?} was to be killed at point {n}: {}",
        r.stderr
    );
}

/// Every file under `dir` (relative path -> bytes), for comparing two output folders.
pub fn files_under(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut std::collections::BTreeMap<String, Vec<u8>>,
    ) {
        for e in std::fs::read_dir(dir).expect("read a folder") {
            let p = e.expect("a folder entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(&p).expect("read a file"),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Copies the model folder `src` to `dst` with `model.norm.weight` set to NaN: a checkpoint
/// that loads but whose every output is NaN.
pub fn nan_model(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).expect("make the folder");
    for e in std::fs::read_dir(src).expect("read the model folder") {
        let p = e.expect("an entry").path();
        if p.is_file() {
            std::fs::copy(&p, dst.join(p.file_name().expect("a name"))).expect("copy");
        }
    }
    let file = dst.join("model.safetensors");
    let mut t = candle_core::safetensors::load(&file, &candle_core::Device::Cpu).expect("load");
    let norm = t.get("model.norm.weight").expect("a final norm").clone();
    let nan = (norm * f64::NAN).expect("NaN weights");
    t.insert("model.norm.weight".into(), nan);
    candle_core::safetensors::save(&t, &file).expect("save");
}
