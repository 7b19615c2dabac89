//! Chat templates from one input: its parts are a Jinja template, a record (one JSON object:
//! `{messages}`, `{prompt, completion}`, `{instruction, output}` or `{prompt, chosen,
//! rejected}`), the BOS and the EOS token. The record is rendered as `tokenize` renders it
//! (Format::detect, then render_sft or render_preference) with the template and with wick's
//! default one, and its messages (or none) straight through Templates::render. Oracles
//! besides "no panic" and the step budget (a render that does not end is a hang): a chat
//! record's pieces put together are the whole conversation's render.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use wick_fuzz::parts;
use wick_text::{render_preference, render_sft, Format, Templates};

fn text(bytes: Option<&&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

fn render_record(t: &Templates, rec: &Map<String, Value>) {
    match Format::detect(rec, "text") {
        Some(Format::Preference) => {
            let _ = render_preference(rec, t);
        }
        Some(Format::Text) | None => {}
        Some(format) => {
            if let Ok(pieces) = render_sft(rec, format, t) {
                assert!(pieces.iter().any(|p| p.train), "nothing to train on");
                if format == Format::Chat {
                    let joined: String = pieces.iter().filter_map(|p| p.text.clone()).collect();
                    let msgs = rec["messages"].as_array().expect("rendered, so a list");
                    let whole = t.render(msgs, false).expect("rendered once already");
                    assert_eq!(joined, whole, "the pieces are the conversation");
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let p = parts(data, 4);
    let template = text(p.first()).unwrap_or_default();
    let (bos, eos) = (text(p.get(2)), text(p.get(3)));
    let rec: Option<Map<String, Value>> = p.get(1).and_then(|r| serde_json::from_slice(r).ok());
    let fallback = vec![
        json!({"role": "system", "content": "s"}),
        json!({"role": "user", "content": "u"}),
        json!({"role": "assistant", "content": "a"}),
    ];
    let messages: Vec<Value> = rec
        .as_ref()
        .and_then(|r| r.get("messages"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or(fallback);
    if let Ok(t) = Templates::new(Some(&template), bos.as_deref(), eos.as_deref()) {
        let _ = t.render(&messages, true);
        let _ = t.render(&[], false);
        if let Some(rec) = &rec {
            render_record(&t, rec);
        }
    }
    if let Some(rec) = &rec {
        let t = Templates::new(None, bos.as_deref(), eos.as_deref()).expect("the default parses");
        render_record(&t, rec);
    }
});
