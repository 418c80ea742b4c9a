//! The compiled policy: validated configuration, base settings and the word-list scanner.
//! Cheap to clone (`Arc`), `Send + Sync`, built once and shared by every exchange.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::config::{Config, ConfigError};
use crate::exchange::{ClientRequest, Context, Outcome, PendingUpstream, Step};
use crate::openai::ModerationVerdict;
use crate::overrides::Settings;
use crate::rules::moderation::ModerationResult;
use crate::verdict::Verdict;
use crate::wordlist::{ListName, Scanner, builtin_phrases};

/// A compiled, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    config: Config,
    settings: Settings,
    scanner: Scanner,
}

impl Policy {
    /// Compiles a configuration: every word list (built-in and custom) goes into one
    /// automaton, built once.
    pub fn new(config: Config) -> Result<Policy, ConfigError> {
        let builtin = [ListName::Profanity, ListName::Adult, ListName::Dan]
            .into_iter()
            .flat_map(|list| builtin_phrases(list).map(move |p| (p, list)));
        for (i, phrase) in config.policy_custom_wordlist.iter().enumerate() {
            if phrase.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    key: format!("POLICY_CUSTOM_WORDLIST[{i}]"),
                    message: "must not be empty".to_owned(),
                });
            }
        }
        let custom = config
            .policy_custom_wordlist
            .iter()
            .map(|p| (p.as_str(), ListName::Custom));
        let scanner =
            Scanner::new(builtin.chain(custom), config.wordlist_match).map_err(|e| {
                ConfigError::Invalid {
                    key: "POLICY_CUSTOM_WORDLIST".to_owned(),
                    message: e.to_string(),
                }
            })?;
        let all = ListName::ALL.into_iter().collect();
        if scanner.hits(&config.redaction_string, all).next().is_some() {
            return Err(ConfigError::Invalid {
                key: "REDACTION_STRING".to_owned(),
                message: "contains a phrase of a word list, so redaction would never end"
                    .to_owned(),
            });
        }
        let settings = Settings::from_config(&config);
        Ok(Policy {
            inner: Arc::new(Compiled {
                config,
                settings,
                scanner,
            }),
        })
    }

    /// Parses and compiles a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Policy, ConfigError> {
        Policy::new(Config::from_toml(text)?)
    }

    /// Parses and compiles a JSON configuration.
    pub fn from_json(text: &str) -> Result<Policy, ConfigError> {
        Policy::new(Config::from_json(text)?)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The configured settings, before request headers.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The word-list scanner (all lists; each exchange enables the ones its settings name).
    pub fn scanner(&self) -> &Scanner {
        &self.inner.scanner
    }

    /// Checks a request alone: every request rule, with `moderation` as the moderation
    /// endpoint's answer when auto-moderation applies (`None` counts as a failed call, which
    /// `MODERATION_FAIL_OPEN` decides). The upstream is not involved.
    pub fn check_request(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        moderation: Option<&ModerationResult>,
    ) -> Verdict {
        let result = moderation.cloned().unwrap_or_else(|| {
            ModerationResult::Failed("no moderation result was given".to_owned())
        });
        match self.request_side(path, headers, body, &result) {
            Ok(pending) => pending.request_verdict(),
            Err(outcome) => outcome.verdict(),
        }
    }

    /// Checks a request and the upstream's answer to it: every request rule (moderation, if on,
    /// counts as not flagged), then every response rule. When the request is refused or
    /// answered by an auto-reply, that verdict is returned and the response is not looked at.
    pub fn check_response(
        &self,
        path: &str,
        headers: &HeaderMap,
        request_body: &[u8],
        status: u16,
        response_body: &[u8],
    ) -> Verdict {
        let passed = ModerationResult::Verdict(ModerationVerdict {
            flagged: false,
            categories: Vec::new(),
        });
        match self.request_side(path, headers, request_body, &passed) {
            Ok(pending) => pending
                .resume(status, Bytes::copy_from_slice(response_body))
                .verdict(),
            Err(outcome) => outcome.verdict(),
        }
    }

    /// Runs the request side of an exchange with a known moderation result: the pending
    /// upstream call, or the finished outcome.
    fn request_side(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        moderation: &ModerationResult,
    ) -> Result<PendingUpstream, Outcome> {
        let request = ClientRequest {
            method: Method::POST,
            path: path.to_owned(),
            headers: headers.clone(),
            body: Bytes::copy_from_slice(body),
        };
        let mut step = self.begin(request, Context::offline());
        loop {
            match step {
                Step::Moderate(pending) => step = pending.resume(moderation.clone()),
                Step::Forward(pending) => return Ok(pending),
                Step::Finish(outcome) => return Err(outcome),
            }
        }
    }
}
