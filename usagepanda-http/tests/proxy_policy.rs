#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! Policies over the wire: blocks, redactions and auto-moderation.

mod common;

use common::{
    CHAT, Server, chat_completion, chat_request, config, content_of, flag_types, received_on,
    within,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MODERATIONS: &str = "/v1/moderations";

fn wordlists(request: &str, response: &str) -> Value {
    json!({
        "POLICY_CUSTOM_WORDLIST": ["secret plan"],
        "POLICY_REQUEST_WORDLIST": request,
        "POLICY_RESPONSE_WORDLIST": response,
    })
}

#[tokio::test]
async fn blocked_request_is_422_naming_every_flag_and_never_reaches_upstream() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server = Server::start(config(
            &mock.uri(),
            json!({"POLICY_MAX_TOKENS": 10, "POLICY_ENFORCE_USER_IDS": true}),
        ))
        .await;
        let mut request = chat_request("hello");
        request["max_tokens"] = json!(50);

        let reply = server.post_json(CHAT, &request).await;

        assert_eq!(reply.status, 422, "{}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(
            reply.error_message(),
            "Usage Panda: Config set to max tokens of: 10; request was: 50, \
             Config set to block requests without user field"
        );
        assert_eq!(reply.error_type(), "invalid_request");
        assert_eq!(reply.json()["error"]["param"], Value::Null);
        let records = server.records(1).await;
        assert_eq!(
            flag_types(&records[0]),
            ["policy_max_tokens", "policy_enforce_user_ids"]
        );
        assert!(records[0].error);
        assert_eq!(records[0].status, 422);
        assert_eq!(records[0].metadata.upstream_attempts, None);
        mock.verify().await;
    })
    .await;
}

/// BEHAVIOR.md gives the 422 body exactly:
/// `{"error":{"message":"Usage Panda: ...","type":"invalid_request","param":null,"code":null}}`.
#[tokio::test]
async fn blocked_request_body_has_the_documented_shape() {
    within("test", async {
        let mock = MockServer::start().await;
        let server = Server::start(config(&mock.uri(), json!({"POLICY_MAX_TOKENS": 10}))).await;
        let mut request = chat_request("hello");
        request["max_tokens"] = json!(50);

        let reply = server.post_json(CHAT, &request).await;

        assert_eq!(reply.status, 422);
        assert_eq!(
            reply.json(),
            json!({"error": {
                "message": "Usage Panda: Config set to max tokens of: 10; request was: 50",
                "type": "invalid_request",
                "param": null,
                "code": null,
            }})
        );
        server.records(1).await;
    })
    .await;
}

#[tokio::test]
async fn redacted_request_reaches_upstream_redacted() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("fine")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), wordlists("custom:redact", ""))).await;

        let reply = server
            .post_json(CHAT, &chat_request("tell me the Secret Plan now"))
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(content_of(&reply.json()), "fine");
        let seen = received_on(&mock, CHAT).await;
        let body: Value = seen[0].body_json().expect("upstream got JSON");
        assert_eq!(body["messages"][0]["content"], "tell me the **** now");
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(body["max_tokens"], 5);
        let raw = String::from_utf8_lossy(&seen[0].body).to_lowercase();
        assert!(!raw.contains("secret plan"), "{raw}");
        let records = server.records(1).await;
        assert_eq!(flag_types(&records[0]), ["policy_wordlists"]);
        assert_eq!(
            records[0].flags[0].description,
            "Request matched known wordlists: custom"
        );
        assert!(!records[0].error);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn response_is_redacted() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(chat_completion("the secret plan is here, secret plan!")),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), wordlists("", "custom:redact"))).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        assert_eq!(content_of(&body), "the **** is here, ****!");
        assert_eq!(body["usage"]["total_tokens"], 7);
        let records = server.records(1).await;
        assert_eq!(flag_types(&records[0]), ["policy_wordlists"]);
        assert_eq!(
            records[0].flags[0].description,
            "Response matched known wordlists: custom"
        );
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn response_block_is_422_and_withholds_the_answer() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(chat_completion("the secret plan is here")),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(&mock.uri(), wordlists("", "custom:block"))).await;

        let reply = server.post_json(CHAT, &chat_request("hi")).await;

        assert_eq!(reply.status, 422, "{}", reply.text());
        assert_eq!(
            reply.error_message(),
            "Usage Panda: Response matched known wordlists: custom"
        );
        assert!(!reply.text().to_lowercase().contains("secret plan"));
        assert!(reply.json().get("choices").is_none());
        let records = server.records(1).await;
        assert!(records[0].error);
        assert_eq!(records[0].status, 422);
        assert_eq!(flag_types(&records[0]), ["policy_wordlists"]);
        mock.verify().await;
    })
    .await;
}

async fn moderation_mock(mock: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(MODERATIONS))
        .respond_with(answer)
        .expect(1)
        .mount(mock)
        .await;
}

#[tokio::test]
async fn flagged_by_moderation_is_422_naming_categories_and_main_endpoint_not_called() {
    within("test", async {
        let mock = MockServer::start().await;
        moderation_mock(
            &mock,
            ResponseTemplate::new(200).set_body_json(json!({
                "id": "modr-1",
                "model": "omni-moderation-latest",
                "results": [{
                    "flagged": true,
                    "categories": {"violence": true, "hate": false, "harassment": true},
                }],
            })),
        )
        .await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server =
            Server::start(config(&mock.uri(), json!({"POLICY_AUTO_MODERATE": true}))).await;

        let reply = server.post_json(CHAT, &chat_request("something bad")).await;

        assert_eq!(reply.status, 422, "{}", reply.text());
        assert_eq!(
            reply.error_message(),
            "Usage Panda: Moderation flagged this request: violence, harassment"
        );
        let seen = received_on(&mock, MODERATIONS).await;
        let body: Value = seen[0].body_json().expect("moderation body is JSON");
        assert_eq!(body, json!({"input": ["something bad"]}));
        assert_eq!(
            seen[0]
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer sk-test")
        );
        let records = server.records(1).await;
        assert_eq!(flag_types(&records[0]), ["policy_auto_moderate"]);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn not_flagged_by_moderation_is_forwarded() {
    within("test", async {
        let mock = MockServer::start().await;
        moderation_mock(
            &mock,
            ResponseTemplate::new(200).set_body_json(json!({
                "results": [{"flagged": false, "categories": {"violence": false}}],
            })),
        )
        .await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server =
            Server::start(config(&mock.uri(), json!({"POLICY_AUTO_MODERATE": true}))).await;

        let reply = server
            .post_json(CHAT, &chat_request("a kind request"))
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(content_of(&reply.json()), "ok");
        let records = server.records(1).await;
        assert!(records[0].flags.is_empty());
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn moderation_failure_blocks_by_default() {
    within("test", async {
        let mock = MockServer::start().await;
        moderation_mock(&mock, ResponseTemplate::new(500).set_body_string("oops")).await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server =
            Server::start(config(&mock.uri(), json!({"POLICY_AUTO_MODERATE": true}))).await;

        let reply = server.post_json(CHAT, &chat_request("hello")).await;

        assert_eq!(reply.status, 422, "{}", reply.text());
        assert!(
            reply
                .error_message()
                .starts_with("Usage Panda: Moderation could not be checked"),
            "{}",
            reply.text()
        );
        let records = server.records(1).await;
        assert_eq!(flag_types(&records[0]), ["policy_auto_moderate"]);
        assert!(records[0].error);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn moderation_failure_is_forwarded_with_fail_open() {
    within("test", async {
        let mock = MockServer::start().await;
        moderation_mock(&mock, ResponseTemplate::new(500).set_body_string("oops")).await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(config(
            &mock.uri(),
            json!({"POLICY_AUTO_MODERATE": true, "MODERATION_FAIL_OPEN": true}),
        ))
        .await;

        let reply = server.post_json(CHAT, &chat_request("hello")).await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(content_of(&reply.json()), "ok");
        let records = server.records(1).await;
        // The failed check is still audited.
        assert_eq!(flag_types(&records[0]), ["policy_auto_moderate"]);
        assert!(!records[0].error);
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn autoreply_answers_without_calling_upstream() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(0)
            .mount(&mock)
            .await;
        let server = Server::start(config(
            &mock.uri(),
            json!({"POLICY_AUTOREPLY": [
                {"type": "chat", "request": "ping", "response": "pong"},
            ]}),
        ))
        .await;

        let reply = server.post_json(CHAT, &chat_request("ping")).await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        assert_eq!(content_of(&body), "pong");
        assert_eq!(body["object"], "chat.completion");
        let records = server.records(1).await;
        assert_eq!(flag_types(&records[0]), ["policy_autoreply"]);
        assert_eq!(
            records[0].flags[0].description,
            "Request matched known chat autoreply"
        );
        mock.verify().await;
    })
    .await;
}
