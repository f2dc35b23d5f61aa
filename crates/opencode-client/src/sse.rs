//! A decoder for server-sent events (the `text/event-stream` format of the WHATWG HTML standard, §9.2).
//!
//! Bytes arrive in chunks cut anywhere; the decoder splits them into lines (`\n`, `\r\n` or `\r`), gathers
//! `data:` fields (several join with `\n`), remembers `id:` and `event:`, skips comments (lines starting with
//! `:`) and fields it does not know, and hands out a message at each blank line that follows data.

/// One message of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseMessage {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` fields, joined with `\n`.
    pub data: String,
    /// The last `id:` seen, if any.
    pub id: Option<String>,
}

/// Decodes a byte stream into [`SseMessage`]s.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// A `\r` ended the last line: a `\n` right after it belongs to the same line break.
    after_carriage_return: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the messages it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseMessage> {
        let mut messages = Vec::new();
        for &byte in chunk {
            match byte {
                b'\n' if self.after_carriage_return => self.after_carriage_return = false,
                b'\n' | b'\r' => {
                    self.after_carriage_return = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(message) = self.line_done(&line) {
                        messages.push(message);
                    }
                }
                _ => {
                    self.after_carriage_return = false;
                    self.line.push(byte);
                }
            }
        }
        messages
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseMessage> {
        if line.is_empty() {
            if !self.has_data {
                self.event = None;
                return None;
            }
            self.has_data = false;
            return Some(SseMessage {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
                id: self.id.clone(),
            });
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<SseMessage> {
        let mut decoder = SseDecoder::new();
        input
            .chunks(piece)
            .flat_map(|chunk| decoder.push(chunk))
            .collect()
    }

    #[test]
    fn messages_survive_any_chunking_and_line_ending() {
        for input in [
            &b"data: {\"a\":1}\n\ndata: two\ndata: lines\n\n"[..],
            &b"data: {\"a\":1}\r\n\r\ndata: two\r\ndata: lines\r\n\r\n"[..],
            &b"data: {\"a\":1}\r\rdata: two\rdata: lines\r\r"[..],
        ] {
            for piece in 1..input.len() {
                let messages = decode_in_pieces(input, piece);
                let data: Vec<&str> = messages.iter().map(|m| m.data.as_str()).collect();
                assert_eq!(data, vec!["{\"a\":1}", "two\nlines"], "piece size {piece}");
            }
        }
    }

    #[test]
    fn comments_fields_and_ids() {
        let mut decoder = SseDecoder::new();
        let messages =
            decoder.push(b": keep-alive\n\nid: 7\nevent: ping\nretry: 10\ndata\n\ndata:x\n\n");
        assert_eq!(
            messages,
            vec![
                SseMessage {
                    event: Some("ping".into()),
                    data: String::new(),
                    id: Some("7".into())
                },
                SseMessage {
                    event: None,
                    data: "x".into(),
                    id: Some("7".into())
                },
            ]
        );
    }

    #[test]
    fn an_unfinished_message_is_not_handed_out() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"data: half").is_empty());
        assert!(decoder.push(b" more\n").is_empty());
        assert_eq!(decoder.push(b"\n")[0].data, "half more");
    }
}
