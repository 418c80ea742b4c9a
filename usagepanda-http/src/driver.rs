//! The one driver loop: performs each [`Step`] of a core exchange with real I/O. The server,
//! the tower layer and the tests all go through it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use usagepanda_core::{
    ClientRequest, Context, ModerationResult, ModerationVerdict, Outcome, PendingUpstream, Policy,
    Step,
};

use crate::retry::RetryPolicy;
use crate::route::{self, RouteError};
use crate::stream::StreamAnswer;
use crate::upstream::{Upstream, UpstreamError, UpstreamRequest, UpstreamResponse, collect_body};

/// Performs exchanges against an upstream.
#[derive(Clone)]
pub struct Driver {
    /// The upstream.
    pub upstream: Arc<dyn Upstream>,
    /// How failed calls are retried (the count comes from the policy).
    pub retry: RetryPolicy,
    /// Time allowed for a whole non-streaming upstream answer.
    pub timeout: Duration,
    /// Largest upstream answer read into memory.
    pub max_response_bytes: usize,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What an exchange produced.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per exchange and moved once; boxing would add an allocation to every request"
)]
pub enum Answer {
    /// A complete answer: the outcome, and the upstream's headers when its answer is relayed.
    Complete {
        /// The core's outcome (status, body, stats).
        outcome: Outcome,
        /// The upstream's response headers, when the body is the upstream's.
        upstream_headers: Option<HeaderMap>,
    },
    /// A server-sent-event stream still flowing; its stats record is produced when it ends.
    Stream(StreamAnswer),
}

impl Driver {
    /// Runs one exchange to its answer.
    pub async fn run(&self, policy: &Policy, request: ClientRequest, context: Context) -> Answer {
        let key = match route::upstream_key(&request.headers, policy.config()) {
            Ok(key) => key,
            Err(e) => {
                let outcome =
                    policy.refuse(&request, context, e.status(), &e.to_string(), e.kind());
                return Answer::Complete {
                    outcome,
                    upstream_headers: None,
                };
            }
        };
        let mut step = policy.begin(request, context);
        loop {
            match step {
                Step::Moderate(pending) => {
                    let result = self
                        .moderate(policy, pending.headers(), &key, pending.body().clone())
                        .await;
                    step = pending.resume(result);
                }
                Step::Forward(pending) => return self.forward(policy, &key, pending).await,
                Step::Finish(outcome) => {
                    return Answer::Complete {
                        outcome,
                        upstream_headers: None,
                    };
                }
            }
        }
    }

    async fn moderate(
        &self,
        policy: &Policy,
        headers: &HeaderMap,
        key: &http::HeaderValue,
        body: Bytes,
    ) -> ModerationResult {
        let target = match route::moderation_target(policy.config(), headers, key) {
            Ok(t) => t,
            Err(e) => return ModerationResult::Failed(e.to_string()),
        };
        let request = UpstreamRequest {
            method: Method::POST,
            uri: target.uri,
            headers: target.headers,
            body,
        };
        let call = async {
            let response = self.upstream.moderate(request).await?;
            let status = response.status;
            let body = collect_body(response.body, self.max_response_bytes).await?;
            Ok::<_, UpstreamError>((status, body))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => ModerationResult::Failed("the moderation endpoint timed out".to_owned()),
            Ok(Err(e)) => ModerationResult::Failed(e.to_failure_text()),
            Ok(Ok((status, _))) if !status.is_success() => {
                ModerationResult::Failed(format!("the moderation endpoint answered {status}"))
            }
            Ok(Ok((_, body))) => match ModerationVerdict::from_body(&body) {
                Some(verdict) => ModerationResult::Verdict(verdict),
                None => ModerationResult::Failed(
                    "the moderation endpoint's answer is not a moderation result".to_owned(),
                ),
            },
        }
    }

    async fn forward(
        &self,
        policy: &Policy,
        key: &http::HeaderValue,
        mut pending: PendingUpstream,
    ) -> Answer {
        let headers = pending.take_headers();
        let target = route::target(
            policy.config(),
            pending.endpoint(),
            pending.query(),
            headers,
            key,
            pending.model(),
        );
        let target = match target {
            Ok(t) => t,
            Err(e) => return refused(pending, &e),
        };
        let request = UpstreamRequest {
            method: pending.method().clone(),
            uri: target.uri,
            headers: target.headers,
            body: pending.body().clone(),
        };
        let started = Instant::now();
        let (result, attempts) = self.send_with_retries(request, pending.retry_count()).await;
        let answer = match result {
            Err(e) => Answer::Complete {
                outcome: pending.fail(e.to_failure()),
                upstream_headers: None,
            },
            Ok(response)
                if pending.is_stream()
                    && response.status.is_success()
                    && is_event_stream(&response.headers) =>
            {
                Answer::Stream(StreamAnswer::new(pending, response, started))
            }
            Ok(response) => {
                let remaining = self.timeout.saturating_sub(started.elapsed());
                let status = response.status.as_u16();
                let headers = response.headers;
                let body = tokio::time::timeout(
                    remaining,
                    collect_body(response.body, self.max_response_bytes),
                )
                .await;
                match body {
                    Err(_) => Answer::Complete {
                        outcome: pending.fail(UpstreamError::Timeout(self.timeout).to_failure()),
                        upstream_headers: None,
                    },
                    Ok(Err(e)) => Answer::Complete {
                        outcome: pending.fail(e.to_failure()),
                        upstream_headers: None,
                    },
                    Ok(Ok(body)) => Answer::Complete {
                        outcome: pending.resume(status, body),
                        upstream_headers: Some(headers),
                    },
                }
            }
        };
        annotate(answer, attempts, target.autorouted)
    }

    /// Sends, retrying connect failures, timeouts, 408, 429 and 5xx up to `retries` times.
    async fn send_with_retries(
        &self,
        request: UpstreamRequest,
        retries: u32,
    ) -> (Result<UpstreamResponse, UpstreamError>, u32) {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result =
                match tokio::time::timeout(self.timeout, self.upstream.send(request.clone())).await
                {
                    Ok(result) => result,
                    Err(_) => Err(UpstreamError::Timeout(self.timeout)),
                };
            let retry_index = attempt - 1;
            if retry_index >= retries {
                return (result, attempt);
            }
            let delay = match &result {
                Ok(r) if RetryPolicy::retryable_status(r.status) => {
                    self.retry.delay(retry_index, Some(&r.headers))
                }
                Ok(_) => return (result, attempt),
                Err(e) if e.is_retryable() => self.retry.delay(retry_index, None),
                Err(_) => return (result, attempt),
            };
            let Some(delay) = delay else {
                return (result, attempt);
            };
            tracing::debug!(attempt, ?delay, "retrying the upstream call");
            tokio::time::sleep(delay).await;
        }
    }
}

fn refused(pending: PendingUpstream, error: &RouteError) -> Answer {
    Answer::Complete {
        outcome: pending.refuse(error.status(), &error.to_string(), error.kind()),
        upstream_headers: None,
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

fn annotate(
    mut answer: Answer,
    attempts: u32,
    autorouted: Option<(String, serde_json::Value)>,
) -> Answer {
    match &mut answer {
        Answer::Complete { outcome, .. } => {
            outcome.stats.metadata.upstream_attempts = Some(attempts);
            if let Some((name, value)) = autorouted {
                outcome.stats.autorouted.insert(name, value);
            }
        }
        Answer::Stream(stream) => {
            let exchange = stream.exchange_mut();
            exchange.metadata_mut().upstream_attempts = Some(attempts);
            if let Some((name, value)) = autorouted {
                exchange.autorouted_mut().insert(name, value);
            }
        }
    }
    answer
}

impl UpstreamError {
    fn to_failure_text(&self) -> String {
        match self.to_failure() {
            usagepanda_core::UpstreamFailure::Connect(t)
            | usagepanda_core::UpstreamFailure::Timeout(t)
            | usagepanda_core::UpstreamFailure::Broken(t) => t,
        }
    }
}
