//! The `tokenize` binary end to end: round trips, agreement with the Python `tokenizers`
//! library, SFT masks, preference records, bad input and pipes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use wick_text::Tok;

const BIN: &str = env!("CARGO_BIN_EXE_tokenize");

use wick_testkit::{testdata as data, Out};

fn run(args: &[&str], stdin: &[u8]) -> Out {
    wick_testkit::run(BIN, args, stdin)
}

fn gpt2() -> PathBuf {
    data("tokenizers/gpt2/tokenizer.json")
}

fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn jsonl(records: &[Value]) -> Vec<u8> {
    records
        .iter()
        .map(|r| r.to_string() + "\n")
        .collect::<String>()
        .into_bytes()
}

#[test]
fn decode_of_encode_is_identity_on_every_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let trained = tmp.path().join("tok.json");
    let t = run(
        &[
            "train",
            "--vocab-size",
            "1500",
            "-q",
            "-o",
            trained.to_str().unwrap(),
            data("english.jsonl").to_str().unwrap(),
            data("chinese.jsonl").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(t.code, 0, "{}", t.stderr);
    for tok in [gpt2(), trained] {
        for corpus in ["english.jsonl", "chinese.jsonl"] {
            let enc = run(
                &[
                    "-q",
                    "--no-eos",
                    "-t",
                    tok.to_str().unwrap(),
                    data(corpus).to_str().unwrap(),
                ],
                b"",
            );
            assert_eq!(enc.code, 0, "{}", enc.stderr);
            let dec = run(
                &["decode", "-t", tok.to_str().unwrap()],
                enc.stdout.as_bytes(),
            );
            assert_eq!(dec.code, 0, "{}", dec.stderr);
            let original = lines(&std::fs::read_to_string(data(corpus)).unwrap());
            let decoded = lines(&dec.stdout);
            assert_eq!(original.len(), decoded.len());
            for (a, b) in original.iter().zip(&decoded) {
                assert_eq!(a["text"], b["text"], "{corpus} with {}", tok.display());
                assert_eq!(a["id"], b["id"]);
            }
        }
    }
}

#[test]
fn ids_equal_python_tokenizers_on_gpt2() {
    let fixture = lines(&std::fs::read_to_string(data("fixtures/gpt2_ids.jsonl")).unwrap());
    assert!(fixture.len() > 100);
    let input: Vec<Value> = fixture
        .iter()
        .map(|r| json!({"name": r["name"], "text": r["text"]}))
        .collect();
    let out = run(
        &["-q", "--no-eos", "-t", gpt2().to_str().unwrap()],
        &jsonl(&input),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = lines(&out.stdout);
    assert_eq!(got.len(), fixture.len());
    for (g, want) in got.iter().zip(&fixture) {
        assert_eq!(
            ids(&g["ids"]),
            ids(&want["ids"]),
            "{}: {:?}",
            want["name"],
            want["text"]
        );
    }
}

#[test]
fn eos_is_appended_and_other_fields_kept_byte_for_byte() {
    let input = b"{\"meta\": {\"a\": [1, 2]},  \"text\": \"Hello world\"}\n\n{\"text\":\"\"}\n";
    let out = run(&["-q", "-t", gpt2().to_str().unwrap()], input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"meta\": {\"a\": [1, 2]},  \"text\": \"Hello world\",\"ids\":[15496,995,50256]}\n{\"text\":\"\",\"ids\":[50256]}\n"
    );
    let dropped = run(
        &["-q", "--drop-text", "-t", gpt2().to_str().unwrap()],
        input,
    );
    assert_eq!(
        lines(&dropped.stdout)[0],
        json!({"meta": {"a": [1, 2]}, "ids": [15496, 995, 50256]})
    );
}

#[test]
fn output_order_is_input_order_whatever_the_threads() {
    let corpus = data("english.jsonl");
    let one = run(
        &[
            "-q",
            "--threads",
            "1",
            "-t",
            gpt2().to_str().unwrap(),
            corpus.to_str().unwrap(),
        ],
        b"",
    );
    let two = run(
        &[
            "-q",
            "--threads",
            "2",
            "-t",
            gpt2().to_str().unwrap(),
            corpus.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(one.code, 0);
    assert_eq!(one.stdout, two.stdout);
    let ids_in: Vec<Value> = lines(&std::fs::read_to_string(&corpus).unwrap())
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    let ids_out: Vec<Value> = lines(&two.stdout).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids_in, ids_out);
}

/// A model folder: the GPT-2 tokenizer with a ChatML chat template.
fn chatml_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("model");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(gpt2(), folder.join("tokenizer.json")).unwrap();
    let config = json!({
        "eos_token": "<|endoftext|>",
        "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    });
    std::fs::write(folder.join("tokenizer_config.json"), config.to_string()).unwrap();
    folder
}

/// Decodes the tokens with mask 1 (special tokens skipped) and with mask 0.
fn split_by_mask(tok: &Tok, rec: &Value) -> (String, String) {
    let (ids, mask) = (ids(&rec["ids"]), ids(&rec["mask"]));
    assert_eq!(ids.len(), mask.len());
    let pick = |m: u32| -> Vec<u32> {
        ids.iter()
            .zip(&mask)
            .filter(|(_, &k)| k == m)
            .map(|(&i, _)| i)
            .collect()
    };
    (
        tok.decode(&pick(1), true).unwrap(),
        tok.decode(&pick(0), false).unwrap(),
    )
}

#[test]
fn sft_masks_cover_exactly_the_response() {
    let tmp = tempfile::tempdir().unwrap();
    let records = vec![
        json!({"instruction": "Name the play.", "input": "To be, or not to be", "output": "Hamlet, Act III."}),
        json!({"instruction": "写一首词。", "output": "明月几时有？把酒问青天。"}),
        json!({"prompt": "Shall I compare thee", "completion": " to a summer's day?"}),
        json!({"messages": [
            {"role": "user", "content": "Who wrote Macbeth?"},
            {"role": "assistant", "content": "Shakespeare."},
            {"role": "user", "content": "When?"},
            {"role": "assistant", "content": "Around 1606."}]}),
    ];
    let responses = [
        "Hamlet, Act III.",
        "明月几时有？把酒问青天。",
        " to a summer's day?",
        "Shakespeare.Around 1606.",
    ];
    // Without a chat template: Alpaca prompt, plain concatenation, wick's default chat template.
    let tok = Tok::load(gpt2()).unwrap();
    let out = run(&["-q", "-t", gpt2().to_str().unwrap()], &jsonl(&records));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (rec, want) in lines(&out.stdout).iter().zip(responses) {
        let (trained, prompt) = split_by_mask(&tok, rec);
        assert_eq!(trained, want);
        assert!(!prompt.contains(want.trim()), "{prompt:?}");
        let last_trained = ids(&rec["ids"])
            .into_iter()
            .zip(ids(&rec["mask"]))
            .rfind(|p| p.1 == 1);
        assert_eq!(
            last_trained,
            Some((50256, 1)),
            "EOS closes the response and counts for loss"
        );
    }
    // With the folder's ChatML template: each assistant turn plus its end marker.
    let folder = chatml_folder(tmp.path());
    let out = run(&["-q", "-t", folder.to_str().unwrap()], &jsonl(&records));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = lines(&out.stdout);
    let (trained, prompt) = split_by_mask(&tok, &got[3]);
    assert_eq!(trained, "Shakespeare.<|im_end|>Around 1606.<|im_end|>");
    assert_eq!(prompt, "<|im_start|>user\nWho wrote Macbeth?<|im_end|>\n<|im_start|>assistant\n\n<|im_start|>user\nWhen?<|im_end|>\n<|im_start|>assistant\n\n");
    let (trained, prompt) = split_by_mask(&tok, &got[0]);
    assert_eq!(trained, "Hamlet, Act III.<|im_end|>");
    assert!(prompt.starts_with("<|im_start|>user\nName the play.\n\nTo be, or not to be<|im_end|>"));
}

#[test]
fn preference_records_get_three_id_lists() {
    let rec = json!({"prompt": "Full fathom five", "chosen": " thy father lies;", "rejected": " the sea is calm;"});
    let out = run(
        &["-q", "-t", gpt2().to_str().unwrap()],
        &jsonl(std::slice::from_ref(&rec)),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = &lines(&out.stdout)[0];
    let tok = Tok::load(gpt2()).unwrap();
    assert_eq!(
        tok.decode(&ids(&got["prompt_ids"]), false).unwrap(),
        "Full fathom five"
    );
    assert_eq!(
        tok.decode(&ids(&got["chosen_ids"]), false).unwrap(),
        " thy father lies;<|endoftext|>"
    );
    assert_eq!(
        tok.decode(&ids(&got["rejected_ids"]), true).unwrap(),
        " the sea is calm;"
    );
    let dec = run(
        &["decode", "-t", gpt2().to_str().unwrap(), "--skip-special"],
        out.stdout.as_bytes(),
    );
    assert_eq!(lines(&dec.stdout)[0], rec);
}

#[test]
fn bad_input_names_file_and_line_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let t = gpt2();
    let t = t.to_str().unwrap();
    let cases: Vec<(&[u8], &str)> = vec![
        (
            b"{\"text\": \"ok\"}\n{\"text\": \"broken\n",
            "bad.jsonl:2: malformed JSON",
        ),
        (
            b"{\"body\": \"no text\"}\n",
            "bad.jsonl:1: missing field \"text\"",
        ),
        (
            b"{\"text\": 5}\n",
            "bad.jsonl:1: field \"text\" must be a string, found a number",
        ),
        (b"{\"text\": \"caf\xe9\"}\n", "bad.jsonl:1: not valid UTF-8"),
        (b"[1, 2]\n", "bad.jsonl:1: expected a JSON object"),
        (
            b"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
            "bad.jsonl:1: conversation has no assistant message",
        ),
    ];
    for (input, want) in cases {
        let path = tmp.path().join("bad.jsonl");
        std::fs::write(&path, input).unwrap();
        let out = run(&["-t", t, path.to_str().unwrap()], b"");
        assert_eq!(out.code, 1, "{want}");
        let first = out.stderr.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("tokenize: {}", path.display()).replace("bad.jsonl", "")),
            "{first}"
        );
        assert!(first.contains(want), "{first:?} should contain {want:?}");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    }
    // --skip-invalid keeps going and counts.
    let mixed = b"{\"text\": \"a\"}\n{\"text\": 1}\nnot json\n{\"text\": \"b\"}\n";
    let out = run(&["--skip-invalid", "-t", t], mixed);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(lines(&out.stdout).len(), 2);
    assert!(out.stderr.contains("2 invalid skipped"), "{}", out.stderr);
    // A missing tokenizer, and a missing input file.
    let out = run(&["-t", "/nonexistent/tok.json"], b"");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("tokenize: /nonexistent/tok.json: "),
        "{}",
        out.stderr
    );
    let out = run(&["-t", t, "/nonexistent.jsonl"], b"");
    assert!(
        out.stderr.starts_with("tokenize: /nonexistent.jsonl: "),
        "{}",
        out.stderr
    );
    // Usage errors exit 2.
    assert_eq!(run(&["--no-such-flag"], b"").code, 2);
}

#[test]
fn a_byte_order_mark_at_the_start_is_skipped() {
    let t = gpt2();
    let t = t.to_str().unwrap();
    let input = "{\"text\": \"Shall I compare thee\"}\n{\"text\": \"to a summer's day?\"}\n";
    let plain = run(&["-q", "-t", t], input.as_bytes());
    let bom = run(&["-q", "-t", t], format!("\u{feff}{input}").as_bytes());
    assert_eq!(bom.code, 0, "{}", bom.stderr);
    assert_eq!(bom.stdout, plain.stdout);
    assert_eq!(lines(&bom.stdout).len(), 2);
}

#[test]
fn a_chat_template_that_does_not_end_is_stopped_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = chatml_folder(tmp.path());
    let config = json!({
        "eos_token": "<|endoftext|>",
        "chat_template": "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}{% endfor %}{% endfor %}{% endfor %}{{ messages[0]['content'] }}"
    });
    std::fs::write(folder.join("tokenizer_config.json"), config.to_string()).unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"prompt\": \"Q\", \"completion\": \"A\"}\n").unwrap();
    // About 0.2 s; without the step budget, 10^12 iterations: give up on it after 60 s.
    let mut child = Command::new(BIN)
        .args(["-t", folder.to_str().unwrap(), input.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() >= 60 {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("tokenize still rendering the template after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let out = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "tokenize: {}:1: the chat template of {} did not finish within 5000000 steps (a loop that does not end?)\n",
            input.display(),
            folder.join("tokenizer_config.json").display()
        )
    );
}

#[test]
fn empty_input_gives_empty_output() {
    let out = run(&["-q", "-t", gpt2().to_str().unwrap()], b"");
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
}

#[test]
fn output_file_is_written_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("ids.jsonl");
    let out = run(
        &[
            "-q",
            "-t",
            gpt2().to_str().unwrap(),
            "-o",
            dest.to_str().unwrap(),
        ],
        b"{\"text\":\"a\"}\n{\"text\":3}\n",
    );
    assert_eq!(out.code, 1);
    assert!(!dest.exists(), "a failed run leaves no output file");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nor a temporary"
    );
    let out = run(
        &[
            "-q",
            "-t",
            gpt2().to_str().unwrap(),
            "-o",
            dest.to_str().unwrap(),
        ],
        b"{\"text\":\"a\"}\n",
    );
    assert_eq!(out.code, 0);
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "{\"text\":\"a\",\"ids\":[64,50256]}\n"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let corpus = std::fs::read(data("english.jsonl")).unwrap().repeat(4);
    let mut child = Command::new(BIN)
        .args(["-t", gpt2().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&corpus);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    writer.join().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("Broken pipe") && !stderr.contains("error"),
        "{stderr}"
    );
}

#[test]
fn train_writes_a_loadable_tokenizer_and_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tok");
    let out = run(
        &[
            "train",
            "--vocab-size",
            "800",
            "--special-tokens",
            "<|endoftext|>,<|pad|>",
            "-o",
            &format!("{}/", dir.display()),
            data("english.jsonl").to_str().unwrap(),
            data("raw/zh/tang300").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let tok = Tok::load(&dir).unwrap();
    assert_eq!(tok.vocab_size(), 800);
    assert_eq!(tok.inner.token_to_id("<|endoftext|>"), Some(0));
    assert_eq!(tok.inner.token_to_id("<|pad|>"), Some(1));
    assert_eq!(tok.eos_id, Some(0));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["eos_token"], "<|endoftext|>");
    // Byte-level: any text, even unseen script, round-trips.
    let text = "Ἐν ἀρχῇ ἦν ὁ λόγος 🙂\r\n\t x";
    assert_eq!(tok.decode(&tok.encode(text).unwrap(), false).unwrap(), text);
    // Frequent words became single tokens.
    assert_eq!(tok.encode(" the").unwrap().len(), 1);
}

#[test]
fn train_reports_bad_input_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("tok.json");
    let out = run(
        &["train", "--vocab-size", "100", "-o", dest.to_str().unwrap()],
        b"{\"text\": \"x\"}\n",
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--vocab-size 100 is too small"),
        "{}",
        out.stderr
    );
    let out = run(
        &["train", "--vocab-size", "300", "-o", dest.to_str().unwrap()],
        b"{\"text\": \"x\"}\n{\"text\": \n",
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("<stdin>:2: malformed JSON"),
        "{}",
        out.stderr
    );
    assert!(!dest.exists());
}

#[test]
fn decode_rejects_ids_outside_the_vocabulary() {
    let out = run(
        &["decode", "-t", gpt2().to_str().unwrap()],
        b"{\"ids\": [1, 2]}\n{\"ids\": [50257]}\n",
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "<stdin>:2: field \"ids\"[0]: id 50257 is not below the vocabulary size 50257"
        ),
        "{}",
        out.stderr
    );
}

/// `-o DIR/x.json` writes that file alone: today's main also overwrote DIR's
/// tokenizer_config.json, changing the EOS of the model folder it sat in.
#[test]
fn train_to_a_file_leaves_the_folder_around_it_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let config = r#"{"eos_token": "<|im_end|>", "chat_template": "{{ messages }}"}"#;
    std::fs::write(model.join("tokenizer_config.json"), config).unwrap();
    let dest = model.join("other.json");
    let out = run(
        &[
            "train",
            "--vocab-size",
            "300",
            "-o",
            dest.to_str().unwrap(),
            data("english.jsonl").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(Tok::load(&dest).is_ok());
    assert_eq!(
        std::fs::read_to_string(model.join("tokenizer_config.json")).unwrap(),
        config
    );
    // A folder -o is replaced only when it is an earlier tokenizer folder of wick's.
    let out = run(
        &[
            "train",
            "--vocab-size",
            "300",
            "-o",
            &format!("{}/", model.display()),
            data("english.jsonl").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not written by wick"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(model.join("tokenizer_config.json")).unwrap(),
        config
    );
}

/// A tokenizer folder appears whole or not at all: killed at each of its writes and renames
/// (today a kill between the two renames left a folder with another EOS), the folder is the
/// previous one or the new one, never a mixture.
#[test]
fn train_folder_is_never_half_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tok");
    let o = format!("{}/", dir.display());
    let english = data("english.jsonl");
    let e = english.to_str().unwrap();
    let first = ["train", "--vocab-size", "300", "-o", &o, e, "-q"];
    // The previous folder: EOS <|endoftext|> (id 0).
    assert_eq!(run(&first, b"").code, 0);
    let previous = wick_testkit::files_under(&dir);
    // The new one names another EOS.
    let second = [
        "train",
        "--vocab-size",
        "300",
        "--special-tokens",
        "<|pad|>,<|endoftext|>",
        "-o",
        &o,
        e,
        "-q",
    ];
    let points = wick_testkit::fault_points(BIN, &second, b"");
    let new = wick_testkit::files_under(&dir);
    assert_ne!(new, previous);
    assert!(points.iter().any(|p| p.contains("exchange")), "{points:#?}");
    for n in 1..=points.len() {
        assert_eq!(run(&first, b"").code, 0);
        wick_testkit::run_killed_at(BIN, &second, n, b"");
        let now = wick_testkit::files_under(&dir);
        assert!(
            now == previous || now == new,
            "killed at {n} ({})",
            points[n - 1]
        );
        assert_eq!(run(&second, b"").code, 0);
        assert_eq!(wick_testkit::files_under(&dir), new);
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["tok"], "killed at {n}");
    }
}
