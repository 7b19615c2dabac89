//! The `plot` binary end to end on two real `train` logs: PNG dimensions, SVG panels and
//! legend, a torn last line, a bad middle line, empty logs, usage errors, stdin/stdout, and
//! --follow redrawing a growing log until Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wick_testkit::{run, testdata, Out};

const BIN: &str = env!("CARGO_BIN_EXE_plot");

fn plot(args: &[&str]) -> Out {
    run(BIN, args, b"")
}

fn fixture(run: &str) -> PathBuf {
    testdata(&format!("fixtures/plot/runs/{run}/metrics.jsonl"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Width and height from a PNG's IHDR chunk (signature, length, "IHDR", then big-endian u32s).
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The texts of an SVG's <text> elements (plotters writes each on its own line).
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            body.trim().to_string()
        })
        .collect()
}

/// A copy of a fixture log in `dir/<run>/metrics.jsonl`, its lines passed through `edit`.
fn edited(dir: &Path, run: &str, edit: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let text = std::fs::read_to_string(fixture(run)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines);
    let path = dir.join(run).join("metrics.jsonl");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
fn png_has_the_default_and_the_requested_size() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("curves.png");
    let a = fixture("nano-lr1e-3");
    let b = fixture("nano-lr3e-3");
    let r = plot(&[s(&a), s(&b), "-o", s(&out)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // 4 panels (loss, lr, grad norm, tokens/s) in 2x2 of 600x380, plus a 40 px legend.
    let png = std::fs::read(&out).unwrap();
    assert_eq!(png_size(&png), (1200, 800));
    assert!(
        png.len() > 30_000,
        "suspiciously small: {} bytes",
        png.len()
    );
    assert_eq!(
        r.stderr.trim(),
        format!("plot: 2 runs, 4 panels → {} (1200x800)", s(&out))
    );

    let r = plot(&[s(&a), "-o", s(&out), "--size", "900x500", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert_eq!(png_size(&std::fs::read(&out).unwrap()), (900, 500));

    // One panel: one column.
    let r = plot(&[s(&a), "-o", s(&out), "--only", "loss", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(png_size(&std::fs::read(&out).unwrap()), (600, 420));
    // Nothing but the picture is left in the directory.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["curves.png"]);
}

#[test]
fn svg_has_panel_titles_axes_and_both_runs_in_the_legend() {
    let tmp = tempfile::tempdir().unwrap();
    let svg_path = tmp.path().join("curves.svg");
    let png_path = tmp.path().join("curves.png");
    let r = plot(&[
        s(&fixture("nano-lr1e-3")),
        s(&fixture("nano-lr3e-3")),
        "-o",
        s(&svg_path),
        "-o",
        s(&png_path),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(png_size(&std::fs::read(&png_path).unwrap()), (1200, 800));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.starts_with("<svg width=\"1200\" height=\"800\""),
        "{}",
        &svg[..80]
    );
    let texts = svg_texts(&svg);
    let has = |t: &str| texts.iter().any(|x| x == t);
    for t in [
        "loss",
        "learning rate",
        "gradient norm",
        "throughput (tokens/s)",
        "nano-lr1e-3",
        "nano-lr3e-3",
        "step 200",
        "train",
        "val",
        "log scale",
        "step",
        "lr",
        "grad_norm",
        "tokens_per_s",
    ] {
        assert!(has(t), "no text {t:?} in the SVG: {texts:?}");
    }
    // The counters are left out unless asked for.
    assert!(!has("elapsed_s") && !has("step_ms") && !has("tokens"));
    // Two runs: no "last:" values (they would not say which run).
    assert!(!texts.iter().any(|t| t.starts_with("last:")));

    let r = plot(&[s(&fixture("nano-lr1e-3")), "-o", s(&svg_path), "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let texts = svg_texts(&std::fs::read_to_string(&svg_path).unwrap());
    for t in ["elapsed_s", "step_ms", "tokens"] {
        assert!(texts.iter().any(|x| x == t), "--all: no {t:?}");
    }
    // One run: the last values in the panel titles.
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("last: train 4.") && t.contains("val 4.137")),
        "{texts:?}"
    );
}

#[test]
fn labels_other_x_fields_and_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.svg");
    let r = plot(&[
        s(&fixture("nano-lr1e-3")),
        s(&fixture("nano-lr3e-3")),
        "--label",
        "slow",
        "--label",
        "fast",
        "--x",
        "tokens",
        "--only",
        "lr,val_loss",
        "--title",
        "lr sweep",
        "-o",
        s(&out),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let texts = svg_texts(&std::fs::read_to_string(&out).unwrap());
    let has = |t: &str| texts.iter().any(|x| x == t);
    assert!(has("slow") && has("fast") && has("lr sweep"), "{texts:?}");
    assert!(has("tokens 154k"), "{texts:?}"); // 200 steps x 12 x 64 tokens
                                              // Panels in --only's order (the loss panel's title and y axis both read "loss").
    let mut titles: Vec<&String> = texts
        .iter()
        .filter(|t| ["loss", "learning rate", "gradient norm"].contains(&t.as_str()))
        .collect();
    titles.dedup();
    assert_eq!(titles, ["learning rate", "loss"]);
}

#[test]
fn a_torn_last_line_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let log = edited(tmp.path(), "nano-lr1e-3", |lines| {
        lines.push(r#"{"step":201,"loss":4.1,"lr":0.0001,"grad_"#.into());
    });
    let out = tmp.path().join("c.svg");
    let r = plot(&[s(&log), "-o", s(&out)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "plot: {}: skipped a partly written last line",
            s(&log)
        )),
        "{}",
        r.stderr
    );
    // The run got to step 200 (the torn 201 does not count).
    let texts = svg_texts(&std::fs::read_to_string(&out).unwrap());
    assert!(texts.iter().any(|t| t == "step 200"), "{texts:?}");
}

#[test]
fn a_bad_line_in_the_middle_is_an_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let log = edited(tmp.path(), "nano-lr1e-3", |lines| {
        lines[49].truncate(30);
    });
    let out = tmp.path().join("c.png");
    let r = plot(&[s(&log), "-o", s(&out)]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with(&format!("plot: {}:50: malformed JSON", s(&log))),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn empty_logs_and_unknown_fields_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = tmp.path().join("c.png");
    let r = plot(&[s(&empty), "-o", s(&out)]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!("plot: {}: empty log (no metrics lines)", s(&empty))
    );
    let r = plot(&[
        s(&fixture("nano-lr1e-3")),
        "-o",
        s(&out),
        "--only",
        "reward",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--only: no field reward"), "{}", r.stderr);
    let r = plot(&[s(&tmp.path().join("missing.jsonl")), "-o", s(&out)]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("missing.jsonl: No such file"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

#[test]
fn usage_errors_exit_2() {
    let log = fixture("nano-lr1e-3");
    for args in [
        vec![s(&log), "-o", "curves.jpg"],
        vec![s(&log), "--label", "a", "--label", "b", "-o", "c.png"],
        vec![s(&log), "--follow"],
        vec!["--follow", "-o", "c.png"],
        vec![s(&log), "--smooth", "1", "-o", "c.png"],
        vec![s(&log), "--size", "12", "-o", "c.png"],
    ] {
        let r = plot(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
}

#[test]
fn reads_stdin_and_writes_stdout() {
    let log = std::fs::read(fixture("nano-lr3e-3")).unwrap();
    let r = run(BIN, &["--image-format", "svg", "-q"], &log);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("<svg"));
    assert!(svg_texts(&r.stdout).iter().any(|t| t == "stdin"));
}

#[test]
fn old_spellings_out_and_format_still_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let (new, old) = (tmp.path().join("new"), tmp.path().join("old"));
    let log = fixture("nano-lr3e-3");
    let r = plot(&[s(&log), "--output", s(&new), "--image-format", "svg", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = plot(&[s(&log), "--out", s(&old), "--format", "svg", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(&new).unwrap(), std::fs::read(&old).unwrap());
    let help = plot(&["--help"]).stdout;
    assert!(help.contains("--image-format") && help.contains("--output"));
    assert!(
        !help.contains("--format") && !help.contains("--out "),
        "{help}"
    );
}

#[test]
fn skip_invalid_leaves_a_bad_middle_line_out_and_counts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = edited(tmp.path(), "nano-lr1e-3", |lines| {
        lines[49].truncate(30);
    });
    let out = tmp.path().join("c.png");
    let r = plot(&[s(&log), "-o", s(&out), "--skip-invalid"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("plot: {}: 1 invalid skipped", s(&log))),
        "{}",
        r.stderr
    );
    assert!(out.exists());
}

#[test]
fn help_explains_the_tool() {
    let r = plot(&["--help"]);
    assert_eq!(r.code, 0);
    for t in [
        "--follow",
        "--smooth",
        "val_loss",
        "metrics.jsonl",
        "Examples:",
    ] {
        assert!(r.stdout.contains(t), "--help lacks {t:?}");
    }
}

/// Polls until `f` holds or 20 s pass.
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn follow_redraws_a_growing_log_until_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let full = std::fs::read_to_string(fixture("nano-lr1e-3")).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let dir = tmp.path().join("live");
    std::fs::create_dir(&dir).unwrap();
    let log = dir.join("metrics.jsonl");
    // Up to step 100, and half of the next line: a run mid-write.
    let mut part: String = lines[..=100].iter().map(|l| format!("{l}\n")).collect();
    part.push_str(&lines[101][..20]);
    std::fs::write(&log, &part).unwrap();
    let svg = tmp.path().join("live.svg");
    let png = tmp.path().join("live.png");
    let child = std::process::Command::new(BIN)
        .args([
            s(&log),
            "--follow",
            "--interval",
            "0.1",
            "-o",
            s(&svg),
            "-o",
            s(&png),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let has_step = |n: &str| {
        std::fs::read_to_string(&svg)
            .map(|t| svg_texts(&t).iter().any(|x| x == &format!("step {n}")))
            .unwrap_or(false)
    };
    wait_for("the first drawing", || has_step("100") && png.exists());
    assert_eq!(png_size(&std::fs::read(&png).unwrap()), (1200, 800));
    // The run goes on.
    std::fs::write(&log, full.as_bytes()).unwrap();
    wait_for("the redrawing", || has_step("200"));

    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("Ctrl-C stops"), "{stderr}");
    assert!(stderr.contains("plot: stopped after "), "{stderr}");
    // Only the pictures: every temporary was renamed into place.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["live", "live.png", "live.svg"]);
}

/// Found by fuzzing (the metrics_log target of fuzz/): a loss of 1e308 beside a loss of 1 put
/// the log-scale panel's padded range past f64's largest value, and the tick search walked
/// 2^31 decades: 4 GB and an allocation abort instead of a picture.
#[test]
fn values_near_the_largest_float_still_draw() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("huge.svg");
    let log = testdata("fuzz-regressions/metrics-log-huge-loss.jsonl");
    let r = plot(&[s(&log), "-o", s(&out), "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg_texts(&svg).iter().any(|t| t == "loss"), "{svg}");
}
