//! Exact match and F1 for Chinese extractive QA, after the CMRC 2018 evaluation script
//! (`cmrc2018_evaluate.py`): lowercase and strip, drop its punctuation list, then compare by
//! character (EM on the whole string; F1 from the longest common *substring* of the segment
//! sequences, as that script computes it).

use crate::pystr;

/// The script's `sp_char` list. Its "……" entry is two characters and never equals one, so the
/// ellipsis is not removed — as in the script.
const SP_CHARS: &[char] = &[
    '-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=', '，', '。', '：', '？', '！', '“', '”',
    '；', '’', '《', '》', '·', '、', '「', '」', '（', '）', '－', '～', '『', '』',
];

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fa5}').contains(&c)
}

/// `mixed_segmentation(s, rm_punc=True)`: each CJK character (or listed punctuation) a segment;
/// runs of other characters split into words.
pub fn segments(s: &str) -> Vec<String> {
    let lowered = s.to_lowercase();
    let s = pystr::strip(&lowered);
    let mut out = Vec::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<String>| {
        if !run.is_empty() {
            out.extend(word_tokenize(run));
            run.clear();
        }
    };
    for c in s.chars() {
        if SP_CHARS.contains(&c) {
            continue;
        }
        if is_cjk(c) {
            flush(&mut run, &mut out);
            out.push(c.to_string());
        } else {
            run.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Stands in for the script's `nltk.word_tokenize` on the non-Chinese runs (which needs NLTK's
/// punkt data): runs of ASCII letters and digits are words, every other non-space character a
/// segment of its own (`re.findall(r"[A-Za-z0-9]+|\S", run)`).
fn word_tokenize(run: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in run.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !pystr::is_space(c) {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// `remove_punctuation`: lowercase, strip, drop the listed punctuation.
pub fn remove_punctuation(s: &str) -> String {
    let lowered = s.to_lowercase();
    pystr::strip(&lowered)
        .chars()
        .filter(|c| !SP_CHARS.contains(c))
        .collect()
}

/// Length of the longest common contiguous run (`find_lcs`).
fn longest_common_substring(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    let mut best = 0;
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { 0 };
            best = best.max(cur[j + 1]);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    best
}

pub fn f1(prediction: &str, answer: &str) -> f64 {
    let a = segments(answer);
    let p = segments(prediction);
    let lcs = longest_common_substring(&a, &p);
    if lcs == 0 {
        return 0.0;
    }
    let precision = lcs as f64 / p.len() as f64;
    let recall = lcs as f64 / a.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// (exact match 0 or 1, F1), each the best over the answers.
pub fn score(prediction: &str, answers: &[String]) -> (f64, f64) {
    let p = remove_punctuation(prediction);
    crate::best_over_answers(
        answers,
        |a| remove_punctuation(a) == p,
        |a| f1(prediction, a),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_segments_and_substring_f1() {
        assert_eq!(
            segments("《水调歌头》明月"),
            ["水", "调", "歌", "头", "明", "月"]
        );
        // Common substring "明月" (2) of 3 and 4 segments.
        let f = f1("明月几", "明月何时");
        let (p, r) = (2.0 / 3.0, 2.0 / 4.0);
        assert!((f - 2.0 * p * r / (p + r)).abs() < 1e-15);
        assert_eq!(score("明月。", &["明月".into()]), (1.0, 1.0));
    }
}
