//! Just enough HTTP/1.1 to find where each request starts in a client's byte stream.
//!
//! The proxy relays bytes untouched; [`RequestTracker`] watches them go by so that, in
//! `Http503Burst` mode, it knows when the *next* request begins on a connection (a fresh one or
//! a kept-alive one) and can answer it with a canned `503 Slow Down` instead of relaying it.
//! It reads request heads and `Content-Length`; after a chunked body (which S3 clients rarely
//! send) it loses track and relays the rest of that connection untouched.

/// Where a client's stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    /// Between requests: the next byte starts a request.
    Boundary,
    /// Inside a request head; the bytes seen so far of it.
    Head(Vec<u8>),
    /// Inside a body, with this many bytes to go.
    Body(u64),
    /// Lost track (chunked body, garbage): never intercept on this connection again.
    Opaque,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub content_length: u64,
    pub chunked: bool,
    pub expect_continue: bool,
}

/// Limits a head's size: beyond it the stream is not HTTP we understand.
const MAX_HEAD: usize = 64 * 1024;

/// Parses a complete head (up to and including the blank line).
pub(crate) fn parse_head(head: &[u8]) -> Head {
    let text = String::from_utf8_lossy(head);
    let mut out = Head {
        content_length: 0,
        chunked: false,
        expect_continue: false,
    };
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_ascii_lowercase();
        match name.as_str() {
            "content-length" => out.content_length = value.parse().unwrap_or(0),
            "transfer-encoding" => out.chunked = value.contains("chunked"),
            "expect" => out.expect_continue = value.contains("100-continue"),
            _ => {}
        }
    }
    out
}

/// Index just past the `\r\n\r\n` ending a head, if present.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Follows request boundaries in one direction of one connection.
#[derive(Debug)]
pub(crate) struct RequestTracker {
    pub position: Position,
}

impl RequestTracker {
    pub fn new() -> Self {
        Self {
            position: Position::Boundary,
        }
    }

    pub fn at_boundary(&self) -> bool {
        self.position == Position::Boundary
    }

    /// Feeds relayed bytes (possibly several requests' worth).
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.position {
                Position::Opaque => return,
                Position::Boundary => self.position = Position::Head(Vec::new()),
                Position::Head(buf) => {
                    // Only the tail of the previous bytes can hold part of the terminator.
                    let keep_from = buf.len().saturating_sub(3);
                    buf.extend_from_slice(bytes);
                    match head_end(&buf[keep_from..]).map(|i| i + keep_from) {
                        Some(end) => {
                            let head = parse_head(&buf[..end]);
                            let consumed_here = end - (buf.len() - bytes.len());
                            bytes = &bytes[consumed_here..];
                            self.position = if head.chunked {
                                Position::Opaque
                            } else if head.content_length > 0 {
                                Position::Body(head.content_length)
                            } else {
                                Position::Boundary
                            };
                        }
                        None => {
                            if buf.len() > MAX_HEAD {
                                self.position = Position::Opaque;
                            }
                            return;
                        }
                    }
                }
                Position::Body(left) => {
                    let take = (*left).min(bytes.len() as u64);
                    *left -= take;
                    bytes = &bytes[take as usize..];
                    if *left == 0 {
                        self.position = Position::Boundary;
                    }
                }
            }
        }
    }
}

/// The canned answer: S3's throttling error, and the connection closes after it.
pub(crate) fn slow_down_response() -> Vec<u8> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                <Message>Please reduce your request rate.</Message></Error>\n";
    format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_two_requests_in_one_read() {
        let mut t = RequestTracker::new();
        t.feed(b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n");
        assert!(t.at_boundary());
    }

    #[test]
    fn tracks_split_head_and_body() {
        let mut t = RequestTracker::new();
        t.feed(b"PUT /a HTTP/1.1\r\ncontent-length: 5\r");
        assert!(matches!(t.position, Position::Head(_)));
        t.feed(b"\n\r\nab");
        assert_eq!(t.position, Position::Body(3));
        t.feed(b"cde");
        assert!(t.at_boundary());
    }

    #[test]
    fn chunked_is_opaque() {
        let mut t = RequestTracker::new();
        t.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        assert_eq!(t.position, Position::Opaque);
    }
}
