//! The small value types of the configuration, each with strict parsing.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wordlist::ListName;

/// What a matching rule does. Ordered by strictness: `Audit < Redact < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Flag only.
    Audit,
    /// Replace the match with the redaction string and go on.
    Redact,
    /// Refuse the exchange.
    Block,
}

impl RuleAction {
    /// Parses `audit`, `redact` or `block`, case-insensitively.
    pub fn parse(value: &str) -> Option<RuleAction> {
        match value.trim().to_ascii_lowercase().as_str() {
            "audit" => Some(RuleAction::Audit),
            "redact" => Some(RuleAction::Redact),
            "block" => Some(RuleAction::Block),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Audit => "audit",
            RuleAction::Redact => "redact",
            RuleAction::Block => "block",
        }
    }
}

impl<'de> Deserialize<'de> for RuleAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        RuleAction::parse(&s).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown action `{s}` (expected audit, redact or block)"
            ))
        })
    }
}

/// The prompt-reflection setting: off, or an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReflectionAction {
    /// Off.
    #[default]
    None,
    /// On, with this action.
    On(RuleAction),
}

impl ReflectionAction {
    /// Parses `none`, `audit`, `redact` or `block` (also `false`/`off` for none).
    pub fn parse(value: &str) -> Option<ReflectionAction> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" | "off" | "false" | "" => Some(ReflectionAction::None),
            other => RuleAction::parse(other).map(ReflectionAction::On),
        }
    }

    /// The action when on.
    pub fn action(self) -> Option<RuleAction> {
        match self {
            ReflectionAction::None => None,
            ReflectionAction::On(action) => Some(action),
        }
    }
}

impl Serialize for ReflectionAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.action().map_or("none", RuleAction::as_str))
    }
}

impl<'de> Deserialize<'de> for ReflectionAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ReflectionAction::parse(&s).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown value `{s}` (expected none, audit, redact or block)"
            ))
        })
    }
}

/// What the `x-usagepanda-*` request headers may do to the configured policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderOverrides {
    /// A header may only make the policy stricter (the default).
    #[default]
    Tighten,
    /// A header replaces the configured value (the original proxy's behaviour).
    Any,
    /// Headers are ignored.
    Off,
}

/// Which kind of request an auto-reply rule answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoReplyKind {
    /// `/v1/chat/completions`: compared with the last message when it is the user's.
    Chat,
    /// `/v1/completions`: compared with the prompt.
    Completion,
}

/// One known prompt and its canned answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoReplyRule {
    /// `chat` or `completion`.
    #[serde(rename = "type")]
    pub kind: AutoReplyKind,
    /// The prompt, compared exactly.
    pub request: String,
    /// The answer.
    pub response: String,
}

/// Which word lists apply and what each does, e.g. `profanity:block,dan:redact,custom:audit`.
/// In TOML it may also be a table: `{ profanity = "block", dan = "redact" }`.
///
/// Kept inline (at most one entry per list), so the per-exchange settings copy allocates
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordlistSpec {
    /// The first `len` entries are the lists that are on, in [`ListName::ALL`] order; the rest
    /// hold a fixed filler so that equality compares only what matters.
    slots: [(ListName, RuleAction); 4],
    len: u8,
}

impl Default for WordlistSpec {
    fn default() -> WordlistSpec {
        WordlistSpec {
            slots: [(ListName::Profanity, RuleAction::Audit); 4],
            len: 0,
        }
    }
}

/// A wordlist specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordlistSpecError {
    /// An item is not `name:action`.
    #[error("`{0}` is not of the form name:action")]
    Form(String),
    /// The list name is not one of ours.
    #[error("unknown wordlist `{0}` (expected profanity, adult, dan or custom)")]
    List(String),
    /// The action is not one of ours.
    #[error("unknown action `{0}` (expected audit, redact or block)")]
    Action(String),
}

impl WordlistSpec {
    /// Parses `name:action` items separated by commas (white space around items is allowed;
    /// an empty string means no list). A list named twice keeps the stricter action.
    pub fn parse(value: &str) -> Result<WordlistSpec, WordlistSpecError> {
        let mut spec = WordlistSpec::default();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, action) = item
                .split_once(':')
                .ok_or_else(|| WordlistSpecError::Form(item.to_owned()))?;
            let list = ListName::parse(name.trim())
                .ok_or_else(|| WordlistSpecError::List(name.trim().to_owned()))?;
            let action = RuleAction::parse(action)
                .ok_or_else(|| WordlistSpecError::Action(action.trim().to_owned()))?;
            spec.set(list, action);
        }
        Ok(spec)
    }

    /// Sets a list's action, keeping the stricter one when the list is already present.
    pub fn set(&mut self, list: ListName, action: RuleAction) {
        let len = usize::from(self.len);
        match self.slots[..len].iter_mut().find(|(l, _)| *l == list) {
            Some((_, existing)) => *existing = (*existing).max(action),
            None => {
                // Four lists, four slots: a list not yet present always has room.
                if let Some(slot) = self.slots.get_mut(len) {
                    *slot = (list, action);
                    self.len += 1;
                    self.slots[..=len].sort_by_key(|(l, _)| *l);
                }
            }
        }
    }

    /// The action for a list, if it is on.
    pub fn action(&self, list: ListName) -> Option<RuleAction> {
        self.entries()
            .iter()
            .find(|(l, _)| *l == list)
            .map(|(_, a)| *a)
    }

    /// The lists that are on, with their actions, in [`ListName::ALL`] order.
    pub fn entries(&self) -> &[(ListName, RuleAction)] {
        &self.slots[..usize::from(self.len).min(4)]
    }

    /// Whether no list is on.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Per list, the stricter of the two specs (used by `header_overrides = "tighten"`).
    pub fn tightened_by(&self, other: &WordlistSpec) -> WordlistSpec {
        let mut out = *self;
        for (list, action) in other.entries() {
            out.set(*list, *action);
        }
        out
    }
}

impl fmt::Display for WordlistSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (list, action)) in self.entries().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", list, action.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for WordlistSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WordlistSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = WordlistSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a string like `profanity:block,dan:redact` or a table of list = action",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WordlistSpec, E> {
                WordlistSpec::parse(v).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WordlistSpec, A::Error> {
                let mut spec = WordlistSpec::default();
                while let Some((name, action)) = map.next_entry::<String, String>()? {
                    let list = ListName::parse(&name)
                        .ok_or_else(|| de::Error::custom(WordlistSpecError::List(name.clone())))?;
                    let action = RuleAction::parse(&action)
                        .ok_or_else(|| de::Error::custom(WordlistSpecError::Action(action)))?;
                    spec.set(list, action);
                }
                Ok(spec)
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}
