use std::collections::HashSet;
use std::fmt::Display;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Parser, ValueEnum};
use filter::rules::gopher_quality::{CJK_STOP_WORDS_CSV, STOP_WORDS_CSV};
use filter::{
    CleanOptions, Filter, FilterConfig, FineWeb, GopherQuality, GopherRepetition, RunOptions,
    Script, C4,
};
use wick_cli::{Common, OutputFile, SkipInvalid};
use wick_io::{inputs_or_stdin, AtomicFile, Output, Result};

/// Clean JSONL documents and drop low-quality ones with the Gopher, C4 and FineWeb heuristics.
///
/// Each document's text is cleaned (ANSI escapes, control characters, BOMs, CRLF, NFC, blank
/// line runs) and judged by four rule families in datatrove's FineWeb order: Gopher
/// repetition, Gopher quality, C4, FineWeb. Thresholds are datatrove's defaults. Kept
/// documents go to stdout (or -o) with the cleaned text and every other field as it was;
/// dropped ones go to --rejected with "filter_reason" (e.g. "gopher_quality:min_words").
/// Chinese and Japanese documents (detected per document) count characters as words and use
/// Chinese stop words. Every threshold takes "off" to turn its rule off. Rules and sources:
/// docs/filter.md.
#[derive(Parser)]
#[command(
    version,
    mut_arg("output", |a| a.help("Write kept documents here instead of stdout (atomically).")),
    after_help = "Examples:\n  filter corpus.jsonl > kept.jsonl\n  \
                  filter --rejected dropped.jsonl --min-words 20 --no-c4 a.jsonl -o kept.jsonl"
)]
struct Cli {
    /// JSONL inputs; stdin when none is named or for "-". Lines may be up to
    /// 256 MiB; a UTF-8 byte-order mark at the start of a file is skipped.
    files: Vec<String>,
    #[command(flatten)]
    output: OutputFile,
    /// Write dropped documents here, each with "filter_reason" (atomically).
    #[arg(long)]
    rejected: Option<String>,
    /// Field holding a document's text.
    #[arg(long, default_value = "text")]
    field: String,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
    #[command(flatten)]
    common: Common,

    /// No cleaning at all: the rules see the text as it is.
    #[arg(long, help_heading = "Cleaning")]
    no_clean: bool,
    /// Keep ANSI escape sequences (colour codes and the like).
    #[arg(long, help_heading = "Cleaning")]
    keep_ansi: bool,
    /// Keep control characters (other than tab and newline, which are always kept).
    #[arg(long, help_heading = "Cleaning")]
    keep_control: bool,
    /// Keep byte-order marks (U+FEFF).
    #[arg(long, help_heading = "Cleaning")]
    keep_bom: bool,
    /// Keep CRLF and lone CR line ends.
    #[arg(long, help_heading = "Cleaning")]
    keep_crlf: bool,
    /// Skip Unicode NFC normalisation.
    #[arg(long, help_heading = "Cleaning")]
    no_nfc: bool,
    /// Keep at most this many blank lines in a row.
    #[arg(long, default_value = "1", help_heading = "Cleaning")]
    max_blank_lines: Limit<usize>,

    /// Turn the Gopher repetition rules off.
    #[arg(long, help_heading = "Gopher repetition")]
    no_gopher_repetition: bool,
    /// Drop if more than this fraction of paragraphs repeat an earlier one.
    #[arg(long, default_value = "0.3", help_heading = "Gopher repetition")]
    max_dup_para_frac: Limit<f64>,
    /// Drop if repeated paragraphs hold more than this fraction of the characters.
    #[arg(long, default_value = "0.2", help_heading = "Gopher repetition")]
    max_dup_para_char_frac: Limit<f64>,
    /// Drop if more than this fraction of lines repeat an earlier one.
    #[arg(long, default_value = "0.3", help_heading = "Gopher repetition")]
    max_dup_line_frac: Limit<f64>,
    /// Drop if repeated lines hold more than this fraction of the characters.
    #[arg(long, default_value = "0.2", help_heading = "Gopher repetition")]
    max_dup_line_char_frac: Limit<f64>,
    /// N:FRACTION pairs: drop if the most frequent word n-gram covers more than FRACTION of
    /// the characters.
    #[arg(
        long,
        default_value = "2:0.2,3:0.18,4:0.16",
        help_heading = "Gopher repetition"
    )]
    top_ngrams: NGrams,
    /// N:FRACTION pairs: drop if repeated word n-grams cover more than FRACTION of the
    /// characters.
    #[arg(
        long,
        default_value = "5:0.15,6:0.14,7:0.13,8:0.12,9:0.11,10:0.1",
        help_heading = "Gopher repetition"
    )]
    dup_ngrams: NGrams,

    /// Turn the Gopher quality rules off.
    #[arg(long, help_heading = "Gopher quality")]
    no_gopher_quality: bool,
    /// Drop documents with fewer words (not counting punctuation).
    #[arg(long, default_value = "50", help_heading = "Gopher quality")]
    min_words: Limit<usize>,
    /// Drop documents with more words.
    #[arg(long, default_value = "100000", help_heading = "Gopher quality")]
    max_words: Limit<usize>,
    /// Drop if the mean word length (characters) is below this.
    #[arg(long, default_value = "3", help_heading = "Gopher quality")]
    min_mean_word_length: Limit<f64>,
    /// Drop if the mean word length is above this.
    #[arg(long, default_value = "10", help_heading = "Gopher quality")]
    max_mean_word_length: Limit<f64>,
    /// Drop if "#" or "..." per word exceeds this.
    #[arg(long, default_value = "0.1", help_heading = "Gopher quality")]
    max_symbol_word_ratio: Limit<f64>,
    /// Drop if more than this fraction of lines start with a bullet ("•" or "-").
    #[arg(long, default_value = "0.9", help_heading = "Gopher quality")]
    max_bullet_lines: Limit<f64>,
    /// Drop if more than this fraction of lines end with an ellipsis.
    #[arg(long, default_value = "0.3", help_heading = "Gopher quality")]
    max_ellipsis_lines: Limit<f64>,
    /// Drop if fewer than this fraction of words (punctuation tokens included) have a letter.
    #[arg(long, default_value = "0.8", help_heading = "Gopher quality")]
    min_alpha_words: Limit<f64>,
    /// Leave punctuation tokens out of that ratio (the Gopher paper's "80% of words";
    /// datatrove counts them, which drops punctuation-dense text such as verse drama).
    #[arg(long, help_heading = "Gopher quality")]
    alpha_words_skip_punct: bool,
    /// Drop if fewer distinct stop words occur.
    #[arg(long, default_value = "2", help_heading = "Gopher quality")]
    min_stop_words: Limit<usize>,
    /// Stop words, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = STOP_WORDS_CSV, help_heading = "Gopher quality")]
    stop_words: Vec<String>,

    /// Turn the C4 rules off.
    #[arg(long, help_heading = "C4")]
    no_c4: bool,
    /// Judge by C4's rules but keep a kept document's text whole (no line removal).
    #[arg(long, help_heading = "C4")]
    c4_keep_text: bool,
    /// Also remove lines that do not end in terminal punctuation (datatrove's class default;
    /// its FineWeb recipe, followed here, leaves it off).
    #[arg(long, help_heading = "C4")]
    c4_terminal_punct: bool,
    /// Drop documents with fewer sentences in their kept lines.
    #[arg(long, default_value = "5", help_heading = "C4")]
    c4_min_sentences: Limit<usize>,
    /// Remove lines with fewer words.
    #[arg(long, default_value = "3", help_heading = "C4")]
    c4_min_words_per_line: Limit<usize>,
    /// Remove lines with a longer word (characters).
    #[arg(long, default_value = "1000", help_heading = "C4")]
    c4_max_word_length: Limit<usize>,
    /// Keep Wikipedia citation marks ([1], [edit], [citation needed]).
    #[arg(long, help_heading = "C4")]
    c4_keep_citations: bool,
    /// Do not drop documents containing "lorem ipsum".
    #[arg(long, help_heading = "C4")]
    c4_allow_lorem_ipsum: bool,
    /// Do not remove lines mentioning "javascript".
    #[arg(long, help_heading = "C4")]
    c4_allow_javascript: bool,
    /// Do not drop documents containing "{".
    #[arg(long, help_heading = "C4")]
    c4_allow_curly_bracket: bool,
    /// Do not remove lines with cookie / terms-of-use / privacy-policy phrases.
    #[arg(long, help_heading = "C4")]
    c4_allow_policy: bool,

    /// Turn the FineWeb rules off.
    #[arg(long, help_heading = "FineWeb")]
    no_fineweb: bool,
    /// Drop if fewer than this fraction of lines end in terminal punctuation.
    #[arg(long, default_value = "0.12", help_heading = "FineWeb")]
    min_line_punct_ratio: Limit<f64>,
    /// Do not apply the line punctuation rule to documents where no line ends in punctuation.
    #[arg(long, help_heading = "FineWeb")]
    line_punct_exclude_zero: bool,
    /// Drop if more than this fraction of lines are short.
    #[arg(long, default_value = "0.67", help_heading = "FineWeb")]
    max_short_line_ratio: Limit<f64>,
    /// A short line has at most this many characters.
    #[arg(long, default_value_t = 30, help_heading = "FineWeb")]
    short_line_length: usize,
    /// Drop if lines repeating an earlier line hold more than this fraction of the characters.
    #[arg(long, default_value = "0.01", help_heading = "FineWeb")]
    max_char_dup_ratio: Limit<f64>,
    /// Drop if newlines per word exceed this.
    #[arg(long, default_value = "0.3", help_heading = "FineWeb")]
    max_newline_ratio: Limit<f64>,

    /// How documents' words are delimited: decided per document, or forced.
    #[arg(long, value_enum, default_value_t = ScriptChoice::Auto, help_heading = "CJK (Chinese, Japanese)")]
    script: ScriptChoice,
    /// Gopher minimum word count for CJK documents, in characters.
    #[arg(long, default_value = "50", help_heading = "CJK (Chinese, Japanese)")]
    cjk_min_words: Limit<usize>,
    /// Stop-word minimum for CJK documents.
    #[arg(long, default_value = "2", help_heading = "CJK (Chinese, Japanese)")]
    cjk_min_stop_words: Limit<usize>,
    /// Stop characters for CJK documents, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = CJK_STOP_WORDS_CSV, help_heading = "CJK (Chinese, Japanese)")]
    cjk_stop_words: Vec<String>,
    /// FineWeb short-line length for CJK documents, in characters.
    #[arg(long, default_value_t = 7, help_heading = "CJK (Chinese, Japanese)")]
    cjk_short_line_length: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScriptChoice {
    /// Per document: CJK when CJK characters are at least half its words.
    Auto,
    /// Every document is space-separated.
    Spaced,
    /// Every document is CJK.
    Cjk,
}

/// A threshold, or "off".
#[derive(Clone, Copy, Debug)]
struct Limit<T>(Option<T>);

impl<T: FromStr> FromStr for Limit<T>
where
    T::Err: Display,
{
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
            return Ok(Limit(None));
        }
        s.parse()
            .map(|v| Limit(Some(v)))
            .map_err(|e| format!("{e} (a number, or \"off\")"))
    }
}

/// N:FRACTION pairs, or "off".
#[derive(Clone, Debug)]
struct NGrams(Vec<(usize, f64)>);

impl FromStr for NGrams {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") || s.is_empty() {
            return Ok(NGrams(Vec::new()));
        }
        s.split(',')
            .map(|p| {
                let (n, f) = p
                    .split_once(':')
                    .ok_or_else(|| format!("\"{p}\" is not N:FRACTION"))?;
                let n: usize = n.trim().parse().map_err(|e| format!("\"{p}\": {e}"))?;
                let f: f64 = f.trim().parse().map_err(|e| format!("\"{p}\": {e}"))?;
                if n == 0 {
                    return Err(format!("\"{p}\": n must be at least 1"));
                }
                Ok((n, f))
            })
            .collect::<std::result::Result<_, _>>()
            .map(NGrams)
    }
}

// Many small allocations freed on other threads: mimalloc, as in tokenize.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    wick_io::run_main("filter", || run(cli))
}

fn words(v: Vec<String>) -> HashSet<String> {
    v.into_iter()
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn config(c: &Cli) -> FilterConfig {
    let clean = (!c.no_clean).then_some(CleanOptions {
        ansi: !c.keep_ansi,
        control: !c.keep_control,
        bom: !c.keep_bom,
        crlf: !c.keep_crlf,
        nfc: !c.no_nfc,
        max_blank_lines: c.max_blank_lines.0,
    });
    let gopher_repetition = (!c.no_gopher_repetition).then(|| GopherRepetition {
        max_dup_para_frac: c.max_dup_para_frac.0,
        max_dup_para_char_frac: c.max_dup_para_char_frac.0,
        max_dup_line_frac: c.max_dup_line_frac.0,
        max_dup_line_char_frac: c.max_dup_line_char_frac.0,
        top_n_grams: c.top_ngrams.0.clone(),
        dup_n_grams: c.dup_ngrams.0.clone(),
    });
    let gopher_quality = (!c.no_gopher_quality).then(|| GopherQuality {
        min_words: c.min_words.0,
        max_words: c.max_words.0,
        min_mean_word_length: c.min_mean_word_length.0,
        max_mean_word_length: c.max_mean_word_length.0,
        max_symbol_word_ratio: c.max_symbol_word_ratio.0,
        max_bullet_lines: c.max_bullet_lines.0,
        max_ellipsis_lines: c.max_ellipsis_lines.0,
        min_alpha_words: c.min_alpha_words.0,
        alpha_words_skip_punct: c.alpha_words_skip_punct,
        min_stop_words: c.min_stop_words.0,
        stop_words: words(c.stop_words.clone()),
        cjk_min_words: c.cjk_min_words.0,
        cjk_min_stop_words: c.cjk_min_stop_words.0,
        cjk_stop_words: words(c.cjk_stop_words.clone()),
    });
    let c4 = (!c.no_c4).then_some(C4 {
        keep_text: c.c4_keep_text,
        remove_citations: !c.c4_keep_citations,
        terminal_punct: c.c4_terminal_punct,
        min_sentences: c.c4_min_sentences.0,
        min_words_per_line: c.c4_min_words_per_line.0,
        max_word_length: c.c4_max_word_length.0,
        lorem_ipsum: !c.c4_allow_lorem_ipsum,
        javascript: !c.c4_allow_javascript,
        curly_bracket: !c.c4_allow_curly_bracket,
        policy: !c.c4_allow_policy,
    });
    let fineweb = (!c.no_fineweb).then_some(FineWeb {
        min_line_punct_ratio: c.min_line_punct_ratio.0,
        line_punct_exclude_zero: c.line_punct_exclude_zero,
        max_short_line_ratio: c.max_short_line_ratio.0,
        short_line_length: c.short_line_length,
        cjk_short_line_length: c.cjk_short_line_length,
        max_char_dup_ratio: c.max_char_dup_ratio.0,
        max_newline_ratio: c.max_newline_ratio.0,
    });
    let script = match c.script {
        ScriptChoice::Auto => None,
        ScriptChoice::Spaced => Some(Script::Spaced),
        ScriptChoice::Cjk => Some(Script::Cjk),
    };
    FilterConfig {
        clean,
        gopher_repetition,
        gopher_quality,
        c4,
        fineweb,
        script,
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(rejected) = &cli.rejected {
        wick_io::check_distinct_outputs(&[
            (
                "-o",
                std::path::Path::new(cli.output.output.as_deref().unwrap_or("-")),
            ),
            ("--rejected", std::path::Path::new(rejected)),
        ])?;
    }
    let filter = Filter::new(
        config(&cli),
        RunOptions {
            field: cli.field.clone(),
            skip_invalid: cli.skip_invalid.skip_invalid,
            quiet: cli.common.quiet,
        },
    );
    wick_io::set_threads(cli.common.threads)?;
    let mut rejected = cli
        .rejected
        .as_deref()
        .map(AtomicFile::create)
        .transpose()?;
    let mut out = Output::create(cli.output.output.as_deref())?;
    filter.run(&inputs_or_stdin(&cli.files), &mut out, rejected.as_mut())?;
    out.finish()?;
    if let Some(r) = rejected {
        r.commit()?;
    }
    Ok(())
}
