//! Gopher repetition rules (Rae et al. 2021, table A1), as datatrove's
//! `GopherRepetitionFilter` (pipeline/filters/gopher_repetition_filter.py) computes them.
//!
//! In order, a document is dropped when
//! - it is empty (`empty`);
//! - more than 30% of its paragraphs (`text.strip()` split on `\n\n+`) repeat an earlier one
//!   (`dup_para_frac`), or the repeats hold more than 20% of its characters (`dup_para_char_frac`);
//! - the same for lines (split on `\n+`): 30% (`dup_line_frac`), 20% of characters
//!   (`dup_line_char_frac`);
//! - the most frequent word 2-, 3-, 4-gram covers more than 20%, 18%, 16% of the characters
//!   (`top_{n}_gram`: its length, words joined by spaces, times its count, over the text length);
//! - repeated 5- … 10-grams cover more than 15% … 10% of the characters (`dup_{n}_gram`: a
//!   left-to-right scan that, on an n-gram seen before, counts its characters, words joined
//!   without spaces as datatrove does, and jumps past it).
//!
//! CJK documents: words are characters, and an n-gram's length is its characters without
//! separators in both n-gram rules (datatrove's spaces would make a Chinese 2-gram of two
//! characters three long, dropping ordinary poems for `top_4_gram`).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::{ratio, Doc, Reason, Verdict};
use crate::text::{char_len, py_strip};

const FAMILY: &str = "gopher_repetition";

/// Thresholds; `None` turns a rule off.
#[derive(Debug, Clone, PartialEq)]
pub struct GopherRepetition {
    pub max_dup_para_frac: Option<f64>,
    pub max_dup_para_char_frac: Option<f64>,
    pub max_dup_line_frac: Option<f64>,
    pub max_dup_line_char_frac: Option<f64>,
    /// (n, max fraction of characters in the most frequent n-gram)
    pub top_n_grams: Vec<(usize, f64)>,
    /// (n, max fraction of characters in repeated n-grams)
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetition {
    /// datatrove's (and Gopher's) thresholds.
    fn default() -> Self {
        GopherRepetition {
            max_dup_para_frac: Some(0.3),
            max_dup_para_char_frac: Some(0.2),
            max_dup_line_frac: Some(0.3),
            max_dup_line_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
        }
    }
}

/// datatrove's `find_duplicates`: how many elements repeat an earlier one, and their characters.
pub fn find_duplicates<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = HashSet::new();
    let (mut n, mut chars) = (0, 0);
    for s in items {
        if !seen.insert(s) {
            n += 1;
            chars += char_len(s);
        }
    }
    (n, chars)
}

/// `re.split(r"\n{2,}", s)`.
fn paragraphs(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' && b.get(i + 1) == Some(&b'\n') {
            let mut j = i;
            while j < b.len() && b[j] == b'\n' {
                j += 1;
            }
            out.push(&s[start..i]);
            start = j;
            i = j;
        } else {
            i += 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// `re.split("\n+", s)`: empty pieces only at the ends.
fn lines(s: &str) -> Vec<&str> {
    let pieces: Vec<&str> = s.split('\n').collect();
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .filter(|&(i, p)| !p.is_empty() || i == 0 || i == last)
        .map(|(_, p)| p)
        .collect()
}

impl GopherRepetition {
    pub fn check(&self, doc: &Doc) -> Verdict {
        let fail = |rule| Err(Reason::new(FAMILY, rule));
        let text = doc.text;
        if text.is_empty() {
            return fail("empty");
        }
        let len = doc.chars;
        let paras = paragraphs(py_strip(text));
        let (dups, chars) = find_duplicates(paras.iter().copied());
        if exceeds(self.max_dup_para_frac, ratio(dups, paras.len())) {
            return fail("dup_para_frac");
        }
        if exceeds(self.max_dup_para_char_frac, ratio(chars, len)) {
            return fail("dup_para_char_frac");
        }
        let lines = lines(text);
        let (dups, chars) = find_duplicates(lines.iter().copied());
        if exceeds(self.max_dup_line_frac, ratio(dups, lines.len())) {
            return fail("dup_line_frac");
        }
        if exceeds(self.max_dup_line_char_frac, ratio(chars, len)) {
            return fail("dup_line_char_frac");
        }
        if self.top_n_grams.is_empty() && self.dup_n_grams.is_empty() {
            return Ok(());
        }
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let grams = NGrams::new(&doc.words.tokens, s);
            let sep = usize::from(!doc.is_cjk());
            for &(n, frac) in &self.top_n_grams {
                if let Some(top) = grams.top_chars(n, sep, s) {
                    if ratio(top, len) > frac {
                        return Err(Reason {
                            family: FAMILY,
                            rule: "top_{n}_gram",
                            n: Some(n),
                        });
                    }
                }
            }
            for &(n, frac) in &self.dup_n_grams {
                if ratio(grams.dup_chars(n, s), len) > frac {
                    return Err(Reason {
                        family: FAMILY,
                        rule: "dup_{n}_gram",
                        n: Some(n),
                    });
                }
            }
            Ok(())
        })
    }
}

fn exceeds(max: Option<f64>, value: f64) -> bool {
    max.is_some_and(|m| value > m)
}

// N-grams are compared by a polynomial hash (mod 2^61 − 1) of their text, computed in O(1) per
// n-gram from prefix hashes: an n-gram of words is a substring of the words joined together.

const MOD: u64 = (1 << 61) - 1;
const BASE: u64 = 0x1f3d_5b79_a4c1_e2d7 % MOD;

fn mulmod(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    let r = (p as u64 & MOD) + (p >> 61) as u64;
    if r >= MOD {
        r - MOD
    } else {
        r
    }
}

fn addmod(a: u64, b: u64) -> u64 {
    let r = a + b;
    if r >= MOD {
        r - MOD
    } else {
        r
    }
}

/// Keys are already hashes: no second hashing.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<Identity>>;

/// Buffers reused across documents on each thread.
#[derive(Default)]
struct Scratch {
    /// Prefix hash of the words joined without separators, at each word start (len + 1).
    h: Vec<u64>,
    /// Prefix hash of the words joined by single spaces, through the end of word i − 1.
    hs: Vec<u64>,
    /// Byte offset of each word start in the joined-without-separators string (len + 1).
    bytes: Vec<usize>,
    /// Characters before each word (len + 1).
    chars: Vec<usize>,
    pow: Vec<u64>,
    counts: IdMap<(u32, u32)>,
    seen: IdMap<()>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

struct NGrams {
    words: usize,
}

impl NGrams {
    fn new(words: &[&str], s: &mut Scratch) -> Self {
        s.h.clear();
        s.hs.clear();
        s.bytes.clear();
        s.chars.clear();
        let (mut h, mut hs, mut b, mut c) = (0u64, 0u64, 0usize, 0usize);
        s.h.push(h);
        s.hs.push(hs);
        s.bytes.push(b);
        s.chars.push(c);
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                hs = addmod(mulmod(hs, BASE), u64::from(b' ') + 1);
            }
            for &byte in w.as_bytes() {
                let v = u64::from(byte) + 1;
                h = addmod(mulmod(h, BASE), v);
                hs = addmod(mulmod(hs, BASE), v);
            }
            b += w.len();
            c += char_len(w);
            s.h.push(h);
            s.hs.push(hs);
            s.bytes.push(b);
            s.chars.push(c);
        }
        NGrams { words: words.len() }
    }

    fn pow(s: &mut Scratch, k: usize) -> u64 {
        if s.pow.is_empty() {
            s.pow.push(1);
        }
        while s.pow.len() <= k {
            let last = *s.pow.last().unwrap();
            s.pow.push(mulmod(last, BASE));
        }
        s.pow[k]
    }

    /// Key of words i..i+n joined without separators.
    fn key_joined(&self, s: &mut Scratch, i: usize, n: usize) -> u64 {
        let len = s.bytes[i + n] - s.bytes[i];
        let p = Self::pow(s, len);
        let v = addmod(s.h[i + n], MOD - mulmod(s.h[i], p));
        v ^ ((len as u64) << 61).rotate_left(7)
    }

    /// Key of words i..i+n joined by spaces.
    fn key_spaced(&self, s: &mut Scratch, i: usize, n: usize) -> u64 {
        // Through the end of word i+n-1, from just before word i (after its separator).
        let len = s.bytes[i + n] - s.bytes[i] + n - 1;
        let start = if i == 0 {
            0
        } else {
            addmod(mulmod(s.hs[i], BASE), u64::from(b' ') + 1)
        };
        let p = Self::pow(s, len);
        let v = addmod(s.hs[i + n], MOD - mulmod(start, p));
        v ^ ((len as u64) << 61).rotate_left(7)
    }

    /// datatrove's `find_top_duplicate`: characters of the most frequent n-gram (the first seen
    /// among equals) times its count; `None` when there are fewer than n words. Words are
    /// joined by `sep` spaces (1, or 0 for CJK).
    fn top_chars(&self, n: usize, sep: usize, s: &mut Scratch) -> Option<usize> {
        if n == 0 || self.words < n {
            return None;
        }
        let mut counts = std::mem::take(&mut s.counts);
        counts.clear();
        for i in 0..=self.words - n {
            let key = self.key_spaced(s, i, n);
            counts.entry(key).or_insert((0, i as u32)).0 += 1;
        }
        let &(count, first) = counts
            .values()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .expect("at least one n-gram");
        s.counts = counts;
        let first = first as usize;
        let chars = s.chars[first + n] - s.chars[first] + sep * (n - 1);
        Some(chars * count as usize)
    }

    /// datatrove's `find_all_duplicate`: characters of n-grams (joined without separators) that
    /// repeat an earlier one, skipping past each repeat.
    fn dup_chars(&self, n: usize, s: &mut Scratch) -> usize {
        if n == 0 || self.words < n {
            return 0;
        }
        let mut seen = std::mem::take(&mut s.seen);
        seen.clear();
        let mut repeated = 0;
        let mut i = 0;
        while i + n <= self.words {
            let key = self.key_joined(s, i, n);
            if seen.insert(key, ()).is_some() {
                repeated += s.chars[i + n] - s.chars[i];
                i += n;
            } else {
                i += 1;
            }
        }
        s.seen = seen;
        repeated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Verdict {
        GopherRepetition::default().check(&Doc::new(text, None))
    }

    fn reason(text: &str) -> String {
        check(text).unwrap_err().to_string()
    }

    // The cases of datatrove's tests/pipeline/test_filters.py::test_gopher_repetition.
    const TEXT_LF_1: &str = "I wish it need not have happened in my time,' said Frodo. 'So do I,' said Gandalf, 'and so do all who live to see such times. But that is not for them to decide. All we have to decide is what to do with the time that is given us.'";

    #[test]
    fn datatrove_test_cases() {
        assert_eq!(
            reason(&"I am your father.\n".repeat(4)),
            "gopher_repetition:dup_line_frac"
        );
        assert_eq!(
            reason(&"I am your father.\n\n".repeat(4)),
            "gopher_repetition:dup_para_frac"
        );
        let text = format!(
            "I am groot.\n\nYou are a wizard.\n\nI am your father.\n\n{}",
            format!("{}.\n\n", "x".repeat(30)).repeat(2)
        );
        assert_eq!(reason(&text), "gopher_repetition:dup_para_char_frac");
        let text = format!(
            "I am groot.\nYou are a wizard.\nI am your father.\n{}",
            format!("{}.\n", "x".repeat(40)).repeat(2)
        );
        assert_eq!(reason(&text), "gopher_repetition:dup_line_char_frac");
        assert_eq!(
            reason("I am Frank, I am Frank, I am Frank"),
            "gopher_repetition:top_2_gram"
        );
        assert_eq!(
            reason("I am Frank, you are Jhon. I am Frank. I am Frank you are Jhon"),
            "gopher_repetition:top_3_gram"
        );
        let text = format!("{}{TEXT_LF_1}", "I am a solo traveller ".repeat(4));
        assert_eq!(reason(&text), "gopher_repetition:dup_5_gram");
        assert_eq!(check(TEXT_LF_1), Ok(()));
    }

    #[test]
    fn empty_and_splitting() {
        assert_eq!(reason(""), "gopher_repetition:empty");
        assert_eq!(paragraphs("a\n\n\nb\nc\n\nd"), ["a", "b\nc", "d"]);
        assert_eq!(lines("\na\n\nb\n"), ["", "a", "b", ""]);
        assert_eq!(lines("a"), ["a"]);
    }

    #[test]
    fn real_text_passes() {
        let sonnet = "From fairest creatures we desire increase,\nThat thereby beauty's rose might never die,\nBut as the riper should by time decease,\nHis tender heir might bear his memory:\nBut thou, contracted to thine own bright eyes,\nFeed'st thy light's flame with self-substantial fuel,\nMaking a famine where abundance lies,\nThy self thy foe, to thy sweet self too cruel:\nThou that art now the world's fresh ornament,\nAnd only herald to the gaudy spring,\nWithin thine own bud buriest thy content,\nAnd tender churl mak'st waste in niggarding:\n  Pity the world, or else this glutton be,\n  To eat the world's due, by the grave and thee.";
        assert_eq!(check(sonnet), Ok(()));
        let ci = "湘春夜月\n黄孝迈\n近清明。\n翠禽枝上消魂。\n可惜一片清歌，都付与黄昏。\n欲共柳花低诉，怕柳花轻薄，不解伤春。\n念楚乡旅宿，柔情别绪，谁与温存。\n空樽夜泣，青山不语，残月当门。\n翠玉楼前，惟是有、一波湘水，摇荡湘云。\n天长梦短，问甚时、重见桃根。\n这次第，算人间没个并刀，翦断心上愁痕。";
        assert_eq!(check(ci), Ok(()));
    }

    #[test]
    fn each_rule_fails_alone() {
        // One rule on at a time.
        let only = |g: GopherRepetition, text: &str| {
            g.check(&Doc::new(text, None)).map_err(|r| r.to_string())
        };
        let none = GopherRepetition {
            max_dup_para_frac: None,
            max_dup_para_char_frac: None,
            max_dup_line_frac: None,
            max_dup_line_char_frac: None,
            top_n_grams: vec![],
            dup_n_grams: vec![],
        };
        let text = "A line of text that repeats.\nA line of text that repeats.\nSomething else entirely here.";
        let g = GopherRepetition {
            max_dup_line_frac: Some(0.3),
            ..none.clone()
        };
        assert_eq!(
            only(g.clone(), text),
            Err("gopher_repetition:dup_line_frac".into())
        );
        assert_eq!(only(g, "One line.\nAnother line.\nA third one."), Ok(()));
        // Chinese: a repeated character bigram, measured without spaces.
        let g = GopherRepetition {
            top_n_grams: vec![(2, 0.2)],
            ..none.clone()
        };
        assert_eq!(
            only(g.clone(), "知否知否知否知否，应是绿肥红瘦。"),
            Err("gopher_repetition:top_2_gram".into())
        );
        assert_eq!(
            only(
                g,
                "昨夜雨疏风骤，浓睡不消残酒。试问卷帘人，却道海棠依旧。知否，知否？应是绿肥红瘦。"
            ),
            Ok(())
        );
        let g = GopherRepetition {
            dup_n_grams: vec![(5, 0.15)],
            ..none
        };
        assert_eq!(
            only(
                g.clone(),
                "one two three four five six one two three four five six"
            ),
            Err("gopher_repetition:dup_5_gram".into())
        );
        assert_eq!(
            only(g, "one two three four five six seven eight nine ten"),
            Ok(())
        );
    }

    #[test]
    fn ngram_lengths_follow_datatrove() {
        let words = ["ab", "c", "a", "bc", "ab", "c"];
        let mut s = Scratch::default();
        let g = NGrams::new(&words, &mut s);
        // Joined without spaces "ab c" and "a bc" are the same string "abc".
        assert_eq!(g.key_joined(&mut s, 0, 2), g.key_joined(&mut s, 2, 2));
        assert_ne!(g.key_spaced(&mut s, 0, 2), g.key_spaced(&mut s, 2, 2));
        assert_eq!(g.key_spaced(&mut s, 0, 2), g.key_spaced(&mut s, 4, 2));
        // "ab c" twice: 4 characters × 2.
        assert_eq!(g.top_chars(2, 1, &mut s), Some(8));
        // Scan: "abc"(0) "ca"(1) "abc"(2) repeats → 3, jump to 4: "abc" → 3.
        assert_eq!(g.dup_chars(2, &mut s), 6);
    }
}
