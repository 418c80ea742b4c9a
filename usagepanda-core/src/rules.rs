//! One file per policy rule. Each rule is a pure function of the request (or response) view
//! and the exchange's settings, returning the flag it raises (if any) and the texts it
//! rewrites. The exchange runs them all and collects every flag.

pub(crate) mod autoreply;
pub(crate) mod disabled_models;
pub(crate) mod enforce_user_ids;
pub(crate) mod log;
pub(crate) mod max_prompt_chars;
pub(crate) mod max_tokens;
pub(crate) mod moderation;
pub(crate) mod reflection;
pub(crate) mod wordlists;

use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::openai::request::RequestView;
use crate::openai::text::Slot;
use crate::overrides::Settings;

/// What the request rules read.
pub(crate) struct RequestInput<'r, 'b> {
    pub(crate) endpoint: &'r Endpoint,
    pub(crate) view: &'r RequestView<'b>,
    pub(crate) settings: &'r Settings,
    pub(crate) config: &'r Config,
}

/// A text to write back into a body.
pub(crate) type Rewrite = (Slot, String);
