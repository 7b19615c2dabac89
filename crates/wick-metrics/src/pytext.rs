//! Python's notion of whitespace, which the reference implementations split and strip with.

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
}
