#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! Property tests of word-list matching and redaction, against an independent naive
//! reference matcher, and through the whole request policy.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Value, json};
use usagepanda_core::wordlist::{Hit, ListName, ListSet, Scanner, WordlistMatch, builtin_phrases};
use usagepanda_core::{Decision, FlagKind, Policy};

const REPLACEMENT: &str = "****";

// ---------------------------------------------------------------------------------------------
// The reference model: a naive matcher written from the documented semantics, independent of
// the scanner's implementation.
// ---------------------------------------------------------------------------------------------

/// A word character: a letter or digit of any script, or `_`.
fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The phrases as the scanner documents them: trimmed, ASCII lower-cased, empty ones dropped,
/// duplicates merged (their lists united).
#[derive(Debug, Clone)]
struct Reference {
    phrases: Vec<(String, ListSet)>,
    mode: WordlistMatch,
}

impl Reference {
    fn new<'a>(
        phrases: impl IntoIterator<Item = (&'a str, ListName)>,
        mode: WordlistMatch,
    ) -> Self {
        let mut out: Vec<(String, ListSet)> = Vec::new();
        for (phrase, list) in phrases {
            let phrase = phrase.trim().to_ascii_lowercase();
            if phrase.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(p, _)| *p == phrase) {
                Some((_, lists)) => lists.insert(list),
                None => out.push((phrase, [list].into_iter().collect())),
            }
        }
        Reference { phrases: out, mode }
    }

    /// Whether `phrase` stands at byte `at` of `text` as an acceptable match.
    fn stands_at(&self, text: &str, at: usize, phrase: &str) -> bool {
        let (t, p) = (text.as_bytes(), phrase.as_bytes());
        if at + p.len() > t.len() || !t[at..at + p.len()].eq_ignore_ascii_case(p) {
            return false;
        }
        if self.mode == WordlistMatch::Substring {
            return true;
        }
        let end = at + p.len();
        let starts_word = phrase.chars().next().is_some_and(word_char);
        let ends_word = phrase.chars().next_back().is_some_and(word_char);
        let before = text[..at].chars().next_back().is_some_and(word_char);
        let after = text[end..].chars().next().is_some_and(word_char);
        !(starts_word && before || ends_word && after)
    }

    /// The longest acceptable phrase of an enabled list at byte `at`.
    fn longest_at(&self, text: &str, at: usize, enabled: ListSet) -> Option<Hit> {
        self.phrases
            .iter()
            .filter(|(_, lists)| !lists.intersect(enabled).is_empty())
            .filter(|(p, _)| self.stands_at(text, at, p))
            .max_by_key(|(p, _)| p.len())
            .map(|(p, lists)| Hit {
                start: at,
                end: at + p.len(),
                lists: lists.intersect(enabled),
            })
    }

    /// Non-overlapping leftmost-longest matches: at each character position from the left, the
    /// longest acceptable phrase; after a match, go on from its end.
    fn hits(&self, text: &str, enabled: ListSet) -> Vec<Hit> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < text.len() {
            match self.longest_at(text, at, enabled) {
                Some(hit) => {
                    at = hit.end;
                    out.push(hit);
                }
                None => at += text[at..].chars().next().map_or(1, char::len_utf8),
            }
        }
        out
    }

    /// Every acceptable occurrence anywhere (overlapping ones included), as (start, phrase).
    fn occurrences(&self, text: &str, enabled: ListSet) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (at, _) in text.char_indices() {
            for (p, lists) in &self.phrases {
                if !lists.intersect(enabled).is_empty() && self.stands_at(text, at, p) {
                    out.push((at, p.clone()));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------------

/// Pieces of phrases: ASCII, a letter-digit mix, `_`, non-ASCII letters, and a long one (first
/// words longer than the scanner's 8-byte window).
const SYLLABLES: &[&str] = &[
    "ab",
    "ba",
    "b",
    "a",
    "cd",
    "x1",
    "_",
    "é",
    "ß",
    "日本",
    "ipsumdolor",
];
/// What joins syllables inside a phrase.
const JOINERS: &[&str] = &["", "", "", " ", "-", ".", "*", "’", " — "];
/// What may stand before or after a phrase (spaces get trimmed by the scanner).
const EDGES: &[&str] = &["", "", "", "", " ", "-", "'", ".", "*"];
/// Text tokens besides the phrases themselves: fragments, case variants, unicode letters,
/// punctuation, spaces.
const TOKENS: &[&str] = &[
    "’",
    "—",
    "’s",
    "\u{a0}",
    " ",
    " ",
    " ",
    "  ",
    ".",
    ",",
    "-",
    "_",
    "'",
    "\"",
    "\n",
    "\t",
    "*",
    "**",
    "é",
    "É",
    "ß",
    "ẞ",
    "日本",
    "日",
    "1",
    "ab",
    "AB",
    "Ab",
    "ba",
    "b",
    "a",
    "cd",
    "CD",
    "x",
    "x1",
    "X1",
    "class",
    "ipsumdolor",
    "IPSUMdolor",
];

const LISTS: [ListName; 4] = ListName::ALL;

/// Upper-cases the ASCII letters whose position bit is set in `mask`.
fn with_case(s: &str, mask: u32) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if (mask >> (i % 32)) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn case_mask() -> impl Strategy<Value = u32> {
    prop_oneof![2 => Just(0u32), 1 => any::<u32>()]
}

fn phrase() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((0..SYLLABLES.len(), 0..JOINERS.len()), 1..=3),
        0..EDGES.len(),
        0..EDGES.len(),
        case_mask(),
    )
        .prop_map(|(parts, pre, post, mask)| {
            let mut p = EDGES[pre].to_owned();
            for (i, (syllable, joiner)) in parts.iter().enumerate() {
                if i > 0 {
                    p.push_str(JOINERS[*joiner]);
                }
                p.push_str(SYLLABLES[*syllable]);
            }
            p.push_str(EDGES[post]);
            with_case(&p, mask)
        })
}

fn mode() -> impl Strategy<Value = WordlistMatch> {
    prop_oneof![Just(WordlistMatch::Word), Just(WordlistMatch::Substring)]
}

/// A non-empty set of lists.
fn enabled() -> impl Strategy<Value = ListSet> {
    prop_oneof![
        1 => Just(LISTS.into_iter().collect::<ListSet>()),
        2 => (1u8..16).prop_map(|bits| {
            LISTS
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, l)| l)
                .collect()
        }),
    ]
}

/// A text made of tokens and (often, in random case) of the given phrases.
fn text_from(phrases: Vec<String>, max_tokens: usize) -> impl Strategy<Value = String> {
    let n = TOKENS.len() + 2 * phrases.len();
    prop::collection::vec((0..n, case_mask()), 0..max_tokens).prop_map(move |tokens| {
        let mut text = String::new();
        for (i, mask) in tokens {
            let token = match TOKENS.get(i) {
                Some(t) => *t,
                None => phrases[(i - TOKENS.len()) % phrases.len()].as_str(),
            };
            text.push_str(&with_case(token, mask));
        }
        text
    })
}

/// Phrases, each in one list (a phrase may come twice, in different lists), and a text.
fn phrases_and_text() -> impl Strategy<Value = (Vec<(String, ListName)>, String)> {
    prop::collection::vec((phrase(), prop::sample::select(LISTS.to_vec())), 1..6).prop_flat_map(
        |phrases| {
            let plain: Vec<String> = phrases.iter().map(|(p, _)| p.clone()).collect();
            (Just(phrases), text_from(plain, 40))
        },
    )
}

fn scanner_and_reference(
    phrases: &[(String, ListName)],
    mode: WordlistMatch,
) -> (Scanner, Reference) {
    let pairs = phrases.iter().map(|(p, l)| (p.as_str(), *l));
    let scanner = Scanner::new(pairs.clone(), mode).expect("phrases compile");
    (scanner, Reference::new(pairs, mode))
}

fn all_lists() -> ListSet {
    LISTS.into_iter().collect()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Scanner properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// (a) + (b) + (c): after redaction no acceptable match is left (by the scanner and by the
    /// reference), redacting again changes nothing, and a text without a match gives `None`.
    #[test]
    fn redaction_leaves_no_match(
        (phrases, text) in phrases_and_text(),
        mode in mode(),
        enabled in enabled(),
    ) {
        let (scanner, reference) = scanner_and_reference(&phrases, mode);
        // What a policy validates before it uses a replacement.
        prop_assume!(scanner.hits(REPLACEMENT, all_lists()).next().is_none());
        let expected_any = !reference.hits(&text, enabled).is_empty();
        match scanner.redact(&text, enabled, REPLACEMENT) {
            None => {
                prop_assert!(!expected_any, "redact returned None but the reference matches {:?}",
                    reference.hits(&text, enabled));
                prop_assert!(scanner.hits(&text, enabled).next().is_none());
            }
            Some(out) => {
                prop_assert!(expected_any, "redact rewrote a text without a match: {:?}", out);
                let left: Vec<Hit> = scanner.hits(&out, enabled).collect();
                prop_assert!(left.is_empty(), "scanner still matches in {:?}: {:?}", out, left);
                let occurrences = reference.occurrences(&out, enabled);
                prop_assert!(occurrences.is_empty(),
                    "phrases still stand in {:?}: {:?}", out, occurrences);
                prop_assert_eq!(scanner.redact(&out, enabled, REPLACEMENT), None,
                    "redaction is not idempotent on {:?}", out);
            }
        }
    }

    /// (d): the scanner's hits are exactly the reference's non-overlapping leftmost-longest
    /// matches (positions and lists), in both modes.
    #[test]
    fn hits_equal_reference(
        (phrases, text) in phrases_and_text(),
        mode in mode(),
        enabled in enabled(),
    ) {
        let (scanner, reference) = scanner_and_reference(&phrases, mode);
        let got: Vec<Hit> = scanner.hits(&text, enabled).collect();
        let want = reference.hits(&text, enabled);
        prop_assert_eq!(&got, &want, "text {:?}", text);
        let lists = want.iter().fold(ListSet::EMPTY, |acc, h| acc.union(h.lists));
        prop_assert_eq!(scanner.matching_lists(&text, enabled), lists);
    }

    /// (d) again with the text shifted by a lead of filler words, so that phrases start at
    /// every offset of the scanner's 64-byte blocks and cross their edges.
    #[test]
    fn hits_equal_reference_at_any_block_offset(
        (phrases, text) in phrases_and_text(),
        lead in 0usize..140,
        mode in mode(),
    ) {
        let (scanner, reference) = scanner_and_reference(&phrases, mode);
        let filler: String = "ab x1 ".chars().cycle().take(lead).collect();
        let text = format!("{filler}{text}{text}");
        let got: Vec<Hit> = scanner.hits(&text, all_lists()).collect();
        prop_assert_eq!(&got, &reference.hits(&text, all_lists()), "text {:?}", text);
    }

    /// Whole-word mode only: no redacted text holds a listed phrase as a whole word, checked
    /// with the plainest possible matcher (no list sets, no leftmost-longest).
    #[test]
    fn word_mode_redaction_leaves_no_whole_word(
        (phrases, text) in phrases_and_text(),
    ) {
        let (scanner, _) = scanner_and_reference(&phrases, WordlistMatch::Word);
        prop_assume!(scanner.hits(REPLACEMENT, all_lists()).next().is_none());
        let out = scanner
            .redact(&text, all_lists(), REPLACEMENT)
            .unwrap_or_else(|| text.clone());
        for (phrase, _) in &phrases {
            let phrase = phrase.trim().to_ascii_lowercase();
            if phrase.is_empty() {
                continue;
            }
            prop_assert!(!whole_word(&out, &phrase),
                "{:?} stands as a whole word in {:?} (from {:?})", phrase, out, text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..config() })]

    /// (a) on long runs: a phrase made of the replacement's characters can be formed again and
    /// again by adjacent replacements. `*****` is not matched in `****`, so `Scanner::redact`'s
    /// documented precondition holds and its fixpoint must still be reached. (A `Policy` now
    /// also refuses phrases that start or end with a character of the replacement, so this
    /// only reaches `Scanner::redact` called directly.)
    #[test]
    fn redaction_reaches_fixpoint_on_long_runs(
        word in prop::sample::select(vec!["bad", "ab", "x1"]),
        tail in prop::sample::select(vec!["", ".", "-"]),
        stars in 5usize..9,
        n in 1usize..80,
        mode in mode(),
    ) {
        let unit = format!("{word}{tail}");
        let star_phrase = "*".repeat(stars);
        let phrases = vec![(unit.clone(), ListName::Custom), (star_phrase, ListName::Custom)];
        let (scanner, reference) = scanner_and_reference(&phrases, mode);
        prop_assume!(scanner.hits(REPLACEMENT, all_lists()).next().is_none());
        let text = unit.repeat(n);
        if let Some(out) = scanner.redact(&text, all_lists(), REPLACEMENT) {
            let left = reference.occurrences(&out, all_lists());
            prop_assert!(left.is_empty(), "{:?} -> {:?} still holds {:?}", text, out, left);
            prop_assert_eq!(scanner.redact(&out, all_lists(), REPLACEMENT), None);
        }
    }
}

/// Whether `phrase` (lower case) occurs in `text` with no word character glued to a word-char
/// edge of it. Lower-cases the text's ASCII (byte offsets are kept) and uses `str::find`.
fn whole_word(text: &str, phrase: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let starts_word = phrase.chars().next().is_some_and(word_char);
    let ends_word = phrase.chars().next_back().is_some_and(word_char);
    let mut from = 0;
    while let Some(i) = lower[from..].find(phrase) {
        let at = from + i;
        let end = at + phrase.len();
        let before = lower[..at].chars().next_back().is_some_and(word_char);
        let after = lower[end..].chars().next().is_some_and(word_char);
        if !(starts_word && before || ends_word && after) {
            return true;
        }
        from = at + lower[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

// ---------------------------------------------------------------------------------------------
// The built-in lists: real phrases, their fragments and near misses.
// ---------------------------------------------------------------------------------------------

fn builtins() -> Vec<(&'static str, ListName)> {
    [ListName::Profanity, ListName::Adult, ListName::Dan]
        .into_iter()
        .flat_map(|l| builtin_phrases(l).map(move |p| (p, l)))
        .collect()
}

/// The scanner and the reference of the built-in lists, built once per mode.
fn builtin_scanner(mode: WordlistMatch) -> &'static (Scanner, Reference) {
    static WORD: OnceLock<(Scanner, Reference)> = OnceLock::new();
    static SUBSTRING: OnceLock<(Scanner, Reference)> = OnceLock::new();
    let cell = match mode {
        WordlistMatch::Word => &WORD,
        WordlistMatch::Substring => &SUBSTRING,
    };
    cell.get_or_init(|| {
        let phrases = builtins();
        let scanner = Scanner::new(phrases.iter().copied(), mode).expect("builtins compile");
        (scanner, Reference::new(phrases.iter().copied(), mode))
    })
}

fn builtin_text() -> impl Strategy<Value = String> {
    let phrases: Vec<&'static str> = builtins().into_iter().map(|(p, _)| p).collect();
    let token = prop_oneof![
        3 => prop::sample::select(TOKENS.to_vec()).prop_map(str::to_owned),
        2 => prop::sample::select(phrases.clone()).prop_map(str::to_owned),
        // A prefix or a suffix of a real phrase: near misses.
        1 => (prop::sample::select(phrases), any::<bool>(), 1usize..6).prop_map(|(p, front, cut)| {
            let n = p.chars().count().saturating_sub(cut).max(1);
            if front {
                p.chars().take(n).collect()
            } else {
                p.chars().skip(p.chars().count() - n).collect()
            }
        }),
    ];
    prop::collection::vec((token, case_mask()), 0..16)
        .prop_map(|tokens| tokens.iter().map(|(t, mask)| with_case(t, *mask)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, ..config() })]

    #[test]
    fn builtin_lists_equal_reference(
        text in builtin_text(),
        mode in mode(),
        enabled in enabled(),
    ) {
        let (scanner, reference) = builtin_scanner(mode);
        let got: Vec<Hit> = scanner.hits(&text, enabled).collect();
        prop_assert_eq!(&got, &reference.hits(&text, enabled), "text {:?}", text);
        if let Some(out) = scanner.redact(&text, enabled, REPLACEMENT) {
            let occurrences = reference.occurrences(&out, enabled);
            prop_assert!(occurrences.is_empty(), "left in {:?}: {:?}", out, occurrences);
            prop_assert_eq!(scanner.redact(&out, enabled, REPLACEMENT), None);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Through the whole policy: POLICY_REQUEST_WORDLIST = "custom:redact".
// ---------------------------------------------------------------------------------------------

/// One chat message: a role, and either a string or (text part, image part) content.
#[derive(Debug, Clone)]
struct Message {
    role: &'static str,
    text: String,
    parts: bool,
}

fn policy_case() -> impl Strategy<Value = (Vec<String>, Vec<Message>, WordlistMatch, bool)> {
    prop::collection::vec(phrase(), 1..5).prop_flat_map(|phrases| {
        let message = (
            prop::sample::select(vec!["system", "user", "assistant"]),
            text_from(phrases.clone(), 24),
            any::<bool>(),
        )
            .prop_map(|(role, text, parts)| Message { role, text, parts });
        (
            Just(phrases),
            prop::collection::vec(message, 1..4),
            mode(),
            any::<bool>(),
        )
    })
}

/// Whether a phrase contains the replacement, or starts with one of its suffixes, or ends
/// with one of its prefixes (the policy's documented validation of REDACTION_STRING).
fn overlaps_replacement(phrase: &str, replacement: &str) -> bool {
    let p = phrase.trim().to_ascii_lowercase();
    let r = replacement.to_ascii_lowercase();
    let cuts: Vec<usize> = r.char_indices().map(|(i, _)| i).chain([r.len()]).collect();
    p.contains(&r)
        || cuts.iter().any(|&i| i > 0 && p.ends_with(&r[..i]))
        || cuts.iter().any(|&i| i < r.len() && p.starts_with(&r[i..]))
}

fn policy_toml(phrases: &[String], mode: WordlistMatch) -> String {
    // A JSON string literal is a valid TOML basic string.
    let list: Vec<String> = phrases
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect();
    let mode = match mode {
        WordlistMatch::Word => "word",
        WordlistMatch::Substring => "substring",
    };
    format!(
        "POLICY_REQUEST_WORDLIST = \"custom:redact\"\nWORDLIST_MATCH = \"{mode}\"\n\
         POLICY_CUSTOM_WORDLIST = [{}]\n",
        list.join(", ")
    )
}

fn chat_body(messages: &[Message]) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            let content = if m.parts {
                json!([
                    {"type": "text", "text": m.text},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ])
            } else {
                Value::String(m.text.clone())
            };
            json!({"role": m.role, "content": content})
        })
        .collect();
    json!({"model": "gpt-4o-mini", "messages": messages, "temperature": 0.5})
}

/// The text of message `i` of a chat body, and its image part when it has one.
fn message_text(body: &Value, i: usize) -> (Option<&str>, Option<&Value>) {
    let content = &body["messages"][i]["content"];
    match content {
        Value::String(s) => (Some(s.as_str()), None),
        Value::Array(parts) => (parts[0]["text"].as_str(), parts.get(1)),
        _ => (None, None),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..config() })]

    #[test]
    fn policy_redacts_custom_phrases_in_requests(
        (phrases, messages, mode, escape) in policy_case(),
    ) {
        prop_assume!(phrases.iter().all(|p| !p.trim().is_empty()));
        let custom: ListSet = [ListName::Custom].into_iter().collect();
        let reference = Reference::new(phrases.iter().map(|p| (p.as_str(), ListName::Custom)), mode);
        let policy = Policy::from_toml(&policy_toml(&phrases, mode));
        // The policy refuses a redaction string that a custom phrase matches, contains, or
        // overlaps at either end (a redaction could then form a new match); the built-in
        // phrases never do with "****".
        let overlaps = phrases.iter().any(|p| overlaps_replacement(p, REPLACEMENT))
            || !reference.hits(REPLACEMENT, custom).is_empty();
        let policy = match policy {
            Ok(policy) => {
                prop_assert!(!overlaps, "policy accepted {:?} with {:?}", phrases, REPLACEMENT);
                policy
            }
            Err(e) => {
                prop_assert!(overlaps, "policy rejected {:?}: {}", phrases, e);
                prop_assert!(e.to_string().contains("REDACTION_STRING"), "{}", e);
                return Ok(());
            }
        };

        let original = chat_body(&messages);
        let mut body = serde_json::to_string(&original).unwrap();
        if escape {
            // The same JSON, with escapes: the core must read decoded text.
            body = body.replace('é', "\\u00e9").replace('日', "\\u65e5");
        }
        let verdict = policy.check_request(
            "/v1/chat/completions",
            &http::HeaderMap::new(),
            body.clone(),
            None,
        );
        prop_assert_eq!(verdict.decision(), Decision::Allow);
        prop_assert!(verdict.reply().is_none());

        let any_match = messages.iter().any(|m| !reference.hits(&m.text, custom).is_empty());
        let flagged = verdict.flags().iter().any(|f| f.kind == FlagKind::Wordlists);
        prop_assert_eq!(flagged, any_match, "flags {:?}", verdict.flags());
        let Some(rewritten) = verdict.rewritten() else {
            prop_assert!(!any_match, "a custom phrase matched but the body was not rewritten");
            return Ok(());
        };
        prop_assert!(any_match, "rewritten without a match: {:?}",
            String::from_utf8_lossy(rewritten));
        let forwarded: Value = serde_json::from_slice(rewritten).expect("forwarded body is JSON");
        prop_assert_eq!(&forwarded["model"], &original["model"]);
        prop_assert_eq!(&forwarded["temperature"], &original["temperature"]);
        prop_assert_eq!(
            forwarded["messages"].as_array().map(Vec::len),
            Some(messages.len())
        );
        for (i, message) in messages.iter().enumerate() {
            prop_assert_eq!(&forwarded["messages"][i]["role"], &original["messages"][i]["role"]);
            let (text, image) = message_text(&forwarded, i);
            let text = text.expect("message text kept");
            // A message without a match is forwarded as it was.
            if reference.hits(&message.text, custom).is_empty() {
                prop_assert_eq!(text, message.text.as_str());
            }
            // No custom phrase is left standing.
            let left = reference.occurrences(text, custom);
            prop_assert!(left.is_empty(), "message {} still holds {:?}: {:?}", i, left, text);
            if mode == WordlistMatch::Word {
                for phrase in &phrases {
                    let phrase = phrase.trim().to_ascii_lowercase();
                    prop_assert!(!whole_word(text, &phrase), "{:?} in {:?}", phrase, text);
                }
            }
            if message.parts {
                prop_assert_eq!(image, original["messages"][i]["content"].get(1));
            }
        }
    }
}

/// The smallest end-to-end case of the anchored re-check reporting a phrase that starts inside
/// a longer, rejected phrase: `bypass the content filter` (dan) is not a whole word before
/// `s`, so the scanner re-checks position 0 and takes `ass` (profanity, really at 3..6) as if it
/// started at 0, i.e. as the whole word `bypass`.
#[test]
fn bypass_is_not_profanity() {
    let policy = Policy::from_toml(r#"POLICY_REQUEST_WORDLIST = "profanity:block,dan:block""#)
        .expect("policy compiles");
    let body = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Can I bypass the content filters on my home router?"}]
    });
    let body = serde_json::to_vec(&body).unwrap();
    let verdict = policy.check_request("/v1/chat/completions", &http::HeaderMap::new(), body, None);
    assert_eq!(verdict.decision(), Decision::Allow, "{:?}", verdict.flags());
    assert!(verdict.flags().is_empty(), "{:?}", verdict.flags());
}
