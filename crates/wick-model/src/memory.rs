//! Memory estimates made before anything is allocated, so that a config or flags too large for
//! the machine get a one-line error with the estimate instead of an allocation abort or the
//! OOM killer. All arithmetic is in saturating u128: a `vocab_size` of 10^12 times a
//! `hidden_size` of 10^6 cannot overflow.
//!
//! The estimates (f32 everywhere, 4 bytes a value):
//! - weights: every parameter the model holds (embeddings, the head unless tied, each layer's
//!   projections, norms and biases);
//! - training: weights, their gradients and AdamW's two moments, 16 bytes a parameter (4 with an
//!   adapter, whose own tensors are small next to the base), plus activations kept for the
//!   backward pass, per token of a micro-batch: [`ACT_PER_LAYER`] values per layer and twice the
//!   vocabulary for the logits and their gradient — a rough upper estimate;
//! - a forward pass without gradients (`ppl`): weights plus one layer's intermediates and the
//!   logits per token of a batch.
//!
//! The machine's memory is /proc/meminfo's MemAvailable, lowered to a cgroup's memory limit
//! (less what the group already uses) when there is one; unknown (not Linux) means unlimited.

use crate::Config;

/// Activation values kept per token and layer in training, in units of the layer's widths:
/// 6 x hidden (the residual input, two norm outputs, attention output, o and down outputs),
/// 2 x (q, k and v widths) (the projections and their rotated copies), 3 x intermediate (gate,
/// up and their product). Documented here so that the figure in an error can be checked.
pub const ACT_PER_LAYER: &str = "6 x hidden_size + 2 x (q + k + v widths) + 3 x intermediate_size";

fn mul(a: impl Into<u128>, b: impl Into<u128>) -> u128 {
    a.into().saturating_mul(b.into())
}

fn u(n: usize) -> u128 {
    n as u128
}

/// Parameters of one decoder layer.
fn layer_params(c: &Config) -> u128 {
    let (h, hd, i) = (u(c.hidden_size), u(c.head_dim), u(c.intermediate_size));
    let (q, kv) = (mul(u(c.num_heads), hd), mul(u(c.num_kv_heads), hd));
    let qkv = q.saturating_add(mul(2u8, kv));
    let mut n = mul(h, qkv) // q, k, v
        .saturating_add(mul(q, h)) // o
        .saturating_add(mul(3u8, mul(h, i))) // gate, up, down
        .saturating_add(mul(2u8, h)); // the two norms
    if c.qkv_bias {
        n = n.saturating_add(qkv);
    }
    if c.o_bias {
        n = n.saturating_add(h);
    }
    if c.mlp_bias {
        n = n.saturating_add(mul(2u8, i)).saturating_add(h);
    }
    n
}

/// (parameters in matrix products, all parameters) as `Config::param_counts` reports them: the
/// head counts as a product whether or not it is tied.
pub(crate) fn param_counts(c: &Config) -> (u128, u128) {
    let h = u(c.hidden_size);
    let head = mul(u(c.vocab_size), h);
    let matmul = mul(u(c.num_layers), layer_params(c)).saturating_add(head);
    let embed = if c.tie_word_embeddings { 0 } else { head };
    (matmul, matmul.saturating_add(embed).saturating_add(h))
}

/// Parameters the model holds: embeddings, layers, final norm, and the head (a classifier's
/// `score`, else lm_head unless tied).
pub fn weight_params(c: &Config) -> u128 {
    let h = u(c.hidden_size);
    let embed = mul(u(c.vocab_size), h);
    let head = match c.num_labels() {
        Some(labels) => mul(u(labels), h),
        None if c.tie_word_embeddings => 0,
        None => embed,
    };
    mul(u(c.num_layers), layer_params(c))
        .saturating_add(embed)
        .saturating_add(head)
        .saturating_add(h)
}

/// Bytes a model's weights take in memory (f32).
pub fn weight_bytes(c: &Config) -> u128 {
    mul(weight_params(c), 4u8)
}

/// The q, k and v widths together.
fn qkv_width(c: &Config) -> u128 {
    mul(
        u(c.num_heads).saturating_add(mul(2u8, u(c.num_kv_heads))),
        u(c.head_dim),
    )
}

/// Activation bytes per token kept for the backward pass (see [`ACT_PER_LAYER`]). With
/// gradient checkpointing, each layer keeps its input and output (2 x hidden) and one layer at
/// a time is recomputed with all of its own.
fn train_activation_bytes_per_token(c: &Config, checkpoint: bool) -> u128 {
    let per_layer = mul(6u8, u(c.hidden_size))
        .saturating_add(mul(2u8, qkv_width(c)))
        .saturating_add(mul(3u8, u(c.intermediate_size)));
    let layers = if checkpoint {
        mul(mul(u(c.num_layers), 2u8), u(c.hidden_size)).saturating_add(per_layer)
    } else {
        mul(u(c.num_layers), per_layer)
    };
    mul(layers.saturating_add(mul(2u8, u(c.vocab_size))), 4u8)
}

/// Bytes a training run needs: see the module's description. `rows` sequences of `seq_len`
/// tokens per micro-batch; `full`: every weight trains (else an adapter: the base is frozen);
/// `checkpoint`: gradient checkpointing.
pub fn training_bytes(
    c: &Config,
    rows: usize,
    seq_len: usize,
    full: bool,
    checkpoint: bool,
) -> u128 {
    let per_param: u8 = if full { 16 } else { 4 };
    mul(weight_params(c), per_param).saturating_add(mul(
        mul(u(rows), u(seq_len)),
        train_activation_bytes_per_token(c, checkpoint),
    ))
}

/// Bytes a forward pass without gradients needs for `rows` x `seq_len` tokens: the weights,
/// one layer's intermediates (4 x hidden, the q/k/v widths, 3 x intermediate) and the logits.
pub fn forward_bytes(c: &Config, rows: usize, seq_len: usize) -> u128 {
    let per_token = mul(4u8, u(c.hidden_size))
        .saturating_add(qkv_width(c))
        .saturating_add(mul(3u8, u(c.intermediate_size)))
        .saturating_add(u(c.vocab_size));
    weight_bytes(c).saturating_add(mul(mul(mul(u(rows), u(seq_len)), per_token), 4u8))
}

/// Bytes the process may still allocate, when known.
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    [meminfo, cgroup_room()].into_iter().flatten().min()
}

/// A cgroup's limit less its usage (v2, else v1), when a limit is set.
fn cgroup_room() -> Option<u64> {
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let v2 = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            let path = t
                .lines()
                .find_map(|l| l.strip_prefix("0::"))?
                .trim()
                .to_string();
            let dir = format!("/sys/fs/cgroup{}", path.trim_end_matches('/'));
            let limit = read(&format!("{dir}/memory.max"))?; // "max" does not parse: no limit
            Some(limit.saturating_sub(read(&format!("{dir}/memory.current")).unwrap_or(0)))
        });
    v2.or_else(|| {
        let limit = read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?;
        let used = read("/sys/fs/cgroup/memory/memory.usage_in_bytes").unwrap_or(0);
        Some(limit.saturating_sub(used))
    })
}

/// "3.7 TiB".
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut x = bytes as f64;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{x:.1} {}", UNITS[unit])
    }
}

/// Err when `need` bytes are more than `available` (None: unknown, so never).
pub fn fits(need: u128, available: Option<u64>, what: &str) -> std::result::Result<(), String> {
    match available {
        Some(a) if need > u128::from(a) => Err(format!(
            "{what} needs ~{} of memory, more than this machine's {} available",
            human(need),
            human(u128::from(a))
        )),
        _ => Ok(()),
    }
}

/// How the weights add up, for the error message.
fn weights_detail(c: &Config) -> String {
    let head = match c.num_labels() {
        Some(l) => format!(" + score {l} x {}", c.hidden_size),
        None if c.tie_word_embeddings => " (head tied)".into(),
        None => " x 2 (embeddings and head)".into(),
    };
    format!(
        "{} parameters x 4 bytes: vocab_size {} x hidden_size {}{head}, num_hidden_layers {} x {} per layer",
        weight_params(c),
        c.vocab_size,
        c.hidden_size,
        c.num_layers,
        layer_params(c)
    )
}

/// Refuses a model whose weights alone would not fit in this machine's memory.
pub fn check_weights(c: &Config) -> std::result::Result<(), String> {
    fits(
        weight_bytes(c),
        available(),
        &format!("the model ({})", weights_detail(c)),
    )
}

/// Refuses a training run that would not fit: `rows` sequences of `seq_len` tokens per
/// micro-batch (`flags` names where they came from, e.g. "--batch-size 12 x --seq-len 256").
pub fn check_training(
    c: &Config,
    rows: usize,
    seq_len: usize,
    full: bool,
    checkpoint: bool,
    flags: &str,
) -> std::result::Result<(), String> {
    let kept = if checkpoint {
        "2 x hidden_size per layer and one layer's "
    } else {
        ""
    };
    let what = format!(
        "training with {flags} ({} for weights{}, ~{} per token of activations: {kept}{ACT_PER_LAYER} per layer, 2 x vocab_size for the logits)",
        human(mul(weight_params(c), if full { 16u8 } else { 4 })),
        if full { ", gradients and AdamW moments" } else { "" },
        human(train_activation_bytes_per_token(c, checkpoint)),
    );
    fits(
        training_bytes(c, rows, seq_len, full, checkpoint),
        available(),
        &what,
    )
}

/// Refuses forward passes (no gradients) over `rows` x `seq_len` tokens that would not fit.
pub fn check_forward(
    c: &Config,
    rows: usize,
    seq_len: usize,
    flags: &str,
) -> std::result::Result<(), String> {
    let what = format!(
        "scoring with {flags} ({} of weights and the batch's activations and logits)",
        human(weight_bytes(c))
    );
    fits(forward_bytes(c, rows, seq_len), available(), &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::from_json(&format!(
            r#"{{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn weights_are_counted_as_the_model_holds_them() {
        let c = config("");
        // Per layer: q 32x32, k and v 16x32, o 32x32, MLP 3 x 32x64, two norms of 32.
        let layer = 1024 + 512 + 512 + 1024 + 3 * 2048 + 64;
        assert_eq!(weight_params(&c), (2 * layer + 2 * 64 * 32 + 32) as u128);
        let biased = config(r#", "attention_bias": true, "mlp_bias": true"#);
        // q, k, v biases 32 + 16 + 16, o 32; gate, up 64 each, down 32.
        assert_eq!(
            weight_params(&biased) - weight_params(&c),
            2 * (64 + 32 + 160)
        );
        let tied = config(r#", "tie_word_embeddings": true"#);
        assert_eq!(weight_params(&c) - weight_params(&tied), 64 * 32);
        assert_eq!(weight_bytes(&c), 4 * weight_params(&c));
        assert_eq!(c.param_counts().1 as u128, weight_params(&c));
    }

    #[test]
    fn huge_configs_saturate_instead_of_overflowing() {
        let c = Config::from_json(r#"{"vocab_size": 18446744073709551615, "hidden_size": 18446744073709551615, "intermediate_size": 18446744073709551615, "num_hidden_layers": 18446744073709551615, "num_attention_heads": 1, "head_dim": 2}"#).unwrap();
        assert_eq!(weight_bytes(&c), u128::MAX);
        assert_eq!(c.param_counts(), (usize::MAX, usize::MAX));
        assert_eq!(
            training_bytes(&c, usize::MAX, usize::MAX, true, false),
            u128::MAX
        );
        let e = fits(weight_bytes(&c), Some(1 << 30), "the model").unwrap_err();
        assert!(
            e.contains("more than this machine's 1.0 GiB available"),
            "{e}"
        );
    }

    #[test]
    fn estimates_are_compared_with_the_memory_given() {
        let c = config("");
        let need = training_bytes(&c, 4, 16, true, false);
        // 16 bytes a parameter plus 64 tokens of activations.
        let per_token = 4 * (2 * (6 * 32 + 2 * 64 + 3 * 64) + 2 * 64);
        assert_eq!(need, 16 * weight_params(&c) + 64 * per_token);
        assert!(training_bytes(&c, 4, 16, false, false) < need);
        assert!(
            training_bytes(&c, 4, 16, true, true) < need,
            "checkpointing keeps less"
        );
        assert!(fits(need, Some(need as u64), "x").is_ok());
        assert!(fits(need, None, "x").is_ok(), "unknown memory: no refusal");
        let e = fits(need + 1, Some(need as u64), "training").unwrap_err();
        assert!(e.starts_with("training needs ~"), "{e}");
        assert_eq!(human(3 * (1 << 40) + (1 << 39)), "3.5 TiB");
        assert_eq!(human(1000), "1000 B");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_has_a_known_amount_of_memory() {
        let a = available().expect("MemAvailable on Linux");
        assert!(a > 1 << 20, "{a}");
    }
}
