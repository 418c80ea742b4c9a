#![doc = include_str!("../../README.md")]
#![deny(missing_docs)]

pub mod config;
pub mod endpoint;
pub mod exchange;
mod filter;
pub mod offline;
mod openai;
pub mod overrides;
mod policy;
pub mod reply;
mod rules;
pub mod stats;
pub mod stream;
pub mod verdict;
pub mod wordlist;

pub use config::{Config, ConfigError, RuleAction};
pub use endpoint::Endpoint;
pub use exchange::{
    ClientRequest, Context, Outcome, PendingModeration, PendingUpstream, Step, UpstreamFailure,
};
pub use openai::ModerationVerdict;
pub use overrides::{OverrideError, Settings};
pub use policy::Policy;
pub use rules::moderation::ModerationResult;
pub use stats::{Metadata, StatsRecord};
pub use stream::{StreamEnd, StreamExchange};
pub use verdict::{Decision, Flag, FlagKind, Reply, Verdict};
