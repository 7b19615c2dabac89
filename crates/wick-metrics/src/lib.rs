//! Task metrics, each identical to the reference implementation people quote numbers from:
//! sacreBLEU (BLEU, chrF), Google's rouge-score (ROUGE), the SQuAD and CMRC evaluation scripts
//! (exact match, F1), scikit-learn (classification).

pub mod bleu;
pub mod chrf;
pub mod classify;
pub mod cmrc;
mod ngrams;
pub mod porter;
pub mod pystr;
pub mod rouge;
pub mod sacre_tok;
pub mod squad;

/// (exact match 0 or 1, F1) of a prediction against its best-matching answer, as both QA
/// evaluation scripts take them: EM if any answer matches, the highest F1.
fn best_over_answers(
    answers: &[String],
    exact: impl Fn(&str) -> bool,
    f1: impl Fn(&str) -> f64,
) -> (f64, f64) {
    let em = answers.iter().any(|a| exact(a));
    let f = answers.iter().map(|a| f1(a)).fold(0.0, f64::max);
    (if em { 1.0 } else { 0.0 }, f)
}
