//! Per-request `x-usagepanda-*` headers and the effective settings of one exchange.
//!
//! Header values are parsed strictly: `x-usagepanda-max-tokens: 10abc` is an error, not 10.
//! How a valid header combines with the configuration is set by `header_overrides`:
//! `tighten` (a header may only make the policy stricter), `any` (the header wins, as in the
//! original proxy) or `off` (headers are ignored).

use http::HeaderMap;

use crate::config::{Config, HeaderOverrides, MAX_RETRY_COUNT, ReflectionAction, WordlistSpec};

/// `x-usagepanda-log-request`
pub const LOG_REQUEST: &str = "x-usagepanda-log-request";
/// `x-usagepanda-log-response`
pub const LOG_RESPONSE: &str = "x-usagepanda-log-response";
/// `x-usagepanda-max-tokens`
pub const MAX_TOKENS: &str = "x-usagepanda-max-tokens";
/// `x-usagepanda-max-prompt-chars`
pub const MAX_PROMPT_CHARS: &str = "x-usagepanda-max-prompt-chars";
/// `x-usagepanda-enforce-user-ids`
pub const ENFORCE_USER_IDS: &str = "x-usagepanda-enforce-user-ids";
/// `x-usagepanda-retry-count`
pub const RETRY_COUNT: &str = "x-usagepanda-retry-count";
/// `x-usagepanda-auto-moderate`
pub const AUTO_MODERATE: &str = "x-usagepanda-auto-moderate";
/// `x-usagepanda-request-wordlists`
pub const REQUEST_WORDLISTS: &str = "x-usagepanda-request-wordlists";
/// `x-usagepanda-response-wordlists`
pub const RESPONSE_WORDLISTS: &str = "x-usagepanda-response-wordlists";
/// `x-usagepanda-prompt-reflection`
pub const PROMPT_REFLECTION: &str = "x-usagepanda-prompt-reflection";
/// `x-usagepanda-trace-id`
pub const TRACE_ID: &str = "x-usagepanda-trace-id";

/// A request header that cannot be used. Answered with a 400 naming the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header `{header}`: {problem}")]
pub struct OverrideError {
    /// The header's name.
    pub header: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

/// The settings one exchange runs with: the configuration combined with the request's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Keep the whole request in stats.
    pub log_request: bool,
    /// Keep the whole response in stats.
    pub log_response: bool,
    /// Token limit (0 = off).
    pub max_tokens: u64,
    /// Prompt character limit (0 = off).
    pub max_prompt_chars: u64,
    /// Require `user`.
    pub enforce_user_ids: bool,
    /// Upstream retries.
    pub retry_count: u32,
    /// Ask the moderation endpoint first.
    pub auto_moderate: bool,
    /// Request-side word lists.
    pub request_wordlist: WordlistSpec,
    /// Response-side word lists.
    pub response_wordlist: WordlistSpec,
    /// Prompt reflection.
    pub prompt_reflection: ReflectionAction,
}

impl Settings {
    /// The configured settings, before any header.
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            log_request: config.policy_log_request,
            log_response: config.policy_log_response,
            max_tokens: config.policy_max_tokens,
            max_prompt_chars: config.policy_max_prompt_chars,
            enforce_user_ids: config.policy_enforce_user_ids,
            retry_count: config.policy_retry_count,
            auto_moderate: config.policy_auto_moderate,
            request_wordlist: config.policy_request_wordlist,
            response_wordlist: config.policy_response_wordlist,
            prompt_reflection: config.policy_prompt_reflection,
        }
    }

    /// Applies the request's headers according to `mode`.
    pub fn with_headers(
        &self,
        headers: &HeaderMap,
        mode: HeaderOverrides,
    ) -> Result<Settings, OverrideError> {
        let mut out = self.clone();
        if mode == HeaderOverrides::Off || !any_override(headers) {
            return Ok(out);
        }
        let any = mode == HeaderOverrides::Any;
        if let Some(v) = flag(headers, LOG_REQUEST)? {
            out.log_request = if any { v } else { out.log_request || v };
        }
        if let Some(v) = flag(headers, LOG_RESPONSE)? {
            out.log_response = if any { v } else { out.log_response || v };
        }
        if let Some(v) = number(headers, MAX_TOKENS)? {
            out.max_tokens = if any {
                v
            } else {
                tighter_limit(out.max_tokens, v)
            };
        }
        if let Some(v) = number(headers, MAX_PROMPT_CHARS)? {
            out.max_prompt_chars = if any {
                v
            } else {
                tighter_limit(out.max_prompt_chars, v)
            };
        }
        if let Some(v) = flag(headers, ENFORCE_USER_IDS)? {
            out.enforce_user_ids = if any { v } else { out.enforce_user_ids || v };
        }
        if let Some(v) = number(headers, RETRY_COUNT)? {
            if v > u64::from(MAX_RETRY_COUNT) {
                return Err(OverrideError {
                    header: RETRY_COUNT,
                    problem: format!("`{v}` is more than the maximum of {MAX_RETRY_COUNT}"),
                });
            }
            let v = u32::try_from(v).unwrap_or(MAX_RETRY_COUNT);
            out.retry_count = if any { v } else { out.retry_count.min(v) };
        }
        if let Some(v) = flag(headers, AUTO_MODERATE)? {
            out.auto_moderate = if any { v } else { out.auto_moderate || v };
        }
        if let Some(v) = wordlists(headers, REQUEST_WORDLISTS)? {
            out.request_wordlist = if any {
                v
            } else {
                out.request_wordlist.tightened_by(&v)
            };
        }
        if let Some(v) = wordlists(headers, RESPONSE_WORDLISTS)? {
            out.response_wordlist = if any {
                v
            } else {
                out.response_wordlist.tightened_by(&v)
            };
        }
        if let Some(v) = text(headers, PROMPT_REFLECTION)? {
            let v = ReflectionAction::parse(v).ok_or_else(|| OverrideError {
                header: PROMPT_REFLECTION,
                problem: format!("`{v}` is not one of none, audit, redact or block"),
            })?;
            out.prompt_reflection = if any { v } else { out.prompt_reflection.max(v) };
        }
        Ok(out)
    }
}

/// Whether any `x-usagepanda-*` header is present: one pass over the names, so that requests
/// without any (nearly all) skip a dozen lookups that each parse a name.
fn any_override(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name.as_str().starts_with("x-usagepanda-"))
}

/// The stricter of two limits where 0 means "no limit".
fn tighter_limit(configured: u64, requested: u64) -> u64 {
    match (configured, requested) {
        (0, r) => r,
        (c, 0) => c,
        (c, r) => c.min(r),
    }
}

fn text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, OverrideError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| OverrideError {
            header: name,
            problem: "value is not visible ASCII".to_owned(),
        })
}

fn flag(headers: &HeaderMap, name: &'static str) -> Result<Option<bool>, OverrideError> {
    let Some(v) = text(headers, name)? else {
        return Ok(None);
    };
    if v.eq_ignore_ascii_case("true") {
        Ok(Some(true))
    } else if v.eq_ignore_ascii_case("false") {
        Ok(Some(false))
    } else {
        Err(OverrideError {
            header: name,
            problem: format!("`{v}` is not true or false"),
        })
    }
}

fn number(headers: &HeaderMap, name: &'static str) -> Result<Option<u64>, OverrideError> {
    let Some(v) = text(headers, name)? else {
        return Ok(None);
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OverrideError {
            header: name,
            problem: format!("`{v}` is not a whole number"),
        });
    }
    v.parse().map(Some).map_err(|_| OverrideError {
        header: name,
        problem: format!("`{v}` is too large"),
    })
}

fn wordlists(
    headers: &HeaderMap,
    name: &'static str,
) -> Result<Option<WordlistSpec>, OverrideError> {
    let Some(v) = text(headers, name)? else {
        return Ok(None);
    };
    WordlistSpec::parse(v).map(Some).map_err(|e| OverrideError {
        header: name,
        problem: e.to_string(),
    })
}

/// Reads and checks `x-usagepanda-trace-id`: 1 to 99 characters of `[A-Za-z0-9_-]`.
pub fn trace_id(headers: &HeaderMap) -> Result<Option<String>, OverrideError> {
    if !any_override(headers) {
        return Ok(None);
    }
    let Some(v) = text(headers, TRACE_ID)? else {
        return Ok(None);
    };
    let ok = !v.is_empty()
        && v.len() < 100
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(Some(v.to_owned()))
    } else {
        Err(OverrideError {
            header: TRACE_ID,
            problem: "must be 1 to 99 characters of A-Z, a-z, 0-9, `_` and `-`".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleAction;
    use crate::wordlist::ListName;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(v) {
                map.insert(*k, v);
            }
        }
        map
    }

    fn base() -> Settings {
        let config = Config {
            policy_max_tokens: 100,
            policy_request_wordlist: WordlistSpec::parse("profanity:redact").unwrap_or_default(),
            policy_prompt_reflection: ReflectionAction::On(RuleAction::Redact),
            ..Config::default()
        };
        Settings::from_config(&config)
    }

    #[test]
    fn garbage_numbers_are_errors() {
        let err = base().with_headers(&headers(&[(MAX_TOKENS, "10abc")]), HeaderOverrides::Any);
        assert_eq!(err.map_err(|e| e.header), Err(MAX_TOKENS));
        let err = base().with_headers(&headers(&[(MAX_TOKENS, "-1")]), HeaderOverrides::Any);
        assert!(err.is_err());
        let err = base().with_headers(&headers(&[(RETRY_COUNT, "6")]), HeaderOverrides::Any);
        assert!(err.is_err());
    }

    #[test]
    fn tighten_only_makes_stricter() {
        let h = headers(&[
            (MAX_TOKENS, "500"),
            (REQUEST_WORDLISTS, "profanity:audit,dan:block"),
            (PROMPT_REFLECTION, "none"),
        ]);
        let Ok(s) = base().with_headers(&h, HeaderOverrides::Tighten) else {
            unreachable!()
        };
        assert_eq!(s.max_tokens, 100);
        assert_eq!(
            s.request_wordlist.action(ListName::Profanity),
            Some(RuleAction::Redact)
        );
        assert_eq!(
            s.request_wordlist.action(ListName::Dan),
            Some(RuleAction::Block)
        );
        assert_eq!(
            s.prompt_reflection,
            ReflectionAction::On(RuleAction::Redact)
        );
        let Ok(s) = base().with_headers(&headers(&[(MAX_TOKENS, "50")]), HeaderOverrides::Tighten)
        else {
            unreachable!()
        };
        assert_eq!(s.max_tokens, 50);
        let Ok(s) = base().with_headers(&headers(&[(MAX_TOKENS, "0")]), HeaderOverrides::Tighten)
        else {
            unreachable!()
        };
        assert_eq!(s.max_tokens, 100, "0 would switch the limit off");
    }

    #[test]
    fn any_lets_headers_win_and_off_ignores_them() {
        let h = headers(&[(MAX_TOKENS, "0"), (PROMPT_REFLECTION, "none")]);
        let Ok(s) = base().with_headers(&h, HeaderOverrides::Any) else {
            unreachable!()
        };
        assert_eq!(s.max_tokens, 0);
        assert_eq!(s.prompt_reflection, ReflectionAction::None);
        let h = headers(&[(MAX_TOKENS, "garbage")]);
        assert_eq!(base().with_headers(&h, HeaderOverrides::Off), Ok(base()));
    }

    #[test]
    fn trace_ids_are_checked() {
        assert_eq!(
            trace_id(&headers(&[(TRACE_ID, "abc-1_2")])),
            Ok(Some("abc-1_2".to_owned()))
        );
        assert!(trace_id(&headers(&[(TRACE_ID, "a b")])).is_err());
        assert!(trace_id(&headers(&[(TRACE_ID, &"a".repeat(100))])).is_err());
        assert_eq!(trace_id(&HeaderMap::new()), Ok(None));
    }
}
