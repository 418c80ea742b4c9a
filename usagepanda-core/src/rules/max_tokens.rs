//! `POLICY_MAX_TOKENS`: refuse a generation whose token limit is missing or above the cap.
//! `max_tokens`, `max_completion_tokens` and the Responses API's `max_output_tokens` all count.

use super::RequestInput;
use crate::config::RuleAction;
use crate::verdict::{Flag, FlagKind};

pub(crate) fn check(input: &RequestInput<'_, '_>) -> Option<Flag> {
    let limit = input.settings.max_tokens;
    if limit == 0 || !input.endpoint.is_generation() {
        return None;
    }
    // Every limit the client sent must be within the cap: an API that honours another of the
    // fields must not escape the cost guard.
    let mut over = None;
    let mut any = false;
    for asked in input.view.token_limits() {
        any = true;
        if asked.as_u64().is_none_or(|n| n > limit) {
            over = Some(asked.to_string());
            break;
        }
    }
    let shown = match (any, over) {
        (false, _) => "missing".to_owned(),
        (true, Some(value)) => value,
        (true, None) => return None,
    };
    Some(Flag::new(
        FlagKind::MaxTokens,
        RuleAction::Block,
        format!("Config set to max tokens of: {limit}; request was: {shown}"),
    ))
}
