//! Where an exchange's policy comes from: the local file (`LOCAL_MODE`), or the Usage Panda
//! API per key (`GET {USAGE_PANDA_API}/proxy` with `x-usagepanda-key`), merged over the local
//! file and cached for `CONFIG_CACHE_MINUTES`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use usagepanda_core::{Config, Policy};

use crate::route::USAGE_PANDA_KEY;
use crate::upstream::{Upstream, UpstreamRequest, collect_body};

/// Why no policy could be had for a request. Messages never contain keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigLoadError {
    /// No Usage Panda key in the request or the config (answered 403).
    #[error("Invalid Usage Panda API key")]
    MissingKey,
    /// The Usage Panda API could not be asked or gave no usable config (answered 500).
    #[error("Error loading Usage Panda config: {0}")]
    Remote(String),
}

impl ConfigLoadError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            ConfigLoadError::MissingKey => 403,
            ConfigLoadError::Remote(_) => 500,
        }
    }

    /// The OpenAI error type for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigLoadError::MissingKey => "access_denied",
            ConfigLoadError::Remote(_) => "server_error",
        }
    }
}

/// A policy for one request.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The policy.
    pub policy: Policy,
    /// Whether it came from a cache (always true for a local config, as in the original).
    pub cached: bool,
    /// The Usage Panda key it was loaded with (for uploading the stats), if any.
    pub key: Option<HeaderValue>,
}

/// Provides each request's policy.
pub struct ConfigSource {
    local: Policy,
    remote: Option<Remote>,
}

struct Remote {
    upstream: Arc<dyn Upstream>,
    uri: Uri,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Policy)>>,
}

impl std::fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSource")
            .field("remote", &self.remote.as_ref().map(|r| r.uri.to_string()))
            .finish_non_exhaustive()
    }
}

impl ConfigSource {
    /// Every request uses this policy.
    pub fn local(policy: Policy) -> ConfigSource {
        ConfigSource {
            local: policy,
            remote: None,
        }
    }

    /// Per key from the Usage Panda API, over `local`; `LOCAL_MODE` in `local`'s config turns
    /// this into [`ConfigSource::local`].
    pub fn from_policy(
        local: Policy,
        upstream: Arc<dyn Upstream>,
    ) -> Result<ConfigSource, ConfigLoadError> {
        if local.config().local_mode {
            return Ok(ConfigSource::local(local));
        }
        let url = format!(
            "{}/proxy",
            local.config().usage_panda_api.trim_end_matches('/')
        );
        let uri = url.parse().map_err(|_| {
            ConfigLoadError::Remote("USAGE_PANDA_API is not a valid URL".to_owned())
        })?;
        let ttl = Duration::from_secs(local.config().config_cache_minutes.saturating_mul(60));
        Ok(ConfigSource {
            local,
            remote: Some(Remote {
                upstream,
                uri,
                ttl,
                cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The local policy.
    pub fn local_policy(&self) -> &Policy {
        &self.local
    }

    /// Whether configs come from the Usage Panda API.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The policy for a request with these headers.
    pub async fn policy_for(&self, headers: &HeaderMap) -> Result<Loaded, ConfigLoadError> {
        let Some(remote) = &self.remote else {
            return Ok(Loaded {
                policy: self.local.clone(),
                cached: true,
                key: None,
            });
        };
        let key = headers
            .get(USAGE_PANDA_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .or_else(|| self.local.config().usage_panda_api_key.clone())
            .ok_or(ConfigLoadError::MissingKey)?;
        let mut header = HeaderValue::from_str(&key).map_err(|_| ConfigLoadError::MissingKey)?;
        header.set_sensitive(true);
        if let Some(policy) = remote.cached(&key) {
            return Ok(Loaded {
                policy,
                cached: true,
                key: Some(header),
            });
        }
        match remote.fetch(&self.local, header.clone()).await {
            Ok(policy) => {
                remote.store(key, policy.clone());
                Ok(Loaded {
                    policy,
                    cached: false,
                    key: Some(header),
                })
            }
            Err(e) if self.local.config().fail_open_on_config_error => {
                tracing::warn!(error = %e, "cannot load the config from the Usage Panda API; failing open with the local config");
                Ok(Loaded {
                    policy: self.local.clone(),
                    cached: true,
                    key: Some(header),
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl Remote {
    fn cached(&self, key: &str) -> Option<Policy> {
        let cache = self.cache.lock().ok()?;
        let (at, policy) = cache.get(key)?;
        (at.elapsed() < self.ttl).then(|| policy.clone())
    }

    fn store(&self, key: String, policy: Policy) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
            cache.insert(key, (Instant::now(), policy));
        }
    }

    async fn fetch(&self, local: &Policy, key: HeaderValue) -> Result<Policy, ConfigLoadError> {
        let mut headers = HeaderMap::new();
        headers.insert("x-usagepanda-key", key);
        let request = UpstreamRequest {
            method: Method::GET,
            uri: self.uri.clone(),
            headers,
            body: Bytes::new(),
        };
        let call = async {
            let response = self
                .upstream
                .send(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status;
            let body = collect_body(response.body, 4 * 1024 * 1024)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .map_err(|_| ConfigLoadError::Remote("the Usage Panda API timed out".to_owned()))?
            .map_err(ConfigLoadError::Remote)?;
        if !status.is_success() {
            return Err(ConfigLoadError::Remote(format!(
                "the Usage Panda API answered {status}"
            )));
        }
        let overlay: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            ConfigLoadError::Remote("the Usage Panda API answer is not JSON".to_owned())
        })?;
        let merged: Config = local
            .config()
            .merged_with_json(&overlay)
            .map_err(|e| ConfigLoadError::Remote(e.to_string()))?;
        Policy::new(merged).map_err(|e| ConfigLoadError::Remote(e.to_string()))
    }
}
