//! `POLICY_MAX_PROMPT_CHARS`: refuse a prompt longer than the cap, counted in characters over
//! every text of the prompt (all messages and text parts, the prompt, the edit input).

use super::RequestInput;
use crate::config::RuleAction;
use crate::endpoint::Endpoint;
use crate::openai::request::char_count;
use crate::verdict::{Flag, FlagKind};

pub(crate) fn check(input: &RequestInput<'_, '_>) -> Option<Flag> {
    let limit = input.settings.max_prompt_chars;
    if limit == 0 || !(input.endpoint.is_generation() || *input.endpoint == Endpoint::Edits) {
        return None;
    }
    let mut length = 0u64;
    input
        .view
        .visit_texts(input.endpoint, &mut |t| length += char_count(t.text));
    (length > limit).then(|| {
        Flag::new(
            FlagKind::MaxPromptChars,
            RuleAction::Block,
            format!("Config set to max prompt chars of: {limit}; prompt was: {length}"),
        )
    })
}
