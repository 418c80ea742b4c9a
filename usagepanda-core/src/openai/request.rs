//! A borrowing view of a request body: only the fields the rules read are decoded; everything
//! else is skipped without allocation and kept, byte for byte, in the original body.

use serde::Deserialize;
use serde_json::Value;

use super::text::{Content, Slot, Step, Text, TextRef, opt_text};
use crate::endpoint::Endpoint;

/// The fields of a request body the rules look at.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RequestView<'a> {
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub(crate) model: Option<Text<'a>>,
    #[serde(default)]
    pub(crate) max_tokens: Option<Value>,
    #[serde(default)]
    pub(crate) max_completion_tokens: Option<Value>,
    #[serde(default)]
    pub(crate) max_output_tokens: Option<Value>,
    #[serde(default)]
    pub(crate) user: Option<Value>,
    #[serde(default)]
    pub(crate) size: Option<Value>,
    #[serde(default)]
    pub(crate) stream: Option<Value>,
    #[serde(default, borrow)]
    pub(crate) messages: Option<Vec<MessageView<'a>>>,
    #[serde(default, borrow)]
    pub(crate) prompt: Content<'a>,
    #[serde(default, borrow)]
    pub(crate) input: Content<'a>,
    #[serde(default, borrow)]
    pub(crate) instruction: Content<'a>,
    #[serde(default, borrow)]
    pub(crate) instructions: Content<'a>,
}

/// One chat message.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageView<'a> {
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub(crate) role: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(crate) content: Content<'a>,
}

impl<'a> RequestView<'a> {
    /// Parses the view from a JSON body.
    pub(crate) fn parse(body: &'a [u8]) -> Result<RequestView<'a>, serde_json::Error> {
        // One UTF-8 check of the whole body, instead of one per string.
        match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(body),
        }
    }

    /// Visits every text the content rules scan on this endpoint, in body order.
    pub(crate) fn visit_texts<'s>(&'s self, endpoint: &Endpoint, f: &mut dyn FnMut(TextRef<'s>)) {
        if !endpoint.has_prompt() {
            return;
        }
        self.prompt.visit(&Slot::key("prompt"), Some("user"), f);
        self.instructions
            .visit(&Slot::key("instructions"), Some("system"), f);
        self.instruction
            .visit(&Slot::key("instruction"), Some("user"), f);
        if let Some(messages) = &self.messages {
            let base = Slot::key("messages");
            for (i, message) in messages.iter().enumerate() {
                let slot = base.child(Step::Index(i)).child(Step::Key("content"));
                message.content.visit(&slot, message.role.as_deref(), f);
            }
        }
        self.input.visit(&Slot::key("input"), Some("user"), f);
    }

    /// Whether the client asked for a stream.
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self.stream, Some(Value::Bool(true)))
    }

    /// Every token limit the client sent (`max_completion_tokens`, `max_tokens`, the Responses
    /// API's `max_output_tokens`), skipping absent and `null` ones.
    pub(crate) fn token_limits(&self) -> impl Iterator<Item = &Value> {
        [
            &self.max_completion_tokens,
            &self.max_tokens,
            &self.max_output_tokens,
        ]
        .into_iter()
        .flatten()
        .filter(|v| !v.is_null())
    }

    /// The text an auto-reply rule compares: the prompt (completions), or the last message when
    /// it is the user's (chat).
    pub(crate) fn autoreply_text(&self, endpoint: &Endpoint) -> Option<&str> {
        match endpoint {
            Endpoint::Completions => match &self.prompt {
                Content::Text(t) => Some(t),
                _ => None,
            },
            Endpoint::ChatCompletions => {
                let last = self.messages.as_ref()?.last()?;
                if last.role.as_deref() != Some("user") {
                    return None;
                }
                last.content.single_text()
            }
            _ => None,
        }
    }
}

/// The Unicode scalar count of a string (what "characters" means in our limits).
pub(crate) fn char_count(text: &str) -> u64 {
    // ASCII is the common case and its length is its byte count.
    if text.is_ascii() {
        text.len() as u64
    } else {
        text.chars().count() as u64
    }
}
