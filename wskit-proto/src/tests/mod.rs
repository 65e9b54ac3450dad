//! Whole conversations between an in-memory client and server: handshake, messages,
//! fragmentation, compression, control frames, both close directions and every failure path.

mod pair;

use bytes::Bytes;
use proptest::prelude::*;

use self::pair::{Pair, client_frame, server_frame};
use crate::close::{CloseCode, CloseFrame};
use crate::connection::{Config, Event, Fragment, Protocol, State};
use crate::error::{Error, HandshakeError, InvalidState, ProtocolError};
use crate::frame::{OpCode, RSV1, RSV2};
use crate::handshake::{HttpVersion, Request, Response};
use crate::limits::Limits;
use crate::message::Message;
use crate::output::OUT_OF_LINE_MIN;

fn plain() -> Config {
    Config {
        compression: None,
        ..Config::default()
    }
}

fn messages(events: &[Event]) -> Vec<Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn close_event(events: &[Event]) -> Option<CloseFrame> {
    events.iter().find_map(|e| match e {
        Event::Close(frame) => Some(frame.clone()),
        _ => None,
    })
}

/// Assert that the server failed the connection with `code` because of `error`.
#[track_caller]
fn assert_server_failed(pair: &mut Pair, result: Result<(), Error>, error: ProtocolError) {
    let code = CloseCode::from(&error);
    assert_eq!(result, Err(Error::Protocol(error)));
    assert_eq!(pair.server.close_sent().map(|f| f.code), Some(code));
    assert_eq!(pair.server.state(), State::Closing);
    assert!(
        pair.server.should_close_transport(),
        "the server closes the transport after failing"
    );
    // The client sees the close frame with that code.
    pair.drive();
    assert_eq!(close_event(&pair.client_events).map(|f| f.code), Some(code));
    assert_eq!(pair.client.state(), State::Closed);
}

/// Assert that the client failed the connection with `code` because of `error`.
#[track_caller]
fn assert_client_failed(pair: &mut Pair, result: Result<(), Error>, error: ProtocolError) {
    let code = CloseCode::from(&error);
    assert_eq!(result, Err(Error::Protocol(error)));
    assert_eq!(pair.client.close_sent().map(|f| f.code), Some(code));
    assert!(
        pair.client.close_expected(),
        "the client waits for the server to close"
    );
    assert!(!pair.client.should_close_transport());
    pair.drive();
    assert_eq!(close_event(&pair.server_events).map(|f| f.code), Some(code));
}

// ===== Opening handshake (RFC 6455 section 4) =====

#[test]
fn handshake_negotiates_compression_by_default() {
    let pair = Pair::open();
    assert_eq!(pair.client.state(), State::Open);
    assert_eq!(pair.server.state(), State::Open);
    assert!(pair.client.is_compressed());
    assert!(pair.server.is_compressed());
}

#[test]
fn handshake_without_compression() {
    let pair = Pair::open_with(plain(), Config::default());
    assert!(!pair.client.is_compressed() && !pair.server.is_compressed());
    let pair = Pair::open_with(Config::default(), plain());
    assert!(!pair.client.is_compressed() && !pair.server.is_compressed());
}

#[test]
fn handshake_selects_the_servers_preferred_subprotocol() {
    let client = Config {
        subprotocols: vec!["chat".into(), "superchat".into()],
        ..plain()
    };
    let server = Config {
        subprotocols: vec!["superchat".into(), "chat".into()],
        ..plain()
    };
    let pair = Pair::open_with(client, server);
    assert_eq!(pair.server.subprotocol(), Some("superchat"));
    assert_eq!(pair.client.subprotocol(), Some("superchat"));
}

#[test]
fn handshake_without_common_subprotocol_has_none() {
    let client = Config {
        subprotocols: vec!["chat".into()],
        ..plain()
    };
    let server = Config {
        subprotocols: vec!["other".into()],
        ..plain()
    };
    let pair = Pair::open_with(client, server);
    assert_eq!(pair.server.subprotocol(), None);
    assert_eq!(pair.client.subprotocol(), None);
}

#[test]
fn client_request_carries_the_configured_headers() {
    let config = Config {
        origin: Some("https://example.com".into()),
        subprotocols: vec!["a".into(), "b".into()],
        extra_headers: vec![("X-Token".into(), "t0k".into())],
        ..Config::default()
    };
    let client = Protocol::client(config);
    let request = client.connect_request("example.com:8080", "/path?q=1");
    assert_eq!(request.path, "/path?q=1");
    let h = &request.headers;
    assert_eq!(h.get("host"), Some("example.com:8080"));
    assert_eq!(h.get("origin"), Some("https://example.com"));
    assert_eq!(h.get("sec-websocket-protocol"), Some("a, b"));
    assert_eq!(h.get("x-token"), Some("t0k"));
    assert_eq!(h.get("sec-websocket-version"), Some("13"));
    assert!(h.get("user-agent").unwrap().starts_with("wskit/"));
    assert!(
        h.get("sec-websocket-extensions")
            .unwrap()
            .starts_with("permessage-deflate")
    );
    assert_eq!(h.get("sec-websocket-key").unwrap().len(), 24);
    // A fresh key each time.
    let other = client.connect_request("example.com:8080", "/");
    assert_ne!(
        other.headers.get("sec-websocket-key"),
        h.get("sec-websocket-key")
    );
}

#[test]
fn client_rejects_a_bad_accept() {
    let mut pair = Pair::new(plain(), plain());
    let request = pair.client.connect_request("example.com", "/");
    pair.client.send_request(&request).unwrap();
    let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let result = pair.client_receives(response);
    assert_eq!(result, Err(Error::Handshake(HandshakeError::InvalidAccept)));
    assert_eq!(pair.client.state(), State::Closed);
    assert!(pair.client.should_close_transport());
    assert!(matches!(
        pair.client_events.last(),
        Some(Event::Response(_))
    ));
}

#[test]
fn client_rejects_a_non_101_status() {
    let mut pair = Pair::new(plain(), plain());
    let request = pair.client.connect_request("example.com", "/");
    pair.client.send_request(&request).unwrap();
    let response = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope";
    let result = pair.client_receives(response);
    assert_eq!(
        result,
        Err(Error::Handshake(HandshakeError::InvalidStatus {
            status: 403
        }))
    );
    match pair.client_events.last() {
        Some(Event::Response(r)) => assert_eq!(&r.body[..], b"nope"),
        other => panic!("{other:?}"),
    }
}

/// Answer the client's pending request with a valid 101 plus `extra` header lines.
fn accept_with_headers(pair: &mut Pair, extra: &str) -> Result<(), Error> {
    let request = pair.client.connect_request("example.com", "/");
    pair.client.send_request(&request).unwrap();
    let key = request.headers.get("sec-websocket-key").unwrap();
    let accept = crate::handshake::accept_key(key);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    );
    pair.client_receives(response.as_bytes())
}

#[test]
fn client_rejects_an_unoffered_subprotocol() {
    let mut pair = Pair::new(plain(), plain());
    let result = accept_with_headers(&mut pair, "Sec-WebSocket-Protocol: chat\r\n");
    assert!(matches!(
        result,
        Err(Error::Handshake(HandshakeError::Negotiation(_)))
    ));
    assert_eq!(pair.client.state(), State::Closed);
}

#[test]
fn client_rejects_an_unoffered_extension() {
    let mut pair = Pair::new(plain(), plain());
    let result = accept_with_headers(
        &mut pair,
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    assert!(matches!(
        result,
        Err(Error::Handshake(HandshakeError::Negotiation(_)))
    ));
    let mut pair = Pair::new(Config::default(), plain());
    let result = accept_with_headers(&mut pair, "Sec-WebSocket-Extensions: x-unknown\r\n");
    assert!(matches!(
        result,
        Err(Error::Handshake(HandshakeError::Negotiation(_)))
    ));
}

#[test]
fn client_accepts_frames_right_behind_the_response() {
    let mut pair = Pair::new(plain(), plain());
    let request = pair.client.connect_request("example.com", "/");
    pair.client.send_request(&request).unwrap();
    let key = request.headers.get("sec-websocket-key").unwrap();
    let mut bytes = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        crate::handshake::accept_key(key)
    )
    .into_bytes();
    bytes.extend(server_frame(true, 0, OpCode::Text, b"early"));
    pair.client_receives(&bytes).unwrap();
    assert_eq!(messages(&pair.client_events), [Message::from("early")]);
}

#[test]
fn server_rejects_a_bad_request_with_the_right_status() {
    let mut server = Protocol::server(plain());
    server
        .receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let Some(Event::Request(request)) = server.poll_event() else {
        panic!()
    };
    let error = server.accept(&request).unwrap_err();
    assert_eq!(error.status(), 426);
    let response = server.reject_error(&error);
    assert_eq!(response.status, 426);
    assert_eq!(response.headers.get("upgrade"), Some("websocket"));
    assert_eq!(response.headers.get("sec-websocket-version"), Some("13"));
    server.send_response(&response).unwrap();
    assert_eq!(server.state(), State::Closed);
    assert!(server.should_close_transport());
    let sent = String::from_utf8(server.take_data_to_send()).unwrap();
    assert!(sent.starts_with("HTTP/1.1 426 "), "{sent}");
}

// ===== WebSockets over HTTP/2 (RFC 8441) =====

/// An HTTP/1.1 handshake request as an HTTP/2 layer hands it over: an extended CONNECT with
/// `:protocol = websocket`, without the fields HTTP/2 forbids or RFC 8441 drops.
fn as_extended_connect(request: &Request) -> Request {
    let mut h2 = Request::new("CONNECT", request.path.clone());
    h2.version = HttpVersion::Http2;
    h2.protocol = Some("websocket".into());
    for (name, value) in request.headers.iter() {
        if !["Upgrade", "Connection", "Sec-WebSocket-Key", "Host"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
        {
            h2.headers.append(name, value);
        }
    }
    h2
}

#[test]
fn http2_extended_connect_opens_with_200_and_negotiates_compression() {
    let mut pair = Pair::new(Config::default(), Config::default());
    let request = pair.client.connect_request("example.com", "/chat");
    pair.client.send_request(&request).unwrap();
    pair.client.take_data_to_send();

    let h2 = as_extended_connect(&request);
    assert!(h2.is_websocket_upgrade());
    assert_eq!(h2.opening_status(), 200);
    let response = pair.server.accept(&h2).unwrap();
    assert_eq!(response.status, 200);
    for field in ["Upgrade", "Connection", "Sec-WebSocket-Accept"] {
        assert!(!response.headers.contains(field), "{field} in {response:?}");
    }
    let extension = response.headers.get("Sec-WebSocket-Extensions").unwrap();
    assert!(extension.starts_with("permessage-deflate"), "{extension}");
    pair.server.send_response(&response).unwrap();
    assert_eq!(pair.server.state(), State::Open);
    assert!(pair.server.is_compressed());
    // The HTTP layer sent the 200; the client learns the same negotiation from it (here, as
    // the HTTP/1.1 answer it would have had).
    pair.server.take_data_to_send();
    let mut answer = response.clone();
    answer.status = 101;
    answer.headers.append("Upgrade", "websocket");
    answer.headers.append("Connection", "Upgrade");
    let key = request.headers.get("Sec-WebSocket-Key").unwrap();
    answer
        .headers
        .append("Sec-WebSocket-Accept", crate::handshake::accept_key(key));
    let mut bytes = Vec::new();
    answer.write(&mut bytes);
    pair.client.receive_data(&bytes).unwrap();
    pair.client_events.clear();
    assert!(pair.client.is_compressed());

    let text = "{\"a\": 1}".repeat(100);
    pair.client
        .send_message(&Message::from(text.clone()))
        .unwrap();
    pair.drive();
    assert_eq!(messages(&pair.server_events), [Message::from(text.clone())]);
    pair.server
        .send_message(&Message::from(text.clone()))
        .unwrap();
    pair.drive();
    assert_eq!(messages(&pair.client_events), [Message::from(text)]);
}

#[test]
fn http2_handshakes_that_are_not_websocket_get_their_status() {
    let valid = || {
        let mut request = Request::new("CONNECT", "/chat");
        request.version = HttpVersion::Http2;
        request.protocol = Some("websocket".into());
        request.headers.append("Sec-WebSocket-Version", "13");
        request
    };
    type Edit = fn(&mut Request);
    let cases: [(Edit, u16); 5] = [
        (|r| r.method = "GET".into(), 405),
        (|r| r.protocol = None, 400),
        (|r| r.protocol = Some("webtransport".into()), 400),
        (|r| r.headers = crate::handshake::Headers::new(), 426),
        (|r| r.headers.insert("Sec-WebSocket-Version", "8"), 426),
    ];
    let server = Protocol::server(plain());
    for (edit, status) in cases {
        let mut request = valid();
        edit(&mut request);
        let error = Protocol::server(plain()).accept(&request).unwrap_err();
        assert_eq!(error.status(), status, "{request:?}: {error}");
        let response = server.reject_error_in(HttpVersion::Http2, &error);
        assert_eq!(response.status, status);
        assert!(!response.headers.contains("Upgrade"), "{response:?}");
        if status == 405 {
            assert_eq!(response.headers.get("Allow"), Some("CONNECT"));
        }
    }
    // An HTTP/1.1 request is not an extended CONNECT, and a CONNECT is not HTTP/1.1's.
    let mut h1 = valid();
    h1.version = HttpVersion::Http11;
    assert_eq!(
        crate::handshake::check_extended_connect(&h1),
        Err(HandshakeError::UnsupportedHttpVersion)
    );
    assert_eq!(
        Protocol::server(plain()).accept(&h1).unwrap_err().status(),
        405
    );
    // A 200 opens only after the handshake accepted an extended CONNECT.
    let mut server = Protocol::server(plain());
    server.send_response(&Response::new(200, "ok")).unwrap();
    assert_eq!(server.state(), State::Closed);
}

#[test]
fn server_reports_oversized_request_headers() {
    let mut server = Protocol::server(plain());
    let mut request = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..200 {
        request.extend(format!("X-H{i}: v\r\n").bytes());
    }
    request.extend(b"\r\n");
    let Err(Error::Handshake(error)) = server.receive_data(&request) else {
        panic!()
    };
    assert_eq!(error.status(), 431);
    // Input is ignored from now on, and the server can still answer with a status, but not
    // open the connection; no closing handshake is expected.
    assert_eq!(server.state(), State::Connecting);
    assert!(!server.close_expected());
    assert_eq!(server.receive_data(b"more"), Ok(()));
    assert_eq!(server.poll_event(), None);
    let mut fake = Response::new(101, "");
    fake.headers.append("Upgrade", "websocket");
    assert_eq!(
        server.send_response(&fake),
        Err(Error::InvalidState(InvalidState::HandshakeFailed))
    );
    assert!(server.take_data_to_send().is_empty());
    let response = server.reject_error(&error);
    server.send_response(&response).unwrap();
    assert_eq!(server.state(), State::Closed);
    assert!(server.should_close_transport());
    let sent = String::from_utf8(server.take_data_to_send()).unwrap();
    assert!(sent.starts_with("HTTP/1.1 431 "), "{sent}");
    assert!(sent.contains("\r\nConnection: close\r\n"), "{sent}");
}

#[test]
fn server_may_reject_with_any_response() {
    let mut pair = Pair::new(plain(), plain());
    let request = pair.client.connect_request("example.com", "/");
    pair.client.send_request(&request).unwrap();
    pair.drive();
    let response = pair.server.reject(401, "who are you?");
    pair.server.send_response(&response).unwrap();
    pair.drive();
    assert!(matches!(
        pair.client_errors.first(),
        Some(Error::Handshake(HandshakeError::InvalidStatus {
            status: 401
        }))
    ));
    assert_eq!(pair.client.state(), State::Closed);
}

#[test]
fn eof_during_the_handshake() {
    let mut server = Protocol::server(plain());
    server.receive_data(b"GET / HTTP/1.1\r\n").unwrap();
    assert_eq!(
        server.receive_eof(),
        Err(Error::Handshake(HandshakeError::UnexpectedEof))
    );
    assert_eq!(server.state(), State::Closed);
}

#[test]
fn handshake_commands_check_role_and_state() {
    let mut server = Protocol::server(plain());
    let request = Request::get("/");
    assert_eq!(server.send_request(&request), Err(InvalidState::WrongRole));
    let mut client = Protocol::client(plain());
    let response = client.reject(400, "");
    assert_eq!(
        client.send_response(&response),
        Err(InvalidState::WrongRole.into())
    );
    assert_eq!(client.send_request(&request), Err(InvalidState::MissingKey));
    assert_eq!(
        client.send_text(b"too early", true),
        Err(InvalidState::WrongState(State::Connecting))
    );
}

// ===== Messages (RFC 6455 sections 5.4 and 5.6) =====

#[test]
fn messages_both_ways() {
    for compression in [false, true] {
        let config = if compression {
            Config::default()
        } else {
            plain()
        };
        let mut pair = Pair::open_with(config.clone(), config);
        pair.client.send_text("héllo".as_bytes(), true).unwrap();
        pair.client.send_binary(&[0, 1, 2, 255], true).unwrap();
        pair.server.send_text(b"", true).unwrap();
        pair.server.send_binary(&vec![7; 100_000], true).unwrap();
        pair.drive();
        assert_eq!(
            messages(&pair.server_events),
            [Message::from("héllo"), Message::from(vec![0, 1, 2, 255])]
        );
        assert_eq!(
            messages(&pair.client_events),
            [Message::from(""), Message::from(vec![7; 100_000])]
        );
    }
}

#[test]
fn compressed_frames_have_rsv1_and_are_smaller() {
    let mut pair = Pair::open();
    let text = "the same words again and again ".repeat(100);
    pair.server.send_text(text.as_bytes(), true).unwrap();
    let bytes = pair.server.take_data_to_send();
    assert_eq!(bytes[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
    assert!(bytes.len() < text.len() / 5, "{} bytes", bytes.len());
    pair.client_receives(&bytes).unwrap();
    assert_eq!(messages(&pair.client_events), [Message::from(text)]);
}

#[test]
fn fragmented_messages_both_ways() {
    for compression in [false, true] {
        let config = if compression {
            Config::default()
        } else {
            plain()
        };
        let mut pair = Pair::open_with(config.clone(), config);
        // "𝄞" split in the middle of its encoding across fragments.
        let text = "ab𝄞cd".as_bytes();
        pair.client.send_text(&text[..3], false).unwrap();
        pair.client.send_ping(b"between").unwrap();
        pair.client.send_continuation(&text[3..5], false).unwrap();
        pair.client.send_continuation(&text[5..], true).unwrap();
        pair.server.send_binary(b"one", false).unwrap();
        pair.server.send_continuation(b"", false).unwrap();
        pair.server.send_continuation(b"two", true).unwrap();
        pair.drive();
        assert_eq!(messages(&pair.server_events), [Message::from("ab𝄞cd")]);
        assert!(
            pair.server_events
                .contains(&Event::Ping(Bytes::from_static(b"between")))
        );
        assert_eq!(
            messages(&pair.client_events),
            [Message::from(b"onetwo".to_vec())]
        );
    }
}

proptest! {
    /// The guard of `Utf8Bytes`'s invariant (its `as_str` does not check again): whatever
    /// bytes a peer sends as text, split into frames anywhere, compressed or not, and read in
    /// pieces cut anywhere (so that the text of a frame still arriving is checked early, in
    /// place), every text the server delivers (a whole message, or a fragment that is a whole
    /// message turned into one) is valid UTF-8, and invalid text is never delivered whole.
    #[test]
    fn text_from_the_wire_is_valid_utf8(
        payload in proptest::collection::vec(
            prop_oneof![Just(0xffu8), Just(0xe2), Just(0x82), Just(0x9c), Just(b'a'), any::<u8>()],
            0..24,
        ),
        padding in prop_oneof![Just(0usize), Just(130), Just(300)],
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        reads in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        compression in any::<bool>(),
        streaming in any::<bool>(),
    ) {
        // Valid text first, so that frames are long enough (over 125 bytes) to arrive in
        // pieces, then the bytes under test.
        let mut payload_all = "\u{e9}t\u{e9} ".repeat(padding / 6).into_bytes();
        payload_all.extend_from_slice(&payload);
        let payload = payload_all;
        let config = if compression { Config::default() } else { plain() };
        let server = Config { streaming, ..config.clone() };
        let mut pair = Pair::open_with(config, server);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(payload.len());
        let mut start = 0;
        for (i, &end) in cuts.iter().enumerate() {
            let piece = &payload[start..end];
            let fin = i + 1 == cuts.len();
            let sent = if i == 0 {
                pair.client.send_text(piece, fin)
            } else {
                pair.client.send_continuation(piece, fin)
            };
            sent.unwrap();
            start = end;
        }
        let wire = pair.client.take_data_to_send();
        let mut reads: Vec<usize> = reads.iter().map(|i| i.index(wire.len() + 1)).collect();
        reads.sort_unstable();
        reads.push(wire.len());
        let mut start = 0;
        let mut events = Vec::new();
        for end in reads {
            let _ = pair.server.receive_data(&wire[start..end]);
            start = end;
            while let Some(event) = pair.server.poll_event() {
                events.push(event);
            }
        }
        let valid = std::str::from_utf8(&payload).is_ok();
        let mut delivered = 0;
        for event in events {
            let message = match event {
                Event::Message(message) => message,
                Event::Fragment(fragment) => match fragment.into_message() {
                    Ok(message) => message,
                    Err(_) => continue,
                },
                _ => continue,
            };
            let text = message.as_text().unwrap();
            prop_assert!(std::str::from_utf8(text.as_bytes()).is_ok());
            prop_assert_eq!(text.as_bytes(), &payload[..]);
            delivered += 1;
        }
        if valid {
            prop_assert_eq!(delivered, usize::from(cuts.len() == 1 || !streaming));
        } else {
            prop_assert_eq!(delivered, 0, "invalid text delivered whole");
        }
    }
}

#[test]
fn streaming_mode_delivers_fragments() {
    for compression in [false, true] {
        let config = if compression {
            Config::default()
        } else {
            plain()
        };
        let server = Config {
            streaming: true,
            ..config.clone()
        };
        let mut pair = Pair::open_with(config, server);
        pair.client.send_text(b"Hello, ", false).unwrap();
        pair.client.send_continuation(b"world", true).unwrap();
        pair.client.send_binary(b"whole", true).unwrap();
        pair.drive();
        let fragments: Vec<Fragment> = pair
            .server_events
            .iter()
            .filter_map(|e| match e {
                Event::Fragment(f) => Some(f.clone()),
                _ => None,
            })
            .collect();
        let summary: Vec<(bool, bool, bool, &[u8])> = fragments
            .iter()
            .map(|f| (f.is_text(), f.is_first(), f.is_fin(), &f.data()[..]))
            .collect();
        assert_eq!(
            summary,
            [
                (true, true, false, &b"Hello, "[..]),
                (true, false, true, &b"world"[..]),
                (false, true, true, &b"whole"[..])
            ]
        );
    }
}

#[test]
fn send_fragment_rules() {
    let mut pair = Pair::open_with(plain(), plain());
    assert_eq!(
        pair.client.send_continuation(b"x", true),
        Err(InvalidState::NoFragmentedMessage)
    );
    pair.client.send_text(b"a", false).unwrap();
    assert_eq!(
        pair.client.send_binary(b"x", true),
        Err(InvalidState::FragmentedMessageInProgress)
    );
    pair.client.send_continuation(b"b", true).unwrap();
    assert_eq!(
        pair.client.send_ping(&[0; 126]),
        Err(InvalidState::ControlPayloadTooLong(126))
    );
}

// ===== Control frames (RFC 6455 section 5.5) =====

#[test]
fn pings_are_answered_with_pongs() {
    let mut pair = Pair::open();
    pair.client.send_ping(b"1234").unwrap();
    pair.drive();
    assert_eq!(
        pair.server_events,
        [Event::Ping(Bytes::from_static(b"1234"))]
    );
    assert_eq!(
        pair.client_events,
        [Event::Pong(Bytes::from_static(b"1234"))]
    );
    pair.server.send_pong(b"unsolicited").unwrap();
    pair.drive();
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::Pong(Bytes::from_static(b"unsolicited")))
    );
}

// ===== Closing handshake (RFC 6455 section 7) =====

#[test]
fn client_initiated_close() {
    let mut pair = Pair::open();
    pair.client.send_close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(pair.client.state(), State::Closing);
    assert!(pair.client.close_expected());
    assert_eq!(
        pair.client.send_text(b"late", true),
        Err(InvalidState::WrongState(State::Closing))
    );
    pair.drive();
    assert_eq!(
        close_event(&pair.server_events),
        Some(CloseFrame::new(1000, "bye"))
    );
    // The answer echoes the code and the reason, as Python websockets does.
    assert_eq!(
        close_event(&pair.client_events),
        Some(CloseFrame::new(1000, "bye"))
    );
    assert!(
        pair.server_closed_transport,
        "the server closes the TCP connection first"
    );
    assert!(pair.client_errors.is_empty() && pair.server_errors.is_empty());
    for side in [&pair.client, &pair.server] {
        assert_eq!(side.state(), State::Closed);
        assert_eq!(side.close_code(), Some(CloseCode::NORMAL));
    }
    assert_eq!(pair.server.close_reason(), Some("bye"));
    assert_eq!(pair.client.close_rcvd_then_sent(), Some(false));
    assert_eq!(pair.server.close_rcvd_then_sent(), Some(true));
}

#[test]
fn server_initiated_close() {
    let mut pair = Pair::open();
    pair.server
        .send_close(CloseCode::GOING_AWAY, "shutting down")
        .unwrap();
    pair.drive();
    assert_eq!(
        close_event(&pair.client_events),
        Some(CloseFrame::new(1001, "shutting down"))
    );
    assert_eq!(
        close_event(&pair.server_events),
        Some(CloseFrame::new(1001, "shutting down"))
    );
    assert!(pair.client_errors.is_empty() && pair.server_errors.is_empty());
    assert_eq!(pair.client.state(), State::Closed);
    assert_eq!(pair.server.state(), State::Closed);
    assert_eq!(pair.client.close_code(), Some(CloseCode::GOING_AWAY));
}

#[test]
fn empty_close_frame_is_echoed_empty() {
    let mut pair = Pair::open_with(plain(), plain());
    pair.client.send_close(CloseCode::NO_STATUS, "").unwrap();
    let sent = pair.client.take_data_to_send();
    assert_eq!(sent[..2], [0x88, 0x80], "empty masked close frame");
    pair.server_receives(&sent).unwrap();
    assert_eq!(pair.server.take_data_to_send(), [0x88, 0x00]);
    assert_eq!(
        close_event(&pair.server_events),
        Some(CloseFrame::new(1005, ""))
    );
}

#[test]
fn messages_before_close_are_delivered() {
    let mut pair = Pair::open();
    pair.client.send_text(b"last words", true).unwrap();
    pair.client.send_close(CloseCode::NORMAL, "").unwrap();
    pair.drive();
    assert_eq!(messages(&pair.server_events), [Message::from("last words")]);
}

#[test]
fn data_after_close_is_ignored() {
    let mut pair = Pair::open_with(plain(), plain());
    let mut bytes = client_frame(true, 0, OpCode::Close, &[0x03, 0xe8]);
    bytes.extend(client_frame(true, 0, OpCode::Text, b"ghost"));
    pair.server_receives(&bytes).unwrap();
    assert!(messages(&pair.server_events).is_empty());
}

#[test]
fn eof_without_close_is_abnormal() {
    let mut pair = Pair::open();
    assert_eq!(
        pair.server.receive_eof(),
        Err(Error::Protocol(ProtocolError::UnexpectedEof))
    );
    assert_eq!(pair.server.state(), State::Closed);
    assert_eq!(pair.server.close_code(), Some(CloseCode::ABNORMAL));
    assert!(pair.server.should_close_transport());
}

#[test]
fn eof_in_the_middle_of_a_frame_is_abnormal() {
    let mut pair = Pair::open_with(plain(), plain());
    let frame = client_frame(true, 0, OpCode::Text, b"cut short");
    pair.server_receives(&frame[..5]).unwrap();
    assert_eq!(
        pair.server.receive_eof(),
        Err(Error::Protocol(ProtocolError::UnexpectedEof))
    );
}

#[test]
fn fail_sends_close_and_stops_reading() {
    let mut pair = Pair::open_with(plain(), plain());
    pair.server
        .fail(CloseCode::INTERNAL_ERROR, &"é".repeat(100));
    assert_eq!(
        pair.server.close_sent().unwrap().code,
        CloseCode::INTERNAL_ERROR
    );
    assert!(pair.server.close_sent().unwrap().reason.len() <= 123);
    assert!(pair.server.should_close_transport());
    pair.server_receives(&client_frame(true, 0, OpCode::Text, b"ignored"))
        .unwrap();
    assert!(pair.server_events.is_empty());
}

// ===== Failures: each peer error gets its close code (RFC 6455 section 7.4.1) =====

#[test]
fn server_fails_on_unmasked_frame() {
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&server_frame(true, 0, OpCode::Text, b"hi"));
    assert_server_failed(&mut pair, result, ProtocolError::UnmaskedFrame);
}

#[test]
fn client_fails_on_masked_frame() {
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.client_receives(&client_frame(true, 0, OpCode::Text, b"hi"));
    assert_client_failed(&mut pair, result, ProtocolError::MaskedFrame);
}

#[test]
fn fails_on_reserved_bits() {
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(true, RSV1, OpCode::Text, b"hi"));
    assert_server_failed(
        &mut pair,
        result,
        ProtocolError::ReservedBits { bits: RSV1 },
    );
    // With deflate, RSV1 is allowed on the first frame only, never RSV2.
    let mut pair = Pair::open();
    let result = pair.server_receives(&client_frame(true, RSV2, OpCode::Text, b"hi"));
    assert_server_failed(
        &mut pair,
        result,
        ProtocolError::ReservedBits { bits: RSV2 },
    );
    let mut pair = Pair::open();
    let result = pair.server_receives(&client_frame(true, RSV1, OpCode::Ping, b""));
    assert_server_failed(
        &mut pair,
        result,
        ProtocolError::ReservedBits { bits: RSV1 },
    );
    let mut pair = Pair::open();
    let mut bytes = client_frame(false, 0, OpCode::Text, b"a");
    bytes.extend(client_frame(true, RSV1, OpCode::Continuation, b"b"));
    let result = pair.server_receives(&bytes);
    assert_server_failed(
        &mut pair,
        result,
        ProtocolError::ReservedBits { bits: RSV1 },
    );
}

#[test]
fn fails_on_reserved_opcode() {
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&[0x83, 0x80, 1, 2, 3, 4]);
    assert_server_failed(&mut pair, result, ProtocolError::ReservedOpcode(3));
}

#[test]
fn fails_on_bad_continuation_sequences() {
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Continuation, b"x"));
    assert_server_failed(&mut pair, result, ProtocolError::UnexpectedContinuation);
    let mut pair = Pair::open_with(plain(), plain());
    let mut bytes = client_frame(false, 0, OpCode::Text, b"a");
    bytes.extend(client_frame(true, 0, OpCode::Binary, b"b"));
    let result = pair.server_receives(&bytes);
    assert_server_failed(&mut pair, result, ProtocolError::ExpectedContinuation);
}

#[test]
fn fails_on_bad_control_frames() {
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Ping, &[0; 126]));
    assert_server_failed(&mut pair, result, ProtocolError::ControlFrameTooLong(126));
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(false, 0, OpCode::Ping, b""));
    assert_server_failed(&mut pair, result, ProtocolError::FragmentedControlFrame);
}

#[test]
fn fails_on_bad_close_frames() {
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Close, &[0x03]));
    assert_server_failed(&mut pair, result, ProtocolError::InvalidClosePayload);
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Close, &[0x03, 0xee]));
    assert_server_failed(&mut pair, result, ProtocolError::InvalidCloseCode(1006));
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Close, &[0x03, 0xe8, 0xc0]));
    assert_server_failed(&mut pair, result, ProtocolError::InvalidUtf8);
}

#[test]
fn fails_on_invalid_utf8() {
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Text, &[b'a', 0xff]));
    assert_server_failed(&mut pair, result, ProtocolError::InvalidUtf8);
    // Fragmented: fails on the fragment with the bad byte, before the message ends.
    let mut pair = Pair::open_with(plain(), plain());
    pair.server_receives(&client_frame(false, 0, OpCode::Text, "κό".as_bytes()))
        .unwrap();
    let result = pair.server_receives(&client_frame(false, 0, OpCode::Continuation, &[0xf4, 0x90]));
    assert_server_failed(&mut pair, result, ProtocolError::InvalidUtf8);
    // Truncated code point at the end of the message.
    let mut pair = Pair::open_with(plain(), plain());
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Text, &[0xe2, 0x9c]));
    assert_server_failed(&mut pair, result, ProtocolError::InvalidUtf8);
}

#[test]
fn fails_on_invalid_utf8_in_compressed_text() {
    let mut pair = Pair::open();
    // The server cannot send invalid text through the API, so compress by hand on its side.
    pair.server.send_binary(&[b'o', b'k', 0xff], true).unwrap();
    let mut bytes = pair.server.take_data_to_send();
    bytes[0] = (bytes[0] & 0xf0) | OpCode::Text as u8;
    let result = pair.client_receives(&bytes);
    assert_client_failed(&mut pair, result, ProtocolError::InvalidUtf8);
}

#[test]
fn fails_on_invalid_compressed_data() {
    let mut pair = Pair::open();
    let result = pair.server_receives(&client_frame(true, RSV1, OpCode::Binary, &[0xff; 16]));
    assert_server_failed(&mut pair, result, ProtocolError::InvalidCompressedData);
}

fn limited(limits: Limits) -> Config {
    Config { limits, ..plain() }
}

#[test]
fn message_size_limit_applies_before_buffering() {
    let limit = 1000;
    let limits = Limits {
        max_message_size: Some(limit),
        ..Limits::default()
    };
    let mut pair = Pair::open_with(plain(), limited(limits.clone()));
    // Only the header of a 1001-byte frame is needed to fail.
    let frame = client_frame(true, 0, OpCode::Binary, &[0; 1001]);
    let result = pair.server_receives(&frame[..8]);
    assert_server_failed(&mut pair, result, ProtocolError::MessageTooBig { limit });
    // Exactly at the limit is fine.
    let mut pair = Pair::open_with(plain(), limited(limits.clone()));
    pair.server_receives(&client_frame(true, 0, OpCode::Binary, &[0; 1000]))
        .unwrap();
    // Fragments add up.
    let mut pair = Pair::open_with(plain(), limited(limits));
    pair.server_receives(&client_frame(false, 0, OpCode::Binary, &[0; 600]))
        .unwrap();
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Continuation, &[0; 401]));
    assert_server_failed(&mut pair, result, ProtocolError::MessageTooBig { limit });
}

#[test]
fn frame_size_limit() {
    let limits = Limits {
        max_frame_size: Some(100),
        ..Limits::default()
    };
    let mut pair = Pair::open_with(plain(), limited(limits));
    pair.server_receives(&client_frame(false, 0, OpCode::Binary, &[0; 100]))
        .unwrap();
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Continuation, &[0; 101]));
    assert_server_failed(
        &mut pair,
        result,
        ProtocolError::FrameTooBig {
            size: 101,
            limit: 100,
        },
    );
}

#[test]
fn fragment_count_limit() {
    let limits = Limits {
        max_fragments: Some(3),
        ..Limits::default()
    };
    let mut pair = Pair::open_with(plain(), limited(limits));
    let mut bytes = client_frame(false, 0, OpCode::Binary, b"");
    bytes.extend(client_frame(false, 0, OpCode::Continuation, b""));
    bytes.extend(client_frame(false, 0, OpCode::Continuation, b""));
    pair.server_receives(&bytes).unwrap();
    let result = pair.server_receives(&client_frame(true, 0, OpCode::Continuation, b""));
    assert_server_failed(
        &mut pair,
        result,
        ProtocolError::TooManyFragments { limit: 3 },
    );
}

#[test]
fn decompression_bomb_stops_at_the_limit() {
    let limit = 64 << 10;
    let server = Config {
        limits: Limits {
            max_message_size: Some(limit),
            ..Limits::default()
        },
        ..Config::default()
    };
    // An attacker compresses as hard as it can: 10 MiB of zeros at level 9 is about 10 KiB,
    // under the limit on the wire.
    let bomber = Config {
        compression: Some(crate::DeflateConfig {
            compression_level: 9,
            ..crate::DeflateConfig::default()
        }),
        ..Config::default()
    };
    let mut pair = Pair::open_with(bomber, server);
    pair.client.send_binary(&vec![0; 10 << 20], true).unwrap();
    let bytes = pair.client.take_data_to_send();
    assert!(bytes.len() < limit, "{} bytes on the wire", bytes.len());
    let result = pair.server_receives(&bytes);
    assert_server_failed(&mut pair, result, ProtocolError::MessageTooBig { limit });
}

// ===== Any split of the input gives the same events =====

fn conversation_bytes(pair: &mut Pair) -> Vec<u8> {
    pair.client.send_text("first ✓".as_bytes(), true).unwrap();
    pair.client.send_binary(&vec![42; 300], false).unwrap();
    pair.client.send_ping(b"p").unwrap();
    pair.client
        .send_continuation(&vec![43; 70_000], true)
        .unwrap();
    pair.client
        .send_text("λ".repeat(50).as_bytes(), true)
        .unwrap();
    pair.client.send_close(CloseCode::NORMAL, "done").unwrap();
    pair.client.take_data_to_send()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_gives_the_same_events(
        compression in any::<bool>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let config = if compression { Config::default() } else { plain() };
        let mut whole = Pair::open_with(config.clone(), config.clone());
        let bytes = conversation_bytes(&mut whole);
        whole.server_receives(&bytes).unwrap();

        let mut split = Pair::open_with(config.clone(), config);
        let same = conversation_bytes(&mut split);
        prop_assert_eq!(&same, &bytes, "deterministic masks give the same bytes");
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len())).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            split.server_receives(&bytes[start..cut]).unwrap();
            start = cut;
        }
        prop_assert_eq!(&split.server_events, &whole.server_events);
        prop_assert_eq!(split.server.take_data_to_send(), whole.server.take_data_to_send());
    }
}

#[test]
fn client_masks_each_frame_with_a_fresh_random_key() {
    // A client with the default, OS-random key generator (the pair pins its keys).
    let mut client = Protocol::client(plain());
    let mut server = Protocol::server(plain());
    client
        .send_request(&client.connect_request("example.com", "/"))
        .unwrap();
    server.receive_data(&client.take_data_to_send()).unwrap();
    let Some(Event::Request(request)) = server.poll_event() else {
        panic!()
    };
    let response = server.accept(&request).unwrap();
    server.send_response(&response).unwrap();
    client.receive_data(&server.take_data_to_send()).unwrap();
    let mut keys = std::collections::HashSet::new();
    for _ in 0..200 {
        client.send_binary(b"data", true).unwrap();
        let bytes = client.take_data_to_send();
        let (header, _) = crate::frame::FrameHeader::parse(&bytes).unwrap().unwrap();
        keys.insert(header.mask.expect("client frames are masked"));
        server.receive_data(&bytes).unwrap();
        assert_eq!(
            server.poll_event(),
            Some(Event::Message(Message::from(&b"data"[..])))
        );
    }
    // 200 random 32-bit keys collide with negligible probability; a fixed key would give 1.
    assert!(keys.len() >= 199, "{} distinct keys", keys.len());
}

#[test]
fn encoded_frames_and_swapped_output() {
    let mut pair = Pair::open_with(plain(), plain());
    let mut frames = Vec::new();
    crate::frame::write_frame(&mut frames, true, 0, OpCode::Text, b"to all", None);
    pair.server.send_encoded(&frames).unwrap();
    assert_eq!(
        pair.client.send_encoded(&frames),
        Err(InvalidState::WrongRole)
    );
    pair.server.send_binary(b"x", false).unwrap();
    assert_eq!(
        pair.server.send_encoded(&frames),
        Err(InvalidState::FragmentedMessageInProgress)
    );
    pair.server.send_continuation(b"y", true).unwrap();
    let mut out = Vec::with_capacity(64);
    pair.server.consume_data_to_send(2); // a partial write of the first frame
    pair.server.swap_data_to_send(&mut out);
    assert!(pair.server.data_to_send().is_empty());
    let mut bytes = frames[..2].to_vec();
    bytes.extend_from_slice(&out);
    pair.client_receives(&bytes).unwrap();
    assert_eq!(
        messages(&pair.client_events),
        [Message::from("to all"), Message::from(b"xy".to_vec())]
    );
}

#[test]
fn large_payloads_are_sent_without_a_copy_and_arrive_whole() {
    let mut pair = Pair::open_with(plain(), plain());
    let big = Bytes::from(vec![0xab; OUT_OF_LINE_MIN]);
    let text: String = "é".repeat(5000);
    pair.server.send_text(b"first", true).unwrap();
    pair.server
        .send_message(&Message::from(big.clone()))
        .unwrap();
    pair.server.send_ping(b"p").unwrap();
    pair.server
        .send_message(&Message::from(text.clone()))
        .unwrap();
    // Held out of line: the output points at the caller's bytes.
    let output = pair.server.output();
    assert!(output.has_out_of_line());
    let mut slices = [std::io::IoSlice::new(&[]); 8];
    let n = output.io_slices(&mut slices);
    assert_eq!(n, 4, "frames, payload, frames, payload");
    assert_eq!(slices[1].as_ptr(), big.as_ptr());
    assert_eq!(pair.server.bytes_to_send(), output.to_vec().len());
    // Not while a fragmented message is being sent, and not after close.
    pair.server.send_binary(b"x", false).unwrap();
    assert_eq!(
        pair.server.send_message(&Message::from(big.clone())),
        Err(InvalidState::FragmentedMessageInProgress)
    );
    pair.server.send_continuation(b"y", true).unwrap();
    // Written in small pieces, through data_to_send, as an I/O layer without vectored writes
    // would.
    let mut wire = Vec::new();
    while !pair.server.data_to_send().is_empty() {
        let piece = pair.server.data_to_send();
        let n = piece.len().min(1000);
        wire.extend_from_slice(&piece[..n]);
        pair.server.consume_data_to_send(n);
    }
    assert_eq!(pair.server.bytes_to_send(), 0);
    pair.client_receives(&wire).unwrap();
    assert_eq!(
        messages(&pair.client_events),
        [
            Message::from("first"),
            Message::from(big.clone()),
            Message::from(text),
            Message::from(b"xy".to_vec())
        ]
    );
    // A client masks, and a compressed message is encoded: both are copied.
    let mut compressed = Pair::open();
    compressed
        .server
        .send_message(&Message::from(big.clone()))
        .unwrap();
    assert!(!compressed.server.output().has_out_of_line());
    compressed
        .client
        .send_message(&Message::from(big.clone()))
        .unwrap();
    assert!(!compressed.client.output().has_out_of_line());
    compressed.drive();
    assert_eq!(
        messages(&compressed.client_events),
        [Message::from(big.clone())]
    );
    assert_eq!(messages(&compressed.server_events), [Message::from(big)]);
}

#[test]
fn swapping_the_output_keeps_out_of_line_payloads() {
    let mut pair = Pair::open_with(plain(), plain());
    let big = Bytes::from(vec![1; 70_000]);
    pair.server
        .send_message(&Message::from(big.clone()))
        .unwrap();
    pair.server.send_text(b"after", true).unwrap();
    pair.server.consume_data_to_send(3); // part of the first frame's header
    let mut out = crate::Output::new();
    pair.server.swap_output(&mut out);
    assert!(pair.server.data_to_send().is_empty());
    assert!(out.has_out_of_line());
    let mut wire = vec![0x82, 127, 0];
    wire.extend_from_slice(&out.to_vec());
    // The flat swap copies the payload in.
    pair.server
        .send_message(&Message::from(big.clone()))
        .unwrap();
    let mut flat = Vec::new();
    pair.server.swap_data_to_send(&mut flat);
    assert!(pair.server.data_to_send().is_empty());
    wire.extend_from_slice(&flat);
    pair.client_receives(&wire).unwrap();
    assert_eq!(
        messages(&pair.client_events),
        [
            Message::from(big.clone()),
            Message::from("after"),
            Message::from(big)
        ]
    );
}

#[test]
fn whole_fragments_become_messages_without_copies() {
    let server = Config {
        streaming: true,
        ..plain()
    };
    let mut pair = Pair::open_with(plain(), server);
    pair.client.send_text("ünïcode".as_bytes(), true).unwrap();
    pair.client.send_binary(b"part", false).unwrap();
    pair.client.send_continuation(b"s", true).unwrap();
    pair.drive();
    let mut fragments = pair.server_events.drain(..).filter_map(|e| match e {
        Event::Fragment(f) => Some(f),
        _ => None,
    });
    assert_eq!(
        fragments.next().unwrap().into_message(),
        Ok(Message::from("ünïcode"))
    );
    let first = fragments.next().unwrap();
    assert_eq!(first.clone().into_message(), Err(first));
}

// ===== Failing fast, and holding back failures =====

#[test]
fn invalid_text_fails_before_the_rest_of_a_large_frame_arrives() {
    // Autobahn 6.4.3/6.4.4: one text frame whose invalid byte arrives long before its end.
    let mut pair = Pair::open_with(plain(), plain());
    let mut payload = "κόσμε".as_bytes().to_vec();
    payload.extend([0xf4, 0x90, 0x80, 0x80]);
    payload.extend(vec![b'a'; 1000]);
    let frame = client_frame(true, 0, OpCode::Text, &payload);
    let result = pair.server_receives(&frame[..20]);
    assert_server_failed(&mut pair, result, ProtocolError::InvalidUtf8);
}

#[test]
fn text_validated_in_pieces_is_delivered_whole() {
    for streaming in [false, true] {
        let server = Config {
            streaming,
            ..plain()
        };
        let mut pair = Pair::open_with(plain(), server);
        let text = "ünïcödé ✓ ".repeat(100);
        let mut bytes = client_frame(false, 0, OpCode::Text, &text.as_bytes()[..501]);
        bytes.extend(client_frame(
            true,
            0,
            OpCode::Continuation,
            &text.as_bytes()[501..],
        ));
        for chunk in bytes.chunks(7) {
            pair.server_receives(chunk).unwrap();
        }
        let received: Vec<u8> = pair
            .server_events
            .iter()
            .flat_map(|e| match e {
                Event::Message(m) => m.as_bytes().to_vec(),
                Event::Fragment(f) => f.data().to_vec(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(received, text.as_bytes(), "streaming: {streaming}");
    }
}

#[test]
fn deferred_failure_waits_for_the_caller() {
    let server = Config {
        defer_failures: true,
        ..plain()
    };
    let mut pair = Pair::open_with(plain(), server);
    // Autobahn 3.2: a message, then a frame with RSV2, then a ping, in one read.
    let mut bytes = client_frame(true, 0, OpCode::Text, b"first");
    bytes.extend(client_frame(true, RSV2, OpCode::Text, b"bad"));
    bytes.extend(client_frame(true, 0, OpCode::Ping, b""));
    assert_eq!(pair.server_receives(&bytes), Ok(()));
    assert_eq!(messages(&pair.server_events), [Message::from("first")]);
    assert_eq!(
        pair.server.pending_failure(),
        Some(&ProtocolError::ReservedBits { bits: RSV2 })
    );
    assert_eq!(pair.server.state(), State::Open);
    // The application answers the first message before the failure is applied.
    pair.server.send_text(b"first", true).unwrap();
    let error = pair.server.apply_pending_failure().unwrap();
    assert_eq!(
        error,
        Error::Protocol(ProtocolError::ReservedBits { bits: RSV2 })
    );
    assert_eq!(
        pair.server.close_sent().unwrap().code,
        CloseCode::PROTOCOL_ERROR
    );
    pair.drive();
    assert_eq!(messages(&pair.client_events), [Message::from("first")]);
    assert_eq!(
        close_event(&pair.client_events).unwrap().code,
        CloseCode::PROTOCOL_ERROR
    );
    assert!(pair.server.apply_pending_failure().is_none());
}

#[test]
fn release_buffers_keeps_pending_bytes() {
    let mut pair = Pair::open_with(plain(), plain());
    let frame = client_frame(true, 0, OpCode::Text, b"partial frame");
    pair.server_receives(&frame[..5]).unwrap();
    pair.server.send_text(b"unsent", true).unwrap();
    pair.server.release_buffers();
    // Neither the partial frame nor the unsent message is lost.
    pair.server_receives(&frame[5..]).unwrap();
    assert_eq!(
        messages(&pair.server_events),
        [Message::from("partial frame")]
    );
    let sent = pair.server.take_data_to_send();
    pair.client_receives(&sent).unwrap();
    assert_eq!(messages(&pair.client_events), [Message::from("unsent")]);
    pair.server.release_buffers();
    assert!(pair.server.data_to_send().is_empty());
}

// ===== The short-message fast paths behave as the general paths =====

/// A short frame as a client might send it (or not: any first byte, masked or not), with
/// what comes before it and the server's settings and state.
#[derive(Debug, Clone)]
struct ShortFrameCase {
    b0: u8,
    masked: bool,
    key: [u8; 4],
    payload: Vec<u8>,
    /// Bytes of the frame that arrive first, counted from its first byte (anywhere, header
    /// included; more than the frame: some of the next one's).
    cut: Option<usize>,
    /// A fragmented text message in progress before the frame.
    fragment_before: bool,
    /// The server is sending a fragmented message of its own.
    sending_fragments: bool,
    /// The server sent a close frame before the frame arrives (closing state).
    closing: bool,
    max_message_size: Option<usize>,
    max_frame_size: Option<usize>,
    streaming: bool,
    compression: bool,
    defer_failures: bool,
    /// The reply the server sends afterwards: text or binary.
    reply_text: bool,
}

fn short_frame_case() -> impl Strategy<Value = ShortFrameCase> {
    (
        (
            prop_oneof![Just(0x81u8), Just(0x82), Just(0x80), any::<u8>()],
            prop::bool::weighted(0.9),
            any::<[u8; 4]>(),
            prop_oneof![
                proptest::collection::vec(0x20u8..0x7f, 0..=125),
                "[a-zλ✓ ]{0,40}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..=125),
            ],
            proptest::option::weighted(0.3, 0..140usize),
        ),
        (
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
            proptest::option::of(0..130usize),
            proptest::option::of(0..130usize),
        ),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (b0, masked, key, payload, cut),
                (fragment_before, sending_fragments, closing, message, frame),
                (streaming, compression, defer_failures, reply_text),
            )| ShortFrameCase {
                b0,
                masked,
                key,
                payload,
                cut,
                fragment_before,
                sending_fragments,
                closing,
                max_message_size: message,
                max_frame_size: frame,
                streaming,
                compression,
                defer_failures,
                reply_text,
            },
        )
}

/// Run `case` through a server with the fast paths on or off: its events, errors, output and
/// state, after the frame and after a frame that follows it.
fn run_short_frame(case: &ShortFrameCase, general_paths_only: bool) -> String {
    let server = Config {
        limits: Limits {
            max_message_size: case.max_message_size,
            max_frame_size: case.max_frame_size,
            ..Limits::default()
        },
        streaming: case.streaming,
        defer_failures: case.defer_failures,
        compression: if case.compression {
            Config::default().compression
        } else {
            None
        },
        ..Config::default()
    };
    let client = Config {
        compression: server.compression.clone(),
        ..Config::default()
    };
    let mut pair = Pair::open_with(client, server);
    pair.server.general_paths_only = general_paths_only;
    let mut setup = Vec::new();
    if case.sending_fragments {
        setup.push(format!("{:?}", pair.server.send_text(b"part", false)));
    }
    if case.closing {
        setup.push(format!(
            "{:?}",
            pair.server.send_close(CloseCode::NORMAL, "bye")
        ));
    }
    let mut frame = Vec::new();
    if case.fragment_before {
        frame.extend(client_frame(false, 0, OpCode::Text, b"start"));
    }
    frame.extend([
        case.b0,
        (u8::from(case.masked) << 7) | case.payload.len() as u8,
    ]);
    let mut payload = case.payload.clone();
    if case.masked {
        frame.extend(case.key);
        crate::mask::apply_mask(&mut payload, case.key, 0);
    }
    frame.extend(&payload);
    let frame_len = frame.len();
    // What follows: a short binary message.
    frame.extend(client_frame(true, 0, OpCode::Binary, b"next"));
    let end = case.cut.map_or(frame_len, |cut| cut.min(frame.len()));
    let first = pair.server_receives(&frame[..end]);
    let first_output = pair.server.take_data_to_send();
    let second = pair.server_receives(&frame[end..]);
    // A reply, through the send fast path when short.
    let reply = if case.reply_text {
        match std::str::from_utf8(&case.payload) {
            Ok(text) => Message::from(text),
            Err(_) => Message::from("not text"),
        }
    } else {
        Message::Binary(Bytes::from(case.payload.clone()))
    };
    let replied = pair.server.send_message(&reply);
    format!(
        "{setup:?}\n{first:?}\n{first_output:?}\n{second:?}\n{replied:?}\n{:?}\n{:?}\n{:?}",
        pair.server_events,
        pair.server.take_data_to_send(),
        pair.server.state(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn short_message_fast_paths_match_the_general_paths(case in short_frame_case()) {
        prop_assert_eq!(run_short_frame(&case, false), run_short_frame(&case, true));
    }
}

#[test]
fn short_message_fast_paths_are_taken() {
    // A whole short text message and a reply: the fast paths' cases, checked to give what the
    // general paths give (the property above) and what the RFC says.
    for general_paths_only in [false, true] {
        let mut pair = Pair::open_with(plain(), plain());
        pair.server.general_paths_only = general_paths_only;
        let frame = client_frame(true, 0, OpCode::Text, "hé".as_bytes());
        pair.server_receives(&frame).unwrap();
        assert_eq!(messages(&pair.server_events), [Message::from("hé")]);
        pair.server.send_message(&Message::from("hé")).unwrap();
        assert_eq!(pair.server.take_data_to_send(), [0x81, 3, b'h', 0xc3, 0xa9]);
    }
}

// ===== Releasing an idle connection's compression state =====

/// A released compressor and decompressor are rebuilt from their windows between messages,
/// but never in the middle of one: a peer may split a deflate block across frames, and the
/// decompressor must keep its place in it.
#[test]
fn compression_state_is_released_between_messages_only() {
    let text: Vec<u8> = (0..400)
        .flat_map(|i| format!("{{\"id\": {i}, \"name\": \"item {}\"}} ", i % 37).into_bytes())
        .collect();
    // One deflate stream for the whole message, as a peer may make it (zlib level 6: dynamic
    // Huffman blocks), then cut into frames at arbitrary points, inside blocks.
    let mut deflate = zlib_rs::Deflate::new(6, false, 12);
    let mut compressed = vec![0; text.len() + 1024];
    let status = deflate.compress(&text, &mut compressed, zlib_rs::DeflateFlush::SyncFlush);
    assert!(status.is_ok());
    compressed.truncate(deflate.total_out() as usize);
    assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]));
    compressed.truncate(compressed.len() - 4);

    for release_on_server in [false, true] {
        let mut pair = Pair::open();
        let pieces: Vec<&[u8]> = compressed.chunks(compressed.len() / 5 + 1).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let (fin, first) = (i + 1 == pieces.len(), i == 0);
            let (rsv, opcode) = if first {
                (RSV1, OpCode::Text)
            } else {
                (0, OpCode::Continuation)
            };
            pair.server_receives(&client_frame(fin, rsv, opcode, piece))
                .unwrap();
            if release_on_server {
                // The idle round of an I/O layer, between two frames of the message.
                pair.server.release_buffers();
            }
        }
        assert_eq!(
            messages(&pair.server_events),
            [Message::Text(
                crate::message::Utf8Bytes::try_from(Bytes::from(text.clone())).unwrap()
            )]
        );
        // Between messages, both sides release, and the conversation goes on with the windows.
        pair.server_events.clear();
        pair.server.release_buffers();
        pair.client.release_buffers();
        pair.server.send_text(&text, true).unwrap();
        pair.client.send_text(&text, true).unwrap();
        pair.drive();
        assert_eq!(messages(&pair.server_events).len(), 1);
        assert_eq!(messages(&pair.client_events)[0].as_bytes(), &text[..]);
    }
}
