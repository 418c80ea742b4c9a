//! The configuration: plain serde data, read from TOML or JSON.
//!
//! Every key of the original proxy's `config.js` is accepted under its original
//! SCREAMING_CASE name and under the snake_case form of that name, so a `config.js` can be
//! ported value for value. `null` means "the default" (the original's `config.js` writes
//! `AZURE_RESOURCE_NAME: null`). Unknown keys and bad values are a [`ConfigError`] naming the
//! key; nothing is silently ignored.

mod error;
mod values;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::error::ConfigError;
pub use self::values::{
    AutoReplyKind, AutoReplyRule, HeaderOverrides, ReflectionAction, RuleAction, WordlistSpec,
};
use crate::wordlist::WordlistMatch;

/// The upper bound of `POLICY_RETRY_COUNT` (as in the original).
pub const MAX_RETRY_COUNT: u32 = 5;

/// A whole configuration. Construct it with [`Config::from_toml`], [`Config::from_json`] or
/// `Config::default()` (a pure pass-through: every policy off).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "snake_case")]
pub struct Config {
    // --- modes and endpoints (read by the adapters) ---
    /// Standalone mode: local config only, stats only logged.
    #[serde(alias = "LOCAL_MODE")]
    pub local_mode: bool,
    /// The Usage Panda API (config and stats).
    #[serde(alias = "USAGE_PANDA_API")]
    pub usage_panda_api: String,
    /// The Usage Panda API key, when not sent per request.
    #[serde(alias = "USAGE_PANDA_API_KEY", skip_serializing)]
    pub usage_panda_api_key: Option<String>,
    /// The upstream key injected when a client sends none.
    #[serde(alias = "OPENAI_API_KEY", skip_serializing)]
    pub openai_api_key: Option<String>,
    /// The upstream base URL (`https://api.openai.com/v1`; a trailing `/v1` is optional).
    #[serde(alias = "LLM_API_BASE_PATH")]
    pub llm_api_base_path: String,
    /// Minutes a config loaded from the Usage Panda API is cached.
    #[serde(alias = "CONFIG_CACHE_MINUTES")]
    pub config_cache_minutes: u64,
    /// Headers returned on every answer; `OPTIONS` is answered with them at once.
    #[serde(alias = "CORS_HEADERS")]
    pub cors_headers: BTreeMap<String, String>,
    /// When the Usage Panda API config cannot be loaded: go on with the local config (true) or
    /// answer 500 (false).
    #[serde(alias = "FAIL_OPEN_ON_CONFIG_ERROR")]
    pub fail_open_on_config_error: bool,
    /// Upload stats without waiting for the upload.
    #[serde(alias = "ASYNC_STATS_UPLOAD")]
    pub async_stats_upload: bool,
    /// An id (string or object) added to every stats record and log line.
    #[serde(alias = "PROXY_ID")]
    pub proxy_id: serde_json::Value,

    // --- Azure ---
    /// The Azure OpenAI resource to route to (or header `x-usagepanda-azure-resource`).
    #[serde(alias = "AZURE_RESOURCE_NAME")]
    pub azure_resource_name: Option<String>,
    /// The deployment used for a model missing from `AZURE_DEPLOYMENT_MAP`.
    #[serde(alias = "AZURE_DEPLOYMENT_ID")]
    pub azure_deployment_id: Option<String>,
    /// Model name to Azure deployment name.
    #[serde(alias = "AZURE_DEPLOYMENT_MAP")]
    pub azure_deployment_map: BTreeMap<String, String>,
    /// The Azure `api-version` query parameter.
    #[serde(alias = "AZURE_API_VERSION")]
    pub azure_api_version: String,
    /// The Azure endpoint template; `{resource}` is replaced by the resource name.
    #[serde(alias = "AZURE_ENDPOINT")]
    pub azure_endpoint: String,

    // --- text handling ---
    /// What replaces redacted text.
    #[serde(alias = "REDACTION_STRING")]
    pub redaction_string: String,
    /// Marks the secret part of a prompt for prompt-reflection checks (the original's spelling
    /// is accepted, and so is `PROMPT_REFLECTION_DELIMITER`).
    #[serde(
        alias = "PROMPT_REFLECTION_DELIMETER",
        alias = "PROMPT_REFLECTION_DELIMITER",
        alias = "prompt_reflection_delimiter"
    )]
    pub prompt_reflection_delimeter: String,
    /// `word` (default): phrases match whole words; `substring`: anywhere.
    #[serde(alias = "WORDLIST_MATCH")]
    pub wordlist_match: WordlistMatch,
    /// What `x-usagepanda-*` headers may do: `tighten` (default), `any` or `off`.
    #[serde(alias = "HEADER_OVERRIDES")]
    pub header_overrides: HeaderOverrides,

    // --- policies ---
    /// Models (and image sizes such as `1024x1024`) that are refused.
    #[serde(alias = "POLICY_DISABLED_MODELS")]
    pub policy_disabled_models: Vec<String>,
    /// Known prompts answered without calling the upstream.
    #[serde(alias = "POLICY_AUTOREPLY")]
    pub policy_autoreply: Vec<AutoReplyRule>,
    /// Word lists applied to requests, e.g. `profanity:block,dan:redact,custom:audit`.
    #[serde(alias = "POLICY_REQUEST_WORDLIST")]
    pub policy_request_wordlist: WordlistSpec,
    /// Word lists applied to responses.
    #[serde(alias = "POLICY_RESPONSE_WORDLIST")]
    pub policy_response_wordlist: WordlistSpec,
    /// The phrases of the `custom` list.
    #[serde(alias = "POLICY_CUSTOM_WORDLIST")]
    pub policy_custom_wordlist: Vec<String>,
    /// Refuse requests whose `max_tokens` is missing or above this (0 = off).
    #[serde(alias = "POLICY_MAX_TOKENS")]
    pub policy_max_tokens: u64,
    /// Refuse requests whose prompt is longer than this many characters (0 = off).
    #[serde(alias = "POLICY_MAX_PROMPT_CHARS")]
    pub policy_max_prompt_chars: u64,
    /// Send the user content to the moderation endpoint first; refuse when flagged.
    #[serde(alias = "POLICY_AUTO_MODERATE")]
    pub policy_auto_moderate: bool,
    /// When the moderation call fails: allow (true) or refuse (false, the default).
    #[serde(alias = "MODERATION_FAIL_OPEN")]
    pub moderation_fail_open: bool,
    /// Refuse requests without a `user` field.
    #[serde(alias = "POLICY_ENFORCE_USER_IDS")]
    pub policy_enforce_user_ids: bool,
    /// Keep the whole request in the stats record.
    #[serde(alias = "POLICY_LOG_REQUEST")]
    pub policy_log_request: bool,
    /// Keep the whole response in the stats record.
    #[serde(alias = "POLICY_LOG_RESPONSE")]
    pub policy_log_response: bool,
    /// `none`, `audit`, `redact` or `block`.
    #[serde(alias = "POLICY_PROMPT_REFLECTION")]
    pub policy_prompt_reflection: ReflectionAction,
    /// Retries of a failed upstream call (at most 5).
    #[serde(alias = "POLICY_RETRY_COUNT")]
    pub policy_retry_count: u32,

    // --- server (read by the adapters) ---
    /// Largest accepted request body in bytes.
    #[serde(alias = "MAX_BODY_BYTES")]
    pub max_body_bytes: u64,
    /// Seconds allowed to open an upstream connection.
    #[serde(alias = "UPSTREAM_CONNECT_TIMEOUT_SECS")]
    pub upstream_connect_timeout_secs: u64,
    /// Seconds allowed for a whole upstream call (for a stream: until the response head).
    #[serde(alias = "UPSTREAM_TIMEOUT_SECS")]
    pub upstream_timeout_secs: u64,
    /// Where stats records go: `stdout` (default), `file` or `api`.
    #[serde(alias = "STATS_SINK")]
    pub stats_sink: Option<String>,
    /// The JSON-lines file for `stats_sink = "file"`.
    #[serde(alias = "STATS_FILE")]
    pub stats_file: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            local_mode: false,
            usage_panda_api: "https://api.usagepanda.com/v1".to_owned(),
            usage_panda_api_key: None,
            openai_api_key: None,
            llm_api_base_path: "https://api.openai.com/v1".to_owned(),
            config_cache_minutes: 5,
            cors_headers: [
                ("Access-Control-Allow-Headers", "*"),
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Methods", "OPTIONS,POST,GET"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            fail_open_on_config_error: false,
            async_stats_upload: false,
            proxy_id: serde_json::Value::Null,
            azure_resource_name: None,
            azure_deployment_id: None,
            azure_deployment_map: BTreeMap::new(),
            azure_api_version: "2024-10-21".to_owned(),
            azure_endpoint: "https://{resource}.openai.azure.com".to_owned(),
            redaction_string: "****".to_owned(),
            prompt_reflection_delimeter: "||".to_owned(),
            wordlist_match: WordlistMatch::Word,
            header_overrides: HeaderOverrides::Tighten,
            policy_disabled_models: Vec::new(),
            policy_autoreply: Vec::new(),
            policy_request_wordlist: WordlistSpec::default(),
            policy_response_wordlist: WordlistSpec::default(),
            policy_custom_wordlist: Vec::new(),
            policy_max_tokens: 0,
            policy_max_prompt_chars: 0,
            policy_auto_moderate: false,
            moderation_fail_open: false,
            policy_enforce_user_ids: false,
            policy_log_request: false,
            policy_log_response: false,
            policy_prompt_reflection: ReflectionAction::None,
            policy_retry_count: 0,
            max_body_bytes: 16 * 1024 * 1024,
            upstream_connect_timeout_secs: 10,
            upstream_timeout_secs: 600,
            stats_sink: None,
            stats_file: None,
        }
    }
}

/// Prints every setting but the keys (which serialisation skips), so a config can be logged.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = serde_json::to_string(self).unwrap_or_default();
        let secret = |set: bool| if set { "[redacted]" } else { "none" };
        write!(
            f,
            "Config {{ openai_api_key: {}, usage_panda_api_key: {}, settings: {shown} }}",
            secret(self.openai_api_key.is_some()),
            secret(self.usage_panda_api_key.is_some())
        )
    }
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
            format: "TOML",
            message: e.message().to_owned(),
        })?;
        serde_path_to_error::deserialize(de)
            .map_err(|e| ConfigError::from_path_error(e.path().to_string(), e.inner().message()))
            .and_then(Config::validated)
    }

    /// Parses a JSON document (for example the original's `config.js` object as JSON). A
    /// top-level `null` means "the default", as `AZURE_RESOURCE_NAME: null` does in the
    /// original's `config.js`.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let keys: Vec<String> = serde_json::from_str::<KeyList>(text)
            .map_err(|e| ConfigError::Syntax {
                format: "JSON",
                message: e.to_string(),
            })?
            .0;
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = keys.iter().find(|k| !seen.insert(k.as_str())) {
            return Err(ConfigError::Invalid {
                key: dup.clone(),
                message: "is given twice".to_owned(),
            });
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
                format: "JSON",
                message: e.to_string(),
            })?;
        Config::from_json_value(value)
    }

    fn from_json_value(mut value: serde_json::Value) -> Result<Config, ConfigError> {
        let serde_json::Value::Object(map) = &mut value else {
            return Err(ConfigError::Invalid {
                key: "(root)".to_owned(),
                message: "a config must be a JSON object".to_owned(),
            });
        };
        map.retain(|_, v| !v.is_null());
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            ConfigError::from_path_error(e.path().to_string(), &e.inner().to_string())
        })?;
        config.validated()
    }

    /// Merges a config object (the Usage Panda API's answer) over this one: keys present in
    /// `overlay` win, the rest is kept.
    pub fn merged_with_json(&self, overlay: &serde_json::Value) -> Result<Config, ConfigError> {
        let serde_json::Value::Object(overlay) = overlay else {
            return Err(ConfigError::Invalid {
                key: "(root)".to_owned(),
                message: "expected a JSON object".to_owned(),
            });
        };
        // Start from this config's keys (SCREAMING_CASE and snake_case name the same field, so
        // an overlay key replaces the base key whichever spelling either uses).
        let mut base = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        for (key, value) in overlay {
            let key = match key.to_ascii_lowercase() {
                k if k == "prompt_reflection_delimiter" => "prompt_reflection_delimeter".to_owned(),
                k => k,
            };
            base.insert(key, value.clone());
        }
        let mut merged = Config::from_json_value(serde_json::Value::Object(base))?;
        // Secrets are not serialised; keep ours unless the overlay brings its own.
        if merged.openai_api_key.is_none() {
            merged.openai_api_key.clone_from(&self.openai_api_key);
        }
        if merged.usage_panda_api_key.is_none() {
            merged
                .usage_panda_api_key
                .clone_from(&self.usage_panda_api_key);
        }
        Ok(merged)
    }

    fn validated(self) -> Result<Config, ConfigError> {
        if self.policy_retry_count > MAX_RETRY_COUNT {
            return Err(ConfigError::Invalid {
                key: "POLICY_RETRY_COUNT".to_owned(),
                message: format!(
                    "`{}` is more than the maximum of {MAX_RETRY_COUNT}",
                    self.policy_retry_count
                ),
            });
        }
        if self.prompt_reflection_delimeter.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "PROMPT_REFLECTION_DELIMETER".to_owned(),
                message: "must not be empty or only white space".to_owned(),
            });
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: "MAX_BODY_BYTES".to_owned(),
                message: "must be more than 0".to_owned(),
            });
        }
        if let Some(sink) = &self.stats_sink {
            if !["stdout", "file", "api", "none"].contains(&sink.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "STATS_SINK".to_owned(),
                    message: format!("unknown sink `{sink}` (expected stdout, file, api or none)"),
                });
            }
            if sink == "file" && self.stats_file.is_none() {
                return Err(ConfigError::Invalid {
                    key: "STATS_FILE".to_owned(),
                    message: "is required when STATS_SINK is `file`".to_owned(),
                });
            }
        }
        if !self.azure_endpoint.contains("://") {
            return Err(ConfigError::Invalid {
                key: "AZURE_ENDPOINT".to_owned(),
                message: format!("`{}` is not a URL", self.azure_endpoint),
            });
        }
        for (key, value) in [
            ("LLM_API_BASE_PATH", &self.llm_api_base_path),
            ("USAGE_PANDA_API", &self.usage_panda_api),
        ] {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key: key.to_owned(),
                    message: format!("`{value}` is not an http(s) URL"),
                });
            }
        }
        for (i, rule) in self.policy_autoreply.iter().enumerate() {
            if rule.request.is_empty() {
                return Err(ConfigError::Invalid {
                    key: format!("POLICY_AUTOREPLY[{i}].request"),
                    message: "must not be empty".to_owned(),
                });
            }
        }
        Ok(self)
    }
}

/// The top-level keys of a JSON object, in order, duplicates kept.
struct KeyList(Vec<String>);

impl<'de> Deserialize<'de> for KeyList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = KeyList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyList, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(KeyList(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

#[cfg(test)]
mod tests;
