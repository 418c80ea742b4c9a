//! The production upstream: hyper's pooled HTTP/1.1 client over rustls, with `TCP_NODELAY`,
//! keep-alive, a connect timeout and a timeout for the response head.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{BoxError, Upstream, UpstreamError, UpstreamRequest, UpstreamResponse};

/// Settings of [`HyperUpstream`].
#[derive(Debug, Clone)]
pub struct HyperUpstreamOptions {
    /// Time allowed to open a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed until the response head arrives.
    pub timeout: Duration,
    /// Idle keep-alive connections kept per host.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

impl Default for HyperUpstreamOptions {
    fn default() -> Self {
        HyperUpstreamOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            max_idle_per_host: 256,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A pooled keep-alive HTTP/1.1 client for `http://` and `https://` upstreams.
#[derive(Debug, Clone)]
pub struct HyperUpstream {
    client: Client<HttpsConnector, Full<bytes::Bytes>>,
    timeout: Duration,
}

impl HyperUpstream {
    /// Builds the client. TLS uses rustls with the Mozilla root certificates.
    pub fn new(options: &HyperUpstreamOptions) -> HyperUpstream {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        // rustls is built with the ring provider only, so the builder's default provider is
        // ring; the roots are the Mozilla set compiled in (no system store needed).
        let connector = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(options.max_idle_per_host)
            .pool_idle_timeout(options.idle_timeout)
            .build(connector);
        HyperUpstream {
            client,
            timeout: options.timeout,
        }
    }
}

#[async_trait]
impl Upstream for HyperUpstream {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(request.uri);
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers;
        }
        let req = builder
            .body(Full::new(request.body))
            .map_err(|e| UpstreamError::Broken(format!("cannot build the request: {e}")))?;
        let response = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => return Err(UpstreamError::Timeout(self.timeout)),
            Ok(Err(e)) if e.is_connect() => return Err(UpstreamError::Connect(describe(&e))),
            Ok(Err(e)) => return Err(UpstreamError::Broken(describe(&e))),
            Ok(Ok(response)) => response,
        };
        let (parts, body) = response.into_parts();
        Ok(UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            body: body.map_err(|e| -> BoxError { Box::new(e) }).boxed(),
        })
    }
}

/// The error and its causes, without URLs (which may carry query secrets).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
