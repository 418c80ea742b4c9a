//! Server-sent events, parsed from bytes cut anywhere.

/// One complete event: its raw bytes (blank line included) and its `data` (lines joined with
/// `\n`), if it has any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) raw: Vec<u8>,
    pub(crate) data: Option<String>,
}

/// Splits a byte stream into events. Lines end with `\n` or `\r\n`; an empty line ends an
/// event; comment lines (`: keep-alive`) and other fields stay in the raw bytes.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    /// Where the next line starts.
    line_start: usize,
    data: Option<String>,
}

impl SseParser {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes so far hold one.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        while let Some(offset) = memchr_newline(&self.buf[self.line_start..]) {
            let end = self.line_start + offset;
            // A line ends with `\n`, `\r\n` or a bare `\r`; after a `\r` at the end of what
            // has arrived, wait for the next byte to know which.
            let next = match self.buf[end] {
                b'\r' => match self.buf.get(end + 1) {
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                    None => return None,
                },
                _ => end + 1,
            };
            let line = &self.buf[self.line_start..end];
            if line.is_empty() {
                let raw: Vec<u8> = self.buf.drain(..next).collect();
                self.line_start = 0;
                return Some(Event {
                    raw,
                    data: self.data.take(),
                });
            }
            self.take_line(line.to_vec());
            self.line_start = next;
        }
        None
    }

    /// What is left when the stream ends: an event without its final blank line, if any.
    pub(crate) fn finish(&mut self) -> Option<Event> {
        if self.buf.is_empty() {
            return None;
        }
        let rest = self.buf[self.line_start..].to_vec();
        let line = strip_cr(&rest);
        if !line.is_empty() {
            self.take_line(line.to_vec());
        }
        let raw = std::mem::take(&mut self.buf);
        self.line_start = 0;
        Some(Event {
            raw,
            data: self.data.take(),
        })
    }

    fn take_line(&mut self, line: Vec<u8>) {
        let Some(value) = line.strip_prefix(b"data:") else {
            return;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let value = String::from_utf8_lossy(value);
        match &mut self.data {
            Some(data) => {
                data.push('\n');
                data.push_str(&value);
            }
            None => self.data = Some(value.into_owned()),
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    memchr::memchr2(b'\n', b'\r', bytes)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere() {
        let input = b": keep-alive\n\ndata: {\"a\":\"\xc3\xa9\"}\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..input.len() {
            let mut p = SseParser::default();
            let mut events = Vec::new();
            p.push(&input[..cut]);
            while let Some(e) = p.next_event() {
                events.push(e);
            }
            p.push(&input[cut..]);
            while let Some(e) = p.next_event() {
                events.push(e);
            }
            assert_eq!(p.finish(), None);
            let data: Vec<_> = events.iter().map(|e| e.data.clone()).collect();
            assert_eq!(
                data,
                vec![
                    None,
                    Some("{\"a\":\"é\"}".to_owned()),
                    Some("[DONE]".to_owned())
                ]
            );
            let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
            assert_eq!(raw, input.to_vec());
        }
    }

    #[test]
    fn bare_carriage_returns_end_lines() {
        let input = b"data: a\r\rdata: b\r\r";
        for cut in 0..input.len() {
            let mut p = SseParser::default();
            let mut data = Vec::new();
            p.push(&input[..cut]);
            while let Some(e) = p.next_event() {
                data.push(e.data);
            }
            p.push(&input[cut..]);
            while let Some(e) = p.next_event() {
                data.push(e.data);
            }
            if let Some(e) = p.finish() {
                data.push(e.data);
            }
            assert_eq!(
                data,
                vec![Some("a".to_owned()), Some("b".to_owned())],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn unterminated_last_event_is_returned_at_the_end() {
        let mut p = SseParser::default();
        p.push(b"data: x");
        assert_eq!(p.next_event(), None);
        assert_eq!(p.finish().and_then(|e| e.data), Some("x".to_owned()));
    }
}
