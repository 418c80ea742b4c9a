//! The stats record: exactly one per exchange, in the original proxy's final-log-line shape.
//!
//! It never holds the `Authorization` header, an API key or any other header value except the
//! ones listed in [`Metadata`].

use serde::Serialize;
use serde_json::value::RawValue;

use crate::verdict::{Decision, Flag};

/// One exchange, as logged and uploaded.
#[derive(Debug, Clone, Serialize)]
pub struct StatsRecord {
    /// The normalised endpoint path, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    /// Whether the config came from a cache (always true for a local config, as in the
    /// original).
    pub config_cached: bool,
    /// Every flag raised.
    pub flags: Vec<Flag>,
    /// Whether the exchange ended in an error: a policy block, a bad request or a failed
    /// upstream call.
    pub error: bool,
    /// What went wrong when `error` is set, in words (no secrets, no matched banned text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The decision.
    pub decision: Decision,
    /// The HTTP status the client got.
    pub status: u16,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// Routing the adapter did (e.g. `{"azure": {"resource": ..., "deployment": ...}}`).
    pub autorouted: serde_json::Map<String, serde_json::Value>,
    /// Who asked and how long it took.
    pub metadata: Metadata,
    /// The request, trimmed per `POLICY_LOG_REQUEST`.
    pub request: Option<Box<RawValue>>,
    /// The response, trimmed per `POLICY_LOG_RESPONSE`.
    pub response: Option<Box<RawValue>>,
    /// Token usage, when the upstream reported it (for streams: from the final chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Box<RawValue>>,
}

/// Who asked, and timings. Filled by the core from the request and by the adapter for what only
/// it knows (the peer address, the clock).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metadata {
    /// `PROXY_ID` from the configuration.
    pub proxy_id: serde_json::Value,
    /// The client's address.
    pub ip_address: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The client's `OpenAI-Organization`.
    pub organization: Option<String>,
    /// `x-usagepanda-trace-id`.
    pub trace_id: Option<String>,
    /// Milliseconds from the request to the end of the answer.
    pub latency: Option<f64>,
    /// Milliseconds from the request to the first byte of the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_byte: Option<f64>,
    /// Upstream attempts made (1 + retries), when the upstream was called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_attempts: Option<u32>,
}

impl StatsRecord {
    /// The record as one JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail; keep a valid line regardless.
        serde_json::to_string(self).unwrap_or_else(|e| {
            serde_json::json!({ "endpoint": self.endpoint, "error": true,
                "error_message": format!("stats record not serialisable: {e}") })
            .to_string()
        })
    }
}
