//! The response side of an exchange: the upstream's answer through the response rules.

use bytes::Bytes;

use super::{ErrorAnswer, Outcome, PendingUpstream, State, reflector, rewrite_and_clear};
use crate::filter::Findings;
use crate::openai::response::ResponseView;
use crate::reply;
use crate::rules::log;
use crate::rules::reflection;
use crate::rules::wordlists::{self, Side};
use crate::verdict::Decision;

/// Why the upstream gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// No connection could be made (answered 502).
    Connect(String),
    /// No answer in time (answered 504).
    Timeout(String),
    /// The connection broke or the answer was unreadable (answered 502).
    Broken(String),
}

impl UpstreamFailure {
    fn status(&self) -> u16 {
        match self {
            UpstreamFailure::Timeout(_) => 504,
            UpstreamFailure::Connect(_) | UpstreamFailure::Broken(_) => 502,
        }
    }

    fn message(&self) -> String {
        match self {
            UpstreamFailure::Connect(why) => format!("upstream connection failed: {why}"),
            UpstreamFailure::Timeout(why) => format!("upstream timed out: {why}"),
            UpstreamFailure::Broken(why) => format!("upstream answer failed: {why}"),
        }
    }
}

impl PendingUpstream {
    /// Resumes with the upstream's complete answer.
    pub fn resume(self, status: u16, body: Bytes) -> Outcome {
        let state = self.state;
        if !(200..300).contains(&status) || !state.checked {
            return state.pass_through(status, body);
        }
        let reflector = reflector(&state);
        let spec = state.settings.response_wordlist;
        let spec = &spec;
        let active = state.endpoint.is_generation() && (!spec.is_empty() || reflector.is_some());
        if !active {
            return state.pass_through(status, body);
        }
        let Ok(view) = ResponseView::parse(&body) else {
            let message =
                "upstream answer is not valid JSON, so the response policies cannot be applied";
            return state.error(
                ErrorAnswer::new(502, message, "upstream_error"),
                Decision::Allow,
            );
        };
        let policy = state.policy.clone();
        let endpoint = state.endpoint.clone();
        let log_full = state.settings.log_response;
        let redaction = policy.config().redaction_string.as_str();
        let words = wordlists::stage(&policy, spec);
        let reflection_action = state.settings.prompt_reflection.action();
        let reflect = match (&reflector, reflection_action) {
            (Some(r), Some(action)) => Some(reflection::stage(r, action, redaction)),
            _ => None,
        };
        let mut found = Findings::default();
        let mut reflected = Findings::default();
        let mut rewrites = Vec::new();
        view.visit_texts(&mut |t| {
            let first = words.apply(t.text, &mut found);
            let second = reflect
                .as_ref()
                .and_then(|r| r.apply(first.as_deref().unwrap_or(t.text), &mut reflected));
            if let Some(new) = second.or(first) {
                rewrites.push((t.slot.clone(), new));
            }
        });
        // Log probabilities spell out the tokens: an answer whose text was rewritten loses them.
        let cleared = if rewrites.is_empty() {
            Vec::new()
        } else {
            view.logprobs_slots()
        };
        drop(view);
        let mut state = state;
        wordlists::record(&mut state.flags, Side::Response, &found, spec);
        if let (true, Some(action)) = (reflected.matched, reflection_action) {
            state.flags.push(reflection::flag(action));
        }
        if state.blocked() {
            let reply = reply::block_reply(&state.flags);
            let mut outcome = state.finish_with(reply, Decision::Block, None);
            outcome.stats.response = log::response_record(&endpoint, &body, log_full);
            return outcome;
        }
        let rewritten = match rewrite_and_clear(&body, &rewrites, &cleared) {
            Ok(rewritten) => rewritten,
            Err(_) => {
                let message =
                    "upstream answer could not be rewritten for redaction (malformed JSON escapes)";
                return state.error(
                    ErrorAnswer::new(502, message, "upstream_error"),
                    Decision::Allow,
                );
            }
        };
        // The record keeps the upstream's answer as it came, not the rewritten one.
        let out = rewritten.clone().unwrap_or_else(|| body.clone());
        let mut outcome = state.pass_through_logging(status, out, &body);
        outcome.rewritten = rewritten;
        outcome
    }

    /// Ends the exchange with an error of the adapter's (for example a routing error), without
    /// calling the upstream.
    pub fn refuse(self, status: u16, message: &str, kind: &str) -> Outcome {
        self.state
            .error(ErrorAnswer::new(status, message, kind), Decision::Block)
    }

    /// Resumes when the upstream could not be asked or gave no answer.
    pub fn fail(self, failure: UpstreamFailure) -> Outcome {
        let message = failure.message();
        self.state.error(
            ErrorAnswer::new(failure.status(), &message, "upstream_error"),
            Decision::Allow,
        )
    }
}

impl State {
    /// Ends the exchange with the upstream's answer, unchanged (status, body and content type).
    pub(crate) fn pass_through(self, status: u16, body: Bytes) -> Outcome {
        let logged = body.clone();
        self.pass_through_logging(status, body, &logged)
    }

    /// Ends the exchange with `body` for the client, recording `logged` in the stats record.
    fn pass_through_logging(self, status: u16, body: Bytes, logged: &[u8]) -> Outcome {
        let endpoint = self.endpoint.clone();
        let log_full = self.settings.log_response || !(200..300).contains(&status);
        let checked = self.checked;
        let decision = Decision::Allow;
        let mut stats = self.stats(status, decision);
        if checked || !(200..300).contains(&status) {
            (stats.response, stats.usage) = log::response_parts(&endpoint, logged, log_full);
        }
        if !(200..300).contains(&status) {
            stats.error = true;
            stats.error_message = Some(format!("upstream answered {status}"));
        }
        Outcome {
            status,
            content_type: None,
            body,
            decision,
            stats,
            rewritten: None,
        }
    }
}
