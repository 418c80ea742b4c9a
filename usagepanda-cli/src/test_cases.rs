//! `usagepanda test`: policy case files, run offline.
//!
//! One case per `*.case.json` file:
//!
//! ```json
//! {
//!   "description": "profanity is redacted before the request is forwarded",
//!   "config": "policy.toml",
//!   "endpoint": "/v1/chat/completions",
//!   "headers": {"x-usagepanda-max-tokens": "100"},
//!   "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "..."}]},
//!   "moderation": {"flagged": false, "categories": []},
//!   "response": {"status": 200, "body": {"choices": []}},
//!   "expect": {
//!     "decision": "allow",
//!     "flags": [{"type": "policy_wordlists", "description": "..."}],
//!     "forwarded": {"model": "gpt-4o", "messages": []},
//!     "reply": {"status": 200, "body": {}}
//!   }
//! }
//! ```
//!
//! `config` is a path (relative to the case file) or an inline object (default: every policy
//! off). Only `request` and
//! `expect.decision` are required; each other `expect` field is checked when present
//! (`"forwarded": null` means the upstream must not be called).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use usagepanda_core::offline::{OfflineExchange, OfflineRun};
use usagepanda_core::{Config, Decision, ModerationResult, ModerationVerdict, Policy};

use crate::check::{body_value, parse_headers, validate_headers};
use crate::config_file::read_config;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    config: Option<ConfigRef>,
    #[serde(default = "default_endpoint")]
    endpoint: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    request: Value,
    #[serde(default)]
    moderation: Option<CaseModeration>,
    #[serde(default)]
    response: Option<CaseResponse>,
    expect: Expect,
}

fn default_endpoint() -> String {
    "/v1/chat/completions".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ConfigRef {
    Path(PathBuf),
    Inline(Value),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseModeration {
    flagged: bool,
    #[serde(default)]
    categories: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseResponse {
    #[serde(default = "ok")]
    status: u16,
    body: Value,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    decision: Decision,
    #[serde(default)]
    flags: Option<Vec<ExpectFlag>>,
    #[serde(default, deserialize_with = "present")]
    forwarded: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    moderated: Option<Value>,
    #[serde(default)]
    reply: Option<ExpectReply>,
}

/// Distinguishes `"forwarded": null` (must not be forwarded) from an absent key (not checked).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFlag {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectReply {
    status: u16,
    #[serde(default)]
    body: Option<Value>,
}

pub fn run(path: &Path) -> ExitCode {
    let files = match case_files(path) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("usagepanda test: {e:#}");
            return ExitCode::from(2);
        }
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        match run_case(file) {
            Ok(problems) if problems.is_empty() => {
                passed += 1;
                println!("ok      {}", file.display());
            }
            Ok(problems) => {
                failed += 1;
                println!("FAILED  {}", file.display());
                for p in problems {
                    println!("        {p}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("INVALID {}: {e:#}", file.display());
            }
        }
    }
    if files.is_empty() {
        eprintln!(
            "usagepanda test: no *.case.json files under `{}`",
            path.display()
        );
        failed += 1;
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn case_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read `{}`", dir.display()))?;
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".case.json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn run_case(file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file).context("cannot read")?;
    let case: Case = serde_json::from_str(&text).context("not a valid case")?;
    let _ = &case.description;
    let config = match &case.config {
        Some(ConfigRef::Path(p)) => {
            let base = file.parent().unwrap_or(Path::new("."));
            read_config(&base.join(p))?
        }
        Some(ConfigRef::Inline(v)) => Config::from_json(&v.to_string()).context("inline config")?,
        None => Config::default(),
    };
    let policy = Policy::new(config).context("config")?;
    let headers = parse_headers(
        &case
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>(),
    )?;
    if let Err(e) = validate_headers(&policy, &headers)
        && case.expect.reply.as_ref().map(|r| r.status) != Some(400)
    {
        bail!("{e:#}");
    }
    let run = policy.run_offline(OfflineExchange {
        path: case.endpoint.clone(),
        headers,
        body: Bytes::from(case.request.to_string()),
        moderation: case.moderation.as_ref().map(|m| {
            ModerationResult::Verdict(ModerationVerdict {
                flagged: m.flagged,
                categories: m.categories.clone(),
            })
        }),
        upstream: case
            .response
            .as_ref()
            .map(|r| (r.status, Bytes::from(r.body.to_string()))),
    });
    Ok(compare(&case.expect, &run))
}

fn compare(expect: &Expect, run: &OfflineRun) -> Vec<String> {
    let mut problems = Vec::new();
    if expect.decision != run.decision {
        problems.push(format!(
            "decision: expected {}, got {}",
            expect.decision.as_str(),
            run.decision.as_str()
        ));
    }
    if let Some(flags) = &expect.flags {
        let got = serde_json::to_value(&run.flags).unwrap_or_default();
        let got = got.as_array().cloned().unwrap_or_default();
        let same = flags.len() == got.len()
            && flags.iter().zip(&got).all(|(e, g)| {
                g["type"] == e.kind.as_str()
                    && e.description
                        .as_ref()
                        .is_none_or(|d| g["description"] == d.as_str())
                    && e.action.as_ref().is_none_or(|a| g["action"] == a.as_str())
            });
        if !same {
            problems.push(format!(
                "flags: expected {}, got {}",
                describe_flags(flags),
                Value::Array(got)
            ));
        }
    }
    if let Some(expected) = &expect.forwarded {
        let got = run
            .forwarded
            .as_deref()
            .map(body_value)
            .unwrap_or(Value::Null);
        if *expected != got {
            problems.push(format!("forwarded: expected {expected}, got {got}"));
        }
    }
    if let Some(expected) = &expect.moderated {
        let got = run
            .moderated
            .as_deref()
            .map(body_value)
            .unwrap_or(Value::Null);
        if *expected != got {
            problems.push(format!("moderated: expected {expected}, got {got}"));
        }
    }
    if let Some(reply) = &expect.reply {
        match &run.reply {
            None => problems.push(format!(
                "reply: expected status {}, but the run stopped before the upstream (give a `response`)",
                reply.status
            )),
            Some((status, body)) => {
                if *status != reply.status {
                    problems.push(format!("reply status: expected {}, got {status}", reply.status));
                }
                if let Some(expected) = &reply.body {
                    let got = body_value(body);
                    if *expected != got {
                        problems.push(format!("reply body: expected {expected}, got {got}"));
                    }
                }
            }
        }
    }
    problems
}

fn describe_flags(flags: &[ExpectFlag]) -> String {
    let items: Vec<String> = flags
        .iter()
        .map(|f| match &f.description {
            Some(d) => format!("{}: {d}", f.kind),
            None => f.kind.clone(),
        })
        .collect();
    format!("[{}]", items.join(", "))
}
