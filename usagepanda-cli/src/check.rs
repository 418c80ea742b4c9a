//! `usagepanda check`: one request through a policy, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use usagepanda_core::offline::{OfflineExchange, OfflineRun};
use usagepanda_core::{Decision, ModerationResult, ModerationVerdict, Policy, overrides};

use crate::config_file::read_policy;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy: a TOML or JSON config file.
    #[arg(long)]
    config: PathBuf,
    /// The request body (JSON).
    #[arg(long)]
    request: PathBuf,
    /// The endpoint path.
    #[arg(long, default_value = "/v1/chat/completions")]
    endpoint: String,
    /// The upstream's response body (JSON), to check the response side too.
    #[arg(long)]
    response: Option<PathBuf>,
    /// The upstream's response status.
    #[arg(long, default_value_t = 200)]
    response_status: u16,
    /// The moderation endpoint's answer (JSON), when auto-moderation is on.
    #[arg(long)]
    moderation: Option<PathBuf>,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
}

pub fn run(args: &Args) -> ExitCode {
    match check(args) {
        Ok((run, output)) => {
            println!("{output:#}");
            match run.decision {
                Decision::Allow | Decision::AutoReply => ExitCode::SUCCESS,
                Decision::Block => ExitCode::from(1),
            }
        }
        Err(e) => {
            eprintln!("usagepanda check: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn check(args: &Args) -> Result<(OfflineRun, Value)> {
    let policy = read_policy(&args.config)?;
    let headers = parse_headers(&args.headers)?;
    validate_headers(&policy, &headers)?;
    let body = read_json_file(&args.request, "request")?;
    let upstream = match &args.response {
        Some(path) => Some((args.response_status, read_json_file(path, "response")?)),
        None => None,
    };
    let moderation = match &args.moderation {
        Some(path) => {
            let body = read_json_file(path, "moderation")?;
            let verdict = ModerationVerdict::from_body(&body)
                .with_context(|| format!("`{}` is not a moderation result", path.display()))?;
            Some(ModerationResult::Verdict(verdict))
        }
        None => None,
    };
    let run = policy.run_offline(OfflineExchange {
        path: args.endpoint.clone(),
        headers,
        body,
        moderation,
        upstream,
    });
    if run.reply.as_ref().is_some_and(|(status, _)| *status == 400) {
        let message = run
            .stats
            .as_ref()
            .and_then(|s| s.error_message.clone())
            .unwrap_or_default();
        bail!("`{}`: {message}", args.request.display());
    }
    let output = render(&run);
    Ok((run, output))
}

/// Parses `name: value` header arguments.
pub fn parse_headers(raw: &[String]) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for item in raw {
        let (name, value) = item
            .split_once(':')
            .with_context(|| format!("header `{item}` is not of the form `name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("header name `{}` is not valid", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("header `{name}` has a value that is not valid"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Rejects header values the proxy would answer with 400.
pub fn validate_headers(policy: &Policy, headers: &HeaderMap) -> Result<()> {
    overrides::trace_id(headers)?;
    policy
        .settings()
        .with_headers(headers, policy.config().header_overrides)?;
    Ok(())
}

fn read_json_file(path: &PathBuf, what: &str) -> Result<Bytes> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {what} file `{}`", path.display()))?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
        .with_context(|| format!("{what} file `{}` is not valid JSON", path.display()))?;
    Ok(Bytes::from(bytes))
}

/// A body as JSON when it is JSON, else as a string.
pub fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// The verdict as printed by `check`.
pub fn render(run: &OfflineRun) -> Value {
    json!({
        "decision": run.decision,
        "flags": run.flags,
        "moderated": run.moderated.as_deref().map(body_value),
        "forwarded": run.forwarded.as_deref().map(body_value),
        "reply": run.reply.as_ref().map(|(status, body)| json!({
            "status": status,
            "body": body_value(body),
        })),
    })
}
