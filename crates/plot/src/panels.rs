//! Which panels a figure has, in which order, and which series each one draws.
//!
//! Every numeric field gets a panel, except the bookkeeping counters that only restate the x
//! axis (`tokens`, `elapsed_s`, `step_ms`; `--all` draws them). A field `val_X` or `eval_X`
//! shares the panel of `X` (loss and val loss together). Known panels come first in a fixed
//! order — loss, the RLHF ones (reward, KL), learning rate, gradient norm, throughput — and
//! the other fields follow in the order they first appear in the logs.

use crate::log::Log;

/// How a panel's y axis may be scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log,
}

/// What `--scale` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleChoice {
    /// Log for loss-like fields, lr and grad norm when all values are positive and span more
    /// than 10x; linear otherwise.
    Auto,
    Linear,
    /// Log wherever all values are positive.
    Log,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The field the panel is named after (`loss` for loss and val_loss).
    pub key: String,
    pub title: String,
    /// The fields drawn: the key's own field first, then its val/eval versions.
    pub fields: Vec<String>,
    /// Whether auto scaling may choose a log axis for it.
    pub log_friendly: bool,
}

/// Panels in their display order and the title of each, for fields with a known meaning.
const KNOWN: &[(&str, &str)] = &[
    ("loss", "loss"),
    ("reward", "reward"),
    ("kl", "KL divergence"),
    ("lr", "learning rate"),
    ("grad_norm", "gradient norm"),
    ("tokens_per_s", "throughput (tokens/s)"),
];

/// Counters that grow with the step: hidden unless `--all` or named in `--only`.
pub const COUNTERS: &[&str] = &["tokens", "elapsed_s", "step_ms"];

const VAL_PREFIXES: &[&str] = &["val_", "eval_"];

/// The panel a field belongs to: `val_loss` → `loss`.
pub fn panel_key(field: &str) -> &str {
    for p in VAL_PREFIXES {
        if let Some(base) = field.strip_prefix(p) {
            if !base.is_empty() {
                return base;
            }
        }
    }
    field
}

/// Whether a field is an evaluation series (drawn with markers).
pub fn is_val(field: &str) -> bool {
    panel_key(field) != field
}

fn log_friendly(key: &str) -> bool {
    matches!(key, "lr" | "grad_norm")
        || key.ends_with("loss")
        || key.ends_with("ppl")
        || key.ends_with("perplexity")
}

/// The panels for these logs. `only` (field or panel names) picks and orders them instead of
/// the default choice; `all` keeps the counters; `x_field` is never a panel.
pub fn panels(logs: &[&Log], only: &[String], all: bool, x_field: &str) -> Vec<Panel> {
    // Every plottable field, in order of first appearance over the logs.
    let mut fields: Vec<&str> = Vec::new();
    for log in logs {
        for s in &log.series {
            if s.field != x_field && !fields.contains(&s.field.as_str()) {
                fields.push(&s.field);
            }
        }
    }
    let mut keys: Vec<&str> = Vec::new();
    if only.is_empty() {
        for f in &fields {
            let k = panel_key(f);
            if !keys.contains(&k) && (all || !COUNTERS.contains(&k)) {
                keys.push(k);
            }
        }
        let rank = |k: &str| {
            KNOWN
                .iter()
                .position(|(n, _)| *n == k)
                .unwrap_or(KNOWN.len())
        };
        keys.sort_by_key(|k| rank(k)); // stable: unknown fields keep their order
    } else {
        for name in only {
            let k = panel_key(name);
            if !keys.contains(&k) && fields.iter().any(|f| panel_key(f) == k) {
                keys.push(k);
            }
        }
    }
    keys.into_iter()
        .map(|k| {
            let mut members: Vec<String> = fields
                .iter()
                .filter(|f| panel_key(f) == k)
                .map(|f| f.to_string())
                .collect();
            // The training series first, then the evaluation ones.
            members.sort_by_key(|f| is_val(f));
            let title = KNOWN
                .iter()
                .find(|(n, _)| *n == k)
                .map_or_else(|| k.to_string(), |(_, t)| t.to_string());
            Panel {
                key: k.to_string(),
                title,
                fields: members,
                log_friendly: log_friendly(k),
            }
        })
        .collect()
}

/// The y scale of a panel whose values (over every run) range over `lo..=hi`.
pub fn choose_scale(choice: ScaleChoice, panel: &Panel, lo: f64, hi: f64) -> Scale {
    let positive = lo > 0.0;
    match choice {
        ScaleChoice::Linear => Scale::Linear,
        ScaleChoice::Log if positive => Scale::Log,
        ScaleChoice::Auto if positive && panel.log_friendly && hi / lo > 10.0 => Scale::Log,
        _ => Scale::Linear,
    }
}

/// A legend label per log: the name of the directory holding it (`runs/base/metrics.jsonl`
/// → `base`) when the file is a `metrics*.jsonl`, else the file's stem (`lr3e-4.jsonl` →
/// `lr3e-4`); where that is ambiguous, the other of the two; where both are, the path as given.
pub fn run_labels(paths: &[String]) -> Vec<String> {
    use std::path::Path;
    let dir_name = |p: &str| -> String {
        if p == "-" {
            return "stdin".into();
        }
        let parent = Path::new(p).parent().filter(|d| !d.as_os_str().is_empty());
        let parent = match parent {
            Some(d) => d.canonicalize().unwrap_or_else(|_| d.to_path_buf()),
            None => std::env::current_dir().unwrap_or_default(),
        };
        parent
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string())
    };
    let stem = |p: &str| -> String {
        if p == "-" {
            return "stdin".into();
        }
        Path::new(p)
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string())
    };
    let prefers_dir = |p: &str| stem(p).starts_with("metrics") || p == "-";
    let first: Vec<String> = paths
        .iter()
        .map(|p| if prefers_dir(p) { dir_name(p) } else { stem(p) })
        .collect();
    let unique =
        |labels: &[String], i: usize| labels.iter().filter(|l| **l == labels[i]).count() == 1;
    let second: Vec<String> = (0..paths.len())
        .map(|i| {
            if unique(&first, i) {
                first[i].clone()
            } else if prefers_dir(&paths[i]) {
                stem(&paths[i])
            } else {
                dir_name(&paths[i])
            }
        })
        .collect();
    (0..paths.len())
        .map(|i| {
            if unique(&first, i) {
                first[i].clone()
            } else if unique(&second, i) {
                second[i].clone()
            } else {
                let p = &paths[i];
                p.strip_suffix("/metrics.jsonl")
                    .or_else(|| p.strip_suffix(".jsonl"))
                    .unwrap_or(p)
                    .to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::parse_log;

    fn log(text: &str) -> Log {
        parse_log("m", text.as_bytes(), "step").unwrap()
    }

    fn keys(p: &[Panel]) -> Vec<&str> {
        p.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn train_log_panels() {
        let l = log(concat!(
            "{\"step\":0,\"val_loss\":6.2,\"elapsed_s\":0.0}\n",
            "{\"step\":1,\"loss\":6.1,\"lr\":1e-4,\"grad_norm\":0.4,\"tokens\":384,",
            "\"tokens_per_s\":1e5,\"step_ms\":2.7,\"elapsed_s\":0.003,\"val_loss\":6.0}\n",
        ));
        let p = panels(&[&l], &[], false, "step");
        assert_eq!(keys(&p), ["loss", "lr", "grad_norm", "tokens_per_s"]);
        assert_eq!(p[0].fields, ["loss", "val_loss"]);
        assert_eq!(p[0].title, "loss");
        let all = panels(&[&l], &[], true, "step");
        assert_eq!(
            keys(&all),
            [
                "loss",
                "lr",
                "grad_norm",
                "tokens_per_s",
                "elapsed_s",
                "tokens",
                "step_ms"
            ]
        );
        let only = panels(
            &[&l],
            &["lr".into(), "val_loss".into(), "nope".into()],
            false,
            "step",
        );
        assert_eq!(keys(&only), ["lr", "loss"]);
    }

    #[test]
    fn rlhf_fields_known_then_unknown_in_order() {
        let a = log("{\"step\":1,\"policy_loss\":0.1,\"lr\":1e-5,\"kl\":0.01,\"reward\":0.5,\"entropy\":2}\n");
        let b = log("{\"step\":1,\"clip_frac\":0.2,\"eval_reward\":0.4}\n");
        let p = panels(&[&a, &b], &[], false, "step");
        assert_eq!(
            keys(&p),
            ["reward", "kl", "lr", "policy_loss", "entropy", "clip_frac"]
        );
        assert_eq!(p[0].fields, ["reward", "eval_reward"]);
        assert!(p[2].log_friendly && !p[0].log_friendly);
    }

    #[test]
    fn val_fields_join_their_panel() {
        assert_eq!(panel_key("val_loss"), "loss");
        assert_eq!(panel_key("eval_reward"), "reward");
        assert_eq!(panel_key("val_"), "val_");
        assert!(is_val("val_loss") && !is_val("loss"));
    }

    #[test]
    fn scales() {
        let p = |key: &str| Panel {
            key: key.into(),
            title: key.into(),
            fields: vec![key.into()],
            log_friendly: log_friendly(key),
        };
        assert_eq!(
            choose_scale(ScaleChoice::Auto, &p("loss"), 0.5, 6.0),
            Scale::Log
        );
        assert_eq!(
            choose_scale(ScaleChoice::Auto, &p("loss"), 4.0, 6.0),
            Scale::Linear
        );
        assert_eq!(
            choose_scale(ScaleChoice::Auto, &p("lr"), 1e-5, 1e-3),
            Scale::Log
        );
        assert_eq!(
            choose_scale(ScaleChoice::Auto, &p("lr"), 0.0, 1e-3),
            Scale::Linear
        );
        assert_eq!(
            choose_scale(ScaleChoice::Auto, &p("reward"), 0.01, 5.0),
            Scale::Linear
        );
        assert_eq!(
            choose_scale(ScaleChoice::Log, &p("reward"), 0.01, 5.0),
            Scale::Log
        );
        assert_eq!(
            choose_scale(ScaleChoice::Log, &p("reward"), -1.0, 5.0),
            Scale::Linear
        );
        assert_eq!(
            choose_scale(ScaleChoice::Linear, &p("lr"), 1e-5, 1e-3),
            Scale::Linear
        );
    }

    #[test]
    fn labels() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            run_labels(&s(&[
                "runs/base/metrics.jsonl",
                "runs/lr3e-4/metrics.jsonl"
            ])),
            ["base", "lr3e-4"]
        );
        assert_eq!(
            run_labels(&s(&["logs/a.jsonl", "logs/b.jsonl"])),
            ["a", "b"]
        );
        // Same directory name: the file stems tell them apart.
        assert_eq!(
            run_labels(&s(&["x/run/metrics-a.jsonl", "y/run/metrics-b.jsonl"])),
            ["metrics-a", "metrics-b"]
        );
        // Neither tells them apart: the paths.
        assert_eq!(
            run_labels(&s(&["x/run/metrics.jsonl", "y/run/metrics.jsonl"])),
            ["x/run", "y/run"]
        );
        assert_eq!(run_labels(&s(&["-"])), ["stdin"]);
    }
}
