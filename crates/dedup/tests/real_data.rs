//! dedup on the real duplicate sets in testdata/dedup (see its README and
//! scripts/make_dedup_testdata.py): Milton's twice-published works, the Chinese fortunes'
//! repeated sayings, and 宋词三百首 against the complete Song ci.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dedup");

fn data(rel: &str) -> PathBuf {
    wick_testkit::testdata(&format!("dedup/{rel}"))
}

/// Runs dedup on `input`; returns the removed records.
fn removed(args: &[&str], input: &Path) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("removed.jsonl");
    let out = Command::new(BIN)
        .args(args)
        .args(["-q", "-o", "/dev/null", "--removed", r.to_str().unwrap()])
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&r)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(records: &[Value]) -> HashSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn milton_works_published_twice_are_exact_duplicates() {
    let pairs: Value =
        serde_json::from_str(&std::fs::read_to_string(data("milton_pairs.json")).unwrap()).unwrap();
    let identical = pairs["identical"].as_array().unwrap();
    assert_eq!(identical.len(), 7);
    let r = removed(&["--no-near"], &data("milton.jsonl"));
    assert_eq!(r.len(), identical.len());
    for rec in &r {
        let (id, of) = (rec["id"].as_str().unwrap(), rec["dup_of"].as_str().unwrap());
        assert_eq!(rec["dup_kind"], "exact");
        assert!(
            identical
                .iter()
                .any(|p| p[0] == of && p[1] == id || p[0] == id && p[1] == of),
            "{id} dup_of {of}"
        );
    }
}

#[test]
fn a_copy_differing_in_line_ends_and_bom_is_near_not_exact_until_cleaned() {
    let docs: Vec<Value> = std::fs::read_to_string(data("milton.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let poemata = docs.iter().find(|d| d["id"] == "poemata.txt").unwrap();
    let text = poemata["text"].as_str().unwrap();
    assert!(
        text.starts_with('\u{feff}') && text.contains("\r\n"),
        "the file has a BOM and CRLF line ends"
    );
    let lf = text.trim_start_matches('\u{feff}').replace("\r\n", "\n");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let recs = [
        poemata.clone(),
        serde_json::json!({"id": "poemata-lf", "text": lf}),
    ];
    std::fs::write(
        &input,
        recs.iter()
            .map(|r| r.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    // Byte for byte they differ; dedup reports the copy as a near duplicate, similarity ~1.
    assert!(removed(&["--normalize", "none", "--no-near"], &input).is_empty());
    let r = removed(&[], &input);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["dup_kind"], "near");
    assert!(r[0]["similarity"].as_f64().unwrap() > 0.97);
}

#[test]
fn repeated_chinese_sayings_are_found() {
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(data("fortunes_zh_stats.json")).unwrap())
            .unwrap();
    let r = removed(
        &["--no-near", "--normalize", "none"],
        &data("fortunes_zh.jsonl"),
    );
    assert_eq!(r.len() as u64, stats["exact_duplicates"].as_u64().unwrap());
    assert!(r
        .iter()
        .all(|x| x["dup_kind"] == "exact" && x["similarity"] == 1.0));
}

#[test]
fn songci_selection_against_the_complete_corpus_precision_and_recall() {
    let input = data("songci.jsonl");
    // Truth: every pair that a loose LSH proposes (56 bands of 2 rows catch nearly all pairs
    // above Jaccard 0.3), kept when its exact Jaccard is at least 0.8.
    let truth = ids(&removed(
        &[
            "--verify",
            "--threshold",
            "0.8",
            "--bands",
            "56",
            "--rows",
            "2",
        ],
        &input,
    ));
    assert!(truth.len() > 300, "{}", truth.len());
    let score = |found: &HashSet<String>| {
        let hit = found.intersection(&truth).count() as f64;
        (hit / found.len() as f64, hit / truth.len() as f64)
    };
    // Default LSH (14×8, datatrove's): a few pairs just under 0.8 come along.
    let (p, r) = score(&ids(&removed(&[], &input)));
    assert!(
        p >= 0.85 && r >= 0.97,
        "default: precision {p:.3} recall {r:.3}"
    );
    // --threshold 0.8 centres the S-curve on 0.8: fewer false positives.
    let (p, r) = score(&ids(&removed(&["--threshold", "0.8"], &input)));
    assert!(
        p >= 0.9 && r >= 0.9,
        "threshold 0.8: precision {p:.3} recall {r:.3}"
    );
    // --verify removes exactly the pairs that reach 0.8.
    let (p, r) = score(&ids(&removed(&["--verify"], &input)));
    assert!(
        p >= 0.999 && r >= 0.97,
        "verify: precision {p:.3} recall {r:.3}"
    );
    // Most of the 300 selected poems are found in the complete corpus.
    let selected = ids(&removed(&[], &input))
        .iter()
        .filter(|id| id.starts_with("300/"))
        .count();
    assert!(
        selected >= 250,
        "{selected} of the 280 selected poems found"
    );
}
