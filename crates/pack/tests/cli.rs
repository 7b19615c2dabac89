//! The `pack` binary: llm.c byte compatibility, bad input, interrupted runs, verify and info.

use std::io::Write;
use std::process::{Command, Stdio};

const PACK: &str = env!("CARGO_BIN_EXE_pack");

use wick_testkit::testdata as data;

fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    wick_testkit::run(PACK, args, stdin).parts()
}

fn gpt2() -> String {
    data("tokenizers/gpt2/tokenizer.json").display().to_string()
}

#[test]
fn packs_llmc_identical_shards_that_verify_and_inform() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("shards");
    let o = out.to_str().unwrap();
    let docs = data("fixtures/llmc/docs.jsonl");
    let (code, _, err) = run(
        &[
            "-q",
            "-t",
            &gpt2(),
            "-o",
            o,
            "--val-fraction",
            "0",
            "--no-shuffle",
            docs.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(out.join("train_000000.bin")).unwrap(),
        std::fs::read(data("fixtures/llmc/gpt2_u16.bin")).unwrap()
    );
    let (code, stdout, _) = run(&["verify", o], b"");
    assert_eq!(code, 0);
    assert!(
        stdout.contains("OK: 1 shards, 7145 tokens, 20 documents"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["info", o], b"");
    assert_eq!(code, 0);
    assert!(
        stdout.contains("uint16 tokens, vocab 50257, EOS id 50256"),
        "{stdout}"
    );
    assert!(
        stdout.contains("train            7145 tokens         20 documents"),
        "{stdout}"
    );
    let (_, json, _) = run(&["info", "--json", o], b"");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["splits"]["train"]["tokens"], 7145);
    assert_eq!(v["dtype"], "uint16");
    // llm.c's own files, without a manifest.
    let (code, stdout, _) = run(
        &[
            "verify",
            "--vocab-size",
            "50257",
            data("fixtures/llmc/gpt2_u32.bin").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("7145 tokens"));
}

#[test]
fn bad_records_fail_with_file_and_line_and_leave_no_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = out.to_str().unwrap();
    let cases: Vec<(&[u8], &str)> = vec![
        (
            b"{\"ids\": [1, 2]}\n{\"ids\": [1, 50257]}\n",
            "<stdin>:2: ids[1]: id 50257 is not below the vocabulary size 50257",
        ),
        (
            b"{\"text\": \"no ids\"}\n",
            "<stdin>:1: missing field \"ids\"",
        ),
        (
            b"{\"ids\": [1, -3]}\n",
            "<stdin>:1: field \"ids\" must be a list of token ids",
        ),
        (
            b"{\"ids\": [1, 2], \"mask\": [1]}\n",
            "<stdin>:1: \"mask\" has 1 entries but \"ids\" has 2",
        ),
        (b"{\"ids\": [1, 2]\n", "<stdin>:1: malformed record"),
        (
            b"{\"ids\": [1], \"t\": \"\xff\"}\n",
            "<stdin>:1: not valid UTF-8",
        ),
    ];
    for (input, want) in cases {
        let (code, _, err) = run(&["-t", &gpt2(), "-o", o], input);
        assert_eq!(code, 1, "{want}");
        assert!(
            err.starts_with(&format!("pack: {want}")),
            "{err:?} vs {want:?}"
        );
        assert!(!out.exists());
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "no staging directory left"
        );
    }
    let (code, _, err) = run(
        &["--skip-invalid", "-t", &gpt2(), "-o", o],
        b"{\"ids\": [1]}\n{\"ids\": [99999]}\n{\"ids\": [2]}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("2 documents") && err.contains("1 invalid skipped"),
        "{err}"
    );
}

#[test]
fn a_killed_pack_leaves_nothing_verify_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let mut child = Command::new(PACK)
        .args(["-q", "-t", &gpt2(), "-o", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..2000 {
        writeln!(
            stdin,
            "{{\"id\": {i}, \"ids\": [{}, 2, 3, 4, 5]}}",
            i % 50000
        )
        .unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, _, err) = run(&["verify", out.to_str().unwrap()], b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("no such shard directory") || err.contains("no manifest.json"),
        "{err}"
    );
    // What it left is hidden and has no manifest.
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let e = e.unwrap();
        assert!(e.file_name().to_string_lossy().starts_with('.'));
        assert!(!e.path().join("manifest.json").exists());
    }
}

#[test]
fn verify_rejects_a_corrupted_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = out.to_str().unwrap();
    let input: String = (0..200)
        .map(|i| format!("{{\"id\": {i}, \"ids\": [{}, {}, 7]}}\n", i, i * 3))
        .collect();
    assert_eq!(
        run(
            &["-q", "-t", &gpt2(), "-o", o, "--val-fraction", "0.2"],
            input.as_bytes()
        )
        .0,
        0
    );
    assert_eq!(run(&["verify", o], b"").0, 0);
    let shard = out.join("val_000000.bin");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&shard, bytes).unwrap();
    let (code, _, err) = run(&["verify", o], b"");
    assert_eq!(code, 1);
    assert!(err.contains("val_000000.bin: checksum mismatch"), "{err}");
    assert!(err.trim_end().ends_with("1 problem(s) found"), "{err}");
}

#[test]
fn verify_wants_the_tokenizer_and_every_file_inside_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let out = tmp.path().join(name);
        let input: String = (0..50)
            .map(|i| format!("{{\"id\": {i}, \"ids\": [{i}, 7]}}\n"))
            .collect();
        let o = out.to_str().unwrap();
        assert_eq!(
            run(
                &["-q", "-t", &gpt2(), "-o", o, "--val-fraction", "0.2"],
                input.as_bytes()
            )
            .0,
            0
        );
        assert_eq!(run(&["verify", o], b"").0, 0);
        out
    };
    let verify = |dir: &std::path::Path| {
        let (code, stdout, err) = run(&["verify", dir.to_str().unwrap()], b"");
        assert_eq!(code, 1, "{stdout}");
        err
    };

    let dir = make("no-tokenizer");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert_eq!(
        verify(&dir),
        format!(
            "pack verify: {0}/tokenizer.json: missing: the manifest names it as the tokenizer the ids came from\npack: {0}: 1 problem(s) found\n",
            dir.display()
        )
    );

    // The manifest points at another directory's val shard (which verifies fine there).
    let good = make("good");
    let dir = make("elsewhere");
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"val_000000.bin\"", "\"../good/val_000000.bin\""),
    )
    .unwrap();
    std::fs::remove_file(dir.join("val_000000.bin")).unwrap();
    assert!(good.join("val_000000.bin").exists());
    assert_eq!(
        verify(&dir),
        format!(
            "pack verify: {}: shard \"../good/val_000000.bin\" is not a file name inside the directory\npack: {}: 1 problem(s) found\n",
            manifest.display(),
            dir.display()
        )
    );
}

#[test]
fn sft_masks_reach_the_mask_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let input = b"{\"ids\": [5, 6]}\n{\"ids\": [10, 11, 12, 50256], \"mask\": [0, 0, 1, 1]}\n{\"ids\": [20, 21], \"mask\": [0, 1]}\n";
    let (code, _, err) = run(
        &[
            "-q",
            "-t",
            &gpt2(),
            "-o",
            out.to_str().unwrap(),
            "--no-shuffle",
            "--val-fraction",
            "0",
        ],
        input,
    );
    assert_eq!(code, 0, "{err}");
    let set = wick_shard::ShardSet::open(&out).unwrap();
    assert_eq!(
        set.shards[0].mask().unwrap(),
        &[1, 1, 1, 0, 0, 1, 1, 0, 1, 1]
    );
    assert_eq!(set.shards[0].doc_starts().unwrap(), &[0, 3, 7]);
}

#[test]
fn empty_input_is_a_valid_empty_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    assert_eq!(
        run(&["-q", "-t", &gpt2(), "-o", out.to_str().unwrap()], b"").0,
        0
    );
    let (code, stdout, _) = run(&["verify", out.to_str().unwrap()], b"");
    assert_eq!(code, 0);
    assert!(stdout.contains("OK: 0 shards, 0 tokens"));
}

/// The folder rule: `pack -o D` replaces D only when D is an earlier pack output holding
/// nothing else; a folder with a manifest.json of someone else's, or with a file of the
/// user's in it, survives untouched. What a killed pack left beside D is cleared.
#[test]
fn replaces_only_its_own_output_and_clears_what_killed_runs_left() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = data("fixtures/llmc/docs.jsonl");
    let pack = |out: &std::path::Path| {
        run(
            &[
                "-q",
                "-t",
                &gpt2(),
                "-o",
                out.to_str().unwrap(),
                docs.to_str().unwrap(),
            ],
            b"",
        )
    };
    // Someone's folder that happens to hold a manifest.json: today's main deleted it whole.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("manifest.json"), "{\"mine\": true}").unwrap();
    std::fs::write(theirs.join("data.csv"), "a,b\n1,2\n").unwrap();
    let (code, _, err) = pack(&theirs);
    assert_eq!(code, 1);
    assert!(err.contains("not written by wick"), "{err}");
    assert_eq!(
        std::fs::read_to_string(theirs.join("data.csv")).unwrap(),
        "a,b\n1,2\n"
    );
    // Its own output is replaced; a dead run's staging folder beside it is removed.
    let out = tmp.path().join("shards");
    let (code, _, err) = pack(&out);
    assert_eq!(code, 0, "{err}");
    let stale = tmp.path().join(format!(".shards.tmp-{}-0", i32::MAX));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("train_000000.bin"), "half").unwrap();
    let (code, _, err) = pack(&out);
    assert_eq!(code, 0, "{err}");
    assert!(!stale.exists(), "a dead run's staging folder is cleared");
    assert_eq!(run(&["verify", out.to_str().unwrap()], b"").0, 0);
    // Once the user keeps a file of theirs in it, it is theirs too.
    std::fs::write(out.join("NOTES.md"), "mine").unwrap();
    let (code, _, err) = pack(&out);
    assert_eq!(code, 1);
    assert!(err.contains("holds NOTES.md"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("NOTES.md")).unwrap(),
        "mine"
    );
    // Nor does pack write a folder over the current one.
    let (code, _, err) = pack(std::path::Path::new("."));
    assert_eq!(code, 1);
    assert!(err.contains("current folder"), "{err}");
}
