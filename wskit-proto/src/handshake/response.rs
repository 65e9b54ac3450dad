//! The server's opening handshake response.

use bytes::Bytes;

use super::Headers;
use crate::error::HandshakeError;
use crate::limits::HttpLimits;

/// An HTTP/1.1 response: `101 Switching Protocols`, or a rejection with a body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
    /// The body (empty for 101).
    pub body: Bytes,
}

impl Response {
    /// A response with `status`, its standard reason phrase, and `body` as `text/plain`, with
    /// `Content-Length` and `Connection: close` (a rejected handshake closes the connection).
    ///
    /// A 101 gets no header fields at all (the caller adds `Upgrade`, `Connection` and
    /// `Sec-WebSocket-Accept`). Other statuses that have no body (1xx, 204, 304) get only
    /// `Connection: close`. In both cases `body` is dropped.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        let mut headers = Headers::new();
        let mut body = body.into();
        if status == 101 {
            body = Bytes::new();
        } else if !has_body(status) {
            body = Bytes::new();
            headers.append("Connection", "close");
        } else {
            headers.append("Content-Type", "text/plain; charset=utf-8");
            headers.append("Content-Length", body.len().to_string());
            headers.append("Connection", "close");
        }
        Self {
            status,
            reason: reason_phrase(status).to_owned(),
            headers,
            body,
        }
    }

    /// Parse a response from the start of `buf`.
    ///
    /// Returns `Ok(None)` while incomplete, else the response and the bytes it used. A 101 has
    /// no body; other statuses read a `Content-Length` body (up to `max_body_size`).
    ///
    /// # Errors
    ///
    /// Malformed HTTP, limits.
    ///
    /// The bytes after a 101's head are WebSocket frames: they are not consumed. A 1xx, 204 or
    /// 304 has no body; a response without `Content-Length` is taken to have an empty body.
    /// `Transfer-Encoding` (chunked bodies) is not supported.
    pub fn parse(buf: &[u8], limits: &HttpLimits) -> Result<Option<(Self, usize)>, HandshakeError> {
        let head_len = super::scan_head(buf, limits)?;
        // An incomplete head is at most `max_head_size` bytes: parse it anyway to reject
        // garbage (or HTTP/1.0) before the peer finishes sending it.
        let head = &buf[..head_len.unwrap_or(buf.len())];
        let mut parsed_headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut parsed = httparse::Response::new(&mut parsed_headers);
        let status = parsed
            .parse(head)
            .map_err(|e| super::parse_error(e, limits))?;
        if parsed.version.is_some_and(|v| v != 1) {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        let head_len = match (head_len, status) {
            (None, _) => return Ok(None),
            (Some(len), httparse::Status::Complete(parsed_len)) if parsed_len == len => len,
            (Some(_), _) => return Err(HandshakeError::MalformedHttp("invalid response head")),
        };
        let (Some(status), Some(reason)) = (parsed.code, parsed.reason) else {
            return Err(HandshakeError::MalformedHttp("invalid status line"));
        };
        // RFC 9110 section 15: the first digit is the class, 1 to 5.
        if !(100..=599).contains(&status) {
            return Err(HandshakeError::MalformedHttp("status code out of range"));
        }
        let reason = if reason.is_empty() {
            // httparse hides a reason phrase with obs-text: accept it if it is UTF-8.
            raw_reason(head)?
        } else {
            reason
        };
        let headers = super::collect_headers(parsed.headers)?;

        let body_len = if has_body(status) {
            body_length(&headers, limits)?
        } else {
            0
        };
        let Some(body) = buf[head_len..].get(..body_len) else {
            return Ok(None);
        };
        let response = Self {
            status,
            reason: reason.to_owned(),
            headers,
            body: Bytes::copy_from_slice(body),
        };
        Ok(Some((response, head_len + body_len)))
    }

    /// Append the serialized response (head and body) to `out`.
    ///
    /// The fields are written as they are: they must not contain CR or LF, and the headers
    /// must describe the body (as those of [`Response::new`] do).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        super::write_headers(&self.headers, out);
        out.extend_from_slice(&self.body);
    }
}

/// Whether a response with `status` may have a body (RFC 9112 section 6.3).
fn has_body(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 304)
}

/// The standard reason phrase of `status`, `"Unknown"` for statuses not listed.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The reason phrase of the status line of a complete response head, as raw bytes.
///
/// The status line is `HTTP/1.1 SP 3DIGIT [SP reason]` (httparse has checked it), after
/// optional empty lines.
fn raw_reason(head: &[u8]) -> Result<&str, HandshakeError> {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let line = &head[start..];
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let reason = line.get("HTTP/1.1 200 ".len()..).unwrap_or_default();
    std::str::from_utf8(reason)
        .map_err(|_| HandshakeError::MalformedHttp("reason phrase is not UTF-8"))
}

/// The length of the body from `Content-Length` (RFC 9112 section 6.3).
///
/// Several fields, or a comma-separated list, are accepted if they all hold the same value.
fn body_length(headers: &Headers, limits: &HttpLimits) -> Result<usize, HandshakeError> {
    if let Some(coding) = headers.get("Transfer-Encoding") {
        return Err(HandshakeError::MalformedHttp(
            if coding.to_ascii_lowercase().contains("chunked") {
                "chunked responses are not supported"
            } else {
                "transfer codings are not supported"
            },
        ));
    }
    let mut length = None;
    for value in headers
        .get_all("Content-Length")
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HandshakeError::MalformedHttp("invalid Content-Length"));
        }
        // Leading zeros are allowed; a value past u64 is too large for any limit anyway.
        let digits = value.trim_start_matches('0');
        let n = if digits.is_empty() {
            0
        } else {
            digits.parse::<u64>().unwrap_or(u64::MAX)
        };
        if length.is_some_and(|l| l != n) {
            return Err(HandshakeError::MalformedHttp("conflicting Content-Length"));
        }
        length = Some(n);
    }
    let length = length.unwrap_or(0);
    match usize::try_from(length) {
        Ok(length) if length <= limits.max_body_size => Ok(length),
        _ => Err(HandshakeError::MessageTooLarge {
            limit: limits.max_body_size,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::tests::RFC_RESPONSE;

    fn parse(buf: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        Response::parse(buf, &HttpLimits::default())
    }

    fn parse_err(buf: &[u8]) -> HandshakeError {
        parse(buf).unwrap_err()
    }

    fn written(response: &Response) -> Vec<u8> {
        let mut out = Vec::new();
        response.write(&mut out);
        out
    }

    const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Length: 9\r\n\
        Connection: close\r\n\
        \r\n\
        not found";

    #[test]
    fn parses_the_rfc_example() {
        let (response, used) = parse(RFC_RESPONSE).unwrap().unwrap();
        assert_eq!(used, RFC_RESPONSE.len());
        assert_eq!(response.status, 101);
        assert_eq!(response.reason, "Switching Protocols");
        assert!(response.body.is_empty());
        let headers: Vec<(&str, &str)> = response.headers.iter().collect();
        assert_eq!(
            headers,
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                ("Sec-WebSocket-Protocol", "chat"),
            ]
        );
        assert_eq!(written(&response), RFC_RESPONSE);
    }

    #[test]
    fn frames_after_101_are_not_consumed() {
        let mut buf = RFC_RESPONSE.to_vec();
        // An unmasked text frame "Hello" (RFC 6455 section 5.7), then the start of another.
        buf.extend_from_slice(b"\x81\x05Hello\x89");
        let (response, used) = parse(&buf).unwrap().unwrap();
        assert_eq!(used, RFC_RESPONSE.len());
        assert_eq!(&buf[used..], b"\x81\x05Hello\x89");
        assert!(response.body.is_empty());
    }

    #[test]
    fn content_length_is_ignored_for_101() {
        let buf = b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 5\r\n\r\n\x81\x05Hello";
        let (response, used) = parse(buf).unwrap().unwrap();
        assert_eq!(used, buf.len() - 7);
        assert!(response.body.is_empty());
    }

    #[test]
    fn every_prefix_of_the_rfc_example_is_incomplete() {
        for len in 0..RFC_RESPONSE.len() {
            assert_eq!(
                parse(&RFC_RESPONSE[..len]),
                Ok(None),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn body_is_read_across_calls() {
        // Every split of the response into what has arrived so far.
        for len in 0..NOT_FOUND.len() {
            assert_eq!(parse(&NOT_FOUND[..len]), Ok(None), "prefix of {len} bytes");
        }
        let mut buf = NOT_FOUND.to_vec();
        buf.extend_from_slice(b"extra");
        let (response, used) = parse(&buf).unwrap().unwrap();
        assert_eq!(used, NOT_FOUND.len());
        assert_eq!(response.status, 404);
        assert_eq!(response.reason, "Not Found");
        assert_eq!(response.body, "not found");
        assert_eq!(response, Response::new(404, "not found"));
    }

    #[test]
    fn new_builds_a_text_rejection() {
        let response = Response::new(426, "upgrade required");
        assert_eq!(response.status, 426);
        assert_eq!(response.reason, "Upgrade Required");
        assert_eq!(response.body, "upgrade required");
        let headers: Vec<(&str, &str)> = response.headers.iter().collect();
        assert_eq!(
            headers,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", "16"),
                ("Connection", "close"),
            ]
        );
        assert_eq!(
            written(&response),
            b"HTTP/1.1 426 Upgrade Required\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 16\r\n\
              Connection: close\r\n\
              \r\n\
              upgrade required"
        );
    }

    #[test]
    fn new_101_has_no_headers_and_no_body() {
        let response = Response::new(101, "");
        assert_eq!(response.reason, "Switching Protocols");
        assert!(response.headers.is_empty());
        assert!(response.body.is_empty());
        assert!(Response::new(101, "dropped").body.is_empty());
        assert_eq!(
            written(&response),
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
        );
    }

    #[test]
    fn status_codes_outside_100_to_599_are_rejected() {
        // Found by the `response` fuzz target: "050" parsed as 50, which `write` could not
        // round-trip.
        for line in [
            "HTTP/1.1 050 X\r\n\r\n",
            "HTTP/1.1 000 X\r\n\r\n",
            "HTTP/1.1 600 X\r\n\r\n",
        ] {
            assert_eq!(
                Response::parse(line.as_bytes(), &HttpLimits::default()),
                Err(HandshakeError::MalformedHttp("status code out of range")),
                "{line}"
            );
        }
    }

    #[test]
    fn new_without_body_statuses() {
        for status in [100, 204, 304] {
            let response = Response::new(status, "dropped");
            assert!(response.body.is_empty());
            let headers: Vec<(&str, &str)> = response.headers.iter().collect();
            assert_eq!(headers, [("Connection", "close")]);
        }
    }

    #[test]
    fn reason_phrases() {
        for (status, reason) in [
            (101, "Switching Protocols"),
            (200, "OK"),
            (204, "No Content"),
            (301, "Moved Permanently"),
            (302, "Found"),
            (303, "See Other"),
            (307, "Temporary Redirect"),
            (308, "Permanent Redirect"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (426, "Upgrade Required"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
            (299, "Unknown"),
            (599, "Unknown"),
        ] {
            assert_eq!(Response::new(status, "").reason, reason, "{status}");
        }
    }

    #[test]
    fn write_parse_round_trip() {
        for (status, body) in [
            (400, &b"bad request"[..]),
            (403, b""),
            (500, b"\x00\xff binary \r\n\r\n body"),
            (599, b"unknown status"),
            (204, b""),
            (101, b""),
        ] {
            let mut response = Response::new(status, Bytes::copy_from_slice(body));
            response.headers.append("X-Utf8", "\u{e9}t\u{e9}");
            let mut wire = written(&response);
            let head_and_body = wire.len();
            wire.extend_from_slice(b"next");
            let (parsed, used) = parse(&wire).unwrap().unwrap();
            assert_eq!(used, head_and_body, "{status}");
            assert_eq!(parsed, response, "{status}");
        }
    }

    #[test]
    fn empty_and_utf8_reason_phrases() {
        let (response, _) = parse(b"HTTP/1.1 200\r\n\r\n").unwrap().unwrap();
        assert_eq!((response.status, response.reason.as_str()), (200, ""));
        let (response, _) = parse(b"HTTP/1.1 200 \r\n\r\n").unwrap().unwrap();
        assert_eq!(response.reason, "");
        let (response, _) = parse("HTTP/1.1 403 Interdit \u{e0} vous\r\n\r\n".as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(response.reason, "Interdit \u{e0} vous");
        let (response, _) = parse("\r\nHTTP/1.1 200 d\u{e9}j\u{e0}\r\n\r\n".as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(response.reason, "d\u{e9}j\u{e0}");
    }

    #[test]
    fn non_utf8_reason_is_rejected() {
        let err = parse_err(b"HTTP/1.1 200 caf\xe9\r\n\r\n");
        assert_eq!(
            err,
            HandshakeError::MalformedHttp("reason phrase is not UTF-8")
        );
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn non_utf8_header_value_is_rejected() {
        let err = parse_err(b"HTTP/1.1 101 Switching Protocols\r\nX: \xff\r\n\r\n");
        assert_eq!(
            err,
            HandshakeError::MalformedHttp("header value is not UTF-8")
        );
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn http_1_0_is_rejected() {
        let err = parse_err(b"HTTP/1.0 101 Switching Protocols\r\n\r\n");
        assert_eq!(err, HandshakeError::UnsupportedHttpVersion);
        assert_eq!(err.status(), 505);
        // Before the head ends, too.
        assert_eq!(parse_err(b"HTTP/1.0 200 OK\r\n"), err);
        assert_eq!(parse_err(b"HTTP/2.0 200 OK\r\n\r\n"), err);
    }

    #[test]
    fn malformed_status_lines_are_rejected() {
        for buf in [
            &b"HTTP/1.1 1O1 Switching Protocols\r\n\r\n"[..],
            b"HTTP/1.1 10 Short\r\n\r\n",
            b"HTTP/1.1  101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 1011 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 101 Bad\0Reason\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nNo colon\r\n\r\n",
        ] {
            let err = parse_err(buf);
            assert!(
                matches!(err, HandshakeError::MalformedHttp(_)),
                "{buf:?}: {err:?}"
            );
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn invalid_content_length_is_rejected() {
        for value in ["abc", "-1", "+5", "5 5", "0x10", "", "1.0", "5,", ", 5"] {
            let buf = format!("HTTP/1.1 400 Bad Request\r\nContent-Length: {value}\r\n\r\n");
            let err = parse_err(buf.as_bytes());
            assert_eq!(
                err,
                HandshakeError::MalformedHttp("invalid Content-Length"),
                "{value:?}"
            );
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn conflicting_content_lengths_are_rejected() {
        for buf in [
            &b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"[..],
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3, 4\r\n\r\nabcd",
        ] {
            let err = parse_err(buf);
            assert_eq!(
                err,
                HandshakeError::MalformedHttp("conflicting Content-Length")
            );
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn identical_content_lengths_are_accepted() {
        for buf in [
            &b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc"[..],
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3, 3\r\n\r\nabc",
        ] {
            let (response, used) = parse(buf).unwrap().unwrap();
            assert_eq!(used, buf.len());
            assert_eq!(response.body, "abc");
        }
    }

    #[test]
    fn oversized_body_is_rejected_before_it_arrives() {
        let limits = HttpLimits::default();
        for length in [
            format!("{}", limits.max_body_size + 1),
            "99999999999999999999999999".to_owned(),
        ] {
            let buf =
                format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {length}\r\n\r\n");
            let err = parse_err(buf.as_bytes());
            assert_eq!(
                err,
                HandshakeError::MessageTooLarge {
                    limit: limits.max_body_size
                }
            );
            assert_eq!(err.status(), 431);
        }
    }

    #[test]
    fn body_at_the_size_limit_is_accepted() {
        let limits = HttpLimits {
            max_body_size: 4,
            ..HttpLimits::default()
        };
        let buf = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nabcd";
        let (response, _) = Response::parse(buf, &limits).unwrap().unwrap();
        assert_eq!(response.body, "abcd");
        let buf = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\nabcde";
        assert_eq!(
            Response::parse(buf, &limits),
            Err(HandshakeError::MessageTooLarge { limit: 4 })
        );
    }

    #[test]
    fn chunked_body_is_rejected() {
        let err = parse_err(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        assert_eq!(
            err,
            HandshakeError::MalformedHttp("chunked responses are not supported")
        );
        assert_eq!(err.status(), 400);
        let err = parse_err(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert!(matches!(err, HandshakeError::MalformedHttp(_)), "{err:?}");
    }

    #[test]
    fn missing_content_length_means_no_body() {
        let buf = b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nignored";
        let (response, used) = parse(buf).unwrap().unwrap();
        assert_eq!(used, buf.len() - 7);
        assert!(response.body.is_empty());
    }

    #[test]
    fn statuses_without_body_ignore_content_length() {
        for status in ["100 Continue", "204 No Content", "304 Not Modified"] {
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n");
            let (response, used) = parse(head.as_bytes()).unwrap().unwrap();
            assert_eq!(used, head.len());
            assert!(response.body.is_empty());
        }
    }

    #[test]
    fn long_status_line_is_rejected_before_the_head_ends() {
        let mut buf = b"HTTP/1.1 400 ".to_vec();
        buf.resize(9000, b'x');
        let err = parse_err(&buf);
        assert_eq!(err, HandshakeError::LineTooLong { limit: 8192 });
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn long_header_line_is_rejected_before_the_head_ends() {
        let mut buf = b"HTTP/1.1 101 Switching Protocols\r\nX: ".to_vec();
        buf.resize(9000, b'x');
        assert_eq!(parse_err(&buf), HandshakeError::LineTooLong { limit: 8192 });
    }

    #[test]
    fn too_many_headers_are_rejected() {
        let mut buf = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        for i in 0..129 {
            buf.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        let err = parse_err(&buf);
        assert_eq!(err, HandshakeError::TooManyHeaders { limit: 128 });
        assert_eq!(err.status(), 431);
        buf.extend_from_slice(b"\r\n");
        assert_eq!(parse_err(&buf), err);
    }

    #[test]
    fn oversized_head_is_rejected() {
        let limits = HttpLimits {
            max_head_size: 64,
            ..HttpLimits::default()
        };
        let err = Response::parse(RFC_RESPONSE, &limits).unwrap_err();
        assert_eq!(err, HandshakeError::MessageTooLarge { limit: 64 });
        assert_eq!(err.status(), 431);
        assert_eq!(Response::parse(&RFC_RESPONSE[..65], &limits), Err(err));
        assert_eq!(Response::parse(&RFC_RESPONSE[..64], &limits), Ok(None));
    }
}
