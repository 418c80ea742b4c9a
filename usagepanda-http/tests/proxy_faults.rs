#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! Retries and faults: bad bodies, oversized bodies, dead, slow and broken upstreams, and
//! clients that go away.

mod common;

use std::time::{Duration, Instant};

use common::{
    CHAT, Server, chat_completion, chat_request, closed_port, config, content_of, driver,
    driver_with_timeout, raw_connect, read_raw_response, received_on, within,
};
use http::Method;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ----------------------------------------------------------------------------------------------
// Retries
// ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn two_503s_then_200_is_retried_to_success() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
            .up_to_n_times(2)
            .with_priority(1)
            .expect(2)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("third time")))
            .with_priority(2)
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({"POLICY_RETRY_COUNT": 2}))).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(content_of(&reply.json()), "third time");
        let records = server.records(1).await;
        assert_eq!(records[0].metadata.upstream_attempts, Some(3));
        assert_eq!(records[0].status, 200);
        // Every attempt carried the same body.
        let seen = received_on(&mock, CHAT).await;
        assert_eq!(seen.len(), 3);
        assert!(seen.windows(2).all(|w| w[0].body == w[1].body));
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn retries_stop_at_the_count_and_the_last_answer_is_passed_through() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(503).set_body_string("still overloaded"))
            .expect(3)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({"POLICY_RETRY_COUNT": 2}))).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 503);
        assert_eq!(reply.text(), "still overloaded");
        let records = server.records(1).await;
        assert_eq!(records[0].metadata.upstream_attempts, Some(3));
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn rate_limit_with_retry_after_zero_is_retried() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "0")
                    .set_body_json(
                        json!({"error": {"message": "slow down", "type": "rate_limit"}}),
                    ),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .expect(1)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .with_priority(2)
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({"POLICY_RETRY_COUNT": 1}))).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        let records = server.records(1).await;
        assert_eq!(records[0].metadata.upstream_attempts, Some(2));
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn no_retries_when_the_count_is_zero() {
    within("test", async {
        let mock = MockServer::start().await;
        let body =
            "{\"error\":{\"message\":\"The server is overloaded\",\"type\":\"server_error\"}}";
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(503)
                    .set_body_raw(body.as_bytes().to_vec(), "application/json"),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, body.as_bytes());
        let records = server.records(1).await;
        assert_eq!(records[0].metadata.upstream_attempts, Some(1));
        assert_eq!(records[0].status, 503);
        mock.verify().await;
    })
    .await;
}

// ----------------------------------------------------------------------------------------------
// Bad and oversized request bodies
// ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn body_that_is_not_json_is_400() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        for bad in ["this is not json", "{\"model\": ", ""] {
            let reply = server.send(server.post(CHAT), bad).await;
            assert_eq!(reply.status, 400, "body {bad:?}: {}", reply.text());
            assert_eq!(reply.error_type(), "invalid_request_error");
        }
        let records = server.records(3).await;
        assert!(records.iter().all(|r| r.error && r.status == 400));
        // The server is still fine.
        assert!(
            mock.received_requests()
                .await
                .unwrap_or_default()
                .is_empty()
        );
        mock.verify().await;
    })
    .await;
}

fn small_limit(upstream: &str) -> usagepanda_core::Config {
    config(upstream, json!({"MAX_BODY_BYTES": 1024}))
}

fn big_body() -> String {
    chat_request(&"x".repeat(4000)).to_string()
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(small_limit(&mock.uri())).await;

        let reply = server.send(server.post(CHAT), big_body()).await;
        assert_eq!(reply.status, 413, "{}", reply.text());
        assert_eq!(reply.error_type(), "invalid_request_error");
        // Under the limit still goes through.
        let ok = server.post_json(CHAT, &chat_request("small")).await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        let records = server.records(2).await;
        assert_eq!(records[0].status, 413);
        assert!(records[0].error);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server = Server::start(small_limit(&mock.uri())).await;
        let body = big_body();
        let mut raw = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for chunk in body.as_bytes().chunks(500) {
            raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            raw.extend_from_slice(chunk);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");

        let mut stream = raw_connect(server.addr, &raw).await;
        let response = read_raw_response(&mut stream).await;

        assert_eq!(response.status, 413, "{response:?}");
        server.records(1).await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn announced_length_over_the_limit_is_413_without_reading_the_body() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server = Server::start(small_limit(&mock.uri())).await;
        let head = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n\
             content-type: application/json\r\ncontent-length: 1000000000\r\n\r\n{{\"model\":"
        );

        let started = Instant::now();
        let mut stream = raw_connect(server.addr, head.as_bytes()).await;
        let response = tokio::time::timeout(Duration::from_secs(2), read_raw_response(&mut stream))
            .await
            .expect("the 413 must come without waiting for the announced body");

        assert_eq!(response.status, 413, "{response:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let body: serde_json::Value =
            serde_json::from_slice(&response.body).expect("413 body is JSON");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("1024")),
            "{body}"
        );
        server.records(1).await;
        mock.verify().await;
    })
    .await;
}

// ----------------------------------------------------------------------------------------------
// Upstream faults
// ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn upstream_connect_failure_is_502() {
    within("test", async {
        let port = closed_port().await;
        let server = Server::start(config(&format!("http://127.0.0.1:{port}"), json!({}))).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 502, "{}", reply.text());
        assert_eq!(reply.error_type(), "upstream_error");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let records = server.records(1).await;
        assert!(records[0].error);
        assert_eq!(records[0].status, 502);
        assert_eq!(records[0].metadata.upstream_attempts, Some(1));
    })
    .await;
}

#[tokio::test]
async fn upstream_connect_failure_is_retried() {
    within("test", async {
        let port = closed_port().await;
        let server = Server::start(config(
            &format!("http://127.0.0.1:{port}"),
            json!({"POLICY_RETRY_COUNT": 2}),
        ))
        .await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 502, "{}", reply.text());
        let records = server.records(1).await;
        assert_eq!(records[0].metadata.upstream_attempts, Some(3));
    })
    .await;
}

#[tokio::test]
async fn upstream_slower_than_driver_timeout_is_504() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(chat_completion("late"))
                    .set_delay(Duration::from_secs(2)),
            )
            .mount(&mock)
            .await;
        // The HTTP client's own head timeout is 5 s; the driver's budget for a whole answer is
        // 200 ms, and that is what the client must see.
        let server = Server::start_with(
            config(&mock.uri(), json!({})),
            driver_with_timeout(Duration::from_millis(200)),
            None,
        )
        .await;

        let started = Instant::now();
        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 504, "{}", reply.text());
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(reply.error_type(), "upstream_error");
        let records = server.records(1).await;
        assert_eq!(records[0].status, 504);
    })
    .await;
}

#[tokio::test]
async fn upstream_head_timeout_of_the_http_client_is_504() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(chat_completion("late"))
                    .set_delay(Duration::from_secs(2)),
            )
            .mount(&mock)
            .await;
        // Both the HTTP client and the driver time out at 200 ms (as the CLI sets them up).
        let mut driver = driver_with_timeout(Duration::from_millis(200));
        driver.upstream = std::sync::Arc::new(usagepanda_http::HyperUpstream::new(
            &usagepanda_http::HyperUpstreamOptions {
                timeout: Duration::from_millis(200),
                ..usagepanda_http::HyperUpstreamOptions::default()
            },
        ));
        let server = Server::start_with(config(&mock.uri(), json!({})), driver, None).await;

        let started = Instant::now();
        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 504, "{}", reply.text());
        assert!(started.elapsed() < Duration::from_millis(1500));
        assert_eq!(reply.error_type(), "upstream_error");
        let records = server.records(1).await;
        assert_eq!(records[0].status, 504);
        assert!(records[0].error);
    })
    .await;
}

#[tokio::test]
async fn upstream_error_with_a_non_json_body_is_passed_through() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(500).set_body_raw(b"Bad Gateway".to_vec(), "text/plain"),
            )
            .expect(1)
            .mount(&mock)
            .await;
        // Response policies are on: they must not try to read an error answer.
        let server = Server::start(config(
            &mock.uri(),
            json!({
                "POLICY_CUSTOM_WORDLIST": ["secret plan"],
                "POLICY_RESPONSE_WORDLIST": "custom:block",
                "POLICY_LOG_RESPONSE": true,
            }),
        ))
        .await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 500);
        assert_eq!(reply.text(), "Bad Gateway");
        assert_eq!(reply.header("content-type"), Some("text/plain"));
        let records = server.records(1).await;
        assert_eq!(records[0].status, 500);
        assert!(records[0].error);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn client_disconnect_mid_request_still_writes_a_record() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;
        let body = chat_request("hello there").to_string();
        let head = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );

        let mut stream = raw_connect(server.addr, head.as_bytes()).await;
        stream
            .write_all(&body.as_bytes()[..body.len() / 2])
            .await
            .expect("half the body");
        stream.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stream);

        let records = server.records(1).await;
        assert!(records[0].error);
        // The server survived: the next request is served.
        let reply = server.post_json(CHAT, &chat_request("again")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        server.records(2).await;
        mock.verify().await;
    })
    .await;
}

// ----------------------------------------------------------------------------------------------
// Secrets never reach stats
// ----------------------------------------------------------------------------------------------

const OPENAI_SECRET: &str = "sk-secret-XYZ";
const PANDA_SECRET: &str = "up-secret-ABC";

async fn assert_no_secrets(
    upstream: &str,
    extra: serde_json::Value,
    authorization: &str,
    expected_status: u16,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stats.jsonl");
    let file_sink = std::sync::Arc::new(usagepanda_http::FileSink::new(&file));
    let mut extra = extra;
    extra["POLICY_LOG_REQUEST"] = json!(true);
    extra["POLICY_LOG_RESPONSE"] = json!(true);
    let server =
        Server::start_with(config(upstream, extra), driver(), Some(file_sink.clone())).await;

    let reply = server
        .send(
            server
                .request(Method::POST, CHAT)
                .header("content-type", "application/json")
                .header("authorization", authorization)
                .header("x-usagepanda-api-key", PANDA_SECRET)
                .header("openai-organization", "org-1"),
            chat_request("hi").to_string(),
        )
        .await;
    assert_eq!(reply.status, expected_status, "{}", reply.text());
    assert!(!reply.text().contains(OPENAI_SECRET));
    assert!(!reply.text().contains(PANDA_SECRET));

    let records = server.records(1).await;
    server.stop().await.expect("serve stops cleanly");
    usagepanda_http::StatsSink::flush(file_sink.as_ref()).await;
    let written = std::fs::read_to_string(&file).expect("stats file written");
    assert_eq!(written.lines().count(), 1, "{written}");
    for text in records
        .iter()
        .map(usagepanda_core::StatsRecord::to_json)
        .chain([written])
    {
        assert!(
            !text.contains(OPENAI_SECRET),
            "leaked the OpenAI key: {text}"
        );
        assert!(
            !text.contains("secret-XYZ"),
            "leaked the OpenAI key: {text}"
        );
        assert!(
            !text.contains(PANDA_SECRET),
            "leaked the Usage Panda key: {text}"
        );
        assert!(!text.to_lowercase().contains("bearer"), "{text}");
    }
}

#[tokio::test]
async fn keys_never_reach_stats_on_success() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        assert_no_secrets(
            &mock.uri(),
            json!({}),
            &format!("Bearer {OPENAI_SECRET}"),
            200,
        )
        .await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn keys_never_reach_stats_on_403() {
    within("test", async {
        let mock = MockServer::start().await;
        // Not a Bearer key: refused with 403, the value must still not be logged.
        assert_no_secrets(
            &mock.uri(),
            json!({}),
            &format!("Basic {OPENAI_SECRET}"),
            403,
        )
        .await;
        assert!(
            mock.received_requests()
                .await
                .unwrap_or_default()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn keys_never_reach_stats_on_502() {
    within("test", async {
        let port = closed_port().await;
        assert_no_secrets(
            &format!("http://127.0.0.1:{port}"),
            json!({}),
            &format!("Bearer {OPENAI_SECRET}"),
            502,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn chunked_body_under_the_limit_reaches_upstream_unchanged() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(small_limit(&mock.uri())).await;
        let body = chat_request(&"y".repeat(600)).to_string();
        assert!(body.len() < 1024);
        let mut raw = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for chunk in body.as_bytes().chunks(100) {
            raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            raw.extend_from_slice(chunk);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");

        let mut stream = raw_connect(server.addr, &raw).await;
        let response = read_raw_response(&mut stream).await;

        assert_eq!(response.status, 200, "{response:?}");
        let seen = received_on(&mock, CHAT).await;
        assert_eq!(seen[0].body, body.as_bytes());
        server.records(1).await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn body_bytes_after_an_early_413_are_never_read_as_a_request() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .mount(&mock)
            .await;
        let server = Server::start(small_limit(&mock.uri())).await;
        // The oversized body itself looks like a request: if the server answered the 413 and
        // then parsed the unread body as the next request, it would forward it.
        let smuggled = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n\
             content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
        );
        let mut body = smuggled.clone().into_bytes();
        body.resize(2000, b' ');
        let mut raw = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(&body);

        let mut stream = raw_connect(server.addr, &raw).await;
        let response = read_raw_response(&mut stream).await;
        assert_eq!(response.status, 413, "{response:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;

        assert!(
            mock.received_requests()
                .await
                .unwrap_or_default()
                .is_empty(),
            "bytes of a refused body were forwarded as a request"
        );
        server.records(1).await;
    })
    .await;
}

#[tokio::test]
async fn upstream_answer_over_the_response_limit_is_502() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(chat_completion(&"z".repeat(10_000))),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let mut driver = driver();
        driver.max_response_bytes = 1024;
        let server = Server::start_with(config(&mock.uri(), json!({})), driver, None).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 502, "{}", reply.text());
        assert_eq!(reply.error_type(), "upstream_error");
        let records = server.records(1).await;
        assert!(records[0].error);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn retry_after_longer_than_the_max_delay_is_not_waited_for() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "60")
                    .set_body_json(json!({"error": {"message": "slow down"}})),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({"POLICY_RETRY_COUNT": 3}))).await;

        let started = Instant::now();
        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("60"));
        assert!(started.elapsed() < Duration::from_secs(2));
        let records = server.records(1).await;
        assert_eq!(records[0].metadata.upstream_attempts, Some(1));
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn client_errors_from_upstream_are_not_retried() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"error": {"message": "bad model", "type": "invalid_request_error"}}),
            ))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({"POLICY_RETRY_COUNT": 3}))).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 400);
        assert_eq!(reply.error_message(), "bad model");
        server.records(1).await;
        mock.verify().await;
    })
    .await;
}

// ----------------------------------------------------------------------------------------------
// Stats lines
// ----------------------------------------------------------------------------------------------

/// An upstream that pretty-prints its JSON (line breaks between tokens) still gives one stats
/// line per exchange, each a whole JSON record, in the file sink; the client gets the body as
/// the upstream sent it.
#[tokio::test]
async fn pretty_printed_answers_give_one_stats_line_each() {
    within("test", async {
        let mock = MockServer::start().await;
        let pretty = serde_json::to_string_pretty(&chat_completion("line one\nline two"))
            .expect("pretty JSON");
        assert!(pretty.contains('\n'));
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/json")
                    .set_body_string(pretty.clone()),
            )
            .mount(&mock)
            .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("stats.jsonl");
        let file_sink = std::sync::Arc::new(usagepanda_http::FileSink::new(&file));
        let server = Server::start_with(
            config(&mock.uri(), json!({"POLICY_LOG_RESPONSE": true})),
            driver(),
            Some(file_sink.clone()),
        )
        .await;

        for _ in 0..3 {
            let reply = server.post_json(CHAT, &chat_request("hi")).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.text(), pretty);
        }
        server.records(3).await;
        server.stop().await.expect("serve stops cleanly");
        usagepanda_http::StatsSink::flush(file_sink.as_ref()).await;
        let written = std::fs::read_to_string(&file).expect("stats file written");
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 3, "{written}");
        for line in lines {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
            assert_eq!(
                content_of(&record["response"]),
                "line one\nline two",
                "{line}"
            );
        }
    })
    .await;
}
