//! sacreBLEU's tokenizers (`13a`, `zh`, `char`, `none`), character for character: BLEU scores are
//! only comparable between tools that split text identically.

use crate::pystr;

/// Which sacreBLEU tokenizer to apply before counting n-grams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tokenize {
    /// mteval-v13a, sacreBLEU's default (and WMT's).
    T13a,
    /// Every CJK character a token, the rest as 13a; sacreBLEU's choice for Chinese.
    Zh,
    /// Every character a token.
    Char,
    /// The text as given (already tokenized).
    None,
}

impl Tokenize {
    pub fn parse(name: &str) -> Option<Tokenize> {
        Some(match name {
            "13a" => Tokenize::T13a,
            "zh" => Tokenize::Zh,
            "char" => Tokenize::Char,
            "none" => Tokenize::None,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Tokenize::T13a => "13a",
            Tokenize::Zh => "zh",
            Tokenize::Char => "char",
            Tokenize::None => "none",
        }
    }

    /// The segment as sacreBLEU's BLEU sees it (it right-strips before tokenizing), tokens joined
    /// by single spaces.
    pub fn apply(self, segment: &str) -> String {
        let s = pystr::rstrip(segment);
        match self {
            Tokenize::T13a => tokenize_13a(s),
            Tokenize::Zh => tokenize_zh(s),
            Tokenize::Char => {
                let mut out = String::with_capacity(s.len() * 2);
                for (i, c) in s.chars().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push(c);
                }
                out
            }
            Tokenize::None => s.to_string(),
        }
    }
}

pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        // Sequential, as sacreBLEU does: "&amp;lt;" ends as "<".
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    regexp(&format!(" {line} "))
}

pub fn tokenize_zh(line: &str) -> String {
    let line = pystr::strip(line);
    let mut spaced = String::with_capacity(line.len() * 2);
    for c in line.chars() {
        if is_chinese_char(c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    regexp(&spaced)
}

/// sacreBLEU's `_UCODE_RANGES`. Two of its entries are written `u'\u20000'`, `u'\u2f800'`: Python
/// reads those as a four-digit escape plus a digit, and string comparison then makes the ranges
/// U+2001..=U+2A6D and U+2F81..=U+2FA1. That is what sacreBLEU computes, so it is what we do
/// (it sends curly quotes and dashes, U+2010..U+201F, down the Chinese path).
fn is_chinese_char(c: char) -> bool {
    const RANGES: [(u32, u32); 22] = [
        (0x3400, 0x4db5),
        (0x4e00, 0x9fa5),
        (0x9fa6, 0x9fbb),
        (0xf900, 0xfa2d),
        (0xfa30, 0xfa6a),
        (0xfa70, 0xfad9),
        (0x2001, 0x2a6d),
        (0x2f81, 0x2fa1),
        (0xff00, 0xffef),
        (0x2e80, 0x2eff),
        (0x3000, 0x303f),
        (0x31c0, 0x31ef),
        (0x2f00, 0x2fdf),
        (0x2ff0, 0x2fff),
        (0x3100, 0x312f),
        (0x31a0, 0x31bf),
        (0xfe10, 0xfe1f),
        (0xfe30, 0xfe4f),
        (0x2600, 0x26ff),
        (0x2700, 0x27bf),
        (0x3200, 0x32ff),
        (0x3300, 0x33ff),
    ];
    let c = c as u32;
    RANGES.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// The `TokenizerRegexp` rules, each a left-to-right non-overlapping substitution. Working on
/// bytes is exact: every pattern position that must be ASCII is checked as one byte, and a
/// "not a digit" position that falls on part of a multi-byte character decides the same way the
/// whole character would.
fn regexp(line: &str) -> String {
    // 1. Punctuation and symbols (not ' , - . or alphanumerics) become their own tokens.
    let mut a = Vec::with_capacity(line.len() * 2);
    for &b in line.as_bytes() {
        if matches!(b, 0x7b..=0x7e | 0x5b..=0x60 | 0x20..=0x26 | 0x28..=0x2b | 0x3a..=0x40 | b'/') {
            a.extend_from_slice(&[b' ', b, b' ']);
        } else {
            a.push(b);
        }
    }
    let period_comma = |b: u8| b == b'.' || b == b',';
    // 2. Period or comma after a non-digit: `([^0-9])([\.,])` -> `\1 \2 `.
    let a = substitute(
        &a,
        |x, y| !x.is_ascii_digit() && period_comma(y),
        |x, y, o| o.extend_from_slice(&[x, b' ', y, b' ']),
    );
    // 3. Period or comma before a non-digit: `([\.,])([^0-9])` -> ` \1 \2`.
    let a = substitute(
        &a,
        |x, y| period_comma(x) && !y.is_ascii_digit(),
        |x, y, o| o.extend_from_slice(&[b' ', x, b' ', y]),
    );
    // 4. Dash after a digit: `([0-9])(-)` -> `\1 \2 `.
    let a = substitute(
        &a,
        |x, y| x.is_ascii_digit() && y == b'-',
        |x, y, o| o.extend_from_slice(&[x, b' ', y, b' ']),
    );
    let s = String::from_utf8(a).expect("only ASCII spaces were inserted between whole characters");
    let mut out = String::with_capacity(s.len());
    for w in pystr::split(&s) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// A regex substitution of a two-byte pattern, scanning as `re.sub` does.
fn substitute(
    s: &[u8],
    is_match: impl Fn(u8, u8) -> bool,
    replace: impl Fn(u8, u8, &mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 4);
    let mut i = 0;
    while i < s.len() {
        if i + 1 < s.len() && is_match(s[i], s[i + 1]) {
            replace(s[i], s[i + 1], &mut out);
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings printed by sacrebleu 2.6.0's Tokenizer13a / TokenizerZh.
    #[test]
    fn matches_sacrebleu_on_tricky_punctuation() {
        assert_eq!(
            tokenize_13a("a.,b x.y 1,000.50 \"q\" &amp;lt; 1990-91 it's -\nfoo"),
            "a . , b x . y 1,000.50 \" q \" < 1990 - 91 it's foo"
        );
        assert_eq!(
            tokenize_zh("“你好”，world! 3.14 abc.def 1990-91"),
            "“ 你 好 ” ， world ! 3.14 abc . def 1990 - 91"
        );
    }

    #[test]
    fn chinese_ranges_follow_sacrebleu_literally() {
        assert!(!is_chinese_char('\u{2000}'));
        assert!(is_chinese_char('\u{2001}'));
        assert!(is_chinese_char('\u{2a6d}'));
        assert!(!is_chinese_char('\u{2a6e}'));
        assert!(!is_chinese_char('\u{20000}'));
        assert!(is_chinese_char('，'));
    }
}
