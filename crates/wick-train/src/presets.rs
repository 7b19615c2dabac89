//! Named model sizes, as Hugging Face Llama configs without a vocabulary
//! (the shards' tokenizer supplies it).

pub const NAMES: &[&str] = &["nano", "small", "tiny"];

/// (layers, heads, hidden, intermediate, context)
fn dims(name: &str) -> Option<(usize, usize, usize, usize, usize)> {
    Some(match name {
        // nanoGPT's CPU size (shakespeare_char on a MacBook): 4 layers, 4 heads, 128 wide, 64 context.
        "nano" => (4, 4, 128, 512, 64),
        // A size where matrix products dominate: 6 layers, 384 wide, 256 context.
        "small" => (6, 6, 384, 1536, 256),
        // For tests: a few thousand parameters besides the embeddings.
        "tiny" => (2, 2, 16, 32, 32),
        _ => return None,
    })
}

/// config.json text for a preset with the given vocabulary.
pub fn config_json(name: &str, vocab_size: usize) -> Option<String> {
    let (layers, heads, hidden, inter, ctx) = dims(name)?;
    let v = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": ctx,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "attention_bias": false,
        "hidden_act": "silu",
        "initializer_range": 0.02,
    });
    Some(v.to_string())
}
