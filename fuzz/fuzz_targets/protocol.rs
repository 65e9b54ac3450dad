//! The whole receive path: a server and a client `Protocol`, each after an opening handshake
//! that negotiated permessage-deflate, fed the same bytes in chunks.
//!
//! The first input byte is the setup, the rest is the bytes from the peer:
//!
//! - bits 0-5: the chunk size, `n * n` bytes for `n` in 1..=63, or everything at once for 0;
//! - bit 6: streaming mode (`Event::Fragment`s instead of whole messages);
//! - bit 7: the first chunk arrives in the same read as the handshake (right behind the
//!   request on the server, right behind the 101 response on the client).
//!
//! After each chunk the events and the output are drained and checked; at the end the
//! transport ends (`receive_eof`).
//!
//! Oracles: no panic; events within the limits (see `Checker`); after an error the state is
//! Closing or Closed and later input is ignored; the output written since the handshake is
//! bounded by the input received (pongs are at most 4 bytes longer than their pings) plus one
//! close frame; the state is Closed after `receive_eof`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wskit_fuzz::{Checker, open};
use wskit_proto::{Config, Error, Limits, Protocol, State};

/// The most output an input of `len` bytes may cause: each frame of `n` bytes (at least 2)
/// answered with at most `n + 4` (a pong, or the echo of a close frame), plus one close frame
/// that fails the connection (at most 2 + 4 + 125 bytes).
fn output_bound(len: usize) -> usize {
    3 * len + 131
}

/// One side of the connection under test.
struct Side {
    name: &'static str,
    protocol: Protocol,
    checker: Checker,
    failed: bool,
    /// Bytes received and sent since the handshake.
    received: usize,
    sent: usize,
}

impl Side {
    fn new(name: &'static str, protocol: Protocol, config: &Config) -> Self {
        Self {
            name,
            protocol,
            checker: Checker::new(config.limits.max_message_size),
            failed: false,
            received: 0,
            sent: 0,
        }
    }

    /// Check what `input` (already given to the protocol, with `result`) did, and drain the
    /// output, of which `output` was already taken.
    fn after(&mut self, input_len: usize, result: Result<(), Error>, mut output: Vec<u8>) {
        let events_before = self.checker.events;
        self.checker.drain(&mut self.protocol);
        output.extend(self.protocol.take_data_to_send());
        self.received += input_len;
        self.sent += output.len();
        assert!(
            self.sent <= output_bound(self.received),
            "{}: {} bytes of output for {} bytes of input",
            self.name,
            self.sent,
            self.received
        );
        let state = self.protocol.state();
        if self.failed {
            assert_eq!(
                result,
                Ok(()),
                "{}: input after an error was not ignored",
                self.name
            );
            assert_eq!(
                self.checker.events, events_before,
                "{}: events after an error",
                self.name
            );
            assert!(output.is_empty(), "{}: output after an error", self.name);
        }
        if let Err(error) = result {
            self.failed = true;
            assert!(
                matches!(state, State::Closing | State::Closed),
                "{}: state {state:?} after {error:?}",
                self.name
            );
            assert!(
                self.protocol.error().is_some(),
                "{}: error not recorded",
                self.name
            );
        }
    }

    fn receive(&mut self, chunk: &[u8]) {
        let result = self.protocol.receive_data(chunk);
        self.after(chunk.len(), result, Vec::new());
        // An I/O layer's idle round, after chunks that start with a byte >= 0x80: buffers and
        // the compression state go (only the windows stay), whatever is in progress.
        if chunk.first().is_some_and(|&byte| byte >= 0x80) {
            self.protocol.release_buffers();
        }
    }

    /// The transport ends. An error is fine (an abnormal closure), even after an earlier one.
    fn end(&mut self) {
        let _ = self.protocol.receive_eof();
        self.checker.drain(&mut self.protocol);
        self.sent += self.protocol.take_data_to_send().len();
        assert!(
            self.sent <= output_bound(self.received),
            "{}: output after EOF",
            self.name
        );
        assert_eq!(
            self.protocol.state(),
            State::Closed,
            "{}: not closed after EOF",
            self.name
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, input)) = data.split_first() else {
        return;
    };
    let chunk_size = match usize::from(setup & 0x3f) {
        0 => input.len().max(1),
        n => n * n,
    };
    let streaming = setup & 0x40 != 0;
    let early = setup & 0x80 != 0;

    let config = Config::default().with_streaming(streaming).with_limits(
        Limits::default()
            .with_max_message_size(Some(8 << 10))
            .with_max_fragments(Some(64)),
    );

    let mut chunks = input.chunks(chunk_size);
    let first = if early {
        chunks.next().unwrap_or_default()
    } else {
        &[]
    };
    let opened = open(&config, first, first);
    let mut server = Side::new("server", opened.server, &config);
    let mut client = Side::new("client", opened.client, &config);
    if early {
        server.after(first.len(), opened.server_result, opened.server_output);
        client.after(first.len(), opened.client_result, Vec::new());
    }
    for chunk in chunks {
        server.receive(chunk);
        client.receive(chunk);
    }
    server.end();
    client.end();
});
