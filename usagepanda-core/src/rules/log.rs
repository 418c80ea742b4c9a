//! `POLICY_LOG_REQUEST` / `POLICY_LOG_RESPONSE`: what of the bodies the stats record keeps.
//! Without the policy, the prompt fields (`prompt`, `input`, `messages`, `instruction`,
//! `instructions`) and the generated fields (`choices`, `data`, `output`) are dropped;
//! embedding vectors are never kept. Trimming copies the kept fields' raw JSON without
//! building a tree.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::endpoint::Endpoint;

const PROMPT_FIELDS: &[&str] = &["prompt", "input", "messages", "instruction", "instructions"];
const OUTPUT_FIELDS: &[&str] = &["choices", "data", "output"];
const EMBEDDING_FIELDS: &[&str] = &["data"];

/// The request as the stats record keeps it.
pub(crate) fn request_record(body: &[u8], full: bool) -> Option<Box<RawValue>> {
    keep(body, if full { &[] } else { PROMPT_FIELDS })
}

/// The response as the stats record keeps it.
pub(crate) fn response_record(
    endpoint: &Endpoint,
    body: &[u8],
    full: bool,
) -> Option<Box<RawValue>> {
    response_parts(endpoint, body, full).0
}

/// The response as the stats record keeps it, and its `usage` object, in one pass.
pub(crate) fn response_parts(
    endpoint: &Endpoint,
    body: &[u8],
    full: bool,
) -> (Option<Box<RawValue>>, Option<Box<RawValue>>) {
    let drop = match (full, endpoint) {
        (false, _) => OUTPUT_FIELDS,
        (true, Endpoint::Embeddings) => EMBEDDING_FIELDS,
        (true, _) => &[],
    };
    keep_with_usage(body, drop)
}

/// The JSON object in `body` without the `drop` fields; a body that is not a JSON object is
/// kept as a JSON string (lossy UTF-8, at most 4 KiB) so that error pages still show.
fn keep(body: &[u8], drop: &[&str]) -> Option<Box<RawValue>> {
    keep_with_usage(body, drop).0
}

fn keep_with_usage(body: &[u8], drop: &[&str]) -> (Option<Box<RawValue>>, Option<Box<RawValue>>) {
    if body.is_empty() {
        return (None, None);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let kept = (&mut de)
        .deserialize_map(Trim { drop })
        .ok()
        .filter(|_| de.end().is_ok());
    match kept {
        Some((json, usage)) => (RawValue::from_string(single_line(json)).ok(), usage),
        None => (fallback(body), None),
    }
}

/// A raw value on one line, copied once.
fn one_line(value: &RawValue) -> Option<Box<RawValue>> {
    if memchr::memchr2(b'\n', b'\r', value.get().as_bytes()).is_none() {
        return Some(value.to_owned());
    }
    RawValue::from_string(single_line(value.get().to_owned())).ok()
}

/// Raw JSON on one line: a record is one line of a JSON-lines log, but kept fields are copied
/// as the client or upstream wrote them, and pretty-printed JSON has line breaks. A line break
/// can only be white space between tokens (inside strings it is escaped), so white space
/// outside strings is dropped; everything else stays byte for byte (numbers keep their
/// spelling). Text without a line break is returned as it is.
fn single_line(json: String) -> String {
    if memchr::memchr2(b'\n', b'\r', json.as_bytes()).is_none() {
        return json;
    }
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
    out
}

/// A body that is not a JSON object, kept as a JSON string (at most 4 KiB).
fn fallback(body: &[u8]) -> Option<Box<RawValue>> {
    let text = String::from_utf8_lossy(body);
    let cut = text.char_indices().nth(4096).map_or(text.len(), |(i, _)| i);
    serde_json::value::to_raw_value(&text[..cut]).ok()
}

struct Trim<'d> {
    drop: &'d [&'d str],
}

impl<'de> Visitor<'de> for Trim<'_> {
    type Value = (String, Option<Box<RawValue>>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = String::from("{");
        let mut usage = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value: &'de RawValue = map.next_value()?;
            if key == "usage" && value.get() != "null" {
                usage = one_line(value);
            }
            if self.drop.contains(&key.as_ref()) {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            let key = serde_json::to_string(key.as_ref()).map_err(de::Error::custom)?;
            out.push_str(&key);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        Ok((out, usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_prompt_fields() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"secret"}],"user":"u"}"#;
        let kept = request_record(body, false).map(|r| r.get().to_owned());
        assert_eq!(kept.as_deref(), Some(r#"{"model":"m","user":"u"}"#));
        let full = request_record(body, true).map(|r| r.get().to_owned());
        assert_eq!(
            full.as_deref(),
            Some(std::str::from_utf8(body).unwrap_or_default())
        );
    }

    #[test]
    fn pretty_printed_bodies_are_kept_on_one_line() {
        let body = b"{\n  \"id\": \"c1\",\r\n  \"note\": \"a \\\"quoted\\\" line\\nbreak\",\n  \"usage\": {\n    \"prompt_tokens\": 9,\n    \"total\": 1.50e3\n  },\n  \"choices\": []\n}";
        let (kept, usage) = response_parts(&Endpoint::ChatCompletions, body, false);
        let kept = kept.map(|r| r.get().to_owned());
        assert_eq!(
            kept.as_deref(),
            Some(
                r#"{"id":"c1","note":"a \"quoted\" line\nbreak","usage":{"prompt_tokens":9,"total":1.50e3}}"#
            )
        );
        let usage = usage.map(|r| r.get().to_owned());
        assert_eq!(
            usage.as_deref(),
            Some(r#"{"prompt_tokens":9,"total":1.50e3}"#)
        );
        // White space between a kept object's fields goes anyway: the object is rebuilt
        // from its fields.
        let spaced = br#"{"model": "m", "user": "u"}"#;
        let kept = request_record(spaced, true).map(|r| r.get().to_owned());
        assert_eq!(kept.as_deref(), Some(r#"{"model":"m","user":"u"}"#));
    }

    #[test]
    fn embeddings_vectors_never_kept_and_text_bodies_survive() {
        let body = br#"{"object":"list","data":[{"embedding":[0.1]}],"model":"e"}"#;
        let kept = response_record(&Endpoint::Embeddings, body, true).map(|r| r.get().to_owned());
        assert_eq!(kept.as_deref(), Some(r#"{"object":"list","model":"e"}"#));
        let text = response_record(&Endpoint::Completions, b"Bad Gateway", false)
            .map(|r| r.get().to_owned());
        assert_eq!(text.as_deref(), Some(r#""Bad Gateway""#));
    }
}
