//! The three tasks that compare text with text: generation (BLEU, chrF, ROUGE), extractive QA
//! (exact match, F1) and classification. Each is a [`Scorer`]: records stream through in
//! batches (scored in parallel, summed in input order), so memory stays flat however long the
//! input, and `--per-record` output is written as it goes.

use rayon::prelude::*;
use serde_json::{json, Map, Value};
use wick_io::{for_each_batch, Error, LineReader, Output, Result, Skipped};
use wick_metrics::bleu::{self, BleuStats};
use wick_metrics::chrf::{self, ChrfParams, ChrfStats};
use wick_metrics::rouge::{self, Rouge, RougeTokenizer};
use wick_metrics::sacre_tok::Tokenize;
use wick_metrics::{classify, cmrc, squad};

use crate::records::{parse_record, Record};

/// One task's metrics: what a record contributes, and the report from all contributions.
pub trait Scorer: Sync {
    type Stat: Send;
    /// A record's contribution (in any order, on any thread).
    fn score(&self, rec: &Record) -> Result<Self::Stat>;
    /// The record's own scores, added to it by `--per-record`.
    fn record_scores(&self, stat: &Self::Stat) -> Map<String, Value>;
    /// Takes contributions in input order.
    fn add(&mut self, stat: Self::Stat);
    fn report(self, records: u64) -> Result<Value>;
}

/// Runs every record of `paths` through `scorer`; with `per_record`, writes each record back
/// with its scores. With `skips`, a bad record (not a JSON object, or one the scorer cannot
/// read) is noted there and left out; without, the first stops the run. Returns the report.
pub fn stream<S: Scorer>(
    paths: &[String],
    mut scorer: S,
    mut per_record: Option<&mut Output>,
    mut skips: Option<&mut Skipped>,
) -> Result<Value> {
    let mut records = 0u64;
    for path in paths {
        let reader = LineReader::open(path)?;
        let name = reader.name().to_string();
        for_each_batch(reader, 2048, 8 << 20, |lines| {
            let scored = lines
                .par_iter()
                .map(|l| {
                    let rec = parse_record(&name, l)?;
                    let stat = scorer.score(&rec)?;
                    Ok((rec, stat))
                })
                .collect::<Vec<Result<(Record, S::Stat)>>>();
            let mut out = Vec::new();
            for r in scored {
                let (rec, stat) = match (r, skips.as_deref_mut()) {
                    (Ok(r), _) => r,
                    (Err(e), Some(skips)) => {
                        skips.note(&e);
                        continue;
                    }
                    (Err(e), None) => return Err(e),
                };
                if per_record.is_some() {
                    let mut fields = rec.fields;
                    fields.extend(scorer.record_scores(&stat));
                    serde_json::to_writer(&mut out, &Value::Object(fields)).expect("serialises");
                    out.push(b'\n');
                }
                scorer.add(stat);
                records += 1;
            }
            if let Some(o) = per_record.as_deref_mut() {
                o.put(&out)?;
            }
            Ok(())
        })?;
    }
    if records == 0 {
        return Err(Error::msg(format!("no records in {}", paths.join(", "))));
    }
    scorer.report(records)
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
        if !(m.bleu || m.chrf || m.chrf_plus_plus || m.rouge) {
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
pub struct GenRecord {
    bleu: Option<BleuStats>,
    chrf: Option<ChrfStats>,
    chrf_pp: Option<ChrfStats>,
    rouge: Option<Rouge>,
}

pub struct Generation {
    o: GenOptions,
    bleu: BleuStats,
    chrf: ChrfStats,
    chrf_pp: ChrfStats,
    /// Σ precision, recall, F of ROUGE-1, -2, -L.
    rouge: [[f64; 3]; 3],
}

impl Generation {
    pub fn new(o: GenOptions) -> Generation {
        Generation {
            o,
            bleu: BleuStats::default(),
            chrf: ChrfStats::zeros(&ChrfParams::CHRF),
            chrf_pp: ChrfStats::zeros(&ChrfParams::CHRF_PLUS_PLUS),
            rouge: [[0.0; 3]; 3],
        }
    }
}

impl Scorer for Generation {
    type Stat = GenRecord;

    fn score(&self, r: &Record) -> Result<GenRecord> {
        let (o, m) = (&self.o, self.o.metrics);
        let hyp = r.text(&o.fields.pred, "--pred-field")?;
        let refs = r.texts(&o.fields.reference, "--ref-field")?;
        Ok(GenRecord {
            bleu: m.bleu.then(|| {
                bleu::segment_stats(
                    &o.tokenize.apply(hyp),
                    &bleu::tokenize_all(&refs, o.tokenize),
                )
            }),
            chrf: m
                .chrf
                .then(|| chrf::segment_stats(hyp, &refs, &ChrfParams::CHRF)),
            chrf_pp: m
                .chrf_plus_plus
                .then(|| chrf::segment_stats(hyp, &refs, &ChrfParams::CHRF_PLUS_PLUS)),
            rouge: m.rouge.then(|| {
                if refs.len() == 1 {
                    rouge::score(&refs[0], hyp, o.rouge)
                } else {
                    rouge::score_multi(&refs, hyp, o.rouge)
                }
            }),
        })
    }

    fn record_scores(&self, s: &GenRecord) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(b) = &s.bleu {
            m.insert(
                "bleu".into(),
                bleu::score(b, bleu::Smooth::Exp, true).score.into(),
            );
        }
        if let Some(c) = &s.chrf {
            m.insert(
                "chrf".into(),
                chrf::f_score(c, ChrfParams::CHRF.beta).into(),
            );
        }
        if let Some(c) = &s.chrf_pp {
            let beta = ChrfParams::CHRF_PLUS_PLUS.beta;
            m.insert("chrf++".into(), chrf::f_score(c, beta).into());
        }
        if let Some(r) = &s.rouge {
            m.insert("rouge1".into(), r.rouge1.fmeasure.into());
            m.insert("rouge2".into(), r.rouge2.fmeasure.into());
            m.insert("rougeL".into(), r.rouge_l.fmeasure.into());
        }
        m
    }

    fn add(&mut self, s: GenRecord) {
        if let Some(b) = s.bleu {
            self.bleu += b;
        }
        if let Some(c) = &s.chrf {
            self.chrf.add(c);
        }
        if let Some(c) = &s.chrf_pp {
            self.chrf_pp.add(c);
        }
        if let Some(r) = s.rouge {
            for (k, sc) in [r.rouge1, r.rouge2, r.rouge_l].into_iter().enumerate() {
                self.rouge[k][0] += sc.precision;
                self.rouge[k][1] += sc.recall;
                self.rouge[k][2] += sc.fmeasure;
            }
        }
    }

    fn report(self, records: u64) -> Result<Value> {
        let m = self.o.metrics;
        let mut report = Map::new();
        report.insert("task".into(), "generation".into());
        report.insert("records".into(), records.into());
        if m.bleu {
            let t = self.bleu;
            let b = bleu::score(&t, bleu::Smooth::Exp, false);
            report.insert(
                "bleu".into(),
                json!({
                    "score": b.score,
                    "precisions": b.precisions,
                    "bp": b.bp,
                    "ratio": b.ratio(),
                    "hyp_len": t.sys_len,
                    "ref_len": t.ref_len,
                    "counts": t.correct,
                    "totals": t.total,
                    "tokenize": self.o.tokenize.name(),
                }),
            );
        }
        for (on, key, params, stats) in [
            (m.chrf, "chrf", ChrfParams::CHRF, &self.chrf),
            (
                m.chrf_plus_plus,
                "chrf++",
                ChrfParams::CHRF_PLUS_PLUS,
                &self.chrf_pp,
            ),
        ] {
            if on {
                report.insert(
                    key.into(),
                    json!({
                        "score": chrf::f_score(stats, params.beta),
                        "char_order": params.char_order,
                        "word_order": params.word_order,
                        "beta": params.beta,
                    }),
                );
            }
        }
        if m.rouge {
            let n = records as f64;
            let mean = |k: usize| {
                let s = self.rouge[k];
                json!({"precision": s[0] / n, "recall": s[1] / n, "fmeasure": s[2] / n})
            };
            report.insert(
                "rouge".into(),
                json!({
                    "tokenizer": match self.o.rouge {
                        RougeTokenizer::Default { .. } => "default",
                        RougeTokenizer::Chars => "char",
                    },
                    "stemmed": matches!(self.o.rouge, RougeTokenizer::Default { stem: true }),
                    "rouge1": mean(0),
                    "rouge2": mean(1),
                    "rougeL": mean(2),
                }),
            );
        }
        Ok(Value::Object(report))
    }
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

pub struct Qa {
    fields: Fields,
    lang: Lang,
    sums: (f64, f64),
}

impl Qa {
    pub fn new(fields: Fields, lang: Lang) -> Qa {
        Qa {
            fields,
            lang,
            sums: (0.0, 0.0),
        }
    }
}

impl Scorer for Qa {
    /// (exact match 0/1, F1)
    type Stat = (f64, f64);

    fn score(&self, r: &Record) -> Result<(f64, f64)> {
        let p = r.text(&self.fields.pred, "--pred-field")?;
        let answers = r.texts(&self.fields.reference, "--ref-field")?;
        Ok(match self.lang {
            Lang::En => squad::score(p, &answers),
            Lang::Zh => cmrc::score(p, &answers),
        })
    }

    fn record_scores(&self, &(em, f1): &(f64, f64)) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("exact_match".into(), em.into());
        m.insert("f1".into(), f1.into());
        m
    }

    fn add(&mut self, (em, f1): (f64, f64)) {
        self.sums.0 += em;
        self.sums.1 += f1;
    }

    fn report(self, records: u64) -> Result<Value> {
        let n = records as f64;
        Ok(json!({
            "task": "qa",
            "lang": self.lang.name(),
            "records": records,
            "exact_match": 100.0 * self.sums.0 / n,
            "f1": 100.0 * self.sums.1 / n,
        }))
    }
}

pub struct Classification {
    fields: Fields,
    pairs: Vec<(String, String)>,
}

impl Classification {
    pub fn new(fields: Fields) -> Classification {
        Classification {
            fields,
            pairs: Vec::new(),
        }
    }
}

impl Scorer for Classification {
    /// (prediction, reference)
    type Stat = (String, String);

    fn score(&self, r: &Record) -> Result<(String, String)> {
        Ok((
            r.label(&self.fields.pred, "--pred-field")?,
            r.label(&self.fields.reference, "--ref-field")?,
        ))
    }

    fn record_scores(&self, (p, r): &(String, String)) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("correct".into(), (p == r).into());
        m
    }

    fn add(&mut self, pair: (String, String)) {
        self.pairs.push(pair);
    }

    fn report(self, _records: u64) -> Result<Value> {
        let r = classify::report(self.pairs.iter().map(|(p, r)| (p.as_str(), r.as_str())));
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
        let avg = |a: classify::Averages| json!({"precision": a.precision, "recall": a.recall, "f1": a.f1});
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
        Ok(json!({
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
        }))
    }
}
