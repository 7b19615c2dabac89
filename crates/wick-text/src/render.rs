//! Rendering SFT and preference records into pieces of text, each marked as trained on (the
//! response) or not (prompt and template text).
//!
//! Chat records go through a Jinja chat template exactly as Hugging Face renders it
//! (`trim_blocks`, `lstrip_blocks`, `messages`, `add_generation_prompt`, `bos_token`,
//! `eos_token`, `raise_exception`). Each assistant turn is located by rendering the
//! conversation up to it twice — with the generation prompt, and with the turn — so the
//! template needs no special markers; the turn's text plus its end-of-turn marker is trained
//! on, the whitespace after the marker is not.

use minijinja::{Environment, ErrorKind};
use serde_json::{Map, Value};

/// Used for chat records when the tokenizer folder has no `chat_template` (Zephyr's layout).
pub const DEFAULT_CHAT_TEMPLATE: &str = r#"{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] }}{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"#;

/// Stanford Alpaca's prompts, used for Alpaca records when there is no chat template.
const ALPACA_WITH_INPUT: &str = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";
const ALPACA_NO_INPUT: &str = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n";

/// A stretch of rendered text (`None`: the EOS token itself) and whether it counts for loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: Option<String>,
    pub train: bool,
}

impl Piece {
    fn text(t: impl Into<String>, train: bool) -> Piece {
        Piece {
            text: Some(t.into()),
            train,
        }
    }
    const EOS: Piece = Piece {
        text: None,
        train: true,
    };
}

/// The kinds of record `tokenize` understands, told apart by their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Alpaca,
    PromptCompletion,
    Chat,
    Preference,
}

impl Format {
    /// Preference `{prompt,chosen,rejected}`, chat `{messages}`, Alpaca `{instruction,output}`,
    /// `{prompt,completion}`, else a plain document under `text_field`.
    pub fn detect(rec: &Map<String, Value>, text_field: &str) -> Option<Format> {
        let has = |k: &str| rec.contains_key(k);
        if has("chosen") && has("rejected") {
            Some(Format::Preference)
        } else if has("messages") {
            Some(Format::Chat)
        } else if has("instruction") && has("output") {
            Some(Format::Alpaca)
        } else if has("prompt") && has("completion") {
            Some(Format::PromptCompletion)
        } else if has(text_field) {
            Some(Format::Text)
        } else {
            None
        }
    }

    /// The fields a record of this format is rendered from (dropped by `--drop-text`).
    pub fn source_fields(self, text_field: &str) -> Vec<&str> {
        match self {
            Format::Text => vec![text_field],
            Format::Alpaca => vec!["instruction", "input", "output"],
            Format::PromptCompletion => vec!["prompt", "completion"],
            Format::Chat => vec!["messages"],
            Format::Preference => vec!["prompt", "chosen", "rejected"],
        }
    }
}

/// Steps (minijinja instructions) one render of a chat template may take. Hugging Face's
/// templates take a few dozen per message (Qwen2.5's: about 32, so 150,000 messages fit); a
/// template that loops without end, or over `range()`s nested three deep, runs out in about
/// 0.2 s instead of hanging the tool.
pub const TEMPLATE_STEPS: u64 = 5_000_000;

/// The widest indentation `tojson(indent=...)` takes: each nesting level repeats it, and a
/// width of 10^11 was an allocation abort, not an error (found with fuzz/). Templates use 2 or 4.
const MAX_TOJSON_INDENT: usize = 1000;

/// The chat template in use: the model folder's, or [`DEFAULT_CHAT_TEMPLATE`].
pub struct Templates {
    env: Environment<'static>,
    /// Where the template came from, for error messages.
    name: String,
    /// True when the folder supplied the template: then Alpaca and prompt/completion records
    /// are rendered as a user turn and an assistant turn with it, as TRL does.
    pub from_model: bool,
    bos: String,
    eos: String,
}

impl Templates {
    pub fn new(
        chat_template: Option<&str>,
        bos: Option<&str>,
        eos: Option<&str>,
    ) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_fuel(Some(TEMPLATE_STEPS));
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        // Python's json.dumps(ensure_ascii=False), as transformers registers it; minijinja's
        // own tojson escapes HTML characters.
        env.add_filter(
            "tojson",
            |v: minijinja::Value,
             kwargs: minijinja::value::Kwargs|
             -> Result<String, minijinja::Error> {
                let indent: Option<usize> = kwargs.get("indent")?;
                kwargs.assert_all_used()?;
                if let Some(n) = indent.filter(|&n| n > MAX_TOJSON_INDENT) {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!("tojson indent={n} is more than {MAX_TOJSON_INDENT} spaces"),
                    ));
                }
                let v: Value = serde_json::to_value(&v).map_err(|e| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string())
                })?;
                Ok(python_json(&v, indent))
            },
        );
        let src = chat_template.unwrap_or(DEFAULT_CHAT_TEMPLATE).to_string();
        env.add_template_owned("chat", src)
            .map_err(|e| format!("chat template does not parse: {e}"))?;
        Ok(Templates {
            env,
            name: if chat_template.is_some() {
                "the chat template".into()
            } else {
                "wick's default chat template".into()
            },
            from_model: chat_template.is_some(),
            bos: bos.unwrap_or_default().to_string(),
            eos: eos.unwrap_or_default().to_string(),
        })
    }

    /// The templates of a tokenizer folder: its chat template (if any), BOS and EOS.
    pub fn for_tok(tok: &crate::Tok) -> wick_io::Result<Self> {
        let mut t = Templates::new(
            tok.chat_template.as_deref(),
            tok.bos_token.as_deref(),
            tok.eos_token.as_deref(),
        )
        .map_err(|e| wick_io::Error::msg(format!("{}: {e}", tok.path.display())))?;
        if t.from_model {
            t.name = format!(
                "the chat template of {}",
                tok.path.with_file_name("tokenizer_config.json").display()
            );
        }
        Ok(t)
    }

    /// Renders `messages` as Hugging Face's `apply_chat_template(tokenize=False)` does.
    pub fn render(
        &self,
        messages: &[Value],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let tpl = self.env.get_template("chat").expect("added in new");
        tpl.render(minijinja::context! {
            messages => minijinja::Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos,
            eos_token => &self.eos,
        })
        .map_err(|e| match e.kind() {
            ErrorKind::OutOfFuel => format!(
                "{} did not finish within {TEMPLATE_STEPS} steps (a loop that does not end?)",
                self.name
            ),
            _ => format!("chat template failed: {e}"),
        })
    }

    /// Pieces of a conversation: everything but the assistant turns is masked out.
    fn chat(&self, messages: &[Value]) -> Result<Vec<Piece>, String> {
        let mut pieces = Vec::new();
        let mut done = String::new();
        for (i, m) in messages.iter().enumerate() {
            if role(m)? != "assistant" {
                continue;
            }
            let prompt = self.render(&messages[..i], true)?;
            let full = self.render(&messages[..=i], false)?;
            let (head, turn) = self.split_turn(&done, &prompt, &full)?;
            push_text(&mut pieces, head, false);
            let body = turn.trim_end();
            push_text(&mut pieces, body, true);
            push_text(&mut pieces, &turn[body.len()..], false);
            done = full;
        }
        if pieces.iter().all(|p| !p.train) {
            return Err("conversation has no assistant message to train on".into());
        }
        let all = self.render(messages, false)?;
        let rest = all
            .strip_prefix(done.as_str())
            .ok_or_else(not_incremental)?;
        push_text(&mut pieces, rest, false);
        Ok(pieces)
    }

    /// Given the text already emitted, the render up to the generation prompt and the render
    /// with the new turn, returns (new prompt text, the turn's text).
    fn split_turn<'a>(
        &self,
        done: &str,
        prompt: &'a str,
        full: &'a str,
    ) -> Result<(&'a str, &'a str), String> {
        let head = prompt.strip_prefix(done).ok_or_else(not_incremental)?;
        let turn = full.strip_prefix(prompt).ok_or_else(not_incremental)?;
        Ok((head, turn))
    }

    /// The prompt and one completion of a conversational preference or prompt/completion
    /// record: (prompt text, completion text with its end-of-turn marker).
    fn prompt_and_completion(
        &self,
        prompt: &[Value],
        completion: &[Value],
    ) -> Result<(String, String), String> {
        let p = self.render(prompt, true)?;
        let all: Vec<Value> = prompt.iter().chain(completion).cloned().collect();
        let f = self.render(&all, false)?;
        let (_, turn) = self.split_turn("", &p, &f)?;
        Ok((p.clone(), turn.trim_end().to_string()))
    }
}

/// `json.dumps(v, ensure_ascii=False, indent=indent)`: Python's separators are ", " and ": "
/// (",", ": " with an indent).
fn python_json(v: &Value, indent: Option<usize>) -> String {
    fn go(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
        let newline = |out: &mut String, depth: usize| {
            if let Some(n) = indent {
                out.push('\n');
                out.push_str(&" ".repeat(n * depth));
            }
        };
        let sep = if indent.is_some() { "," } else { ", " };
        match v {
            Value::Array(a) if !a.is_empty() => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    newline(out, depth + 1);
                    go(x, indent, depth + 1, out);
                }
                newline(out, depth);
                out.push(']');
            }
            Value::Object(o) if !o.is_empty() => {
                out.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    newline(out, depth + 1);
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push_str(": ");
                    go(x, indent, depth + 1, out);
                }
                newline(out, depth);
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    go(v, indent, 0, &mut out);
    out
}

fn not_incremental() -> String {
    "chat template does not render conversations incrementally (a prefix of the conversation does not render to a prefix of its text), so the response cannot be located".into()
}

fn push_text(pieces: &mut Vec<Piece>, text: &str, train: bool) {
    if !text.is_empty() {
        pieces.push(Piece::text(text, train));
    }
}

fn role(m: &Value) -> Result<&str, String> {
    let obj = m
        .as_object()
        .ok_or("each message must be an object with \"role\" and \"content\"")?;
    if !obj.get("content").is_some_and(|c| c.is_string()) {
        return Err("each message needs a string \"content\"".into());
    }
    obj.get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| "each message needs a string \"role\"".into())
}

fn str_field<'a>(rec: &'a Map<String, Value>, k: &str) -> Result<&'a str, String> {
    match rec.get(k) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "field \"{k}\" must be a string, found {}",
            wick_io::kind_of(other)
        )),
        None => Err(format!("missing field \"{k}\"")),
    }
}

fn message(role: &str, content: &str) -> Value {
    serde_json::json!({"role": role, "content": content})
}

/// A prompt or response given as text or as a list of messages.
fn messages_of(v: &Value, field: &str, text_role: &str) -> Result<Vec<Value>, String> {
    match v {
        Value::String(s) => Ok(vec![message(text_role, s)]),
        Value::Array(list) => {
            for m in list {
                role(m)?;
            }
            Ok(list.clone())
        }
        other => Err(format!(
            "field \"{field}\" must be a string or a list of messages, found {}",
            wick_io::kind_of(other)
        )),
    }
}

/// An Alpaca record's prompt: a user turn for the folder's chat template, or Stanford Alpaca's
/// prompt text when there is none.
enum AlpacaPrompt {
    Turn(String),
    Text(String),
}

fn alpaca(rec: &Map<String, Value>, t: &Templates) -> Result<AlpacaPrompt, String> {
    let instruction = str_field(rec, "instruction")?;
    let input = match rec.get("input") {
        None | Some(Value::Null) => "",
        Some(_) => str_field(rec, "input")?,
    };
    Ok(if t.from_model {
        AlpacaPrompt::Turn(if input.is_empty() {
            instruction.to_string()
        } else {
            format!("{instruction}\n\n{input}")
        })
    } else if input.is_empty() {
        AlpacaPrompt::Text(ALPACA_NO_INPUT.replace("{instruction}", instruction))
    } else {
        AlpacaPrompt::Text(
            ALPACA_WITH_INPUT
                .replace("{instruction}", instruction)
                .replace("{input}", input),
        )
    })
}

/// The prompt a response is to follow, as SFT renders it before the response: a chat record's
/// messages through the template with the generation prompt added (transformers'
/// `apply_chat_template(messages, add_generation_prompt=True)`), an Alpaca record's instruction
/// and input (its output, if any, is left out). Text a template made: it carries any BOS.
pub(crate) fn render_prompt(
    rec: &Map<String, Value>,
    format: Format,
    t: &Templates,
) -> Result<String, String> {
    match format {
        Format::Chat => {
            let msgs = rec
                .get("messages")
                .and_then(Value::as_array)
                .ok_or("field \"messages\" must be a list")?;
            for m in msgs {
                role(m)?;
            }
            t.render(msgs, true)
        }
        Format::Alpaca => match alpaca(rec, t)? {
            AlpacaPrompt::Turn(user) => t.render(&[message("user", &user)], true),
            AlpacaPrompt::Text(prompt) => Ok(prompt),
        },
        other => Err(format!("{other:?} records are not rendered as prompts")),
    }
}

/// The token the chat template closes an assistant turn with (`<|im_end|>`, `<|eot_id|>`, the
/// EOS of wick's default template): the first token after an assistant message's text, when
/// it is a special token. None when the template puts plain text there, or cannot render a
/// user turn followed by an assistant turn.
pub(crate) fn end_of_turn(t: &Templates, tok: &crate::Tok) -> Option<u32> {
    const PROBE: &str = "wick-end-of-turn-probe";
    let msgs = [message("user", "Hi"), message("assistant", PROBE)];
    let text = t.render(&msgs, false).ok()?;
    let after = text[text.rfind(PROBE)? + PROBE.len()..].trim_start();
    let first = *tok.encode(after).ok()?.first()?;
    let special = tok
        .inner
        .get_added_tokens_decoder()
        .get(&first)
        .is_some_and(|t| t.special);
    special.then_some(first)
}

/// The pieces of one SFT record (`format` from [`Format::detect`]).
pub fn render_sft(
    rec: &Map<String, Value>,
    format: Format,
    t: &Templates,
) -> Result<Vec<Piece>, String> {
    match format {
        Format::Chat => {
            let msgs = rec
                .get("messages")
                .and_then(Value::as_array)
                .ok_or("field \"messages\" must be a list")?;
            t.chat(msgs)
        }
        Format::Alpaca => {
            let prompt = alpaca(rec, t)?;
            let output = str_field(rec, "output")?;
            match prompt {
                AlpacaPrompt::Turn(user) => {
                    t.chat(&[message("user", &user), message("assistant", output)])
                }
                AlpacaPrompt::Text(prompt) => Ok(vec![
                    Piece::text(prompt, false),
                    Piece::text(output, true),
                    Piece::EOS,
                ]),
            }
        }
        Format::PromptCompletion => {
            let (prompt, completion) = (&rec["prompt"], &rec["completion"]);
            if let (Value::String(p), Value::String(c), false) = (prompt, completion, t.from_model)
            {
                let mut pieces = Vec::new();
                push_text(&mut pieces, p, false);
                pieces.extend([Piece::text(c.as_str(), true), Piece::EOS]);
                return Ok(pieces);
            }
            let mut msgs = messages_of(prompt, "prompt", "user")?;
            msgs.extend(messages_of(completion, "completion", "assistant")?);
            t.chat(&msgs)
        }
        Format::Text | Format::Preference => Err(format!("{format:?} records are not SFT records")),
    }
}

/// A preference pair: the shared prompt (not trained on) and the two completions.
#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    pub prompt: Vec<Piece>,
    pub chosen: Vec<Piece>,
    pub rejected: Vec<Piece>,
}

/// Renders `{prompt, chosen, rejected}`: plain text (completion + EOS) when all three are
/// strings and the folder has no chat template, through the chat template otherwise.
pub fn render_preference(rec: &Map<String, Value>, t: &Templates) -> Result<Preference, String> {
    let prompt = rec.get("prompt").ok_or("missing field \"prompt\"")?;
    let (chosen, rejected) = (&rec["chosen"], &rec["rejected"]);
    if let (Value::String(p), Value::String(c), Value::String(r), false) =
        (prompt, chosen, rejected, t.from_model)
    {
        let mut prompt = Vec::new();
        push_text(&mut prompt, p, false);
        return Ok(Preference {
            prompt,
            chosen: vec![Piece::text(c.as_str(), true), Piece::EOS],
            rejected: vec![Piece::text(r.as_str(), true), Piece::EOS],
        });
    }
    let prompt_msgs = messages_of(prompt, "prompt", "user")?;
    let (p, c) =
        t.prompt_and_completion(&prompt_msgs, &messages_of(chosen, "chosen", "assistant")?)?;
    let (_, r) = t.prompt_and_completion(
        &prompt_msgs,
        &messages_of(rejected, "rejected", "assistant")?,
    )?;
    Ok(Preference {
        prompt: vec![Piece::text(p, false)],
        chosen: vec![Piece::text(c, true)],
        rejected: vec![Piece::text(r, true)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn trained(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .filter(|p| p.train)
            .map(|p| p.text.as_deref().unwrap_or("<EOS>"))
            .collect()
    }

    fn untrained(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .filter(|p| !p.train)
            .map(|p| p.text.as_deref().unwrap())
            .collect()
    }

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn detects_formats_by_fields() {
        let d = |v| Format::detect(&obj(v), "text");
        assert_eq!(d(json!({"text": "a"})), Some(Format::Text));
        assert_eq!(
            d(json!({"instruction": "a", "input": "", "output": "b"})),
            Some(Format::Alpaca)
        );
        assert_eq!(
            d(json!({"prompt": "a", "completion": "b"})),
            Some(Format::PromptCompletion)
        );
        assert_eq!(d(json!({"messages": []})), Some(Format::Chat));
        assert_eq!(
            d(json!({"prompt": "a", "chosen": "b", "rejected": "c"})),
            Some(Format::Preference)
        );
        assert_eq!(d(json!({"body": "a"})), None);
    }

    #[test]
    fn alpaca_without_template_uses_the_alpaca_prompt() {
        let t = Templates::new(None, None, Some("</s>")).unwrap();
        let rec = obj(json!({"instruction": "Name a colour.", "input": "", "output": "Red."}));
        let p = render_sft(&rec, Format::Alpaca, &t).unwrap();
        assert_eq!(trained(&p), "Red.<EOS>");
        assert!(untrained(&p).ends_with("### Instruction:\nName a colour.\n\n### Response:\n"));
        let rec = obj(json!({"instruction": "Translate.", "input": "Bonjour", "output": "Hello"}));
        let p = render_sft(&rec, Format::Alpaca, &t).unwrap();
        assert!(untrained(&p).contains("### Input:\nBonjour\n\n### Response:\n"));
    }

    #[test]
    fn default_chat_template_trains_on_every_assistant_turn() {
        let t = Templates::new(None, None, Some("<|endoftext|>")).unwrap();
        let rec = obj(json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Farewell."}]}));
        let p = render_sft(&rec, Format::Chat, &t).unwrap();
        assert_eq!(trained(&p), "Hello.<|endoftext|>Farewell.<|endoftext|>");
        let all: String = p.iter().map(|p| p.text.as_deref().unwrap()).collect();
        assert_eq!(
            all,
            t.render(rec["messages"].as_array().unwrap(), false)
                .unwrap()
        );
        assert_eq!(
            all,
            "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello.<|endoftext|>\n<|user|>\nBye\n<|assistant|>\nFarewell.<|endoftext|>\n"
        );
    }

    #[test]
    fn model_template_renders_alpaca_and_prompt_completion_as_turns() {
        let t = Templates::new(Some(CHATML), None, Some("<|im_end|>")).unwrap();
        let rec = obj(json!({"instruction": "Add.", "input": "1+1", "output": "2"}));
        let p = render_sft(&rec, Format::Alpaca, &t).unwrap();
        assert_eq!(
            untrained(&p),
            "<|im_start|>user\nAdd.\n\n1+1<|im_end|>\n<|im_start|>assistant\n\n"
        );
        assert_eq!(trained(&p), "2<|im_end|>");
        let rec = obj(json!({"prompt": "Q", "completion": "A"}));
        assert_eq!(
            trained(&render_sft(&rec, Format::PromptCompletion, &t).unwrap()),
            "A<|im_end|>"
        );
    }

    #[test]
    fn plain_prompt_completion_is_concatenated() {
        let t = Templates::new(None, None, None).unwrap();
        let p = render_sft(
            &obj(json!({"prompt": "2+2=", "completion": "4"})),
            Format::PromptCompletion,
            &t,
        )
        .unwrap();
        assert_eq!(
            p,
            vec![
                Piece::text("2+2=", false),
                Piece::text("4", true),
                Piece::EOS
            ]
        );
    }

    #[test]
    fn chat_errors_are_clear() {
        let t = Templates::new(None, None, None).unwrap();
        let e = render_sft(
            &obj(json!({"messages": [{"role": "user", "content": "x"}]})),
            Format::Chat,
            &t,
        );
        assert_eq!(
            e.unwrap_err(),
            "conversation has no assistant message to train on"
        );
        let e = render_sft(
            &obj(json!({"messages": [{"role": "user"}]})),
            Format::Chat,
            &t,
        );
        assert_eq!(e.unwrap_err(), "each message needs a string \"content\"");
        let e = render_sft(
            &obj(json!({"instruction": 3, "output": "x"})),
            Format::Alpaca,
            &t,
        );
        assert_eq!(
            e.unwrap_err(),
            "field \"instruction\" must be a string, found a number"
        );
        let bad = Templates::new(
            Some("{% if messages|length > 1 %}{{ raise_exception('only one turn') }}{% endif %}"),
            None,
            None,
        )
        .unwrap();
        let e = render_sft(
            &obj(json!({"prompt": "a", "completion": "b"})),
            Format::PromptCompletion,
            &bad,
        );
        assert!(e.unwrap_err().contains("only one turn"));
    }

    #[test]
    fn preference_plain_and_chat() {
        let plain = Templates::new(None, None, Some("<|endoftext|>")).unwrap();
        let rec = obj(json!({"prompt": "Sky?", "chosen": " Blue.", "rejected": " Green."}));
        let p = render_preference(&rec, &plain).unwrap();
        assert_eq!(p.prompt, vec![Piece::text("Sky?", false)]);
        assert_eq!(p.chosen, vec![Piece::text(" Blue.", true), Piece::EOS]);
        let chat = Templates::new(Some(CHATML), None, None).unwrap();
        let p = render_preference(&rec, &chat).unwrap();
        assert_eq!(
            p.prompt[0].text.as_deref(),
            Some("<|im_start|>user\nSky?<|im_end|>\n<|im_start|>assistant\n")
        );
        assert_eq!(p.rejected[0].text.as_deref(), Some(" Green.<|im_end|>"));
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let t = Templates::new(Some("{{ messages[0] | tojson }}"), None, None).unwrap();
        let out = t
            .render(&[json!({"role": "user", "content": "<b>café</b>"})], false)
            .unwrap();
        assert_eq!(out, r#"{"role": "user", "content": "<b>café</b>"}"#);
        let t = Templates::new(Some("{{ messages | tojson(indent=2) }}"), None, None).unwrap();
        let out = t
            .render(&[json!({"role": "user", "content": [1, []]})], false)
            .unwrap();
        assert_eq!(out, "[\n  {\n    \"role\": \"user\",\n    \"content\": [\n      1,\n      []\n    ]\n  }\n]");
    }

    /// Qwen2.5's chat template, in the style of its tokenizer_config.json (tools, tojson,
    /// looking at the neighbouring messages): real templates must stay well inside the budget.
    const QWEN25: &str = "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

    #[test]
    fn real_templates_render_long_conversations_within_the_step_budget() {
        let msgs: Vec<Value> = (0..2000)
            .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("m{i}")}))
            .collect();
        for t in [
            Templates::new(Some(QWEN25), None, Some("<|im_end|>")).unwrap(),
            Templates::new(Some(CHATML), None, None).unwrap(),
            Templates::new(None, None, Some("</s>")).unwrap(),
        ] {
            let tpl = t.env.get_template("chat").unwrap();
            let out = tpl
                .render_captured(minijinja::context! {
                    messages => minijinja::Value::from_serialize(&msgs),
                    add_generation_prompt => true,
                    bos_token => "",
                    eos_token => "",
                })
                .unwrap();
            assert!(out.output().contains("m1999"));
            let (used, _) = out.state().fuel_levels().unwrap();
            assert!(used < 100 * msgs.len() as u64, "{used} steps");
            // 50 times as long (100,000 messages) would still render.
            assert!(used * 50 < TEMPLATE_STEPS, "{used} steps: budget too tight");
        }
        let rec = obj(json!({"messages": msgs}));
        let q = Templates::new(Some(QWEN25), None, Some("<|im_end|>")).unwrap();
        assert!(render_sft(&rec, Format::Chat, &q).is_ok());
    }

    /// Found with the chat_template target of fuzz/ (a hand-made input): `tojson(indent=10^11)` asked
    /// for a string of 10^11 spaces and aborted the process.
    #[test]
    fn a_huge_tojson_indent_is_an_error() {
        let msgs = [json!({"role": "user", "content": "hi"})];
        for n in ["100000000000", "18446744073709551615"] {
            let t = Templates::new(
                Some(&format!("{{{{ messages|tojson(indent={n}) }}}}")),
                None,
                None,
            )
            .unwrap();
            let e = t.render(&msgs, false).unwrap_err();
            assert!(
                e.contains(&format!("tojson indent={n} is more than 1000 spaces")),
                "{e}"
            );
        }
        let t = Templates::new(Some("{{ messages|tojson(indent=1000) }}"), None, None).unwrap();
        assert!(t.render(&msgs, false).unwrap().contains(&" ".repeat(1000)));
    }

    #[test]
    fn a_template_that_does_not_end_runs_out_of_steps() {
        let nested = "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}{% endfor %}{% endfor %}{% endfor %}{{ messages[0].content }}";
        let t = Templates::new(Some(nested), None, None).unwrap();
        let started = std::time::Instant::now();
        let e = render_sft(
            &obj(json!({"prompt": "a", "completion": "b"})),
            Format::PromptCompletion,
            &t,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "the chat template did not finish within 5000000 steps (a loop that does not end?)"
        );
        // 1e12 iterations without the budget; about 0.2 s with it (debug builds are slower).
        assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
        // A recursive macro is no way round it.
        let t = Templates::new(
            Some("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            None,
            None,
        )
        .unwrap();
        let e = t.render(&[], false).unwrap_err();
        assert!(
            e.contains("did not finish") || e.contains("recursion"),
            "{e}"
        );
    }
}
