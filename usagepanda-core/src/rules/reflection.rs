//! `POLICY_PROMPT_REFLECTION`: the part of the prompt between the first and the last
//! `PROMPT_REFLECTION_DELIMETER` (of a completion prompt, or of each system or developer
//! message) must not appear in the response. Matching is literal and ASCII case-insensitive.

use aho_corasick::{AhoCorasick, MatchKind};

use super::{RequestInput, Rewrite};
use crate::config::RuleAction;
use crate::endpoint::Endpoint;
use crate::openai::text::TextRef;
use crate::verdict::{Flag, FlagKind};

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

/// A compiled matcher for the protected parts.
#[derive(Debug, Clone)]
pub(crate) struct Reflector {
    matcher: AhoCorasick,
    longest_chars: usize,
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
        let longest_chars = secrets.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        Some(Reflector {
            matcher,
            longest_chars,
        })
    }

    /// The length in characters of the longest protected part.
    pub(crate) fn longest_chars(&self) -> usize {
        self.longest_chars
    }

    /// Whether the text contains a protected part.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }

    /// The text with every protected part replaced, or `None` when there was none.
    pub(crate) fn redact(&self, text: &str, replacement: &str) -> Option<String> {
        if !self.matcher.is_match(text) {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        self.matcher
            .replace_all_with(text, &mut out, |_, _, dst| {
                dst.push_str(replacement);
                true
            });
        Some(out)
    }
}

/// The flag for a reflection, when one was found.
pub(crate) fn flag(action: RuleAction) -> Flag {
    Flag::new(
        FlagKind::PromptReflection,
        action,
        "The response contained a reflection of the original prompt",
    )
}

/// Checks one response text; returns whether it reflected and records a rewrite on redact.
pub(crate) fn check_text(
    reflector: &Reflector,
    action: RuleAction,
    redaction: &str,
    text: &TextRef<'_>,
    rewrites: &mut Vec<Rewrite>,
) -> bool {
    if action == RuleAction::Redact {
        match reflector.redact(text.text, redaction) {
            Some(new) => {
                rewrites.push((text.slot.clone(), new));
                true
            }
            None => false,
        }
    } else {
        reflector.is_match(text.text)
    }
}

#[cfg(test)]
mod tests {
    use super::between;

    #[test]
    fn between_first_and_last_delimiter() {
        assert_eq!(between("You are ||the secret|| bot", "||"), Some("the secret"));
        assert_eq!(between("a || b || c || d", "||"), Some("b || c"));
        assert_eq!(between("only || one", "||"), None);
        assert_eq!(between("empty |||| here", "||"), None);
        assert_eq!(between("|||", "||"), None);
    }
}
