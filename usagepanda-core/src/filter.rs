//! Content filtering of one text, whole or as a stream of pieces, with identical results.
//!
//! A [`Stage`] holds up to three literal matchers over the same text: one whose matches block,
//! one whose matches are replaced, one whose matches are only recorded. [`Stage::apply`]
//! filters a whole text. [`StageStream`] filters a text that arrives in pieces: it emits at
//! once every character that can no longer be part of a match, and holds back only the tail
//! that could still grow into one (at most the longest phrase's length), so the concatenated
//! output equals `apply` on the whole text, whatever the cut points, and a blocked phrase is
//! detected before any of its characters is emitted.

use crate::wordlist::{Hit, ListSet, Scanner};

/// A literal matcher usable by a [`Stage`].
pub(crate) trait Matcher: Sync {
    /// The leftmost(-longest) acceptable match starting at or after byte `from`.
    fn find(&self, text: &str, from: usize) -> Option<Hit>;
    /// Whether `text[at..]` could still grow into a match (it is a prefix of a phrase, or a
    /// whole phrase whose acceptance depends on what follows).
    fn live_from(&self, text: &str, at: usize) -> bool;
    /// The longest phrase in bytes.
    fn longest_bytes(&self) -> usize;
}

impl Matcher for Scanner {
    fn find(&self, text: &str, from: usize) -> Option<Hit> {
        self.find_from(text, from, ListSet::ALL)
    }
    fn live_from(&self, text: &str, at: usize) -> bool {
        Scanner::live_from(self, text, at)
    }
    fn longest_bytes(&self) -> usize {
        Scanner::longest_bytes(self)
    }
}

/// What a stage found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Findings {
    /// The lists whose phrases matched (empty for reflection matchers).
    pub(crate) lists: ListSet,
    /// Whether any matcher matched.
    pub(crate) matched: bool,
    /// Whether the block matcher matched.
    pub(crate) blocked: bool,
}

impl Findings {
    fn record(&mut self, hit: &Hit) {
        self.lists = self.lists.union(hit.lists);
        self.matched = true;
    }
}

/// Up to three matchers over one text, and the replacement for redacted matches.
#[derive(Clone, Copy)]
pub(crate) struct Stage<'m> {
    /// Matches refuse the exchange.
    pub(crate) block: Option<&'m dyn Matcher>,
    /// Matches are replaced.
    pub(crate) redact: Option<&'m dyn Matcher>,
    /// Matches are recorded.
    pub(crate) audit: Option<&'m dyn Matcher>,
    /// All of the above in one matcher: when it finds nothing, none of them can (a fast path).
    pub(crate) any: Option<&'m dyn Matcher>,
    /// What replaces a redacted match.
    pub(crate) replacement: &'m str,
}

impl Stage<'_> {
    /// Whether the stage has nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.block.is_none() && self.redact.is_none() && self.audit.is_none()
    }

    /// Whether output must wait for decisions (something blocks or redacts).
    pub(crate) fn holds(&self) -> bool {
        self.block.is_some() || self.redact.is_some()
    }

    /// Filters a whole text: records what matched and returns the redacted text, or `None` when
    /// nothing was replaced (the caller keeps the original bytes).
    pub(crate) fn apply(&self, text: &str, found: &mut Findings) -> Option<String> {
        if self.any.is_some_and(|any| any.find(text, 0).is_none()) {
            return None;
        }
        if let Some(block) = self.block {
            let mut at = 0;
            while let Some(hit) = block.find(text, at) {
                found.record(&hit);
                found.blocked = true;
                at = after(text, &hit);
            }
        }
        if let Some(audit) = self.audit {
            let mut at = 0;
            while let Some(hit) = audit.find(text, at) {
                found.record(&hit);
                at = after(text, &hit);
            }
        }
        let redact = self.redact?;
        let mut out: Option<String> = None;
        let mut last = 0;
        while let Some(hit) = redact.find(text, last) {
            found.record(&hit);
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[last..hit.start]);
            buf.push_str(self.replacement);
            last = after(text, &hit);
        }
        let mut out = out?;
        out.push_str(&text[last..]);
        Some(out)
    }
}

/// Where the next search starts after a hit (past an empty hit, one character on).
fn after(text: &str, hit: &Hit) -> usize {
    if hit.end > hit.start {
        hit.end
    } else {
        text[hit.start..]
            .chars()
            .next()
            .map_or(text.len(), |c| hit.start + c.len_utf8())
    }
}

/// Whether to go on after a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// A blocked phrase was found; nothing more may be emitted.
    Blocked,
}

/// The incremental form of [`Stage::apply`] for one text.
#[derive(Debug, Default, Clone)]
pub(crate) struct StageStream {
    /// Text not yet settled, with one already-settled character in front (the context a
    /// whole-word check needs).
    buf: String,
    /// Cursors into `buf`: next position to search for each matcher, and what is emitted.
    block_at: usize,
    audit_at: usize,
    redact_at: usize,
    emitted: usize,
}

impl StageStream {
    /// Adds a piece of text; appends what is settled to `out`.
    pub(crate) fn push(
        &mut self,
        stage: &Stage<'_>,
        piece: &str,
        out: &mut String,
        found: &mut Findings,
    ) -> Flow {
        self.buf.push_str(piece);
        self.advance(stage, false, out, found)
    }

    /// Ends the text; appends the rest to `out`.
    pub(crate) fn finish(
        &mut self,
        stage: &Stage<'_>,
        out: &mut String,
        found: &mut Findings,
    ) -> Flow {
        let flow = self.advance(stage, true, out, found);
        self.buf.clear();
        (self.block_at, self.audit_at, self.redact_at, self.emitted) = (0, 0, 0, 0);
        flow
    }

    /// How many characters are held back.
    pub(crate) fn held_chars(&self) -> usize {
        self.buf
            .get(self.emitted..)
            .map_or(0, |s| s.chars().count())
    }

    fn advance(
        &mut self,
        stage: &Stage<'_>,
        end: bool,
        out: &mut String,
        found: &mut Findings,
    ) -> Flow {
        let len = self.buf.len();
        let live = |m: &dyn Matcher, from: usize| {
            if end {
                len
            } else {
                earliest_live(m, &self.buf, from)
            }
        };
        let mut limit = len;
        if let Some(block) = stage.block {
            let block_live = live(block, self.block_at);
            if let Some(hit) = block
                .find(&self.buf, self.block_at)
                .filter(|h| h.start < block_live)
            {
                found.record(&hit);
                found.blocked = true;
                return Flow::Blocked;
            }
            self.block_at = self.block_at.max(block_live);
            limit = limit.min(block_live);
        }
        if let Some(audit) = stage.audit {
            let audit_live = live(audit, self.audit_at);
            while let Some(hit) = audit
                .find(&self.buf, self.audit_at)
                .filter(|h| h.start < audit_live)
            {
                found.record(&hit);
                self.audit_at = after(&self.buf, &hit);
            }
            self.audit_at = self.audit_at.max(audit_live);
        }
        match stage.redact {
            Some(redact) => {
                limit = limit.min(live(redact, self.redact_at));
                while let Some(hit) = redact
                    .find(&self.buf, self.redact_at)
                    .filter(|h| h.start < limit)
                {
                    found.record(&hit);
                    if self.emitted < hit.start {
                        out.push_str(&self.buf[self.emitted..hit.start]);
                    }
                    out.push_str(stage.replacement);
                    self.redact_at = after(&self.buf, &hit);
                    self.emitted = self.redact_at;
                }
                self.redact_at = self.redact_at.max(limit);
            }
            None if !stage.holds() => limit = len,
            None => {}
        }
        if self.emitted < limit {
            out.push_str(&self.buf[self.emitted..limit]);
            self.emitted = limit;
        }
        self.compact(stage);
        Flow::Continue
    }

    /// Drops settled text, keeping one character of context before the earliest cursor.
    fn compact(&mut self, stage: &Stage<'_>) {
        let mut keep_from = self.emitted;
        if stage.block.is_some() {
            keep_from = keep_from.min(self.block_at);
        }
        if stage.audit.is_some() {
            keep_from = keep_from.min(self.audit_at);
        }
        if stage.redact.is_some() {
            keep_from = keep_from.min(self.redact_at);
        }
        let keep_from = self.buf[..keep_from]
            .char_indices()
            .next_back()
            .map_or(0, |(i, _)| i);
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            for cursor in [
                &mut self.block_at,
                &mut self.audit_at,
                &mut self.redact_at,
                &mut self.emitted,
            ] {
                *cursor = cursor.saturating_sub(keep_from);
            }
        }
    }
}

/// The first position at or after `from` from which the text's tail could still grow into a
/// match; the text's length when there is none.
fn earliest_live(m: &dyn Matcher, text: &str, from: usize) -> usize {
    let mut start = from.max(text.len().saturating_sub(m.longest_bytes()));
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..]
        .char_indices()
        .map(|(i, _)| start + i)
        .find(|&p| m.live_from(text, p))
        .unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wordlist::{ListName, WordlistMatch};

    fn scanner(phrases: &[&str]) -> Scanner {
        match Scanner::new(
            phrases.iter().map(|p| (*p, ListName::Custom)),
            WordlistMatch::Word,
        ) {
            Ok(s) => s,
            Err(e) => unreachable!("{e}"),
        }
    }

    fn stream(stage: &Stage<'_>, pieces: &[&str]) -> (String, Findings, Flow, usize) {
        let mut s = StageStream::default();
        let mut out = String::new();
        let mut found = Findings::default();
        let mut max_held = 0;
        for piece in pieces {
            if s.push(stage, piece, &mut out, &mut found) == Flow::Blocked {
                return (out, found, Flow::Blocked, max_held);
            }
            max_held = max_held.max(s.held_chars());
        }
        let flow = s.finish(stage, &mut out, &mut found);
        (out, found, flow, max_held)
    }

    #[test]
    fn split_phrase_is_redacted_and_hold_back_is_small() {
        let sc = scanner(&["secret plan", "darn"]);
        let stage = Stage {
            block: None,
            redact: Some(&sc),
            audit: None,
            any: None,
            replacement: "****",
        };
        let pieces = ["The sec", "ret p", "lan is da", "rn good; da", "rnit"];
        let (out, found, flow, held) = stream(&stage, &pieces);
        let mut whole = Findings::default();
        let expected = stage.apply(&pieces.concat(), &mut whole);
        assert_eq!(Some(out.clone()), expected);
        assert_eq!(out, "The **** is **** good; darnit");
        assert_eq!(flow, Flow::Continue);
        assert!(found.matched);
        assert!(held <= "secret plan".len(), "held {held}");
    }

    #[test]
    fn block_is_detected_before_any_of_its_characters_is_emitted() {
        let sc = scanner(&["launch codes"]);
        let stage = Stage {
            block: Some(&sc),
            redact: None,
            audit: None,
            any: None,
            replacement: "****",
        };
        let (out, _, flow, _) = stream(&stage, &["the la", "unch c", "odes are"]);
        assert_eq!(flow, Flow::Blocked);
        assert_eq!(out, "the ");
    }

    #[test]
    fn audit_only_does_not_hold_back() {
        let sc = scanner(&["darn"]);
        let stage = Stage {
            block: None,
            redact: None,
            audit: Some(&sc),
            any: None,
            replacement: "****",
        };
        let mut s = StageStream::default();
        let mut out = String::new();
        let mut found = Findings::default();
        s.push(&stage, "oh da", &mut out, &mut found);
        assert_eq!(out, "oh da");
        s.push(&stage, "rn", &mut out, &mut found);
        s.finish(&stage, &mut out, &mut found);
        assert_eq!(out, "oh darn");
        assert!(found.matched);
    }
}
