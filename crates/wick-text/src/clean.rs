//! Text cleaning before quality filtering: terminal escape sequences, control characters,
//! byte-order marks, Windows line ends, Unicode NFC and runs of blank lines.
//!
//! [`clean`] borrows its input when nothing needed changing, so clean text costs one scan.

use std::borrow::Cow;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// What [`clean`] does; every step can be turned off on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanOptions {
    /// Remove ANSI/ECMA-48 escape sequences: CSI (`ESC [ … final`, e.g. the colour codes
    /// `\x1b[32m` … `\x1b[m`), OSC/DCS/APC/PM/SOS strings (ended by BEL or `ESC \`), two-byte
    /// escapes (`ESC 7`, `ESC (B`), and the 8-bit CSI U+009B.
    pub ansi: bool,
    /// Remove control characters (Unicode Cc) other than tab and line feed: NUL, BEL, backspace,
    /// form feed, vertical tab, DEL, the C1 controls. A carriage return is kept here (see `crlf`).
    pub control: bool,
    /// Remove byte-order marks (U+FEFF): the one at the start and any left inside by
    /// concatenating files (as a zero-width no-break space it has been deprecated since Unicode
    /// 3.2 in favour of U+2060).
    pub bom: bool,
    /// Line ends to `\n`: CRLF becomes LF, and so does a lone CR (old Mac line ends).
    pub crlf: bool,
    /// Unicode canonical composition (NFC), so that "é" is one code point whichever way it came.
    pub nfc: bool,
    /// Keep at most this many blank (empty or whitespace-only) lines in a row; `None` keeps all.
    pub max_blank_lines: Option<usize>,
}

impl Default for CleanOptions {
    /// Everything on; runs of blank lines collapse to one. One blank line is what separates
    /// paragraphs (Gopher's repetition rules split paragraphs on `\n\n`), so collapsing to one
    /// keeps the document's paragraph structure while dropping layout padding.
    fn default() -> Self {
        CleanOptions {
            ansi: true,
            control: true,
            bom: true,
            crlf: true,
            nfc: true,
            max_blank_lines: Some(1),
        }
    }
}

impl CleanOptions {
    /// Every step off: [`clean`] returns its input unchanged.
    pub fn none() -> Self {
        CleanOptions {
            ansi: false,
            control: false,
            bom: false,
            crlf: false,
            nfc: false,
            max_blank_lines: None,
        }
    }
}

const ESC: char = '\u{1b}';

/// Cleans `text` as `o` says, in this order: escape sequences, BOMs, line ends, control
/// characters, NFC, blank-line runs. Borrowed when nothing changed.
pub fn clean<'a>(text: &'a str, o: &CleanOptions) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    if needs_char_pass(text, o) {
        if let Some(s) = char_pass(&out, o) {
            out = Cow::Owned(s);
        }
    }
    if o.nfc && !out.is_ascii() && is_nfc_quick(out.chars()) != IsNormalized::Yes {
        let s: String = out.nfc().collect();
        if s != *out {
            out = Cow::Owned(s);
        }
    }
    if let Some(max) = o.max_blank_lines {
        if let Some(s) = collapse_blank_lines(&out, max) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// Whether the character pass could change anything: a cheap byte scan that rules out the
/// common case of clean text.
fn needs_char_pass(text: &str, o: &CleanOptions) -> bool {
    let (ansi, control, bom, crlf) = (o.ansi, o.control, o.bom, o.crlf);
    if !(ansi || control || bom || crlf) {
        return false;
    }
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| match b {
        0x1b => ansi || control,
        b'\r' => crlf,
        b'\t' | b'\n' => false,
        0x00..=0x1f | 0x7f => control,
        // U+0080..U+009F (C1 controls, including the 8-bit CSI) are C2 80..C2 9F in UTF-8.
        0xc2 => (control || ansi) && matches!(bytes.get(i + 1), Some(0x80..=0x9f)),
        // U+FEFF is EF BB BF.
        0xef => bom && bytes.get(i + 1) == Some(&0xbb) && bytes.get(i + 2) == Some(&0xbf),
        _ => false,
    })
}

/// Escape sequences, BOMs, line ends and control characters in one pass; `None` when the text
/// came through unchanged.
fn char_pass(text: &str, o: &CleanOptions) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            ESC if o.ansi => skip_escape(&mut it),
            '\u{9b}' if o.ansi => skip_csi(&mut it),
            '\u{feff}' if o.bom => {}
            '\r' if o.crlf => {
                if it.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\t' | '\n' | '\r' => out.push(c),
            c if o.control && c.is_control() => {}
            c => out.push(c),
        }
    }
    (out != text).then_some(out)
}

/// Skips what follows an ESC: a CSI sequence, a control string, or a two-character escape
/// (with any intermediate bytes).
fn skip_escape(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match it.peek().copied() {
        Some('[') => {
            it.next();
            skip_csi(it);
        }
        // OSC, DCS, SOS, PM, APC: a string ended by BEL or ST (ESC \).
        Some(']' | 'P' | 'X' | '^' | '_') => {
            it.next();
            while let Some(c) = it.next() {
                if c == '\u{7}' || c == '\u{9c}' {
                    break;
                }
                if c == ESC {
                    if it.peek() == Some(&'\\') {
                        it.next();
                    }
                    break;
                }
            }
        }
        // nF escapes: intermediates 0x20–0x2F then a final 0x30–0x7E (e.g. ESC ( B).
        Some(' '..='/') => {
            while matches!(it.peek(), Some(' '..='/')) {
                it.next();
            }
            if matches!(it.peek(), Some('0'..='~')) {
                it.next();
            }
        }
        // Fp/Fe/Fs escapes: one final character (ESC 7, ESC M, ESC c).
        Some('0'..='~') => {
            it.next();
        }
        // A lone ESC (at the end, or before text): dropped by itself.
        _ => {}
    }
}

/// Skips a CSI sequence's parameters (0x30–0x3F), intermediates (0x20–0x2F) and final byte
/// (0x40–0x7E). A sequence cut short by other text ends where the text starts.
fn skip_csi(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while matches!(it.peek(), Some('0'..='?')) {
        it.next();
    }
    while matches!(it.peek(), Some(' '..='/')) {
        it.next();
    }
    if matches!(it.peek(), Some('@'..='~')) {
        it.next();
    }
}

/// Drops blank lines beyond the first `max` of each run; `None` when no run was too long.
fn collapse_blank_lines(text: &str, max: usize) -> Option<String> {
    let blank = |l: &str| l.chars().all(char::is_whitespace);
    // The lines, without the empty piece after a final newline.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut run = 0usize;
    let too_long = body.split('\n').any(|line| {
        run = if blank(line) { run + 1 } else { 0 };
        run > max
    });
    if !too_long {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    run = 0;
    for line in body.split('\n') {
        run = if blank(line) { run + 1 } else { 0 };
        if run <= max {
            out.push_str(line);
            out.push('\n');
        }
    }
    if body.len() == text.len() {
        out.pop();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        clean(s, &CleanOptions::default()).into_owned()
    }

    #[test]
    fn clean_text_is_borrowed() {
        let s = "Plain text.\n\nA second paragraph, café, 宋词。\n";
        assert!(matches!(
            clean(s, &CleanOptions::default()),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            clean("", &CleanOptions::default()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn fortunes_colour_codes_are_removed() {
        // The first record of testdata/raw/zh/song100, byte for byte.
        let raw = "\x1b[32m题目:《塞上》\x1b[m\n\x1b[33m作者:柳开（９４６－９９９）\x1b[m\n鸣骹直上一千尺，天静无风声更干。\n";
        assert_eq!(
            c(raw),
            "题目:《塞上》\n作者:柳开（９４６－９９９）\n鸣骹直上一千尺，天静无风声更干。\n"
        );
    }

    #[test]
    fn other_escape_sequences() {
        assert_eq!(c("a\x1b[1;31mred\x1b[0m b"), "ared b");
        assert_eq!(c("\x1b[2K\rprogress"), "\nprogress");
        assert_eq!(c("x\x1b]0;window title\x07y"), "xy");
        assert_eq!(
            c("x\x1b]8;;http://e.com\x1b\\link\x1b]8;;\x1b\\y"),
            "xlinky"
        );
        assert_eq!(c("x\x1b(By"), "xy");
        assert_eq!(c("x\x1b7y\x1b8"), "xy");
        assert_eq!(c("x\u{9b}31my"), "xy");
        assert_eq!(c("trailing\x1b"), "trailing");
        // Off: the escape stays, but the control pass still drops the ESC itself.
        let o = CleanOptions {
            ansi: false,
            ..CleanOptions::default()
        };
        assert_eq!(clean("a\x1b[31mb", &o), "a[31mb");
        let o = CleanOptions {
            ansi: false,
            control: false,
            ..CleanOptions::default()
        };
        assert_eq!(clean("a\x1b[31mb", &o), "a\x1b[31mb");
    }

    #[test]
    fn control_characters_bom_and_line_ends() {
        assert_eq!(c("a\u{0}b\u{7}c\u{8}d\u{7f}e\u{85}f\u{c}g"), "abcdefg");
        assert_eq!(c("tab\tkept\n"), "tab\tkept\n");
        assert_eq!(c("\u{feff}start"), "start");
        assert_eq!(c("one\u{feff}two"), "onetwo");
        assert_eq!(c("a\r\nb\r\n"), "a\nb\n");
        assert_eq!(c("a\rb"), "a\nb");
        let o = CleanOptions {
            crlf: false,
            ..CleanOptions::default()
        };
        assert_eq!(clean("a\r\nb", &o), "a\r\nb");
        let o = CleanOptions {
            bom: false,
            ..CleanOptions::default()
        };
        assert_eq!(clean("\u{feff}x", &o), "\u{feff}x");
        // Not controls: zero-width joiners and format characters are text.
        assert_eq!(c("a\u{200d}b\u{2028}c"), "a\u{200d}b\u{2028}c");
    }

    #[test]
    fn nfc() {
        assert_eq!(c("cafe\u{301}"), "caf\u{e9}");
        assert_eq!(c("\u{1100}\u{1161}"), "\u{ac00}");
        let o = CleanOptions {
            nfc: false,
            ..CleanOptions::default()
        };
        assert_eq!(clean("cafe\u{301}", &o), "cafe\u{301}");
    }

    #[test]
    fn blank_line_runs() {
        assert_eq!(c("a\n\n\n\nb"), "a\n\nb");
        assert_eq!(c("a\n\n  \n\t\nb\n"), "a\n\nb\n");
        assert_eq!(c("\n\n\na"), "\na");
        assert_eq!(c("a\n\n\n"), "a\n\n");
        assert_eq!(c("a\n\nb"), "a\n\nb");
        let two = CleanOptions {
            max_blank_lines: Some(2),
            ..CleanOptions::default()
        };
        assert_eq!(clean("a\n\n\n\n\nb", &two), "a\n\n\nb");
        let zero = CleanOptions {
            max_blank_lines: Some(0),
            ..CleanOptions::default()
        };
        assert_eq!(clean("a\n\nb\n \nc\n", &zero), "a\nb\nc\n");
        let off = CleanOptions {
            max_blank_lines: None,
            ..CleanOptions::default()
        };
        assert_eq!(clean("a\n\n\n\nb", &off), "a\n\n\n\nb");
        // CRLF blank lines collapse too, once their CRs are gone.
        assert_eq!(c("a\r\n\r\n\r\nb"), "a\n\nb");
    }

    #[test]
    fn everything_off_is_identity() {
        let s = "\u{feff}\x1b[1mx\x1b[m\r\n\n\n\ncafe\u{301}\u{0}";
        assert!(matches!(clean(s, &CleanOptions::none()), Cow::Borrowed(_)));
    }

    #[test]
    fn cleaning_is_idempotent() {
        for s in [
            "\x1b[32m题目\x1b[m\r\n\r\n\r\n正文\u{0}",
            "a\n \n\n b\r",
            "\u{feff}e\u{301}\n\n\n",
        ] {
            let once = c(s);
            assert_eq!(c(&once), once, "{s:?}");
        }
    }
}
