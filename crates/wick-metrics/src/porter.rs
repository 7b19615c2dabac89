//! The Porter stemmer exactly as NLTK implements it: a port of `nltk/stem/porter.py` (NLTK 3.10.4,
//! `PorterStemmer()` in its default mode, `NLTK_EXTENSIONS`, with `to_lowercase=True`), which
//! Google's `rouge-score` 0.1.2 calls when `use_stemmer=True`.
//!
//! NLTK is licensed under the Apache License, Version 2.0; this file is a derivative of its
//! `porter.py` (Copyright (C) 2001-2024 NLTK Project).
//!
//! The stemmer works on characters, as Python does. ASCII words (all that rouge-score passes)
//! take a byte fast path; any other word is lowercased with Rust's full Unicode lowercase mapping
//! (which, like Python's `str.lower`, handles final sigma and multi-character expansions; only a
//! difference between the two runtimes' Unicode versions could make them differ) and stemmed on
//! its `char`s, where every non-ASCII letter is a consonant, as in NLTK.

/// Stems one word as `nltk.stem.porter.PorterStemmer().stem(word)` does.
pub fn stem(word: &str) -> String {
    if word.is_ascii() {
        let mut w: Vec<u8> = Vec::with_capacity(word.len() + 2);
        w.extend(word.bytes().map(|b| b.to_ascii_lowercase()));
        if let Some(root) = irregular(&w) {
            return root.to_string();
        }
        if word.len() > 2 {
            run_steps(&mut w);
        }
        // Only ASCII bytes are ever written into `w`.
        String::from_utf8(w).expect("ASCII stays UTF-8")
    } else {
        let lower = word.to_lowercase();
        let mut w: Vec<char> = lower.chars().collect();
        // The pool holds only ASCII words; a non-ASCII word can still lowercase to one (U+212A
        // KELVIN SIGN lowercases to 'k').
        if lower.is_ascii() {
            if let Some(root) = irregular(lower.as_bytes()) {
                return root.to_string();
            }
        }
        // NLTK measures the word as given, not its lowercase form, for this check.
        if word.chars().count() > 2 {
            run_steps(&mut w);
        }
        w.into_iter().collect()
    }
}

/// NLTK_EXTENSIONS' pool of irregular forms, looked up before any rule runs.
fn irregular(w: &[u8]) -> Option<&'static str> {
    Some(match w {
        b"sky" | b"skies" => "sky",
        b"dying" => "die",
        b"lying" => "lie",
        b"tying" => "tie",
        b"news" => "news",
        b"innings" | b"inning" => "inning",
        b"outings" | b"outing" => "outing",
        b"cannings" | b"canning" => "canning",
        b"howe" => "howe",
        b"proceed" => "proceed",
        b"exceed" => "exceed",
        b"succeed" => "succeed",
        _ => return None,
    })
}

/// A character of the word: a byte on the ASCII path, a `char` otherwise. The rules' suffixes
/// are all ASCII, so both compare against `u8`.
trait Letter: Copy + Eq {
    fn is_vowel(self) -> bool;
    fn is(self, b: u8) -> bool;
    fn from_ascii(b: u8) -> Self;
}

impl Letter for u8 {
    #[inline]
    fn is_vowel(self) -> bool {
        matches!(self, b'a' | b'e' | b'i' | b'o' | b'u')
    }
    #[inline]
    fn is(self, b: u8) -> bool {
        self == b
    }
    #[inline]
    fn from_ascii(b: u8) -> Self {
        b
    }
}

impl Letter for char {
    #[inline]
    fn is_vowel(self) -> bool {
        matches!(self, 'a' | 'e' | 'i' | 'o' | 'u')
    }
    #[inline]
    fn is(self, b: u8) -> bool {
        self == b as char
    }
    #[inline]
    fn from_ascii(b: u8) -> Self {
        b as char
    }
}

fn run_steps<T: Letter>(w: &mut Vec<T>) {
    step1a(w);
    step1b(w);
    step1c(w);
    step2(w);
    step3(w);
    step4(w);
    step5a(w);
    step5b(w);
}

#[inline]
fn ends_with<T: Letter>(w: &[T], suffix: &[u8]) -> bool {
    w.len() >= suffix.len()
        && w[w.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(&c, &b)| c.is(b))
}

fn replace_tail<T: Letter>(w: &mut Vec<T>, cut: usize, replacement: &[u8]) {
    w.truncate(w.len() - cut);
    w.extend(replacement.iter().map(|&b| T::from_ascii(b)));
}

/// 'y' is a consonant at the start of a word or after a vowel, a vowel after a consonant; since
/// that status depends only on what precedes, a prefix's letters classify as in the whole word.
fn is_consonant<T: Letter>(w: &[T], i: usize) -> bool {
    let mut i = i;
    if w[i].is_vowel() {
        return false;
    }
    if !w[i].is(b'y') {
        return true;
    }
    let mut negate = false;
    while i > 0 && w[i].is(b'y') {
        negate = !negate;
        i -= 1;
    }
    w[i].is_vowel() == negate
}

/// Porter's m: the number of vowel-to-consonant transitions.
fn measure<T: Letter>(w: &[T]) -> usize {
    let mut m = 0;
    let mut prev_consonant = false;
    for (i, &c) in w.iter().enumerate() {
        let consonant = if c.is_vowel() {
            false
        } else if c.is(b'y') {
            i == 0 || !prev_consonant
        } else {
            true
        };
        if i > 0 && consonant && !prev_consonant {
            m += 1;
        }
        prev_consonant = consonant;
    }
    m
}

fn contains_vowel<T: Letter>(w: &[T]) -> bool {
    let mut prev_consonant = false;
    for (i, &c) in w.iter().enumerate() {
        let consonant = if c.is_vowel() {
            false
        } else if c.is(b'y') {
            i == 0 || !prev_consonant
        } else {
            true
        };
        if !consonant {
            return true;
        }
        prev_consonant = consonant;
    }
    false
}

/// Porter's *d.
fn ends_double_consonant<T: Letter>(w: &[T]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

/// Porter's *o, plus NLTK's extension that a two-letter vowel-consonant stem counts too.
fn ends_cvc<T: Letter>(w: &[T]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !w[n - 1].is(b'w')
        && !w[n - 1].is(b'x')
        && !w[n - 1].is(b'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

/// NLTK's `_apply_rule_list` for rules whose condition is a bound on the stem's measure: the
/// first rule whose suffix matches decides, and a failed condition stops the search.
fn apply_measure_rules<T: Letter>(w: &mut Vec<T>, rules: &[(&[u8], &[u8])], min_measure: usize) {
    for &(suffix, replacement) in rules {
        if ends_with(w, suffix) {
            if measure(&w[..w.len() - suffix.len()]) >= min_measure {
                replace_tail(w, suffix.len(), replacement);
            }
            return;
        }
    }
}

fn step1a<T: Letter>(w: &mut Vec<T>) {
    // NLTK: 'dies' -> 'die' while 'flies' -> 'fli'.
    if w.len() == 4 && ends_with(w, b"ies") {
        w.truncate(3);
        return;
    }
    if ends_with(w, b"sses") || ends_with(w, b"ies") {
        w.truncate(w.len() - 2);
    } else if ends_with(w, b"ss") {
        // SS -> SS: kept, and it stops the S rule.
    } else if ends_with(w, b"s") {
        w.truncate(w.len() - 1);
    }
}

fn step1b<T: Letter>(w: &mut Vec<T>) {
    // NLTK: 'died' -> 'die' while 'spied' -> 'spi'.
    if ends_with(w, b"ied") {
        let cut = if w.len() == 4 { 1 } else { 2 };
        w.truncate(w.len() - cut);
        return;
    }
    if ends_with(w, b"eed") {
        if measure(&w[..w.len() - 3]) > 0 {
            w.truncate(w.len() - 1);
        }
        return;
    }
    let n = w.len();
    let stem_len = if ends_with(w, b"ed") && contains_vowel(&w[..n - 2]) {
        n - 2
    } else if ends_with(w, b"ing") && contains_vowel(&w[..n - 3]) {
        n - 3
    } else {
        return;
    };
    w.truncate(stem_len);

    if ends_with(w, b"at") || ends_with(w, b"bl") || ends_with(w, b"iz") {
        w.push(T::from_ascii(b'e'));
        return;
    }
    let n = w.len();
    if ends_double_consonant(w) {
        let last = w[n - 1];
        if !(last.is(b'l') || last.is(b's') || last.is(b'z')) {
            w.pop();
        }
        return;
    }
    // NLTK spells the *d rule as the suffix "*d", so a literal "*d" ending also matches it and
    // becomes "d" (its condition holds, 'd' not being l, s or z).
    if ends_with(w, b"*d") {
        w.remove(n - 2);
        return;
    }
    if measure(w) == 1 && ends_cvc(w) {
        w.push(T::from_ascii(b'e'));
    }
}

fn step1c<T: Letter>(w: &mut [T]) {
    // NLTK: y -> i only after a consonant that is not the whole stem ('happy', not 'enjoy'/'by').
    let n = w.len();
    if ends_with(w, b"y") && n - 1 > 1 && is_consonant(w, n - 2) {
        w[n - 1] = T::from_ascii(b'i');
    }
}

const STEP2_RULES: &[(&[u8], &[u8])] = &[
    (b"ational", b"ate"),
    (b"tional", b"tion"),
    (b"enci", b"ence"),
    (b"anci", b"ance"),
    (b"izer", b"ize"),
    (b"bli", b"ble"),
    (b"alli", b"al"),
    (b"entli", b"ent"),
    (b"eli", b"e"),
    (b"ousli", b"ous"),
    (b"ization", b"ize"),
    (b"ation", b"ate"),
    (b"ator", b"ate"),
    (b"alism", b"al"),
    (b"iveness", b"ive"),
    (b"fulness", b"ful"),
    (b"ousness", b"ous"),
    (b"aliti", b"al"),
    (b"iviti", b"ive"),
    (b"biliti", b"ble"),
    (b"fulli", b"ful"),
];

fn step2<T: Letter>(w: &mut Vec<T>) {
    // NLTK applies alli -> al first and, when it fires, runs step 2 again on the result.
    while ends_with(w, b"alli") && measure(&w[..w.len() - 4]) > 0 {
        w.truncate(w.len() - 2);
    }
    for &(suffix, replacement) in STEP2_RULES {
        if ends_with(w, suffix) {
            if measure(&w[..w.len() - suffix.len()]) > 0 {
                replace_tail(w, suffix.len(), replacement);
            }
            return;
        }
    }
    // NLTK keeps the 'l' of 'logi' with the stem for the measure, so 'geologi' -> 'geolog'.
    if ends_with(w, b"logi") && measure(&w[..w.len() - 3]) > 0 {
        w.truncate(w.len() - 1);
    }
}

fn step3<T: Letter>(w: &mut Vec<T>) {
    apply_measure_rules(
        w,
        &[
            (b"icate", b"ic"),
            (b"ative", b""),
            (b"alize", b"al"),
            (b"iciti", b"ic"),
            (b"ical", b"ic"),
            (b"ful", b""),
            (b"ness", b""),
        ],
        1,
    );
}

fn step4<T: Letter>(w: &mut Vec<T>) {
    const BEFORE_ION: &[(&[u8], &[u8])] = &[
        (b"al", b""),
        (b"ance", b""),
        (b"ence", b""),
        (b"er", b""),
        (b"ic", b""),
        (b"able", b""),
        (b"ible", b""),
        (b"ant", b""),
        (b"ement", b""),
        (b"ment", b""),
        (b"ent", b""),
    ];
    const AFTER_ION: &[(&[u8], &[u8])] = &[
        (b"ou", b""),
        (b"ism", b""),
        (b"ate", b""),
        (b"iti", b""),
        (b"ous", b""),
        (b"ive", b""),
        (b"ize", b""),
    ];
    if BEFORE_ION.iter().any(|&(s, _)| ends_with(w, s)) {
        apply_measure_rules(w, BEFORE_ION, 2);
    } else if ends_with(w, b"ion") {
        let n = w.len() - 3;
        if measure(&w[..n]) > 1 && (w[n - 1].is(b's') || w[n - 1].is(b't')) {
            w.truncate(n);
        }
    } else {
        apply_measure_rules(w, AFTER_ION, 2);
    }
}

fn step5a<T: Letter>(w: &mut Vec<T>) {
    // Unlike the other steps, both rules on -e are tried (see NLTK's comment on Martin's test
    // vocabulary).
    if ends_with(w, b"e") {
        let stem = &w[..w.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            w.pop();
        }
    }
}

fn step5b<T: Letter>(w: &mut Vec<T>) {
    if ends_with(w, b"ll") && measure(&w[..w.len() - 1]) > 1 {
        w.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn paper_examples() {
        for (word, want) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("bled", "bled"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("troubled", "troubl"),
            ("sized", "size"),
            ("hopping", "hop"),
            ("tanned", "tan"),
            ("falling", "fall"),
            ("hissing", "hiss"),
            ("fizzed", "fizz"),
            ("failing", "fail"),
            ("filing", "file"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("conditional", "condit"),
            ("rational", "ration"),
            ("generalizations", "gener"),
            ("oscillators", "oscil"),
            ("hopefully", "hope"),
            ("controll", "control"),
            ("roll", "roll"),
        ] {
            assert_eq!(stem(word), want, "{word}");
        }
    }

    #[test]
    fn nltk_extensions() {
        for (word, want) in [
            ("sky", "sky"),
            ("skies", "sky"),
            ("dying", "die"),
            ("lying", "lie"),
            ("tying", "tie"),
            ("news", "news"),
            ("innings", "inning"),
            ("proceed", "proceed"),
            ("exceed", "exceed"),
            ("succeed", "succeed"),
            ("dies", "die"),
            ("flies", "fli"),
            ("died", "die"),
            ("spied", "spi"),
            ("enjoy", "enjoy"),
            ("spy", "spi"),
            ("by", "by"),
            ("geology", "geolog"),
            ("radically", "radic"),
        ] {
            assert_eq!(stem(word), want, "{word}");
        }
    }

    #[test]
    fn short_uppercase_and_odd_input() {
        assert_eq!(stem(""), "");
        assert_eq!(stem("a"), "a");
        assert_eq!(stem("is"), "is");
        assert_eq!(stem("Running"), "run");
        assert_eq!(stem("SKIES"), "sky");
        assert_eq!(stem("yyyyyy"), "yyyyyi");
        assert_eq!(stem("a*ded"), "ad");
        assert_eq!(stem("1990s"), "1990");
        assert_eq!(stem("café"), "café");
        assert_eq!(stem("naïvely"), "naïv");
        assert_eq!(stem("ΣΟΦΙΑΣ"), "σοφιας");
    }
}
