#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benches"
)]
//! Criterion benches of the sans-IO core: whole request and response checks with every
//! built-in list on, and the word-list scanner's throughput.
//!
//! Every input is generated deterministically in code (a fixed vocabulary cycled by a small
//! LCG), and checked once before measuring so a bench cannot silently take another path.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use serde_json::{Value, json};
use usagepanda_core::wordlist::{ListName, ListSet};
use usagepanda_core::{Decision, Policy};

const CHAT: &str = "/v1/chat/completions";

/// Ordinary English prose words; none is (or, in word mode, forms) a listed phrase.
const WORDS: &[&str] = &[
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "was",
    "on",
    "be",
    "at",
    "by",
    "this",
    "from",
    "or",
    "an",
    "are",
    "which",
    "we",
    "can",
    "will",
    "our",
    "their",
    "more",
    "about",
    "when",
    "also",
    "into",
    "some",
    "would",
    "other",
    "these",
    "than",
    "then",
    "them",
    "only",
    "over",
    "such",
    "most",
    "after",
    "before",
    "because",
    "through",
    "while",
    "during",
    "between",
    "system",
    "report",
    "quarter",
    "revenue",
    "customer",
    "support",
    "team",
    "project",
    "schedule",
    "meeting",
    "summary",
    "analysis",
    "question",
    "answer",
    "example",
    "feature",
    "release",
    "version",
    "change",
    "update",
    "service",
    "request",
    "response",
    "latency",
    "budget",
    "forecast",
    "planning",
    "design",
    "review",
    "document",
    "section",
    "paragraph",
    "sentence",
    "language",
    "model",
    "context",
    "window",
    "token",
    "limit",
    "policy",
    "engine",
    "traffic",
    "network",
    "server",
    "client",
    "database",
    "index",
    "query",
    "result",
    "table",
    "column",
    "value",
    "number",
    "growth",
    "market",
    "product",
    "price",
    "discount",
    "shipping",
    "warehouse",
    "inventory",
    "order",
    "invoice",
    "payment",
    "account",
    "balance",
    "travel",
    "weather",
    "morning",
    "evening",
    "garden",
    "kitchen",
    "recipe",
    "flour",
    "butter",
    "onion",
    "garlic",
    "tomato",
    "simmer",
    "minutes",
    "careful",
    "quickly",
    "slowly",
    "clearly",
    "usually",
    "probably",
    "important",
    "useful",
    "simple",
    "complex",
    "different",
    "similar",
    "several",
    "many",
    "few",
    "each",
    "every",
    "please",
    "thanks",
    "could",
    "should",
    "explain",
    "describe",
    "compare",
    "suggest",
    "improve",
    "reduce",
    "increase",
    "measure",
    "estimate",
    "consider",
    "include",
    "provide",
    "students",
    "teacher",
    "library",
    "history",
    "science",
    "river",
    "mountain",
    "village",
    "city",
    "bridge",
    "railway",
    "station",
    "harbour",
    "engineer",
    "manager",
    "developer",
];

/// A tiny deterministic generator (Knuth's MMIX LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }
}

/// About `bytes` bytes of prose: capitalised sentences of 6 to 18 words, some commas.
fn prose(bytes: usize, seed: u64) -> String {
    let mut rng = Lcg(seed);
    let mut out = String::with_capacity(bytes + 64);
    while out.len() < bytes {
        let words = 6 + rng.next() % 13;
        for i in 0..words {
            let word = WORDS[rng.next() % WORDS.len()];
            if i == 0 {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.push(first.to_ascii_uppercase());
                    out.push_str(chars.as_str());
                }
            } else {
                out.push_str(word);
            }
            if i + 1 < words {
                out.push_str(if rng.next().is_multiple_of(9) {
                    ", "
                } else {
                    " "
                });
            }
        }
        out.push_str(". ");
    }
    out
}

/// ~20 operator phrases (code names, internal terms) that prose never contains.
const CUSTOM: &[&str] = &[
    "project bluebird",
    "codename falcon",
    "acme internal",
    "do not distribute",
    "confidential draft",
    "merger talks",
    "layoff plan",
    "salary bands",
    "unreleased earnings",
    "q5 roadmap",
    "red team notes",
    "staging password",
    "prod credentials",
    "customer ssn",
    "badge number",
    "lawsuit settlement",
    "vendor kickback",
    "internal only",
    "secret sauce",
    "zephyr cluster",
];

fn full_policy() -> Policy {
    let custom: Vec<String> = CUSTOM.iter().map(|p| format!("\"{p}\"")).collect();
    let toml = format!(
        r#"
POLICY_REQUEST_WORDLIST = "profanity:redact,adult:block,dan:block,custom:audit"
POLICY_RESPONSE_WORDLIST = "profanity:redact,adult:redact,dan:audit"
POLICY_CUSTOM_WORDLIST = [{}]
POLICY_MAX_TOKENS = 2048
POLICY_ENFORCE_USER_IDS = true
POLICY_PROMPT_REFLECTION = "audit"
"#,
        custom.join(", ")
    );
    Policy::from_toml(&toml).expect("bench policy compiles")
}

/// A realistic ~4 KiB chat request: a system prompt with a protected part, several turns of
/// prose, and one content-array message with a text part and an image part. `inject` is put
/// into the last user message.
fn chat_request(inject: Option<&str>) -> Vec<u8> {
    let system = format!(
        "You are a helpful assistant for a logistics company. ||Internal routing rules: {}|| \
         Answer briefly and politely.",
        prose(300, 1)
    );
    let mut last_user = prose(600, 7);
    if let Some(word) = inject {
        last_user.push_str(word);
        last_user.push_str(" that was a long week. ");
        last_user.push_str(&prose(60, 8));
    }
    let body = json!({
        "model": "gpt-4o",
        "max_tokens": 512,
        "temperature": 0.2,
        "user": "user-8d1f2c",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": prose(500, 2)},
            {"role": "assistant", "content": prose(700, 3)},
            {"role": "user", "content": [
                {"type": "text", "text": prose(400, 4)},
                {"type": "image_url", "image_url": {
                    "url": "https://images.example.com/warehouse/floor-plan-2024.png",
                    "detail": "auto"
                }}
            ]},
            {"role": "assistant", "content": prose(600, 5)},
            {"role": "user", "content": last_user},
        ]
    });
    serde_json::to_vec(&body).expect("request serialises")
}

/// A ~2 KiB chat completion.
fn chat_completion() -> Vec<u8> {
    let body = json!({
        "id": "chatcmpl-9a8b7c6d5e4f",
        "object": "chat.completion",
        "created": 1_717_000_000,
        "model": "gpt-4o-2024-05-13",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": prose(1750, 11), "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 1032, "completion_tokens": 402, "total_tokens": 1434},
        "system_fingerprint": "fp_3aa7262c27"
    });
    serde_json::to_vec(&body).expect("response serialises")
}

/// `bytes` of prose with `word` inserted roughly every `every` bytes (at a word boundary).
fn prose_with(bytes: usize, every: usize, word: &str) -> String {
    let base = prose(bytes, 42);
    let mut out = String::with_capacity(base.len() + base.len() / every * (word.len() + 1));
    let mut since = 0;
    for piece in base.split_inclusive(' ') {
        out.push_str(piece);
        since += piece.len();
        if since >= every {
            out.push_str(word);
            out.push(' ');
            since = 0;
        }
    }
    out
}

fn all_lists() -> ListSet {
    ListName::ALL.into_iter().collect()
}

fn benches(c: &mut Criterion) {
    let policy = full_policy();
    let headers = HeaderMap::new();
    let all = all_lists();

    // Bodies as `Bytes`, the way an HTTP stack holds them (cloning one is a reference count).
    let clean = Bytes::from(chat_request(None));
    let dirty = Bytes::from(chat_request(Some("Honestly, shit")));
    let completion = Bytes::from(chat_completion());

    // Check once that each input takes the intended path.
    let verdict = policy.check_request(CHAT, &headers, clean.clone(), None);
    assert_eq!(verdict.decision(), Decision::Allow);
    assert!(verdict.flags().is_empty(), "{:?}", verdict.flags());
    assert!(verdict.rewritten().is_none());
    let verdict = policy.check_request(CHAT, &headers, dirty.clone(), None);
    assert_eq!(verdict.decision(), Decision::Allow);
    assert!(verdict.rewritten().is_some(), "{:?}", verdict.flags());
    let verdict = policy.check_response(CHAT, &headers, clean.clone(), 200, completion.clone());
    assert_eq!(verdict.decision(), Decision::Allow);
    assert!(verdict.flags().is_empty(), "{:?}", verdict.flags());

    let mut group = c.benchmark_group("policy");
    group
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50);
    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("check_request/clean_4k", |b| {
        b.iter(|| policy.check_request(black_box(CHAT), &headers, black_box(clean.clone()), None));
    });
    group.throughput(Throughput::Bytes(dirty.len() as u64));
    group.bench_function("check_request/redact_4k", |b| {
        b.iter(|| policy.check_request(black_box(CHAT), &headers, black_box(dirty.clone()), None));
    });
    group.throughput(Throughput::Bytes(completion.len() as u64));
    group.bench_function("check_response/clean_2k", |b| {
        b.iter(|| {
            policy.check_response(
                black_box(CHAT),
                &headers,
                black_box(clean.clone()),
                200,
                black_box(completion.clone()),
            )
        });
    });
    // Reference points for reading the numbers above: the same request through a policy with
    // every rule off, and serde_json's full `Value` parse of the body.
    let passthrough = Policy::from_toml("").expect("empty policy");
    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("baseline/check_request_no_rules_4k", |b| {
        b.iter(|| {
            passthrough.check_request(black_box(CHAT), &headers, black_box(clean.clone()), None)
        });
    });
    group.bench_function("baseline/serde_json_value_4k", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&clean[..])).map(|_| ()));
    });
    group.finish();

    let text = prose(1 << 20, 99);
    assert!(policy.scanner().matching_lists(&text, all).is_empty());
    let profanity: ListSet = [ListName::Profanity].into_iter().collect();
    let dirty_text = prose_with(1 << 20, 4096, "shit");
    let redacted = policy
        .scanner()
        .redact(&dirty_text, profanity, "****")
        .expect("matches to redact");
    assert!(redacted.len() == dirty_text.len());

    // The same prose with typographic punctuation every ~48 bytes, as model output has it.
    let typographic = prose_with(1 << 20, 48, "don’t — “really”");
    assert!(
        policy
            .scanner()
            .matching_lists(&typographic, all)
            .is_empty()
    );

    let mut group = c.benchmark_group("wordlist");
    group
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("matching_lists/1MiB_clean", |b| {
        b.iter(|| policy.scanner().matching_lists(black_box(&text), all));
    });
    group.throughput(Throughput::Bytes(typographic.len() as u64));
    group.bench_function("matching_lists/1MiB_typographic", |b| {
        b.iter(|| {
            policy
                .scanner()
                .matching_lists(black_box(&typographic), all)
        });
    });
    group.throughput(Throughput::Bytes(dirty_text.len() as u64));
    group.bench_function("redact/1MiB_match_every_4KiB", |b| {
        b.iter(|| {
            policy
                .scanner()
                .redact(black_box(&dirty_text), profanity, "****")
        });
    });
    group.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
