#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! The proxy as a pass-through: bytes, paths, query strings, methods, CORS, keys and headers.

mod common;

use common::{CHAT, Server, chat_completion, chat_request, config, received_on, within};
use http::Method;
use serde_json::json;
use wiremock::matchers::{body_bytes, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn pass_through_keeps_request_and_response_bytes_and_status() {
    within("test", async {
        let mock = MockServer::start().await;
        // Odd spacing and key order: a proxy that re-serialises would change these bytes.
        let request = "{ \"model\":\"gpt-4o\",  \"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9llo\"}],\n \"max_tokens\": 5 }";
        let answer = "{\"z\":1,  \"id\":\"x\" ,\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"caf\\u00e9\"}}]}\n";
        Mock::given(method("POST"))
            .and(path(CHAT))
            .and(body_bytes(request.as_bytes().to_vec()))
            .respond_with(
                ResponseTemplate::new(201)
                    .insert_header("x-request-id", "req-123")
                    .set_body_raw(answer.as_bytes().to_vec(), "application/json"),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        let reply = server.send(server.post(CHAT), request).await;

        assert_eq!(reply.status, 201);
        assert_eq!(reply.body, answer.as_bytes());
        assert_eq!(reply.header("x-request-id"), Some("req-123"));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let records = server.records(1).await;
        assert_eq!(records[0].endpoint, CHAT);
        assert_eq!(records[0].status, 201);
        assert!(records[0].flags.is_empty());
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn path_without_v1_gets_it() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        let reply = server
            .post_json("/chat/completions", &chat_request("hi"))
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(common::content_of(&reply.json()), "ok");
        assert_eq!(server.records(1).await[0].endpoint, CHAT);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn query_string_is_kept() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .and(query_param("api-version", "2024-01-01"))
            .and(query_param("x", "a b"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        let reply = server
            .post_json(
                "/v1/chat/completions?api-version=2024-01-01&x=a%20b",
                &chat_request("hi"),
            )
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        let seen = received_on(&mock, CHAT).await;
        assert_eq!(seen[0].url.query(), Some("api-version=2024-01-01&x=a%20b"));
        server.records(1).await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn get_models_is_passed_through_untouched() {
    within("test", async {
        let mock = MockServer::start().await;
        let answer = "{\"object\":\"list\",  \"data\":[{\"id\":\"gpt-4o\",\"object\":\"model\"}]}";
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .and(query_param("limit", "2"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("openai-processing-ms", "12")
                    .set_body_raw(answer.as_bytes().to_vec(), "application/json"),
            )
            .expect(1)
            .mount(&mock)
            .await;
        // Policies that would block any POST do not apply to a GET.
        let server = Server::start(config(
            &mock.uri(),
            json!({"POLICY_MAX_TOKENS": 1, "POLICY_ENFORCE_USER_IDS": true}),
        ))
        .await;

        let reply = server
            .send(
                server
                    .request(Method::GET, "/v1/models?limit=2")
                    .header("authorization", "Bearer sk-test"),
                "",
            )
            .await;

        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, answer.as_bytes());
        assert_eq!(reply.header("openai-processing-ms"), Some("12"));
        let seen = received_on(&mock, "/v1/models").await;
        assert_eq!(seen[0].method.as_str(), "GET");
        assert!(seen[0].body.is_empty());
        assert_eq!(
            seen[0]
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer sk-test")
        );
        let records = server.records(1).await;
        assert_eq!(records[0].endpoint, "/v1/models");
        assert!(records[0].flags.is_empty());
        mock.verify().await;
    })
    .await;
}

fn cors_config(upstream: &str) -> usagepanda_core::Config {
    config(
        upstream,
        json!({
            "CORS_HEADERS": {
                "Access-Control-Allow-Origin": "https://app.example",
                "Access-Control-Allow-Headers": "authorization, content-type",
                "X-Cors-Marker": "yes",
            },
            "POLICY_MAX_TOKENS": 10,
        }),
    )
}

fn assert_cors(reply: &common::Reply) {
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example"),
        "missing CORS on a {} answer: {:?}",
        reply.status,
        reply.headers
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(reply.header("x-cors-marker"), Some("yes"));
}

#[tokio::test]
async fn options_is_answered_at_once_with_cors_headers() {
    within("test", async {
        let mock = MockServer::start().await;
        let server = Server::start(cors_config(&mock.uri())).await;

        let reply = server
            .send(
                server
                    .request(Method::OPTIONS, CHAT)
                    .header("origin", "https://app.example")
                    .header("access-control-request-method", "POST"),
                "",
            )
            .await;

        assert_eq!(reply.status, 200);
        assert_cors(&reply);
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
async fn cors_headers_are_on_every_answer_including_errors() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .respond_with(
                ResponseTemplate::new(500).set_body_raw(b"Bad Gateway".to_vec(), "text/plain"),
            )
            .mount(&mock)
            .await;
        let server = Server::start(cors_config(&mock.uri())).await;

        // 200 from the upstream.
        let ok = server.post_json(CHAT, &chat_request("hi")).await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_cors(&ok);
        // 422: blocked by the max-tokens policy.
        let mut big = chat_request("hi");
        big["max_tokens"] = json!(50);
        let blocked = server.post_json(CHAT, &big).await;
        assert_eq!(blocked.status, 422);
        assert_cors(&blocked);
        // 400: not JSON.
        let bad = server.send(server.post(CHAT), "nope").await;
        assert_eq!(bad.status, 400);
        assert_cors(&bad);
        // 403: no key.
        let no_key = server
            .send(
                server
                    .request(Method::POST, CHAT)
                    .header("content-type", "application/json"),
                chat_request("hi").to_string(),
            )
            .await;
        assert_eq!(no_key.status, 403);
        assert_cors(&no_key);
        // 500 passed through from the upstream.
        let upstream_error = server
            .post_json(
                "/v1/embeddings",
                &json!({"model": "text-embedding-3-small", "input": "x"}),
            )
            .await;
        assert_eq!(upstream_error.status, 500);
        assert_cors(&upstream_error);
        server.records(5).await;
    })
    .await;
}

#[tokio::test]
async fn client_authorization_is_forwarded() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        // The configured key must not replace the client's own.
        let server = Server::start(config(
            &mock.uri(),
            json!({"OPENAI_API_KEY": "sk-from-config"}),
        ))
        .await;

        let reply = server
            .send(
                server
                    .request(Method::POST, CHAT)
                    .header("authorization", "Bearer sk-client-1"),
                chat_request("hi").to_string(),
            )
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        let seen = received_on(&mock, CHAT).await;
        let auth: Vec<_> = seen[0].headers.get_all("authorization").iter().collect();
        assert_eq!(auth, ["Bearer sk-client-1"]);
        server.records(1).await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn configured_key_is_injected_when_the_client_sends_none() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(
            &mock.uri(),
            json!({"OPENAI_API_KEY": "sk-from-config"}),
        ))
        .await;

        let reply = server
            .send(
                server
                    .request(Method::POST, CHAT)
                    .header("content-type", "application/json"),
                chat_request("hi").to_string(),
            )
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        let seen = received_on(&mock, CHAT).await;
        assert_eq!(
            seen[0]
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer sk-from-config")
        );
        server.records(1).await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn no_key_anywhere_is_403_access_denied() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        let reply = server
            .send(
                server
                    .request(Method::POST, CHAT)
                    .header("content-type", "application/json"),
                chat_request("hi").to_string(),
            )
            .await;

        assert_eq!(reply.status, 403);
        assert_eq!(reply.error_type(), "access_denied");
        assert_eq!(reply.error_message(), "Invalid OpenAI API key");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let records = server.records(1).await;
        assert!(records[0].error);
        assert_eq!(records[0].status, 403);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn usagepanda_headers_and_accept_encoding_are_not_forwarded_organization_is() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        let reply = server
            .send(
                server
                    .post(CHAT)
                    .header("openai-organization", "org-42")
                    .header("openai-project", "proj-7")
                    .header("accept-encoding", "gzip, br")
                    .header("x-usagepanda-api-key", "up-key-1")
                    .header("x-usagepanda-trace-id", "trace-1")
                    .header("x-usagepanda-log-request", "true")
                    .header("x-usagepanda-max-tokens", "100")
                    .header("x-usagepanda-something-new", "v"),
                chat_request("hi").to_string(),
            )
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        let seen = received_on(&mock, CHAT).await;
        let headers = &seen[0].headers;
        assert_eq!(
            headers
                .get("openai-organization")
                .and_then(|v| v.to_str().ok()),
            Some("org-42")
        );
        assert_eq!(
            headers.get("openai-project").and_then(|v| v.to_str().ok()),
            Some("proj-7")
        );
        assert!(headers.get("accept-encoding").is_none(), "{headers:?}");
        let ours: Vec<_> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-usagepanda-"))
            .collect();
        assert!(ours.is_empty(), "forwarded: {ours:?}");
        let records = server.records(1).await;
        assert_eq!(records[0].metadata.organization.as_deref(), Some("org-42"));
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn trace_id_is_recorded_in_stats() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        let reply = server
            .send(
                server
                    .post(CHAT)
                    .header("x-usagepanda-trace-id", "trace_ABC-123")
                    .header("user-agent", "tests/1.0"),
                chat_request("hi").to_string(),
            )
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        let records = server.records(1).await;
        assert_eq!(
            records[0].metadata.trace_id.as_deref(),
            Some("trace_ABC-123")
        );
        assert_eq!(records[0].metadata.user_agent.as_deref(), Some("tests/1.0"));
        assert_eq!(records[0].metadata.ip_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(records[0].metadata.upstream_attempts, Some(1));
        assert!(records[0].metadata.latency.is_some());
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_trace_id_is_400() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;

        for bad in ["has space", "semi;colon", &"a".repeat(100)] {
            let reply = server
                .send(
                    server.post(CHAT).header("x-usagepanda-trace-id", bad),
                    chat_request("hi").to_string(),
                )
                .await;
            assert_eq!(reply.status, 400, "trace id {bad:?}: {}", reply.text());
            assert!(
                reply.error_message().contains("x-usagepanda-trace-id"),
                "{}",
                reply.text()
            );
        }
        let records = server.records(3).await;
        assert!(records.iter().all(|r| r.error && r.status == 400));
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn keep_alive_connection_serves_several_requests() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(3)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({}))).await;
        let body = chat_request("hi").to_string();
        let one = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );

        let mut stream = common::raw_connect(server.addr, one.as_bytes()).await;
        for i in 0..3 {
            if i > 0 {
                tokio::io::AsyncWriteExt::write_all(&mut stream, one.as_bytes())
                    .await
                    .expect("write");
            }
            let response = common::read_raw_response(&mut stream).await;
            assert_eq!(response.status, 200, "request {i}: {response:?}");
            let answer: serde_json::Value =
                serde_json::from_slice(&response.body).expect("JSON answer");
            assert_eq!(common::content_of(&answer), "ok");
        }
        server.records(3).await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn stats_carry_proxy_id_and_trim_request_and_response_by_default() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("answer text")))
            .expect(2)
            .mount(&mock)
            .await;
        let server = Server::start(config(
            &mock.uri(),
            json!({"PROXY_ID": {"name": "edge-1", "region": "eu"}}),
        ))
        .await;

        let reply = server.post_json(CHAT, &chat_request("prompt text")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let logged = server
            .send(
                server
                    .post(CHAT)
                    .header("x-usagepanda-log-request", "true")
                    .header("x-usagepanda-log-response", "true"),
                chat_request("prompt text").to_string(),
            )
            .await;
        assert_eq!(logged.status, 200, "{}", logged.text());

        let records = server.records(2).await;
        let trimmed = common::record_json(&records[0]);
        assert_eq!(
            trimmed["metadata"]["proxy_id"],
            json!({"name": "edge-1", "region": "eu"})
        );
        assert_eq!(trimmed["request"]["model"], "gpt-4o");
        assert!(trimmed["request"].get("messages").is_none(), "{trimmed}");
        assert!(trimmed["response"].get("choices").is_none(), "{trimmed}");
        assert!(!records[0].to_json().contains("prompt text"));
        assert!(!records[0].to_json().contains("answer text"));
        assert_eq!(trimmed["usage"]["total_tokens"], 7, "{trimmed}");
        let full = common::record_json(&records[1]);
        assert_eq!(full["request"]["messages"][0]["content"], "prompt text");
        assert_eq!(
            full["response"]["choices"][0]["message"]["content"],
            "answer text"
        );
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn other_methods_and_non_json_uploads_are_passed_through() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/v1/files/file-1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": "file-1", "deleted": true})),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let multipart = "--XyZ\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n\
                         --XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\
                         content-type: application/octet-stream\r\n\r\n\x00\x01binary\r\n--XyZ--\r\n";
        Mock::given(method("POST"))
            .and(path("/v1/files"))
            .and(body_bytes(multipart.as_bytes().to_vec()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "file-2"})))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), json!({"POLICY_MAX_TOKENS": 1}))).await;

        let deleted = server
            .send(
                server
                    .request(Method::DELETE, "/v1/files/file-1")
                    .header("authorization", "Bearer sk-test"),
                "",
            )
            .await;
        assert_eq!(deleted.status, 200, "{}", deleted.text());
        assert_eq!(deleted.json()["deleted"], true);

        let uploaded = server
            .send(
                server
                    .request(Method::POST, "/v1/files")
                    .header("authorization", "Bearer sk-test")
                    .header("content-type", "multipart/form-data; boundary=XyZ"),
                multipart,
            )
            .await;
        assert_eq!(uploaded.status, 200, "{}", uploaded.text());
        let seen = received_on(&mock, "/v1/files").await;
        assert_eq!(
            seen[0]
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("multipart/form-data; boundary=XyZ")
        );
        server.records(2).await;
        mock.verify().await;
    })
    .await;
}
