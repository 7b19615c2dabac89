//! Every rule on a document that fails it and one that passes it. Passing documents are real
//! text from testdata/ (a sonnet, a Song ci) where that is enough, failing ones are made to
//! fail exactly one rule; each case runs with only the rule's family on.

use std::path::Path;

use filter::{FilterConfig, FineWeb, GopherQuality, GopherRepetition, C4};
use serde_json::Value;

fn corpus_text(file: &str, id: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(file);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["id"] == id)
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sonnet() -> String {
    corpus_text("english.jsonl", "sonnets/II")
}

fn songci() -> String {
    corpus_text("chinese.jsonl", "songci300/0")
}

fn only() -> FilterConfig {
    FilterConfig {
        clean: None,
        gopher_repetition: None,
        gopher_quality: None,
        c4: None,
        fineweb: None,
        script: None,
    }
}

fn verdict(c: &FilterConfig, text: &str) -> String {
    match c.judge(text).verdict {
        Ok(()) => "pass".into(),
        Err(r) => r.to_string(),
    }
}

/// `fail` fails with `reason`, `pass` passes (and the real texts pass too).
fn case(c: &FilterConfig, reason: &str, fail: &str, pass: &str) {
    assert_eq!(
        verdict(c, fail),
        reason,
        "failing case of {reason}: {fail:?}"
    );
    assert_eq!(
        verdict(c, pass),
        "pass",
        "passing case of {reason}: {pass:?}"
    );
    assert_eq!(verdict(c, &sonnet()), "pass", "sonnet under {reason}");
    assert_eq!(verdict(c, &songci()), "pass", "song ci under {reason}");
}

const FRODO: &str = "I wish it need not have happened in my time,' said Frodo. 'So do I,' said Gandalf, 'and so do all who live to see such times. But that is not for them to decide. All we have to decide is what to do with the time that is given us.'";

#[test]
fn real_texts_pass_everything() {
    let c = FilterConfig::default();
    assert_eq!(verdict(&c, &sonnet()), "pass");
    assert_eq!(verdict(&c, &songci()), "pass");
}

#[test]
fn gopher_repetition_rules() {
    let c = FilterConfig {
        gopher_repetition: Some(GopherRepetition::default()),
        ..only()
    };
    let s = sonnet();
    case(&c, "gopher_repetition:empty", "", "x");
    case(
        &c,
        "gopher_repetition:dup_para_frac",
        &"I am your father.\n\n".repeat(4),
        &FRODO.replace(". ", ".\n\n"),
    );
    let x30 = format!("{}.\n\n", "x".repeat(30));
    case(
        &c,
        "gopher_repetition:dup_para_char_frac",
        &format!("I am groot.\n\nYou are a wizard.\n\nI am your father.\n\n{x30}{x30}"),
        &format!("I am groot.\n\nYou are a wizard.\n\nI am your father.\n\n{x30}"),
    );
    case(
        &c,
        "gopher_repetition:dup_line_frac",
        &"I am your father.\n".repeat(4),
        &FRODO.replace(". ", ".\n"),
    );
    let x40 = format!("{}.\n", "x".repeat(40));
    case(
        &c,
        "gopher_repetition:dup_line_char_frac",
        &format!("I am groot.\nYou are a wizard.\nI am your father.\n{x40}{x40}"),
        &format!("I am groot.\nYou are a wizard.\nI am your father.\n{x40}"),
    );
    case(
        &c,
        "gopher_repetition:top_2_gram",
        "I am Frank, I am Frank, I am Frank",
        FRODO,
    );
    case(
        &c,
        "gopher_repetition:top_3_gram",
        "I am Frank, you are Jhon. I am Frank. I am Frank you are Jhon",
        FRODO,
    );
    // One n-gram rule at a time for the rest.
    let phrase = "ten little words make a phrase that is said again";
    let c4gram = FilterConfig {
        gopher_repetition: Some(GopherRepetition {
            top_n_grams: vec![(4, 0.16)],
            dup_n_grams: vec![],
            ..GopherRepetition::default()
        }),
        ..only()
    };
    case(
        &c4gram,
        "gopher_repetition:top_4_gram",
        &format!("one two three four, one two three four and then {phrase}, one two three four."),
        &s,
    );
    for n in 5..=10 {
        let frac = GopherRepetition::default()
            .dup_n_grams
            .iter()
            .find(|g| g.0 == n)
            .unwrap()
            .1;
        let c = FilterConfig {
            gopher_repetition: Some(GopherRepetition {
                top_n_grams: vec![],
                dup_n_grams: vec![(n, frac)],
                ..GopherRepetition::default()
            }),
            ..only()
        };
        case(
            &c,
            &format!("gopher_repetition:dup_{n}_gram"),
            &format!("{phrase}. {phrase}. {phrase}. {FRODO} {phrase}."),
            FRODO,
        );
    }
}

#[test]
fn gopher_quality_rules() {
    let base = GopherQuality {
        min_words: Some(10),
        max_words: Some(1000),
        ..GopherQuality::default()
    };
    let c = FilterConfig {
        gopher_quality: Some(base.clone()),
        ..only()
    };
    // datatrove's own test texts (tests/pipeline/test_filters.py), with its limits 10–1000.
    case(&c, "gopher_quality:min_words", "I am too small...", FRODO);
    case(
        &c,
        "gopher_quality:min_mean_word_length",
        &"I am ".repeat(20),
        FRODO,
    );
    case(
        &c,
        "gopher_quality:max_mean_word_length",
        &"interconnection ".repeat(20),
        FRODO,
    );
    case(
        &c,
        "gopher_quality:hash_ratio",
        &"# comment ".repeat(20),
        FRODO,
    );
    case(
        &c,
        "gopher_quality:ellipsis_ratio",
        &"... comment ".repeat(20),
        FRODO,
    );
    case(
        &c,
        "gopher_quality:bullet_lines",
        &"• comment\n".repeat(20),
        &format!("• {FRODO}\n{FRODO}"),
    );
    case(
        &c,
        "gopher_quality:ellipsis_lines",
        &"text text text text text text text text text text text text…\n".repeat(20),
        &format!("{FRODO}…\n{FRODO}\n{FRODO}\n{FRODO}"),
    );
    case(
        &c,
        "gopher_quality:alpha_words",
        &"the ./!*?<><> apple <?////> orange  ++ interconnection !<>??? have".repeat(20),
        FRODO,
    );
    case(
        &c,
        "gopher_quality:stop_words",
        &"Have Have".repeat(20),
        FRODO,
    );
    let small = FilterConfig {
        gopher_quality: Some(GopherQuality {
            max_words: Some(60),
            ..base
        }),
        ..only()
    };
    assert_eq!(
        verdict(&small, &format!("{FRODO} {FRODO}")),
        "gopher_quality:max_words"
    );
    assert_eq!(verdict(&small, FRODO), "pass");
    // Defaults, Chinese: characters are words, Chinese stop words.
    let c = FilterConfig {
        gopher_quality: Some(GopherQuality::default()),
        ..only()
    };
    case(
        &c,
        "gopher_quality:min_words",
        "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
        &songci(),
    );
    case(
        &c,
        "gopher_quality:stop_words",
        &"手机 电脑 平板 耳机 键盘 鼠标 显示器 路由器 充电器 数据线\n".repeat(3),
        &songci(),
    );
}

#[test]
fn c4_rules() {
    let c = FilterConfig {
        c4: Some(C4::default()),
        ..only()
    };
    let para = "The committee met on Tuesday to discuss the budget. Several members raised concerns about the cost. The chair promised a full report by the end of the month. Residents will be able to comment at the next meeting. A final vote is expected in the spring.";
    // Document rules.
    case(
        &c,
        "c4:lorem_ipsum",
        &format!("{para}\nLorem ipsum dolor sit amet."),
        para,
    );
    case(
        &c,
        "c4:curly_bracket",
        &format!("{para}\nint main() {{ return 0; }}"),
        &format!("{para}\nint main() returns zero."),
    );
    case(
        &c,
        "c4:too_few_sentences",
        "Only two sentences here. That is not enough.",
        para,
    );
    // Line rules: a failing line is removed, a passing one stays.
    let removed = |c: &FilterConfig, line: &str| {
        let text = format!("{para}\n{line}");
        let j = c.judge(&text);
        assert!(j.verdict.is_ok());
        j.kept_text() == para
    };
    let long_word = format!("A {} word.", "x".repeat(1001));
    for line in [
        "Please enable JavaScript to see the comments.",
        "This website uses cookies to improve your experience.",
        "Read our privacy policy before you go.",
        "Two words.",
        &long_word,
    ] {
        assert!(removed(&c, line), "{line}");
    }
    for line in ["Three whole words.", "A line without an ending"] {
        assert!(!removed(&c, line), "{line}");
    }
    let text = format!("{para}\nThe bill passed.[3] It was signed.[citation needed]");
    let cited = c.judge(&text);
    assert!(cited
        .kept_text()
        .ends_with("The bill passed. It was signed."));
    // Terminal punctuation, when turned on.
    let t = FilterConfig {
        c4: Some(C4 {
            terminal_punct: true,
            ..C4::default()
        }),
        ..only()
    };
    assert!(removed(&t, "A line without an ending"));
    assert!(removed(&t, "A line that trails off..."));
    assert!(!removed(&t, "A line that ends well."));
    // Judge-only mode keeps the text.
    let keep = FilterConfig {
        c4: Some(C4 {
            keep_text: true,
            ..C4::default()
        }),
        ..only()
    };
    assert!(!removed(&keep, "Two words."));
}

#[test]
fn fineweb_rules() {
    let c = FilterConfig {
        fineweb: Some(FineWeb::default()),
        ..only()
    };
    let prose = "The river rises in the hills above the town and runs south to the sea.\nIn spring the water is high and fast, and the old mill wheel turns again.\nBy late summer it is a quiet stream that children wade across on their way home.";
    case(&c, "fineweb:empty", " \n\n", prose);
    case(
        &c,
        "fineweb:line_punct_ratio",
        "Products and services for the whole family at low prices\nFree shipping on orders over fifty dollars every day of the week\nContact our friendly customer service team for more information",
        prose,
    );
    case(
        &c,
        "fineweb:short_line_ratio",
        "Home.\nAbout us.\nProducts.\nThe river rises in the hills above the town and runs south.",
        prose,
    );
    case(
        &c,
        "fineweb:char_dup_ratio",
        &format!("{prose}\n{}", prose.lines().next().unwrap()),
        prose,
    );
    let lists = FilterConfig {
        fineweb: Some(FineWeb {
            max_short_line_ratio: None,
            ..FineWeb::default()
        }),
        ..only()
    };
    case(
        &lists,
        "fineweb:list_ratio",
        "Apples.\nPears.\nPlums.\nFigs.\nBread.",
        prose,
    );
    // Chinese: short lines are counted in characters (at most 7).
    case(
        &c,
        "fineweb:short_line_ratio",
        "首页。\n新闻。\n体育。\n财经。\n娱乐。\n关于我们的网站和服务。",
        &songci(),
    );
}
