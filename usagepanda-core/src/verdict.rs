//! Decisions, flags and verdicts.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::RuleAction;

/// What happens to an exchange. Data-free and `Copy`; the wire names are stable snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forward (possibly rewritten) and return the answer (possibly rewritten).
    Allow,
    /// Refuse with an OpenAI-shaped 422 error.
    Block,
    /// Answer at once with a canned completion; the upstream is not called.
    AutoReply,
}

impl Decision {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Block => "block",
            Decision::AutoReply => "auto_reply",
        }
    }
}

/// Which policy raised a flag. The wire names are the original proxy's flag types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FlagKind {
    /// Auto-reply answered the request.
    #[serde(rename = "policy_autoreply")]
    AutoReply,
    /// `max_tokens` missing or over the limit.
    #[serde(rename = "policy_max_tokens")]
    MaxTokens,
    /// The prompt is too long.
    #[serde(rename = "policy_max_prompt_chars")]
    MaxPromptChars,
    /// No `user` field.
    #[serde(rename = "policy_enforce_user_ids")]
    EnforceUserIds,
    /// A disabled model or image size.
    #[serde(rename = "policy_disabled_models")]
    DisabledModels,
    /// The moderation endpoint flagged the request (or could not be asked).
    #[serde(rename = "policy_auto_moderate")]
    AutoModerate,
    /// A word list matched.
    #[serde(rename = "policy_wordlists")]
    Wordlists,
    /// The response reflected the delimited part of the prompt.
    #[serde(rename = "policy_prompt_reflection")]
    PromptReflection,
}

/// One policy finding: its kind, the original's human description, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// The policy.
    #[serde(rename = "type")]
    pub kind: FlagKind,
    /// The description clients and log parsers match on. Never contains matched banned text.
    pub description: String,
    /// What the policy did: audit (flag only), redact or block.
    pub action: RuleAction,
}

impl Flag {
    pub(crate) fn new(kind: FlagKind, action: RuleAction, description: impl Into<String>) -> Flag {
        Flag {
            kind,
            description: description.into(),
            action,
        }
    }

    /// Whether this flag refuses the exchange.
    pub fn blocks(&self) -> bool {
        self.action == RuleAction::Block
    }
}

/// The answer a client gets when the policy answers for the upstream (a block, an error or an
/// auto-reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

/// The result of checking one side of an exchange. Audit = allow + flag; redact = allow +
/// rewritten body + flag; any block wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub(crate) decision: Decision,
    pub(crate) flags: Vec<Flag>,
    pub(crate) rewritten: Option<Bytes>,
    pub(crate) reply: Option<Reply>,
}

impl Verdict {
    /// The decision.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// Every flag raised, in rule order.
    pub fn flags(&self) -> &[Flag] {
        &self.flags
    }

    /// The rewritten body, when a rule changed it (`None`: forward the original bytes).
    pub fn rewritten(&self) -> Option<&Bytes> {
        self.rewritten.as_ref()
    }

    /// The answer the policy gives in place of the upstream (block or auto-reply), if any.
    pub fn reply(&self) -> Option<&Reply> {
        self.reply.as_ref()
    }
}
