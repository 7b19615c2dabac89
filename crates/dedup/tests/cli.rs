//! The `dedup` binary on real text: what it removes, what it keeps, and that nothing is lost.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_dedup");

use wick_testkit::testdata as data;

fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    wick_testkit::run(BIN, args, stdin).parts()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn jsonl(recs: &[Value]) -> String {
    recs.iter().map(|r| r.to_string() + "\n").collect()
}

/// Changes every `every`-th word, deterministically: a lightly edited copy.
fn edit(text: &str, every: usize) -> String {
    text.split(' ')
        .enumerate()
        .map(|(i, w)| if i % every == every - 1 { "EDITED" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The corpus plus exact copies and lightly edited copies of some documents.
fn corpus_with_duplicates() -> (Vec<Value>, usize, usize) {
    let mut docs = records(&data("english.jsonl"));
    docs.extend(records(&data("chinese.jsonl")));
    let n = docs.len();
    let mut extra = Vec::new();
    for (k, d) in docs
        .iter()
        .enumerate()
        .filter(|(k, d)| k % 10 == 0 && d["text"].as_str().unwrap().len() > 2000)
    {
        let mut copy = d.clone();
        copy["id"] = json!(format!("copy/{k}"));
        extra.push(copy.clone());
        copy["id"] = json!(format!("edit/{k}"));
        copy["text"] = json!(edit(d["text"].as_str().unwrap(), 50));
        extra.push(copy);
    }
    let copies = extra.len() / 2;
    docs.extend(extra);
    assert!(docs.len() > n);
    (docs, copies, copies)
}

#[test]
fn nothing_is_lost_and_the_result_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let (docs, exact, near) = corpus_with_duplicates();
    let input = jsonl(&docs);
    let removed = tmp.path().join("removed.jsonl");
    let (code, kept, err) = run(&["--removed", removed.to_str().unwrap()], input.as_bytes());
    assert_eq!(code, 0, "{err}");
    let kept: Vec<Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let removed = records(&removed);
    assert!(
        removed.iter().filter(|r| r["dup_kind"] == "exact").count() >= exact,
        "{err}"
    );
    assert!(
        removed.iter().filter(|r| r["dup_kind"] == "near").count() >= near * 9 / 10,
        "{err}"
    );
    // kept ∪ removed == input, as a multiset of records.
    let mut all: Vec<String> = kept.iter().map(Value::to_string).collect();
    for r in &removed {
        let mut r = r.as_object().unwrap().clone();
        assert!(
            r.remove("dup_of").is_some()
                && r.remove("similarity").is_some()
                && r.remove("dup_kind").is_some()
        );
        all.push(Value::Object(r).to_string());
    }
    let mut want: Vec<String> = docs.iter().map(Value::to_string).collect();
    all.sort();
    want.sort();
    assert_eq!(all, want);
    // Kept documents keep input order, and the copies point at their originals.
    let mut rest = docs.iter();
    assert!(
        kept.iter().all(|k| rest.any(|d| d == k)),
        "kept documents are a subsequence of the input"
    );
    for r in &removed {
        let id = r["id"].as_str().unwrap();
        if let Some(k) = id
            .strip_prefix("copy/")
            .or_else(|| id.strip_prefix("edit/"))
        {
            assert_eq!(r["dup_of"], docs[k.parse::<usize>().unwrap()]["id"], "{id}");
        }
        if id.starts_with("edit/") {
            let s = r["similarity"].as_f64().unwrap();
            assert!(s > 0.5 && s < 1.0, "{id}: {s}");
        }
    }
    let (_, again, _) = run(&["-q"], input.as_bytes());
    let (_, first, _) = run(&["-q"], input.as_bytes());
    assert_eq!(again, first, "same input and seed, same bytes");
}

#[test]
fn folio_and_modern_hamlet_are_not_near_duplicates_but_an_edited_copy_is() {
    let read = |f: &str| std::fs::read_to_string(data(&format!("raw/shakespeare/{f}"))).unwrap();
    let modern = read("hamlet_gut.txt");
    let docs = vec![
        json!({"id": "modern", "text": modern}),
        json!({"id": "folio", "text": read("hamlet_gut_f.txt")}),
        json!({"id": "edited", "text": edit(&modern, 100)}),
        json!({"id": "macbeth", "text": read("macbeth_gut.txt")}),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let removed = tmp.path().join("r.jsonl");
    let (code, kept, err) = run(
        &["--threshold", "0.8", "--removed", removed.to_str().unwrap()],
        jsonl(&docs).as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let kept_ids: Vec<Value> = kept
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
        .collect();
    assert_eq!(
        kept_ids,
        vec![json!("modern"), json!("folio"), json!("macbeth")]
    );
    let r = records(&removed);
    assert_eq!(
        (r.len(), &r[0]["id"], &r[0]["dup_of"]),
        (1, &json!("edited"), &json!("modern"))
    );
}

#[test]
fn chinese_near_duplicates_use_character_shingles() {
    let zh = records(&data("chinese.jsonl"));
    let poem = zh
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .find(|t| t.chars().count() > 120)
        .unwrap();
    let mut chars: Vec<char> = poem.chars().collect();
    let at = chars.len() / 2;
    chars[at] = '月';
    let edited: String = chars.into_iter().collect();
    let docs = vec![
        json!({"id": "a", "text": poem}),
        json!({"id": "b", "text": edited}),
        zh[1].clone(),
    ];
    let (code, kept, _) = run(&["-q"], jsonl(&docs).as_bytes());
    assert_eq!(code, 0);
    assert_eq!(
        kept.lines().count(),
        2,
        "the one-character edit is a near duplicate"
    );
    let (_, kept, _) = run(&["-q", "--shingle", "word:5"], jsonl(&docs).as_bytes());
    assert_eq!(
        kept.lines().count(),
        3,
        "with word shingles a poem without spaces is one shingle"
    );
}

#[test]
fn keep_longest_and_normalisation() {
    let docs = vec![
        json!({"id": 1, "text": "Hello   World"}),
        json!({"id": 2, "text": "hello world"}),
        json!({"id": 3, "text": ""}),
        json!({"id": 4, "text": "  "}),
    ];
    let (_, kept, _) = run(&["-q"], jsonl(&docs).as_bytes());
    let ids: Vec<i64> = kept
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        vec![1, 3],
        "case and spacing normalised away; empty documents are duplicates of each other"
    );
    let (_, kept, _) = run(&["-q", "--normalize", "none"], jsonl(&docs).as_bytes());
    assert_eq!(kept.lines().count(), 4);
    let scene = records(&data("english.jsonl"))[5]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let longer = format!("{scene}\nExeunt.");
    let docs = vec![
        json!({"id": "short", "text": scene}),
        json!({"id": "long", "text": longer}),
    ];
    let (_, kept, _) = run(&["-q", "--keep", "longest"], jsonl(&docs).as_bytes());
    assert_eq!(
        serde_json::from_str::<Value>(kept.trim()).unwrap()["id"],
        "long"
    );
}

#[test]
fn a_byte_order_mark_at_the_start_is_skipped() {
    let (code, kept, err) = run(
        &["-q"],
        b"\xEF\xBB\xBF{\"text\": \"a\"}\n{\"text\": \"a\"}\n{\"text\": \"b\"}\n",
    );
    assert_eq!(code, 0, "{err}");
    // The copy on line 2 is found, and the kept lines are JSONL without the mark.
    assert_eq!(kept, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
}

#[test]
fn bad_input_is_reported_with_file_and_line() {
    let (code, _, err) = run(&[], b"{\"text\": \"a\"}\n{\"body\": 1}\n");
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "dedup: <stdin>:2: missing field \"text\"");
    let (code, _, err) = run(&[], b"{\"text\": \"a\"\n");
    assert_eq!(code, 1);
    assert!(err.starts_with("dedup: <stdin>:1: malformed JSON"), "{err}");
    let (code, _, err) = run(&[], b"{\"text\": \"\xff\"}\n");
    assert_eq!(code, 1);
    assert!(err.contains("<stdin>:1: not valid UTF-8"), "{err}");
    let (code, kept, err) = run(
        &["--skip-invalid"],
        b"{\"text\": \"a\"}\nnope\n{\"text\": \"a\"}\n{\"text\": \"b\"}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(kept, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
    assert!(err.contains("1 invalid skipped"), "{err}");
    let (code, kept, _) = run(&["-q"], b"");
    assert_eq!((code, kept.as_str()), (0, ""));
    assert_eq!(run(&["--threshold", "2"], b"").0, 1);
    assert_eq!(run(&["--shingle", "bytes:3"], b"").0, 1);
}

#[test]
fn scale_out_stages_give_the_single_pass_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut docs, _, _) = corpus_with_duplicates();
    // Records without an "id" are named file:line in "dup_of".
    for d in docs.iter_mut().step_by(7) {
        d.as_object_mut().unwrap().remove("id");
    }
    let parts: Vec<PathBuf> = (0..3)
        .map(|k| dir.join(format!("part-{k}.jsonl")))
        .collect();
    let chunk = docs.len().div_ceil(3);
    for (k, p) in parts.iter().enumerate() {
        let mut text = jsonl(&docs[k * chunk..((k + 1) * chunk).min(docs.len())]);
        if k == 1 {
            text.push_str("not json\n");
        }
        std::fs::write(p, text).unwrap();
    }
    let names: Vec<String> = parts.iter().map(|p| p.display().to_string()).collect();
    let mut args: Vec<&str> = vec!["-q", "--skip-invalid", "--removed"];
    let single_removed = dir.join("single-removed.jsonl");
    args.push(single_removed.to_str().unwrap());
    args.extend(names.iter().map(String::as_str));
    let (code, single_kept, err) = run(&args, b"");
    assert_eq!(code, 0, "{err}");

    let sigs = dir.join("sigs");
    let mut args = vec![
        "signatures",
        "-q",
        "--skip-invalid",
        "-o",
        sigs.to_str().unwrap(),
    ];
    args.extend(names.iter().map(String::as_str));
    let (code, _, err) = run(&args, b"");
    assert_eq!(code, 0, "{err}");
    let dups = dir.join("dups.tsv");
    let (code, _, err) = run(
        &[
            "clusters",
            "-o",
            dups.to_str().unwrap(),
            sigs.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let (mut kept, mut removed) = (String::new(), String::new());
    for name in &names {
        let r = dir.join("r.jsonl");
        let (code, out, err) = run(
            &[
                "apply",
                "--dups",
                dups.to_str().unwrap(),
                "--removed",
                r.to_str().unwrap(),
                name,
            ],
            b"",
        );
        assert_eq!(code, 0, "{err}");
        kept += &out;
        removed += &std::fs::read_to_string(&r).unwrap();
    }
    assert_eq!(kept, single_kept);
    assert_eq!(removed, std::fs::read_to_string(&single_removed).unwrap());
    // dups.tsv is plain text: source, line, kind, similarity, dup_of.
    let tsv = std::fs::read_to_string(&dups).unwrap();
    for l in tsv.lines() {
        let cols: Vec<&str> = l.split('\t').collect();
        assert_eq!(cols.len(), 5, "{l}");
        assert!(names.iter().any(|n| n == cols[0]));
        serde_json::from_str::<Value>(cols[4]).unwrap();
    }
    assert!(tsv.contains("\tinvalid\t"));
}

#[test]
fn verify_keeps_only_pairs_whose_exact_jaccard_reaches_the_threshold() {
    let scenes = records(&data("english.jsonl"));
    let scene = scenes
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .find(|t| t.len() > 5000)
        .unwrap();
    let docs = vec![
        json!({"id": "orig", "text": scene}),
        json!({"id": "far", "text": edit(scene, 10)}), // Jaccard about 0.33
        json!({"id": "near", "text": edit(scene, 100)}), // Jaccard about 0.9
    ];
    let input = jsonl(&docs);
    // 56 bands of 2 rows make nearly every pair above 0.2 a candidate.
    let loose = ["-q", "--bands", "56", "--rows", "2"];
    let ids = |out: &str| -> Vec<String> {
        out.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let (_, kept, _) = run(&loose, input.as_bytes());
    assert_eq!(
        ids(&kept),
        ["orig"],
        "without --verify both candidates are merged"
    );
    let tmp = tempfile::tempdir().unwrap();
    let removed = tmp.path().join("r.jsonl");
    let mut args = loose.to_vec();
    args.extend(["--verify", "--removed", removed.to_str().unwrap()]);
    let (code, kept, err) = run(&args, input.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert_eq!(ids(&kept), ["orig", "far"]);
    let r = &records(&removed)[0];
    assert_eq!(r["id"], "near");
    let sim = r["similarity"].as_f64().unwrap();
    assert!(sim > 0.8 && sim < 1.0, "exact Jaccard reported: {sim}");
    // The stages need the shingle sets from `signatures --verify`.
    let part = tmp.path().join("p.jsonl");
    std::fs::write(&part, &input).unwrap();
    let sigs = tmp.path().join("s");
    run(
        &[
            "signatures",
            "-q",
            "--bands",
            "56",
            "--rows",
            "2",
            "-o",
            sigs.to_str().unwrap(),
            part.to_str().unwrap(),
        ],
        b"",
    );
    let dups = tmp.path().join("d.tsv");
    let (code, _, err) = run(
        &[
            "clusters",
            "--verify",
            "-o",
            dups.to_str().unwrap(),
            sigs.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 1);
    assert!(err.contains("made without shingle sets"), "{err}");
}

/// `-o X --removed X` (however spelled) is refused before any input is read, in the single
/// pass and in the apply stage.
#[test]
fn two_outputs_naming_one_file_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let x = tmp.path().join("x.jsonl");
    let link = tmp.path().join("link.jsonl");
    std::fs::write(&x, "previous\n").unwrap();
    std::os::unix::fs::symlink(&x, &link).unwrap();
    let xs = x.to_str().unwrap();
    for args in [
        vec![
            "-o",
            xs,
            "--removed",
            link.to_str().unwrap(),
            "missing.jsonl",
        ],
        vec![
            "apply",
            "--dups",
            "missing.tsv",
            "-o",
            xs,
            "--removed",
            xs,
            "missing.jsonl",
        ],
    ] {
        let (code, _, err) = run(&args, b"");
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains("name the same file"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&x).unwrap(), "previous\n");
}

/// `dedup signatures -o DIR` adds its files to a signatures folder of its own (several map
/// tasks may share one) but never writes into a folder it did not make.
#[test]
fn signatures_go_only_into_a_signatures_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let part = tmp.path().join("p.jsonl");
    std::fs::write(&part, "{\"text\": \"one two three four five six\"}\n").unwrap();
    let sig = |dir: &Path| {
        run(
            &[
                "signatures",
                "-q",
                "-o",
                dir.to_str().unwrap(),
                part.to_str().unwrap(),
            ],
            b"",
        )
    };
    let sigs = tmp.path().join("sigs");
    for _ in 0..2 {
        let (code, _, err) = sig(&sigs);
        assert_eq!(code, 0, "{err}");
    }
    assert!(sigs.join("p.jsonl.sig").is_file());
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("p.jsonl.sig"), "not a signature file").unwrap();
    let (code, _, err) = sig(&theirs);
    assert_eq!(code, 1);
    assert!(err.contains("not written by wick"), "{err}");
    assert_eq!(
        std::fs::read_to_string(theirs.join("p.jsonl.sig")).unwrap(),
        "not a signature file"
    );
}
