//! Literal phrase matching: the built-in lists, the custom list and the scanner.
//!
//! Every phrase is matched literally (never as a regular expression), ASCII
//! case-insensitively, by one Aho-Corasick automaton built once per [`Policy`](crate::Policy).
//! In [`WordlistMatch::Word`] mode (the default) a match must stand as whole words: `class`
//! does not match `ass`. Redaction replaces every occurrence and is UTF-8 safe because a match
//! of a valid UTF-8 phrase in valid UTF-8 text always starts and ends on character boundaries.

use std::fmt;

use aho_corasick::automaton::Automaton;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind};
use serde::{Deserialize, Serialize};

mod starts;

use starts::StartFilter;

/// The names of the word lists a policy can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListName {
    /// Built-in English profanity, slurs and insults.
    Profanity,
    /// Built-in sexually explicit terms.
    Adult,
    /// Built-in jailbreak and prompt-injection phrases ("do anything now" and friends).
    Dan,
    /// The operator's own list (`POLICY_CUSTOM_WORDLIST`).
    Custom,
}

impl ListName {
    /// Every list, in the order descriptions name them.
    pub const ALL: [ListName; 4] = [
        ListName::Profanity,
        ListName::Adult,
        ListName::Dan,
        ListName::Custom,
    ];

    /// The wire name (`profanity`, `adult`, `dan`, `custom`).
    pub fn as_str(self) -> &'static str {
        match self {
            ListName::Profanity => "profanity",
            ListName::Adult => "adult",
            ListName::Dan => "dan",
            ListName::Custom => "custom",
        }
    }

    /// Parses a list name, case-insensitively.
    pub fn parse(name: &str) -> Option<ListName> {
        ListName::ALL
            .into_iter()
            .find(|list| list.as_str().eq_ignore_ascii_case(name))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for ListName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a phrase must sit in the text to count as a match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordlistMatch {
    /// Whole words only: the characters around the match are not letters, digits or `_`.
    #[default]
    Word,
    /// Anywhere, even inside a word (the original proxy's behaviour).
    Substring,
}

/// A set of lists, as a small bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ListSet(u8);

impl ListSet {
    /// The empty set.
    pub const EMPTY: ListSet = ListSet(0);
    /// Every list.
    pub const ALL: ListSet = ListSet(0b1111);

    /// Adds a list.
    pub fn insert(&mut self, list: ListName) {
        self.0 |= list.bit();
    }

    /// Whether the list is in the set.
    pub fn contains(self, list: ListName) -> bool {
        self.0 & list.bit() != 0
    }

    /// Whether no list is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The lists in the set, in [`ListName::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = ListName> {
        ListName::ALL.into_iter().filter(move |l| self.contains(*l))
    }

    /// A dense index of the set (0 to 15), for per-set caches.
    pub(crate) fn index(self) -> usize {
        usize::from(self.0 & 0b1111)
    }

    /// The union of two sets.
    pub fn union(self, other: ListSet) -> ListSet {
        ListSet(self.0 | other.0)
    }
}

impl FromIterator<ListName> for ListSet {
    fn from_iter<I: IntoIterator<Item = ListName>>(iter: I) -> Self {
        let mut set = ListSet::EMPTY;
        for list in iter {
            set.insert(list);
        }
        set
    }
}

const PROFANITY: &str = include_str!("wordlists/profanity.txt");
const ADULT: &str = include_str!("wordlists/adult.txt");
const DAN: &str = include_str!("wordlists/dan.txt");

/// The phrases of a built-in list (comment lines starting with `#` and blank lines skipped).
pub fn builtin_phrases(list: ListName) -> impl Iterator<Item = &'static str> {
    let text = match list {
        ListName::Profanity => PROFANITY,
        ListName::Adult => ADULT,
        ListName::Dan => DAN,
        ListName::Custom => "",
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// One match in a text: where it is and which lists it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// The lists the phrase is in (a phrase can be in several).
    pub lists: ListSet,
}

/// A compiled set of literal phrases, each tagged with the lists it belongs to.
#[derive(Clone)]
pub struct Scanner {
    /// Leftmost-longest automaton for the scan itself (not needed when `starts` is set).
    leftmost: Option<AhoCorasick>,
    /// Anchored standard-semantics automaton (a compact NFA: its walks are a phrase long): every
    /// phrase at one position, and (for streams) whether a text's tail could still grow into a
    /// match.
    anchored: NFA,
    /// Per pattern: the lists it belongs to.
    lists: Vec<ListSet>,
    /// Per pattern: whether it starts / ends with a word character.
    edges: Vec<(bool, bool)>,
    mode: WordlistMatch,
    longest_chars: usize,
    longest_bytes: usize,
    /// In word mode, when every phrase starts with a word character, matches can only start
    /// at word starts: the scan visits those and asks this filter before walking an automaton.
    starts: Option<Box<StartFilter>>,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("patterns", &self.lists.len())
            .field("mode", &self.mode)
            .finish()
    }
}

/// Why a set of phrases could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile word list: {0}")]
pub struct ScannerError(#[from] aho_corasick::BuildError);

impl Scanner {
    /// Builds a scanner from `(phrase, lists)` pairs. Phrases are folded to ASCII lower case and
    /// trimmed; empty phrases are skipped; the same phrase in several lists is kept once.
    pub fn new<'a, I>(phrases: I, mode: WordlistMatch) -> Result<Scanner, ScannerError>
    where
        I: IntoIterator<Item = (&'a str, ListName)>,
    {
        let mut patterns: Vec<String> = Vec::new();
        let mut lists: Vec<ListSet> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (phrase, list) in phrases {
            let phrase = phrase.trim().to_ascii_lowercase();
            if phrase.is_empty() {
                continue;
            }
            match index.get(&phrase) {
                Some(&i) => {
                    let set: &mut ListSet = &mut lists[i];
                    set.insert(list);
                }
                None => {
                    index.insert(phrase.clone(), patterns.len());
                    patterns.push(phrase);
                    lists.push([list].into_iter().collect());
                }
            }
        }
        let edges = patterns
            .iter()
            .map(|p| {
                (
                    p.chars().next().is_some_and(is_word_char),
                    p.chars().next_back().is_some_and(is_word_char),
                )
            })
            .collect();
        let longest_chars = patterns
            .iter()
            .map(|p| p.chars().count())
            .max()
            .unwrap_or(0);
        let anchored = NFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)?;
        let longest_bytes = patterns.iter().map(String::len).max().unwrap_or(0);
        let word_starts = mode == WordlistMatch::Word
            && patterns
                .iter()
                .all(|p| p.chars().next().is_some_and(is_word_char));
        let starts =
            word_starts.then(|| Box::new(StartFilter::new(patterns.iter().map(String::as_str))));
        let leftmost = if word_starts {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&patterns)?,
            )
        };
        Ok(Scanner {
            starts,
            leftmost,
            anchored,
            longest_bytes,
            lists,
            edges,
            mode,
            longest_chars,
        })
    }

    /// How many distinct phrases the scanner holds.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether the scanner holds no phrase.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The length in characters of the longest phrase (what a stream must hold back, plus one).
    pub fn longest_chars(&self) -> usize {
        self.longest_chars
    }

    /// The matching mode.
    pub fn mode(&self) -> WordlistMatch {
        self.mode
    }

    /// Finds the first acceptable match at or after byte `from`: its phrase belongs to one of
    /// `enabled`, and in word mode it stands as whole words. Matches do not overlap when the
    /// caller continues from the previous hit's end.
    pub fn find_from(&self, text: &str, from: usize, enabled: ListSet) -> Option<Hit> {
        if self.is_empty() || enabled.is_empty() {
            return None;
        }
        if let Some(filter) = &self.starts {
            return self.find_at_word_starts(text, from, enabled, filter);
        }
        let leftmost = self.leftmost.as_ref()?;
        let mut at = from;
        while at < text.len() {
            let found = leftmost.find(Input::new(text).span(at..text.len()))?;
            let (start, end, pattern) = (found.start(), found.end(), found.pattern().as_usize());
            if self.accepts(text, start, end, pattern, enabled) {
                return Some(Hit {
                    start,
                    end,
                    lists: self.lists[pattern].intersect(enabled),
                });
            }
            // The longest phrase here is not acceptable; a shorter one starting at the same
            // place may be. This path is rare (near-misses only), so it may be slower.
            if let Some(hit) = self.best_anchored(text, start, enabled) {
                return Some(hit);
            }
            at = next_char_boundary(text, start);
        }
        None
    }

    /// The word-mode scan: the first word start (at or after `from`) where an acceptable phrase
    /// begins, with the longest such phrase. The same result as the automaton scan, because in
    /// word mode a phrase starting with a word character can only match at a word start.
    fn find_at_word_starts(
        &self,
        text: &str,
        from: usize,
        enabled: ListSet,
        filter: &StartFilter,
    ) -> Option<Hit> {
        let bytes = text.as_bytes();
        let mut p = from;
        // 64 bytes at a time: bit masks of word bytes (and of non-ASCII bytes) give the word
        // starts and each word's length without a branch per byte. The last block is padded
        // with zeros (not word bytes, like the end of the text). The windows are read in
        // place: copying the bytes first would stall every unaligned load that follows.
        let mut padded = [0u8; 72];
        while p < bytes.len() {
            let rest = &bytes[p..];
            // The block and 8 bytes after it, so that every word start has a whole window.
            let ahead = match rest.first_chunk::<72>() {
                Some(ahead) => ahead,
                None => {
                    let (head, zeros) = padded.split_at_mut(rest.len());
                    head.copy_from_slice(rest);
                    zeros.fill(0);
                    &padded
                }
            };
            let (block, _) = ahead.split_first_chunk::<64>().unwrap_or((&[0; 64], &[]));
            // The byte before the block: an ASCII word byte, or part of a non-ASCII character
            // (which the exact check decodes).
            let before = p.checked_sub(1).and_then(|b| bytes.get(b)).copied();
            let before_word = u64::from(before.is_some_and(starts::is_ascii_word_byte));
            let before_high = u64::from(before.is_some_and(|b| b >= 0x80));
            let hit = match starts::block_word_mask(block) {
                Some(mask) => {
                    // All ASCII: the tight loop, after the one position that may follow a
                    // non-ASCII character of the block before.
                    let starts = mask & !(mask << 1 | before_word | before_high);
                    let exact = mask & before_high;
                    if exact != 0
                        && let Some(hit) =
                            self.scan_block(text, p, ahead, mask, 0, 0, exact, enabled, filter)
                    {
                        return Some(hit);
                    }
                    self.scan_ascii_block(text, p, ahead, mask, starts, enabled, filter)
                }
                None => {
                    // Non-ASCII text in the block: ASCII words next to ASCII are still decided
                    // from the masks; the positions next to a non-ASCII character are decided
                    // by decoding the characters.
                    let masks = starts::block_masks(block);
                    let before_words = masks.word << 1 | before_word;
                    let before_highs = masks.high << 1 | before_high;
                    let starts = masks.word & !before_words & !before_highs;
                    let exact = (masks.word & before_highs) | (masks.lead & !before_words);
                    let (word, high) = (masks.word, masks.high);
                    self.scan_block(text, p, ahead, word, high, starts, exact, enabled, filter)
                }
            };
            if hit.is_some() {
                return hit;
            }
            p += 64;
        }
        None
    }

    /// The word starts of an all-ASCII block (`mask`: its word bytes).
    #[expect(
        clippy::too_many_arguments,
        reason = "the scan's hot loop, kept in one place"
    )]
    #[inline]
    fn scan_ascii_block(
        &self,
        text: &str,
        p: usize,
        ahead: &[u8; 72],
        mask: u64,
        mut starts: u64,
        enabled: ListSet,
        filter: &StartFilter,
    ) -> Option<Hit> {
        let rest = text.as_bytes().get(p..).unwrap_or_default();
        while starts != 0 {
            let i = starts.trailing_zeros() as usize % 64;
            // The word's length, when it ends inside the block.
            let len = (!(mask >> i)).trailing_zeros() as usize;
            let may = may_start_at(filter, ahead, rest, i, len, i + len < 64);
            if may && let Some(hit) = self.best_anchored(text, p + i, enabled) {
                return Some(hit);
            }
            starts &= starts - 1;
        }
        None
    }

    /// One block of the word-start scan. `word` and `high` mark the ASCII word bytes and the
    /// non-ASCII bytes; `starts` are certain word starts (an ASCII word byte after an ASCII
    /// non-word byte); `exact` are positions that may start a word but need the characters
    /// around them decoded.
    #[expect(
        clippy::too_many_arguments,
        reason = "the scan's hot loop, kept in one place"
    )]
    #[inline]
    fn scan_block(
        &self,
        text: &str,
        p: usize,
        ahead: &[u8; 72],
        word: u64,
        high: u64,
        starts: u64,
        exact: u64,
        enabled: ListSet,
        filter: &StartFilter,
    ) -> Option<Hit> {
        let rest = text.as_bytes().get(p..).unwrap_or_default();
        let mut todo = starts | exact;
        while todo != 0 {
            let i = todo.trailing_zeros() as usize % 64;
            let may = if starts >> i & 1 == 1 {
                // The ASCII word's length, when it ends inside the block.
                let len = (!(word >> i)).trailing_zeros() as usize;
                let end = i + len;
                // Whether the word ends there: before an ASCII byte, or before a non-ASCII
                // character that is not a letter (`’`, `—`); before a non-ASCII letter it goes
                // on, and the automaton decides.
                let ends =
                    end < 64 && (high >> end & 1 == 0 || !self.continues_word(text, p + end));
                may_start_at(filter, ahead, rest, i, len, ends)
            } else {
                self.is_word_start(text, p + i)
                    && filter.may_start(rest.get(i..).unwrap_or_default())
            };
            if may && let Some(hit) = self.best_anchored(text, p + i, enabled) {
                return Some(hit);
            }
            todo &= todo - 1;
        }
        None
    }

    /// Whether the character at byte `at` (a character boundary) is a word character.
    #[cold]
    fn continues_word(&self, text: &str, at: usize) -> bool {
        text.get(at..)
            .and_then(|t| t.chars().next())
            .is_some_and(is_word_char)
    }

    /// Whether a word starts at byte `at` (a character boundary): a word character with no
    /// word character before it.
    #[cold]
    fn is_word_start(&self, text: &str, at: usize) -> bool {
        let (Some(before), Some(after)) = (text.get(..at), text.get(at..)) else {
            return false;
        };
        after.chars().next().is_some_and(is_word_char)
            && !before.chars().next_back().is_some_and(is_word_char)
    }

    /// The longest acceptable phrase starting exactly at `start`: walks the anchored automaton
    /// from there until it dies, noting every phrase that ends on the way.
    fn best_anchored(&self, text: &str, start: usize, enabled: ListSet) -> Option<Hit> {
        let nfa = &self.anchored;
        let mut sid = nfa.start_state(Anchored::Yes).ok()?;
        let mut best: Option<Hit> = None;
        for (i, &byte) in text.as_bytes()[start..].iter().enumerate() {
            sid = nfa.next_state(Anchored::Yes, sid, byte);
            if nfa.is_dead(sid) {
                break;
            }
            if !nfa.is_match(sid) {
                continue;
            }
            let end = start + i + 1;
            for m in 0..nfa.match_len(sid) {
                let pattern = nfa.match_pattern(sid, m);
                // A state also carries the phrases that are suffixes of the walked text; only
                // those starting exactly at `start` count.
                if nfa.pattern_len(pattern) != end - start {
                    continue;
                }
                let pattern = pattern.as_usize();
                if self.accepts(text, start, end, pattern, enabled) {
                    best = Some(Hit {
                        start,
                        end,
                        lists: self.lists[pattern].intersect(enabled),
                    });
                }
            }
        }
        best
    }

    fn accepts(
        &self,
        text: &str,
        start: usize,
        end: usize,
        pattern: usize,
        enabled: ListSet,
    ) -> bool {
        if self.lists[pattern].intersect(enabled).is_empty() {
            return false;
        }
        if self.mode == WordlistMatch::Substring {
            return true;
        }
        let (starts_word, ends_word) = self.edges[pattern];
        let before_ok =
            !starts_word || !text[..start].chars().next_back().is_some_and(is_word_char);
        let after_ok = !ends_word || !text[end..].chars().next().is_some_and(is_word_char);
        before_ok && after_ok
    }

    /// Whether the text from byte `at` to its end is the start of a phrase (or a whole phrase),
    /// so that more text could still make a match starting at `at`.
    pub fn live_from(&self, text: &str, at: usize) -> bool {
        live(&self.anchored, text.as_bytes(), at)
    }

    /// The length in bytes of the longest phrase.
    pub fn longest_bytes(&self) -> usize {
        self.longest_bytes
    }

    /// Every acceptable match, left to right, without overlaps.
    pub fn hits<'s, 't>(&'s self, text: &'t str, enabled: ListSet) -> Hits<'s, 't> {
        Hits {
            scanner: self,
            text,
            at: 0,
            enabled,
        }
    }

    /// The lists that match anywhere in `text`.
    pub fn matching_lists(&self, text: &str, enabled: ListSet) -> ListSet {
        self.hits(text, enabled)
            .fold(ListSet::EMPTY, |acc, hit| acc.union(hit.lists))
    }

    /// Replaces every match with `replacement`. Returns `None` when nothing matched, so the
    /// caller can keep the original bytes. Repeats until no match is left (a replacement can
    /// bring two words together), at most once per byte of the text. A [`Policy`](crate::Policy)
    /// validates its redaction string so that one pass always suffices.
    pub fn redact(&self, text: &str, enabled: ListSet, replacement: &str) -> Option<String> {
        let mut current = self.redact_once(text, enabled, replacement)?;
        for _ in 0..text.len() {
            match self.redact_once(&current, enabled, replacement) {
                Some(next) => current = next,
                None => break,
            }
        }
        Some(current)
    }

    fn redact_once(&self, text: &str, enabled: ListSet, replacement: &str) -> Option<String> {
        let mut hits = self.hits(text, enabled).peekable();
        hits.peek()?;
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for hit in hits {
            out.push_str(&text[last..hit.start]);
            out.push_str(replacement);
            last = hit.end;
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

impl ListSet {
    /// The lists in both sets.
    pub fn intersect(self, other: ListSet) -> ListSet {
        ListSet(self.0 & other.0)
    }
}

/// Iterator over the acceptable matches of a text; see [`Scanner::hits`].
#[derive(Debug)]
pub struct Hits<'s, 't> {
    scanner: &'s Scanner,
    text: &'t str,
    at: usize,
    enabled: ListSet,
}

impl Iterator for Hits<'_, '_> {
    type Item = Hit;

    fn next(&mut self) -> Option<Hit> {
        let hit = self.scanner.find_from(self.text, self.at, self.enabled)?;
        self.at = if hit.end > hit.start {
            hit.end
        } else {
            next_char_boundary(self.text, hit.start)
        };
        Some(hit)
    }
}

/// Walks an anchored automaton from `at` to the end of `text`: true when it is still alive.
pub(crate) fn live(dfa: &NFA, text: &[u8], at: usize) -> bool {
    let Ok(mut sid) = dfa.start_state(Anchored::Yes) else {
        return false;
    };
    for &byte in &text[at..] {
        sid = dfa.next_state(Anchored::Yes, sid, byte);
        if dfa.is_dead(sid) {
            return false;
        }
    }
    true
}

/// The filter's verdict for a certain word start at byte `i` of a block (`ahead`: the block and
/// 8 bytes more; `rest`: the text from the block on), whose ASCII word is `len` bytes long.
/// When the word is known to end there (`ends`), the first question is asked inline and the
/// text is only looked at past the window for the few words it lets through; otherwise the
/// filter measures the word itself.
#[inline(always)]
fn may_start_at(
    filter: &StartFilter,
    ahead: &[u8; 72],
    rest: &[u8],
    i: usize,
    len: usize,
    ends: bool,
) -> bool {
    let at = || rest.get(i..).unwrap_or_default();
    if !ends {
        return filter.may_start(at());
    }
    let mut eight = [0; 8];
    eight.copy_from_slice(&ahead[i % 64..i % 64 + 8]);
    filter
        .first_word(u64::from_le_bytes(eight), len)
        .is_some_and(|key| filter.may_continue(at(), len, true, key))
}

/// A word character: a letter, a digit (any script) or `_`.
#[inline]
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    // General Punctuation (typographic quotes and dashes, `’ “ ” — …`, the most common
    // non-ASCII characters in model output) holds no letter or digit: skip the Unicode
    // tables, whose lookup is a search. (A test checks every character of the block.)
    if ('\u{2000}'..='\u{206f}').contains(&c) {
        return false;
    }
    c.is_alphanumeric()
}

fn next_char_boundary(text: &str, at: usize) -> usize {
    text[at..]
        .chars()
        .next()
        .map_or(text.len(), |c| at + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(phrases: &[&str], mode: WordlistMatch) -> Scanner {
        match Scanner::new(phrases.iter().map(|p| (*p, ListName::Custom)), mode) {
            Ok(s) => s,
            Err(e) => unreachable!("{e}"),
        }
    }

    fn all() -> ListSet {
        ListName::ALL.into_iter().collect()
    }

    #[test]
    fn whole_words_by_default() {
        let s = scanner(&["ass"], WordlistMatch::Word);
        assert!(s.matching_lists("a class act", all()).is_empty());
        assert!(s.contains_any("what an ASS!"));
        let sub = scanner(&["ass"], WordlistMatch::Substring);
        assert!(!sub.matching_lists("a class act", all()).is_empty());
    }

    #[test]
    fn shorter_phrase_found_when_longer_is_not_a_word() {
        let s = scanner(&["bad", "bad word"], WordlistMatch::Word);
        let hits: Vec<_> = s.hits("a bad wordy day", all()).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].start, hits[0].end), (2, 5));
        assert_eq!(
            s.redact("say bad word now", all(), "****").as_deref(),
            Some("say **** now")
        );
    }

    #[test]
    fn phrases_are_literal_not_regex() {
        let s = scanner(&["a.b", "(x+"], WordlistMatch::Word);
        assert!(s.matching_lists("axb", all()).is_empty());
        assert!(s.contains_any("see a.b here"));
        assert!(s.contains_any("then (x+ now"));
    }

    #[test]
    fn redaction_is_utf8_safe_and_replaces_all() {
        let s = scanner(&["darn"], WordlistMatch::Word);
        let out = s.redact("ünï DARN café darn—darn", all(), "****");
        assert_eq!(out.as_deref(), Some("ünï **** café ****—****"));
        assert_eq!(s.redact("nothing here", all(), "****"), None);
    }

    #[test]
    fn word_characters_are_letters_digits_and_underscore_everywhere() {
        for c in (0..=0x30000u32).filter_map(char::from_u32) {
            assert_eq!(is_word_char(c), c.is_alphanumeric() || c == '_', "{c:?}");
        }
    }

    #[test]
    fn unicode_letters_are_word_characters() {
        let s = scanner(&["darn"], WordlistMatch::Word);
        assert!(s.matching_lists("édarn", all()).is_empty());
    }

    #[test]
    fn disabled_lists_do_not_shadow_enabled_ones() {
        let phrases = [("bad", ListName::Custom), ("bad thing", ListName::Dan)];
        let s = match Scanner::new(phrases, WordlistMatch::Word) {
            Ok(s) => s,
            Err(e) => unreachable!("{e}"),
        };
        let only_custom: ListSet = [ListName::Custom].into_iter().collect();
        let hits: Vec<_> = s.hits("a bad thing", only_custom).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].start, hits[0].end), (2, 5));
    }

    #[test]
    fn builtin_lists_are_clean() {
        for list in [ListName::Profanity, ListName::Adult, ListName::Dan] {
            let phrases: Vec<_> = builtin_phrases(list).collect();
            assert!(phrases.len() >= 20, "{list} has {} phrases", phrases.len());
            for p in phrases {
                assert_eq!(p, p.to_ascii_lowercase(), "{list}: {p}");
                assert!(!p.contains("  "), "{list}: {p}");
            }
        }
    }

    #[test]
    fn phrases_found_wherever_they_cross_a_block_edge() {
        // The scan reads 64-byte blocks; a phrase may start anywhere near an edge, with its
        // first word or what follows running into the next block.
        let phrases = [
            "abcdefghijklmno xyz",
            "abc defghijk",
            "abc de",
            "ab",
            "abcdefgh",
            "word é",
        ];
        for phrase in phrases {
            // One phrase per scanner: another phrase with the same first word would let the
            // filter pass on the first word alone.
            let s = scanner(&[phrase], WordlistMatch::Word);
            for lead in 40..140 {
                for tail in ["", " and more text after it, long enough to fill a block!!"] {
                    let text = format!(
                        "{}{phrase}{tail}",
                        "x ".repeat(lead / 2) + &" ".repeat(lead % 2)
                    );
                    let hit = s.hits(&text, all()).next();
                    assert_eq!(
                        hit.map(|h| &text[h.start..h.end]),
                        Some(phrase),
                        "{phrase:?} after {lead} bytes, tail {tail:?}"
                    );
                }
            }
        }
    }

    impl Scanner {
        fn contains_any(&self, text: &str) -> bool {
            !self.matching_lists(text, all()).is_empty()
        }
    }
}
