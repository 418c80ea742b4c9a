//! The compiled policy: validated configuration, base settings and the word-list scanner.
//! Cheap to clone (`Arc`), `Send + Sync`, built once and shared by every exchange.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::config::RuleAction;
use crate::config::{Config, ConfigError};
use crate::exchange::{ClientRequest, Context, Outcome, PendingUpstream, Step};
use crate::openai::ModerationVerdict;
use crate::overrides::Settings;
use crate::rules::moderation::ModerationResult;
use crate::verdict::Verdict;
use crate::wordlist::{ListName, ListSet, Scanner, builtin_phrases};

/// A compiled, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    config: Config,
    settings: Settings,
    /// Every list in one automaton.
    scanner: Scanner,
    /// One automaton per combination of lists, built on first use (the configured ones at
    /// once), so an exchange scans exactly the lists it enables.
    by_set: [OnceLock<Option<Scanner>>; 16],
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
        let scanner = Scanner::new(builtin.chain(custom), config.wordlist_match).map_err(|e| {
            ConfigError::Invalid {
                key: "POLICY_CUSTOM_WORDLIST".to_owned(),
                message: e.to_string(),
            }
        })?;
        check_redaction_string(&config, &scanner)?;
        for (key, spec) in [
            ("POLICY_REQUEST_WORDLIST", &config.policy_request_wordlist),
            ("POLICY_RESPONSE_WORDLIST", &config.policy_response_wordlist),
        ] {
            if spec.action(ListName::Custom).is_some() && config.policy_custom_wordlist.is_empty() {
                return Err(ConfigError::Invalid {
                    key: key.to_owned(),
                    message: "enables the `custom` list but POLICY_CUSTOM_WORDLIST is empty"
                        .to_owned(),
                });
            }
        }
        let settings = Settings::from_config(&config);
        let policy = Policy {
            inner: Arc::new(Compiled {
                config,
                settings,
                scanner,
                by_set: Default::default(),
            }),
        };
        // Build the configured combinations now rather than on the first request.
        for spec in [
            &policy.settings().request_wordlist,
            &policy.settings().response_wordlist,
        ] {
            for action in [RuleAction::Audit, RuleAction::Redact, RuleAction::Block] {
                policy.scanner_for(crate::rules::wordlists::lists_with(spec, action));
            }
            policy.scanner_for(crate::rules::wordlists::lists_at_least(
                spec,
                RuleAction::Audit,
            ));
        }
        Ok(policy)
    }

    /// The automaton for exactly these lists; `None` when they hold no phrase.
    pub(crate) fn scanner_for(&self, set: ListSet) -> Option<&Scanner> {
        if set.is_empty() {
            return None;
        }
        self.inner.by_set[set.index()]
            .get_or_init(|| {
                let config = &self.inner.config;
                let builtin = set
                    .iter()
                    .filter(|l| *l != ListName::Custom)
                    .flat_map(|list| builtin_phrases(list).map(move |p| (p, list)));
                let custom = config
                    .policy_custom_wordlist
                    .iter()
                    .filter(|_| set.contains(ListName::Custom))
                    .map(|p| (p.as_str(), ListName::Custom));
                // The full set compiled in `new`, so every subset compiles too.
                Scanner::new(builtin.chain(custom), config.wordlist_match)
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .as_ref()
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
    ///
    /// The body is taken as [`Bytes`]: a `Vec<u8>`, `String`, `Bytes` or static slice is used
    /// without copying; borrowed bytes go through `Bytes::copy_from_slice`.
    pub fn check_request(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: impl Into<Bytes>,
        moderation: Option<&ModerationResult>,
    ) -> Verdict {
        match self.request_side(path, headers, body.into(), moderation) {
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
        request_body: impl Into<Bytes>,
        status: u16,
        response_body: impl Into<Bytes>,
    ) -> Verdict {
        let passed = ModerationResult::Verdict(ModerationVerdict {
            flagged: false,
            categories: Vec::new(),
        });
        match self.request_side(path, headers, request_body.into(), Some(&passed)) {
            Ok(pending) => pending.resume(status, response_body.into()).verdict(),
            Err(outcome) => outcome.verdict(),
        }
    }

    /// Runs the request side of an exchange with a known moderation result: the pending
    /// upstream call, or the finished outcome.
    fn request_side(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
        moderation: Option<&ModerationResult>,
    ) -> Result<PendingUpstream, Box<Outcome>> {
        let request = ClientRequest {
            method: Method::POST,
            path: path.to_owned(),
            headers: headers.clone(),
            body,
        };
        let mut step = self.begin(request, Context::offline());
        loop {
            match step {
                Step::Moderate(pending) => {
                    let result = moderation.cloned().unwrap_or_else(|| {
                        ModerationResult::Failed("no moderation result was given".to_owned())
                    });
                    step = pending.resume(result);
                }
                Step::Forward(pending) => return Ok(pending),
                Step::Finish(outcome) => return Err(Box::new(outcome)),
            }
        }
    }
}

/// Redaction must settle in one pass, for whole texts and streams alike: the redaction string
/// may not contain a phrase, and no phrase may reach into a redaction (end with the start of
/// the redaction string, start with its end, or contain it).
fn check_redaction_string(config: &Config, scanner: &Scanner) -> Result<(), ConfigError> {
    let r = config.redaction_string.to_ascii_lowercase();
    let invalid = |message: String| ConfigError::Invalid {
        key: "REDACTION_STRING".to_owned(),
        message,
    };
    if r.is_empty() {
        return Err(invalid("must not be empty".to_owned()));
    }
    if scanner.hits(&r, ListSet::ALL).next().is_some() {
        return Err(invalid(format!(
            "`{}` contains a phrase of a word list",
            config.redaction_string
        )));
    }
    let builtin = [ListName::Profanity, ListName::Adult, ListName::Dan]
        .into_iter()
        .flat_map(builtin_phrases);
    let mut phrases: Vec<&str> = config
        .policy_custom_wordlist
        .iter()
        .map(String::as_str)
        .collect();
    for phrase in builtin {
        phrases.push(phrase);
    }
    for phrase in phrases {
        let p = phrase.trim().to_ascii_lowercase();
        let mut prefixes = r
            .char_indices()
            .map(|(i, _)| i)
            .skip(1)
            .chain([r.len()])
            .map(|i| &r[..i]);
        let mut suffixes = r.char_indices().map(|(j, _)| &r[j..]);
        let reaches_in =
            prefixes.any(|pre| p.ends_with(pre)) || suffixes.any(|suf| p.starts_with(suf));
        if p.contains(&r) || reaches_in {
            return Err(invalid(format!(
                "the phrase `{phrase}` overlaps the redaction string `{}`, so a redaction could form a new match; use a redaction string that starts and ends with a symbol, such as `****` or `[REDACTED]`",
                config.redaction_string
            )));
        }
    }
    Ok(())
}
