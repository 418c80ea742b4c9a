//! Streaming answers (`stream: true`): a pure state machine, bytes in and bytes out.
//!
//! The adapter pushes the upstream's server-sent-event bytes as they arrive, cut anywhere
//! (inside an event, a line or a UTF-8 character), and sends what [`StreamExchange::push`]
//! returns to the client at once. With no response policy that holds text back, the output is
//! the input, byte for byte, with no delay. With a redact or block policy, each choice's text
//! goes through the same filters as a whole answer would, holding back only the tail that
//! could still become a match; a block ends the stream with an OpenAI-style error event.

mod sse;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use self::sse::{Event, SseParser};
use crate::endpoint::Endpoint;
use crate::exchange::{Outcome, PendingUpstream, State, reflector};
use crate::filter::{Findings, Flow, Stage, StageStream};
use crate::reply;
use crate::rules::log;
use crate::rules::reflection::{self, Reflector};
use crate::rules::wordlists::{self, Side};
use crate::verdict::Decision;

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream closed the stream normally.
    Complete,
    /// The upstream stream broke; the text says how (no secrets).
    Broken(String),
    /// The client went away before the end.
    ClientGone,
}

/// One choice's filters.
#[derive(Debug, Default)]
struct ChoiceState {
    words: StageStream,
    reflect: StageStream,
    /// The text sent for this choice, kept when the response is logged in full.
    sent: String,
    finished: bool,
}

/// A streaming exchange in flight.
#[derive(Debug)]
pub struct StreamExchange {
    state: State,
    parser: SseParser,
    reflector: Option<Reflector>,
    /// Text is held back and events are rewritten (a redact or block policy applies).
    filtering: bool,
    /// Events are read at all (for policies, or for the usage record).
    reading: bool,
    /// Some response policy reads the text (audit included).
    policies: bool,
    autorouted: serde_json::Map<String, Value>,
    choices: BTreeMap<u64, ChoiceState>,
    words_found: Findings,
    reflect_found: Findings,
    usage: Option<Box<RawValue>>,
    /// The first data event, trimmed, for the stats record and for synthetic events.
    first: Option<Value>,
    blocked: bool,
    done_seen: bool,
    max_held: usize,
}

impl PendingUpstream {
    /// Resumes with the head of a streaming (`text/event-stream`) 2xx answer; the body follows
    /// through [`StreamExchange::push`].
    pub fn resume_stream(self) -> StreamExchange {
        let state = self.state;
        let reflector = reflector(&state);
        let (filtering, reading, policies) = {
            let words = wordlists::stage(&state.policy, &state.settings.response_wordlist);
            let reflect = reflect_stage(&state, reflector.as_ref());
            let understood = matches!(
                state.endpoint,
                Endpoint::ChatCompletions | Endpoint::Completions
            );
            let policies =
                understood && (!words.is_empty() || reflect.is_some_and(|r| !r.is_empty()));
            let filtering = understood && (words.holds() || reflect.is_some_and(|r| r.holds()));
            (filtering, policies || state.checked, policies)
        };
        StreamExchange {
            state,
            parser: SseParser::default(),
            reflector,
            filtering,
            reading,
            policies,
            autorouted: serde_json::Map::new(),
            choices: BTreeMap::new(),
            words_found: Findings::default(),
            reflect_found: Findings::default(),
            usage: None,
            first: None,
            blocked: false,
            done_seen: false,
            max_held: 0,
        }
    }
}

fn reflect_stage<'r>(state: &'r State, reflector: Option<&'r Reflector>) -> Option<Stage<'r>> {
    let action = state.settings.prompt_reflection.action()?;
    Some(reflection::stage(
        reflector?,
        action,
        state.policy.config().redaction_string.as_str(),
    ))
}

impl StreamExchange {
    /// Whether the output is the input unchanged (no policy holds text back).
    pub fn passes_through(&self) -> bool {
        !self.filtering
    }

    /// Whether the stream was ended by a block: stop reading the upstream.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// The most characters one choice held back at any time.
    pub fn max_held_chars(&self) -> usize {
        self.max_held
    }

    /// The stats metadata being built (the adapter adds timings).
    pub fn metadata_mut(&mut self) -> &mut crate::stats::Metadata {
        &mut self.state.metadata
    }

    /// The routing notes of the stats record (the adapter adds them).
    pub fn autorouted_mut(&mut self) -> &mut serde_json::Map<String, Value> {
        &mut self.autorouted
    }

    /// Feeds upstream bytes; returns the bytes to send to the client now.
    pub fn push(&mut self, bytes: &[u8]) -> Bytes {
        if self.blocked {
            return Bytes::new();
        }
        if !self.filtering {
            if self.reading {
                self.parser.push(bytes);
                while let Some(event) = self.parser.next_event() {
                    self.observe(&event);
                }
            }
            return Bytes::copy_from_slice(bytes);
        }
        self.parser.push(bytes);
        let mut out = Vec::new();
        while let Some(event) = self.parser.next_event() {
            self.filter_event(event, &mut out);
            if self.blocked {
                break;
            }
        }
        Bytes::from(out)
    }

    /// Ends the stream: returns the last bytes for the client and the exchange's outcome (its
    /// body is empty: everything was sent through `push`).
    pub fn finish(mut self, end: StreamEnd) -> (Bytes, Outcome) {
        let mut out = Vec::new();
        if !self.blocked && end != StreamEnd::ClientGone {
            if let Some(rest) = self.parser.finish() {
                if self.filtering {
                    self.filter_event(rest, &mut out);
                } else {
                    self.observe(&rest);
                }
            }
            if self.filtering && !self.blocked {
                self.flush_choices(&mut out);
            } else if self.policies {
                for index in self.open_choices() {
                    let _ = self.run_choice(index, "", true, &mut String::new());
                }
            }
        }
        if let StreamEnd::Broken(why) = &end
            && !self.blocked
        {
            let body = reply::error_body(
                &format!("upstream stream broke: {why}"),
                "upstream_error",
                None,
                None,
            );
            push_event(&mut out, &body);
        }
        let outcome = self.outcome(&end);
        (Bytes::from(out), outcome)
    }

    /// Reads an event without changing it (pass-through mode).
    fn observe(&mut self, event: &Event) {
        let Some(data) = event.data.as_deref() else {
            return;
        };
        if data == "[DONE]" {
            self.done_seen = true;
            return;
        }
        if !self.policies && !data.contains("\"usage\"") && self.first.is_some() {
            return;
        }
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return;
        };
        self.note_meta(&value);
        if self.policies {
            for (index, piece, ends) in self.pieces(&value) {
                let mut ignored = String::new();
                let _ = self.run_choice(index, piece.as_deref().unwrap_or(""), ends, &mut ignored);
            }
        }
    }

    fn note_meta(&mut self, value: &Value) {
        if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
            self.usage = serde_json::value::to_raw_value(usage).ok();
        }
        if self.first.is_none() && value.get("choices").is_some() {
            let mut meta = serde_json::Map::new();
            for key in ["id", "object", "created", "model", "system_fingerprint"] {
                if let Some(v) = value.get(key) {
                    meta.insert(key.to_owned(), v.clone());
                }
            }
            self.first = Some(Value::Object(meta));
        }
    }

    /// The text pieces of an event: per choice (position in `choices`), its index, its text
    /// (`delta.content` for chat, `text` for completions) and whether it finishes.
    fn pieces(&self, value: &Value) -> Vec<(u64, Option<String>, bool)> {
        let chat = self.state.endpoint == Endpoint::ChatCompletions;
        let field = if chat { "/delta/content" } else { "/text" };
        value
            .get("choices")
            .and_then(Value::as_array)
            .map(|choices| {
                choices
                    .iter()
                    .map(|choice| {
                        let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let piece = choice
                            .pointer(field)
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                        let ends = choice.get("finish_reason").is_some_and(|f| !f.is_null());
                        (index, piece, ends)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs one piece of a choice's text through both stages; `end` settles the choice.
    fn run_choice(&mut self, index: u64, piece: &str, end: bool, out: &mut String) -> Flow {
        let policy = self.state.policy.clone();
        let words = wordlists::stage(&policy, &self.state.settings.response_wordlist);
        let reflect = reflect_stage(&self.state, self.reflector.as_ref());
        let choice = self.choices.entry(index).or_default();
        let mut middle = String::new();
        let mut flow = if words.is_empty() {
            middle.push_str(piece);
            Flow::Continue
        } else if end {
            let f = choice
                .words
                .push(&words, piece, &mut middle, &mut self.words_found);
            if f == Flow::Blocked {
                f
            } else {
                choice
                    .words
                    .finish(&words, &mut middle, &mut self.words_found)
            }
        } else {
            choice
                .words
                .push(&words, piece, &mut middle, &mut self.words_found)
        };
        if flow == Flow::Continue {
            match reflect.filter(|r| !r.is_empty()) {
                Some(r) => {
                    flow = choice
                        .reflect
                        .push(&r, &middle, out, &mut self.reflect_found);
                    if flow == Flow::Continue && end {
                        flow = choice.reflect.finish(&r, out, &mut self.reflect_found);
                    }
                }
                None => out.push_str(&middle),
            }
        }
        let held = choice.words.held_chars() + choice.reflect.held_chars();
        self.max_held = self.max_held.max(held);
        if end {
            choice.finished = true;
        }
        if self.state.settings.log_response {
            choice.sent.push_str(out);
        }
        flow
    }

    fn filter_event(&mut self, event: Event, out: &mut Vec<u8>) {
        let Some(data) = event.data.as_deref() else {
            out.extend_from_slice(&event.raw);
            return;
        };
        if data == "[DONE]" {
            self.flush_choices(out);
            if !self.blocked {
                self.done_seen = true;
                out.extend_from_slice(&event.raw);
            }
            return;
        }
        // An event the filter cannot read could carry text it cannot check: it is dropped.
        let Ok(mut value) = serde_json::from_str::<Value>(data) else {
            return;
        };
        self.note_meta(&value);
        if value.get("error").is_some() && value.get("choices").is_none() {
            out.extend_from_slice(&event.raw);
            return;
        }
        let chat = self.state.endpoint == Endpoint::ChatCompletions;
        let mut changed = false;
        for (i, (index, piece, ends)) in self.pieces(&value).into_iter().enumerate() {
            if piece.is_none() && !ends {
                continue;
            }
            let mut text = String::new();
            let flow = self.run_choice(index, piece.as_deref().unwrap_or(""), ends, &mut text);
            if flow == Flow::Blocked {
                self.block(out);
                return;
            }
            if piece.as_deref() != Some(text.as_str()) && !(piece.is_none() && text.is_empty()) {
                changed = true;
                set_text(&mut value, i, chat, text);
            }
        }
        // Log probabilities spell out the tokens, held-back and redacted ones included.
        if let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) {
            for choice in choices {
                if let Some(logprobs) = choice.get_mut("logprobs").filter(|l| !l.is_null()) {
                    *logprobs = Value::Null;
                    changed = true;
                }
            }
        }
        if changed {
            push_event(out, value.to_string().as_bytes());
        } else {
            out.extend_from_slice(&event.raw);
        }
    }

    /// The choices whose text has not ended yet.
    fn open_choices(&self) -> Vec<u64> {
        self.choices
            .iter()
            .filter(|(_, c)| !c.finished)
            .map(|(i, _)| *i)
            .collect()
    }

    /// Settles every open choice, sending what was held back in synthetic events.
    fn flush_choices(&mut self, out: &mut Vec<u8>) {
        let open = self.open_choices();
        let chat = self.state.endpoint == Endpoint::ChatCompletions;
        for index in open {
            let mut text = String::new();
            if self.run_choice(index, "", true, &mut text) == Flow::Blocked {
                self.block(out);
                return;
            }
            if text.is_empty() {
                continue;
            }
            let mut event = self
                .first
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default()));
            let choice = if chat {
                serde_json::json!({"index": index, "delta": {"content": text}, "finish_reason": null})
            } else {
                serde_json::json!({"index": index, "text": text, "finish_reason": null})
            };
            event["choices"] = Value::Array(vec![choice]);
            push_event(out, event.to_string().as_bytes());
        }
    }

    fn block(&mut self, out: &mut Vec<u8>) {
        self.blocked = true;
        self.record_flags();
        let body = reply::block_reply(&self.state.flags).body;
        push_event(out, &body);
    }

    fn record_flags(&mut self) {
        let spec = self.state.settings.response_wordlist;
        if !self.state.flags.iter().any(|f| {
            f.kind == crate::verdict::FlagKind::Wordlists
                && f.description.contains("Response matched")
        }) {
            wordlists::record(
                &mut self.state.flags,
                Side::Response,
                &self.words_found,
                &spec,
            );
        }
        if let (true, Some(action)) = (
            self.reflect_found.matched,
            self.state.settings.prompt_reflection.action(),
        ) && !self
            .state
            .flags
            .iter()
            .any(|f| f.kind == crate::verdict::FlagKind::PromptReflection)
        {
            self.state.flags.push(reflection::flag(action));
        }
    }

    fn outcome(mut self, end: &StreamEnd) -> Outcome {
        self.record_flags();
        let endpoint = self.state.endpoint.clone();
        let log_full = self.state.settings.log_response;
        let mut response = self.first.take();
        if let (true, Some(Value::Object(map))) = (log_full, response.as_mut()) {
            let choices: Vec<Value> = self
                .choices
                .iter()
                .map(|(i, c)| serde_json::json!({"index": i, "text": c.sent}))
                .collect();
            map.insert("choices".to_owned(), Value::Array(choices));
        }
        let decision = if self.blocked {
            Decision::Block
        } else {
            Decision::Allow
        };
        let usage = self.usage.take();
        let autorouted = std::mem::take(&mut self.autorouted);
        let mut stats = self.state.stats(200, decision);
        stats.stream = true;
        stats.autorouted.extend(autorouted);
        stats.usage = usage;
        stats.response =
            response.and_then(|r| log::response_record(&endpoint, r.to_string().as_bytes(), true));
        match end {
            _ if decision == Decision::Block => {
                stats.error = true;
                stats.error_message = Some(reply::block_message(&stats.flags));
            }
            StreamEnd::Broken(why) => {
                stats.error = true;
                stats.error_message = Some(format!("upstream stream broke: {why}"));
            }
            StreamEnd::ClientGone => {
                stats.error = true;
                stats.error_message = Some("client disconnected during the stream".to_owned());
            }
            StreamEnd::Complete => {}
        }
        Outcome {
            status: 200,
            content_type: None,
            body: Bytes::new(),
            decision,
            stats,
            rewritten: None,
        }
    }
}

fn set_text(value: &mut Value, i: usize, chat: bool, text: String) {
    let Some(choice) = value.pointer_mut(&format!("/choices/{i}")) else {
        return;
    };
    if chat {
        if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) {
            delta.insert("content".to_owned(), Value::String(text));
        } else if let Some(obj) = choice.as_object_mut() {
            obj.insert("delta".to_owned(), serde_json::json!({"content": text}));
        }
    } else if let Some(obj) = choice.as_object_mut() {
        obj.insert("text".to_owned(), Value::String(text));
    }
}

fn push_event(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}
