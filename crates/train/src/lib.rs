//! `train` is a thin tool over the engine in `wick-train`; its presets stay reachable here.

pub use wick_train::presets;
