#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! Remote config (`LOCAL_MODE = false`): per-key config from the Usage Panda API, its cache,
//! stats uploads, and what happens when the API fails or no key is given.

mod common;

use common::{CHAT, Server, chat_completion, chat_request, config, content_of, within};
use http::Method;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PANDA_KEY: &str = "up-key-1";

fn remote_config(llm: &MockServer, api: &MockServer, extra: Value) -> usagepanda_core::Config {
    let mut extra = extra;
    extra["LOCAL_MODE"] = json!(false);
    extra["USAGE_PANDA_API"] = json!(api.uri());
    config(&llm.uri(), extra)
}

async fn llm_answers(llm: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
        .expect(times)
        .mount(llm)
        .await;
}

fn with_tokens(n: u64) -> Value {
    let mut request = chat_request("hi");
    request["max_tokens"] = json!(n);
    request
}

fn panda_post(server: &Server) -> http::request::Builder {
    server.post(CHAT).header("x-usagepanda-api-key", PANDA_KEY)
}

#[tokio::test]
async fn remote_config_is_loaded_applied_cached_and_stats_are_uploaded() {
    within("test", async {
        let llm = MockServer::start().await;
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/proxy"))
            .and(header("x-usagepanda-key", PANDA_KEY))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"POLICY_MAX_TOKENS": 10})),
            )
            .expect(1)
            .mount(&api)
            .await;
        Mock::given(method("POST"))
            .and(path("/proxy"))
            .and(header("x-usagepanda-key", PANDA_KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(2)
            .mount(&api)
            .await;
        llm_answers(&llm, 1).await;
        let server = Server::start(remote_config(&llm, &api, json!({}))).await;

        // Blocked by the remote POLICY_MAX_TOKENS (the local config has none).
        let blocked = server
            .send(panda_post(&server), with_tokens(50).to_string())
            .await;
        assert_eq!(blocked.status, 422, "{}", blocked.text());
        assert_eq!(
            blocked.error_message(),
            "Usage Panda: Config set to max tokens of: 10; request was: 50"
        );
        // Sync upload: the record is posted before the answer.
        let uploads: Vec<_> = api
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST")
            .collect();
        assert_eq!(uploads.len(), 1);

        // Within CONFIG_CACHE_MINUTES: no new fetch.
        let allowed = server
            .send(panda_post(&server), with_tokens(5).to_string())
            .await;
        assert_eq!(allowed.status, 200, "{}", allowed.text());
        assert_eq!(content_of(&allowed.json()), "ok");

        let records = server.records(2).await;
        assert!(!records[0].config_cached, "first load is not cached");
        assert!(records[1].config_cached, "second load comes from the cache");
        let uploads: Vec<_> = api
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST")
            .collect();
        assert_eq!(uploads.len(), 2);
        let first: Value = uploads[0].body_json().expect("uploaded record is JSON");
        assert_eq!(first["endpoint"], CHAT);
        assert_eq!(first["status"], 422);
        assert_eq!(first["flags"][0]["type"], "policy_max_tokens");
        let second: Value = uploads[1].body_json().expect("uploaded record is JSON");
        assert_eq!(second["status"], 200);
        for upload in &uploads {
            let text = String::from_utf8_lossy(&upload.body);
            assert!(!text.contains(PANDA_KEY), "{text}");
            assert!(!text.contains("sk-test"), "{text}");
        }
        // The Usage Panda key does not travel to the LLM API.
        let llm_seen = llm.received_requests().await.unwrap_or_default();
        assert!(llm_seen[0].headers.get("x-usagepanda-api-key").is_none());
        assert!(llm_seen[0].headers.get("x-usagepanda-key").is_none());
        api.verify().await;
        llm.verify().await;
    })
    .await;
}

#[tokio::test]
async fn configured_usage_panda_key_is_used_when_the_request_has_none() {
    within("test", async {
        let llm = MockServer::start().await;
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/proxy"))
            .and(header("x-usagepanda-key", "up-configured"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&api)
            .await;
        Mock::given(method("POST"))
            .and(path("/proxy"))
            .and(header("x-usagepanda-key", "up-configured"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&api)
            .await;
        llm_answers(&llm, 1).await;
        let server = Server::start(remote_config(
            &llm,
            &api,
            json!({"USAGE_PANDA_API_KEY": "up-configured"}),
        ))
        .await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        server.records(1).await;
        api.verify().await;
        llm.verify().await;
    })
    .await;
}

#[tokio::test]
async fn config_api_error_is_500() {
    within("test", async {
        let llm = MockServer::start().await;
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/proxy"))
            .respond_with(ResponseTemplate::new(500).set_body_string("down"))
            .expect(1)
            .mount(&api)
            .await;
        llm_answers(&llm, 0).await;
        let server = Server::start(remote_config(&llm, &api, json!({}))).await;

        let reply = server
            .send(panda_post(&server), chat_request("hi").to_string())
            .await;

        assert_eq!(reply.status, 500, "{}", reply.text());
        assert_eq!(reply.error_type(), "server_error");
        assert!(
            reply
                .error_message()
                .starts_with("Error loading Usage Panda config"),
            "{}",
            reply.text()
        );
        let records = server.records(1).await;
        assert!(records[0].error);
        assert_eq!(records[0].status, 500);
        llm.verify().await;
    })
    .await;
}

#[tokio::test]
async fn config_api_error_with_fail_open_uses_the_local_config() {
    within("test", async {
        let llm = MockServer::start().await;
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/proxy"))
            .respond_with(ResponseTemplate::new(500).set_body_string("down"))
            .mount(&api)
            .await;
        Mock::given(method("POST"))
            .and(path("/proxy"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&api)
            .await;
        llm_answers(&llm, 1).await;
        let server = Server::start(remote_config(
            &llm,
            &api,
            json!({"FAIL_OPEN_ON_CONFIG_ERROR": true, "POLICY_MAX_TOKENS": 20}),
        ))
        .await;

        // The local limit applies...
        let blocked = server
            .send(panda_post(&server), with_tokens(50).to_string())
            .await;
        assert_eq!(blocked.status, 422, "{}", blocked.text());
        assert_eq!(
            blocked.error_message(),
            "Usage Panda: Config set to max tokens of: 20; request was: 50"
        );
        // ...and requests within it go through.
        let allowed = server
            .send(panda_post(&server), with_tokens(10).to_string())
            .await;
        assert_eq!(allowed.status, 200, "{}", allowed.text());
        server.records(2).await;
        llm.verify().await;
    })
    .await;
}

#[tokio::test]
async fn missing_usage_panda_key_is_403() {
    within("test", async {
        let llm = MockServer::start().await;
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(0)
            .mount(&api)
            .await;
        llm_answers(&llm, 0).await;
        let server = Server::start(remote_config(&llm, &api, json!({}))).await;

        let reply = server
            .send(
                server
                    .request(Method::POST, CHAT)
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer sk-test"),
                chat_request("hi").to_string(),
            )
            .await;

        assert_eq!(reply.status, 403, "{}", reply.text());
        assert_eq!(reply.error_type(), "access_denied");
        assert_eq!(reply.error_message(), "Invalid Usage Panda API key");
        let records = server.records(1).await;
        assert_eq!(records[0].status, 403);
        assert!(api.received_requests().await.unwrap_or_default().is_empty());
        api.verify().await;
        llm.verify().await;
    })
    .await;
}

#[tokio::test]
async fn async_stats_uploads_are_flushed_on_shutdown() {
    within("test", async {
        let llm = MockServer::start().await;
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/proxy"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&api)
            .await;
        Mock::given(method("POST"))
            .and(path("/proxy"))
            .and(header("x-usagepanda-key", PANDA_KEY))
            .respond_with(
                ResponseTemplate::new(200).set_delay(std::time::Duration::from_millis(300)),
            )
            .expect(3)
            .mount(&api)
            .await;
        llm_answers(&llm, 3).await;
        let server = Server::start(remote_config(
            &llm,
            &api,
            json!({"ASYNC_STATS_UPLOAD": true}),
        ))
        .await;

        let started = std::time::Instant::now();
        for _ in 0..3 {
            let reply = server
                .send(panda_post(&server), chat_request("hi").to_string())
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        // Answers do not wait for the (slow) uploads.
        assert!(
            started.elapsed() < std::time::Duration::from_millis(800),
            "took {:?}",
            started.elapsed()
        );
        server.stop().await.expect("serve stops");
        let posts = api
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST")
            .count();
        assert_eq!(posts, 3, "every upload finished before serve returned");
        api.verify().await;
        llm.verify().await;
    })
    .await;
}

#[tokio::test]
async fn configs_are_cached_per_key_and_stream_stats_are_uploaded() {
    within("test", async {
        let llm = MockServer::start().await;
        let api = MockServer::start().await;
        for (key, limit) in [("up-a", 10), ("up-b", 100)] {
            Mock::given(method("GET"))
                .and(path("/proxy"))
                .and(header("x-usagepanda-key", key))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"POLICY_MAX_TOKENS": limit})),
                )
                .expect(1)
                .mount(&api)
                .await;
        }
        Mock::given(method("POST"))
            .and(path("/proxy"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&api)
            .await;
        let stream = "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n\
                      data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n\
                      data: [DONE]\n\n";
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(stream.as_bytes().to_vec(), "text/event-stream"),
            )
            .mount(&llm)
            .await;
        let server = Server::start(remote_config(&llm, &api, json!({}))).await;
        let mut streaming = with_tokens(50);
        streaming["stream"] = json!(true);

        for _ in 0..2 {
            let a = server
                .send(
                    server.post(CHAT).header("x-usagepanda-api-key", "up-a"),
                    streaming.to_string(),
                )
                .await;
            assert_eq!(a.status, 422, "key up-a has a limit of 10: {}", a.text());
            let b = server
                .send(
                    server.post(CHAT).header("x-usagepanda-api-key", "up-b"),
                    streaming.to_string(),
                )
                .await;
            assert_eq!(b.status, 200, "key up-b has a limit of 100: {}", b.text());
            assert_eq!(b.body, stream.as_bytes());
        }

        let records = server.records(4).await;
        assert_eq!(records.iter().filter(|r| r.stream && r.status == 200).count(), 2);
        // Stream records are uploaded when the stream ends: poll for them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let uploads = loop {
            let uploads: Vec<Value> = api
                .received_requests()
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.method.as_str() == "POST")
                .map(|r| r.body_json().expect("record JSON"))
                .collect();
            if uploads.len() >= 4 || std::time::Instant::now() > deadline {
                break uploads;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(uploads.len(), 4);
        let streamed: Vec<&Value> = uploads.iter().filter(|u| u["status"] == 200).collect();
        assert_eq!(streamed.len(), 2);
        for u in streamed {
            assert_eq!(u["stream"], true);
            assert_eq!(u["usage"]["total_tokens"], 2);
        }
        api.verify().await;
    })
    .await;
}

#[tokio::test]
async fn cache_minutes_zero_fetches_every_time() {
    within("test", async {
        let llm = MockServer::start().await;
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/proxy"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(3)
            .mount(&api)
            .await;
        Mock::given(method("POST"))
            .and(path("/proxy"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&api)
            .await;
        llm_answers(&llm, 3).await;
        let server = Server::start(remote_config(
            &llm,
            &api,
            json!({"CONFIG_CACHE_MINUTES": 0}),
        ))
        .await;

        for _ in 0..3 {
            let reply = server
                .send(panda_post(&server), chat_request("hi").to_string())
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        let records = server.records(3).await;
        assert!(records.iter().all(|r| !r.config_cached));
        api.verify().await;
        llm.verify().await;
    })
    .await;
}
