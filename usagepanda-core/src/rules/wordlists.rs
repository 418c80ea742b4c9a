//! `POLICY_REQUEST_WORDLIST` / `POLICY_RESPONSE_WORDLIST`: literal phrase lists with an action
//! each. All lists are scanned in one pass of one automaton; a phrase in a redact (or block)
//! list is replaced everywhere it stands.

use super::Rewrite;
use crate::config::{RuleAction, WordlistSpec};
use crate::openai::text::TextRef;
use crate::verdict::{Flag, FlagKind};
use crate::wordlist::{ListSet, Scanner};

/// Which side of the exchange a scan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// What a scan found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) lists: ListSet,
    pub(crate) rewrites: Vec<Rewrite>,
}

impl Scan {
    /// The strictest action among the matched lists.
    pub(crate) fn action(&self, spec: &WordlistSpec) -> Option<RuleAction> {
        self.lists.iter().filter_map(|l| spec.action(l)).max()
    }
}

/// The lists of a spec with the given action or a stricter one.
pub(crate) fn lists_at_least(spec: &WordlistSpec, min: RuleAction) -> ListSet {
    spec.entries()
        .iter()
        .filter(|(_, a)| *a >= min)
        .map(|(l, _)| *l)
        .collect()
}

/// Scans one text and records a rewrite when a redact list matched.
pub(crate) fn scan_text(
    scanner: &Scanner,
    spec: &WordlistSpec,
    redaction: &str,
    text: &TextRef<'_>,
    scan: &mut Scan,
) {
    let enabled = lists_at_least(spec, RuleAction::Audit);
    let found = scanner.matching_lists(text.text, enabled);
    if found.is_empty() {
        return;
    }
    scan.lists = scan.lists.union(found);
    let redact = lists_at_least(spec, RuleAction::Redact).intersect(found);
    if !redact.is_empty() {
        if let Some(new) = scanner.redact(text.text, redact, redaction) {
            scan.rewrites.push((text.slot.clone(), new));
        }
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

/// Adds a side's finding to the flags: one `policy_wordlists` flag per exchange, the response
/// part joined to the request part with `; `.
pub(crate) fn record(flags: &mut Vec<Flag>, side: Side, scan: &Scan, spec: &WordlistSpec) {
    let Some(action) = scan.action(spec) else {
        return;
    };
    let description = describe(side, scan.lists);
    match flags.iter_mut().find(|f| f.kind == FlagKind::Wordlists) {
        Some(existing) => {
            existing.description.push_str("; ");
            existing.description.push_str(&description);
            existing.action = existing.action.max(action);
        }
        None => flags.push(Flag::new(FlagKind::Wordlists, action, description)),
    }
}
