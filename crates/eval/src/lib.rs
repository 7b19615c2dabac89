//! `eval`: scores model outputs against references (generation, QA, classification) and models
//! on multiple-choice tasks. The metrics themselves live in `wick-metrics`; the model task
//! (`choice`) is the `model` feature (on by default), the only part that needs candle.

#[cfg(feature = "model")]
pub mod choice;
pub mod records;
pub mod tasks;
