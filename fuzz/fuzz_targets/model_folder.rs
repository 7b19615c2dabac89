//! A Hugging Face model folder from one input: its parts are config.json and
//! model.safetensors. Config::from_json on the first part (and what it writes back must read
//! back the same), then Llama::load on the folder; a model that loads runs a forward pass of a
//! few tokens, and is saved and loaded again. Oracles besides "no panic": the config and
//! save/load round trips, logits of the shape asked for, and errors of one line that name the
//! folder's file.
//!
//! Memory: nothing here is capped by the harness. Llama::load refuses a config whose weights
//! would not fit in the machine's memory before it allocates, and every tensor it then holds
//! comes from the safetensors file (at most -max_len bytes); the forward pass is over 3 tokens.

#![no_main]

use candle_core::{Device, Tensor};
use libfuzzer_sys::fuzz_target;
use wick_fuzz::{one_line, parts, temp_dir, write};
use wick_model::{Config, Llama};

/// The fields a config resolves to (its `json` aside, which keeps what wick does not read).
fn resolved(c: &Config) -> Config {
    Config {
        json: Default::default(),
        ..c.clone()
    }
}

/// `back` with its floats replaced by `c`'s where they differ by rounding only: serde_json's
/// default float parsing is not correctly rounded (off by one unit in the last place for some
/// 17-digit numbers, such as 500000.18446744076), so a float written back exactly can read
/// back one ulp away.
fn within_rounding(c: &Config, back: &Config) -> Config {
    let near =
        |a: f64, b: f64| a == b || (a - b).abs() <= a.abs().max(b.abs()) * 4.0 * f64::EPSILON;
    let mut out = resolved(back);
    for (mine, theirs) in [
        (&mut out.rope_theta, c.rope_theta),
        (&mut out.rms_norm_eps, c.rms_norm_eps),
        (&mut out.initializer_range, c.initializer_range),
    ] {
        if near(*mine, theirs) {
            *mine = theirs;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let files = parts(data, 2);
    let config_bytes = files[0];
    if let Ok(text) = std::str::from_utf8(config_bytes) {
        match Config::from_json(text) {
            Ok(c) => {
                let _ = c.param_counts();
                let _ = wick_model::memory::weight_bytes(&c);
                let _ = wick_model::memory::training_bytes(&c, 64, 4096, true);
                let _ = wick_model::memory::forward_bytes(&c, 64, 4096);
                let back = Config::from_json(&c.to_json())
                    .unwrap_or_else(|e| panic!("config.json as written does not read back: {e}"));
                assert_eq!(
                    within_rounding(&c, &back),
                    resolved(&c),
                    "config.json round trip"
                );
                assert_eq!(back.num_labels(), c.num_labels(), "config.json round trip");
            }
            Err(e) => one_line(&e),
        }
    }
    let dir = temp_dir();
    write(dir.path(), "config.json", config_bytes);
    if let Some(weights) = files.get(1) {
        write(dir.path(), "model.safetensors", weights);
    }
    let model = match Llama::load(dir.path()) {
        Ok(m) => m,
        Err(e) => {
            let msg = e.to_string();
            one_line(&msg);
            assert!(
                msg.contains(&dir.path().display().to_string()),
                "names no file: {msg}"
            );
            return;
        }
    };
    let c = &model.config;
    let ids: Vec<u32> = (0..3).map(|i| i % c.vocab_size as u32).collect();
    let ids = Tensor::new(&ids[..], &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .unwrap();
    match model.forward(&ids) {
        Ok(logits) => assert_eq!(logits.dims()[..2], [1, 3]),
        Err(e) => one_line(&e.to_string()),
    }
    let again = dir.path().join("saved");
    model.save(&again).expect("a loaded model saves");
    let back =
        Llama::load(&again).unwrap_or_else(|e| panic!("a saved model does not load back: {e}"));
    assert_eq!(
        within_rounding(&model.config, &back.config),
        resolved(&model.config)
    );
    assert_eq!(back.config.num_labels(), model.config.num_labels());
});
