//! Helpers shared by the fuzz targets in `fuzz_targets/`: an opening handshake between a
//! client and a server [`Protocol`], and checks on the events they deliver.

use wskit_proto::frame::MAX_CONTROL_PAYLOAD;
use wskit_proto::{CloseCode, Config, Error, Event, Protocol, State};

/// The `Sec-WebSocket-Key` of RFC 6455 section 1.3, used so that runs are deterministic.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The masking key that the targets use for the frames they build themselves.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A deterministic masking-key generator for clients (xorshift32), so that a crash reproduces.
pub fn fixed_masks() -> impl FnMut() -> [u8; 4] + Send + 'static {
    let mut state: u32 = 0x9e37_79b9;
    move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state.to_le_bytes()
    }
}

/// A client and a server [`Protocol`] after the opening handshake.
#[derive(Debug)]
pub struct Opened {
    /// The client; the server's 101 response has been drained from its events.
    pub client: Protocol,
    /// The server; the client's request has been drained from its events.
    pub server: Protocol,
    /// What the bytes sent to the client right behind the 101 response did.
    pub client_result: Result<(), Error>,
    /// What the bytes sent to the server right behind the request did.
    pub server_result: Result<(), Error>,
    /// What the server wrote after its 101 response (answers to the early bytes).
    pub server_output: Vec<u8>,
}

/// Run the opening handshake between a client and a server with `config` (both sides), as an
/// application would: `connect_request`, `send_request`, the bytes to the server,
/// `Event::Request`, `accept`, `send_response`, the bytes back to the client.
///
/// `early_to_server` is appended to the request bytes and `early_to_client` to the response
/// bytes, as frames that arrive in the same read as the handshake.
///
/// Panics if the handshake itself fails: it is fixed and valid, so that would be a bug.
pub fn open(config: &Config, early_to_server: &[u8], early_to_client: &[u8]) -> Opened {
    let mut client = Protocol::client(config.clone());
    client.set_mask_generator(fixed_masks());
    let mut request = client.connect_request("localhost", "/");
    request.headers.insert("Sec-WebSocket-Key", KEY);
    client.send_request(&request).expect("send_request");
    let mut to_server = client.take_data_to_send();
    to_server.extend_from_slice(early_to_server);

    let mut server = Protocol::server(config.clone());
    server
        .receive_data(&to_server)
        .expect("the server rejected a valid request");
    let Some(Event::Request(received)) = server.poll_event() else {
        panic!("the server did not deliver the request");
    };
    assert_eq!(*received, request, "the request changed on the way");
    let response = server.accept(&received).expect("accept");
    let server_result = server.send_response(&response);
    let mut response_bytes = Vec::new();
    response.write(&mut response_bytes);
    let mut server_output = server.take_data_to_send();
    assert!(
        server_output.starts_with(&response_bytes),
        "the server did not send its 101 response first"
    );
    server_output.drain(..response_bytes.len());

    let mut to_client = response_bytes;
    to_client.extend_from_slice(early_to_client);
    let client_result = client.receive_data(&to_client);
    let Some(Event::Response(received)) = client.poll_event() else {
        panic!("the client did not deliver the response");
    };
    assert_eq!(*received, response, "the response changed on the way");
    assert_eq!(
        client.is_compressed(),
        config.compression.is_some(),
        "client: permessage-deflate negotiation"
    );
    assert_eq!(
        server.is_compressed(),
        config.compression.is_some(),
        "server: permessage-deflate negotiation"
    );
    if early_to_client.is_empty() {
        client_result
            .as_ref()
            .expect("the client rejected a valid response");
        assert_eq!(client.state(), State::Open);
    }
    if early_to_server.is_empty() {
        server_result.as_ref().expect("send_response");
        assert_eq!(server.state(), State::Open);
        assert!(server_output.is_empty());
    }
    Opened {
        client,
        server,
        client_result,
        server_result,
        server_output,
    }
}

/// Drains a [`Protocol`]'s events and checks each against the limits and the RFC.
#[derive(Debug)]
pub struct Checker {
    max_message: usize,
    /// In streaming mode: the size of the message in progress, and its text if it is text.
    fragments: Option<(usize, Option<Vec<u8>>)>,
    /// Number of events seen.
    pub events: usize,
}

impl Checker {
    /// A checker for a connection whose `max_message_size` is `max_message`.
    pub fn new(max_message: Option<usize>) -> Self {
        Self {
            max_message: max_message.unwrap_or(usize::MAX),
            fragments: None,
            events: 0,
        }
    }

    /// Poll every event of `protocol` and check it.
    pub fn drain(&mut self, protocol: &mut Protocol) {
        while let Some(event) = protocol.poll_event() {
            self.events += 1;
            self.check(event);
        }
    }

    fn check(&mut self, event: Event) {
        match event {
            Event::Message(message) => {
                assert!(
                    message.len() <= self.max_message,
                    "a message of {} bytes passed the limit of {}",
                    message.len(),
                    self.max_message
                );
                if message.is_text() {
                    assert!(
                        std::str::from_utf8(message.as_bytes()).is_ok(),
                        "a text message is not UTF-8"
                    );
                }
            }
            Event::Fragment(fragment) => {
                let (size, text) = match self.fragments.take() {
                    None => {
                        assert!(fragment.is_first(), "a fragment continues no message");
                        (0, fragment.is_text().then(Vec::new))
                    }
                    Some(progress) => {
                        assert!(!fragment.is_first(), "a message started inside another");
                        progress
                    }
                };
                assert_eq!(fragment.is_text(), text.is_some(), "fragment type changed");
                let size = size + fragment.data().len();
                assert!(
                    size <= self.max_message,
                    "a streamed message of {size} bytes passed the limit of {}",
                    self.max_message
                );
                let text = text.map(|mut t| {
                    t.extend_from_slice(fragment.data());
                    t
                });
                if let Ok(message) = fragment.clone().into_message()
                    && message.is_text()
                {
                    // A whole message in one piece becomes text without a second check:
                    // `Utf8Bytes::as_str` relies on the protocol's validation.
                    assert!(
                        std::str::from_utf8(message.as_bytes()).is_ok(),
                        "a whole text fragment is not UTF-8"
                    );
                }
                if fragment.is_fin() {
                    if let Some(text) = text {
                        assert!(
                            std::str::from_utf8(&text).is_ok(),
                            "a streamed text message is not UTF-8"
                        );
                    }
                } else {
                    self.fragments = Some((size, text));
                }
            }
            Event::Ping(data) | Event::Pong(data) => {
                assert!(
                    data.len() <= MAX_CONTROL_PAYLOAD,
                    "control payload too long"
                );
            }
            Event::Close(frame) => {
                assert!(
                    frame.code == CloseCode::NO_STATUS || frame.code.is_valid_on_wire(),
                    "received close code {:?} that may not be sent",
                    frame.code
                );
                assert!(frame.reason.len() <= wskit_proto::close::MAX_CLOSE_REASON);
            }
            Event::Request(_) | Event::Response(_) => {
                panic!("a handshake event after the handshake")
            }
            _ => {}
        }
    }
}
