//! An adapter folder from one input: its parts are adapter_config.json and
//! adapter_model.safetensors, loaded onto a fixed base, testdata/models/llama-gqa (vocab 64,
//! hidden 32, 2 layers). The config readers (LoRA and bottleneck) run on the first part, then
//! LoraAdapter::load and Llama::load_adapter (which picks LoRA or bottleneck by peft_type) on the
//! folder; a model that takes the adapter runs a forward pass, and a LoRA one is merged and
//! run again. Oracles besides "no panic": logits of the shape asked for, and errors of one line.

#![no_main]

use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use libfuzzer_sys::fuzz_target;
use wick_fuzz::{one_line, parts, temp_dir, testdata, write};
use wick_model::{lora, BottleneckConfig, AdapterKind, Llama, LoraAdapter};

fn base() -> Llama {
    static BASE: OnceLock<Llama> = OnceLock::new();
    BASE.get_or_init(|| {
        Llama::load(&testdata().join("models/llama-gqa")).expect("the fixed base model loads")
    })
    .clone()
}

fn forward(model: &Llama) {
    let ids = Tensor::new(&[[3u32, 1, 4, 1, 5]], &Device::Cpu).unwrap();
    match model.forward(&ids) {
        Ok(logits) => assert_eq!(logits.dims(), [1, 5, 64]),
        Err(e) => one_line(&e.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let files = parts(data, 2);
    let dir = temp_dir();
    let config = dir.path().join("adapter_config.json");
    write(dir.path(), "adapter_config.json", files[0]);
    if let Some(weights) = files.get(1) {
        write(dir.path(), "adapter_model.safetensors", weights);
    }
    match lora::read_config(&config) {
        Ok(c) => {
            let _ = c.scale();
        }
        Err(e) => one_line(&e.to_string()),
    }
    if let Err(e) = BottleneckConfig::read(&config) {
        one_line(&e.to_string());
    }
    if let Err(e) = LoraAdapter::load(dir.path()) {
        one_line(&e.to_string());
    }
    let mut model = base();
    match model.load_adapter(dir.path()) {
        Ok(()) => {
            forward(&model);
            if matches!(model.adapter(), Some(AdapterKind::Lora(_))) {
                model.merge_adapter().expect("a LoRA adapter merges");
                forward(&model);
            }
        }
        Err(e) => one_line(&e.to_string()),
    }
});
