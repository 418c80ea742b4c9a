#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! Streaming answers (`stream: true`): pass-through, redaction and block across events,
//! stats from the final chunk, and errors before the first event.

mod common;

use common::{CHAT, Server, config, flag_types, record_json, sse_content, sse_data, within};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An upstream chat stream whose content is `pieces`, then a finish chunk, a usage chunk and
/// `[DONE]`.
fn upstream_stream(pieces: &[&str]) -> String {
    let chunk = |choices: Value, usage: Value| {
        let mut event = json!({
            "id": "chatcmpl-s1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-4o",
            "choices": choices,
        });
        if !usage.is_null() {
            event["usage"] = usage;
        }
        format!("data: {event}\n\n")
    };
    let mut out = chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        Value::Null,
    );
    for piece in pieces {
        out.push_str(&chunk(
            json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
            Value::Null,
        ));
    }
    out.push_str(&chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        Value::Null,
    ));
    out.push_str(&chunk(
        json!([]),
        json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}),
    ));
    out.push_str("data: [DONE]\n\n");
    out
}

/// "The secret plan is out." with the banned phrase split across three events.
const PIECES: &[&str] = &["The sec", "ret pl", "an is out."];

fn stream_request() -> Value {
    json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "tell me"}],
        "max_tokens": 20,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

async fn stream_mock(mock: &MockServer, body: &str) {
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "no-cache")
                .set_body_raw(body.as_bytes().to_vec(), "text/event-stream"),
        )
        .expect(1)
        .mount(mock)
        .await;
}

fn wordlist_config(mock: &MockServer, action: &str) -> usagepanda_core::Config {
    config(
        &mock.uri(),
        json!({
            "POLICY_CUSTOM_WORDLIST": ["secret plan"],
            "POLICY_RESPONSE_WORDLIST": format!("custom:{action}"),
        }),
    )
}

#[tokio::test]
async fn stream_without_policy_is_passed_through_byte_for_byte() {
    within("test", async {
        let mock = MockServer::start().await;
        let body = upstream_stream(PIECES);
        stream_mock(&mock, &body).await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        let reply = server.post_json(CHAT, &stream_request()).await;

        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, body.as_bytes());
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/event-stream"))
        );
        assert_eq!(reply.header("cache-control"), Some("no-cache"));
        let records = server.records(1).await;
        let record = record_json(&records[0]);
        assert_eq!(record["stream"], true);
        assert_eq!(
            record["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12})
        );
        assert_eq!(record["error"], false);
        assert!(records[0].flags.is_empty());
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn stream_redaction_works_across_events() {
    within("test", async {
        let mock = MockServer::start().await;
        stream_mock(&mock, &upstream_stream(PIECES)).await;
        let server = Server::start(wordlist_config(&mock, "redact")).await;

        let reply = server.post_json(CHAT, &stream_request()).await;

        assert_eq!(reply.status, 200);
        let data = sse_data(&reply.body);
        assert_eq!(sse_content(&data), "The **** is out.");
        assert!(!reply.text().contains("secret"), "{}", reply.text());
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let records = server.records(1).await;
        let record = record_json(&records[0]);
        assert_eq!(record["stream"], true);
        assert_eq!(record["usage"]["total_tokens"], 12);
        assert_eq!(flag_types(&records[0]), ["policy_wordlists"]);
        assert_eq!(
            records[0].flags[0].description,
            "Response matched known wordlists: custom"
        );
        assert!(!records[0].error);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn stream_block_ends_with_an_error_event() {
    within("test", async {
        let mock = MockServer::start().await;
        stream_mock(&mock, &upstream_stream(PIECES)).await;
        let server = Server::start(wordlist_config(&mock, "block")).await;

        let reply = server.post_json(CHAT, &stream_request()).await;

        assert_eq!(reply.status, 200);
        let text = reply.text();
        assert!(!text.to_lowercase().contains("secret plan"), "{text}");
        let data = sse_data(&reply.body);
        let content = sse_content(&data);
        assert!(!content.to_lowercase().contains("secret plan"), "{content}");
        assert!(
            !content.contains("is out"),
            "content after the match: {content}"
        );
        let last = data.last().expect("some events");
        let error: Value = serde_json::from_str(last).expect("last event is JSON");
        assert_eq!(
            error["error"]["message"], "Usage Panda: Response matched known wordlists: custom",
            "{text}"
        );
        // Nothing after the error event (the raw body ends with it).
        assert!(
            text.trim_end().ends_with(last.as_str()),
            "bytes after the error event: {text}"
        );
        assert_eq!(
            data.iter().filter(|d| d.contains("\"error\"")).count(),
            1,
            "{text}"
        );
        let records = server.records(1).await;
        let record = record_json(&records[0]);
        assert_eq!(record["stream"], true);
        assert_eq!(record["decision"], "block");
        assert_eq!(record["error"], true);
        assert_eq!(flag_types(&records[0]), ["policy_wordlists"]);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn stream_upstream_error_before_the_first_event_is_a_normal_error() {
    within("test", async {
        let mock = MockServer::start().await;
        let body = "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}";
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(401).set_body_raw(body.as_bytes().to_vec(), "application/json"),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(wordlist_config(&mock, "block")).await;

        let reply = server.post_json(CHAT, &stream_request()).await;

        assert_eq!(reply.status, 401);
        assert_eq!(reply.body, body.as_bytes());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let records = server.records(1).await;
        assert_eq!(records[0].status, 401);
        assert!(records[0].error);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn stream_requested_but_json_answer_goes_through_the_whole_answer_policies() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(common::chat_completion("the secret plan is out")),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(wordlist_config(&mock, "redact")).await;

        let reply = server.post_json(CHAT, &stream_request()).await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(common::content_of(&reply.json()), "the **** is out");
        let records = server.records(1).await;
        assert_eq!(flag_types(&records[0]), ["policy_wordlists"]);
        mock.verify().await;
    })
    .await;
}

/// An upstream that answers with a stream head and then one event every 100 ms for 3 s,
/// counting the events it managed to write.
async fn slow_stream_upstream() -> (String, tokio::task::JoinHandle<usize>) {
    raw_stream_upstream(30, false).await
}

/// A raw upstream answering one request with a chunked event stream of `events` events,
/// 100 ms apart; with `abrupt`, the connection is then closed without ending the body.
async fn raw_stream_upstream(
    events: usize,
    abrupt: bool,
) -> (String, tokio::task::JoinHandle<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let uri = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return 0;
        };
        // Read the request head and its body.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = socket.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return 0;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    break;
                }
            }
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return 0;
        }
        let mut written = 0;
        for i in 0..events {
            let event = format!(
                "data: {}\n\n",
                json!({"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                       "choices": [{"index": 0, "delta": {"content": format!("w{i} ")}, "finish_reason": null}]})
            );
            let frame = format!("{:x}\r\n{event}\r\n", event.len());
            if socket.write_all(frame.as_bytes()).await.is_err() {
                break;
            }
            written += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if !abrupt {
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
        drop(socket);
        written
    });
    (uri, task)
}

#[tokio::test]
async fn client_gone_mid_stream_ends_the_exchange_with_a_record() {
    within("test", async {
        let (upstream, upstream_task) = slow_stream_upstream().await;
        let server = Server::start(config(&upstream, json!({}))).await;
        let request = http::Request::builder()
            .method("POST")
            .uri(server.url(CHAT))
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-test")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                stream_request().to_string(),
            )))
            .expect("request");
        let client = common::client();

        let response = client.request(request).await.expect("stream head");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = http_body_util::BodyExt::frame(&mut body)
            .await
            .expect("a first frame")
            .expect("frame ok");
        let first = first.into_data().expect("data frame");
        assert!(String::from_utf8_lossy(&first).contains("w0"));
        drop(body);
        drop(client);

        let records = server.records(1).await;
        let record = record_json(&records[0]);
        assert_eq!(record["stream"], true);
        assert_eq!(record["error"], true, "{record}");
        assert_eq!(
            record["error_message"], "client disconnected during the stream",
            "{record}"
        );
        // The upstream call was abandoned rather than read to its end.
        let written = upstream_task.await.expect("upstream task");
        assert!(
            written < 30,
            "the proxy kept reading the upstream: {written} events"
        );
    })
    .await;
}

#[tokio::test]
async fn upstream_breaking_mid_stream_ends_with_an_error_event() {
    within("test", async {
        let (upstream, upstream_task) = raw_stream_upstream(2, true).await;
        let server = Server::start(config(&upstream, json!({}))).await;

        let reply = server.post_json(CHAT, &stream_request()).await;

        assert_eq!(reply.status, 200);
        let data = sse_data(&reply.body);
        assert_eq!(sse_content(&data), "w0 w1 ");
        let last: Value = serde_json::from_str(data.last().expect("events")).expect("JSON");
        assert!(
            last["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("upstream stream broke")),
            "{}",
            reply.text()
        );
        let records = server.records(1).await;
        let record = record_json(&records[0]);
        assert_eq!(record["error"], true);
        assert!(
            record["error_message"]
                .as_str()
                .is_some_and(|m| m.starts_with("upstream stream broke")),
            "{record}"
        );
        assert_eq!(upstream_task.await.expect("upstream"), 2);
    })
    .await;
}

#[tokio::test]
async fn stream_audit_passes_bytes_through_and_flags() {
    within("test", async {
        let mock = MockServer::start().await;
        let body = upstream_stream(PIECES);
        stream_mock(&mock, &body).await;
        let server = Server::start(wordlist_config(&mock, "audit")).await;

        let reply = server.post_json(CHAT, &stream_request()).await;

        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, body.as_bytes());
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        let records = server.records(1).await;
        assert_eq!(flag_types(&records[0]), ["policy_wordlists"]);
        assert!(!records[0].error);
        mock.verify().await;
    })
    .await;
}
