//! A metrics log (metrics.jsonl) from one input: wick_train::MetricsLog::resume on a file of
//! these bytes, as `train --resume` does, then plot's reader (plot::log::parse_log) and, for a
//! log it reads, the figure plot would draw (panels, scales, ticks) as an SVG. Oracles besides
//! "no panic": resume keeps exactly the lines that are JSON and not past the resumed step (a
//! torn or unreadable line loses that line, never the others), and errors are one line that
//! names the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plot::panels::ScaleChoice;
use plot::render::Run;
use serde_json::Value;
use wick_fuzz::{one_line, temp_dir};
use wick_train::MetricsLog;

/// The lines resume keeps at `step`: every line that is JSON (so UTF-8) and has no `step` past
/// it. Lines end at `\n` or `\r\n`, as str::lines splits them.
fn kept(data: &[u8], step: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        let line = match line.strip_suffix(b"\n") {
            Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
            None => line,
        };
        if std::str::from_utf8(line).is_err() {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if v.get("step")
            .and_then(Value::as_u64)
            .is_some_and(|s| s > step)
        {
            continue;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let dir = temp_dir();
    let path = dir.path().join("metrics.jsonl");
    let step = data.len() as u64 % 97;
    std::fs::write(&path, data).unwrap();
    let mut log = MetricsLog::resume(&path, step).expect("resume on a readable file");
    let after = std::fs::read(&path).unwrap();
    let want = kept(data, step);
    assert!(
        after == want,
        "resume at step {step} keeps the lines up to it: kept {:?}, should keep {:?}",
        String::from_utf8_lossy(&after),
        String::from_utf8_lossy(&want)
    );
    log.log(&serde_json::json!({"step": step + 1, "loss": 1.5}))
        .unwrap();
    drop(log);

    let name = path.display().to_string();
    for x in ["step", "tokens"] {
        match plot::log::parse_log(&name, data, x) {
            Ok(parsed) => {
                let runs = vec![Run {
                    label: "fuzz".into(),
                    log: parsed,
                }];
                let opts = plot::Options {
                    x_field: x.into(),
                    only: Vec::new(),
                    all: data.len() % 2 == 0,
                    scale: [ScaleChoice::Auto, ScaleChoice::Linear, ScaleChoice::Log]
                        [data.len() % 3],
                    smooth: 0.6,
                    title: None,
                    size: None,
                };
                match plot::figure(runs, &opts) {
                    Ok(fig) => {
                        if let Err(e) = plot::svg(&fig, None) {
                            one_line(&e.to_string());
                        }
                    }
                    Err(e) => one_line(&e.to_string()),
                }
            }
            Err(e) => {
                let msg = e.to_string();
                one_line(&msg);
                assert!(msg.starts_with(&name), "names no file: {msg}");
            }
        }
    }
});
