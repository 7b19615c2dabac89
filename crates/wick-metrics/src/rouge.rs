//! ROUGE-N and ROUGE-L as Google's `rouge-score` package computes them for one prediction and one
//! target: lowercase, every run of characters outside [a-z0-9] a separator, optionally the Porter
//! stemmer (NLTK's) on tokens longer than three characters.
//!
//! That tokenizer drops every CJK character, so Chinese text scores 0. For Chinese, `Chars` makes
//! every non-whitespace character a token, the usual choice (the same as passing rouge-score a
//! character tokenizer).

use crate::{ngrams, porter, pystr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RougeTokenizer {
    /// rouge-score's DefaultTokenizer, with or without stemming.
    Default { stem: bool },
    /// Each character that is not whitespace.
    Chars,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

impl Score {
    fn new(precision: f64, recall: f64) -> Score {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Score {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of one pair.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rouge {
    pub rouge1: Score,
    pub rouge2: Score,
    pub rouge_l: Score,
}

pub fn tokenize(text: &str, how: RougeTokenizer) -> Vec<String> {
    match how {
        RougeTokenizer::Chars => text
            .chars()
            .filter(|&c| !pystr::is_space(c))
            .map(String::from)
            .collect(),
        RougeTokenizer::Default { stem } => {
            let mut tokens = Vec::new();
            let mut cur = String::new();
            let mut flush = |cur: &mut String| {
                if !cur.is_empty() {
                    let t = std::mem::take(cur);
                    tokens.push(if stem && t.len() > 3 {
                        porter::stem(&t)
                    } else {
                        t
                    });
                }
            };
            for c in text.chars() {
                // Python's str.lower() first: "İ" becomes "i̇", the Kelvin sign "k".
                for l in c.to_lowercase() {
                    if l.is_ascii_lowercase() || l.is_ascii_digit() {
                        cur.push(l);
                    } else {
                        flush(&mut cur);
                    }
                }
            }
            flush(&mut cur);
            tokens
        }
    }
}

/// `RougeScorer(["rouge1", "rouge2", "rougeL"]).score(target, prediction)`.
pub fn score(target: &str, prediction: &str, how: RougeTokenizer) -> Rouge {
    let t = tokenize(target, how);
    let p = tokenize(prediction, how);
    score_tokens(&t, &p)
}

pub fn score_tokens(target: &[String], prediction: &[String]) -> Rouge {
    let ids = ngrams::intern(&[target, prediction]);
    let (t, p) = (&ids[0], &ids[1]);
    Rouge {
        rouge1: rouge_n(t, p, 1),
        rouge2: rouge_n(t, p, 2),
        rouge_l: rouge_l(t, p),
    }
}

/// The best of several targets by F-measure, per ROUGE type (rouge-score's `score_multi`; the
/// first target wins ties, as numpy's argmax does).
pub fn score_multi(targets: &[String], prediction: &str, how: RougeTokenizer) -> Rouge {
    let p = tokenize(prediction, how);
    let mut best: Option<Rouge> = None;
    for t in targets {
        let s = score_tokens(&tokenize(t, how), &p);
        best = Some(match best {
            None => s,
            Some(b) => Rouge {
                rouge1: better(b.rouge1, s.rouge1),
                rouge2: better(b.rouge2, s.rouge2),
                rouge_l: better(b.rouge_l, s.rouge_l),
            },
        });
    }
    best.unwrap_or_default()
}

fn better(a: Score, b: Score) -> Score {
    if b.fmeasure > a.fmeasure {
        b
    } else {
        a
    }
}

fn rouge_n(target: &[u32], prediction: &[u32], n: usize) -> Score {
    let t = ngrams::id_grams(target, n);
    let p = ngrams::id_grams(prediction, n);
    let hits = ngrams::overlap(&t, &p) as f64;
    Score::new(
        hits / ngrams::total(&p).max(1) as f64,
        hits / ngrams::total(&t).max(1) as f64,
    )
}

fn rouge_l(target: &[u32], prediction: &[u32]) -> Score {
    if target.is_empty() || prediction.is_empty() {
        return Score::default();
    }
    let lcs = lcs_len(target, prediction) as f64;
    Score::new(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

/// Length of the longest common subsequence, one row of the table at a time.
fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        tokenize(s, RougeTokenizer::Default { stem: false })
    }

    #[test]
    fn tokenizer_keeps_only_lowercase_alphanumerics() {
        assert_eq!(
            toks("The cat's  HAT-trick, 42!"),
            ["the", "cat", "s", "hat", "trick", "42"]
        );
        assert!(toks("你好，世界").is_empty());
        assert_eq!(tokenize("你 好", RougeTokenizer::Chars), ["你", "好"]);
    }

    #[test]
    fn lcs_and_ngram_scores() {
        assert_eq!(lcs_len(&[1, 2, 3, 4, 5], &[2, 4, 1, 5]), 3);
        let r = score(
            "the cat sat on the mat",
            "the cat on the mat",
            RougeTokenizer::Default { stem: false },
        );
        assert_eq!(r.rouge1.precision, 1.0);
        assert!((r.rouge1.recall - 5.0 / 6.0).abs() < 1e-15);
        assert!((r.rouge2.precision - 3.0 / 4.0).abs() < 1e-15);
        assert!((r.rouge_l.recall - 5.0 / 6.0).abs() < 1e-15);
        assert_eq!(
            score("", "x", RougeTokenizer::Default { stem: false })
                .rouge_l
                .fmeasure,
            0.0
        );
    }
}
