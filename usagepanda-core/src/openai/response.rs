//! A borrowing view of a response body: the generated texts the response rules scan.

use serde::Deserialize;

use super::request::MessageView;
use super::text::{Content, Slot, Step, TextRef};

/// The generated texts of a chat, completion or Responses API answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResponseView<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceView<'a>>>,
    #[serde(default, borrow)]
    output: Content<'a>,
}

#[derive(Debug, Deserialize)]
struct ChoiceView<'a> {
    #[serde(default)]
    logprobs: Option<serde::de::IgnoredAny>,
    #[serde(default, borrow)]
    text: Content<'a>,
    #[serde(default, borrow)]
    message: Option<MessageView<'a>>,
}

impl<'a> ResponseView<'a> {
    /// Parses the view from a JSON body.
    pub(crate) fn parse(body: &'a [u8]) -> Result<ResponseView<'a>, serde_json::Error> {
        // One UTF-8 check of the whole body, instead of one per string.
        match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(body),
        }
    }

    /// The `logprobs` of every choice that has them (they spell out the generated tokens).
    pub(crate) fn logprobs_slots(&self) -> Vec<Slot> {
        let base = Slot::key("choices");
        self.choices
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, c)| c.logprobs.is_some())
            .map(|(i, _)| base.child(Step::Index(i)).child(Step::Key("logprobs")))
            .collect()
    }

    /// Visits every generated text, in body order.
    pub(crate) fn visit_texts<'s>(&'s self, f: &mut dyn FnMut(TextRef<'s>)) {
        if let Some(choices) = &self.choices {
            let base = Slot::key("choices");
            for (i, choice) in choices.iter().enumerate() {
                let at = base.child(Step::Index(i));
                choice
                    .text
                    .visit(&at.child(Step::Key("text")), Some("assistant"), f);
                if let Some(message) = &choice.message {
                    let slot = at.child(Step::Key("message")).child(Step::Key("content"));
                    message.content.visit(&slot, Some("assistant"), f);
                }
            }
        }
        self.output
            .visit(&Slot::key("output"), Some("assistant"), f);
    }
}

/// What the moderation endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationVerdict {
    /// Whether any input was flagged.
    pub flagged: bool,
    /// The flagged categories, in the order the endpoint listed them, without duplicates.
    pub categories: Vec<String>,
}

impl ModerationVerdict {
    /// Reads a `/v1/moderations` answer. `None` when the body is not a moderation result.
    pub fn from_body(body: &[u8]) -> Option<ModerationVerdict> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let results = value.get("results")?.as_array()?;
        let mut verdict = ModerationVerdict {
            flagged: false,
            categories: Vec::new(),
        };
        for result in results {
            if result.get("flagged").and_then(serde_json::Value::as_bool) == Some(true) {
                verdict.flagged = true;
            }
            if let Some(categories) = result.get("categories").and_then(|c| c.as_object()) {
                for (name, on) in categories {
                    if on.as_bool() == Some(true) && !verdict.categories.contains(name) {
                        verdict.categories.push(name.clone());
                    }
                }
            }
        }
        Some(verdict)
    }
}
