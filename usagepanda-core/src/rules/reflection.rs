//! `POLICY_PROMPT_REFLECTION`: the part of the prompt between the first and the last
//! `PROMPT_REFLECTION_DELIMETER` (of a completion prompt, or of each system or developer
//! message) must not appear in the response. Matching is literal and ASCII case-insensitive.

use aho_corasick::dfa::DFA;
use aho_corasick::{AhoCorasick, Input, MatchKind, StartKind};

use super::RequestInput;
use crate::config::RuleAction;
use crate::endpoint::Endpoint;
use crate::filter::{Matcher, Stage};
use crate::verdict::{Flag, FlagKind};
use crate::wordlist::{Hit, ListSet, live};

/// The protected parts of the prompt.
pub(crate) fn secrets(input: &RequestInput<'_, '_>) -> Vec<String> {
    if input.settings.prompt_reflection.action().is_none() || !input.endpoint.is_generation() {
        return Vec::new();
    }
    let delimiter = input.config.prompt_reflection_delimeter.as_str();
    let mut out = Vec::new();
    input.view.visit_texts(input.endpoint, &mut |t| {
        let protected = match input.endpoint {
            Endpoint::Completions => t.slot_is_prompt(),
            _ => matches!(t.role, Some("system" | "developer")),
        };
        if protected {
            if let Some(secret) = between(t.text, delimiter) {
                if !out.iter().any(|s| s == secret) {
                    out.push(secret.to_owned());
                }
            }
        }
    });
    out
}

/// The trimmed text between the first and the last delimiter, when there are two and it is
/// not empty.
fn between<'t>(text: &'t str, delimiter: &str) -> Option<&'t str> {
    let first = text.find(delimiter)?;
    let last = text.rfind(delimiter)?;
    if last < first + delimiter.len() {
        return None;
    }
    let inner = text[first + delimiter.len()..last].trim();
    (!inner.is_empty()).then_some(inner)
}

/// A compiled matcher for the protected parts: leftmost-longest, literal, ASCII
/// case-insensitive, anywhere in the text.
#[derive(Debug, Clone)]
pub(crate) struct Reflector {
    matcher: AhoCorasick,
    anchored: DFA,
    longest_bytes: usize,
}

impl Reflector {
    pub(crate) fn new(secrets: &[String]) -> Option<Reflector> {
        if secrets.is_empty() {
            return None;
        }
        let matcher = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(secrets)
            .ok()?;
        let anchored = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Anchored)
            .build(secrets)
            .ok()?;
        let longest_bytes = secrets.iter().map(String::len).max().unwrap_or(0);
        Some(Reflector {
            matcher,
            anchored,
            longest_bytes,
        })
    }
}

impl Matcher for Reflector {
    fn find(&self, text: &str, from: usize) -> Option<Hit> {
        let found = self.matcher.find(Input::new(text).span(from..text.len()))?;
        Some(Hit {
            start: found.start(),
            end: found.end(),
            lists: ListSet::EMPTY,
        })
    }
    fn live_from(&self, text: &str, at: usize) -> bool {
        live(&self.anchored, text.as_bytes(), at)
    }
    fn longest_bytes(&self) -> usize {
        self.longest_bytes
    }
}

/// The filtering stage for reflection with this action.
pub(crate) fn stage<'r>(
    reflector: &'r Reflector,
    action: RuleAction,
    replacement: &'r str,
) -> Stage<'r> {
    let m: &dyn Matcher = reflector;
    Stage {
        block: (action == RuleAction::Block).then_some(m),
        redact: (action == RuleAction::Redact).then_some(m),
        audit: (action == RuleAction::Audit).then_some(m),
        any: None,
        replacement,
    }
}

/// The flag for a reflection.
pub(crate) fn flag(action: RuleAction) -> Flag {
    Flag::new(
        FlagKind::PromptReflection,
        action,
        "The response contained a reflection of the original prompt",
    )
}

#[cfg(test)]
mod tests {
    use super::between;

    #[test]
    fn between_first_and_last_delimiter() {
        assert_eq!(
            between("You are ||the secret|| bot", "||"),
            Some("the secret")
        );
        assert_eq!(between("a || b || c || d", "||"), Some("b || c"));
        assert_eq!(between("only || one", "||"), None);
        assert_eq!(between("empty |||| here", "||"), None);
        assert_eq!(between("|||", "||"), None);
    }
}
