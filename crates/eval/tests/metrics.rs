//! `eval` against the reference packages: sacreBLEU 2.6.0 (BLEU, chrF, chrF++), rouge-score 0.1.2
//! (with and without stemming; by character for Chinese), the SQuAD v1.1 and CMRC 2018 scripts
//! and scikit-learn 1.9.1, whose values scripts/gen_eval_fixtures.py wrote into testdata/eval/.

use serde_json::Value;
use wick_testkit::{run, testdata};

const EVAL: &str = env!("CARGO_BIN_EXE_eval");
const TOL: f64 = 1e-6;

fn expected(name: &str) -> Value {
    let path = testdata(&format!("eval/{name}"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Runs eval with --per-record: (report from --report, per-record lines).
fn eval(args: &[&str]) -> (Value, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--per-record",
        "--quiet",
        "--report",
        report.to_str().unwrap(),
    ]);
    let (code, stdout, stderr) = run(EVAL, &all, b"").parts();
    assert_eq!(code, 0, "eval {args:?} failed: {stderr}");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    (report, lines)
}

fn close(what: &str, got: &Value, want: &Value) {
    let (g, w) = (got.as_f64(), want.as_f64());
    match (g, w) {
        (Some(g), Some(w)) => assert!((g - w).abs() <= TOL, "{what}: wick {g} vs reference {w}"),
        _ => panic!("{what}: wick {got} vs reference {want}"),
    }
}

fn file(name: &str) -> String {
    testdata(&format!("eval/{name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// Corpus and per-record BLEU/chrF/chrF++ and ROUGE (variant `rouge`) of one fixture set.
fn check_generation(set: &str, args: &[&str], rouge: &str) {
    let exp = &expected("gen_expected.json")[set];
    let path = file(exp["file"].as_str().unwrap());
    let mut all = vec!["--task", "generation", path.as_str()];
    all.extend(args);
    let (report, recs) = eval(&all);
    let c = &exp["corpus"];
    assert_eq!(report["bleu"]["tokenize"], exp["tokenize"]);
    close(
        &format!("{set} BLEU"),
        &report["bleu"]["score"],
        &c["bleu"]["score"],
    );
    close(
        &format!("{set} bp"),
        &report["bleu"]["bp"],
        &c["bleu"]["bp"],
    );
    assert_eq!(
        report["bleu"]["counts"], c["bleu"]["counts"],
        "{set} BLEU counts"
    );
    assert_eq!(
        report["bleu"]["totals"], c["bleu"]["totals"],
        "{set} BLEU totals"
    );
    assert_eq!(report["bleu"]["hyp_len"], c["bleu"]["sys_len"]);
    assert_eq!(report["bleu"]["ref_len"], c["bleu"]["ref_len"]);
    for n in 0..4 {
        close(
            &format!("{set} precision {n}"),
            &report["bleu"]["precisions"][n],
            &c["bleu"]["precisions"][n],
        );
    }
    close(
        &format!("{set} chrF"),
        &report["chrf"]["score"],
        &c["chrf"]["score"],
    );
    close(
        &format!("{set} chrF++"),
        &report["chrf++"]["score"],
        &c["chrf_pp"]["score"],
    );
    for t in ["rouge1", "rouge2", "rougeL"] {
        close(
            &format!("{set} mean {t} ({rouge})"),
            &report["rouge"][t]["fmeasure"],
            &c["rouge_mean_fmeasure"][rouge][t],
        );
    }
    let want = exp["records"].as_array().unwrap();
    assert_eq!(recs.len(), want.len());
    for (got, w) in recs.iter().zip(want) {
        let id = w["id"].as_str().unwrap();
        assert_eq!(
            got["id"].as_str(),
            Some(id),
            "records come back in input order"
        );
        close(&format!("{id} sentence BLEU"), &got["bleu"], &w["bleu"]);
        close(&format!("{id} sentence chrF"), &got["chrf"], &w["chrf"]);
        close(
            &format!("{id} sentence chrF++"),
            &got["chrf++"],
            &w["chrf_pp"],
        );
        for t in ["rouge1", "rouge2", "rougeL"] {
            close(
                &format!("{id} {t} ({rouge})"),
                &got[t],
                &w["rouge"][rouge][t][2],
            );
        }
    }
}

#[test]
fn english_generation_matches_sacrebleu_and_rouge_score() {
    check_generation("gen_en", &[], "default");
}

#[test]
fn stemmed_rouge_matches_rouge_score_use_stemmer() {
    check_generation("gen_en", &["--stem"], "stemmer");
}

#[test]
fn chinese_generation_uses_zh_tokenizer_and_character_rouge() {
    check_generation("gen_zh", &["--lang", "zh"], "char");
}

#[test]
fn several_references_per_record() {
    check_generation("gen_multi", &["--ref-field", "references"], "default");
}

#[test]
fn qa_matches_squad_and_cmrc_scripts() {
    let exp = expected("qa_expected.json");
    for (set, lang) in [("qa_en", "en"), ("qa_zh", "zh")] {
        let e = &exp[set];
        let path = file(e["file"].as_str().unwrap());
        let (report, recs) = eval(&[
            "--task",
            "qa",
            "--pred-field",
            "prediction",
            "--ref-field",
            "answers",
            "--lang",
            lang,
            &path,
        ]);
        close(
            &format!("{set} EM"),
            &report["exact_match"],
            &e["exact_match"],
        );
        close(&format!("{set} F1"), &report["f1"], &e["f1"]);
        for (got, w) in recs.iter().zip(e["records"].as_array().unwrap()) {
            let id = w["id"].as_str().unwrap();
            close(&format!("{id} EM"), &got["exact_match"], &w["em"]);
            close(&format!("{id} F1"), &got["f1"], &w["f1"]);
        }
    }
}

#[test]
fn classification_matches_scikit_learn() {
    let e = expected("cls_expected.json");
    let path = file("cls.jsonl");
    let (report, recs) = eval(&[
        "--task",
        "classification",
        "--pred-field",
        "prediction",
        "--ref-field",
        "reference",
        &path,
    ]);
    assert_eq!(report["labels"], e["labels"]);
    close("accuracy", &report["accuracy"], &e["accuracy"]);
    for avg in ["macro", "micro", "weighted"] {
        for k in ["precision", "recall", "f1"] {
            close(&format!("{avg} {k}"), &report[avg][k], &e[avg][k]);
        }
    }
    for (i, label) in e["labels"].as_array().unwrap().iter().enumerate() {
        let got = &report["per_class"][label.as_str().unwrap()];
        for k in ["precision", "recall", "f1"] {
            close(&format!("{label} {k}"), &got[k], &e["per_label"][k][i]);
        }
        assert_eq!(got["support"], e["per_label"]["support"][i]);
    }
    assert_eq!(report["confusion_matrix"]["matrix"], e["confusion_matrix"]);
    assert_eq!(
        report["labels_only_predicted"],
        serde_json::json!(["unknown"])
    );
    assert_eq!(
        report["labels_never_predicted"],
        serde_json::json!(["milton"])
    );
    let right = recs.iter().filter(|r| r["correct"] == true).count();
    close(
        "per-record accuracy",
        &(right as f64 / recs.len() as f64).into(),
        &e["accuracy"],
    );
}

#[test]
fn report_on_stdout_without_per_record() {
    let path = file("gen_en.jsonl");
    let (code, stdout, _) = run(
        EVAL,
        &["--task", "generation", "--metrics", "bleu", "-q", &path],
        b"",
    )
    .parts();
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(report.get("bleu").is_some() && report.get("rouge").is_none());
    assert_eq!(report["records"], 619);
}

#[test]
fn bad_input_is_a_one_line_error_naming_file_and_line() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--task", "generation"],
            "{\"response\": \"a\", \"reference\": \"b\"}\n{\"response\": \"a\"}\n",
            "<stdin>:2: no field \"reference\"",
        ),
        (
            &["--task", "generation"],
            "{\"response\": \"a\", \"reference\": \"b\"}\n{\"response\": \"a\", \"ref",
            "<stdin>:2: malformed JSON",
        ),
        (
            &["--task", "generation"],
            "{\"response\": 3, \"reference\": \"b\"}\n",
            "field \"response\" should be a string, found a number",
        ),
        (
            &["--task", "qa"],
            "{\"response\": \"a\", \"reference\": []}\n",
            "field \"reference\" is an empty array",
        ),
        (
            &["--task", "classification"],
            "{\"response\": [1], \"reference\": \"b\"}\n",
            "should be a label",
        ),
        (
            &["--task", "generation", "--tokenize", "intl"],
            "",
            "--tokenize \"intl\"",
        ),
        (
            &["--task", "generation", "--metrics", "bleu,meteor"],
            "",
            "unknown metric \"meteor\"",
        ),
        (&["--task", "generation"], "\n\n", "no records"),
        (
            &["--task", "qa", "--model", "x"],
            "",
            "--model is only used by --task choice",
        ),
    ];
    for (args, input, want) in cases {
        let (code, stdout, stderr) = run(EVAL, args, input.as_bytes()).parts();
        assert_eq!(code, 1, "{args:?} {input:?}: {stderr}");
        assert!(
            stdout.is_empty(),
            "nothing on stdout after an error: {stdout}"
        );
        assert!(
            stderr.contains(want),
            "{args:?} {input:?}: expected {want:?} in {stderr:?}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn empty_predictions_score_zero_not_crash() {
    let input = "{\"response\": \"\", \"reference\": \"to be or not\"}\n{\"response\": \"to be\", \"reference\": \"\"}\n";
    let (code, stdout, stderr) =
        run(EVAL, &["--task", "generation", "-q"], input.as_bytes()).parts();
    assert_eq!(code, 0, "{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["bleu"]["score"], 0.0);
    assert_eq!(r["rouge"]["rougeL"]["fmeasure"], 0.0);
    assert_eq!(r["chrf"]["score"], 0.0);
}

#[test]
fn a_byte_order_mark_at_the_start_is_skipped() {
    let text = std::fs::read_to_string(testdata("eval/cls.jsonl")).unwrap();
    let args = [
        "--task",
        "classification",
        "--pred-field",
        "prediction",
        "--ref-field",
        "reference",
        "--quiet",
    ];
    let plain = run(EVAL, &args, text.as_bytes());
    let bom = run(EVAL, &args, format!("\u{feff}{text}").as_bytes());
    assert_eq!(bom.code, 0, "{}", bom.stderr);
    let (p, b): (Value, Value) = (
        serde_json::from_str(&plain.stdout).unwrap(),
        serde_json::from_str(&bom.stdout).unwrap(),
    );
    assert_eq!(b["records"], p["records"]);
    assert_eq!(b["accuracy"], p["accuracy"]);
    assert_eq!(b["confusion_matrix"], p["confusion_matrix"]);
}

#[test]
fn old_field_flag_spellings_still_parse() {
    let path = file("cls.jsonl");
    let new = run(
        EVAL,
        &[
            "--task",
            "classification",
            "--pred-field",
            "prediction",
            "--ref-field",
            "reference",
            "-q",
            &path,
        ],
        b"",
    )
    .parts();
    let old = run(
        EVAL,
        &[
            "--task",
            "classification",
            "--pred",
            "prediction",
            "--ref",
            "reference",
            "-q",
            &path,
        ],
        b"",
    )
    .parts();
    assert_eq!(new.0, 0, "{}", new.2);
    let report = |s: &str| -> Value {
        let mut v: Value = serde_json::from_str(s.trim()).unwrap();
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(report(&new.1), report(&old.1));
}

#[test]
fn skip_invalid_leaves_bad_records_out_and_counts_them() {
    let input = "{\"response\": \"a\", \"reference\": \"a\"}\nnot json\n{\"response\": \"b\"}\n\
                 {\"response\": \"c\", \"reference\": \"d\"}\n";
    let (code, stdout, stderr) = run(
        EVAL,
        &["--task", "classification", "--skip-invalid"],
        input.as_bytes(),
    )
    .parts();
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["records"], 2);
    assert_eq!(report["skipped"], 2);
    assert!(stderr.contains("<stdin>:2"), "{stderr}");
    assert!(stderr.contains("2 invalid skipped"), "{stderr}");
}

#[cfg(not(feature = "model"))]
#[test]
fn without_the_model_feature_choice_is_refused_with_the_reason() {
    let (code, _, stderr) = run(EVAL, &["--task", "choice", "--model", "m"], b"").parts();
    assert_eq!(code, 1);
    assert!(stderr.contains("without its `model` feature"), "{stderr}");
}
