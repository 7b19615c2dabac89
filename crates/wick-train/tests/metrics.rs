//! The metrics log's resume: which lines survive a restart.

use std::path::Path;

use wick_train::MetricsLog;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn steps(path: &Path) -> Vec<u64> {
    lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn resume_drops_later_steps_and_a_torn_last_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("metrics.jsonl");
    std::fs::write(
        &path,
        "{\"step\":1,\"loss\":3.0}\n{\"step\":2,\"loss\":2.5}\r\n{\"step\":3,\"loss\":2.0}\n{\"step\":4,\"lo",
    )
    .unwrap();
    let mut log = MetricsLog::resume(&path, 2).unwrap();
    log.log(&serde_json::json!({"step": 3, "loss": 1.5}))
        .unwrap();
    drop(log);
    assert_eq!(
        lines(&path),
        [
            "{\"step\":1,\"loss\":3.0}",
            "{\"step\":2,\"loss\":2.5}",
            "{\"step\":3,\"loss\":1.5}"
        ]
    );
}

/// Found by fuzzing (the metrics_log target of fuzz/): one line with bytes that are not UTF-8
/// (here in the middle of the file; a write cut inside a multi-byte character leaves one at
/// the end) made resume read the whole file as empty and replace the log with nothing: every
/// step before the checkpoint was lost. Now only that line goes.
#[test]
fn a_line_that_is_not_utf8_loses_only_itself() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fuzz-regressions/metrics-log-bad-utf8.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("metrics.jsonl");
    std::fs::copy(&fixture, &path).unwrap();
    // Steps 0..3 whole, step 1's line with bytes 0xCC 0xDD 0x8C 0x8B in it, step 4 torn.
    drop(MetricsLog::resume(&path, 82).unwrap());
    assert_eq!(steps(&path), [0, 2, 3]);

    // A torn multi-byte character at the end: the lines before it stay.
    let mut bytes = b"{\"step\":1,\"note\":\"ok\"}\n{\"step\":2,\"note\":\"".to_vec();
    bytes.extend_from_slice(&"明".as_bytes()[..2]);
    std::fs::write(&path, &bytes).unwrap();
    drop(MetricsLog::resume(&path, 5).unwrap());
    assert_eq!(steps(&path), [1]);
}
