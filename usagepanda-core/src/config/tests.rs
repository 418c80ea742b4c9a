//! Config parsing: both formats, both key spellings, nulls, and errors that name their key.

use super::*;
use crate::overrides::Settings;
use crate::wordlist::ListName;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The key an error names, or a description of why there is none.
fn key_of<T: std::fmt::Debug>(result: Result<T, ConfigError>) -> String {
    match result {
        Ok(value) => format!("(no error: {value:?})"),
        Err(e) => e
            .key()
            .map_or_else(|| format!("(no key: {e})"), str::to_owned),
    }
}

/// The message of an error, or a description of the value when there is none.
fn message_of<T: std::fmt::Debug>(result: Result<T, ConfigError>) -> String {
    match result {
        Ok(value) => format!("(no error: {value:?})"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_documents_are_the_default_pass_through() -> TestResult {
    assert_eq!(Config::from_toml("")?, Config::default());
    assert_eq!(Config::from_json("{}")?, Config::default());
    let config = Config::default();
    assert_eq!(config.policy_max_tokens, 0);
    assert!(config.policy_request_wordlist.is_empty());
    assert_eq!(config.policy_prompt_reflection, ReflectionAction::None);
    assert_eq!(config.redaction_string, "****");
    assert_eq!(config.prompt_reflection_delimeter, "||");
    assert_eq!(config.header_overrides, HeaderOverrides::Tighten);
    assert_eq!(config.wordlist_match, WordlistMatch::Word);
    Ok(())
}

#[test]
fn toml_with_snake_case_keys() -> TestResult {
    let config = Config::from_toml(
        r#"
        local_mode = true
        proxy_id = "edge-1"
        policy_max_tokens = 256
        policy_max_prompt_chars = 4000
        policy_enforce_user_ids = true
        policy_auto_moderate = true
        policy_disabled_models = ["gpt-4", "1024x1024"]
        policy_request_wordlist = "profanity:block,dan:redact"
        policy_response_wordlist = "adult:audit"
        policy_custom_wordlist = ["project falcon"]
        policy_prompt_reflection = "redact"
        policy_retry_count = 2
        redaction_string = "[redacted]"
        wordlist_match = "substring"
        header_overrides = "any"

        [[policy_autoreply]]
        type = "chat"
        request = "ping"
        response = "pong"
        "#,
    )?;
    assert!(config.local_mode);
    assert_eq!(config.proxy_id, serde_json::json!("edge-1"));
    assert_eq!(config.policy_max_tokens, 256);
    assert_eq!(config.policy_max_prompt_chars, 4000);
    assert!(config.policy_enforce_user_ids);
    assert!(config.policy_auto_moderate);
    assert_eq!(config.policy_disabled_models, ["gpt-4", "1024x1024"]);
    let request = &config.policy_request_wordlist;
    assert_eq!(request.action(ListName::Profanity), Some(RuleAction::Block));
    assert_eq!(request.action(ListName::Dan), Some(RuleAction::Redact));
    assert_eq!(request.action(ListName::Adult), None);
    assert_eq!(
        config.policy_response_wordlist.action(ListName::Adult),
        Some(RuleAction::Audit)
    );
    assert_eq!(config.policy_custom_wordlist, ["project falcon"]);
    assert_eq!(
        config.policy_prompt_reflection,
        ReflectionAction::On(RuleAction::Redact)
    );
    assert_eq!(config.policy_retry_count, 2);
    assert_eq!(config.redaction_string, "[redacted]");
    assert_eq!(config.wordlist_match, WordlistMatch::Substring);
    assert_eq!(config.header_overrides, HeaderOverrides::Any);
    assert_eq!(
        config.policy_autoreply,
        [AutoReplyRule {
            kind: AutoReplyKind::Chat,
            request: "ping".to_owned(),
            response: "pong".to_owned(),
        }]
    );
    Ok(())
}

#[test]
fn screaming_and_snake_case_keys_are_the_same_field() -> TestResult {
    let screaming = Config::from_json(
        r#"{"POLICY_MAX_TOKENS": 100, "POLICY_REQUEST_WORDLIST": "custom:audit",
            "POLICY_CUSTOM_WORDLIST": ["acme"], "REDACTION_STRING": "~",
            "PROMPT_REFLECTION_DELIMETER": "@@", "POLICY_PROMPT_REFLECTION": "BLOCK"}"#,
    )?;
    let snake = Config::from_json(
        r#"{"policy_max_tokens": 100, "policy_request_wordlist": "custom:audit",
            "policy_custom_wordlist": ["acme"], "redaction_string": "~",
            "prompt_reflection_delimeter": "@@", "policy_prompt_reflection": "block"}"#,
    )?;
    assert_eq!(screaming, snake);
    let toml = Config::from_toml(
        r#"
        POLICY_MAX_TOKENS = 100
        POLICY_REQUEST_WORDLIST = "custom:audit"
        POLICY_CUSTOM_WORDLIST = ["acme"]
        REDACTION_STRING = "~"
        PROMPT_REFLECTION_DELIMETER = "@@"
        POLICY_PROMPT_REFLECTION = "Block"
        "#,
    )?;
    assert_eq!(toml, snake);
    Ok(())
}

#[test]
fn both_spellings_of_one_key_in_one_document_are_an_error() {
    let result = Config::from_json(r#"{"POLICY_MAX_TOKENS": 1, "policy_max_tokens": 2}"#);
    assert!(result.is_err(), "{result:?}");
    assert!(message_of(result).contains("policy_max_tokens"));
}

#[test]
fn delimiter_accepts_both_spellings() -> TestResult {
    for key in [
        "PROMPT_REFLECTION_DELIMETER",
        "PROMPT_REFLECTION_DELIMITER",
        "prompt_reflection_delimeter",
        "prompt_reflection_delimiter",
    ] {
        let config = Config::from_json(&format!(r#"{{"{key}": "@@"}}"#))?;
        assert_eq!(config.prompt_reflection_delimeter, "@@", "{key}");
        let config = Config::from_toml(&format!(r#"{key} = "@@""#))?;
        assert_eq!(config.prompt_reflection_delimeter, "@@", "{key}");
    }
    Ok(())
}

/// Every key, set to `null`.
const ALL_KEYS_NULL: &str = r#"{"LOCAL_MODE": null, "USAGE_PANDA_API": null,
    "USAGE_PANDA_API_KEY": null, "OPENAI_API_KEY": null, "LLM_API_BASE_PATH": null,
    "CONFIG_CACHE_MINUTES": null, "CORS_HEADERS": null, "FAIL_OPEN_ON_CONFIG_ERROR": null,
    "ASYNC_STATS_UPLOAD": null, "PROXY_ID": null, "AZURE_RESOURCE_NAME": null,
    "AZURE_DEPLOYMENT_ID": null, "AZURE_DEPLOYMENT_MAP": null, "AZURE_API_VERSION": null,
    "AZURE_ENDPOINT": null, "REDACTION_STRING": null, "PROMPT_REFLECTION_DELIMETER": null,
    "WORDLIST_MATCH": null, "HEADER_OVERRIDES": null, "POLICY_DISABLED_MODELS": null,
    "POLICY_AUTOREPLY": null, "POLICY_REQUEST_WORDLIST": null,
    "POLICY_RESPONSE_WORDLIST": null, "POLICY_CUSTOM_WORDLIST": null,
    "POLICY_MAX_TOKENS": null, "POLICY_MAX_PROMPT_CHARS": null,
    "POLICY_AUTO_MODERATE": null, "MODERATION_FAIL_OPEN": null,
    "POLICY_ENFORCE_USER_IDS": null, "POLICY_LOG_REQUEST": null,
    "POLICY_LOG_RESPONSE": null, "POLICY_PROMPT_REFLECTION": null,
    "POLICY_RETRY_COUNT": null, "MAX_BODY_BYTES": null,
    "UPSTREAM_CONNECT_TIMEOUT_SECS": null, "UPSTREAM_TIMEOUT_SECS": null,
    "STATS_SINK": null, "STATS_FILE": null}"#;

#[test]
fn nulls_mean_the_default_for_every_key() -> TestResult {
    assert_eq!(Config::from_json(ALL_KEYS_NULL)?, Config::default());
    // Not the type's empty value: a null redaction string still stars matches out.
    let config = Config::from_json(r#"{"REDACTION_STRING": null, "POLICY_MAX_TOKENS": 7}"#)?;
    assert_eq!(config.redaction_string, "****");
    assert_eq!(config.prompt_reflection_delimeter, "||");
    assert_eq!(config.policy_max_tokens, 7);
    Ok(())
}

#[test]
fn empty_wordlist_string_means_no_list() -> TestResult {
    let config =
        Config::from_json(r#"{"POLICY_REQUEST_WORDLIST": "", "POLICY_RESPONSE_WORDLIST": " "}"#)?;
    assert!(config.policy_request_wordlist.is_empty());
    assert!(config.policy_response_wordlist.is_empty());
    Ok(())
}

#[test]
fn wordlist_spec_as_a_toml_table() -> TestResult {
    let config = Config::from_toml(
        r#"
        policy_request_wordlist = { profanity = "block", dan = "Redact" }
        [policy_response_wordlist]
        adult = "audit"
        custom = "block"
        "#,
    )?;
    let request = &config.policy_request_wordlist;
    assert_eq!(request.action(ListName::Profanity), Some(RuleAction::Block));
    assert_eq!(request.action(ListName::Dan), Some(RuleAction::Redact));
    assert_eq!(request.to_string(), "profanity:block,dan:redact");
    let response = &config.policy_response_wordlist;
    assert_eq!(response.to_string(), "adult:audit,custom:block");
    // The same spec as a string parses to the same value.
    let as_string =
        Config::from_toml(r#"policy_request_wordlist = "dan:redact, PROFANITY:BLOCK""#)?;
    assert_eq!(&as_string.policy_request_wordlist, request);
    // And so does a JSON object.
    let as_json = Config::from_json(
        r#"{"POLICY_REQUEST_WORDLIST": {"profanity": "block", "dan": "redact"}}"#,
    )?;
    assert_eq!(&as_json.policy_request_wordlist, request);
    Ok(())
}

#[test]
fn a_list_named_twice_keeps_the_stricter_action() -> TestResult {
    let config =
        Config::from_json(r#"{"POLICY_REQUEST_WORDLIST": "profanity:block,profanity:audit"}"#)?;
    assert_eq!(
        config.policy_request_wordlist.action(ListName::Profanity),
        Some(RuleAction::Block)
    );
    Ok(())
}

#[test]
fn proxy_id_as_string_or_object() -> TestResult {
    let object = serde_json::json!({
        "organization": "acme", "business_unit": "finance", "cost_center": 12345
    });
    let config = Config::from_json(r#"{"PROXY_ID": "usage_panda_cloud"}"#)?;
    assert_eq!(config.proxy_id, serde_json::json!("usage_panda_cloud"));
    let config = Config::from_json(
        r#"{"PROXY_ID": {"organization": "acme", "business_unit": "finance", "cost_center": 12345}}"#,
    )?;
    assert_eq!(config.proxy_id, object);
    let config = Config::from_toml(
        r#"PROXY_ID = { organization = "acme", business_unit = "finance", cost_center = 12345 }"#,
    )?;
    assert_eq!(config.proxy_id, object);
    let config = Config::from_toml(r#"proxy_id = "edge-eu-1""#)?;
    assert_eq!(config.proxy_id, serde_json::json!("edge-eu-1"));
    Ok(())
}

#[test]
fn original_config_js_values_port_verbatim() -> TestResult {
    // The original `config.js` with its `process.env` lookups unset (JSON `null`).
    let config = Config::from_json(
        r#"{
        "LOCAL_MODE": false,
        "PROXY_ID": "usage_panda_cloud",
        "USAGE_PANDA_API": "https://api.usagepanda.com/v1",
        "USAGE_PANDA_API_KEY": null,
        "OPENAI_API_KEY": null,
        "LLM_API_BASE_PATH": "https://api.openai.com",
        "CONFIG_CACHE_MINUTES": 5,
        "CORS_HEADERS": {
            "Access-Control-Allow-Headers": "*",
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "OPTIONS,POST,GET",
            "Content-Type": "application/json"
        },
        "REDACTION_STRING": "****",
        "POLICY_RETRY_COUNT": 0,
        "PROMPT_REFLECTION_DELIMETER": "||",
        "POLICY_DISABLED_MODELS": [],
        "POLICY_AUTOREPLY": [],
        "POLICY_REQUEST_WORDLIST": "",
        "POLICY_RESPONSE_WORDLIST": "",
        "POLICY_CUSTOM_WORDLIST": [],
        "POLICY_MAX_TOKENS": 0,
        "POLICY_MAX_PROMPT_CHARS": 0,
        "POLICY_AUTO_MODERATE": false,
        "POLICY_ENFORCE_USER_IDS": false,
        "POLICY_LOG_REQUEST": false,
        "POLICY_LOG_RESPONSE": false,
        "POLICY_PROMPT_REFLECTION": "none",
        "AZURE_RESOURCE_NAME": null,
        "AZURE_DEPLOYMENT_MAP": {},
        "ASYNC_STATS_UPLOAD": false,
        "FAIL_OPEN_ON_CONFIG_ERROR": false
        }"#,
    )?;
    assert_eq!(config.llm_api_base_path, "https://api.openai.com");
    assert_eq!(config.cors_headers.len(), 4);
    assert_eq!(
        config.cors_headers.get("Content-Type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(config.proxy_id, serde_json::json!("usage_panda_cloud"));
    // Every policy is off, as in the default.
    assert_eq!(
        Settings::from_config(&config),
        Settings::from_config(&Config::default())
    );
    Ok(())
}

#[test]
fn unknown_key_is_an_invalid_error_naming_it() {
    for result in [
        Config::from_toml("POLICY_MAX_TOKEN = 4"),
        Config::from_json(r#"{"POLICY_MAX_TOKEN": 4}"#),
    ] {
        let message = message_of(result.clone());
        assert!(
            matches!(&result, Err(ConfigError::Invalid { key, message })
                if key == "POLICY_MAX_TOKEN" && message == "unknown key"),
            "{result:?}"
        );
        assert_eq!(message, "config key `POLICY_MAX_TOKEN`: unknown key");
    }
    assert_eq!(
        key_of(Config::from_toml("polic_max_tokens = 5")),
        "polic_max_tokens"
    );
}

#[test]
fn unknown_nested_key_is_named_by_its_path() {
    assert_eq!(
        key_of(Config::from_json(
            r#"{"POLICY_AUTOREPLY": [{"type": "chat", "request": "a", "response": "b", "extra": 1}]}"#
        )),
        "POLICY_AUTOREPLY[0].extra"
    );
    assert_eq!(
        key_of(Config::from_toml(
            "[[policy_autoreply]]\ntype = \"chat\"\nrequest = \"a\"\nresponse = \"b\"\nextra = 1\n"
        )),
        "policy_autoreply[0].extra"
    );
}

#[test]
fn negative_max_tokens_names_the_key() {
    assert_eq!(
        key_of(Config::from_json(r#"{"POLICY_MAX_TOKENS": -1}"#)),
        "POLICY_MAX_TOKENS"
    );
    assert_eq!(
        key_of(Config::from_toml("policy_max_tokens = -1")),
        "policy_max_tokens"
    );
    assert_eq!(
        key_of(Config::from_json(r#"{"POLICY_MAX_TOKENS": "100"}"#)),
        "POLICY_MAX_TOKENS",
        "a number in a string is not a number"
    );
}

#[test]
fn unknown_wordlist_name_or_action_names_the_key() {
    let cases = [
        Config::from_json(r#"{"POLICY_REQUEST_WORDLIST": "porn:block"}"#),
        Config::from_json(r#"{"POLICY_REQUEST_WORDLIST": "profanity:nuke"}"#),
        Config::from_json(r#"{"POLICY_REQUEST_WORDLIST": "profanity"}"#),
        Config::from_json(r#"{"POLICY_REQUEST_WORDLIST": {"profanity": "nuke"}}"#),
    ];
    for result in cases {
        assert_eq!(key_of(result), "POLICY_REQUEST_WORDLIST");
    }
    assert_eq!(
        key_of(Config::from_toml(
            r#"policy_response_wordlist = { porn = "block" }"#
        )),
        "policy_response_wordlist"
    );
    let message = message_of(Config::from_json(
        r#"{"POLICY_REQUEST_WORDLIST": "porn:block"}"#,
    ));
    assert!(message.contains("unknown wordlist `porn`"), "{message}");
    let message = message_of(Config::from_json(
        r#"{"POLICY_RESPONSE_WORDLIST": "dan:nuke"}"#,
    ));
    assert!(message.contains("POLICY_RESPONSE_WORDLIST"), "{message}");
    assert!(message.contains("unknown action `nuke`"), "{message}");
}

#[test]
fn bad_enum_values_name_the_key() {
    assert_eq!(
        key_of(Config::from_json(
            r#"{"POLICY_PROMPT_REFLECTION": "sometimes"}"#
        )),
        "POLICY_PROMPT_REFLECTION"
    );
    assert_eq!(
        key_of(Config::from_toml(r#"header_overrides = "loose""#)),
        "header_overrides"
    );
    assert_eq!(
        key_of(Config::from_toml(r#"wordlist_match = "regex""#)),
        "wordlist_match"
    );
    assert_eq!(
        key_of(Config::from_json(
            r#"{"POLICY_AUTOREPLY": [{"type": "edit", "request": "a", "response": "b"}]}"#
        )),
        "POLICY_AUTOREPLY[0].type"
    );
    assert_eq!(
        key_of(Config::from_json(
            r#"{"POLICY_AUTOREPLY": [{"type": "chat", "request": "", "response": "b"}]}"#
        )),
        "POLICY_AUTOREPLY[0].request"
    );
}

#[test]
fn empty_delimiter_is_an_error() {
    assert_eq!(
        key_of(Config::from_json(r#"{"PROMPT_REFLECTION_DELIMETER": ""}"#)),
        "PROMPT_REFLECTION_DELIMETER"
    );
    assert_eq!(
        key_of(Config::from_toml(r#"prompt_reflection_delimiter = "   ""#)),
        "PROMPT_REFLECTION_DELIMETER"
    );
}

#[test]
fn retry_count_is_capped_at_five() -> TestResult {
    assert_eq!(
        Config::from_json(r#"{"POLICY_RETRY_COUNT": 5}"#)?.policy_retry_count,
        5
    );
    let error = Config::from_json(r#"{"POLICY_RETRY_COUNT": 6}"#);
    assert!(
        matches!(&error, Err(ConfigError::Invalid { key, .. }) if key == "POLICY_RETRY_COUNT"),
        "{error:?}"
    );
    assert_eq!(
        key_of(Config::from_toml("policy_retry_count = 6")),
        "POLICY_RETRY_COUNT"
    );
    Ok(())
}

#[test]
fn other_validated_values_name_their_key() {
    assert_eq!(
        key_of(Config::from_toml("max_body_bytes = 0")),
        "MAX_BODY_BYTES"
    );
    assert_eq!(
        key_of(Config::from_toml(r#"stats_sink = "kafka""#)),
        "STATS_SINK"
    );
    assert_eq!(
        key_of(Config::from_toml(r#"stats_sink = "file""#)),
        "STATS_FILE"
    );
    assert_eq!(
        key_of(Config::from_toml(r#"llm_api_base_path = "api.openai.com""#)),
        "LLM_API_BASE_PATH"
    );
    assert_eq!(
        key_of(Config::from_toml(r#"azure_endpoint = "example.com""#)),
        "AZURE_ENDPOINT"
    );
}

#[test]
fn syntax_errors_name_the_format() {
    let toml = Config::from_toml("policy_max_tokens = ");
    assert!(
        matches!(toml, Err(ConfigError::Syntax { format: "TOML", .. })),
        "{toml:?}"
    );
    let json = Config::from_json(r#"{"POLICY_MAX_TOKENS": 1"#);
    assert!(
        matches!(json, Err(ConfigError::Syntax { format: "JSON", .. })),
        "{json:?}"
    );
    let trailing = Config::from_json(r#"{} {}"#);
    assert!(
        matches!(trailing, Err(ConfigError::Syntax { format: "JSON", .. })),
        "{trailing:?}"
    );
    assert_eq!(toml.err().and_then(|e| e.key().map(str::to_owned)), None);
}

#[test]
fn a_document_that_is_not_an_object_is_an_error() {
    assert!(Config::from_json("null").is_err());
    assert!(Config::from_json("42").is_err());
    assert!(Config::from_json(r#""POLICY_MAX_TOKENS""#).is_err());
}

#[test]
fn secrets_are_read_but_never_serialised() -> TestResult {
    let config = Config::from_json(
        r#"{"OPENAI_API_KEY": "sk-test-secret", "USAGE_PANDA_API_KEY": "up-test-secret"}"#,
    )?;
    assert_eq!(config.openai_api_key.as_deref(), Some("sk-test-secret"));
    assert_eq!(
        config.usage_panda_api_key.as_deref(),
        Some("up-test-secret")
    );
    let json = serde_json::to_string(&config)?;
    assert!(!json.contains("sk-test-secret"), "{json}");
    assert!(!json.contains("up-test-secret"), "{json}");
    Ok(())
}

#[test]
fn serialised_config_parses_back_to_itself() -> TestResult {
    let config = Config::from_toml(
        r#"
        proxy_id = { team = "search" }
        policy_max_tokens = 100
        policy_request_wordlist = "profanity:block,custom:redact"
        policy_custom_wordlist = ["acme"]
        policy_prompt_reflection = "audit"
        header_overrides = "off"
        [[policy_autoreply]]
        type = "completion"
        request = "ping"
        response = "pong"
        "#,
    )?;
    let json = serde_json::to_string(&config)?;
    assert_eq!(Config::from_json(&json)?, config);
    Ok(())
}

#[test]
fn merged_overlay_wins_and_the_rest_is_kept() -> TestResult {
    let base = Config::from_toml(
        r#"
        openai_api_key = "sk-local"
        policy_max_tokens = 100
        policy_enforce_user_ids = true
        policy_request_wordlist = "profanity:block"
        redaction_string = "[x]"
        "#,
    )?;
    let overlay = serde_json::json!({
        "POLICY_MAX_TOKENS": 500,
        "policy_request_wordlist": "dan:redact",
        "PROXY_ID": {"team": "search"},
    });
    let merged = base.merged_with_json(&overlay)?;
    assert_eq!(
        merged.policy_max_tokens, 500,
        "the overlay wins (SCREAMING_CASE key over a snake_case one)"
    );
    assert_eq!(merged.policy_request_wordlist.to_string(), "dan:redact");
    assert_eq!(merged.proxy_id, serde_json::json!({"team": "search"}));
    assert!(
        merged.policy_enforce_user_ids,
        "keys absent from the overlay are kept"
    );
    assert_eq!(merged.redaction_string, "[x]");
    assert_eq!(
        merged.openai_api_key.as_deref(),
        Some("sk-local"),
        "secrets are kept"
    );
    let merged = base.merged_with_json(&serde_json::json!({"OPENAI_API_KEY": "sk-remote"}))?;
    assert_eq!(merged.openai_api_key.as_deref(), Some("sk-remote"));
    assert_eq!(base.merged_with_json(&serde_json::json!({}))?, base);
    Ok(())
}

#[test]
fn merged_overlay_accepts_either_delimiter_spelling() -> TestResult {
    for key in ["PROMPT_REFLECTION_DELIMITER", "PROMPT_REFLECTION_DELIMETER"] {
        let merged = Config::default().merged_with_json(&serde_json::json!({key: "@@"}))?;
        assert_eq!(merged.prompt_reflection_delimeter, "@@", "{key}");
    }
    Ok(())
}

#[test]
fn merged_overlay_is_validated() {
    let base = Config::default();
    assert_eq!(
        key_of(base.merged_with_json(&serde_json::json!({"POLICY_RETRY_COUNT": 9}))),
        "POLICY_RETRY_COUNT"
    );
    assert_eq!(
        key_of(base.merged_with_json(&serde_json::json!({"POLICY_MAX_TOKENS": -5}))),
        "policy_max_tokens",
        "overlay keys are folded to snake_case before parsing"
    );
    assert_eq!(
        key_of(base.merged_with_json(&serde_json::json!({"NOT_A_KEY": 1}))),
        "not_a_key"
    );
    assert_eq!(
        key_of(base.merged_with_json(&serde_json::json!([1, 2]))),
        "(root)"
    );
}
