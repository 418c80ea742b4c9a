//! The upstream LLM API: the [`Upstream`] trait and its production implementation.

mod hyper_client;

use std::error::Error as StdError;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

pub use self::hyper_client::{HyperUpstream, HyperUpstreamOptions};

/// A boxed error.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A response body that may still be streaming.
pub type Body = BoxBody<Bytes, BoxError>;

/// One call to the upstream.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// The method.
    pub method: Method,
    /// The full URL.
    pub uri: Uri,
    /// The headers to send (the key included).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// The upstream's answer: its head, and a body that may still be arriving.
#[derive(Debug)]
pub struct UpstreamResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Body,
}

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made.
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    /// The upstream did not answer in time.
    #[error("the upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The connection broke or the answer was malformed.
    #[error("the upstream call failed: {0}")]
    Broken(String),
}

impl UpstreamError {
    /// The core's view of this failure.
    pub fn to_failure(&self) -> usagepanda_core::UpstreamFailure {
        use usagepanda_core::UpstreamFailure as F;
        match self {
            UpstreamError::Connect(_) => F::Connect("connection refused or unreachable".to_owned()),
            UpstreamError::Timeout(d) => F::Timeout(format!("no answer within {} s", d.as_secs_f64())),
            UpstreamError::Broken(why) => F::Broken(why.clone()),
        }
    }

    /// Whether a retry may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, UpstreamError::Connect(_) | UpstreamError::Timeout(_) | UpstreamError::Broken(_))
    }
}

/// Sends requests to the LLM API. Small and object-safe, so a service can put its own client
/// (or a test double, or another tower service) behind the policy.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// Sends one request and returns the answer's head with a streaming body.
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError>;

    /// Calls the moderation endpoint. The default sends it like any other request.
    async fn moderate(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        self.send(request).await
    }
}

/// Reads a whole body, up to `limit` bytes.
pub async fn collect_body(body: Body, limit: usize) -> Result<Bytes, UpstreamError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(UpstreamError::Broken(format!("reading the answer failed: {e}"))),
    }
}

/// A body holding these bytes.
pub fn full_body(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed()
}
