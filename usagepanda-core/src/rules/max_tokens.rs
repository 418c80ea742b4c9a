//! `POLICY_MAX_TOKENS`: refuse a generation whose token limit is missing or above the cap.
//! `max_tokens`, `max_completion_tokens` and the Responses API's `max_output_tokens` all count.

use serde_json::Value;

use super::RequestInput;
use crate::config::RuleAction;
use crate::verdict::{Flag, FlagKind};

pub(crate) fn check(input: &RequestInput<'_, '_>) -> Option<Flag> {
    let limit = input.settings.max_tokens;
    if limit == 0 || !input.endpoint.is_generation() {
        return None;
    }
    let asked = input.view.token_limit();
    let within = asked.and_then(Value::as_u64).is_some_and(|n| n <= limit);
    if within {
        return None;
    }
    let shown = match asked {
        None => "missing".to_owned(),
        Some(v) => v.to_string(),
    };
    Some(Flag::new(
        FlagKind::MaxTokens,
        RuleAction::Block,
        format!("Config set to max tokens of: {limit}; request was: {shown}"),
    ))
}
