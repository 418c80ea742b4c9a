//! Streaming equals whole-answer filtering, for any text and any cut of the byte stream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderMap, Method};
use proptest::prelude::*;
use serde_json::{Value, json};
use usagepanda_core::{ClientRequest, Context, Decision, Policy, Step, StreamEnd};

const PHRASES: [&str; 4] = ["project falcon", "darn", "top secret plan", "é-lan"];

static REDACT: LazyLock<Policy> = LazyLock::new(|| make_policy("redact"));
static BLOCK: LazyLock<Policy> = LazyLock::new(|| make_policy("block"));
static EMPTY: LazyLock<Policy> = LazyLock::new(|| Policy::from_toml("").expect("policy"));

fn make_policy(action: &str) -> Policy {
    let toml = format!(
        "POLICY_RESPONSE_WORDLIST = \"custom:{action}\"\nPOLICY_CUSTOM_WORDLIST = {:?}\n",
        PHRASES
    );
    Policy::from_toml(&toml).expect("policy")
}

fn pending(policy: &Policy) -> usagepanda_core::PendingUpstream {
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let request = ClientRequest {
        method: Method::POST,
        path: "/v1/chat/completions".to_owned(),
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_string()),
    };
    match policy.begin(request, Context::offline()) {
        Step::Forward(p) => p,
        other => panic!("expected forward, got {other:?}"),
    }
}

/// The SSE bytes an upstream sends for `pieces`.
fn sse(pieces: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for piece in pieces {
        let event = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
        out.push_str(&format!("data: {event}\n\n"));
    }
    let last = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    out.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
    out.into_bytes()
}

/// Runs the stream cut at `cuts`; returns the client's text, whether an error event came,
/// the raw output and the decision.
fn run_stream(policy: &Policy, bytes: &[u8], cuts: &[usize]) -> (String, bool, String, Decision) {
    let mut exchange = pending(policy).resume_stream();
    let mut out = Vec::new();
    let mut last = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([bytes.len()]) {
        out.extend_from_slice(&exchange.push(&bytes[last..cut]));
        last = cut;
    }
    let (tail, outcome) = exchange.finish(StreamEnd::Complete);
    out.extend_from_slice(&tail);
    let raw = String::from_utf8(out).expect("utf-8 output");
    let mut text = String::new();
    let mut error = false;
    for block in raw.split("\n\n") {
        let Some(data) = block.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).expect("json event");
        if v.get("error").is_some() {
            error = true;
            continue;
        }
        assert!(!error, "content after the error event");
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            text.push_str(c);
        }
    }
    (text, error, raw, outcome.decision)
}

/// The whole-answer result for the same text.
fn whole(policy: &Policy, text: &str) -> (Option<String>, u16) {
    let body = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
    let outcome = pending(policy).resume(200, Bytes::from(body.to_string()));
    let v: Value = serde_json::from_slice(&outcome.body).expect("json");
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_owned);
    (content, outcome.status)
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("project".to_owned()),
        Just("falcon".to_owned()),
        Just("Project Falcon".to_owned()),
        Just("darn".to_owned()),
        Just("DARN".to_owned()),
        Just("darnit".to_owned()),
        Just("top".to_owned()),
        Just("secret".to_owned()),
        Just("plan".to_owned()),
        Just("é-lan".to_owned()),
        Just("日本".to_owned()),
        Just("ok".to_owned()),
        "[a-z]{1,6}".prop_map(|s| s),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            word(),
            prop_oneof![Just(" "), Just(", "), Just(""), Just("\n")],
        ),
        0..24,
    )
    .prop_map(|parts| parts.into_iter().map(|(w, s)| format!("{w}{s}")).collect())
}

/// Splits a text into pieces at the given char positions (pieces may split anywhere).
fn split(text: &str, at: &[usize]) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut cuts: Vec<usize> = at.iter().map(|a| a % (chars.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts.into_iter().chain([chars.len()]) {
        out.push(chars[last..c].iter().collect());
        last = c;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn redacted_stream_equals_whole_redaction(
        t in text(),
        piece_cuts in prop::collection::vec(0usize..400, 0..10),
        byte_cuts in prop::collection::vec(0usize..4000, 0..12),
    ) {
        let policy = &*REDACT;
        let bytes = sse(&split(&t, &piece_cuts));
        let (streamed, error, _, _) = run_stream(policy, &bytes, &byte_cuts);
        let (expected, status) = whole(policy, &t);
        prop_assert_eq!(status, 200);
        prop_assert!(!error);
        prop_assert_eq!(Some(streamed.clone()), expected);
        // No listed phrase reached the client: filtering the output again changes nothing.
        let (again, _) = whole(policy, &streamed);
        prop_assert_eq!(again, Some(streamed.clone()));
    }

    #[test]
    fn blocked_stream_never_shows_a_phrase(
        t in text(),
        piece_cuts in prop::collection::vec(0usize..400, 0..10),
        byte_cuts in prop::collection::vec(0usize..4000, 0..12),
    ) {
        let policy = &*BLOCK;
        let bytes = sse(&split(&t, &piece_cuts));
        let (streamed, error, raw, decision) = run_stream(policy, &bytes, &byte_cuts);
        let (_, status) = whole(policy, &t);
        // Whole-answer and stream agree on blocking.
        prop_assert_eq!(status == 422, error);
        prop_assert_eq!(decision == Decision::Block, error);
        if error {
            // Nothing of a phrase was shown: what came before the error is a prefix of the
            // original that ends before the first listed phrase starts.
            prop_assert!(t.starts_with(&streamed));
            let (redacted, _) = whole(&REDACT, &t);
            let redacted = redacted.unwrap_or_default();
            let first_hit = t
                .char_indices()
                .zip(redacted.chars())
                .find(|((_, a), b)| a != b)
                .map_or(t.len(), |((i, _), _)| i);
            prop_assert!(streamed.len() <= first_hit, "shown {:?}, first phrase at {}", streamed, first_hit);
            prop_assert!(!raw.is_empty());
        } else {
            prop_assert_eq!(streamed, t);
        }
    }

    #[test]
    fn pass_through_is_byte_exact(
        t in text(),
        byte_cuts in prop::collection::vec(0usize..4000, 0..12),
    ) {
        let bytes = sse(&split(&t, &[3, 9]));
        let mut exchange = pending(&EMPTY).resume_stream();
        prop_assert!(exchange.passes_through());
        let mut out = Vec::new();
        let mut last = 0;
        let mut cuts: Vec<usize> = byte_cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([bytes.len()]) {
            out.extend_from_slice(&exchange.push(&bytes[last..cut]));
            last = cut;
        }
        let (tail, _) = exchange.finish(StreamEnd::Complete);
        out.extend_from_slice(&tail);
        prop_assert_eq!(out, bytes);
    }
}

#[test]
fn hold_back_is_at_most_the_longest_phrase() {
    let policy = &*REDACT;
    let text = "we talked about the top secret plan and the project falcon today, darn it";
    let pieces = split(text, &(1..text.len()).collect::<Vec<_>>());
    let bytes = sse(&pieces);
    let mut exchange = pending(policy).resume_stream();
    for chunk in bytes.chunks(7) {
        exchange.push(chunk);
    }
    let longest = PHRASES.iter().map(|p| p.chars().count()).max().unwrap_or(0);
    assert!(
        exchange.max_held_chars() <= longest,
        "held {}",
        exchange.max_held_chars()
    );
    let (_, outcome) = exchange.finish(StreamEnd::Complete);
    assert_eq!(outcome.stats.flags.len(), 1);
    assert!(outcome.stats.stream);
}

#[test]
fn usage_from_the_final_chunk_is_recorded() {
    let mut exchange = pending(&EMPTY).resume_stream();
    let usage = json!({"id": "c", "object": "chat.completion.chunk", "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}});
    exchange.push(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n");
    exchange.push(format!("data: {usage}\n\ndata: [DONE]\n\n").as_bytes());
    let (_, outcome) = exchange.finish(StreamEnd::Complete);
    let recorded = outcome.stats.usage.map(|u| u.get().to_owned());
    assert_eq!(
        recorded.as_deref(),
        Some(r#"{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}"#)
    );
}

#[test]
fn choices_are_filtered_separately_and_tool_calls_pass() {
    let policy = &*REDACT;
    let mut exchange = pending(policy).resume_stream();
    let event = |choice: u64, content: &str| {
        let e = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": choice, "delta": {"content": content}, "finish_reason": null}]});
        format!("data: {e}\n\n")
    };
    let tool = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":\"darn\"}"}}]}, "finish_reason": null}]});
    let mut out = Vec::new();
    for chunk in [
        event(0, "the proj"),
        event(1, "a proj"),
        event(0, "ect falcon is"),
        format!("data: {tool}\n\n"),
        event(1, "ector"),
        "data: [DONE]\n\n".to_owned(),
    ] {
        out.extend_from_slice(&exchange.push(chunk.as_bytes()));
    }
    let (tail, _) = exchange.finish(StreamEnd::Complete);
    out.extend_from_slice(&tail);
    let raw = String::from_utf8(out).expect("utf-8");
    let mut texts = [String::new(), String::new()];
    let mut saw_tool = false;
    for block in raw.split("\n\n") {
        let Some(data) = block.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).expect("json");
        for choice in v["choices"].as_array().cloned().unwrap_or_default() {
            let i = choice["index"].as_u64().unwrap_or(0) as usize;
            if let Some(c) = choice.pointer("/delta/content").and_then(Value::as_str) {
                texts[i].push_str(c);
            }
            if choice
                .pointer("/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
                == Some("{\"q\":\"darn\"}")
            {
                saw_tool = true;
            }
        }
    }
    assert_eq!(texts[0], "the **** is");
    assert_eq!(texts[1], "a projector");
    assert!(saw_tool, "tool-call arguments pass through untouched");
}

#[test]
fn logprobs_do_not_reveal_redacted_tokens() {
    let policy = &*REDACT;
    // Whole answer: the text is redacted and its logprobs are cleared.
    let body = json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "the project falcon"},
        "logprobs": {"content": [{"token": "project"}, {"token": " falcon"}]}, "finish_reason": "stop"}],
        "usage": {"total_tokens": 3}});
    let outcome = pending(policy).resume(200, Bytes::from(body.to_string()));
    let text = String::from_utf8_lossy(&outcome.body).into_owned();
    assert!(!text.contains("falcon"), "{text}");
    assert!(text.contains("\"logprobs\":null"), "{text}");
    assert!(
        text.contains("\"usage\":{\"total_tokens\":3}"),
        "untouched bytes kept: {text}"
    );
    // Stream: events carrying logprobs lose them while text is filtered.
    let mut exchange = pending(policy).resume_stream();
    let event = json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0,
        "delta": {"content": "the project"}, "logprobs": {"content": [{"token": " project"}]}, "finish_reason": null}]});
    let out = exchange.push(format!("data: {event}\n\n").as_bytes());
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(!out.contains("project"), "{out}");
}
