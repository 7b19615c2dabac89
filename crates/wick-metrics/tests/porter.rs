//! The Porter stemmer against NLTK's own output (scripts/gen_porter_fixture.py): every distinct
//! token rouge-score would stem in testdata/english.jsonl, plus hand-picked and generated words.

use wick_metrics::porter::stem;

#[test]
fn matches_nltk_on_every_fixture_word() {
    let path = wick_testkit::testdata("fixtures/eval/porter.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut total = 0;
    let mut mismatches = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let (word, want) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {}: no tab in {line:?}", lineno + 1));
        total += 1;
        let got = stem(word);
        if got != want {
            mismatches.push(format!("{word:?}: got {got:?}, NLTK {want:?}"));
        }
    }
    // The fixture has over 12,000 words; a truncated file should fail loudly, not pass.
    assert!(total > 12_000, "only {total} words in {}", path.display());
    assert!(
        mismatches.is_empty(),
        "{} of {total} words differ from NLTK; first ones:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(30)].join("\n")
    );
}
