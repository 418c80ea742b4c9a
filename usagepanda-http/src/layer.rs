//! A [`tower::Layer`] that puts a policy in front of a service's own LLM calls.
//!
//! The wrapped service plays the upstream: it receives the (possibly rewritten) request, with
//! the full upstream URL, and its answer goes through the response policies. Requests and
//! answers take the same path as in the proxy (the same driver loop), so a blocked request
//! never reaches the wrapped service and every exchange yields one stats record.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use usagepanda_core::Policy;

use crate::config_source::ConfigSource;
use crate::driver::Driver;
use crate::retry::RetryPolicy;
use crate::server::{Proxy, ProxyOptions};
use crate::stats::StatsSink;
use crate::upstream::{Body, BoxError, Upstream, UpstreamError, UpstreamRequest, UpstreamResponse};

/// Wraps services with a policy.
#[derive(Clone)]
pub struct PolicyLayer {
    policy: Policy,
    sink: Arc<dyn StatsSink>,
}

impl std::fmt::Debug for PolicyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyLayer").finish_non_exhaustive()
    }
}

impl PolicyLayer {
    /// A layer applying `policy` and recording stats in `sink`.
    pub fn new(policy: Policy, sink: Arc<dyn StatsSink>) -> PolicyLayer {
        PolicyLayer { policy, sink }
    }
}

impl<S, R> Layer<S> for PolicyLayer
where
    S: Service<Request<Full<Bytes>>, Response = Response<R>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    R: HttpBody<Data = Bytes> + Send + Sync + 'static,
    R::Error: Into<BoxError>,
{
    type Service = PolicyService;

    fn layer(&self, inner: S) -> PolicyService {
        let config = self.policy.config();
        let driver = Driver {
            upstream: Arc::new(ServiceUpstream { inner }),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(config.upstream_timeout_secs),
            max_response_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
        };
        let proxy = Proxy::new(
            ConfigSource::local(self.policy.clone()),
            driver,
            self.sink.clone(),
            ProxyOptions::from_config(config),
        );
        PolicyService { proxy }
    }
}

/// A service with a policy in front; see [`PolicyLayer`].
#[derive(Debug, Clone)]
pub struct PolicyService {
    proxy: Proxy,
}

impl<B> Service<Request<B>> for PolicyService
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Run the exchange in its own task, so a caller that drops this future cannot cancel it
        // half way and lose its stats record.
        let task = tokio::spawn(self.proxy.handle_any(request, None));
        Box::pin(async move {
            Ok(task
                .await
                .unwrap_or_else(|_| crate::server::internal_error()))
        })
    }
}

/// A tower service used as the upstream.
struct ServiceUpstream<S> {
    inner: S,
}

#[async_trait]
impl<S, R> Upstream for ServiceUpstream<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<R>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    R: HttpBody<Data = Bytes> + Send + Sync + 'static,
    R::Error: Into<BoxError>,
{
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        let mut builder = Request::builder().method(request.method).uri(request.uri);
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers;
        }
        let http_request = builder
            .body(Full::new(request.body))
            .map_err(|e| UpstreamError::Broken(e.to_string()))?;
        let response = self
            .inner
            .clone()
            .oneshot(http_request)
            .await
            .map_err(|e| UpstreamError::Broken(e.into().to_string()))?;
        let (parts, body) = response.into_parts();
        Ok(UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            body: body.map_err(Into::into).boxed(),
        })
    }
}
