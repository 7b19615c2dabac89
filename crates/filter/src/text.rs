//! The string operations datatrove's filters are written in: Python's `str` semantics (lengths
//! in code points, `str.splitlines`, `str.strip`/`str.split` whitespace; from
//! `wick_metrics::pystr`) and datatrove's punctuation tables.

// Python's str semantics live once, in wick-metrics (which depends on nothing); the rules use
// them under these names.
pub use wick_metrics::pystr::{
    char_len, is_space as is_py_space, split as py_split, splitlines, strip as py_strip,
};

/// The characters of datatrove's `PUNCTUATION` string (utils/text.py) above ASCII, sorted.
/// (Its ASCII part is exactly ASCII punctuation; it also appends the control characters.)
const NON_ASCII_PUNCTUATION: &[char] = &[
    '\u{ab}', '\u{b4}', '\u{bb}', '\u{2013}', '\u{2014}', '\u{2019}', '\u{201c}', '\u{201d}',
    '\u{201e}', '\u{2026}', '\u{2236}', '\u{2501}', '\u{25ba}', '\u{3001}', '\u{3002}', '\u{3008}',
    '\u{3009}', '\u{300a}', '\u{300b}', '\u{300c}', '\u{300d}', '\u{3010}', '\u{3011}', '\u{ff01}',
    '\u{ff05}', '\u{ff08}', '\u{ff09}', '\u{ff0c}', '\u{ff0e}', '\u{ff11}', '\u{ff1a}', '\u{ff1b}',
    '\u{ff1f}', '\u{ff5e}',
];

/// datatrove's `TERMINAL_PUNCTUATION` (utils/text.py, datatrove 0.10): sentence-ending marks of
/// many scripts, `.` `!` `?` and `。` `！` `？` among them; sorted for binary search. spaCy's
/// sentencizer splits after the same characters (its list is a subset of this one).
pub const TERMINAL_PUNCTUATION: &[char] = &[
    '!',
    '.',
    '?',
    '\u{589}',
    '\u{61d}',
    '\u{61e}',
    '\u{61f}',
    '\u{6d4}',
    '\u{700}',
    '\u{701}',
    '\u{702}',
    '\u{7f9}',
    '\u{837}',
    '\u{839}',
    '\u{83d}',
    '\u{83e}',
    '\u{964}',
    '\u{965}',
    '\u{104a}',
    '\u{104b}',
    '\u{1362}',
    '\u{1367}',
    '\u{1368}',
    '\u{166e}',
    '\u{1735}',
    '\u{1736}',
    '\u{17d4}',
    '\u{17d5}',
    '\u{17d6}',
    '\u{17d9}',
    '\u{17da}',
    '\u{1803}',
    '\u{1809}',
    '\u{1944}',
    '\u{1945}',
    '\u{1aa8}',
    '\u{1aa9}',
    '\u{1aaa}',
    '\u{1aab}',
    '\u{1b5a}',
    '\u{1b5b}',
    '\u{1b5e}',
    '\u{1b5f}',
    '\u{1b7d}',
    '\u{1b7e}',
    '\u{1c3b}',
    '\u{1c3c}',
    '\u{1c7e}',
    '\u{1c7f}',
    '\u{203c}',
    '\u{203d}',
    '\u{2047}',
    '\u{2048}',
    '\u{2049}',
    '\u{2e2e}',
    '\u{2e3c}',
    '\u{2e53}',
    '\u{2e54}',
    '\u{3002}',
    '\u{a4ff}',
    '\u{a60e}',
    '\u{a60f}',
    '\u{a6f3}',
    '\u{a6f7}',
    '\u{a876}',
    '\u{a877}',
    '\u{a8ce}',
    '\u{a8cf}',
    '\u{a92f}',
    '\u{a9c8}',
    '\u{a9c9}',
    '\u{aa5d}',
    '\u{aa5e}',
    '\u{aa5f}',
    '\u{aaf0}',
    '\u{aaf1}',
    '\u{abeb}',
    '\u{fe52}',
    '\u{fe56}',
    '\u{fe57}',
    '\u{ff01}',
    '\u{ff0e}',
    '\u{ff1f}',
    '\u{ff61}',
    '\u{10a56}',
    '\u{10a57}',
    '\u{10f55}',
    '\u{10f56}',
    '\u{10f57}',
    '\u{10f58}',
    '\u{10f59}',
    '\u{10f86}',
    '\u{10f87}',
    '\u{10f88}',
    '\u{10f89}',
    '\u{11047}',
    '\u{11048}',
    '\u{110be}',
    '\u{110bf}',
    '\u{110c0}',
    '\u{110c1}',
    '\u{11141}',
    '\u{11142}',
    '\u{11143}',
    '\u{111c5}',
    '\u{111c6}',
    '\u{111cd}',
    '\u{111de}',
    '\u{111df}',
    '\u{11238}',
    '\u{11239}',
    '\u{1123b}',
    '\u{1123c}',
    '\u{112a9}',
    '\u{1144b}',
    '\u{1144c}',
    '\u{115c2}',
    '\u{115c3}',
    '\u{115c9}',
    '\u{115ca}',
    '\u{115cb}',
    '\u{115cc}',
    '\u{115cd}',
    '\u{115ce}',
    '\u{115cf}',
    '\u{115d0}',
    '\u{115d1}',
    '\u{115d2}',
    '\u{115d3}',
    '\u{115d4}',
    '\u{115d5}',
    '\u{115d6}',
    '\u{115d7}',
    '\u{11641}',
    '\u{11642}',
    '\u{1173c}',
    '\u{1173d}',
    '\u{1173e}',
    '\u{11944}',
    '\u{11946}',
    '\u{11a42}',
    '\u{11a43}',
    '\u{11a9b}',
    '\u{11a9c}',
    '\u{11c41}',
    '\u{11c42}',
    '\u{11ef7}',
    '\u{11ef8}',
    '\u{11f43}',
    '\u{11f44}',
    '\u{16a6e}',
    '\u{16a6f}',
    '\u{16af5}',
    '\u{16b37}',
    '\u{16b38}',
    '\u{16b44}',
    '\u{16e98}',
    '\u{1bc9f}',
    '\u{1da88}',
];

/// Whether `c` ends sentences (datatrove's `TERMINAL_PUNCTUATION`).
pub fn is_terminal_punct(c: char) -> bool {
    if c.is_ascii() {
        return matches!(c, '.' | '!' | '?');
    }
    TERMINAL_PUNCTUATION.binary_search(&c).is_ok()
}

/// Whether `c` is in datatrove's `PUNCTUATION_SET`: its PUNCTUATION string (ASCII
/// punctuation and [`NON_ASCII_PUNCTUATION`]), the control characters other than tab and line
/// feed, and TERMINAL_PUNCTUATION. A word made only of these is a "symbol word" that Gopher's
/// word count leaves out.
pub fn is_datatrove_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() || (c.is_ascii_control() && c != '\t' && c != '\n');
    }
    if ('\u{80}'..'\u{a0}').contains(&c) {
        return true;
    }
    NON_ASCII_PUNCTUATION.binary_search(&c).is_ok() || is_terminal_punct(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted() {
        assert!(TERMINAL_PUNCTUATION.windows(2).all(|w| w[0] < w[1]));
        assert!(NON_ASCII_PUNCTUATION.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(TERMINAL_PUNCTUATION.len(), 159);
        assert!(is_terminal_punct('。') && is_terminal_punct('！') && !is_terminal_punct('，'));
    }

    #[test]
    fn python_string_semantics() {
        assert_eq!(
            splitlines("a\nb\r\nc\rd\u{2028}e\n"),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(splitlines("a\n\nb"), ["a", "", "b"]);
        assert!(splitlines("").is_empty());
        assert_eq!(splitlines("\n"), [""]);
        assert_eq!(py_strip("\u{3000} x \u{1f}"), "x");
        assert_eq!(py_split(" a  b\tc\n").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(char_len("宋词"), 2);
    }

    #[test]
    fn punctuation_set() {
        for c in "!/—”:％１〈&(、#，。…»\"'.\r\u{0}\u{9f}".chars() {
            assert!(is_datatrove_punct(c), "{c:?}");
        }
        for c in "a宋1\t\n ".chars() {
            assert!(!is_datatrove_punct(c), "{c:?}");
        }
    }
}
