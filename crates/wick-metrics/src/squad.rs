//! Exact match and token F1 for extractive QA, as the official SQuAD v1.1 evaluation script
//! computes them (English), each the best over the reference answers.

use crate::pystr;

/// SQuAD's `normalize_answer`: lowercase, drop ASCII punctuation, drop the words a/an/the, squeeze
/// whitespace.
pub fn normalize(s: &str) -> String {
    let lowered: String = s
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // `re.sub(r'\b(a|an|the)\b', ' ', text)`: a match is always one whole run of word characters.
    let mut no_articles = String::with_capacity(lowered.len());
    let mut rest = lowered.as_str();
    while let Some(c) = rest.chars().next() {
        let word = is_word_char(c);
        let end = rest
            .find(|c: char| is_word_char(c) != word)
            .unwrap_or(rest.len());
        let run = &rest[..end];
        if word && matches!(run, "a" | "an" | "the") {
            no_articles.push(' ');
        } else {
            no_articles.push_str(run);
        }
        rest = &rest[end..];
    }
    pystr::split(&no_articles).collect::<Vec<_>>().join(" ")
}

/// Python's Unicode `\w`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub fn exact_match(prediction: &str, answer: &str) -> bool {
    normalize(prediction) == normalize(answer)
}

pub fn f1(prediction: &str, answer: &str) -> f64 {
    let p = normalize(prediction);
    let a = normalize(answer);
    let mut pt: Vec<&str> = pystr::split(&p).collect();
    let mut at: Vec<&str> = pystr::split(&a).collect();
    let (np, na) = (pt.len(), at.len());
    pt.sort_unstable();
    at.sort_unstable();
    // Multiset intersection of two sorted lists.
    let (mut i, mut j, mut same) = (0, 0, 0usize);
    while i < pt.len() && j < at.len() {
        match pt[i].cmp(at[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                same += 1;
                i += 1;
                j += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / np as f64;
    let recall = same as f64 / na as f64;
    2.0 * precision * recall / (precision + recall)
}

/// (exact match 0 or 1, F1) of a prediction against its best-matching answer.
pub fn score(prediction: &str, answers: &[String]) -> (f64, f64) {
    crate::best_over_answers(
        answers,
        |a| exact_match(prediction, a),
        |a| f1(prediction, a),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_like_the_official_script() {
        assert_eq!(normalize("The  Prince of Denmark!"), "prince of denmark");
        assert_eq!(normalize("an Answer, a theme"), "answer theme");
        assert_eq!(normalize("Théâtre"), "théâtre");
    }

    #[test]
    fn f1_counts_repeated_tokens_once_each() {
        assert!((f1("the cat the cat", "cat dog") - 2.0 * 0.5 * 0.5 / 1.0).abs() < 1e-15);
        assert_eq!(f1("", "x"), 0.0);
        let (em, f) = score("Denmark", &["the prince".into(), "denmark.".into()]);
        assert_eq!((em, f), (1.0, 1.0));
    }
}
