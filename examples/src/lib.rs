//! Runnable examples of usagepanda (see `examples/` in this crate):
//!
//! - `proxy`: the bundled proxy (`cargo run -p usagepanda-examples --example proxy -- policy.toml`)
//! - `embed_core`: checking requests and responses with the core alone, no runtime
//! - `tower_layer`: a policy in front of a service's own LLM calls, as a `tower::Layer`
