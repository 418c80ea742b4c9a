//! `POLICY_AUTO_MODERATE`: before forwarding, the adapter posts the request's text to the
//! moderation endpoint; a flagged result refuses the request, naming the categories. The text
//! sent is the client's, before any redaction.

use bytes::Bytes;

use super::RequestInput;
use crate::config::RuleAction;
use crate::endpoint::Endpoint;
use crate::openai::ModerationVerdict;
use crate::verdict::{Flag, FlagKind};

/// The moderation request body (`{"input": [...]}`), or `None` when moderation does not apply
/// or there is no text to moderate.
pub(crate) fn request_body(input: &RequestInput<'_, '_>) -> Option<Bytes> {
    let applies = input.endpoint.is_generation()
        || matches!(input.endpoint, Endpoint::Edits | Endpoint::ImageGenerations);
    if !input.settings.auto_moderate || !applies {
        return None;
    }
    let mut texts: Vec<&str> = Vec::new();
    input.view.visit_texts(input.endpoint, &mut |t| {
        if !t.text.trim().is_empty() {
            texts.push(t.text);
        }
    });
    if texts.is_empty() {
        return None;
    }
    let body = serde_json::json!({ "input": texts });
    Some(Bytes::from(body.to_string()))
}

/// What the adapter learnt from the moderation call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModerationResult {
    /// The endpoint answered with a moderation result.
    Verdict(ModerationVerdict),
    /// The call failed or its answer was not a moderation result; the text says how (it must
    /// not contain secrets).
    Failed(String),
}

pub(crate) fn flag(result: &ModerationResult, fail_open: bool) -> Option<Flag> {
    match result {
        ModerationResult::Verdict(v) if v.flagged => {
            let categories = if v.categories.is_empty() {
                "unspecified".to_owned()
            } else {
                v.categories.join(", ")
            };
            Some(Flag::new(
                FlagKind::AutoModerate,
                RuleAction::Block,
                format!("Moderation flagged this request: {categories}"),
            ))
        }
        ModerationResult::Verdict(_) => None,
        ModerationResult::Failed(why) => Some(Flag::new(
            FlagKind::AutoModerate,
            if fail_open {
                RuleAction::Audit
            } else {
                RuleAction::Block
            },
            format!("Moderation could not be checked: {why}"),
        )),
    }
}
