//! The client's opening handshake request.

use super::Headers;
use crate::error::HandshakeError;
use crate::limits::HttpLimits;

/// An HTTP/1.x request: the opening handshake a client sends, or any other request a server
/// receives (a health check, a page) that it may answer itself
/// ([`Protocol::reject`](crate::Protocol::reject)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The method, `GET` for a valid handshake.
    pub method: String,
    /// The HTTP version of the request line: HTTP/1.1 for a valid handshake.
    pub version: HttpVersion,
    /// The request target, e.g. `/chat?room=1`.
    pub path: String,
    /// The header fields.
    pub headers: Headers,
    /// HTTP/2's `:protocol` pseudo-header, which makes a CONNECT an extended CONNECT (RFC 8441
    /// section 4): `websocket` for a WebSocket handshake over HTTP/2. `None` in HTTP/1.x.
    pub protocol: Option<String>,
}

/// The HTTP version of a [`Request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/1.0: parsed, so that a server can answer it (a load balancer's health check), but
    /// no WebSocket handshake (505).
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2: a request another HTTP layer (hyper) received and handed over; its WebSocket
    /// handshake is an extended CONNECT (RFC 8441). [`Request::parse`] never makes it.
    Http2,
}

impl HttpVersion {
    /// The version as it appears in a request line, e.g. `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }
}

impl std::fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Request {
    /// A `GET` request for `path` with no headers, in HTTP/1.1.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new("GET", path)
    }

    /// A request with `method` for `path`, with no headers, in HTTP/1.1.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            version: HttpVersion::Http11,
            path: path.into(),
            headers: Headers::new(),
            protocol: None,
        }
    }

    /// Whether this asks for a WebSocket (`Upgrade: websocket` in HTTP/1.1, an extended CONNECT
    /// with `:protocol = websocket` in HTTP/2), as opposed to a plain HTTP request that a server
    /// may answer itself (a page, a health check).
    pub fn is_websocket_upgrade(&self) -> bool {
        if self.version == HttpVersion::Http2 {
            return self.method == "CONNECT"
                && self
                    .protocol
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case("websocket"));
        }
        super::header_tokens(&self.headers, "Upgrade").any(|t| t.eq_ignore_ascii_case("websocket"))
    }

    /// The status of the answer that opens a WebSocket for this request: 101 (Switching
    /// Protocols) in HTTP/1.1, 200 in HTTP/2 (RFC 8441 section 5: a 2xx to the CONNECT).
    pub fn opening_status(&self) -> u16 {
        if self.version == HttpVersion::Http2 {
            200
        } else {
            101
        }
    }

    /// Parse a request head from the start of `buf`.
    ///
    /// Returns `Ok(None)` while the head is incomplete (and within the limits), else the request
    /// and the number of bytes it used. A request's body is not read: a handshake has none.
    ///
    /// # Errors
    ///
    /// Malformed HTTP (400), a version other than HTTP/1.0 and HTTP/1.1 (505), and limits
    /// (431). HTTP/1.0 parses ([`version`](Self::version) says so): a server may answer it
    /// itself, and rejects it as a handshake ([`check_request`](super::check_request)).
    pub fn parse(buf: &[u8], limits: &HttpLimits) -> Result<Option<(Self, usize)>, HandshakeError> {
        let head_len = super::scan_head(buf, limits)?;
        // An incomplete head is at most `max_head_size` bytes: parse it anyway to reject
        // garbage before the peer finishes sending it.
        let head = &buf[..head_len.unwrap_or(buf.len())];
        let mut parsed_headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut parsed = httparse::Request::new(&mut parsed_headers);
        let status = parsed
            .parse(head)
            .map_err(|e| super::parse_error(e, limits))?;
        let version = match parsed.version {
            Some(0) => HttpVersion::Http10,
            // Not known yet: the request line is incomplete.
            Some(1) | None => HttpVersion::Http11,
            Some(_) => return Err(HandshakeError::UnsupportedHttpVersion),
        };
        let head_len = match (head_len, status) {
            (None, _) => return Ok(None),
            (Some(len), httparse::Status::Complete(parsed_len)) if parsed_len == len => len,
            (Some(_), _) => return Err(HandshakeError::MalformedHttp("invalid request head")),
        };
        let (Some(method), Some(path)) = (parsed.method, parsed.path) else {
            return Err(HandshakeError::MalformedHttp("invalid request line"));
        };
        let request = Self {
            method: method.to_owned(),
            version,
            path: path.to_owned(),
            headers: super::collect_headers(parsed.headers)?,
            protocol: None,
        };
        Ok(Some((request, head_len)))
    }

    /// Append the serialized request head to `out`.
    ///
    /// The fields are written as they are: they must not contain CR or LF.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.version.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
        super::write_headers(&self.headers, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::tests::{RFC_KEY, RFC_REQUEST};

    fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HandshakeError> {
        Request::parse(buf, &HttpLimits::default())
    }

    fn parse_err(buf: &[u8]) -> HandshakeError {
        parse(buf).unwrap_err()
    }

    /// A request with `n` extra header fields, complete or not.
    fn with_headers(n: usize, complete: bool) -> Vec<u8> {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..n {
            buf.extend_from_slice(format!("X-Header-{i}: {i}\r\n").as_bytes());
        }
        if complete {
            buf.extend_from_slice(b"\r\n");
        }
        buf
    }

    #[test]
    fn parses_the_rfc_example() {
        let (request, used) = parse(RFC_REQUEST).unwrap().unwrap();
        assert_eq!(used, RFC_REQUEST.len());
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/chat");
        let headers: Vec<(&str, &str)> = request.headers.iter().collect();
        assert_eq!(
            headers,
            [
                ("Host", "server.example.com"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", RFC_KEY),
                ("Origin", "http://example.com"),
                ("Sec-WebSocket-Protocol", "chat, superchat"),
                ("Sec-WebSocket-Version", "13"),
            ]
        );
    }

    #[test]
    fn writes_the_rfc_example_byte_exact() {
        let (request, _) = parse(RFC_REQUEST).unwrap().unwrap();
        let mut out = Vec::new();
        request.write(&mut out);
        assert_eq!(out, RFC_REQUEST);
    }

    #[test]
    fn write_appends() {
        let mut request = Request::get("/a b?c");
        request.headers.append("Host", "h");
        let mut out = b"prefix".to_vec();
        request.write(&mut out);
        assert_eq!(out, b"prefixGET /a b?c HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut out = Vec::new();
        Request::get("/").write(&mut out);
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn write_parse_round_trip() {
        let mut request = Request::get("/path/with%20escapes?q=1&r=%E2%82%AC#frag");
        request.headers.append("Host", "example.com:8080");
        request.headers.append("X-Empty", "");
        request.headers.append("X-Dup", "1");
        request.headers.append("x-dup", "2");
        request.headers.append("X-Utf8", "caf\u{e9} \u{1f600}");
        request.headers.append("X-Spaces", "a  b\tc");
        let mut wire = Vec::new();
        request.write(&mut wire);
        let (parsed, used) = parse(&wire).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(parsed, request);

        let mut post = Request::get("/");
        post.method = "POST".into();
        let mut wire = Vec::new();
        post.write(&mut wire);
        assert_eq!(parse(&wire).unwrap().unwrap().0, post);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for len in 0..RFC_REQUEST.len() {
            assert_eq!(
                parse(&RFC_REQUEST[..len]),
                Ok(None),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn following_bytes_are_not_consumed() {
        let mut buf = RFC_REQUEST.to_vec();
        buf.extend_from_slice(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
        let (_, used) = parse(&buf).unwrap().unwrap();
        assert_eq!(used, RFC_REQUEST.len());
    }

    #[test]
    fn header_values_are_trimmed() {
        let (request, _) = parse(b"GET / HTTP/1.1\r\nA:   x y \t\r\nB:\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(request.headers.get("a"), Some("x y"));
        assert_eq!(request.headers.get("b"), Some(""));
    }

    #[test]
    fn bare_lf_and_leading_empty_lines_are_accepted() {
        let buf = b"\r\n\nGET / HTTP/1.1\nHost: h\n\n";
        let (request, used) = parse(buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(request.headers.get("Host"), Some("h"));
    }

    #[test]
    fn method_is_kept_as_parsed() {
        let (request, _) = parse(b"OPTIONS * HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(request.method, "OPTIONS");
        assert_eq!(request.path, "*");
    }

    #[test]
    fn http_1_0_parses_and_is_no_handshake() {
        let wire = b"GET /chat HTTP/1.0\r\nHost: h\r\n\r\n";
        let (request, used) = parse(wire).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(request.version, HttpVersion::Http10);
        assert_eq!(request.method, "GET");
        let err = crate::handshake::check_request(&request).unwrap_err();
        assert_eq!(err, HandshakeError::UnsupportedHttpVersion);
        assert_eq!(err.status(), 505);
        // Written back as it came.
        let mut out = Vec::new();
        request.write(&mut out);
        assert_eq!(out, wire);
        assert_eq!(parse(b"GET /chat HTTP/1.0\r\nHost: h\r\n"), Ok(None));
    }

    #[test]
    fn other_versions_are_rejected() {
        for line in [
            &b"GET / HTTP/2.0\r\n\r\n"[..],
            b"GET / HTTP/1.2\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
        ] {
            let err = parse_err(line);
            assert_eq!(err, HandshakeError::UnsupportedHttpVersion, "{line:?}");
            assert_eq!(err.status(), 505);
        }
    }

    #[test]
    fn malformed_request_lines_are_rejected() {
        for buf in [
            &b"GET\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /\r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
        ] {
            let err = parse_err(buf);
            assert!(
                matches!(
                    err,
                    HandshakeError::MalformedHttp(_) | HandshakeError::UnsupportedHttpVersion
                ),
                "{buf:?}: {err:?}"
            );
            assert!(matches!(err.status(), 400 | 505));
        }
        let err = parse_err(b"GET\r\n\r\n");
        assert!(matches!(err, HandshakeError::MalformedHttp(_)), "{err:?}");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for buf in [
            &b"GET / HTTP/1.1\r\nNo colon\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
            b"GET / HTTP/1.1\r\nName : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\0c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\r\n\r\n",
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
    fn malformed_header_is_rejected_before_the_head_ends() {
        let err = parse_err(b"GET / HTTP/1.1\r\nBad Name: x\r\n");
        assert!(matches!(err, HandshakeError::MalformedHttp(_)), "{err:?}");
    }

    #[test]
    fn non_utf8_header_value_is_rejected() {
        let err = parse_err(b"GET / HTTP/1.1\r\nX-Latin1: caf\xe9\r\n\r\n");
        assert_eq!(
            err,
            HandshakeError::MalformedHttp("header value is not UTF-8")
        );
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn long_header_line_is_rejected_before_the_head_ends() {
        let limits = HttpLimits::default();
        let mut buf = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        buf.resize(b"GET / HTTP/1.1\r\n".len() + 9000, b'a');
        let err = parse_err(&buf);
        assert_eq!(
            err,
            HandshakeError::LineTooLong {
                limit: limits.max_line_length
            }
        );
        assert_eq!(err.status(), 431);
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_err(&buf), err);
    }

    #[test]
    fn long_request_line_is_rejected() {
        let mut buf = b"GET /".to_vec();
        buf.resize(9000, b'a');
        let err = parse_err(&buf);
        assert_eq!(err, HandshakeError::LineTooLong { limit: 8192 });
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn line_at_the_limit_is_accepted() {
        let prefix = b"GET / HTTP/1.1\r\nX: ";
        let mut buf = prefix.to_vec();
        buf.resize(b"GET / HTTP/1.1\r\n".len() + 8192, b'a');
        buf.extend_from_slice(b"\r\n\r\n");
        let (request, used) = parse(&buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(request.headers.get("X").map(str::len), Some(8192 - 3));
    }

    #[test]
    fn too_many_headers_are_rejected() {
        let err = parse_err(&with_headers(129, true));
        assert_eq!(err, HandshakeError::TooManyHeaders { limit: 128 });
        assert_eq!(err.status(), 431);
        // Also before the head ends.
        assert_eq!(parse_err(&with_headers(129, false)), err);
    }

    #[test]
    fn headers_at_the_limit_are_accepted() {
        let buf = with_headers(128, true);
        let (request, used) = parse(&buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(request.headers.len(), 128);
        assert_eq!(request.headers.get("X-Header-127"), Some("127"));
    }

    #[test]
    fn headers_limit_is_configurable() {
        let limits = HttpLimits {
            max_headers: 3,
            ..HttpLimits::default()
        };
        assert!(
            Request::parse(&with_headers(3, true), &limits)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            Request::parse(&with_headers(4, true), &limits),
            Err(HandshakeError::TooManyHeaders { limit: 3 })
        );
        let none = HttpLimits {
            max_headers: 0,
            ..HttpLimits::default()
        };
        assert!(
            Request::parse(&with_headers(0, true), &none)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            Request::parse(&with_headers(1, true), &none),
            Err(HandshakeError::TooManyHeaders { limit: 0 })
        );
    }

    #[test]
    fn oversized_head_is_rejected_before_it_ends() {
        let limits = HttpLimits::default();
        // 100 header lines of 1000 bytes: within the line and count limits, past 64 KiB.
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        let mut i = 0;
        while buf.len() <= limits.max_head_size {
            let mut line = format!("X-{i}: ").into_bytes();
            line.resize(998, b'v');
            line.extend_from_slice(b"\r\n");
            buf.extend_from_slice(&line);
            i += 1;
        }
        assert!(i <= limits.max_headers);
        let err = parse_err(&buf);
        assert_eq!(
            err,
            HandshakeError::MessageTooLarge {
                limit: limits.max_head_size
            }
        );
        assert_eq!(err.status(), 431);
        // And once it is complete.
        buf.extend_from_slice(b"\r\n");
        assert_eq!(parse_err(&buf), err);
    }

    #[test]
    fn head_at_the_size_limit_is_accepted() {
        let limits = HttpLimits {
            max_head_size: 40,
            ..HttpLimits::default()
        };
        let buf = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert!(buf.len() <= 40);
        let mut exact = buf[..buf.len() - 4].to_vec();
        exact.resize(40 - 4, b'm');
        exact.extend_from_slice(b"\r\n\r\n");
        assert_eq!(exact.len(), 40);
        assert!(Request::parse(&exact, &limits).unwrap().is_some());
        exact.insert(20, b'm');
        assert_eq!(
            Request::parse(&exact, &limits),
            Err(HandshakeError::MessageTooLarge { limit: 40 })
        );
    }

    #[test]
    fn endless_empty_lines_are_bounded() {
        let limits = HttpLimits::default();
        let buf = b"\r\n".repeat(limits.max_head_size);
        assert_eq!(
            parse(&buf),
            Err(HandshakeError::MessageTooLarge {
                limit: limits.max_head_size
            })
        );
    }

    #[test]
    fn websocket_upgrades_are_told_from_plain_requests() {
        let mut request = Request::get("/");
        assert!(!request.is_websocket_upgrade());
        request.headers.append("Upgrade", "h2c, WebSocket");
        assert!(request.is_websocket_upgrade());
    }
}
