//! Python's `str` semantics, which the reference implementations (sacreBLEU, rouge-score, the
//! SQuAD and CMRC scripts, datatrove's filters) are written in: whitespace as `str.isspace()`
//! defines it, `split`/`strip`/`rstrip`/`splitlines`, and lengths in code points. One copy for
//! the workspace: `filter` uses it too. It lives here rather than in `wick-text` because this
//! crate depends on nothing, so `filter` (and `eval`'s metric tasks) get it without pulling in
//! a tokenizer library.

/// `str.isspace()` for one character: Unicode White_Space plus the ASCII information separators
/// U+001C..U+001F, which Python counts as whitespace and Rust does not.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s.split()`: runs of whitespace separate, no empty pieces.
pub fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|w| !w.is_empty())
}

/// `s.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `s.rstrip()`.
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// `s.splitlines()`: lines without their terminators, no empty line after a final terminator;
/// `\r\n` is one terminator.
pub fn splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            lines.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' && matches!(it.peek(), Some((_, '\n'))) {
                it.next();
                end += 1;
            }
            start = end;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// `len(s)`: the length in code points.
pub fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// `''.join(s.split())`: the characters of `s` with all whitespace removed.
pub fn chars_without_space(s: &str) -> Vec<char> {
    s.chars().filter(|&c| !is_space(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_includes_separators_and_ideographic_space() {
        let s = "a\u{1f}b\u{3000}c\u{a0} d\t\n";
        assert_eq!(split(s).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(strip(" \u{1c}x y\u{2003}"), "x y");
        assert_eq!(rstrip(" x "), " x");
        // U+200B (zero width space) is not whitespace in either language.
        assert_eq!(split("a\u{200b}b").count(), 1);
    }

    #[test]
    fn splitlines_and_lengths() {
        assert_eq!(
            splitlines("a\nb\r\nc\rd\u{2028}e\n"),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(splitlines("a\n\nb"), ["a", "", "b"]);
        assert!(splitlines("").is_empty());
        assert_eq!(splitlines("\n"), [""]);
        assert_eq!(strip("\u{3000} x \u{1f}"), "x");
        assert_eq!(split(" a  b\tc\n").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(char_len("宋词"), 2);
    }
}
