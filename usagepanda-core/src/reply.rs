//! OpenAI-shaped bodies the policy answers with: errors, blocks and auto-replies.

use bytes::Bytes;
use serde_json::json;

use crate::verdict::{Flag, Reply};

/// `application/json`.
pub const JSON: &str = "application/json";
/// `text/event-stream`.
pub const EVENT_STREAM: &str = "text/event-stream";

/// An OpenAI-shaped error body: `{"error":{"message","type","param","code"}}`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Bytes {
    let body = json!({
        "error": { "message": message, "type": kind, "param": param, "code": code }
    });
    Bytes::from(body.to_string())
}

/// An OpenAI-shaped error answer.
pub fn error_reply(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    Reply {
        status,
        content_type: JSON,
        body: error_body(message, kind, param, code),
    }
}

/// The message of a policy block: `Usage Panda: ` and every flag's description.
pub fn block_message(flags: &[Flag]) -> String {
    let mut message = String::from("Usage Panda: ");
    for (i, flag) in flags.iter().enumerate() {
        if i > 0 {
            message.push_str(", ");
        }
        message.push_str(&flag.description);
    }
    message
}

/// The original's 422 answer to a blocked exchange.
pub fn block_reply(flags: &[Flag]) -> Reply {
    error_reply(422, &block_message(flags), "invalid_request", None, None)
}

/// What an auto-reply answers with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AutoReplyBody<'a> {
    pub(crate) chat: bool,
    pub(crate) stream: bool,
    pub(crate) model: &'a str,
    pub(crate) content: &'a str,
    pub(crate) id: &'a str,
    pub(crate) created: u64,
}

impl AutoReplyBody<'_> {
    pub(crate) fn reply(&self) -> Reply {
        let usage = json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0});
        let (object, choice, id) = match (self.chat, self.stream) {
            (true, false) => (
                "chat.completion",
                json!({"index": 0, "message": {"role": "assistant", "content": self.content}, "logprobs": null, "finish_reason": "stop"}),
                format!("chatcmpl-{}", self.id),
            ),
            (true, true) => (
                "chat.completion.chunk",
                json!({"index": 0, "delta": {"role": "assistant", "content": self.content}, "logprobs": null, "finish_reason": "stop"}),
                format!("chatcmpl-{}", self.id),
            ),
            (false, _) => (
                "text_completion",
                json!({"index": 0, "text": self.content, "logprobs": null, "finish_reason": "stop"}),
                format!("cmpl-{}", self.id),
            ),
        };
        let mut body = json!({
            "id": id, "object": object, "created": self.created, "model": self.model,
            "choices": [choice],
        });
        if self.stream {
            let event = format!("data: {body}\n\ndata: [DONE]\n\n");
            return Reply {
                status: 200,
                content_type: EVENT_STREAM,
                body: Bytes::from(event),
            };
        }
        body["usage"] = usage;
        Reply {
            status: 200,
            content_type: JSON,
            body: Bytes::from(body.to_string()),
        }
    }
}
