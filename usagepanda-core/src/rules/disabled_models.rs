//! `POLICY_DISABLED_MODELS`: refuse a listed model, or a listed image size (`1024x1024`).

use serde_json::Value;

use super::RequestInput;
use crate::config::RuleAction;
use crate::verdict::{Flag, FlagKind};

pub(crate) fn check(input: &RequestInput<'_, '_>) -> Option<Flag> {
    let disabled = &input.config.policy_disabled_models;
    if disabled.is_empty() {
        return None;
    }
    if let Some(model) = input.view.model.as_deref()
        && disabled.iter().any(|m| m == model)
    {
        return Some(Flag::new(
            FlagKind::DisabledModels,
            RuleAction::Block,
            format!("Config set to block usage of model: {model}"),
        ));
    }
    if let Some(Value::String(size)) = &input.view.size
        && disabled.iter().any(|m| m == size)
    {
        return Some(Flag::new(
            FlagKind::DisabledModels,
            RuleAction::Block,
            format!("Config set to block usage of image generation size: {size}"),
        ));
    }
    None
}
