//! `filter`: cleans JSONL documents and drops the low-quality ones with the heuristic rules of
//! the Gopher, C4 and FineWeb papers, reproducing datatrove's implementations and defaults
//! (see docs/filter.md for every rule, its source and threshold).
//!
//! A document is cleaned ([`wick_text::clean`]), then judged by the rule families in
//! datatrove's FineWeb order — Gopher repetition, Gopher quality, C4, FineWeb — and dropped at
//! the first rule it fails, with a reason such as `gopher_quality:min_words`. Kept documents
//! carry the cleaned text (and C4's line removal, unless turned off).
//!
//! Word-based rules need words: [`words`] splits text like spaCy does for English and makes
//! every CJK character a word, and decides per document whether it is CJK, which switches the
//! few thresholds that have CJK equivalents.

use std::borrow::Cow;

pub mod rules;
pub mod run;
pub mod text;
pub mod words;

pub use rules::c4::C4;
pub use rules::fineweb::FineWeb;
pub use rules::gopher_quality::GopherQuality;
pub use rules::gopher_repetition::GopherRepetition;
pub use rules::{Doc, Reason, Verdict};
pub use run::{Filter, RunOptions, Summary};
pub use wick_text::CleanOptions;
pub use words::Script;

/// Cleaning and the rule families; `None` turns a step off.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub clean: Option<CleanOptions>,
    pub gopher_repetition: Option<GopherRepetition>,
    pub gopher_quality: Option<GopherQuality>,
    pub c4: Option<C4>,
    pub fineweb: Option<FineWeb>,
    /// Treat every document as this script instead of deciding per document.
    pub script: Option<Script>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            clean: Some(CleanOptions::default()),
            gopher_repetition: Some(GopherRepetition::default()),
            gopher_quality: Some(GopherQuality::default()),
            c4: Some(C4::default()),
            fineweb: Some(FineWeb::default()),
            script: None,
        }
    }
}

/// What became of one document's text.
#[derive(Debug)]
pub struct Judgement<'a> {
    /// The text after cleaning (borrowed when cleaning changed nothing).
    pub cleaned: Cow<'a, str>,
    /// C4's kept lines, when they differ from the cleaned text.
    pub rewritten: Option<String>,
    pub script: Script,
    pub verdict: Verdict,
}

impl Judgement<'_> {
    /// The text a kept document is written with.
    pub fn kept_text(&self) -> &str {
        self.rewritten.as_deref().unwrap_or(&self.cleaned)
    }

    /// Whether the output text differs from the input.
    pub fn changed(&self) -> bool {
        self.rewritten.is_some() || matches!(self.cleaned, Cow::Owned(_))
    }
}

impl FilterConfig {
    /// Cleans and judges one document's text.
    pub fn judge<'a>(&self, text: &'a str) -> Judgement<'a> {
        let cleaned = match &self.clean {
            Some(o) => wick_text::clean(text, o),
            None => Cow::Borrowed(text),
        };
        let (script, rewritten, verdict) = self.judge_clean(&cleaned);
        Judgement {
            cleaned,
            rewritten,
            script,
            verdict,
        }
    }

    fn judge_clean(&self, text: &str) -> (Script, Option<String>, Verdict) {
        let any_rule = self.gopher_repetition.is_some()
            || self.gopher_quality.is_some()
            || self.c4.is_some()
            || self.fineweb.is_some();
        if !any_rule {
            return (Script::Spaced, None, Ok(()));
        }
        let doc = Doc::new(text, self.script);
        let script = doc.script;
        let verdict = (|| {
            if let Some(g) = &self.gopher_repetition {
                g.check(&doc)?;
            }
            if let Some(g) = &self.gopher_quality {
                g.check(&doc)?;
            }
            let rewritten = match &self.c4 {
                Some(c) => c.check(&doc)?,
                None => None,
            };
            if let Some(f) = &self.fineweb {
                match &rewritten {
                    Some(t) => f.check(t, doc.is_cjk(), || words::Words::count(t))?,
                    None => f.check(text, doc.is_cjk(), || doc.words.tokens.len())?,
                }
            }
            Ok(rewritten)
        })();
        match verdict {
            Ok(rewritten) => (script, rewritten, Ok(())),
            Err(r) => (script, None, Err(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_run_in_datatrove_order() {
        let c = FilterConfig::default();
        // Empty: Gopher repetition speaks first.
        let j = c.judge("");
        assert_eq!(
            j.verdict.unwrap_err().to_string(),
            "gopher_repetition:empty"
        );
        // With every family off, anything is kept unchanged (but cleaned).
        let off = FilterConfig {
            gopher_repetition: None,
            gopher_quality: None,
            c4: None,
            fineweb: None,
            ..FilterConfig::default()
        };
        let j = off.judge("\u{1b}[1mx\u{1b}[m");
        assert!(j.verdict.is_ok());
        assert_eq!(j.kept_text(), "x");
        assert!(j.changed());
        let j = off.judge("");
        assert!(j.verdict.is_ok() && !j.changed());
    }
}
