//! Task metrics, each identical to the reference implementation people quote numbers from:
//! sacreBLEU (BLEU, chrF), Google's rouge-score (ROUGE), the SQuAD and CMRC evaluation scripts
//! (exact match, F1), scikit-learn (classification).

pub mod bleu;
pub mod chrf;
pub mod classify;
pub mod cmrc;
mod ngrams;
pub mod porter;
pub mod pytext;
pub mod rouge;
pub mod sacre_tok;
pub mod squad;
