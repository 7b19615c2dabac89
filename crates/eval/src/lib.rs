//! `eval`: scores model outputs against references (generation, QA, classification) and models
//! on multiple-choice tasks. The metrics themselves live in `wick-metrics`.

pub mod choice;
pub mod records;
pub mod tasks;
