//! The three tasks that compare text with text: generation (BLEU, chrF, ROUGE), extractive QA
//! (exact match, F1) and classification. Each returns the report and, per record, the scores to
//! add to it for `--per-record`.

use rayon::prelude::*;
use serde_json::{json, Map, Value};
use wick_io::{Error, Result};
use wick_metrics::bleu::{self, BleuStats};
use wick_metrics::chrf::{self, ChrfParams, ChrfStats};
use wick_metrics::rouge::{self, Rouge, RougeTokenizer};
use wick_metrics::sacre_tok::Tokenize;
use wick_metrics::{classify, cmrc, squad};

use crate::records::Record;

/// What a task produced: the report, and one map of scores per record.
pub struct Scored {
    pub report: Value,
    pub per_record: Vec<Map<String, Value>>,
}

#[derive(Clone, Debug)]
pub struct Fields {
    pub pred: String,
    pub reference: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenMetrics {
    pub bleu: bool,
    pub chrf: bool,
    pub chrf_plus_plus: bool,
    pub rouge: bool,
}

impl GenMetrics {
    pub const ALL: GenMetrics = GenMetrics {
        bleu: true,
        chrf: true,
        chrf_plus_plus: true,
        rouge: true,
    };

    /// A comma-separated list: bleu, chrf, chrf++, rouge.
    pub fn parse(list: &str) -> Result<GenMetrics, String> {
        let mut m = GenMetrics {
            bleu: false,
            chrf: false,
            chrf_plus_plus: false,
            rouge: false,
        };
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "bleu" => m.bleu = true,
                "chrf" => m.chrf = true,
                "chrf++" => m.chrf_plus_plus = true,
                "rouge" => m.rouge = true,
                _ => {
                    return Err(format!(
                        "unknown metric {name:?} (choose from bleu, chrf, chrf++, rouge)"
                    ))
                }
            }
        }
        if m == (GenMetrics {
            bleu: false,
            chrf: false,
            chrf_plus_plus: false,
            rouge: false,
        }) {
            return Err("no metric named".into());
        }
        Ok(m)
    }
}

pub struct GenOptions {
    pub fields: Fields,
    pub tokenize: Tokenize,
    pub rouge: RougeTokenizer,
    pub metrics: GenMetrics,
}

/// One record's share of the corpus statistics plus its own scores.
struct GenRecord {
    bleu: BleuStats,
    chrf: Option<ChrfStats>,
    chrf_pp: Option<ChrfStats>,
    rouge: Rouge,
}

pub fn generation(records: &[Record], o: &GenOptions) -> Result<Scored> {
    let pairs = records
        .iter()
        .map(|r| {
            Ok((
                r.text(&o.fields.pred, "--pred")?,
                r.texts(&o.fields.reference, "--ref")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let m = o.metrics;
    let scored: Vec<GenRecord> = pairs
        .par_iter()
        .map(|(hyp, refs)| GenRecord {
            bleu: if m.bleu {
                bleu::segment_stats(
                    &o.tokenize.apply(hyp),
                    &bleu::tokenize_all(refs, o.tokenize),
                )
            } else {
                BleuStats::default()
            },
            chrf: m
                .chrf
                .then(|| chrf::segment_stats(hyp, refs, &ChrfParams::CHRF)),
            chrf_pp: m
                .chrf_plus_plus
                .then(|| chrf::segment_stats(hyp, refs, &ChrfParams::CHRF_PLUS_PLUS)),
            rouge: if !m.rouge {
                Rouge::default()
            } else if refs.len() == 1 {
                rouge::score(&refs[0], hyp, o.rouge)
            } else {
                rouge::score_multi(refs, hyp, o.rouge)
            },
        })
        .collect();

    let mut report = Map::new();
    report.insert("task".into(), "generation".into());
    report.insert("records".into(), records.len().into());
    let mut per_record: Vec<Map<String, Value>> = vec![Map::new(); records.len()];
    if m.bleu {
        let mut total = BleuStats::default();
        for (s, pr) in scored.iter().zip(&mut per_record) {
            total += s.bleu;
            pr.insert(
                "bleu".into(),
                bleu::score(&s.bleu, bleu::Smooth::Exp, true).score.into(),
            );
        }
        let b = bleu::score(&total, bleu::Smooth::Exp, false);
        report.insert(
            "bleu".into(),
            json!({
                "score": b.score,
                "precisions": b.precisions,
                "bp": b.bp,
                "ratio": b.ratio(),
                "hyp_len": total.sys_len,
                "ref_len": total.ref_len,
                "counts": total.correct,
                "totals": total.total,
                "tokenize": o.tokenize.name(),
            }),
        );
    }
    for (on, key, params, pick) in [
        (m.chrf, "chrf", ChrfParams::CHRF, 0),
        (m.chrf_plus_plus, "chrf++", ChrfParams::CHRF_PLUS_PLUS, 1),
    ] {
        if !on {
            continue;
        }
        let mut total = ChrfStats::zeros(&params);
        for (s, pr) in scored.iter().zip(&mut per_record) {
            let st = if pick == 0 { &s.chrf } else { &s.chrf_pp };
            let st = st.as_ref().expect("computed when on");
            total.add(st);
            pr.insert(key.into(), chrf::f_score(st, params.beta).into());
        }
        report.insert(
            key.into(),
            json!({
                "score": chrf::f_score(&total, params.beta),
                "char_order": params.char_order,
                "word_order": params.word_order,
                "beta": params.beta,
            }),
        );
    }
    if m.rouge {
        let n = records.len().max(1) as f64;
        let mut sums = [[0.0f64; 3]; 3];
        for (s, pr) in scored.iter().zip(&mut per_record) {
            for (k, (name, sc)) in [
                ("rouge1", s.rouge.rouge1),
                ("rouge2", s.rouge.rouge2),
                ("rougeL", s.rouge.rouge_l),
            ]
            .into_iter()
            .enumerate()
            {
                sums[k][0] += sc.precision;
                sums[k][1] += sc.recall;
                sums[k][2] += sc.fmeasure;
                pr.insert(name.into(), sc.fmeasure.into());
            }
        }
        let mean = |k: usize| json!({"precision": sums[k][0] / n, "recall": sums[k][1] / n, "fmeasure": sums[k][2] / n});
        report.insert(
            "rouge".into(),
            json!({
                "tokenizer": match o.rouge {
                    RougeTokenizer::Default { .. } => "default",
                    RougeTokenizer::Chars => "char",
                },
                "stemmed": matches!(o.rouge, RougeTokenizer::Default { stem: true }),
                "rouge1": mean(0),
                "rouge2": mean(1),
                "rougeL": mean(2),
            }),
        );
    }
    Ok(Scored {
        report: Value::Object(report),
        per_record,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

pub fn qa(records: &[Record], fields: &Fields, lang: Lang) -> Result<Scored> {
    let pairs = records
        .iter()
        .map(|r| {
            Ok((
                r.text(&fields.pred, "--pred")?,
                r.texts(&fields.reference, "--ref")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let scores: Vec<(f64, f64)> = pairs
        .par_iter()
        .map(|(p, answers)| match lang {
            Lang::En => squad::score(p, answers),
            Lang::Zh => cmrc::score(p, answers),
        })
        .collect();
    let n = records.len().max(1) as f64;
    let (em, f1) = scores
        .iter()
        .fold((0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1));
    let per_record = scores
        .iter()
        .map(|&(em, f1)| {
            let mut m = Map::new();
            m.insert("exact_match".into(), em.into());
            m.insert("f1".into(), f1.into());
            m
        })
        .collect();
    Ok(Scored {
        report: json!({
            "task": "qa",
            "lang": lang.name(),
            "records": records.len(),
            "exact_match": 100.0 * em / n,
            "f1": 100.0 * f1 / n,
        }),
        per_record,
    })
}

pub fn classification(records: &[Record], fields: &Fields) -> Result<Scored> {
    let pairs = records
        .iter()
        .map(|r| {
            Ok((
                r.label(&fields.pred, "--pred")?,
                r.label(&fields.reference, "--ref")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    if pairs.is_empty() {
        return Err(Error::msg("no records to score"));
    }
    let r = classify::report(pairs.iter().map(|(p, r)| (p.as_str(), r.as_str())));
    let per_class: Map<String, Value> = r
        .labels
        .iter()
        .zip(&r.per_class)
        .map(|(l, c)| {
            (
                l.clone(),
                json!({"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}),
            )
        })
        .collect();
    let avg =
        |a: classify::Averages| json!({"precision": a.precision, "recall": a.recall, "f1": a.f1});
    let only_predicted: Vec<&String> = r
        .labels
        .iter()
        .zip(&r.per_class)
        .filter(|(_, c)| c.support == 0)
        .map(|(l, _)| l)
        .collect();
    let never_predicted: Vec<&String> = r
        .labels
        .iter()
        .enumerate()
        .filter(|&(j, _)| r.confusion.iter().all(|row| row[j] == 0))
        .map(|(_, l)| l)
        .collect();
    let per_record = pairs
        .iter()
        .map(|(p, r)| {
            let mut m = Map::new();
            m.insert("correct".into(), (p == r).into());
            m
        })
        .collect();
    Ok(Scored {
        report: json!({
            "task": "classification",
            "records": r.n,
            "accuracy": r.accuracy,
            "labels": r.labels,
            "per_class": per_class,
            "macro": avg(r.macro_avg),
            "micro": avg(r.micro_avg),
            "weighted": avg(r.weighted_avg),
            "confusion_matrix": {"rows": "reference", "columns": "prediction", "matrix": r.confusion},
            "labels_only_predicted": only_predicted,
            "labels_never_predicted": never_predicted,
        }),
        per_record,
    })
}
