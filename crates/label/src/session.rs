//! The labelling loop: show each undecided pair, read a verdict line, record it at once.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};

use serde_json::Value;
use wick_io::{Error, Result};

use crate::pair::{Key, Pair};
use crate::seen::{sidecar_line, Appender, Seen};
use crate::width::{pad, printable, wrap};

/// The keys, as `?` shows them.
pub const KEYS: &str = "\
keys (then Enter):
  a   the left response (A) is better
  b   the right response (B) is better
  t   tie: neither is better (recorded in the .seen sidecar, not in the preferences)
  s   skip: decide nothing (recorded in the sidecar; --revisit-skipped shows it again)
  q   quit; run the same command again to go on where you stopped (so does end of input)
  ?   this help";

pub struct Options {
    /// `None`: show every pair in input order (`--no-swap`).
    pub swap_seed: Option<u64>,
    /// Terminal columns.
    pub width: usize,
}

/// Where the input stands when the session ends, counting distinct pairs of the input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub labelled: usize,
    pub ties: usize,
    pub skipped: usize,
    pub remaining: usize,
    /// Decisions made in this session.
    pub this_session: usize,
}

enum Verdict {
    Left,
    Right,
    Tie,
    Skip,
    Quit,
    Help,
    Nothing,
    Unknown(String),
}

fn verdict(line: &str) -> Verdict {
    match line.trim().to_ascii_lowercase().as_str() {
        "a" => Verdict::Left,
        "b" => Verdict::Right,
        "t" | "tie" => Verdict::Tie,
        "s" | "skip" => Verdict::Skip,
        "q" | "quit" => Verdict::Quit,
        "?" | "h" | "help" => Verdict::Help,
        "" => Verdict::Nothing,
        _ => Verdict::Unknown(line.trim().to_string()),
    }
}

/// One screen: progress and where the pair is from, the prompt across the full width, then
/// the two responses in columns, each wrapped to half the width.
pub fn render(
    pair: &Pair,
    left: &str,
    right: &str,
    n: usize,
    total: usize,
    width: usize,
) -> String {
    let width = width.max(20);
    let col = (width - 3) / 2;
    let mut s = String::new();
    let mut head = format!("[{n}/{total}] line {}", pair.line);
    if let Some(id) = pair.extra.get("id") {
        match id {
            Value::String(v) => head.push_str(&format!(", id {}", printable(v))),
            v => head.push_str(&format!(", id {v}")),
        }
    }
    s.push('\n');
    s.push_str(&"═".repeat(width));
    s.push('\n');
    s.push_str(&head);
    s.push_str("\n\nPROMPT\n");
    for l in wrap(&printable(&pair.prompt), width) {
        s.push_str(&l);
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&format!("{} │ B\n", pad("A", col)));
    let rule = |mid: &str| format!("{}{mid}{}\n", "─".repeat(col + 1), "─".repeat(col + 1));
    s.push_str(&rule("┼"));
    let l = wrap(&printable(left), col);
    let r = wrap(&printable(right), col);
    for i in 0..l.len().max(r.len()) {
        let a = l.get(i).map_or("", String::as_str);
        let b = r.get(i).map_or("", String::as_str);
        let row = format!("{} │ {b}", pad(a, col));
        s.push_str(row.trim_end_matches(' '));
        s.push('\n');
    }
    s.push_str(&rule("┴"));
    s
}

/// Shows every pair not in `decided`, in input order, and records each verdict as it is
/// given: a preference line in `prefs` for `a`/`b` (chosen and rejected are the actual
/// responses whatever side they were shown on), a sidecar line for ties and skips. Ends at
/// the last pair, at `q`, or at the end of `keys`.
pub fn label(
    pairs: &[Pair],
    decided: &mut HashMap<Key, Seen>,
    prefs: &mut Appender,
    sidecar: &mut Appender,
    keys: &mut dyn BufRead,
    screen: &mut dyn Write,
    opts: &Options,
) -> Result<Summary> {
    let out = |e| Error::io("<stdout>", e);
    let unique: HashSet<Key> = pairs.iter().map(Pair::key).collect();
    let total = unique.len();
    let mut done = unique.iter().filter(|k| decided.contains_key(k)).count();
    let mut this_session = 0;
    let mut line = String::new();
    'pairs: for pair in pairs {
        let k = pair.key();
        if decided.contains_key(&k) {
            continue;
        }
        let swapped = pair.swapped(opts.swap_seed);
        let (left, right) = if swapped {
            (&pair.b, &pair.a)
        } else {
            (&pair.a, &pair.b)
        };
        let screenful = render(pair, left, right, done + 1, total, opts.width);
        screen.write_all(screenful.as_bytes()).map_err(out)?;
        let decision = loop {
            screen
                .write_all(b"a/b/t/s/q/? > ")
                .and_then(|()| screen.flush())
                .map_err(out)?;
            line.clear();
            let n = keys
                .read_line(&mut line)
                .map_err(|e| Error::io("<stdin>", e))?;
            if n == 0 {
                screen.write_all(b"\n").map_err(out)?;
                break 'pairs;
            }
            match verdict(&line) {
                Verdict::Left => break Ok(!swapped),
                Verdict::Right => break Ok(swapped),
                Verdict::Tie => break Err(Seen::Tie),
                Verdict::Skip => break Err(Seen::Skip),
                Verdict::Quit => break 'pairs,
                Verdict::Help => writeln!(screen, "{KEYS}").map_err(out)?,
                Verdict::Nothing => {}
                Verdict::Unknown(s) => writeln!(
                    screen,
                    "unknown key {s:?}: a, b, t (tie), s (skip), q (quit), ? (help)"
                )
                .map_err(out)?,
            }
        };
        // Ok(whether the input's first response is better), or Err(a tie or a skip).
        match decision {
            Ok(first_better) => {
                let rec = pair.preference(first_better);
                prefs.append(&serde_json::to_string(&rec).expect("serialises"))?;
                decided.insert(k, Seen::Labelled);
            }
            Err(seen) => {
                sidecar.append(&sidecar_line(k, seen, pair.line))?;
                decided.insert(k, seen);
            }
        }
        done += 1;
        this_session += 1;
    }
    let mut s = Summary {
        total,
        this_session,
        ..Summary::default()
    };
    for k in &unique {
        match decided.get(k) {
            Some(Seen::Labelled) => s.labelled += 1,
            Some(Seen::Tie) => s.ties += 1,
            Some(Seen::Skip) => s.skipped += 1,
            None => s.remaining += 1,
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seen::{load_decided, sidecar_path};
    use crate::width::str_width;

    fn pair(line: u64, prompt: &str, a: &str, b: &str) -> Pair {
        let rec = serde_json::json!({"prompt": prompt, "a": a, "b": b});
        Pair::from_record(rec.as_object().unwrap().clone(), line).unwrap()
    }

    #[test]
    fn columns_line_up_with_wide_characters() {
        let p = pair(
            3,
            "日本の首都は？",
            "東京です。東京は日本の首都であり、世界最大の都市圏の一つです。",
            "Tokyo, the capital, is one of the largest cities in the world.",
        );
        for width in [20, 41, 60, 100] {
            let screen = render(&p, &p.a, &p.b, 2, 9, width);
            assert!(screen.contains("[2/9] line 3"));
            let col = (width.max(20) - 3) / 2;
            let rows: Vec<&str> = screen.lines().filter(|l| l.contains(" │ ")).collect();
            assert!(rows.len() > 2, "{screen}");
            for row in rows {
                let bar = row.find(" │ ").unwrap();
                assert_eq!(str_width(&row[..bar]), col, "{row:?}");
                assert!(str_width(row) <= width.max(20), "{row:?}");
            }
        }
    }

    #[test]
    fn verdicts_are_recorded_for_the_actual_responses() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p.jsonl");
        let side = sidecar_path(&out);
        let pairs: Vec<Pair> = (0..6)
            .map(|i| {
                pair(
                    i + 1,
                    &format!("p{i}"),
                    &format!("first{i}"),
                    &format!("second{i}"),
                )
            })
            .collect();
        let opts = Options {
            swap_seed: Some(0),
            width: 80,
        };
        let mut decided = HashMap::new();
        let mut screen = Vec::new();
        let s = label(
            &pairs,
            &mut decided,
            &mut Appender::new(&out),
            &mut Appender::new(&side),
            &mut "bogus\na\n\nb\nt\ns\n".as_bytes(),
            &mut screen,
            &opts,
        )
        .unwrap();
        assert_eq!(
            s,
            Summary {
                total: 6,
                labelled: 2,
                ties: 1,
                skipped: 1,
                remaining: 2,
                this_session: 4,
            }
        );
        let screen = String::from_utf8(screen).unwrap();
        assert!(screen.contains("unknown key \"bogus\""));
        let prefs: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // Pair 1 got `a` (the left one is chosen), pair 2 `b` (the right one).
        assert_eq!(prefs.len(), 2);
        for (i, left_chosen) in [(0, true), (1, false)] {
            let p = &pairs[i];
            let left = if p.swapped(Some(0)) { &p.b } else { &p.a };
            assert_eq!(prefs[i]["prompt"], p.prompt.as_str());
            assert_eq!(prefs[i]["chosen"] == left.as_str(), left_chosen, "pair {i}");
        }
        assert_eq!(decided, load_decided(&out, &side, false).unwrap());
    }
}
