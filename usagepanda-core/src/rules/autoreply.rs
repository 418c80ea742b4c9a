//! `POLICY_AUTOREPLY`: answer a known prompt with a canned completion, without the upstream.
//! The prompt (completions) or the last message, when it is the user's (chat), must equal the
//! rule's `request` exactly.

use super::RequestInput;
use crate::config::{AutoReplyKind, AutoReplyRule, RuleAction};
use crate::endpoint::Endpoint;
use crate::verdict::{Flag, FlagKind};

pub(crate) fn check<'c>(input: &RequestInput<'c, '_>) -> Option<(Flag, &'c AutoReplyRule)> {
    let rules = &input.config.policy_autoreply;
    if rules.is_empty() {
        return None;
    }
    let kind = match input.endpoint {
        Endpoint::ChatCompletions => AutoReplyKind::Chat,
        Endpoint::Completions => AutoReplyKind::Completion,
        _ => return None,
    };
    let text = input.view.autoreply_text(input.endpoint)?;
    let rule = rules.iter().find(|r| r.kind == kind && r.request == text)?;
    let description = match kind {
        AutoReplyKind::Chat => "Request matched known chat autoreply",
        AutoReplyKind::Completion => "Request matched known completion autoreply",
    };
    Some((
        Flag::new(FlagKind::AutoReply, RuleAction::Audit, description),
        rule,
    ))
}
