//! What a run trains for ([`Task`]) and which weights train ([`Method`]), as values that hold
//! exactly the settings that apply: DPO's beta and reference model live inside `Task::Dpo`,
//! a LoRA adapter's rank inside `Method::Lora`.

use std::fmt;
use std::path::{Path, PathBuf};

use wick_io::Result;
pub use wick_model::lora::LoraConfig;

/// What the loss is.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Next-token prediction on every token of the shards.
    Pretrain,
    /// Supervised fine-tuning on whole examples, loss on the masked (response) tokens only;
    /// `packing`: several examples per row with block-diagonal attention, else one, padded.
    Sft { packing: bool },
    /// A reward model: a scalar head learns the Bradley-Terry loss on preference pairs.
    /// `val`: val pairs (JSONL); None: every 20th pair of the data.
    Reward { val: Option<PathBuf> },
    /// Direct preference optimisation against a frozen reference model.
    Dpo {
        beta: f64,
        reference: PathBuf,
        val: Option<PathBuf>,
    },
}

impl Task {
    /// The name the run records (and the tools use).
    pub fn name(&self) -> &'static str {
        match self {
            Task::Pretrain => "pretrain",
            Task::Sft { .. } => "sft",
            Task::Reward { .. } => "reward",
            Task::Dpo { .. } => "dpo",
        }
    }

    /// Reward and DPO read preference pairs (JSONL) rather than token shards.
    pub fn reads_pairs(&self) -> bool {
        matches!(self, Task::Reward { .. } | Task::Dpo { .. })
    }

    /// The val pairs of a pair task.
    pub fn val_pairs(&self) -> Option<&Path> {
        match self {
            Task::Reward { val } | Task::Dpo { val, .. } => val.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn packing(&self) -> bool {
        match self {
            Task::Sft { packing } => *packing,
            _ => true,
        }
    }
}

/// Which weights train.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Every weight.
    Full,
    /// A LoRA adapter on the frozen base.
    Lora(LoraConfig),
    /// Bottleneck adapters (Houlsby et al.) after every attention block and MLP, on the frozen
    /// base, hidden size / `reduction` wide.
    Bottleneck { reduction: usize },
}

impl Method {
    /// True when only an adapter trains (the base is frozen).
    pub fn trains_adapter(&self) -> bool {
        !matches!(self, Method::Full)
    }

    /// The method that continues an existing adapter folder, with the adapter's own settings.
    pub fn of_adapter(dir: &Path) -> Result<Method> {
        let config = dir.join("adapter_config.json");
        Ok(if wick_model::bottleneck::is_bottleneck(dir) {
            let c = wick_model::BottleneckConfig::read(&config)?;
            Method::Bottleneck {
                reduction: c.reduction,
            }
        } else {
            Method::Lora(wick_model::lora::read_config(&config)?)
        })
    }
}

/// Why a LoRA adapter's settings are not usable.
#[derive(Debug, Clone, PartialEq)]
pub enum LoraError {
    /// The rank is 0.
    Rank,
    /// The dropout is outside [0, 1).
    Dropout,
    /// A target that is no projection of the model.
    UnknownTarget(String),
    /// The target list names nothing.
    NoTarget,
}

impl fmt::Display for LoraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoraError::Rank => write!(f, "the LoRA rank must be at least 1"),
            LoraError::Dropout => write!(f, "the LoRA dropout must be in [0, 1)"),
            LoraError::UnknownTarget(t) => write!(
                f,
                "unknown LoRA target module {t:?} (choose from q, k, v, o, gate, up, down)"
            ),
            LoraError::NoTarget => write!(f, "the LoRA target list names no module"),
        }
    }
}

/// A LoRA adapter's settings, checked; `targets` is a comma-separated list of projections,
/// short (q) or full (q_proj), in any order, duplicates dropped.
pub fn lora_config(
    r: usize,
    alpha: f64,
    dropout: f64,
    rslora: bool,
    targets: &str,
) -> std::result::Result<LoraConfig, LoraError> {
    if r == 0 {
        return Err(LoraError::Rank);
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(LoraError::Dropout);
    }
    let mut list = Vec::new();
    for t in targets.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let full = if t.ends_with("_proj") {
            t.to_string()
        } else {
            format!("{t}_proj")
        };
        if !wick_model::lora::TARGETS.contains(&full.as_str()) {
            return Err(LoraError::UnknownTarget(t.to_string()));
        }
        if !list.contains(&full) {
            list.push(full);
        }
    }
    if list.is_empty() {
        return Err(LoraError::NoTarget);
    }
    Ok(LoraConfig {
        r,
        alpha,
        rslora,
        dropout,
        targets: list,
    })
}
