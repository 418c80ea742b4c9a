//! The OpenAI endpoint a request is for, parsed once from its path.

use std::fmt;

/// A known OpenAI endpoint, or another path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/v1/chat/completions`
    ChatCompletions,
    /// `/v1/completions`
    Completions,
    /// `/v1/embeddings`
    Embeddings,
    /// `/v1/edits` (retired by OpenAI, still spoken by some compatible servers)
    Edits,
    /// `/v1/moderations`
    Moderations,
    /// `/v1/images/generations`
    ImageGenerations,
    /// `/v1/images/edits`
    ImageEdits,
    /// `/v1/images/variations`
    ImageVariations,
    /// `/v1/responses`
    Responses,
    /// Any other path (normalised to start with `/v1`).
    Other(String),
}

impl Endpoint {
    /// Parses a request path: the query is dropped, a path without the `/v1` prefix gets it, and
    /// a trailing `/` is ignored. Matching is case-sensitive, as OpenAI's is.
    pub fn from_path(path: &str) -> Endpoint {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = path.trim_end_matches('/');
        let rest = path
            .strip_prefix("/v1")
            .filter(|r| r.is_empty() || r.starts_with('/'));
        let rest = rest.unwrap_or(path);
        match rest {
            "/chat/completions" => Endpoint::ChatCompletions,
            "/completions" => Endpoint::Completions,
            "/embeddings" => Endpoint::Embeddings,
            "/edits" => Endpoint::Edits,
            "/moderations" => Endpoint::Moderations,
            "/images/generations" => Endpoint::ImageGenerations,
            "/images/edits" => Endpoint::ImageEdits,
            "/images/variations" => Endpoint::ImageVariations,
            "/responses" => Endpoint::Responses,
            "" => Endpoint::Other("/v1".to_owned()),
            other if other.starts_with('/') => Endpoint::Other(format!("/v1{other}")),
            other => Endpoint::Other(format!("/v1/{other}")),
        }
    }

    /// The normalised path, e.g. `/v1/chat/completions`.
    pub fn path(&self) -> &str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Edits => "/v1/edits",
            Endpoint::Moderations => "/v1/moderations",
            Endpoint::ImageGenerations => "/v1/images/generations",
            Endpoint::ImageEdits => "/v1/images/edits",
            Endpoint::ImageVariations => "/v1/images/variations",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Other(path) => path,
        }
    }

    /// Whether requests here generate text from a prompt (chat, completions, responses), so
    /// the generation rules (max tokens, auto-reply, response wordlists, reflection) apply.
    pub fn is_generation(&self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Responses
        )
    }

    /// Whether the body of a POST here must be JSON. Image edits and variations are
    /// multipart uploads and other paths are unknown, so they may carry anything.
    pub fn requires_json(&self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions
                | Endpoint::Completions
                | Endpoint::Embeddings
                | Endpoint::Edits
                | Endpoint::Moderations
                | Endpoint::ImageGenerations
                | Endpoint::Responses
        )
    }

    /// Whether `POLICY_ENFORCE_USER_IDS` applies here.
    pub fn takes_user_id(&self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions
                | Endpoint::Completions
                | Endpoint::Embeddings
                | Endpoint::ImageGenerations
                | Endpoint::ImageEdits
                | Endpoint::ImageVariations
                | Endpoint::Responses
        )
    }

    /// Whether the request carries a prompt whose text the content rules scan.
    pub fn has_prompt(&self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions
                | Endpoint::Completions
                | Endpoint::Edits
                | Endpoint::Responses
                | Endpoint::Embeddings
                | Endpoint::Moderations
                | Endpoint::ImageGenerations
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            Endpoint::from_path("/v1/chat/completions"),
            Endpoint::ChatCompletions
        );
        assert_eq!(
            Endpoint::from_path("/chat/completions"),
            Endpoint::ChatCompletions
        );
        assert_eq!(
            Endpoint::from_path("/v1/completions/?x=1"),
            Endpoint::Completions
        );
        assert_eq!(
            Endpoint::from_path("/models"),
            Endpoint::Other("/v1/models".to_owned())
        );
        assert_eq!(Endpoint::from_path("/v1").path(), "/v1");
        assert_eq!(
            Endpoint::from_path("/v1beta/x").path(),
            "/v1/v1beta/x",
            "only a whole /v1 segment counts as the prefix"
        );
    }
}
