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
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

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
            UpstreamError::Timeout(d) => {
                F::Timeout(format!("no answer within {} s", d.as_secs_f64()))
            }
            UpstreamError::Broken(why) => F::Broken(why.clone()),
        }
    }

    /// Whether a retry may help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect(_) | UpstreamError::Timeout(_) | UpstreamError::Broken(_)
        )
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

/// Why a body could not be read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// It is larger than the limit.
    TooLarge,
    /// Reading it failed.
    Broken(String),
}

/// Reads a whole body, up to `limit` bytes. A body of one chunk is not copied.
pub async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, ReadError> {
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let have = first.as_ref().map_or(0, Bytes::len) + rest.len();
        if have + data.len() > limit {
            return Err(ReadError::TooLarge);
        }
        match &first {
            None => first = Some(data),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(rest)
    })
}

/// Reads a whole upstream answer, up to `limit` bytes.
pub async fn collect_body(body: Body, limit: usize) -> Result<Bytes, UpstreamError> {
    read_limited(body, limit).await.map_err(|e| match e {
        ReadError::TooLarge => UpstreamError::Broken(format!(
            "the answer is larger than the limit of {limit} bytes"
        )),
        ReadError::Broken(why) => {
            UpstreamError::Broken(format!("reading the answer failed: {why}"))
        }
    })
}

/// A body holding these bytes.
pub fn full_body(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed()
}
