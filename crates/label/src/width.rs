//! Terminal display width of text and wrapping to a column width, with East Asian wide
//! characters (CJK, Hangul, fullwidth forms, most emoji) taking two columns and combining
//! marks none. A small table of ranges after Unicode's East Asian Width property, not the
//! whole of it: enough for prompts and responses in the languages models are trained on.

/// Ranges (inclusive) of characters that occupy no column of their own.
const ZERO: &[(u32, u32)] = &[
    (0x0300, 0x036F), // combining diacritical marks
    (0x0483, 0x0489),
    (0x0591, 0x05BD),
    (0x0610, 0x061A),
    (0x064B, 0x065F),
    (0x0E31, 0x0E31),
    (0x0E34, 0x0E3A),
    (0x0E47, 0x0E4E),
    (0x1160, 0x11FF), // Hangul medial vowels and final consonants (combine with the lead)
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x200B, 0x200F), // zero-width space, joiners, direction marks
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x20D0, 0x20FF),
    (0xFE00, 0xFE0F), // variation selectors
    (0xFE20, 0xFE2F),
    (0xFEFF, 0xFEFF),
    (0xE0100, 0xE01EF),
];

/// Ranges (inclusive) of East Asian Wide and Fullwidth characters.
const WIDE: &[(u32, u32)] = &[
    (0x1100, 0x115F), // Hangul leading consonants
    (0x231A, 0x231B), // watch, hourglass
    (0x2329, 0x232A), // angle brackets
    (0x23E9, 0x23EC),
    (0x23F0, 0x23F0),
    (0x23F3, 0x23F3),
    (0x25FD, 0x25FE),
    (0x2614, 0x2615),
    (0x2648, 0x2653),
    (0x26A1, 0x26A1),
    (0x26AA, 0x26AB),
    (0x26BD, 0x26BE),
    (0x26C4, 0x26C5),
    (0x26D4, 0x26D4),
    (0x26EA, 0x26EA),
    (0x26F2, 0x26F5),
    (0x26FA, 0x26FD),
    (0x2705, 0x2705),
    (0x270A, 0x270B),
    (0x2728, 0x2728),
    (0x274C, 0x274C),
    (0x2753, 0x2757),
    (0x2795, 0x2797),
    (0x27B0, 0x27B0),
    (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50),
    (0x2B55, 0x2B55),
    (0x2E80, 0x303E), // CJK radicals, Kangxi, ideographic description, CJK punctuation
    (0x3041, 0x33FF), // kana, bopomofo, Hangul compatibility jamo, CJK compatibility
    (0x3400, 0x4DBF), // CJK extension A
    (0x4E00, 0x9FFF), // CJK unified ideographs
    (0xA000, 0xA4CF), // Yi
    (0xA960, 0xA97F), // Hangul jamo extended A
    (0xAC00, 0xD7A3), // Hangul syllables
    (0xF900, 0xFAFF), // CJK compatibility ideographs
    (0xFE10, 0xFE19), // vertical forms
    (0xFE30, 0xFE6F), // CJK compatibility forms, small form variants
    (0xFF00, 0xFF60), // fullwidth forms
    (0xFFE0, 0xFFE6),
    (0x16FE0, 0x16FE4),
    (0x17000, 0x18CFF), // Tangut
    (0x1B000, 0x1B2FF), // kana supplement and extensions
    (0x1F004, 0x1F004),
    (0x1F0CF, 0x1F0CF),
    (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A),
    (0x1F200, 0x1F251), // enclosed ideographic supplement
    (0x1F300, 0x1F64F), // pictographs, emoticons
    (0x1F680, 0x1F6FF), // transport and map symbols
    (0x1F7E0, 0x1F7EB),
    (0x1F90C, 0x1F9FF), // supplemental symbols and pictographs
    (0x1FA70, 0x1FAFF),
    (0x20000, 0x2FFFD), // CJK extensions B–F, compatibility supplement
    (0x30000, 0x3FFFD), // CJK extensions G–H
];

fn in_ranges(c: u32, ranges: &[(u32, u32)]) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Columns a character takes in a terminal: 0, 1 or 2. Control characters count 0 (pass text
/// through [`printable`] before showing it).
pub fn char_width(c: char) -> usize {
    let u = c as u32;
    if u < 0x7F {
        return usize::from(u >= 0x20);
    }
    if c.is_control() || in_ranges(u, ZERO) {
        0
    } else if in_ranges(u, WIDE) {
        2
    } else {
        1
    }
}

/// Columns a string takes (no line breaks expected).
pub fn str_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Text made safe to print: tabs become four spaces, carriage returns go, and other control
/// characters (escape sequences in a response must not drive the labeller's terminal) show as
/// U+FFFD. Line feeds stay.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push_str("    "),
            '\r' => {}
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Wraps text into lines of at most `width` columns (at least 2, so a wide character always
/// fits). Line feeds start new lines (a blank line stays blank); lines break after a space or
/// on either side of a wide character (CJK has no spaces between words), and a word longer
/// than a line is cut. Spaces at a break are dropped.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    let mut out = Vec::new();
    let push = |out: &mut Vec<String>, line: &[char]| {
        let s: String = line.iter().collect();
        out.push(s.trim_end_matches(' ').to_string());
    };
    for para in text.split('\n') {
        let mut line: Vec<char> = Vec::new();
        let mut w = 0;
        // Where the next line may start: an index into `line` (always > 0).
        let mut brk: Option<usize> = None;
        for c in para.chars() {
            let cw = char_width(c);
            if w + cw > width {
                if c == ' ' {
                    push(&mut out, &line);
                    line.clear();
                    w = 0;
                    brk = None;
                    continue;
                }
                if let Some(i) = brk.take() {
                    let rest = line.split_off(i);
                    push(&mut out, &line);
                    line = rest;
                    w = line.iter().copied().map(char_width).sum();
                }
                if w + cw > width && !line.is_empty() {
                    push(&mut out, &line);
                    line.clear();
                    w = 0;
                }
            }
            let wide = cw == 2;
            if wide && !line.is_empty() {
                brk = Some(line.len());
            }
            line.push(c);
            w += cw;
            if c == ' ' || wide {
                brk = Some(line.len());
            }
        }
        push(&mut out, &line);
    }
    out
}

/// `s` followed by spaces up to `width` columns.
pub fn pad(s: &str, width: usize) -> String {
    let w = str_width(s);
    let mut out = String::with_capacity(s.len() + width.saturating_sub(w));
    out.push_str(s);
    out.push_str(&" ".repeat(width.saturating_sub(w)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_of_ascii_cjk_and_combining_marks() {
        assert_eq!(char_width('a'), 1);
        assert_eq!(char_width('日'), 2);
        assert_eq!(char_width('ん'), 2);
        assert_eq!(char_width('한'), 2);
        assert_eq!(char_width('，'), 2); // fullwidth comma
        assert_eq!(char_width('。'), 2);
        assert_eq!(char_width('\u{301}'), 0); // combining acute
        assert_eq!(char_width('é'), 1);
        assert_eq!(char_width('\u{1b}'), 0);
        assert_eq!(char_width('😀'), 2);
        assert_eq!(str_width("日本語"), 6);
        assert_eq!(str_width("abc漢字"), 7);
        assert_eq!(str_width("e\u{301}"), 1);
        assert_eq!(str_width("ｈｉ"), 4); // fullwidth latin
    }

    #[test]
    fn wraps_english_at_spaces() {
        assert_eq!(
            wrap("the quick brown fox jumps", 10),
            ["the quick", "brown fox", "jumps"]
        );
        assert_eq!(wrap("abcdefghij klm", 10), ["abcdefghij", "klm"]);
        assert_eq!(wrap("abcdefghijklm", 5), ["abcde", "fghij", "klm"]);
        assert_eq!(wrap("one\n\ntwo", 10), ["one", "", "two"]);
        assert_eq!(wrap("", 10), [""]);
    }

    #[test]
    fn wraps_cjk_by_columns_not_characters() {
        assert_eq!(wrap("日本語のテキスト", 6), ["日本語", "のテキ", "スト"]);
        // An odd width leaves the last column empty rather than splitting a character.
        assert_eq!(
            wrap("日本語のテキスト", 5),
            ["日本", "語の", "テキ", "スト"]
        );
        assert_eq!(wrap("ab日本", 3), ["ab", "日", "本"]);
        // Latin words stay whole next to CJK, which may break anywhere.
        assert_eq!(wrap("hello世界 world", 8), ["hello世", "界 world"]);
        assert_eq!(wrap("中文", 1), ["中", "文"]);
    }

    #[test]
    fn wrapped_lines_never_exceed_the_width_and_keep_every_character() {
        let texts = [
            "电子计算机的发展 started in the 1940s, and 컴퓨터 science followed. 😀😀😀",
            "a b c d e f g h i j k l m n o p q r s t u v w x y z",
            "Supercalifragilisticexpialidocious 長い単語の後に空白 x",
            "e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}e\u{301} 日\u{301}本",
        ];
        for text in texts {
            for width in 2..30 {
                let lines = wrap(text, width);
                for l in &lines {
                    assert!(str_width(l) <= width, "{l:?} wider than {width}");
                }
                let kept: String = lines.concat().chars().filter(|c| *c != ' ').collect();
                let want: String = text.chars().filter(|c| *c != ' ').collect();
                assert_eq!(kept, want, "width {width}");
            }
        }
    }

    #[test]
    fn printable_neutralises_control_characters() {
        assert_eq!(printable("a\tb\r\nc\u{1b}[2J"), "a    b\nc\u{FFFD}[2J");
    }

    #[test]
    fn pad_counts_columns() {
        assert_eq!(pad("日本", 6), "日本  ");
        assert_eq!(pad("ab", 1), "ab");
    }
}
