//! Chat prompts against transformers: the prompt a `{messages}` (or Alpaca) record renders to
//! for `generate`, with the generation prompt added, has the text and token ids that
//! transformers' `apply_chat_template(messages, add_generation_prompt=True)` gives for the same
//! tokenizer folder (testdata/chat/, made by scripts/gen_chat_prompt_fixture.py).

use std::path::PathBuf;

use serde_json::{Map, Value};
use wick_text::{Reading, Renderer, Tok};

fn chat(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/chat")
        .join(rel)
}

fn records() -> Vec<Map<String, Value>> {
    std::fs::read_to_string(chat("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn chat_prompts_match_transformers_apply_chat_template() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(chat("expected.json")).unwrap()).unwrap();
    for (folder, end_of_turn) in [("qwen2", "<|im_end|>"), ("llama3", "<|eot_id|>")] {
        let tok = Tok::load(chat(folder)).unwrap();
        let r = Renderer::new(&tok, "prompt", Reading::Prompt).unwrap();
        let want = &expected[folder];
        for (i, rec) in records().iter().enumerate() {
            let rendered = r.render(rec).unwrap();
            assert!(rendered.is_templated());
            assert_eq!(
                rendered.text(),
                want["texts"][i].as_str().unwrap(),
                "{folder} {}",
                rec["id"]
            );
            // The template carries the BOS: no document prefix goes before it.
            let ids = rendered.encode(&tok, &[0]).unwrap().ids;
            let want_ids: Vec<u32> = serde_json::from_value(want["ids"][i].clone()).unwrap();
            assert_eq!(ids, want_ids, "{folder} {}", rec["id"]);
        }
        assert_eq!(
            r.end_of_turn(&tok),
            tok.inner.token_to_id(end_of_turn),
            "{folder}"
        );
        assert_eq!(
            tok.eos_id,
            want["tokenizer_eos"].as_u64().map(|x| x as u32),
            "{folder}"
        );
    }
}
