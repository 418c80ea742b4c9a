#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! Graceful shutdown: in-flight requests finish and are recorded, new connections are refused.

mod common;

use std::time::Duration;

use common::{CHAT, Server, chat_completion, chat_request, config, content_of, within};
use serde_json::json;
use tokio::net::TcpStream;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn in_flight_request_completes_after_shutdown_and_new_connections_are_refused() {
    within("test", async {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHAT))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(chat_completion("slow but sure"))
                    .set_delay(Duration::from_millis(300)),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let mut server = Server::start(config(&mock.uri(), json!({}))).await;
        let serve_task = server.take_task();

        let builder = server.post(CHAT);
        let in_flight = tokio::spawn(async move {
            let client = common::client();
            common::send_with(&client, builder, chat_request("hi").to_string().into()).await
        });
        // Let the request reach the upstream.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while mock
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "request never reached upstream"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.trigger_shutdown();
        tokio::time::sleep(Duration::from_millis(50)).await;

        // The listener is gone while the request is still in flight.
        assert!(!in_flight.is_finished(), "the slow request ended too early");
        let refused = TcpStream::connect(server.addr).await;
        assert!(
            refused.is_err(),
            "a new connection was accepted after shutdown"
        );

        let reply = in_flight.await.expect("request task");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(content_of(&reply.json()), "slow but sure");
        let result = serve_task.await.expect("serve task");
        assert!(result.is_ok(), "{result:?}");
        let records = server.records(1).await;
        assert_eq!(records[0].status, 200);
        mock.verify().await;
    })
    .await;
}
