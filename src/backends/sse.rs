//! Reading a model server's Server-Sent Events answer (`stream: true`),
//! event by event, with every buffer bounded.
//!
//! The format is small (lines of `field: value`, a blank line ends an
//! event; `data` lines join with `\n`, `:` starts a comment, lines end in
//! `\n`, `\r\n` or `\r`), but the peer is a server that may be misconfigured
//! or hostile: a line or event longer than [`MAX_EVENT_BYTES`] ends the
//! stream with [`BackendError::BadAnswer`] instead of growing a buffer.
//! `next_event` is cancel-safe (its one await is reading the next body
//! chunk), so a caller may race it against a timer.

use super::client::BackendResponse;
use super::error::BackendError;
use bytes::{Buf, BytesMut};

/// Longest event (its data lines together) or line accepted.
pub(crate) const MAX_EVENT_BYTES: usize = 1 << 20;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SseEvent {
    /// The `event:` field (Anthropic names its events; OpenAI sends none).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Events from bytes as they arrive.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: BytesMut,
    current: SseEvent,
    has_data: bool,
    /// A `\r` ended the last line: a `\n` right after belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// Takes more bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > MAX_EVENT_BYTES {
            // Only a line without its end can be this long here.
            if !self.buf.iter().any(|&b| b == b'\n' || b == b'\r') {
                return Err(too_long());
            }
        }
        Ok(())
    }

    /// The next complete event in what was pushed so far.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, BackendError> {
        loop {
            if self.after_cr {
                match self.buf.first() {
                    None => return Ok(None), // the `\n` may still come
                    Some(&b'\n') => self.buf.advance(1),
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let Some(end) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if self.buf.len() > MAX_EVENT_BYTES {
                    return Err(too_long());
                }
                return Ok(None);
            };
            self.after_cr = self.buf[end] == b'\r';
            let line = self.buf.split_to(end + 1);
            let line = &line[..end];
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    return Ok(Some(std::mem::take(&mut self.current)));
                }
                self.current = SseEvent::default();
                continue;
            }
            self.field(line)?;
        }
    }

    fn field(&mut self, line: &[u8]) -> Result<(), BackendError> {
        if line[0] == b':' {
            return Ok(()); // a comment (keep-alive)
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = std::str::from_utf8(value)
            .map_err(|_| BackendError::BadAnswer("a streamed event is not UTF-8".into()))?;
        match name {
            b"data" => {
                if self.current.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    return Err(too_long());
                }
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            b"event" => self.current.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields mean nothing here
        }
        Ok(())
    }
}

fn too_long() -> BackendError {
    BackendError::BadAnswer(format!(
        "a streamed event is longer than {MAX_EVENT_BYTES} bytes"
    ))
}

/// The events of a streamed HTTP answer.
#[derive(Debug)]
pub(crate) struct SseStream {
    response: BackendResponse,
    parser: SseParser,
}

impl SseStream {
    pub fn new(response: BackendResponse) -> Self {
        Self {
            response,
            parser: SseParser::default(),
        }
    }

    /// The next event, or `None` at the end of the answer. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<Option<SseEvent>, BackendError> {
        loop {
            if let Some(event) = self.parser.next_event()? {
                return Ok(Some(event));
            }
            let chunk = self.response.chunk().await?;
            match chunk {
                Some(bytes) => self.parser.push(&bytes)?,
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[&[u8]]) -> Result<Vec<SseEvent>, BackendError> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for piece in input {
            p.push(piece)?;
            while let Some(e) = p.next_event()? {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn data(d: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: d.into(),
        }
    }

    #[test]
    fn events_split_anywhere_and_every_line_end_parse_the_same() {
        let whole: &[u8] = b": keep-alive\ndata: {\"a\":1}\n\nevent: message_stop\ndata: x\ndata:y\n\ndata: [DONE]\n\n";
        let expected = vec![
            data("{\"a\":1}"),
            SseEvent {
                event: Some("message_stop".into()),
                data: "x\ny".into(),
            },
            data("[DONE]"),
        ];
        assert_eq!(events(&[whole]).unwrap(), expected);
        for cut in 1..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(events(&[a, b]).unwrap(), expected, "cut at {cut}");
        }
        let crlf = String::from_utf8(whole.to_vec())
            .unwrap()
            .replace('\n', "\r\n");
        assert_eq!(events(&[crlf.as_bytes()]).unwrap(), expected);
        let bytes = crlf.as_bytes();
        for cut in 1..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(events(&[a, b]).unwrap(), expected, "crlf cut at {cut}");
        }
        let cr = String::from_utf8(whole.to_vec())
            .unwrap()
            .replace('\n', "\r");
        assert_eq!(events(&[cr.as_bytes()]).unwrap(), expected);
    }

    #[test]
    fn an_endless_line_or_event_is_refused_not_buffered() {
        let line = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert!(matches!(events(&[&line]), Err(BackendError::BadAnswer(_))));
        let chunk = format!("data: {}\n", "b".repeat(1000));
        let many: Vec<&[u8]> = std::iter::repeat_n(chunk.as_bytes(), 1100).collect();
        assert!(matches!(events(&many), Err(BackendError::BadAnswer(_))));
        assert!(matches!(
            events(&[b"data: \xff\n\n"]),
            Err(BackendError::BadAnswer(_))
        ));
    }
}
