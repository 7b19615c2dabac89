//! ppo-step's output folder is all or nothing: killed (SIGKILL) at each of its writes,
//! renames and unlinks in turn, it leaves the starting policy untouched and no half folder,
//! and the same command run again writes exactly the uninterrupted step's files. A folder it
//! did not write is never replaced.

use std::path::Path;

use wick_testkit::{fault_points, files_under, run, run_killed_at};

const PPO: &str = env!("CARGO_BIN_EXE_ppo-step");

mod common;

use common::setup;

#[test]
fn a_kill_at_any_point_leaves_no_half_policy_and_a_rerun_gives_the_same_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, scored) = setup(tmp.path());
    let s = scored.to_str().unwrap();
    let policy_before = files_under(Path::new(&model));
    let runs = tmp.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "--policy",
            &model,
            "--ref",
            &model,
            "-o",
            out.to_str().unwrap(),
            "--ppo-epochs",
            "1",
            "--threads",
            "1",
            s,
            "-q",
        ]
        .map(String::from)
        .to_vec()
    };
    let reference = runs.join("reference");
    let a: Vec<String> = args(&reference);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let points = fault_points(PPO, &a, b"");
    let expected = files_under(&reference);
    assert!(points.len() >= 15, "{points:#?}");
    let out = runs.join("policy");
    for (i, what) in points.iter().enumerate() {
        let n = i + 1;
        let a: Vec<String> = args(&out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run_killed_at(PPO, &a, n, b"");
        // Nothing half-written under the output's name: it is absent or complete.
        if out.exists() {
            assert_eq!(files_under(&out), expected, "killed at {n} ({what})");
        }
        let r = run(PPO, &a, b"");
        assert_eq!(r.code, 0, "killed at {n} ({what}): {}", r.stderr);
        assert_eq!(files_under(&out), expected, "killed at {n} ({what})");
        let left: Vec<String> = std::fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "killed at {n} ({what}): {left:?}");
        std::fs::remove_dir_all(&out).unwrap();
    }
    assert_eq!(files_under(Path::new(&model)), policy_before);

    // A folder ppo-step did not write is refused before any work, and survives.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("results.txt"), "keep").unwrap();
    let a: Vec<String> = args(&theirs);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = run(PPO, &a, b"");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not written by wick"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(theirs.join("results.txt")).unwrap(),
        "keep"
    );
}
