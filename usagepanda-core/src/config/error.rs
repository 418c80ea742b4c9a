//! Configuration errors.

/// A configuration that cannot be used. The message always names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The document is not valid TOML or JSON.
    #[error("config is not valid {format}: {message}")]
    Syntax {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown or its value is not acceptable.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The key, as written in the document (a path for nested values).
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn from_path_error(path: String, message: &str) -> ConfigError {
        // Unknown keys are reported by serde at the parent path; name the key itself.
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let key = rest.split('`').next().unwrap_or(rest);
            let key = if path == "."
                || path.is_empty()
                || path == key
                || path.ends_with(&format!(".{key}"))
            {
                path_or(key, &path)
            } else {
                format!("{path}.{key}")
            };
            return ConfigError::Invalid {
                key,
                message: "unknown key".to_owned(),
            };
        }
        ConfigError::Invalid {
            key: if path.is_empty() {
                ".".to_owned()
            } else {
                path
            },
            message: message.to_owned(),
        }
    }

    /// The key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Syntax { .. } => None,
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

fn path_or(key: &str, path: &str) -> String {
    if path == "." || path.is_empty() {
        key.to_owned()
    } else {
        path.to_owned()
    }
}
