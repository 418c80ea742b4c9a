//! Streaming answers on the wire: the core's [`StreamExchange`] driven chunk by chunk as an
//! HTTP body. The stats record is produced when the stream ends, however it ends (upstream
//! done, upstream broken, blocked, or the client gone).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame};
use usagepanda_core::{PendingUpstream, StatsRecord, StreamEnd, StreamExchange};

use crate::upstream::{Body, BoxError, UpstreamResponse};

/// What to do with the stats record when the stream ends.
pub type OnFinish = Box<dyn FnOnce(StatsRecord) + Send + Sync>;

/// A streaming answer whose head has arrived.
#[derive(Debug)]
pub struct StreamAnswer {
    exchange: StreamExchange,
    headers: HeaderMap,
    upstream: Body,
}

impl StreamAnswer {
    pub(crate) fn new(
        pending: PendingUpstream,
        response: UpstreamResponse,
        _started: Instant,
    ) -> StreamAnswer {
        StreamAnswer {
            exchange: pending.resume_stream(),
            headers: response.headers,
            upstream: response.body,
        }
    }

    /// The upstream's response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The exchange (for timings and routing notes).
    pub fn exchange_mut(&mut self) -> &mut StreamExchange {
        &mut self.exchange
    }

    /// The body for the client. `request_started` is when the client's request arrived;
    /// `on_finish` receives the stats record exactly once.
    pub fn into_body(self, request_started: Instant, on_finish: OnFinish) -> FilteredBody {
        FilteredBody {
            exchange: Some(self.exchange),
            upstream: self.upstream,
            started: request_started,
            first_byte: None,
            on_finish: Some(on_finish),
        }
    }
}

/// The client's body of a streaming answer.
pub struct FilteredBody {
    exchange: Option<StreamExchange>,
    upstream: Body,
    started: Instant,
    first_byte: Option<f64>,
    on_finish: Option<OnFinish>,
}

impl std::fmt::Debug for FilteredBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilteredBody").finish_non_exhaustive()
    }
}

impl FilteredBody {
    /// Ends the exchange and hands its stats record over; returns the last bytes.
    fn end(&mut self, how: StreamEnd) -> Bytes {
        let Some(exchange) = self.exchange.take() else {
            return Bytes::new();
        };
        let (tail, mut outcome) = exchange.finish(how);
        let elapsed = self.started.elapsed().as_secs_f64() * 1000.0;
        outcome.stats.metadata.latency = Some(elapsed);
        outcome.stats.metadata.time_to_first_byte = self.first_byte.or(Some(elapsed));
        if let Some(on_finish) = self.on_finish.take() {
            on_finish(outcome.stats);
        }
        tail
    }

    fn mark_first_byte(&mut self) {
        if self.first_byte.is_none() {
            self.first_byte = Some(self.started.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

impl HttpBody for FilteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(exchange) = this.exchange.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let mut out = exchange.push(&data);
                    if exchange.is_blocked() {
                        let tail = this.end(StreamEnd::Complete);
                        out = concat(out, tail);
                    }
                    if !out.is_empty() {
                        this.mark_first_byte();
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let tail = this.end(StreamEnd::Broken(e.to_string()));
                    return Poll::Ready((!tail.is_empty()).then(|| Ok(Frame::data(tail))));
                }
                Poll::Ready(None) => {
                    let tail = this.end(StreamEnd::Complete);
                    return Poll::Ready((!tail.is_empty()).then(|| Ok(Frame::data(tail))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.is_none()
    }
}

impl Drop for FilteredBody {
    fn drop(&mut self) {
        if self.exchange.is_some() {
            let _ = self.end(StreamEnd::ClientGone);
        }
    }
}

fn concat(a: Bytes, b: Bytes) -> Bytes {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(&a);
    v.extend_from_slice(&b);
    Bytes::from(v)
}
