//! Running a whole exchange offline, with canned moderation and upstream answers: what
//! `usagepanda check` and `usagepanda test` do, and what a policy's own unit tests can use.

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::exchange::{ClientRequest, Context, Step};
use crate::policy::Policy;
use crate::rules::moderation::ModerationResult;
use crate::stats::StatsRecord;
use crate::verdict::{Decision, Flag};

/// One exchange to run offline.
#[derive(Debug, Clone)]
pub struct OfflineExchange {
    /// The request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body.
    pub body: Bytes,
    /// The moderation endpoint's answer, when auto-moderation asks for one (`None`: the call
    /// counts as failed).
    pub moderation: Option<ModerationResult>,
    /// The upstream's answer (status and body), when the exchange gets that far (`None`: stop
    /// once the request side is decided).
    pub upstream: Option<(u16, Bytes)>,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct OfflineRun {
    /// The decision.
    pub decision: Decision,
    /// Every flag raised.
    pub flags: Vec<Flag>,
    /// The body sent to the moderation endpoint, when it was asked.
    pub moderated: Option<Bytes>,
    /// The body sent to the upstream, when it was called.
    pub forwarded: Option<Bytes>,
    /// What the client got (status and body), unless the run stopped before the upstream.
    pub reply: Option<(u16, Bytes)>,
    /// The stats record, when the exchange finished.
    pub stats: Option<StatsRecord>,
}

impl Policy {
    /// Runs an exchange with canned answers.
    pub fn run_offline(&self, exchange: OfflineExchange) -> OfflineRun {
        let request = ClientRequest {
            method: Method::POST,
            path: exchange.path,
            headers: exchange.headers,
            body: exchange.body,
        };
        let mut moderated = None;
        let mut step = self.begin(request, Context::offline());
        loop {
            match step {
                Step::Moderate(pending) => {
                    moderated = Some(pending.body().clone());
                    let result = exchange.moderation.clone().unwrap_or_else(|| {
                        ModerationResult::Failed("no moderation result was given".to_owned())
                    });
                    step = pending.resume(result);
                }
                Step::Forward(pending) => {
                    let forwarded = Some(pending.body().clone());
                    let Some((status, body)) = exchange.upstream else {
                        return OfflineRun {
                            decision: Decision::Allow,
                            flags: pending.flags().to_vec(),
                            moderated,
                            forwarded,
                            reply: None,
                            stats: None,
                        };
                    };
                    let outcome = pending.resume(status, body);
                    return OfflineRun {
                        decision: outcome.decision,
                        flags: outcome.stats.flags.clone(),
                        moderated,
                        forwarded,
                        reply: Some((outcome.status, outcome.body)),
                        stats: Some(outcome.stats),
                    };
                }
                Step::Finish(outcome) => {
                    return OfflineRun {
                        decision: outcome.decision,
                        flags: outcome.stats.flags.clone(),
                        moderated,
                        forwarded: None,
                        reply: Some((outcome.status, outcome.body)),
                        stats: Some(outcome.stats),
                    };
                }
            }
        }
    }
}
