//! The word-mode fast path: which word starts are worth walking an automaton from.
//!
//! In word mode a phrase that starts with a word character can only match at a word start,
//! and the text's first word there must equal the phrase's first word (both stand as whole
//! words). So each word start is asked, in a few instructions, whether its first word (its
//! first 8 bytes, case folded) is the first word of some phrase. The few that pass get a
//! second question: can the 4 or 8 bytes after the word continue one of those phrases? That
//! keeps common first words such as `you` or `from` (of `you are now ...`, `from now on ...`)
//! from sending every occurrence to the automaton. Only then is the anchored automaton walked.
//!
//! Everything here is a filter: it may say yes for a start that does not match (a hash
//! collision, or a word next to non-ASCII text, where it cannot tell), never no for one that
//! does.

use wide::u8x16;

/// Bytes with the high bit set: non-ASCII.
pub(super) const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;
/// Setting bit 5 of every byte folds ASCII upper case onto lower case. Other bytes change
/// alike in text and phrase, which can only add false positives.
const FOLD: u64 = 0x2020_2020_2020_2020;

/// For eight ASCII bytes (high bits clear), bit `i` of the result says whether byte `i` is a
/// word character (`0-9`, `A-Z`, `a-z`, `_`), computed with word-wide arithmetic: no byte ever
/// carries into the next because every byte stays below 0x100.
#[inline]
pub(super) fn ascii_word_mask(v: u64) -> u8 {
    // lo <= b <= hi  <=>  high bit of (b + 0x80 - lo) set and of (b + 0x7f - hi) clear.
    let in_range = |x: u64, lo: u8, hi: u8| {
        let above = x + ONES * u64::from(0x80 - lo);
        let beyond = x + ONES * u64::from(0x7f - hi);
        above & !beyond & HIGH
    };
    let digit = in_range(v, b'0', b'9');
    let alpha = in_range(v | FOLD, b'a', b'z');
    let under = {
        let x = v ^ (ONES * u64::from(b'_'));
        !(((x & !HIGH) + !HIGH) | x) & HIGH
    };
    gather(digit | alpha | under)
}

/// The high bits of eight bytes, as one byte.
#[inline]
fn gather(high_bits: u64) -> u8 {
    ((high_bits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// An ASCII word byte (`0-9`, `A-Z`, `a-z`, `_`).
#[inline]
pub(super) fn is_ascii_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The four 16-byte lanes of a block.
#[inline]
fn lanes(block: &[u8; 64]) -> impl Iterator<Item = u8x16> + '_ {
    block.chunks_exact(16).map(|chunk| {
        let mut lanes = [0u8; 16];
        lanes.copy_from_slice(chunk);
        u8x16::new(lanes)
    })
}

/// Bit `i` says whether byte `i` of the lane is an ASCII word byte (never a non-ASCII one:
/// those fall outside every range).
#[inline]
fn word_bits(v: u8x16) -> u64 {
    let splat = u8x16::splat;
    // Lanes that are not a letter, not a digit: all ones.
    let not_alpha = ((v | splat(0x20)) - splat(b'a'))
        .min(splat(26))
        .simd_eq(splat(26));
    let not_digit = (v - splat(b'0')).min(splat(10)).simd_eq(splat(10));
    let word = !(not_alpha & not_digit) | v.simd_eq(splat(b'_'));
    u64::from(word.to_bitmask())
}

/// Bit `i` says whether byte `i` of an all-ASCII 64-byte block is a word character; `None`
/// when the block has a non-ASCII byte. Sixteen bytes per step (SSE2 on x86-64, NEON on
/// Arm, plain code elsewhere).
#[inline]
pub(super) fn block_word_mask(block: &[u8; 64]) -> Option<u64> {
    let mut mask = 0u64;
    let mut high = 0u32;
    for (k, v) in lanes(block).enumerate() {
        high |= v.to_bitmask();
        mask |= word_bits(v) << (16 * k);
    }
    (high == 0).then_some(mask)
}

/// The masks of a block with non-ASCII bytes.
pub(super) struct BlockMasks {
    /// ASCII word bytes.
    pub(super) word: u64,
    /// Non-ASCII bytes.
    pub(super) high: u64,
    /// Non-ASCII bytes that start a character (not `10xxxxxx` continuation bytes).
    pub(super) lead: u64,
}

/// Every mask of a 64-byte block, whatever its bytes.
pub(super) fn block_masks(block: &[u8; 64]) -> BlockMasks {
    let splat = u8x16::splat;
    let mut masks = BlockMasks {
        word: 0,
        high: 0,
        lead: 0,
    };
    for (k, v) in lanes(block).enumerate() {
        let shift = 16 * k;
        let high = u64::from(v.to_bitmask()) << shift;
        let continuation = u64::from((v & splat(0xc0)).simd_eq(splat(0x80)).to_bitmask()) << shift;
        masks.word |= word_bits(v) << shift;
        masks.high |= high;
        masks.lead |= high & !continuation;
    }
    masks
}

/// The first 8 bytes (zero-padded past the end: a zero byte ends a word like the end of the
/// text does).
#[inline]
pub(super) fn window(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    match bytes.get(..8) {
        Some(eight) => buf.copy_from_slice(eight),
        None => {
            for (slot, &b) in buf.iter_mut().zip(bytes) {
                *slot = b;
            }
        }
    }
    u64::from_le_bytes(buf)
}

/// The length of the ASCII word at the start of `rest`, or `None` when that cannot be told
/// from ASCII alone: the word starts with a non-ASCII byte, or is followed by one (which may
/// be a letter of the same word).
pub(super) fn ascii_word_len(rest: &[u8]) -> Option<usize> {
    let len = rest
        .iter()
        .position(|&b| !is_ascii_word_byte(b))
        .unwrap_or(rest.len());
    if len == 0 || rest.get(len).is_some_and(|&b| b >= 0x80) {
        return None;
    }
    Some(len)
}

/// The length (at most 8) of the ASCII word that a window starts with, or `None` when that
/// cannot be told from ASCII alone (as for [`ascii_word_len`]). Branch-free but for the end.
#[inline]
fn window_word_len(w: u64) -> Option<usize> {
    let high = gather(w & HIGH);
    let word = ascii_word_mask(w & !HIGH) & !high;
    let len = word.trailing_ones() as usize;
    if len == 8 {
        return Some(8);
    }
    if len == 0 || high & (1 << len) != 0 {
        return None;
    }
    Some(len)
}

/// Bits per table: 32 Ki, 4 KiB each, so a few hundred phrases set about 1.5% of them.
const BITS: usize = 1 << 15;

/// A bit set indexed by a 15-bit hash.
#[derive(Clone)]
struct Table(Box<[u64; BITS / 64]>);

impl Table {
    fn new() -> Table {
        Table(Box::new([0; BITS / 64]))
    }

    #[inline]
    fn hash(key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - 15)) as usize
    }

    fn insert(&mut self, key: u64) {
        let h = Table::hash(key);
        self.0[(h / 64) % (BITS / 64)] |= 1 << (h % 64);
    }

    #[inline]
    fn contains(&self, key: u64) -> bool {
        let h = Table::hash(key);
        self.0[(h / 64) % (BITS / 64)] & (1 << (h % 64)) != 0
    }
}

/// Per word length (0 to 64), the mask that keeps its first bytes (at most 8) of a window.
static KEEP: [u64; 65] = {
    let mut keep = [u64::MAX; 65];
    let mut len = 0;
    while len < 8 {
        keep[len] = (1 << (8 * len)) - 1;
        len += 1;
    }
    keep
};

/// The first `len` bytes (at most 8) of a window, case folded; the other bytes zero.
#[inline]
fn word_key(w: u64, len: usize) -> u64 {
    (w | FOLD) & KEEP[len.min(64)]
}

/// A first word's key combined with the bytes after the word.
#[inline]
fn rest_key(key: u64, rest: u64) -> u64 {
    key.rotate_left(29) ^ (rest | FOLD)
}

const LOW4: u64 = 0xffff_ffff;

/// Which first words begin a phrase, and what may follow them.
#[derive(Clone)]
pub(super) struct StartFilter {
    /// Every phrase's first word (its first 8 bytes when longer).
    first: Table,
    /// The first words of phrases with fewer than 4 bytes after the first word: for these the
    /// first word alone decides.
    short: Table,
    /// First word and the 4 bytes after it, for phrases with 4 to 7 bytes after it.
    rest4: Table,
    /// First word and the 8 bytes after it, for phrases with 8 or more bytes after it.
    rest8: Table,
}

impl StartFilter {
    /// Builds the filter for lower-cased phrases that all start with a word character.
    pub(super) fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> StartFilter {
        let mut filter = StartFilter {
            first: Table::new(),
            short: Table::new(),
            rest4: Table::new(),
            rest8: Table::new(),
        };
        for p in patterns {
            let bytes = p.as_bytes();
            let len = bytes.iter().take_while(|&&b| is_ascii_word_byte(b)).count();
            let next = p.get(len..).and_then(|r| r.chars().next());
            let non_ascii_next = next.is_some_and(|c| !c.is_ascii());
            let letter_next = non_ascii_next && next.is_some_and(super::is_word_char);
            // A phrase starting with non-ASCII, or whose first word goes on with a non-ASCII
            // letter within the window, needs no entry: text where it matches is uncertain
            // and passes. (A non-ASCII character that is not a letter, like `’`, ends the
            // first word as an ASCII one would.)
            if len == 0 || letter_next && len < 8 {
                continue;
            }
            let key = word_key(window(bytes), len);
            filter.first.insert(key);
            if non_ascii_next && len >= 8 {
                // The window is all ASCII word bytes, and the text side does not look further
                // for words this long.
                filter.short.insert(key);
                continue;
            }
            let rest = &bytes[len..];
            if rest.len() >= 8 {
                filter.rest8.insert(rest_key(key, window(rest)));
            } else if rest.len() >= 4 {
                filter.rest4.insert(rest_key(key, window(rest) & LOW4));
            } else {
                filter.short.insert(key);
            }
        }
        filter
    }

    /// Whether a phrase may begin at the start of `text`, whose first word is `len` bytes
    /// long (or at least 8 when `len` is 8), all ASCII and followed by an ASCII byte or the
    /// end; `w` is its window.
    #[inline]
    pub(super) fn may_start_word(&self, text: &[u8], w: u64, len: usize) -> bool {
        self.first_word(w, len)
            .is_some_and(|key| self.may_continue(text, len, len < 8, key))
    }

    /// The first question alone: the first word's key when that word begins some phrase.
    #[inline]
    pub(super) fn first_word(&self, w: u64, len: usize) -> Option<u64> {
        let key = word_key(w, len);
        self.first.contains(key).then_some(key)
    }

    /// The second question, for a first word that begins some phrase (`key` from
    /// [`first_word`](Self::first_word)): can what follows it in `text` continue one? `len`
    /// is the word's length when `exact`, else only known to be at least 8.
    #[cold]
    pub(super) fn may_continue(&self, text: &[u8], len: usize, exact: bool, key: u64) -> bool {
        if self.short.contains(key) {
            return true;
        }
        let after = if exact {
            len
        } else {
            match ascii_word_len(text) {
                Some(exact) => exact,
                None => return true,
            }
        };
        let rest = window(text.get(after..).unwrap_or_default());
        self.rest8.contains(rest_key(key, rest)) || self.rest4.contains(rest_key(key, rest & LOW4))
    }

    /// Whether a phrase may begin at the start of `text`, a word start.
    #[inline]
    pub(super) fn may_start(&self, text: &[u8]) -> bool {
        let w = window(text);
        match window_word_len(w) {
            Some(len) => self.may_start_word(text, w, len),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ASCII bytes that are word characters, the slow way.
    fn is_word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }

    #[test]
    fn word_mask_matches_the_definition_for_every_byte() {
        for b in 0u8..128 {
            for pos in 0..8 {
                let mut lanes = [b' '; 8];
                lanes[pos] = b;
                let mask = ascii_word_mask(u64::from_le_bytes(lanes));
                let expected = u8::from(is_word(b)) << pos;
                assert_eq!(mask, expected, "byte {b:#x} at {pos}");
            }
        }
        assert_eq!(
            ascii_word_mask(u64::from_le_bytes(*b"a_Z9 .-x")),
            0b1000_1111
        );
    }

    #[test]
    fn block_mask_agrees_with_the_byte_mask() {
        let text = *b"Hello, world_1 -- the quick brown fox; jumps over 2 lazy dogs!!";
        let mut block = [0u8; 64];
        block[..text.len()].copy_from_slice(&text);
        let Some(mask) = block_word_mask(&block) else {
            unreachable!("ASCII block");
        };
        for (i, &b) in block.iter().enumerate() {
            assert_eq!(mask >> i & 1 == 1, is_word(b), "byte {i}");
        }
        block[40] = 0xc3;
        assert_eq!(block_word_mask(&block), None);
    }

    #[test]
    fn block_masks_agree_with_the_bytes() {
        let text = "naïve café — 日本 word_1 ’s end";
        let mut block = [b' '; 64];
        block[..text.len()].copy_from_slice(text.as_bytes());
        let masks = block_masks(&block);
        for (i, &b) in block.iter().enumerate() {
            assert_eq!(masks.word >> i & 1 == 1, is_word(b), "word byte {i}");
            assert_eq!(masks.high >> i & 1 == 1, b >= 0x80, "high byte {i}");
            let lead = b >= 0xc0;
            assert_eq!(masks.lead >> i & 1 == 1, lead, "lead byte {i}");
        }
    }

    #[test]
    fn window_word_len_agrees_with_the_byte_loop() {
        for text in [
            "you are",
            "you",
            "x",
            "something long",
            "café au lait",
            "été",
            "ok—fine",
            "ok, fine—",
            "a_b1 c",
            "12345678",
            "1234567é",
            "_",
            "",
        ] {
            let bytes = text.as_bytes();
            let expected = ascii_word_len(bytes).map(|n| n.min(8));
            let expected = match ascii_word_len(&bytes[..bytes.len().min(8)]) {
                // Within the first 8 bytes a word that runs to byte 8 has length 8 whatever
                // follows.
                Some(8) => Some(8),
                _ => expected,
            };
            assert_eq!(window_word_len(window(bytes)), expected, "{text}");
        }
    }

    #[test]
    fn word_len_knows_when_it_cannot_tell() {
        let len = |s: &str| ascii_word_len(s.as_bytes());
        assert_eq!(len("you are"), Some(3));
        assert_eq!(len("you"), Some(3));
        assert_eq!(len("x"), Some(1));
        assert_eq!(len("something long"), Some(9));
        assert_eq!(len("café au lait"), None);
        assert_eq!(len("été"), None);
        assert_eq!(len("ok—fine"), None);
        assert_eq!(len("ok, fine—"), Some(2));
    }

    #[test]
    fn filter_passes_every_phrase_and_case() {
        let phrases = [
            "ass",
            "you are now",
            "from now on",
            "x",
            "a.b",
            "naïve",
            "developer mode enabled",
            "go die",
            "ipsumdolorß",
        ];
        let filter = StartFilter::new(phrases);
        let passes = |text: &str| filter.may_start(text.as_bytes());
        for text in [
            "ass!",
            "ASS",
            "You Are Now free",
            "FROM NOW ON,",
            "x",
            "a.b",
            "naïve",
            "developer mode enabled",
            "Go die",
            "IPSUMDOLORß!",
        ] {
            assert!(passes(text), "{text}");
        }
        // Same first word, different next bytes: the second question says no.
        assert!(!passes("from the start"));
        assert!(!passes("developer customer"));
        assert!(!passes("go home"));
        assert!(!passes("developer mode off"));
        // A longer word is another word.
        assert!(!passes("assess"));
    }
}
