//! Shingles: word n-grams for text written with spaces, character n-grams for CJK text, chosen
//! per document by script unless forced.

use xxhash_rust::xxh3::xxh3_64_with_seed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shingling {
    /// Word 5-grams, or character 5-grams for a mostly-CJK document.
    Auto,
    Word(usize),
    Char(usize),
}

impl Shingling {
    /// `auto`, `word:N` or `char:N`.
    pub fn parse(spec: &str) -> Result<Shingling, String> {
        let bad = || format!("--shingle {spec:?}: use auto, word:N or char:N (N ≥ 1)");
        if spec == "auto" {
            return Ok(Shingling::Auto);
        }
        let (kind, n) = spec.split_once(':').ok_or_else(bad)?;
        let n: usize = n.parse().map_err(|_| bad())?;
        match (kind, n) {
            (_, 0) => Err(bad()),
            ("word", n) => Ok(Shingling::Word(n)),
            ("char", n) => Ok(Shingling::Char(n)),
            _ => Err(bad()),
        }
    }

    /// (kind, n) code for the signature files: kind 0 auto, 1 word, 2 char.
    pub fn code(&self) -> (u32, u32) {
        match *self {
            Shingling::Auto => (0, 5),
            Shingling::Word(n) => (1, n as u32),
            Shingling::Char(n) => (2, n as u32),
        }
    }

    pub fn from_code(kind: u32, n: u32) -> Option<Shingling> {
        match kind {
            0 => Some(Shingling::Auto),
            1 => Some(Shingling::Word(n as usize)),
            2 => Some(Shingling::Char(n as usize)),
            _ => None,
        }
    }

    fn resolve(self, text: &str) -> Shingling {
        match self {
            Shingling::Auto if mostly_cjk(text) => Shingling::Char(5),
            Shingling::Auto => Shingling::Word(5),
            s => s,
        }
    }
}

/// Han, Kana, Hangul and CJK punctuation/symbol blocks: scripts written without spaces.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3100..=0x312F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// True when CJK characters outnumber the other letters.
pub fn mostly_cjk(text: &str) -> bool {
    let (mut cjk, mut other) = (0usize, 0usize);
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
        } else if c.is_alphabetic() {
            other += 1;
        }
    }
    cjk > other
}

/// Hashes of the shingles of `text` (already normalised), sorted and without repeats. A text
/// shorter than one shingle gives one shingle of all it has; an empty text gives none.
pub fn shingles(text: &str, how: Shingling, seed: u64) -> Vec<u64> {
    let mut out = Vec::new();
    match how.resolve(text) {
        Shingling::Word(n) => {
            // Word n-grams hash the text span from the first word's start to the last word's
            // end, so the separators inside the span are part of the shingle (one space after
            // whitespace normalisation).
            let words: Vec<(usize, usize)> = word_spans(text);
            if words.is_empty() {
                return out;
            }
            if words.len() < n {
                out.push(xxh3_64_with_seed(
                    &text.as_bytes()[words[0].0..words[words.len() - 1].1],
                    seed,
                ));
            } else {
                for w in words.windows(n) {
                    out.push(xxh3_64_with_seed(
                        &text.as_bytes()[w[0].0..w[n - 1].1],
                        seed,
                    ));
                }
            }
        }
        Shingling::Char(n) => {
            let chars: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bounds: Vec<usize> = chars
                .char_indices()
                .map(|(i, _)| i)
                .chain([chars.len()])
                .collect();
            let count = bounds.len() - 1;
            if count == 0 {
                return out;
            }
            if count < n {
                out.push(xxh3_64_with_seed(chars.as_bytes(), seed));
            } else {
                for i in 0..=count - n {
                    out.push(xxh3_64_with_seed(
                        &chars.as_bytes()[bounds[i]..bounds[i + n]],
                        seed,
                    ));
                }
            }
        }
        Shingling::Auto => unreachable!("resolved above"),
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// |A ∩ B| / |A ∪ B| of two sorted, repeat-free sets; 1 for two empty sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    both as f64 / (a.len() + b.len() - both) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_and_char_shingles() {
        assert_eq!(shingles("a b c d e f", Shingling::Word(5), 0).len(), 2);
        assert_eq!(shingles("a b", Shingling::Word(5), 0).len(), 1);
        assert_eq!(shingles("", Shingling::Word(5), 0).len(), 0);
        assert_eq!(shingles("明月几时有把酒", Shingling::Char(5), 0).len(), 3);
        // Auto picks characters for Chinese, words otherwise.
        assert_eq!(
            shingles("明月几时有把酒", Shingling::Auto, 0),
            shingles("明月几时有把酒", Shingling::Char(5), 0)
        );
        assert_eq!(
            shingles("to be or not to be", Shingling::Auto, 0),
            shingles("to be or not to be", Shingling::Word(5), 0)
        );
    }

    #[test]
    fn jaccard_of_sets() {
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(jaccard(&[], &[]), 1.0);
        assert_eq!(jaccard(&[1], &[]), 0.0);
        let a = shingles(
            "the quick brown fox jumps over the lazy dog",
            Shingling::Word(2),
            1,
        );
        assert_eq!(jaccard(&a, &a), 1.0);
    }

    #[test]
    fn parse_specs() {
        assert_eq!(Shingling::parse("word:3").unwrap(), Shingling::Word(3));
        assert_eq!(Shingling::parse("char:5").unwrap(), Shingling::Char(5));
        assert!(Shingling::parse("char:0").is_err());
        assert!(Shingling::parse("byte:4").is_err());
    }
}
