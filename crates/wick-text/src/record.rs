//! The one way the model tools (`ppl`, `rm-score`, `generate`) turn an input record into text
//! for a model: plain text, `{prompt}`, `{prompt, completion}`, Alpaca
//! `{instruction, input, output}` and chat `{messages}` records, rendered with the model
//! folder's chat template (or wick's defaults) exactly as `tokenize` renders SFT records, so
//! that a model is scored and prompted on the text it was trained on.
//!
//! The tools differ only in what they want from a record, their [`Reading`]:
//!
//! | record | `Document` (ppl) | `Response` (rm-score) | `Prompt` (generate) |
//! |---|---|---|---|
//! | plain text (`--field`) | the whole text | the text as a response to an empty prompt | the text, to continue |
//! | `{prompt, completion}` | SFT: the completion scored | SFT: prompt and completion | the prompt, as it is |
//! | `{prompt, response}` | plain text if it has `--field` | prompt and response | the prompt, as it is |
//! | Alpaca | SFT: the output scored | SFT: prompt and output | the prompt SFT trains with |
//! | `{messages}` | SFT: assistant turns scored | SFT: the conversation | the template, generation prompt added |
//! | preference | refused | refused | `prompt` as it is |

use serde_json::{Map, Value};

use crate::render::{end_of_turn, render_prompt, render_sft, Format, Piece, Templates};
use crate::{Encoded, Tok};

/// What a tool wants from a record (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// A document to score: plain text whole; an SFT record on its response (and EOS) only.
    Document,
    /// A response to score whole, after its prompt: `{prompt, response}` (what `generate`
    /// writes), SFT records, or plain text (a response to an empty prompt).
    Response,
    /// A prompt to continue: the text under the field as it is (`{prompt}` records and text
    /// lines); chat records through the template with the generation prompt added; Alpaca
    /// records as the prompt SFT trains with.
    Prompt,
}

/// A record as text for the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// Plain text (a document, or a prompt to continue): encoded after the model's document
    /// prefix (its BOS, or EOS when it has none, as documents follow EOS in wick's shards).
    Plain(String),
    /// Text a template made, which carries whatever BOS the model wants: encoded as it is,
    /// piece by piece, the trained-on pieces (the response) marked.
    Templated(Vec<Piece>),
}

impl Rendered {
    /// The token ids: `prefix` then the text for plain text (mask empty: every token counts),
    /// the pieces with their mask for templated text.
    pub fn encode(&self, tok: &Tok, prefix: &[u32]) -> Result<Encoded, String> {
        match self {
            Rendered::Plain(text) => {
                let mut ids = prefix.to_vec();
                ids.extend(tok.encode(text)?);
                Ok(Encoded {
                    ids,
                    mask: Vec::new(),
                })
            }
            Rendered::Templated(pieces) => tok.encode_pieces(pieces),
        }
    }

    /// Bytes of the text that counts: all of plain text, the trained-on pieces of templated
    /// text (for bits per byte).
    pub fn scored_bytes(&self) -> u64 {
        match self {
            Rendered::Plain(text) => text.len() as u64,
            Rendered::Templated(pieces) => pieces
                .iter()
                .filter(|p| p.train)
                .filter_map(|p| p.text.as_ref().map(String::len))
                .sum::<usize>() as u64,
        }
    }

    /// The text, without the prefix or an EOS piece.
    pub fn text(&self) -> String {
        match self {
            Rendered::Plain(text) => text.clone(),
            Rendered::Templated(pieces) => {
                pieces.iter().filter_map(|p| p.text.as_deref()).collect()
            }
        }
    }

    pub fn is_templated(&self) -> bool {
        matches!(self, Rendered::Templated(_))
    }
}

/// Renders records for one tool: the folder's templates, the field plain text is under and the
/// tool's [`Reading`].
pub struct Renderer {
    templates: Templates,
    field: String,
    reading: Reading,
}

impl Renderer {
    /// With the templates of a tokenizer folder (its chat template, BOS and EOS).
    pub fn new(tok: &Tok, field: &str, reading: Reading) -> wick_io::Result<Renderer> {
        Ok(Renderer::with_templates(
            Templates::for_tok(tok)?,
            field,
            reading,
        ))
    }

    pub fn with_templates(templates: Templates, field: &str, reading: Reading) -> Renderer {
        Renderer {
            templates,
            field: field.to_string(),
            reading,
        }
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// One record as text for the model (see [`render_record`]).
    pub fn render(&self, rec: &Map<String, Value>) -> Result<Rendered, String> {
        render_record(rec, &self.field, self.reading, &self.templates)
    }

    /// The token the chat template closes an assistant turn with, if it is a special token of
    /// `tok` (`<|im_end|>`, `<|eot_id|>`; the EOS for wick's default template). A reply to a
    /// templated prompt stops there.
    pub fn end_of_turn(&self, tok: &Tok) -> Option<u32> {
        end_of_turn(&self.templates, tok)
    }
}

/// The entry point: one record as text for the model, read as `reading` wants it, with plain
/// text under `field` and the templates `t`. The error is worded for the record's line.
pub fn render_record(
    rec: &Map<String, Value>,
    field: &str,
    reading: Reading,
    t: &Templates,
) -> Result<Rendered, String> {
    match reading {
        Reading::Prompt => {
            if let Some(v) = rec.get(field) {
                return v
                    .as_str()
                    .map(|s| Rendered::Plain(s.to_string()))
                    .ok_or_else(|| format!("no string field {field:?}"));
            }
            let format = if rec.contains_key("messages") {
                Format::Chat
            } else if rec.contains_key("instruction") {
                Format::Alpaca
            } else {
                return Err(format!(
                    "no string field {field:?} (nor \"messages\" or \"instruction\")"
                ));
            };
            let text = render_prompt(rec, format, t)?;
            Ok(Rendered::Templated(vec![Piece {
                text: Some(text),
                train: false,
            }]))
        }
        Reading::Document => match Format::detect(rec, field) {
            Some(Format::Preference) => Err(PREFERENCE.into()),
            Some(Format::Text) | None => rec
                .get(field)
                .and_then(Value::as_str)
                .map(|s| Rendered::Plain(s.to_string()))
                .ok_or_else(|| format!("no string field {field:?}")),
            Some(format) => Ok(Rendered::Templated(render_sft(rec, format, t)?)),
        },
        Reading::Response => {
            let as_completion = |prompt: &Value, completion: &Value| {
                let mut m = Map::new();
                m.insert("prompt".into(), prompt.clone());
                m.insert("completion".into(), completion.clone());
                render_sft(&m, Format::PromptCompletion, t).map(Rendered::Templated)
            };
            if let (Some(p), Some(r)) = (rec.get("prompt"), rec.get("response")) {
                return as_completion(p, r);
            }
            match Format::detect(rec, field) {
                Some(Format::Text) => {
                    let text = rec[field]
                        .as_str()
                        .ok_or_else(|| format!("field {field:?} must be a string"))?;
                    as_completion(&Value::from(""), &Value::from(text))
                }
                Some(Format::Preference) => Err(PREFERENCE.into()),
                Some(format) => Ok(Rendered::Templated(render_sft(rec, format, t)?)),
                None => Err(format!(
                    "nothing to score: expected prompt + response, prompt + completion, messages or {field:?}"
                )),
            }
        }
    }
}

const PREFERENCE: &str =
    "a preference pair: score its chosen and rejected responses as separate records";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn renderer(template: Option<&str>, reading: Reading) -> Renderer {
        Renderer::with_templates(
            Templates::new(template, None, Some("</s>")).unwrap(),
            if reading == Reading::Prompt {
                "prompt"
            } else {
                "text"
            },
            reading,
        )
    }

    #[test]
    fn prompts_are_plain_text_or_a_template_with_the_generation_prompt() {
        let r = renderer(Some(CHATML), Reading::Prompt);
        let plain = r
            .render(&obj(json!({"prompt": "Once", "messages": []})))
            .unwrap();
        assert_eq!(plain, Rendered::Plain("Once".into()), "the field wins");
        let chat = r
            .render(&obj(json!({"messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"}]})))
            .unwrap();
        assert!(chat.is_templated());
        assert_eq!(
            chat.text(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        // Alpaca: the prompt SFT trains with, without the output.
        let alpaca = obj(json!({"instruction": "Add.", "input": "1+1", "output": "2"}));
        assert_eq!(
            r.render(&alpaca).unwrap().text(),
            "<|im_start|>user\nAdd.\n\n1+1<|im_end|>\n<|im_start|>assistant\n"
        );
        let plain_tpl = renderer(None, Reading::Prompt);
        let text = plain_tpl
            .render(&obj(json!({"instruction": "Name a colour."})))
            .unwrap()
            .text();
        assert!(text.ends_with("### Instruction:\nName a colour.\n\n### Response:\n"));
        // The prompt is exactly the untrained head of the SFT rendering.
        let sft = render_sft(&alpaca, Format::Alpaca, r.templates()).unwrap();
        assert_eq!(
            sft[0].text.as_deref(),
            Some(r.render(&alpaca).unwrap().text().as_str())
        );
        assert_eq!(
            r.render(&obj(json!({"text": "x"}))).unwrap_err(),
            "no string field \"prompt\" (nor \"messages\" or \"instruction\")"
        );
        assert_eq!(
            r.render(&obj(json!({"prompt": 3}))).unwrap_err(),
            "no string field \"prompt\""
        );
        assert_eq!(
            r.render(&obj(json!({"messages": [{"role": "user"}]})))
                .unwrap_err(),
            "each message needs a string \"content\""
        );
    }

    #[test]
    fn documents_and_responses() {
        let d = renderer(None, Reading::Document);
        assert_eq!(
            d.render(&obj(json!({"text": "abc"}))).unwrap(),
            Rendered::Plain("abc".into())
        );
        let sft = d
            .render(&obj(json!({"prompt": "2+2=", "completion": "4"})))
            .unwrap();
        assert_eq!(sft.scored_bytes(), 1);
        assert!(d
            .render(&obj(json!({"prompt": "a", "chosen": "b", "rejected": "c"})))
            .unwrap_err()
            .contains("preference pair"));
        let r = renderer(None, Reading::Response);
        let pr = r
            .render(&obj(json!({"prompt": "Q", "response": "A"})))
            .unwrap();
        assert_eq!(
            pr,
            Rendered::Templated(vec![
                Piece {
                    text: Some("Q".into()),
                    train: false
                },
                Piece {
                    text: Some("A".into()),
                    train: true
                },
                Piece {
                    text: None,
                    train: true
                },
            ])
        );
        let text = r.render(&obj(json!({"text": "A"}))).unwrap();
        assert_eq!(text.text(), "A");
        assert!(r
            .render(&obj(json!({"body": "A"})))
            .unwrap_err()
            .starts_with("nothing to score"));
    }
}
