//! Shared harness for the integration tests: the real `usagepanda_http::serve` on a loopback
//! socket, a `wiremock` upstream, a hyper client, and helpers to read stats records.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use usagepanda_core::{Config, Policy, StatsRecord};
use usagepanda_http::stats::FanOut;
use usagepanda_http::{
    ConfigSource, Driver, HyperUpstream, HyperUpstreamOptions, MemorySink, Proxy, ProxyOptions,
    RetryPolicy, StatsSink, serve,
};
use wiremock::MockServer;

/// Upper bound for any single step of a test: nothing may hang.
pub const STEP: Duration = Duration::from_secs(10);

/// Runs a future with the [`STEP`] timeout, failing the test when it takes longer.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP, future).await {
        Ok(out) => out,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// The chat completions path.
pub const CHAT: &str = "/v1/chat/completions";

/// A config for a local proxy in front of `upstream` (`LLM_API_BASE_PATH = {uri}/v1`), with
/// `extra` (SCREAMING_CASE keys, as in the original's `config.js`) on top.
pub fn config(upstream: &str, extra: Value) -> Config {
    let mut object = json!({
        "LOCAL_MODE": true,
        "LLM_API_BASE_PATH": format!("{upstream}/v1"),
    });
    if let (Some(base), Value::Object(extra)) = (object.as_object_mut(), extra) {
        for (k, v) in extra {
            base.insert(k, v);
        }
    }
    Config::from_json(&object.to_string()).expect("test config is valid")
}

/// A driver with short retry delays and the given timeout for a whole upstream answer.
pub fn driver_with_timeout(timeout: Duration) -> Driver {
    let upstream = HyperUpstream::new(&HyperUpstreamOptions {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        ..HyperUpstreamOptions::default()
    });
    Driver {
        upstream: Arc::new(upstream),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        },
        timeout,
        max_response_bytes: 16 * 1024 * 1024,
    }
}

/// The default test driver (5 s per upstream answer).
pub fn driver() -> Driver {
    driver_with_timeout(Duration::from_secs(5))
}

/// A reply as the client saw it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.message` of an OpenAI-shaped error body.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.message in {}", self.text()))
            .to_owned()
    }

    /// `error.type` of an OpenAI-shaped error body.
    pub fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.type in {}", self.text()))
            .to_owned()
    }
}

/// A running proxy.
pub struct Server {
    pub addr: SocketAddr,
    pub sink: MemorySink,
    client: Client<HttpConnector, Full<Bytes>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// A proxy with `config` and the default test driver.
    pub async fn start(config: Config) -> Server {
        Server::start_with(config, driver(), None).await
    }

    /// A proxy with `config`, `driver`, and stats going to the in-memory sink and `extra`.
    pub async fn start_with(
        config: Config,
        driver: Driver,
        extra: Option<Arc<dyn StatsSink>>,
    ) -> Server {
        let memory = MemorySink::new();
        let sink: Arc<dyn StatsSink> = match extra {
            Some(extra) => Arc::new(FanOut(vec![Arc::new(memory.clone()), extra])),
            None => Arc::new(memory.clone()),
        };
        let options = ProxyOptions::from_config(&config);
        let policy = Policy::new(config).expect("test policy compiles");
        let source =
            ConfigSource::from_policy(policy, driver.upstream.clone()).expect("config source");
        let proxy = Proxy::new(source, driver, sink, options);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(serve(listener, proxy, shutdown, Duration::from_secs(5)));
        Server {
            addr,
            sink: memory,
            client: client(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://{addr}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request builder for `path`.
    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder().method(method).uri(self.url(path))
    }

    /// A JSON POST to `path` with an upstream key.
    pub fn post(&self, path: &str) -> http::request::Builder {
        self.request(Method::POST, path)
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-test")
    }

    /// Sends a request and reads the whole reply.
    pub async fn send(&self, builder: http::request::Builder, body: impl Into<Bytes>) -> Reply {
        send_with(&self.client, builder, body.into()).await
    }

    /// POSTs `body` (JSON) to `path` with an upstream key.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send(self.post(path), body.to_string()).await
    }

    /// Waits (up to 2 s) until exactly `n` stats records exist, and returns them.
    pub async fn records(&self, n: usize) -> Vec<StatsRecord> {
        wait_records(&self.sink, n).await
    }

    /// Triggers the shutdown.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Triggers the shutdown and waits for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.trigger_shutdown();
        let task = self.task.take().expect("serve task");
        within("serve to return", task)
            .await
            .expect("serve task panicked")
    }

    /// The `serve` task (taken; for tests that watch it themselves).
    pub fn take_task(&mut self) -> JoinHandle<std::io::Result<()>> {
        self.task.take().expect("serve task")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.trigger_shutdown();
    }
}

/// A plain HTTP/1.1 client that does not reuse connections across tests.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

/// Sends a request with `client` and reads the whole reply (within [`STEP`]).
pub async fn send_with(
    client: &Client<HttpConnector, Full<Bytes>>,
    builder: http::request::Builder,
    body: Bytes,
) -> Reply {
    let request = builder.body(Full::new(body)).expect("valid request");
    within("the proxy's reply", async {
        let response = client.request(request).await.expect("request sent");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("reply body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
    .await
}

/// Waits (up to 2 s) until `sink` holds at least `n` records, then checks that no more
/// arrive shortly after and that there are exactly `n`.
pub async fn wait_records(sink: &MemorySink, n: usize) -> Vec<StatsRecord> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while sink.records().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let records = sink.records();
    assert_eq!(
        records.len(),
        n,
        "expected exactly {n} stats record(s), got: {:#?}",
        records.iter().map(StatsRecord::to_json).collect::<Vec<_>>()
    );
    records
}

/// The record as a JSON value.
pub fn record_json(record: &StatsRecord) -> Value {
    serde_json::from_str(&record.to_json()).expect("stats record is JSON")
}

/// The flag types of a record.
pub fn flag_types(record: &StatsRecord) -> Vec<String> {
    record_json(record)["flags"]
        .as_array()
        .map(|flags| {
            flags
                .iter()
                .filter_map(|f| f["type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A chat request body.
pub fn chat_request(content: &str) -> Value {
    json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 5,
    })
}

/// An upstream chat completion answering `content`.
pub fn chat_completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    })
}

/// The assistant content of a chat completion body.
pub fn content_of(body: &Value) -> String {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content in {body}"))
        .to_owned()
}

/// The JSON bodies the mock received on `path`.
pub async fn received_on(mock: &MockServer, path: &str) -> Vec<wiremock::Request> {
    mock.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == path)
        .collect()
}

/// A port on 127.0.0.1 that nothing listens on.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// A raw HTTP/1.1 response read off a socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Reads one HTTP/1.1 response (head and a `Content-Length` body, or up to EOF).
pub async fn read_raw_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read response");
        assert!(n > 0, "connection closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let mut body = buf[head_end..].to_vec();
    loop {
        if length.is_some_and(|n| body.len() >= n) {
            break;
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    RawResponse { status, head, body }
}

/// Writes raw bytes to a new connection to `addr`.
pub async fn raw_connect(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream.flush().await.expect("flush");
    stream
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `data:` payloads of a server-sent-event body, in order.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The concatenated `choices[*].delta.content` of chat stream payloads.
pub fn sse_content(data: &[String]) -> String {
    let mut out = String::new();
    for d in data {
        let Ok(v) = serde_json::from_str::<Value>(d) else {
            continue;
        };
        if let Some(choices) = v["choices"].as_array() {
            for c in choices {
                if let Some(t) = c["delta"]["content"].as_str() {
                    out.push_str(t);
                }
            }
        }
    }
    out
}
