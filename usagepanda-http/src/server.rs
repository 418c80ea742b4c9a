//! The proxy: one request in, the policy through the driver, one answer and one stats record
//! out; and the HTTP/1.1 server around it, with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use usagepanda_core::{ClientRequest, Context, Outcome, Policy, StatsRecord, reply};

use crate::config_source::ConfigSource;
use crate::driver::{Answer, Driver};
use crate::route;
use crate::stats::{ApiSink, StatsSink};
use crate::upstream::{Body, BoxError, ReadError, full_body, read_limited};

/// Settings of the proxy that are not per-request policy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Largest accepted request body (413 above it).
    pub max_body_bytes: usize,
    /// Upload stats to the Usage Panda API without waiting (remote mode).
    pub async_stats_upload: bool,
}

impl ProxyOptions {
    /// The options a config asks for.
    pub fn from_config(config: &usagepanda_core::Config) -> ProxyOptions {
        ProxyOptions {
            max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
            async_stats_upload: config.async_stats_upload,
        }
    }
}

/// The proxy. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    source: ConfigSource,
    driver: Driver,
    sink: Arc<dyn StatsSink>,
    api: Option<ApiSink>,
    options: ProxyOptions,
    tracker: TaskTracker,
    counter: AtomicU64,
    /// The local policy's CORS headers, parsed once.
    cors: HeaderMap,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("source", &self.inner.source)
            .field("driver", &self.inner.driver)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy taking each request's policy from `source`, calling upstreams through `driver`
    /// and recording stats in `sink`. In remote mode stats are also uploaded to the Usage Panda
    /// API with the request's key.
    pub fn new(
        source: ConfigSource,
        driver: Driver,
        sink: Arc<dyn StatsSink>,
        options: ProxyOptions,
    ) -> Proxy {
        let api = if source.is_remote() {
            ApiSink::new(
                driver.upstream.clone(),
                &source.local_policy().config().usage_panda_api,
                None,
                options.async_stats_upload,
            )
            .ok()
        } else {
            None
        };
        let cors = cors_headers(source.local_policy());
        Proxy {
            inner: Arc::new(Inner {
                cors,
                source,
                driver,
                sink,
                api,
                options,
                tracker: TaskTracker::new(),
                counter: AtomicU64::new(0),
            }),
        }
    }

    /// Answers one request with any body type; see [`Proxy::handle`].
    pub fn handle_any<B>(
        &self,
        request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let proxy = self.clone();
        let request = request.map(|b| b.map_err(Into::into).boxed());
        async move { proxy.handle(request, peer).await }
    }

    /// Answers one request. Never fails: every problem is an OpenAI-shaped error answer, and
    /// every request that reaches the policy yields exactly one stats record.
    pub async fn handle(&self, request: Request<Body>, peer: Option<SocketAddr>) -> Response<Body> {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let local = self.inner.source.local_policy().clone();
        if parts.method == Method::OPTIONS {
            let mut response = Response::new(full_body(Bytes::from_static(b"{}")));
            self.add_cors(response.headers_mut(), &local);
            set_content_type(response.headers_mut(), reply::JSON);
            return response;
        }
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let mut client = ClientRequest {
            method: parts.method,
            path,
            headers: parts.headers,
            body: Bytes::new(),
        };
        let context = self.context(peer, true);
        let loaded = match Box::pin(self.inner.source.policy_for(&client.headers)).await {
            Ok(loaded) => loaded,
            Err(e) => {
                let outcome = local.refuse(&client, context, e.status(), &e.to_string(), e.kind());
                return self.complete(&local, outcome, None, started, None).await;
            }
        };
        let policy = loaded.policy;
        let context = Context {
            config_cached: loaded.cached,
            ..context
        };
        match Box::pin(read_body(
            body,
            &client.headers,
            self.inner.options.max_body_bytes,
        ))
        .await
        {
            Ok(bytes) => client.body = bytes,
            Err((status, message)) => {
                let kind = if status == 413 {
                    "invalid_request_error"
                } else {
                    "client_error"
                };
                let outcome = policy.refuse(&client, context, status, &message, kind);
                return self
                    .complete(&policy, outcome, None, started, loaded.key)
                    .await;
            }
        }
        // Boxed: the driver's future is most of an exchange's state, and the task future that
        // `tokio::spawn` copies stays small.
        match Box::pin(self.inner.driver.run(&policy, client, context)).await {
            Answer::Complete {
                outcome,
                upstream_headers,
            } => {
                self.complete(&policy, outcome, upstream_headers, started, loaded.key)
                    .await
            }
            Answer::Stream(stream) => {
                let mut response = Response::new(full_body(Bytes::new()));
                copy_upstream_headers(response.headers_mut(), stream.headers());
                self.add_cors(response.headers_mut(), &policy);
                let this = self.clone();
                let key = loaded.key;
                let on_finish = Box::new(move |stats: StatsRecord| {
                    let tracker = this.inner.tracker.clone();
                    tracker.spawn(async move { this.record(stats, key).await });
                });
                *response.body_mut() = stream.into_body(started, on_finish).boxed();
                response
            }
        }
    }

    fn context(&self, peer: Option<SocketAddr>, cached: bool) -> Context {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        Context {
            now_unix_secs: now.as_secs(),
            exchange_id: format!("usagepanda-{:x}{:06x}", now.as_micros(), n & 0xff_ffff),
            ip_address: peer.map(|p| p.ip().to_string()),
            config_cached: cached,
        }
    }

    async fn complete(
        &self,
        policy: &Policy,
        mut outcome: Outcome,
        upstream_headers: Option<HeaderMap>,
        started: Instant,
        key: Option<HeaderValue>,
    ) -> Response<Body> {
        let mut response = Response::new(full_body(outcome.body.clone()));
        *response.status_mut() =
            StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::BAD_GATEWAY);
        if let (None, Some(upstream)) = (outcome.content_type, &upstream_headers) {
            copy_upstream_headers(response.headers_mut(), upstream);
        }
        if let Some(content_type) = outcome.content_type {
            set_content_type(response.headers_mut(), content_type);
        }
        self.add_cors(response.headers_mut(), policy);
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        outcome.stats.metadata.latency = Some(latency);
        outcome.stats.metadata.time_to_first_byte = Some(latency);
        let stats = outcome.stats;
        // Only an upload the configuration says to wait for holds the answer; anything else
        // is recorded by a tracked task once the answer is on its way, unless
        // `MAX_PENDING_RECORDS` are already waiting (a stalled stdout reader, a slow upload):
        // then the answer waits too, and the proxy slows down instead of piling them up.
        let holds = !self.inner.options.async_stats_upload
            && (self.inner.api.is_some() || self.inner.sink.holds_answer());
        if !holds && self.inner.tracker.len() < MAX_PENDING_RECORDS {
            let this = self.clone();
            self.inner
                .tracker
                .spawn(async move { this.record(stats, key).await });
        } else {
            // Boxed: an upload's future is large and rarely needed inline.
            Box::pin(self.record(stats, key)).await;
        }
        response
    }

    async fn record(&self, stats: StatsRecord, key: Option<HeaderValue>) {
        match (&self.inner.api, key) {
            (Some(api), Some(key)) => {
                self.inner.sink.record(stats.clone()).await;
                api.send(key, stats).await;
            }
            _ => self.inner.sink.record(stats).await,
        }
    }

    /// Waits for every pending stats record and upload.
    pub async fn flush(&self) {
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        self.inner.tracker.reopen();
        if let Some(api) = &self.inner.api {
            api.flush().await;
        }
        self.inner.sink.flush().await;
    }
}

/// Reads the body up to `limit` bytes: 413 when it is larger (without reading it all when the
/// client announced its length), 400 when it cannot be read.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, (u16, String)> {
    let too_large = || {
        (
            413,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match read_limited(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge) => Err(too_large()),
        Err(ReadError::Broken(_)) => Err((
            400,
            "the request body could not be read (client disconnected?)".to_owned(),
        )),
    }
}

fn cors_headers(policy: &Policy) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in &policy.config().cors_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            out.insert(name, value);
        }
    }
    out
}

impl Proxy {
    /// Adds the CORS headers of the request's policy (parsed once for a local config).
    fn add_cors(&self, headers: &mut HeaderMap, policy: &Policy) {
        let remote;
        let cors = if self.inner.source.is_remote() {
            remote = cors_headers(policy);
            &remote
        } else {
            &self.inner.cors
        };
        for (name, value) in cors {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

fn set_content_type(headers: &mut HeaderMap, content_type: &'static str) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
}

fn copy_upstream_headers(into: &mut HeaderMap, from: &HeaderMap) {
    for (name, value) in from {
        if route::returnable(name) {
            into.append(name.clone(), value.clone());
        }
    }
}

/// Stats records waiting to be handed to the sink, at most, before answers wait for theirs.
const MAX_PENDING_RECORDS: usize = 4096;

/// Serves the proxy on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish (up to `grace`) and flushes stats.
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let proxy = proxy.clone();
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let proxy = proxy.clone();
                    async move {
                        // The exchange runs in its own task: a client that goes away cannot
                        // cancel it halfway, so its stats record is always written.
                        let task = tokio::spawn(proxy.handle_any(request, Some(peer)));
                        Ok::<_, Infallible>(task.await.unwrap_or_else(|_| internal_error()))
                    }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
    // Bounded like the requests: a stats reader that stopped reading must not keep the
    // process from exiting.
    if tokio::time::timeout(grace, proxy.flush()).await.is_err() {
        tracing::error!("stats records were not all written within the grace period");
    }
    Ok(())
}

pub(crate) fn internal_error() -> Response<Body> {
    let mut response = Response::new(full_body(reply::error_body(
        "internal error",
        "server_error",
        None,
        None,
    )));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    set_content_type(response.headers_mut(), reply::JSON);
    response
}
