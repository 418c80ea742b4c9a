#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! The tower layer: a policy in front of a service that plays the upstream.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{CHAT, chat_completion, chat_request, content_of, flag_types, within};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};
use usagepanda_core::Policy;
use usagepanda_http::{MemorySink, PolicyLayer};

/// What the inner service received.
#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    authorization: Option<String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A service answering every request with a canned chat completion, logging what it got.
fn fake_upstream(
    log: Log,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |request: Request<Full<Bytes>>| {
        let log = log.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            log.lock().expect("log").push(Seen {
                uri: parts.uri.to_string(),
                authorization: parts
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
            let mut response = Response::new(Full::new(Bytes::from(
                chat_completion("canned answer").to_string(),
            )));
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(response)
        }
    })
}

fn policy(extra: Value) -> Policy {
    let mut object = json!({"LOCAL_MODE": true});
    if let (Some(base), Value::Object(extra)) = (object.as_object_mut(), extra) {
        base.extend(extra);
    }
    Policy::from_json(&object.to_string()).expect("policy")
}

async fn call(service: usagepanda_http::PolicyService, body: &Value) -> (http::StatusCode, Value) {
    let request = Request::builder()
        .method("POST")
        .uri(CHAT)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-layer")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let response = service.oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).expect("JSON answer");
    (status, value)
}

#[tokio::test]
async fn allowed_request_reaches_the_inner_service() {
    within("test", async {
        let log = Log::default();
        let sink = MemorySink::new();
        let service = PolicyLayer::new(policy(json!({})), Arc::new(sink.clone()))
            .layer(fake_upstream(log.clone()));

        let (status, body) = call(service, &chat_request("hello")).await;

        assert_eq!(status, 200, "{body}");
        assert_eq!(content_of(&body), "canned answer");
        let seen = log.lock().expect("log").clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].uri, "https://api.openai.com/v1/chat/completions");
        assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-layer"));
        assert_eq!(seen[0].body, chat_request("hello"));
        common::wait_records(&sink, 1).await;
    })
    .await;
}

#[tokio::test]
async fn blocked_request_never_reaches_the_inner_service() {
    within("test", async {
        let log = Log::default();
        let sink = MemorySink::new();
        let service = PolicyLayer::new(
            policy(json!({"POLICY_MAX_TOKENS": 10})),
            Arc::new(sink.clone()),
        )
        .layer(fake_upstream(log.clone()));
        let mut request = chat_request("hello");
        request["max_tokens"] = json!(50);

        let (status, body) = call(service, &request).await;

        assert_eq!(status, 422, "{body}");
        assert_eq!(
            body["error"]["message"],
            "Usage Panda: Config set to max tokens of: 10; request was: 50"
        );
        assert!(log.lock().expect("log").is_empty());
        let records = common::wait_records(&sink, 1).await;
        assert_eq!(flag_types(&records[0]), ["policy_max_tokens"]);
    })
    .await;
}

#[tokio::test]
async fn redacted_request_arrives_redacted() {
    within("test", async {
        let log = Log::default();
        let sink = MemorySink::new();
        let service = PolicyLayer::new(
            policy(json!({
                "POLICY_CUSTOM_WORDLIST": ["secret plan"],
                "POLICY_REQUEST_WORDLIST": "custom:redact",
            })),
            Arc::new(sink.clone()),
        )
        .layer(fake_upstream(log.clone()));

        let (status, body) = call(service, &chat_request("what is the secret plan?")).await;

        assert_eq!(status, 200, "{body}");
        let seen = log.lock().expect("log").clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].body["messages"][0]["content"], "what is the ****?");
        let records = common::wait_records(&sink, 1).await;
        assert_eq!(flag_types(&records[0]), ["policy_wordlists"]);
    })
    .await;
}

#[tokio::test]
async fn response_from_the_inner_service_is_filtered() {
    within("test", async {
        let log = Log::default();
        let sink = MemorySink::new();
        let service = PolicyLayer::new(
            policy(json!({
                "POLICY_CUSTOM_WORDLIST": ["canned"],
                "POLICY_RESPONSE_WORDLIST": "custom:redact",
            })),
            Arc::new(sink.clone()),
        )
        .layer(fake_upstream(log.clone()));

        let (status, body) = call(service, &chat_request("hi")).await;

        assert_eq!(status, 200, "{body}");
        assert_eq!(content_of(&body), "**** answer");
        common::wait_records(&sink, 1).await;
    })
    .await;
}
