//! `POLICY_ENFORCE_USER_IDS`: refuse requests without a non-empty string `user`.

use serde_json::Value;

use super::RequestInput;
use crate::config::RuleAction;
use crate::verdict::{Flag, FlagKind};

pub(crate) fn check(input: &RequestInput<'_, '_>) -> Option<Flag> {
    if !input.settings.enforce_user_ids || !input.endpoint.takes_user_id() {
        return None;
    }
    let has_user = matches!(&input.view.user, Some(Value::String(s)) if !s.trim().is_empty());
    (!has_user).then(|| {
        Flag::new(
            FlagKind::EnforceUserIds,
            RuleAction::Block,
            "Config set to block requests without user field",
        )
    })
}
