//! Where a call goes and with which headers: the upstream key, OpenAI or Azure OpenAI, and the
//! client headers that travel along.

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Uri};
use serde_json::json;
use usagepanda_core::{Config, Endpoint};

/// Header naming the Azure OpenAI resource for this request.
pub const AZURE_RESOURCE: &str = "x-usagepanda-azure-resource";
/// Header naming the Azure deployment for this request.
pub const AZURE_DEPLOYMENT: &str = "x-usagepanda-azure-deployment";
/// Header carrying the Usage Panda API key.
pub const USAGE_PANDA_KEY: &str = "x-usagepanda-api-key";

/// Why a call cannot be routed. Messages never contain keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No usable upstream key (answered 403 `access_denied`, as the original).
    #[error("Invalid OpenAI API key")]
    Key,
    /// Azure routing was asked for but cannot be done (answered 400).
    #[error("azure routing: {0}")]
    Azure(String),
    /// The configured base URL and the path do not make a URL (answered 500).
    #[error("cannot build the upstream URL: {0}")]
    Url(String),
}

impl RouteError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::Key => 403,
            RouteError::Azure(_) => 400,
            RouteError::Url(_) => 500,
        }
    }

    /// The OpenAI error type for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            RouteError::Key => "access_denied",
            RouteError::Azure(_) => "invalid_request_error",
            RouteError::Url(_) => "server_error",
        }
    }
}

/// The upstream key: the client's `Authorization: Bearer ...`, or `OPENAI_API_KEY` when the
/// client sent none. Marked sensitive so it is never printed by `Debug`.
pub fn upstream_key(headers: &HeaderMap, config: &Config) -> Result<HeaderValue, RouteError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().map_err(|_| RouteError::Key)?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(RouteError::Key)?;
        if token.is_empty() {
            return Err(RouteError::Key);
        }
        let mut value = value.clone();
        value.set_sensitive(true);
        return Ok(value);
    }
    let key = config
        .openai_api_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(RouteError::Key)?;
    let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| RouteError::Key)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Headers never forwarded: hop-by-hop headers, ours, and the ones the proxy sets itself.
fn forwardable(name: &HeaderName) -> bool {
    let n = name.as_str();
    !(n.starts_with("x-usagepanda-")
        || matches!(
            n,
            "host"
                | "content-length"
                | "connection"
                | "keep-alive"
                | "proxy-authorization"
                | "proxy-authenticate"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "accept-encoding"
                | "authorization"
                | "api-key"
        ))
}

/// Response headers passed back to the client (hop-by-hop and length headers dropped).
pub fn returnable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

/// A resolved destination.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL.
    pub uri: Uri,
    /// The headers to send.
    pub headers: HeaderMap,
    /// What the stats record says about routing (`{"azure": {...}}`), if anything.
    pub autorouted: Option<(String, serde_json::Value)>,
}

/// The OpenAI-compatible base URL without a trailing `/` or `/v1`.
pub fn base_url(config: &Config) -> &str {
    let base = config.llm_api_base_path.trim_end_matches('/');
    base.strip_suffix("/v1").unwrap_or(base)
}

/// Resolves where a call goes. The client's headers are taken over (not copied): the ones that
/// must not travel are removed in place.
pub fn target(
    config: &Config,
    endpoint: &Endpoint,
    query: Option<&str>,
    client: HeaderMap,
    key: &HeaderValue,
    model: Option<&str>,
) -> Result<Target, RouteError> {
    let resource = header_text(&client, AZURE_RESOURCE).or(config.azure_resource_name.clone());
    let deployment = header_text(&client, AZURE_DEPLOYMENT);
    let mut headers = client;
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| !forwardable(name))
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
    if let Some(resource) = resource.filter(|r| !r.is_empty()) {
        return azure(config, endpoint, deployment, key, model, &resource, headers);
    }
    headers.insert(header::AUTHORIZATION, key.clone());
    let url = match query {
        Some(q) => format!("{}{}?{q}", base_url(config), endpoint.path()),
        None => format!("{}{}", base_url(config), endpoint.path()),
    };
    let uri = url.parse().map_err(|e| RouteError::Url(format!("{e}")))?;
    Ok(Target {
        uri,
        headers,
        autorouted: None,
    })
}

fn azure(
    config: &Config,
    endpoint: &Endpoint,
    deployment_header: Option<String>,
    key: &HeaderValue,
    model: Option<&str>,
    resource: &str,
    mut headers: HeaderMap,
) -> Result<Target, RouteError> {
    let valid = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || extra.contains(&b))
    };
    if !valid(resource, &[]) {
        return Err(RouteError::Azure(
            "the resource name must be 1 to 64 letters, digits and `-`".to_owned(),
        ));
    }
    let suffix = match endpoint {
        Endpoint::ChatCompletions => "chat/completions",
        Endpoint::Completions => "completions",
        Endpoint::Embeddings => "embeddings",
        Endpoint::ImageGenerations => "images/generations",
        other => {
            return Err(RouteError::Azure(format!(
                "`{}` is not routed to Azure (chat/completions, completions, embeddings and images/generations are)",
                other.path()
            )));
        }
    };
    let deployment = deployment_header
        .or_else(|| model.and_then(|m| config.azure_deployment_map.get(m).cloned()))
        .or_else(|| config.azure_deployment_id.clone())
        .ok_or_else(|| {
            RouteError::Azure(format!(
                "no deployment for model `{}` (set AZURE_DEPLOYMENT_MAP, AZURE_DEPLOYMENT_ID or the `{AZURE_DEPLOYMENT}` header)",
                model.unwrap_or("(none)")
            ))
        })?;
    if !valid(&deployment, b"._") {
        return Err(RouteError::Azure(
            "the deployment name must be 1 to 64 letters, digits, `.`, `_` and `-`".to_owned(),
        ));
    }
    let base = config.azure_endpoint.replace("{resource}", resource);
    let url = format!(
        "{}/openai/deployments/{deployment}/{suffix}?api-version={}",
        base.trim_end_matches('/'),
        config.azure_api_version
    );
    let uri = url.parse().map_err(|e| RouteError::Url(format!("{e}")))?;
    // Azure takes the bare key in `api-key`, never `Bearer ...`.
    let bare = key
        .to_str()
        .ok()
        .and_then(|k| {
            k.strip_prefix("Bearer ")
                .or_else(|| k.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(RouteError::Key)?;
    let mut api_key = HeaderValue::from_str(bare).map_err(|_| RouteError::Key)?;
    api_key.set_sensitive(true);
    headers.remove("openai-organization");
    headers.insert("api-key", api_key);
    Ok(Target {
        uri,
        headers,
        autorouted: Some((
            "azure".to_owned(),
            json!({"resource": resource, "deployment": deployment, "api_version": config.azure_api_version}),
        )),
    })
}

/// The moderation call: the OpenAI base URL, the same key. Not available for requests routed
/// to Azure OpenAI (their key is an Azure key, and Azure has no moderation endpoint; it applies
/// its own content filters).
pub fn moderation_target(
    config: &Config,
    client: &HeaderMap,
    key: &HeaderValue,
) -> Result<Target, RouteError> {
    let azure = header_text(client, AZURE_RESOURCE).or(config.azure_resource_name.clone());
    if azure.is_some_and(|r| !r.is_empty()) {
        return Err(RouteError::Azure(
            "auto-moderation is not available for requests routed to Azure OpenAI (Azure applies its own content filters)".to_owned(),
        ));
    }
    let uri = format!("{}/v1/moderations", base_url(config))
        .parse()
        .map_err(|e| RouteError::Url(format!("{e}")))?;
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, key.clone());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Target {
        uri,
        headers,
        autorouted: None,
    })
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            llm_api_base_path: "http://127.0.0.1:1/v1".to_owned(),
            ..Config::default()
        }
    }

    #[test]
    fn key_from_client_or_config() {
        let mut h = HeaderMap::new();
        assert_eq!(upstream_key(&h, &config()), Err(RouteError::Key));
        let c = Config {
            openai_api_key: Some("sk-env".to_owned()),
            ..config()
        };
        assert_eq!(
            upstream_key(&h, &c)
                .ok()
                .as_ref()
                .and_then(|v| v.to_str().ok()),
            Some("Bearer sk-env")
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(upstream_key(&h, &c), Err(RouteError::Key));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-client"),
        );
        assert_eq!(
            upstream_key(&h, &c)
                .ok()
                .as_ref()
                .and_then(|v| v.to_str().ok()),
            Some("Bearer sk-client")
        );
    }

    #[test]
    fn azure_uses_bare_key_and_deployment_map() -> Result<(), RouteError> {
        let mut c = config();
        c.azure_deployment_map
            .insert("gpt-4o".to_owned(), "prod-4o".to_owned());
        c.azure_endpoint = "http://127.0.0.1:9/{resource}".to_owned();
        let mut h = HeaderMap::new();
        h.insert(AZURE_RESOURCE, HeaderValue::from_static("myres"));
        h.insert("openai-organization", HeaderValue::from_static("org-1"));
        let key = HeaderValue::from_static("Bearer azkey");
        let t = target(
            &c,
            &Endpoint::ChatCompletions,
            None,
            h.clone(),
            &key,
            Some("gpt-4o"),
        )?;
        assert_eq!(
            t.uri.to_string(),
            "http://127.0.0.1:9/myres/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            t.headers.get("api-key").and_then(|v| v.to_str().ok()),
            Some("azkey")
        );
        assert!(t.headers.get(header::AUTHORIZATION).is_none());
        assert!(t.headers.get(AZURE_RESOURCE).is_none());
        let bad = target(
            &c,
            &Endpoint::ChatCompletions,
            None,
            h.clone(),
            &key,
            Some("other"),
        );
        assert!(matches!(bad, Err(RouteError::Azure(_))));
        h.insert(AZURE_RESOURCE, HeaderValue::from_static("evil.com/x"));
        let bad = target(
            &c,
            &Endpoint::ChatCompletions,
            None,
            h.clone(),
            &key,
            Some("gpt-4o"),
        );
        assert!(matches!(bad, Err(RouteError::Azure(_))));
        Ok(())
    }
}
