//! Where stats records go: the [`StatsSink`] trait and its implementations.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use tokio_util::task::TaskTracker;
use usagepanda_core::StatsRecord;

use crate::upstream::{Upstream, UpstreamRequest, collect_body};

pub(crate) mod lines;

use lines::{LineWriter, Target};

/// Receives exactly one record per exchange.
#[async_trait]
pub trait StatsSink: Send + Sync {
    /// Records one exchange. Failures are the sink's to report (a log line); they never fail
    /// the exchange.
    async fn record(&self, record: StatsRecord);

    /// Waits until every record handed over so far is written or uploaded.
    async fn flush(&self) {}

    /// Whether [`record`](StatsSink::record) waits for an upload that the answer must wait
    /// for too (`ASYNC_STATS_UPLOAD = false`, as in the original). Sinks that only write
    /// locally say no, and the proxy records after answering.
    fn holds_answer(&self) -> bool {
        false
    }
}

/// The original proxy's final log line on stdout: `{"level":"info","proxy_id":...,"message":{record}}`.
///
/// Lines are queued to one writer thread for the whole process (see [`lines`]), so an
/// exchange never waits on stdout itself.
#[derive(Debug, Default)]
pub struct StdoutSink;

/// The process's one stdout writer.
fn stdout_writer() -> &'static LineWriter {
    static WRITER: OnceLock<LineWriter> = OnceLock::new();
    WRITER.get_or_init(|| LineWriter::start(Target::Stdout))
}

/// One log line in the original's shape.
pub fn log_line(record: &StatsRecord) -> String {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        level: &'static str,
        proxy_id: &'a serde_json::Value,
        message: &'a StatsRecord,
    }
    let line = Line {
        level: "info",
        proxy_id: &record.metadata.proxy_id,
        message: record,
    };
    serde_json::to_string(&line).unwrap_or_else(|e| {
        format!(r#"{{"level":"error","message":"cannot serialise a stats record: {e}"}}"#)
    })
}

#[async_trait]
impl StatsSink for StdoutSink {
    async fn record(&self, record: StatsRecord) {
        stdout_writer().write(log_line(&record)).await;
    }

    async fn flush(&self) {
        stdout_writer().flush().await;
    }
}

/// Appends each record as one JSON line to a file (created when missing), from a writer
/// thread of its own.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    writer: OnceLock<LineWriter>,
}

impl FileSink {
    /// A sink appending to `path` (created when missing).
    pub fn new(path: impl Into<PathBuf>) -> FileSink {
        FileSink {
            path: path.into(),
            writer: OnceLock::new(),
        }
    }

    fn writer(&self) -> &LineWriter {
        self.writer
            .get_or_init(|| LineWriter::start(Target::File(self.path.clone())))
    }
}

#[async_trait]
impl StatsSink for FileSink {
    async fn record(&self, record: StatsRecord) {
        self.writer().write(record.to_json()).await;
    }

    async fn flush(&self) {
        if let Some(writer) = self.writer.get() {
            writer.flush().await;
        }
    }
}

/// Uploads each record to the Usage Panda API (`POST {api}/proxy` with `x-usagepanda-key`),
/// waiting for the upload (sync) or not (async, tracked so that shutdown can flush).
pub struct ApiSink {
    upstream: Arc<dyn Upstream>,
    uri: Uri,
    key: Option<HeaderValue>,
    asynchronous: bool,
    tracker: TaskTracker,
}

impl std::fmt::Debug for ApiSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSink")
            .field("uri", &self.uri)
            .field("asynchronous", &self.asynchronous)
            .finish_non_exhaustive()
    }
}

/// An API sink that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ApiSinkError {
    /// The API URL is not valid.
    #[error("`USAGE_PANDA_API` is not a valid URL: `{0}`")]
    Url(String),
    /// The key cannot be sent as a header.
    #[error("the Usage Panda API key is not a valid header value")]
    Key,
}

impl ApiSink {
    /// A sink uploading to `{api}/proxy`, with `key` for records handed over without one.
    pub fn new(
        upstream: Arc<dyn Upstream>,
        api: &str,
        key: Option<&str>,
        asynchronous: bool,
    ) -> Result<ApiSink, ApiSinkError> {
        let url = format!("{}/proxy", api.trim_end_matches('/'));
        let uri: Uri = url.parse().map_err(|_| ApiSinkError::Url(api.to_owned()))?;
        let key = match key {
            Some(key) => {
                let mut key = HeaderValue::from_str(key).map_err(|_| ApiSinkError::Key)?;
                key.set_sensitive(true);
                Some(key)
            }
            None => None,
        };
        Ok(ApiSink {
            upstream,
            uri,
            key,
            asynchronous,
            tracker: TaskTracker::new(),
        })
    }

    async fn upload(upstream: Arc<dyn Upstream>, uri: Uri, key: HeaderValue, record: StatsRecord) {
        let mut headers = HeaderMap::new();
        headers.insert("x-usagepanda-key", key);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let request = UpstreamRequest {
            method: Method::POST,
            uri,
            headers,
            body: Bytes::from(record.to_json()),
        };
        match upstream.send(request).await {
            Ok(response) if response.status.is_success() => {
                let _ = collect_body(response.body, 64 * 1024).await;
            }
            Ok(response) => {
                tracing::warn!(status = %response.status, "stats upload refused; failing open");
            }
            Err(e) => tracing::warn!(error = %e, "stats upload failed; failing open"),
        }
    }
}

impl ApiSink {
    /// Uploads one record with this key (waiting, or not, as the sink was built).
    pub async fn send(&self, key: HeaderValue, record: StatsRecord) {
        let task = ApiSink::upload(self.upstream.clone(), self.uri.clone(), key, record);
        if self.asynchronous {
            self.tracker.spawn(task);
        } else {
            task.await;
        }
    }
}

#[async_trait]
impl StatsSink for ApiSink {
    async fn record(&self, record: StatsRecord) {
        match &self.key {
            Some(key) => self.send(key.clone(), record).await,
            None => tracing::warn!("no Usage Panda API key for the stats upload; record dropped"),
        }
    }

    async fn flush(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }

    fn holds_answer(&self) -> bool {
        !self.asynchronous
    }
}

/// Keeps records in memory (for tests and for services that ship records themselves).
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<StatsRecord>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    /// The records so far.
    pub fn records(&self) -> Vec<StatsRecord> {
        match self.records.lock() {
            Ok(records) => records.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[async_trait]
impl StatsSink for MemorySink {
    async fn record(&self, record: StatsRecord) {
        match self.records.lock() {
            Ok(mut records) => records.push(record),
            Err(poisoned) => poisoned.into_inner().push(record),
        }
    }
}

/// Sends each record to several sinks.
pub struct FanOut(pub Vec<Arc<dyn StatsSink>>);

#[async_trait]
impl StatsSink for FanOut {
    async fn record(&self, record: StatsRecord) {
        if let Some((last, rest)) = self.0.split_last() {
            for sink in rest {
                sink.record(record.clone()).await;
            }
            last.record(record).await;
        }
    }

    async fn flush(&self) {
        for sink in &self.0 {
            sink.flush().await;
        }
    }

    fn holds_answer(&self) -> bool {
        self.0.iter().any(|sink| sink.holds_answer())
    }
}

/// Drops every record (`STATS_SINK = "none"`).
#[derive(Debug, Default)]
pub struct NullSink;

#[async_trait]
impl StatsSink for NullSink {
    async fn record(&self, _record: StatsRecord) {}
}
