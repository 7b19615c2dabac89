//! label end to end: keys on stdin, preferences and the sidecar on disk, the screen on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_label");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs label with `keys` on stdin (written from another thread, so a full stdout pipe cannot
/// deadlock the test).
fn label(args: &[&str], keys: &str) -> Out {
    let mut child = Command::new(BIN)
        .args(args)
        .env("COLUMNS", "80")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn label");
    let mut stdin = child.stdin.take().unwrap();
    let keys = keys.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        // label may stop reading (q) before all keys are written.
        let _ = stdin.write_all(&keys);
    });
    let out = child.wait_with_output().expect("wait for label");
    writer.join().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

struct Files {
    _dir: tempfile::TempDir,
    input: PathBuf,
    prefs: PathBuf,
    seen: PathBuf,
}

impl Files {
    fn new(lines: &[String]) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("pairs.jsonl");
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let prefs = dir.path().join("prefs.jsonl");
        let seen = dir.path().join("prefs.jsonl.seen");
        Files {
            _dir: dir,
            input,
            prefs,
            seen,
        }
    }

    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            self.input.to_str().unwrap(),
            "-o",
            self.prefs.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a
    }
}

fn records(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `n` pairs in the response_a/response_b shape with ids 0..n.
fn pairs(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "id": i,
                "prompt": format!("prompt {i}"),
                "response_a": format!("first{i}"),
                "response_b": format!("second{i}"),
                "source": "test",
            })
            .to_string()
        })
        .collect()
}

/// The responses shown on the left of each screen, in order.
fn shown_left(stdout: &str) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    let mut left = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("─┼─") {
            let row = lines[i + 1];
            left.push(row.split(" │ ").next().unwrap().trim().to_string());
        }
    }
    left
}

#[test]
fn a_and_b_choose_the_response_shown_on_that_side_under_swapping() {
    let f = Files::new(&pairs(16));
    let keys = "a\nb\n".repeat(8);
    let r = label(&f.args(&[]), &keys);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let left = shown_left(&r.stdout);
    assert_eq!(left.len(), 16);
    let swapped = left.iter().filter(|l| l.starts_with("second")).count();
    assert!(
        (3..=13).contains(&swapped),
        "about half shown swapped: {swapped}"
    );
    let prefs = records(&f.prefs);
    assert_eq!(prefs.len(), 16);
    for (i, p) in prefs.iter().enumerate() {
        assert_eq!(p["id"], i);
        assert_eq!(p["prompt"], format!("prompt {i}"));
        assert_eq!(p["source"], "test", "extra fields kept");
        let (chosen, rejected) = (
            p["chosen"].as_str().unwrap(),
            p["rejected"].as_str().unwrap(),
        );
        // The actual responses, never display labels.
        let mut both = [chosen, rejected];
        both.sort();
        assert_eq!(both, [format!("first{i}"), format!("second{i}")]);
        let a_pressed = i % 2 == 0;
        assert_eq!(chosen == left[i], a_pressed, "record {i}: {p}");
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["prompt", "chosen", "rejected", "id", "source"]);
    }
    assert!(!f.seen.exists(), "no ties or skips, no sidecar");
    assert!(r
        .stderr
        .contains("16 labelled, 0 ties, 0 skipped, 0 remaining of 16 pairs"));

    // The same seed shows the same sides; --no-swap shows the input order.
    let g = Files::new(&pairs(16));
    let again = label(&g.args(&["--swap-seed", "0", "-q"]), "q\n");
    assert_eq!(shown_left(&again.stdout), left[..1]);
    let h = Files::new(&pairs(16));
    let r = label(&h.args(&["--no-swap"]), &"a\n".repeat(16));
    assert!(shown_left(&r.stdout).iter().all(|l| l.starts_with("first")));
    assert!(records(&h.prefs)
        .iter()
        .all(|p| p["chosen"].as_str().unwrap().starts_with("first")));
}

#[test]
fn every_input_shape_is_read() {
    let f = Files::new(&[
        r#"{"prompt":"p1","response_a":"x1","response_b":"y1"}"#.into(),
        r#"{"prompt":"p2","a":"x2","b":"y2"}"#.into(),
        r#"{"prompt":"p3","responses":["x3","y3"]}"#.into(),
    ]);
    let r = label(&f.args(&["--no-swap"]), "b\nb\nb\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let prefs = records(&f.prefs);
    let got: Vec<(&str, &str)> = prefs
        .iter()
        .map(|p| {
            (
                p["chosen"].as_str().unwrap(),
                p["rejected"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("y1", "x1"), ("y2", "x2"), ("y3", "x3")]);
    // The consumed response fields are not copied.
    assert!(prefs.iter().all(|p| p.as_object().unwrap().len() == 3));
}

#[test]
fn a_byte_order_mark_at_the_start_of_the_input_is_skipped() {
    let mut lines = pairs(2);
    lines[0] = format!("\u{feff}{}", lines[0]);
    let f = Files::new(&lines);
    let r = label(&f.args(&["--no-swap"]), "a\nb\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let prefs = records(&f.prefs);
    assert_eq!(prefs.len(), 2);
    assert_eq!(prefs[0]["id"], 0);
    assert_eq!(prefs[0]["chosen"], "first0");
    assert_eq!(prefs[1]["chosen"], "second1");
}

#[test]
fn ties_and_skips_go_to_the_sidecar_only() {
    let f = Files::new(&pairs(3));
    let r = label(&f.args(&[]), "t\ns\na\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let prefs = records(&f.prefs);
    assert_eq!(prefs.len(), 1);
    assert_eq!(prefs[0]["id"], 2);
    let seen = records(&f.seen);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["decision"], "tie");
    assert_eq!(seen[0]["line"], 1);
    assert_eq!(seen[1]["decision"], "skip");
    assert_eq!(seen[1]["line"], 2);
    assert!(seen.iter().all(|s| s["key"].as_str().unwrap().len() == 32));
    assert!(
        r.stderr
            .contains("1 labelled, 1 ties, 1 skipped, 0 remaining of 3 pairs"),
        "{}",
        r.stderr
    );
}

#[test]
fn resuming_skips_what_was_decided_even_in_a_reordered_input() {
    let mut lines = pairs(6);
    let f = Files::new(&lines);
    // a, tie, skip, then end of input: a clean quit.
    let r = label(&f.args(&[]), "a\nt\ns\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("3 remaining of 6 pairs"), "{}", r.stderr);
    // The fourth pair was on screen when the keys ran out.
    assert!(r.stdout.contains("[4/6]") && !r.stdout.contains("[5/6]"));

    // The input reversed, and one pair with its responses the other way round.
    lines.reverse();
    lines[5] =
        r#"{"id":0,"prompt":"prompt 0","response_a":"second0","response_b":"first0"}"#.into();
    std::fs::write(&f.input, lines.join("\n") + "\n").unwrap();
    let r = label(&f.args(&[]), "b\nb\nb\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("\n═"), "{}", r.stdout);
    assert!(r.stdout.contains("[4/6] line 1, id 5"), "{}", r.stdout);
    assert!(r.stdout.contains("[6/6] line 3, id 3"), "{}", r.stdout);
    for old in ["id 0", "id 1", "id 2"] {
        assert!(!r.stdout.contains(old), "{old} shown again");
    }
    let ids: Vec<u64> = records(&f.prefs)
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [0, 5, 4, 3]);
    assert!(r
        .stderr
        .contains("4 labelled, 1 ties, 1 skipped, 0 remaining"));

    // Nothing left: nothing shown. --revisit-skipped brings back the skip.
    let r = label(&f.args(&[]), "a\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains('['), "{}", r.stdout);
    let r = label(&f.args(&["--revisit-skipped"]), "a\n");
    assert!(
        r.stdout.contains("[6/6]") && r.stdout.contains("id 2"),
        "{}",
        r.stdout
    );
    assert_eq!(records(&f.prefs).len(), 5);
    assert!(
        r.stderr
            .contains("5 labelled, 1 ties, 0 skipped, 0 remaining"),
        "{}",
        r.stderr
    );
}

#[test]
fn quitting_keeps_the_decisions_made_so_far() {
    let f = Files::new(&pairs(5));
    let r = label(&f.args(&[]), "a\nt\nq\na\na\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(records(&f.prefs).len(), 1);
    assert_eq!(records(&f.seen).len(), 1);
    assert!(
        r.stderr.contains(
            "1 labelled, 1 ties, 0 skipped, 3 remaining of 5 pairs (2 decided now); run the same command to go on"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("[4/5]"));
}

#[test]
fn a_bad_record_is_named_and_nothing_is_written() {
    let mut lines = pairs(4);
    lines[2] = r#"{"id":2,"prompt":"p","response_a":"x"}"#.into();
    let f = Files::new(&lines);
    let r = label(&f.args(&[]), "a\na\na\na\n");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!("label: {}:3: missing \"response_b\"", f.input.display())
    );
    assert!(r.stdout.is_empty(), "no pair shown: {}", r.stdout);
    assert!(!f.prefs.exists() && !f.seen.exists());

    lines[2] = r#"{"id":2,"response_a":"x","response_b":"y"}"#.into();
    let f = Files::new(&lines);
    let r = label(&f.args(&[]), "a\n");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(":3: missing \"prompt\""), "{}", r.stderr);
    assert!(!f.prefs.exists());
}

#[test]
fn skip_invalid_leaves_bad_records_out_and_counts_them() {
    let mut lines = pairs(4);
    lines[2] = r#"{"id":2,"prompt":"p","response_a":"x"}"#.into();
    let f = Files::new(&lines);
    let r = label(&f.args(&["--skip-invalid", "--no-swap"]), "a\na\na\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(":3: missing \"response_b\""),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("label: 1 invalid skipped"),
        "{}",
        r.stderr
    );
    let ids: Vec<Value> = records(&f.prefs).iter().map(|p| p["id"].clone()).collect();
    assert_eq!(ids, [0, 1, 3]);
}

#[test]
fn a_cut_short_output_is_reported_not_extended() {
    let f = Files::new(&pairs(2));
    std::fs::write(
        &f.prefs,
        "{\"prompt\":\"prompt 0\",\"chosen\":\"first0\",\"rejected\":\"second0\"}\n{\"prompt\":\"pro",
    )
    .unwrap();
    let r = label(&f.args(&[]), "a\na\n");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with(&format!(
            "label: {}:2: incomplete last line",
            f.prefs.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(&f.prefs).unwrap().lines().count(),
        2
    );
}

#[test]
fn usage_errors_exit_2() {
    let f = Files::new(&pairs(1));
    let r = label(&["-", "-o", f.prefs.to_str().unwrap()], "");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("stdin carries the keys"), "{}", r.stderr);
    let r = label(&[f.input.to_str().unwrap()], "");
    assert_eq!(r.code, 2);
    let r = label(&f.args(&["--no-swap", "--swap-seed", "3"]), "");
    assert_eq!(r.code, 2);
    let r = label(
        &[f.input.to_str().unwrap(), "-o", f.input.to_str().unwrap()],
        "",
    );
    assert_eq!(r.code, 2);
}
