//! The sans-IO exchange: one client request, through the policy, to one answer and one stats
//! record.
//!
//! [`Policy::begin`] returns the one next thing to do as a [`Step`]. The adapter performs it
//! (call moderation, call the upstream) and hands the result back to the pending token's
//! `resume`, which consumes the token, so steps cannot be taken out of order. Time and ids come
//! in through [`Context`]; the core reads no clock and does no I/O.

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::endpoint::Endpoint;
use crate::filter::Findings;
use crate::openai::request::RequestView;
use crate::openai::text::Slot;
use crate::overrides::{self, Settings};
use crate::policy::Policy;
use crate::reply::{self, AutoReplyBody};
use crate::rules::moderation::{self, ModerationResult};
use crate::rules::reflection::{self, Reflector};
use crate::rules::wordlists::{self, Side};
use crate::rules::{self, RequestInput, Rewrite, log};
use crate::stats::{Metadata, StatsRecord};
use crate::verdict::{Decision, Flag, Reply, Verdict};

mod response;

pub use self::response::UpstreamFailure;

/// A client's request, as the adapter received it.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// The HTTP method.
    pub method: Method,
    /// The path (and query), e.g. `/v1/chat/completions`.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// What the adapter knows that the core may not look up itself.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Seconds since the Unix epoch (for `created` in auto-replies).
    pub now_unix_secs: u64,
    /// A unique id for this exchange (for auto-reply ids).
    pub exchange_id: String,
    /// The client's address.
    pub ip_address: Option<String>,
    /// Whether the config came from a cache.
    pub config_cached: bool,
}

impl Context {
    /// A fixed context for offline checks.
    pub fn offline() -> Context {
        Context {
            now_unix_secs: 0,
            exchange_id: "usagepanda".to_owned(),
            ip_address: None,
            config_cached: true,
        }
    }
}

/// The next thing the adapter must do.
#[derive(Debug)]
pub enum Step {
    /// Post [`PendingModeration::body`] to the moderation endpoint and resume with the result.
    Moderate(PendingModeration),
    /// Send [`PendingUpstream::body`] to the upstream and resume with its answer.
    Forward(PendingUpstream),
    /// Answer the client with this outcome; the exchange is over.
    Finish(Outcome),
}

/// The end of an exchange: the answer and its stats record.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// HTTP status for the client.
    pub status: u16,
    /// `Content-Type` of the body; `None` keeps the upstream's.
    pub content_type: Option<&'static str>,
    /// The body for the client.
    pub body: Bytes,
    /// The decision.
    pub decision: Decision,
    /// The stats record. The adapter adds what only it knows (latency) and emits it.
    pub stats: StatsRecord,
    pub(crate) rewritten: Option<Bytes>,
}

impl Outcome {
    /// The verdict this outcome carries (for offline checks); its reply is what the client
    /// gets, the upstream's answer included.
    pub fn verdict(&self) -> Verdict {
        let reply = Some(Reply {
            status: self.status,
            content_type: self.content_type.unwrap_or(reply::JSON),
            body: self.body.clone(),
        });
        Verdict {
            decision: self.decision,
            flags: self.stats.flags.clone(),
            rewritten: self.rewritten.clone(),
            reply,
        }
    }
}

/// An error answer of the exchange's own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorAnswer<'a> {
    pub(crate) status: u16,
    pub(crate) message: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) param: Option<&'a str>,
}

impl<'a> ErrorAnswer<'a> {
    pub(crate) fn new(status: u16, message: &'a str, kind: &'a str) -> ErrorAnswer<'a> {
        ErrorAnswer {
            status,
            message,
            kind,
            param: None,
        }
    }
}

/// The state an exchange carries between steps.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) policy: Policy,
    pub(crate) endpoint: Endpoint,
    pub(crate) method: Method,
    pub(crate) settings: Settings,
    pub(crate) context: Context,
    pub(crate) metadata: Metadata,
    /// The client's body, as received.
    pub(crate) body: Bytes,
    /// Whether the request was checked (a JSON POST) or passed through untouched.
    pub(crate) checked: bool,
    pub(crate) flags: Vec<Flag>,
    pub(crate) stream: bool,
    pub(crate) model: Option<String>,
    pub(crate) secrets: Vec<String>,
    /// The client's headers, handed back to the adapter for routing.
    pub(crate) headers: HeaderMap,
    /// The query string of the client's path, if any.
    pub(crate) query: Option<String>,
}

/// Waiting for the moderation endpoint's answer.
#[derive(Debug)]
pub struct PendingModeration {
    state: State,
    body: Bytes,
    forward: Bytes,
    autoreply: Option<Reply>,
}

impl PendingModeration {
    /// The moderation request body (`{"input": [...]}`): the client's text, before redaction.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The client's request headers (for routing the moderation call).
    pub fn headers(&self) -> &HeaderMap {
        &self.state.headers
    }

    /// Resumes with the moderation result.
    pub fn resume(self, result: ModerationResult) -> Step {
        let mut state = self.state;
        if let Some(flag) = moderation::flag(&result, state.policy.config().moderation_fail_open) {
            state.flags.push(flag);
        }
        state.decide(self.forward, self.autoreply)
    }
}

/// Waiting for the upstream's answer.
#[derive(Debug)]
pub struct PendingUpstream {
    pub(crate) state: State,
    pub(crate) forward: Bytes,
}

impl PendingUpstream {
    /// The body to send: the client's bytes, or the rewritten body when a rule redacted it.
    pub fn body(&self) -> &Bytes {
        &self.forward
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.state.endpoint
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.state.method
    }

    /// The client's request headers (for routing; the adapter decides which travel on).
    pub fn headers(&self) -> &HeaderMap {
        &self.state.headers
    }

    /// Takes the client's request headers (for building the upstream request without copying
    /// them); [`PendingUpstream::headers`] is empty afterwards.
    pub fn take_headers(&mut self) -> HeaderMap {
        std::mem::take(&mut self.state.headers)
    }

    /// The query string of the client's path, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.state.query.as_deref()
    }

    /// The request's `model`, when it has one (for routing, e.g. Azure deployments).
    pub fn model(&self) -> Option<&str> {
        self.state.model.as_deref()
    }

    /// How many times a failed call may be retried (`POLICY_RETRY_COUNT`, at most 5).
    pub fn retry_count(&self) -> u32 {
        self.state.settings.retry_count
    }

    /// Whether the client asked for a server-sent-event stream.
    pub fn is_stream(&self) -> bool {
        self.state.stream
    }

    /// The flags raised so far (request side).
    pub fn flags(&self) -> &[Flag] {
        &self.state.flags
    }

    /// The verdict on the request side alone.
    pub fn request_verdict(&self) -> Verdict {
        let rewritten = (self.forward.as_ptr() != self.state.body.as_ptr()
            || self.forward.len() != self.state.body.len())
        .then(|| self.forward.clone());
        Verdict {
            decision: Decision::Allow,
            flags: self.state.flags.clone(),
            rewritten,
            reply: None,
        }
    }
}

/// Request headers that carry keys (as constants: a lookup by `&str` parses the name first).
const SECRET_HEADERS: [http::HeaderName; 3] = [
    http::header::AUTHORIZATION,
    http::HeaderName::from_static("x-usagepanda-api-key"),
    http::HeaderName::from_static("api-key"),
];

impl Policy {
    /// Starts an exchange.
    pub fn begin(&self, request: ClientRequest, context: Context) -> Step {
        let mut state = self.state(&request, context);
        state.body = request.body;
        state.headers = request.headers;
        // Keys travel on to the upstream but must never be printed, not even by `Debug`.
        for name in SECRET_HEADERS {
            if let Some(value) = state.headers.get_mut(name) {
                value.set_sensitive(true);
            }
        }
        match overrides::trace_id(&state.headers) {
            Ok(id) => state.metadata.trace_id = id,
            Err(e) => return Step::Finish(state.bad_request(&e.to_string(), Some(e.header))),
        }
        match self
            .settings()
            .with_headers(&state.headers, self.config().header_overrides)
        {
            Ok(settings) => state.settings = settings,
            Err(e) => return Step::Finish(state.bad_request(&e.to_string(), Some(e.header))),
        }
        if state.method != Method::POST {
            let forward = state.body.clone();
            return Step::Forward(PendingUpstream { state, forward });
        }
        state.check_request()
    }

    /// Ends an exchange the adapter refuses before the policy reads it (no upstream key, body
    /// too large, unreadable body, config unavailable): an OpenAI-shaped error and the
    /// exchange's one stats record. The body is not read.
    pub fn refuse(
        &self,
        request: &ClientRequest,
        context: Context,
        status: u16,
        message: &str,
        kind: &str,
    ) -> Outcome {
        let mut state = self.state(request, context);
        state.metadata.trace_id = overrides::trace_id(&request.headers).ok().flatten();
        state.error(ErrorAnswer::new(status, message, kind), Decision::Block)
    }

    fn state(&self, request: &ClientRequest, context: Context) -> State {
        let metadata = Metadata {
            proxy_id: self.config().proxy_id.clone(),
            ip_address: context.ip_address.clone(),
            user_agent: header_text(&request.headers, &http::header::USER_AGENT),
            organization: header_text(&request.headers, &OPENAI_ORGANIZATION),
            trace_id: None,
            ..Metadata::default()
        };
        State {
            policy: self.clone(),
            endpoint: Endpoint::from_path(&request.path),
            method: request.method.clone(),
            settings: self.settings().clone(),
            context,
            metadata,
            body: Bytes::new(),
            checked: false,
            flags: Vec::new(),
            stream: false,
            model: None,
            secrets: Vec::new(),
            headers: HeaderMap::new(),
            query: request.path.split_once('?').map(|(_, q)| q.to_owned()),
        }
    }
}

impl State {
    fn check_request(mut self) -> Step {
        let body = self.body.clone();
        let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !self.endpoint.requires_json() && !looks_json {
            // A multipart upload or another non-JSON body on a path the rules do not know.
            return Step::Forward(PendingUpstream {
                forward: body,
                state: self,
            });
        }
        let view = match RequestView::parse(&body) {
            Ok(view) => view,
            Err(e) if self.endpoint.requires_json() || looks_json => {
                let message = if e.is_data() {
                    let detail = e
                        .to_string()
                        .replace("struct RequestView", "a JSON object")
                        .replace("struct MessageView", "a message object");
                    format!("invalid request body: {detail}")
                } else {
                    format!("request body is not valid JSON: {e}")
                };
                return Step::Finish(self.bad_request(&message, None));
            }
            Err(_) => RequestView::default(),
        };
        self.checked = true;
        self.stream = view.is_stream();
        if self.stream && self.endpoint == Endpoint::Responses && self.response_side_holds() {
            let message = "streaming `/v1/responses` answers cannot be redacted or blocked yet; send `stream: false` or use `/v1/chat/completions`";
            return Step::Finish(self.bad_request(message, Some("stream")));
        }
        self.model = view.model.as_deref().map(str::to_owned);
        let policy = self.policy.clone();
        let input = RequestInput {
            endpoint: &self.endpoint,
            view: &view,
            settings: &self.settings,
            config: policy.config(),
        };
        let autoreply = rules::autoreply::check(&input);
        let limits = [
            rules::max_tokens::check(&input),
            rules::max_prompt_chars::check(&input),
            rules::enforce_user_ids::check(&input),
            rules::disabled_models::check(&input),
        ];
        let moderation_body = moderation::request_body(&input);
        let mut found = Findings::default();
        let mut rewrites: Vec<Rewrite> = Vec::new();
        // One walk over the texts for the word lists and the reflection secrets together.
        let stage = (!self.settings.request_wordlist.is_empty()
            && self.endpoint != Endpoint::Moderations)
            .then(|| wordlists::stage(&policy, &self.settings.request_wordlist));
        let mut secrets = reflection::Secrets::new(&input);
        if stage.is_some() || secrets.is_some() {
            view.visit_texts(&self.endpoint, &mut |t| {
                if let Some(stage) = &stage
                    && let Some(new) = stage.apply(t.text, &mut found)
                {
                    rewrites.push((t.slot.clone(), new));
                }
                if let Some(secrets) = &mut secrets {
                    secrets.visit(&t);
                }
            });
        }
        self.secrets = secrets
            .map(reflection::Secrets::into_found)
            .unwrap_or_default();
        let autoreply_reply = autoreply.map(|(flag, rule)| {
            self.flags.push(flag);
            AutoReplyBody {
                chat: self.endpoint == Endpoint::ChatCompletions,
                stream: self.stream,
                model: view.model.as_deref().unwrap_or_default(),
                content: &rule.response,
                id: &self.context.exchange_id,
                created: self.context.now_unix_secs,
            }
            .reply()
        });
        self.flags.extend(limits.into_iter().flatten());
        wordlists::record(
            &mut self.flags,
            Side::Request,
            &found,
            &self.settings.request_wordlist,
        );
        let forward = match rewrite(&body, &rewrites) {
            Ok(Some(new)) => new,
            Ok(None) => body.clone(),
            Err(RewriteError) => {
                let message =
                    "request body could not be rewritten for redaction (malformed JSON escapes)";
                return Step::Finish(self.bad_request(message, None));
            }
        };
        drop(view);
        if let Some(body) = moderation_body
            && !self.blocked()
            && autoreply_reply.is_none()
        {
            return Step::Moderate(PendingModeration {
                state: self,
                body,
                forward,
                autoreply: autoreply_reply,
            });
        }
        self.decide(forward, autoreply_reply)
    }

    /// Whether a response policy may rewrite or withhold text.
    fn response_side_holds(&self) -> bool {
        let spec = &self.settings.response_wordlist;
        let words = spec
            .entries()
            .iter()
            .any(|(_, a)| *a >= crate::config::RuleAction::Redact);
        let reflect = self
            .settings
            .prompt_reflection
            .action()
            .is_some_and(|a| a >= crate::config::RuleAction::Redact);
        words || reflect
    }

    pub(crate) fn blocked(&self) -> bool {
        self.flags.iter().any(Flag::blocks)
    }

    fn decide(mut self, forward: Bytes, autoreply: Option<Reply>) -> Step {
        if self.blocked() {
            // The auto-reply did not happen: its flag would misdescribe the exchange.
            self.flags
                .retain(|f| f.kind != crate::verdict::FlagKind::AutoReply);
            let reply = reply::block_reply(&self.flags);
            return Step::Finish(self.finish_with(reply, Decision::Block, None));
        }
        if let Some(reply) = autoreply {
            let rewritten = (forward != self.body).then_some(forward);
            return Step::Finish(self.finish_with(reply, Decision::AutoReply, rewritten));
        }
        Step::Forward(PendingUpstream {
            state: self,
            forward,
        })
    }

    /// A 400 for a request the rules cannot read.
    fn bad_request(self, message: &str, param: Option<&str>) -> Outcome {
        let answer = ErrorAnswer {
            param,
            ..ErrorAnswer::new(400, message, "invalid_request_error")
        };
        self.error(answer, Decision::Block)
    }

    /// Ends the exchange with an OpenAI-shaped error whose message is also the stats record's.
    pub(crate) fn error(self, answer: ErrorAnswer<'_>, decision: Decision) -> Outcome {
        let reply = reply::error_reply(
            answer.status,
            answer.message,
            answer.kind,
            answer.param,
            None,
        );
        let mut outcome = self.finish_with(reply, decision, None);
        outcome.stats.error_message = Some(answer.message.to_owned());
        outcome
    }

    /// Ends the exchange with an answer of our own.
    pub(crate) fn finish_with(
        self,
        reply: Reply,
        decision: Decision,
        rewritten: Option<Bytes>,
    ) -> Outcome {
        let response = log::response_record(&self.endpoint, &reply.body, true);
        let error = reply.status >= 400;
        let mut stats = self.stats(reply.status, decision);
        stats.error = error;
        if error {
            stats.error_message = Some(reply::block_message(&stats.flags));
        }
        stats.response = response;
        Outcome {
            status: reply.status,
            content_type: Some(reply.content_type),
            body: reply.body,
            decision,
            stats,
            rewritten,
        }
    }

    /// The stats record of this exchange so far.
    pub(crate) fn stats(self, status: u16, decision: Decision) -> StatsRecord {
        let request = if self.checked {
            log::request_record(&self.body, self.settings.log_request)
        } else {
            None
        };
        StatsRecord {
            endpoint: self.endpoint.path().to_owned(),
            config_cached: self.context.config_cached,
            flags: self.flags,
            error: false,
            error_message: None,
            decision,
            status,
            stream: self.stream,
            autorouted: serde_json::Map::new(),
            metadata: self.metadata,
            request,
            response: None,
            usage: None,
        }
    }
}

/// A body whose rewritten texts cannot be written back (it is refused rather than forwarded
/// unredacted).
#[derive(Debug)]
pub(crate) struct RewriteError;

/// Writes rewritten texts back into a JSON body by splicing each string in place: every other
/// byte (numbers, unknown fields, escapes) stays as the client or upstream sent it.
/// `Ok(None)` when there is nothing to rewrite.
pub(crate) fn rewrite(body: &[u8], rewrites: &[Rewrite]) -> Result<Option<Bytes>, RewriteError> {
    rewrite_and_clear(body, rewrites, &[])
}

/// [`rewrite`], also replacing the values at `cleared` with `null`.
pub(crate) fn rewrite_and_clear(
    body: &[u8],
    rewrites: &[Rewrite],
    cleared: &[Slot],
) -> Result<Option<Bytes>, RewriteError> {
    if rewrites.is_empty() && cleared.is_empty() {
        return Ok(None);
    }
    let mut edits = Vec::with_capacity(rewrites.len() + cleared.len());
    for (slot, text) in rewrites {
        let range = slot.locate(body).ok_or(RewriteError)?;
        let json = serde_json::to_string(text).map_err(|_| RewriteError)?;
        edits.push((range, json));
    }
    for slot in cleared {
        let range = slot.locate_value(body).ok_or(RewriteError)?;
        edits.push((range, "null".to_owned()));
    }
    edits.sort_by_key(|(range, _)| range.start);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut last = 0;
    for (range, json) in &edits {
        if range.start < last {
            return Err(RewriteError);
        }
        out.extend_from_slice(&body[last..range.start]);
        out.extend_from_slice(json.as_bytes());
        last = range.end;
    }
    out.extend_from_slice(&body[last..]);
    Ok(Some(Bytes::from(out)))
}

/// `openai-organization`, as a constant (a lookup by `&str` parses the name first).
const OPENAI_ORGANIZATION: http::HeaderName = http::HeaderName::from_static("openai-organization");

fn header_text(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The compiled reflection matcher of an exchange, when reflection is on and the prompt has a
/// protected part.
pub(crate) fn reflector(state: &State) -> Option<Reflector> {
    state.settings.prompt_reflection.action()?;
    Reflector::new(&state.secrets)
}
