//! The opening handshake: HTTP/1.1 Upgrade messages (RFC 6455 section 4).
//!
//! Parsing and serializing of [`Request`] and [`Response`] with [`HttpLimits`], validation of
//! a client's request (server side) and of a server's response (client side), and the
//! `Sec-WebSocket-Key` / `Sec-WebSocket-Accept` pair. The state machine in
//! [`Protocol`](crate::Protocol) drives these; they are public for tools and tests.

mod accept_key;
mod headers;
mod request;
mod response;

pub use accept_key::{accept_key, base64_decode, base64_encode, generate_key};
pub use headers::Headers;
pub use request::{HttpVersion, Request};
pub use response::Response;

use crate::error::HandshakeError;
use crate::limits::HttpLimits;

/// Validate a client's opening handshake (RFC 6455 section 4.2.1) and return its
/// `Sec-WebSocket-Key`.
///
/// Checks, in this order: method GET (405), `Upgrade: websocket` and a `Connection` header
/// with the `upgrade` token, case-insensitively (426), exactly one `Sec-WebSocket-Key` that is
/// the base64 encoding of 16 bytes (400), and exactly one `Sec-WebSocket-Version: 13` (426).
/// Before all of them, the HTTP version: a WebSocket handshake needs HTTP/1.1 (505 for
/// HTTP/1.0; [`Request::parse`] rejects versions other than 1.0 and 1.1 with 505 too).
///
/// # Errors
///
/// The first check that fails, as a [`HandshakeError`] whose `status()` is the HTTP status.
pub fn check_request(request: &Request) -> Result<&str, HandshakeError> {
    if request.version != HttpVersion::Http11 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    if request.method != "GET" {
        return Err(HandshakeError::InvalidMethod(request.method.clone()));
    }
    let headers = &request.headers;
    check_upgrade(headers)?;

    let key = single_value(headers, "Sec-WebSocket-Key").map_err(|value| match value {
        None => HandshakeError::MissingHeader("Sec-WebSocket-Key"),
        Some(value) => HandshakeError::InvalidHeader {
            header: "Sec-WebSocket-Key",
            value,
        },
    })?;
    if base64_decode(key).is_none_or(|nonce| nonce.len() != 16) {
        return Err(HandshakeError::InvalidHeader {
            header: "Sec-WebSocket-Key",
            value: key.to_owned(),
        });
    }

    match single_value(headers, "Sec-WebSocket-Version") {
        Ok("13") => Ok(key),
        Ok(other) => Err(HandshakeError::UnsupportedVersion(Some(other.to_owned()))),
        Err(value) => Err(HandshakeError::UnsupportedVersion(value)),
    }
}

/// Validate a client's WebSocket handshake over HTTP/2 (RFC 8441 section 4): an extended
/// CONNECT with `:protocol = websocket` and exactly one `Sec-WebSocket-Version: 13`. It has no
/// `Sec-WebSocket-Key`, `Upgrade` or `Connection` (HTTP/2 forbids connection-specific fields).
///
/// Checks, in this order: HTTP/2 (505 otherwise: an HTTP/1.1 request goes to
/// [`check_request`]), method CONNECT (405), the `:protocol` (400), the version (426).
///
/// # Errors
///
/// The first check that fails, as a [`HandshakeError`] whose `status()` is the HTTP status.
pub fn check_extended_connect(request: &Request) -> Result<(), HandshakeError> {
    if request.version != HttpVersion::Http2 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    if request.method != "CONNECT" {
        return Err(HandshakeError::InvalidMethod(request.method.clone()));
    }
    match request.protocol.as_deref() {
        Some(protocol) if protocol.eq_ignore_ascii_case("websocket") => {}
        Some(protocol) => {
            return Err(HandshakeError::InvalidHeader {
                header: ":protocol",
                value: protocol.to_owned(),
            });
        }
        None => return Err(HandshakeError::MissingHeader(":protocol")),
    }
    match single_value(&request.headers, "Sec-WebSocket-Version") {
        Ok("13") => Ok(()),
        Ok(other) => Err(HandshakeError::UnsupportedVersion(Some(other.to_owned()))),
        Err(value) => Err(HandshakeError::UnsupportedVersion(value)),
    }
}

/// Validate a server's response to a request sent with `key` (RFC 6455 section 4.2.2 and
/// 4.1): status 101, `Upgrade: websocket`, `Connection: upgrade`, and the matching
/// `Sec-WebSocket-Accept`.
///
/// # Errors
///
/// [`HandshakeError::InvalidStatus`] for any status but 101, then the first header that fails.
pub fn check_response(response: &Response, key: &str) -> Result<(), HandshakeError> {
    if response.status != 101 {
        return Err(HandshakeError::InvalidStatus {
            status: response.status,
        });
    }
    let headers = &response.headers;
    check_upgrade(headers)?;
    match single_value(headers, "Sec-WebSocket-Accept") {
        Ok(accept) if accept == accept_key(key) => Ok(()),
        Ok(_) | Err(Some(_)) => Err(HandshakeError::InvalidAccept),
        Err(None) => Err(HandshakeError::MissingHeader("Sec-WebSocket-Accept")),
    }
}

/// The comma-separated tokens of all the header fields called `name` (RFC 7230 section 7:
/// `#token` lists), trimmed, with empty elements skipped.
pub fn header_tokens<'a>(
    headers: &'a Headers,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Check `Upgrade: websocket` and `Connection: upgrade` (token lists, case-insensitive).
fn check_upgrade(headers: &Headers) -> Result<(), HandshakeError> {
    for (header, token) in [("Upgrade", "websocket"), ("Connection", "upgrade")] {
        if !header_tokens(headers, header).any(|t| t.eq_ignore_ascii_case(token)) {
            return Err(HandshakeError::InvalidUpgrade {
                header,
                value: joined_values(headers, header),
            });
        }
    }
    Ok(())
}

/// The value of the only field called `name`; else `Err(None)` if there is none, or
/// `Err(Some(all values joined with ", "))` if there are several.
fn single_value<'a>(headers: &'a Headers, name: &'a str) -> Result<&'a str, Option<String>> {
    let mut values = headers.get_all(name);
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value),
        (None, _) => Err(None),
        (Some(_), Some(_)) => Err(joined_values(headers, name)),
    }
}

/// All the values of the fields called `name`, joined with `", "`; `None` if there are none.
fn joined_values(headers: &Headers, name: &str) -> Option<String> {
    let values: Vec<&str> = headers.get_all(name).collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Check the HTTP head at the start of `buf` against `limits`, whether it is complete or not,
/// and find where it ends.
///
/// Lines end with LF, optionally preceded by CR (as `httparse` accepts). Empty lines before the
/// start line are skipped (RFC 9112 section 2.2, as `httparse` does); the next empty line ends
/// the head. A line's length excludes its line ending. Every line in `buf` is checked, including
/// an unfinished last line, so a line that never ends is rejected as soon as it is too long.
/// Scanning stops past `max_head_size`, so the work is bounded whatever the size of `buf`.
///
/// Returns the length of the head, including the empty line, or `None` if it is incomplete.
fn scan_head(buf: &[u8], limits: &HttpLimits) -> Result<Option<usize>, HandshakeError> {
    let too_large = HandshakeError::MessageTooLarge {
        limit: limits.max_head_size,
    };
    let line_too_long = HandshakeError::LineTooLong {
        limit: limits.max_line_length,
    };
    // The longest acceptable line, with its CR LF.
    let window = limits.max_line_length.saturating_add(2);
    let mut pos = 0;
    let mut lines = 0usize;
    loop {
        if pos > limits.max_head_size {
            return Err(too_large);
        }
        let rest = &buf[pos..];
        let scanned = &rest[..rest.len().min(window)];
        let Some(end) = scanned.iter().position(|&b| b == b'\n') else {
            // An unfinished line: what is there may still end with CR.
            let line = scanned.strip_suffix(b"\r").unwrap_or(scanned);
            if rest.len() > scanned.len() || line.len() > limits.max_line_length {
                return Err(line_too_long);
            }
            if buf.len() > limits.max_head_size {
                return Err(too_large);
            }
            return Ok(None);
        };
        let line = &scanned[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > limits.max_line_length {
            return Err(line_too_long);
        }
        pos += end + 1;
        if line.is_empty() {
            if lines == 0 {
                continue;
            }
            if pos > limits.max_head_size {
                return Err(too_large);
            }
            return Ok(Some(pos));
        }
        lines += 1;
        // The start line and `max_headers` header lines.
        if lines - 1 > limits.max_headers {
            return Err(HandshakeError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
    }
}

/// Map an `httparse` error.
fn parse_error(error: httparse::Error, limits: &HttpLimits) -> HandshakeError {
    match error {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders {
            limit: limits.max_headers,
        },
        httparse::Error::Version => HandshakeError::UnsupportedHttpVersion,
        httparse::Error::HeaderName => HandshakeError::MalformedHttp("invalid header name"),
        httparse::Error::HeaderValue => HandshakeError::MalformedHttp("invalid header value"),
        httparse::Error::NewLine => HandshakeError::MalformedHttp("invalid line ending"),
        httparse::Error::Status => HandshakeError::MalformedHttp("invalid status line"),
        httparse::Error::Token => HandshakeError::MalformedHttp("invalid request line"),
    }
}

/// Copy parsed header fields, whose values must be UTF-8.
fn collect_headers(parsed: &[httparse::Header<'_>]) -> Result<Headers, HandshakeError> {
    let text_len = parsed.iter().map(|h| h.name.len() + h.value.len()).sum();
    let mut headers = Headers::with_capacity(parsed.len(), text_len);
    for header in parsed {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| HandshakeError::MalformedHttp("header value is not UTF-8"))?;
        headers.append(header.name, value);
    }
    Ok(headers)
}

/// Append the header fields and the empty line that ends the head.
fn write_headers(headers: &Headers, out: &mut Vec<u8>) {
    for (name, value) in headers.iter() {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's handshake of RFC 6455 section 1.3 (and 1.2).
    pub(super) const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    /// The server's handshake of RFC 6455 section 1.3 (and 1.2).
    pub(super) const RFC_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\
        \r\n";

    /// The key of [`RFC_REQUEST`].
    pub(super) const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn rfc_request() -> Request {
        let (request, used) = Request::parse(RFC_REQUEST, &HttpLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, RFC_REQUEST.len());
        request
    }

    fn rfc_response() -> Response {
        let (response, used) = Response::parse(RFC_RESPONSE, &HttpLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, RFC_RESPONSE.len());
        response
    }

    /// `check_request` on the RFC request with `edit` applied.
    fn check_edited(edit: impl FnOnce(&mut Request)) -> HandshakeError {
        let mut request = rfc_request();
        edit(&mut request);
        check_request(&request).unwrap_err()
    }

    /// `check_response` on the RFC response with `edit` applied.
    fn check_response_edited(edit: impl FnOnce(&mut Response)) -> HandshakeError {
        let mut response = rfc_response();
        edit(&mut response);
        check_response(&response, RFC_KEY).unwrap_err()
    }

    // ===== check_request =====

    #[test]
    fn rfc_request_passes() {
        let request = rfc_request();
        assert_eq!(check_request(&request), Ok(RFC_KEY));
    }

    #[test]
    fn key_is_borrowed_from_the_request() {
        let request = rfc_request();
        let key = check_request(&request).unwrap();
        let field = request.headers.get("sec-websocket-key").unwrap();
        assert!(std::ptr::eq(key, field));
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive() {
        let mut request = Request::get("/");
        request.headers.append("host", "example.com");
        request.headers.append("UPGRADE", "WebSocket");
        request.headers.append("connection", "keep-alive, UPGRADE");
        request.headers.append("sec-websocket-key", RFC_KEY);
        request.headers.append("SEC-WEBSOCKET-VERSION", "13");
        assert_eq!(check_request(&request), Ok(RFC_KEY));
    }

    #[test]
    fn tokens_may_be_spread_over_fields() {
        let mut request = rfc_request();
        request.headers.remove("Upgrade");
        request.headers.append("Upgrade", "h2c");
        request.headers.append("Upgrade", " , websocket ");
        request.headers.remove("Connection");
        request.headers.append("Connection", "keep-alive");
        request.headers.append("Connection", "Upgrade");
        assert_eq!(check_request(&request), Ok(RFC_KEY));
    }

    #[test]
    fn method_post_is_rejected() {
        let err = check_edited(|r| r.method = "POST".into());
        assert_eq!(err, HandshakeError::InvalidMethod("POST".into()));
        assert_eq!(err.status(), 405);
    }

    #[test]
    fn method_is_case_sensitive() {
        let err = check_edited(|r| r.method = "get".into());
        assert_eq!(err, HandshakeError::InvalidMethod("get".into()));
        assert_eq!(err.status(), 405);
    }

    #[test]
    fn missing_upgrade_is_rejected() {
        let err = check_edited(|r| r.headers.remove("Upgrade"));
        assert_eq!(
            err,
            HandshakeError::InvalidUpgrade {
                header: "Upgrade",
                value: None
            }
        );
        assert_eq!(err.status(), 426);
    }

    #[test]
    fn wrong_upgrade_is_rejected() {
        let err = check_edited(|r| r.headers.insert("Upgrade", "h2c, websocket2"));
        assert_eq!(
            err,
            HandshakeError::InvalidUpgrade {
                header: "Upgrade",
                value: Some("h2c, websocket2".into())
            }
        );
        assert_eq!(err.status(), 426);
    }

    #[test]
    fn missing_connection_is_rejected() {
        let err = check_edited(|r| r.headers.remove("Connection"));
        assert_eq!(
            err,
            HandshakeError::InvalidUpgrade {
                header: "Connection",
                value: None
            }
        );
        assert_eq!(err.status(), 426);
    }

    #[test]
    fn connection_without_upgrade_is_rejected() {
        let err = check_edited(|r| {
            r.headers.insert("Connection", "keep-alive");
            r.headers.append("Connection", "close");
        });
        assert_eq!(
            err,
            HandshakeError::InvalidUpgrade {
                header: "Connection",
                value: Some("keep-alive, close".into())
            }
        );
        assert_eq!(err.status(), 426);
    }

    #[test]
    fn missing_key_is_rejected() {
        let err = check_edited(|r| r.headers.remove("Sec-WebSocket-Key"));
        assert_eq!(err, HandshakeError::MissingHeader("Sec-WebSocket-Key"));
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn key_that_is_not_base64_is_rejected() {
        let err = check_edited(|r| {
            r.headers
                .insert("Sec-WebSocket-Key", "not base64 at all!!!!!!!")
        });
        assert_eq!(
            err,
            HandshakeError::InvalidHeader {
                header: "Sec-WebSocket-Key",
                value: "not base64 at all!!!!!!!".into()
            }
        );
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn key_of_the_wrong_length_is_rejected() {
        // 15 and 17 bytes, and an empty value.
        for key in [
            "AAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAA=",
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
        ] {
            let err = check_edited(|r| r.headers.insert("Sec-WebSocket-Key", key));
            assert_eq!(
                err,
                HandshakeError::InvalidHeader {
                    header: "Sec-WebSocket-Key",
                    value: key.into()
                },
                "{key:?}"
            );
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn duplicate_key_is_rejected() {
        let err = check_edited(|r| r.headers.append("Sec-WebSocket-Key", RFC_KEY));
        assert_eq!(
            err,
            HandshakeError::InvalidHeader {
                header: "Sec-WebSocket-Key",
                value: format!("{RFC_KEY}, {RFC_KEY}")
            }
        );
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn missing_version_is_rejected() {
        let err = check_edited(|r| r.headers.remove("Sec-WebSocket-Version"));
        assert_eq!(err, HandshakeError::UnsupportedVersion(None));
        assert_eq!(err.status(), 426);
    }

    #[test]
    fn other_version_is_rejected() {
        for version in ["8", "14", "13, 8", " 13", ""] {
            let err = check_edited(|r| r.headers.insert("Sec-WebSocket-Version", version));
            assert_eq!(
                err,
                HandshakeError::UnsupportedVersion(Some(version.into()))
            );
            assert_eq!(err.status(), 426);
        }
    }

    #[test]
    fn duplicate_version_is_rejected() {
        let err = check_edited(|r| r.headers.append("Sec-WebSocket-Version", "13"));
        assert_eq!(
            err,
            HandshakeError::UnsupportedVersion(Some("13, 13".into()))
        );
        assert_eq!(err.status(), 426);
    }

    #[test]
    fn checks_run_in_order() {
        let mut request = Request::new("PUT", "/");
        request.version = HttpVersion::Http10;
        let mut errors = Vec::new();
        let fixes: [fn(&mut Request); 6] = [
            |r| r.version = HttpVersion::Http11,
            |r| r.method = "GET".into(),
            |r| r.headers.append("Upgrade", "websocket"),
            |r| r.headers.append("Connection", "Upgrade"),
            |r| r.headers.append("Sec-WebSocket-Key", RFC_KEY),
            |r| r.headers.append("Sec-WebSocket-Version", "13"),
        ];
        for fix in fixes {
            errors.push(check_request(&request).unwrap_err());
            fix(&mut request);
        }
        assert_eq!(
            errors,
            [
                HandshakeError::UnsupportedHttpVersion,
                HandshakeError::InvalidMethod("PUT".into()),
                HandshakeError::InvalidUpgrade {
                    header: "Upgrade",
                    value: None
                },
                HandshakeError::InvalidUpgrade {
                    header: "Connection",
                    value: None
                },
                HandshakeError::MissingHeader("Sec-WebSocket-Key"),
                HandshakeError::UnsupportedVersion(None),
            ]
        );
        assert_eq!(check_request(&request), Ok(RFC_KEY));
    }

    // ===== check_response =====

    #[test]
    fn rfc_response_passes() {
        assert_eq!(check_response(&rfc_response(), RFC_KEY), Ok(()));
    }

    #[test]
    fn response_for_another_key_fails() {
        assert_eq!(
            check_response(&rfc_response(), "x3JJHMbDL1EzLkh9GBhXDw=="),
            Err(HandshakeError::InvalidAccept)
        );
    }

    #[test]
    fn response_status_other_than_101_is_rejected() {
        for status in [200, 400, 403, 426, 503] {
            let err = check_response_edited(|r| r.status = status);
            assert_eq!(err, HandshakeError::InvalidStatus { status });
            assert_eq!(err.status(), status);
        }
    }

    #[test]
    fn response_without_upgrade_is_rejected() {
        let err = check_response_edited(|r| r.headers.insert("Upgrade", "h2c"));
        assert_eq!(
            err,
            HandshakeError::InvalidUpgrade {
                header: "Upgrade",
                value: Some("h2c".into())
            }
        );
        assert_eq!(err.status(), 426);
    }

    #[test]
    fn response_without_connection_is_rejected() {
        let err = check_response_edited(|r| r.headers.remove("Connection"));
        assert_eq!(
            err,
            HandshakeError::InvalidUpgrade {
                header: "Connection",
                value: None
            }
        );
        assert_eq!(err.status(), 426);
    }

    #[test]
    fn response_without_accept_is_rejected() {
        let err = check_response_edited(|r| r.headers.remove("Sec-WebSocket-Accept"));
        assert_eq!(err, HandshakeError::MissingHeader("Sec-WebSocket-Accept"));
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn response_with_wrong_accept_is_rejected() {
        for accept in [
            "S3PPLMBITXAQ9KYGZZHZRBK+XOO=",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo",
            RFC_KEY,
            "",
        ] {
            let err = check_response_edited(|r| r.headers.insert("Sec-WebSocket-Accept", accept));
            assert_eq!(err, HandshakeError::InvalidAccept, "{accept:?}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn response_with_duplicate_accept_is_rejected() {
        let err = check_response_edited(|r| {
            r.headers
                .append("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        });
        assert_eq!(err, HandshakeError::InvalidAccept);
    }

    // ===== header_tokens =====

    #[test]
    fn header_tokens_splits_trims_and_skips_empty() {
        let mut headers = Headers::new();
        headers.append("Connection", " keep-alive ,, Upgrade,");
        headers.append("Other", "x");
        headers.append("connection", "");
        headers.append("CONNECTION", "close");
        let tokens: Vec<&str> = header_tokens(&headers, "Connection").collect();
        assert_eq!(tokens, ["keep-alive", "Upgrade", "close"]);
        assert_eq!(header_tokens(&headers, "Upgrade").count(), 0);
    }

    // ===== scan_head =====

    #[test]
    fn scan_head_finds_the_end_of_the_head() {
        let limits = HttpLimits::default();
        let mut buf = RFC_REQUEST.to_vec();
        buf.extend_from_slice(b"trailing bytes");
        assert_eq!(scan_head(&buf, &limits), Ok(Some(RFC_REQUEST.len())));
        assert_eq!(scan_head(b"\r\n\nA\nB\n\nC", &limits), Ok(Some(8)));
        assert_eq!(scan_head(b"", &limits), Ok(None));
        assert_eq!(scan_head(b"\r\n\r\n", &limits), Ok(None));
    }

    #[test]
    fn scan_head_line_length_is_inclusive() {
        let limits = HttpLimits {
            max_line_length: 10,
            ..HttpLimits::default()
        };
        let too_long = Err(HandshakeError::LineTooLong { limit: 10 });
        assert_eq!(scan_head(b"0123456789\r\n\r\n", &limits), Ok(Some(14)));
        assert_eq!(scan_head(b"0123456789\n\n", &limits), Ok(Some(12)));
        assert_eq!(scan_head(b"0123456789\r", &limits), Ok(None));
        assert_eq!(scan_head(b"0123456789", &limits), Ok(None));
        assert_eq!(scan_head(b"01234567890", &limits), too_long);
        assert_eq!(scan_head(b"0123456789\r\r", &limits), too_long);
        assert_eq!(scan_head(b"01234567890\r\n\r\n", &limits), too_long);
        assert_eq!(scan_head(b"a\r\n0123456789X\r\n", &limits), too_long);
        assert_eq!(scan_head(b"a\r\n0123456789X", &limits), too_long);
    }

    #[test]
    fn scan_head_counts_header_lines() {
        let limits = HttpLimits {
            max_headers: 2,
            ..HttpLimits::default()
        };
        assert_eq!(scan_head(b"S\r\nA\r\nB\r\n\r\n", &limits), Ok(Some(11)));
        assert_eq!(
            scan_head(b"S\r\nA\r\nB\r\nC\r\n", &limits),
            Err(HandshakeError::TooManyHeaders { limit: 2 })
        );
    }

    #[test]
    fn scan_head_bounds_the_head() {
        let limits = HttpLimits {
            max_head_size: 10,
            ..HttpLimits::default()
        };
        let too_large = Err(HandshakeError::MessageTooLarge { limit: 10 });
        // 10 bytes: complete, or incomplete, at the limit.
        assert_eq!(scan_head(b"S\r\nAAA\r\n\r\n", &limits), Ok(Some(10)));
        assert_eq!(scan_head(b"S\r\nAAAAA\r\n", &limits), Ok(None));
        assert_eq!(scan_head(b"S\r\nAAAAAA\r", &limits), Ok(None));
        // 11 bytes.
        assert_eq!(scan_head(b"S\r\nAAAA\r\n\r\n", &limits), too_large);
        assert_eq!(scan_head(b"S\r\nAAAAAA\r\n", &limits), too_large);
        assert_eq!(scan_head(b"S\r\nAAAAAAA\r", &limits), too_large);
        assert_eq!(scan_head(b"S\r\nAAAAAAAA", &limits), too_large);
        assert_eq!(scan_head(&[b'\n'; 11], &limits), too_large);
    }

    // ===== end to end =====

    #[test]
    fn client_and_server_agree() {
        let limits = HttpLimits::default();
        let key = generate_key();

        let mut request = Request::get("/socket?x=1");
        request.headers.append("Host", "example.com");
        request.headers.append("Upgrade", "websocket");
        request.headers.append("Connection", "Upgrade");
        request.headers.append("Sec-WebSocket-Key", key.as_str());
        request.headers.append("Sec-WebSocket-Version", "13");
        let mut wire = Vec::new();
        request.write(&mut wire);

        let (received, used) = Request::parse(&wire, &limits).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(received, request);
        let server_key = check_request(&received).unwrap();
        assert_eq!(server_key, key);

        let mut response = Response::new(101, "");
        response.headers.append("Upgrade", "websocket");
        response.headers.append("Connection", "Upgrade");
        response
            .headers
            .append("Sec-WebSocket-Accept", accept_key(server_key));
        let mut wire = Vec::new();
        response.write(&mut wire);

        let (received, used) = Response::parse(&wire, &limits).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(received, response);
        assert_eq!(check_response(&received, &key), Ok(()));
    }

    #[test]
    fn rejection_fails_the_client_check() {
        let error = HandshakeError::UnsupportedVersion(Some("8".into()));
        let mut response = Response::new(error.status(), error.to_string());
        response.headers.append("Sec-WebSocket-Version", "13");
        let mut wire = Vec::new();
        response.write(&mut wire);
        let (received, _) = Response::parse(&wire, &HttpLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(received.body, error.to_string().as_bytes());
        assert_eq!(
            check_response(&received, RFC_KEY),
            Err(HandshakeError::InvalidStatus { status: 426 })
        );
    }
}
