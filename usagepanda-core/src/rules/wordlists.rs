//! `POLICY_REQUEST_WORDLIST` / `POLICY_RESPONSE_WORDLIST`: literal phrase lists with an action
//! each. The lists of each action are compiled together, so a phrase in a block list is found
//! even where a longer redact-list phrase overlaps it; a text without any match costs one pass.

use crate::config::{RuleAction, WordlistSpec};
use crate::filter::{Findings, Stage};
use crate::policy::Policy;
use crate::verdict::{Flag, FlagKind};
use crate::wordlist::ListSet;

/// Which side of the exchange a scan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// The lists of a spec with exactly this action.
pub(crate) fn lists_with(spec: &WordlistSpec, action: RuleAction) -> ListSet {
    spec.entries()
        .iter()
        .filter(|(_, a)| *a == action)
        .map(|(l, _)| *l)
        .collect()
}

/// The lists of a spec with this action or a stricter one.
pub(crate) fn lists_at_least(spec: &WordlistSpec, min: RuleAction) -> ListSet {
    spec.entries()
        .iter()
        .filter(|(_, a)| *a >= min)
        .map(|(l, _)| *l)
        .collect()
}

/// The filtering stage for a spec.
pub(crate) fn stage<'p>(policy: &'p Policy, spec: &WordlistSpec) -> Stage<'p> {
    let matcher = |set: ListSet| {
        policy
            .scanner_for(set)
            .map(|s| s as &dyn crate::filter::Matcher)
    };
    Stage {
        block: matcher(lists_with(spec, RuleAction::Block)),
        redact: matcher(lists_with(spec, RuleAction::Redact)),
        audit: matcher(lists_with(spec, RuleAction::Audit)),
        any: matcher(lists_at_least(spec, RuleAction::Audit)),
        replacement: policy.config().redaction_string.as_str(),
    }
}

/// The description part of one side, e.g. `Request matched known wordlists: profanity, dan`.
pub(crate) fn describe(side: Side, lists: ListSet) -> String {
    let names: Vec<&str> = lists.iter().map(|l| l.as_str()).collect();
    let side = match side {
        Side::Request => "Request",
        Side::Response => "Response",
    };
    format!("{side} matched known wordlists: {}", names.join(", "))
}

/// Adds a side's findings to the flags: one `policy_wordlists` flag per exchange, the response
/// part joined to the request part with `; `. The flag's action is the strictest of the
/// matched lists'.
pub(crate) fn record(flags: &mut Vec<Flag>, side: Side, found: &Findings, spec: &WordlistSpec) {
    let Some(action) = found.lists.iter().filter_map(|l| spec.action(l)).max() else {
        return;
    };
    let description = describe(side, found.lists);
    match flags.iter_mut().find(|f| f.kind == FlagKind::Wordlists) {
        Some(existing) => {
            existing.description.push_str("; ");
            existing.description.push_str(&description);
            existing.action = existing.action.max(action);
        }
        None => flags.push(Flag::new(FlagKind::Wordlists, action, description)),
    }
}
