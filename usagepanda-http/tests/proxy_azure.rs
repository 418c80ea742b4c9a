#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! Azure OpenAI routing: deployment URL, `api-version`, bare `api-key`, no key mix-ups.

mod common;

use common::{CHAT, Server, chat_completion, chat_request, config, content_of, within};
use http::Method;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const AZURE_PATH: &str = "/myres/openai/deployments/prod-4o/chat/completions";

fn azure_config(mock: &MockServer) -> usagepanda_core::Config {
    config(
        // The OpenAI base points elsewhere: an Azure request must not go there.
        "http://127.0.0.1:9",
        json!({
            "AZURE_ENDPOINT": format!("{}/{{resource}}", mock.uri()),
            "AZURE_DEPLOYMENT_MAP": {"gpt-4o": "prod-4o"},
            "AZURE_API_VERSION": "2024-10-21",
        }),
    )
}

#[tokio::test]
async fn azure_resource_header_routes_to_the_deployment_with_a_bare_api_key() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(AZURE_PATH))
            .and(query_param("api-version", "2024-10-21"))
            .and(header("api-key", "az-key-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("from azure")))
            .expect(1)
            .mount(&mock)
            .await;
        let server = Server::start(azure_config(&mock)).await;

        let reply = server
            .send(
                server
                    .request(Method::POST, CHAT)
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer az-key-1")
                    .header("x-usagepanda-azure-resource", "myres"),
                chat_request("hi").to_string(),
            )
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(content_of(&reply.json()), "from azure");
        let seen: Vec<Request> = mock.received_requests().await.unwrap_or_default();
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert_eq!(request.url.path(), AZURE_PATH);
        assert_eq!(request.url.query(), Some("api-version=2024-10-21"));
        let api_keys: Vec<_> = request.headers.get_all("api-key").iter().collect();
        assert_eq!(api_keys, ["az-key-1"]);
        assert!(
            request.headers.get("authorization").is_none(),
            "{:?}",
            request.headers
        );
        assert!(request.headers.get("x-usagepanda-azure-resource").is_none());
        let body: Value = request.body_json().expect("JSON body");
        assert_eq!(body, chat_request("hi"));
        let records = server.records(1).await;
        let autorouted = serde_json::Value::Object(records[0].autorouted.clone());
        assert_eq!(autorouted["azure"]["resource"], "myres");
        assert_eq!(autorouted["azure"]["deployment"], "prod-4o");
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn azure_with_the_configured_openai_key() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(AZURE_PATH))
            .and(header("api-key", "az-from-config"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok")))
            .expect(1)
            .mount(&mock)
            .await;
        let mut config = azure_config(&mock);
        config.openai_api_key = Some("az-from-config".to_owned());
        let server = Server::start(config).await;

        let reply = server
            .send(
                server
                    .request(Method::POST, CHAT)
                    .header("content-type", "application/json")
                    .header("x-usagepanda-azure-resource", "myres"),
                chat_request("hi").to_string(),
            )
            .await;

        assert_eq!(reply.status, 200, "{}", reply.text());
        server.records(1).await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_azure_requests_never_mix_keys() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(AZURE_PATH))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(chat_completion("ok"))
                    .set_delay(std::time::Duration::from_millis(20)),
            )
            .expect(20)
            .mount(&mock)
            .await;
        let server = std::sync::Arc::new(Server::start(azure_config(&mock)).await);

        let mut tasks = Vec::new();
        for i in 0..20 {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                server
                    .send(
                        server
                            .request(Method::POST, CHAT)
                            .header("content-type", "application/json")
                            .header("authorization", format!("Bearer key-{i}"))
                            .header("x-usagepanda-azure-resource", "myres"),
                        chat_request(&format!("marker-{i}")).to_string(),
                    )
                    .await
            }));
        }
        for task in tasks {
            let reply = task.await.expect("request task");
            assert_eq!(reply.status, 200, "{}", reply.text());
        }

        let seen = mock.received_requests().await.unwrap_or_default();
        assert_eq!(seen.len(), 20);
        let mut markers = Vec::new();
        for request in &seen {
            let body: Value = request.body_json().expect("JSON body");
            let content = body["messages"][0]["content"].as_str().expect("content");
            let marker = content.strip_prefix("marker-").expect("marker");
            let key = request
                .headers
                .get("api-key")
                .and_then(|v| v.to_str().ok())
                .expect("api-key");
            assert_eq!(
                key,
                format!("key-{marker}"),
                "request {content} went out with {key}"
            );
            assert!(request.headers.get("authorization").is_none());
            markers.push(marker.parse::<u32>().expect("number"));
        }
        markers.sort_unstable();
        assert_eq!(markers, (0..20).collect::<Vec<_>>());
        server.records(20).await;
        mock.verify().await;
    })
    .await;
}

#[tokio::test]
async fn azure_model_without_a_deployment_is_400_and_not_sent() {
    within("test", async {
        let mock = MockServer::start().await;
        let server = Server::start(azure_config(&mock)).await;
        let mut request = chat_request("hi");
        request["model"] = json!("unmapped-model");

        let reply = server
            .send(
                server
                    .post(CHAT)
                    .header("x-usagepanda-azure-resource", "myres"),
                request.to_string(),
            )
            .await;

        assert_eq!(reply.status, 400, "{}", reply.text());
        assert!(reply.error_message().contains("unmapped-model"));
        assert!(
            mock.received_requests()
                .await
                .unwrap_or_default()
                .is_empty()
        );
        server.records(1).await;
    })
    .await;
}
