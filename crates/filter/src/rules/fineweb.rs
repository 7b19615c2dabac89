//! FineWeb's own quality rules (Penedo et al. 2024), as datatrove's `FineWebQualityFilter`
//! (pipeline/filters/fineweb_quality_filter.py, datatrove 0.10) computes them.
//!
//! On the non-blank lines (`text.split("\n")`, lines whose strip is empty left out), in order,
//! a document is dropped when
//! - it has none (`empty`);
//! - fewer than 12% of them end in terminal punctuation (`line_punct_ratio`; datatrove's
//!   `TERMINAL_PUNCTUATION`, so `。` counts);
//! - more than 67% are at most 30 characters long (`short_line_ratio`);
//! - lines repeating an earlier line hold more than 1% of the characters, newlines not
//!   counted (`char_dup_ratio`);
//! - there are more than 0.3 newlines per word (`list_ratio`).
//!
//! CJK documents: a short line is at most 7 characters. 30 characters of English are about 5
//! words (a word and its space average 6 characters); a modern Chinese word averages about
//! 1.5 characters (fewer in literary Chinese), so 5 words are 7 characters.

use super::gopher_repetition::find_duplicates;
use super::{ratio, Reason, Verdict};
use crate::text::{char_len, is_terminal_punct, py_strip};

const FAMILY: &str = "fineweb";

#[derive(Debug, Clone, PartialEq)]
pub struct FineWeb {
    pub min_line_punct_ratio: Option<f64>,
    /// Do not drop documents none of whose lines end in punctuation (datatrove's
    /// `line_punct_exclude_zero`).
    pub line_punct_exclude_zero: bool,
    pub max_short_line_ratio: Option<f64>,
    pub short_line_length: usize,
    pub cjk_short_line_length: usize,
    pub max_char_dup_ratio: Option<f64>,
    pub max_newline_ratio: Option<f64>,
}

impl Default for FineWeb {
    fn default() -> Self {
        FineWeb {
            min_line_punct_ratio: Some(0.12),
            line_punct_exclude_zero: false,
            max_short_line_ratio: Some(0.67),
            short_line_length: 30,
            cjk_short_line_length: 7,
            max_char_dup_ratio: Some(0.01),
            max_newline_ratio: Some(0.3),
        }
    }
}

impl FineWeb {
    /// `words`: the number of words (tokens, punctuation included) of `text`.
    pub fn check(&self, text: &str, cjk: bool, words: impl FnOnce() -> usize) -> Verdict {
        let fail = |rule| Err(Reason::new(FAMILY, rule));
        let lines: Vec<&str> = text
            .split('\n')
            .filter(|l| !py_strip(l).is_empty())
            .collect();
        if lines.is_empty() {
            return fail("empty");
        }
        if let Some(min) = self.min_line_punct_ratio {
            let ends = lines
                .iter()
                .filter(|l| l.chars().next_back().is_some_and(is_terminal_punct))
                .count();
            let r = ratio(ends, lines.len());
            if r < min && !(r == 0.0 && self.line_punct_exclude_zero) {
                return fail("line_punct_ratio");
            }
        }
        if let Some(max) = self.max_short_line_ratio {
            let limit = if cjk {
                self.cjk_short_line_length
            } else {
                self.short_line_length
            };
            let short = lines.iter().filter(|l| char_len(l) <= limit).count();
            if ratio(short, lines.len()) > max {
                return fail("short_line_ratio");
            }
        }
        if let Some(max) = self.max_char_dup_ratio {
            let (_, dup_chars) = find_duplicates(lines.iter().copied());
            let chars = char_len(text) - text.matches('\n').count();
            if ratio(dup_chars, chars) > max {
                return fail("char_dup_ratio");
            }
        }
        if let Some(max) = self.max_newline_ratio {
            let newlines = text.matches('\n').count();
            if ratio(newlines, words()) > max {
                return fail("list_ratio");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::Words;

    fn run(f: &FineWeb, text: &str) -> String {
        let cjk = Words::new(text).script() == crate::words::Script::Cjk;
        match f.check(text, cjk, || Words::new(text).tokens.len()) {
            Ok(()) => "kept".into(),
            Err(r) => r.to_string(),
        }
    }

    const PROSE: &str = "The river rises in the hills above the town and runs south to the sea.\nIn spring the water is high and fast, and the old mill wheel turns again.\nBy late summer it is a quiet stream that children wade across on their way home.";

    #[test]
    fn each_rule() {
        let f = FineWeb::default();
        assert_eq!(run(&f, PROSE), "kept");
        assert_eq!(run(&f, "  \n\n \n"), "fineweb:empty");
        assert_eq!(run(&f, ""), "fineweb:empty");
        let no_punct = "Products and services for the whole family at low prices\nFree shipping on orders over fifty dollars every day of the week\nContact our friendly customer service team for more information";
        assert_eq!(run(&f, no_punct), "fineweb:line_punct_ratio");
        let exclude = FineWeb {
            line_punct_exclude_zero: true,
            ..FineWeb::default()
        };
        assert_eq!(run(&exclude, no_punct), "kept");
        let menu = "Home.\nAbout us.\nProducts.\nThe river rises in the hills above the town and runs south.";
        assert_eq!(run(&f, menu), "fineweb:short_line_ratio");
        let dup = format!("{PROSE}\n{}", PROSE.lines().next().unwrap());
        assert_eq!(run(&f, &dup), "fineweb:char_dup_ratio");
        let list = "Apples.\nPears.\nPlums.\nFigs.\nBread.";
        let long_lines = FineWeb {
            max_short_line_ratio: None,
            ..FineWeb::default()
        };
        assert_eq!(run(&long_lines, list), "fineweb:list_ratio");
    }

    #[test]
    fn chinese_short_lines_are_measured_in_characters() {
        let f = FineWeb::default();
        let ci = "近清明。\n翠禽枝上消魂。\n可惜一片清歌，都付与黄昏。\n欲共柳花低诉，怕柳花轻薄，不解伤春。\n念楚乡旅宿，柔情别绪，谁与温存。";
        assert_eq!(run(&f, ci), "kept");
        let menu = "首页。\n新闻。\n体育。\n财经。\n娱乐。\n关于我们的网站和服务。";
        assert_eq!(run(&f, menu), "fineweb:short_line_ratio");
    }
}
