//! `POLICY_PROMPT_REFLECTION`: the part of the prompt between the first and the last
//! `PROMPT_REFLECTION_DELIMETER` (of a completion prompt, or of each system or developer
//! message) must not appear in the response. Matching is literal and ASCII case-insensitive.

use super::RequestInput;
use crate::config::RuleAction;
use crate::endpoint::Endpoint;
use crate::filter::{Matcher, Stage};
use crate::openai::text::TextRef;
use crate::verdict::{Flag, FlagKind};
use crate::wordlist::{Hit, ListSet};

/// Collects the protected parts while the request's texts are visited (so that a request is
/// walked once for word lists and reflection together).
pub(crate) struct Secrets<'i> {
    endpoint: &'i Endpoint,
    delimiter: &'i str,
    found: Vec<String>,
}

impl<'i> Secrets<'i> {
    /// A collector, when reflection is on for this request.
    pub(crate) fn new(input: &RequestInput<'i, '_>) -> Option<Secrets<'i>> {
        if input.settings.prompt_reflection.action().is_none() || !input.endpoint.is_generation() {
            return None;
        }
        Some(Secrets {
            endpoint: input.endpoint,
            delimiter: input.config.prompt_reflection_delimeter.as_str(),
            found: Vec::new(),
        })
    }

    /// Looks at one text.
    pub(crate) fn visit(&mut self, t: &TextRef<'_>) {
        let protected = match self.endpoint {
            Endpoint::Completions => t.slot_is_prompt(),
            _ => matches!(t.role, Some("system" | "developer")),
        };
        if protected
            && let Some(secret) = between(t.text, self.delimiter)
            && !self.found.iter().any(|s| s == secret)
        {
            self.found.push(secret.to_owned());
        }
    }

    /// The protected parts, in order of appearance.
    pub(crate) fn into_found(self) -> Vec<String> {
        self.found
    }
}

/// The trimmed text between the first and the last delimiter, when there are two and it is
/// not empty.
fn between<'t>(text: &'t str, delimiter: &str) -> Option<&'t str> {
    let first = memchr::memmem::find(text.as_bytes(), delimiter.as_bytes())?;
    let last = memchr::memmem::rfind(text.as_bytes(), delimiter.as_bytes())?;
    if last < first + delimiter.len() {
        return None;
    }
    let inner = text[first + delimiter.len()..last].trim();
    (!inner.is_empty()).then_some(inner)
}

/// A matcher for the protected parts: leftmost-longest, literal, ASCII case-insensitive,
/// anywhere in the text. Built per exchange, so it compiles nothing: a protected part is
/// found with `memchr` on its first byte and a case-insensitive comparison.
#[derive(Debug, Clone)]
pub(crate) struct Reflector {
    secrets: Vec<Vec<u8>>,
    longest_bytes: usize,
}

impl Reflector {
    pub(crate) fn new(secrets: &[String]) -> Option<Reflector> {
        let secrets: Vec<Vec<u8>> = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if secrets.is_empty() {
            return None;
        }
        let longest_bytes = secrets.iter().map(Vec::len).max().unwrap_or(0);
        Some(Reflector {
            secrets,
            longest_bytes,
        })
    }
}

/// The first case-insensitive occurrence of `needle` in `hay` at or after `from`.
fn find_one(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let last_start = hay.len().checked_sub(needle.len())?;
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut at = from;
    while at <= last_start {
        let p = at + memchr::memchr2(lower, upper, &hay[at..=last_start])?;
        if hay[p..p + needle.len()].eq_ignore_ascii_case(needle) {
            return Some(p);
        }
        at = p + 1;
    }
    None
}

impl Matcher for Reflector {
    fn find(&self, text: &str, from: usize) -> Option<Hit> {
        let hay = text.as_bytes();
        let mut best: Option<(usize, usize)> = None;
        for secret in &self.secrets {
            let limit = best.map_or(hay.len(), |(start, _)| start + secret.len());
            let Some(start) = find_one(&hay[..limit.min(hay.len())], from, secret) else {
                continue;
            };
            let end = start + secret.len();
            best = match best {
                Some((s, e)) if s < start || (s == start && e >= end) => Some((s, e)),
                _ => Some((start, end)),
            };
        }
        best.map(|(start, end)| Hit {
            start,
            end,
            lists: ListSet::EMPTY,
        })
    }

    fn live_from(&self, text: &str, at: usize) -> bool {
        let rest = &text.as_bytes()[at..];
        self.secrets
            .iter()
            .any(|s| s.len() >= rest.len() && s[..rest.len()].eq_ignore_ascii_case(rest))
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

#[cfg(test)]
mod matcher_tests {
    use super::*;

    #[test]
    fn leftmost_longest_case_insensitive() {
        let r = Reflector::new(&[
            "secret plan".to_owned(),
            "secret".to_owned(),
            "plan b".to_owned(),
        ]);
        let Some(r) = r else { unreachable!() };
        let hit = r.find("the SECRET Plan b", 0).map(|h| (h.start, h.end));
        assert_eq!(hit, Some((4, 15)));
        let hit = r.find("the SECRET Plan b", 5).map(|h| (h.start, h.end));
        assert_eq!(hit, Some((11, 17)));
        assert!(r.live_from("about the secr", 10));
        assert!(!r.live_from("about the secx", 10));
        assert_eq!(r.find("naïve secret", 0).map(|h| h.start), Some(7));
    }
}
