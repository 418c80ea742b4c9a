//! Retries of failed upstream calls: exponential backoff with jitter, honouring `Retry-After`.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// How failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay; each further retry doubles it.
    pub base_delay: Duration,
    /// The longest delay between two attempts (a longer `Retry-After` ends the retries).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Whether an answer with this status is worth another attempt: 408, 429 and 5xx except
    /// 501 and 505 (which will not change).
    pub fn retryable_status(status: StatusCode) -> bool {
        status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || (status.is_server_error()
                && status != StatusCode::NOT_IMPLEMENTED
                && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
    }

    /// The delay before retry number `retry` (0-based): the server's `Retry-After` (seconds)
    /// when it sent one, else `base * 2^retry` plus up to 10% jitter; `None` when the server
    /// asks for longer than `max_delay`.
    pub fn delay(&self, retry: u32, headers: Option<&HeaderMap>) -> Option<Duration> {
        if let Some(after) = headers.and_then(retry_after) {
            return (after <= self.max_delay).then_some(after);
        }
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max_delay);
        let jitter_cap = exp.as_micros() / 10;
        let jitter = if jitter_cap == 0 {
            0
        } else {
            u128::from(random_u64()) % jitter_cap
        };
        let jitter = u64::try_from(jitter).unwrap_or(0);
        Some(exp + Duration::from_micros(jitter))
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by LLM APIs and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// A random number from the standard library's randomly keyed hasher (jitter needs no more).
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn backoff_doubles_and_honours_retry_after() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let d0 = p.delay(0, None).unwrap_or_default();
        let d2 = p.delay(2, None).unwrap_or_default();
        assert!(d0 >= Duration::from_millis(100) && d0 <= Duration::from_millis(110));
        assert!(d2 >= Duration::from_millis(400) && d2 <= Duration::from_millis(440));
        assert_eq!(
            p.delay(10, None).map(|d| d <= Duration::from_millis(2200)),
            Some(true)
        );
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        assert_eq!(p.delay(0, Some(&h)), Some(Duration::from_secs(1)));
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("60"));
        assert_eq!(p.delay(0, Some(&h)), None);
        for huge in ["1e20", "18446744073709551616", "-1", "NaN", "inf"] {
            h.insert(http::header::RETRY_AFTER, HeaderValue::from_static(huge));
            assert!(
                p.delay(0, Some(&h)).is_none_or(|d| d <= p.max_delay),
                "{huge}"
            );
        }
        assert!(RetryPolicy::retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(RetryPolicy::retryable_status(StatusCode::BAD_GATEWAY));
        assert!(!RetryPolicy::retryable_status(StatusCode::BAD_REQUEST));
    }
}
