//! permessage-deflate on receive: a server, after a handshake that negotiated compression,
//! gets a compressed (RSV1) frame whose payload is the fuzz input, then the fuzz input itself as
//! more frames, then an empty final continuation frame.
//!
//! The input's length picks the frame (so that every input is a whole deflate payload):
//! `len % 4` is 0 for a final binary frame, 1 final text, 2 binary with more to come, 3 text
//! with more to come.
//!
//! Before that, as a round trip, the input goes through `send_binary` on each side and must
//! come out of the other side unchanged, which also leaves history in the server's inflater
//! (context takeover) for the fuzz frame to refer to.
//!
//! Oracles: no panic; no message over `max_message_size` (64 KiB), whatever the compression
//! ratio; after an error the connection is closing or closed; the round trip is exact.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wskit_fuzz::{Checker, MASK, open};
use wskit_proto::frame::{OpCode, RSV1, write_frame};
use wskit_proto::{Config, Event, Message, Protocol, State};

const MAX_MESSAGE: usize = 64 << 10;

/// Send `data` from `from` to `to` as one compressed message and as a two-frame one, and check
/// that both arrive unchanged.
fn round_trip(from: &mut Protocol, to: &mut Protocol, data: &[u8]) {
    let half = data.len() / 2;
    from.send_binary(data, true).expect("send_binary");
    from.send_binary(&data[..half], false).expect("send_binary");
    from.send_continuation(&data[half..], true)
        .expect("send_continuation");
    to.receive_data(&from.take_data_to_send())
        .expect("a compressed message from our own compressor was rejected");
    for _ in 0..2 {
        match to.poll_event() {
            Some(Event::Message(Message::Binary(received))) => {
                assert!(
                    received == data,
                    "the message changed on a compressed round trip"
                );
            }
            other => panic!("expected the message back, got {other:?}"),
        }
    }
    assert_eq!(to.poll_event(), None);
}

fuzz_target!(|data: &[u8]| {
    let mut config = Config::default();
    config.limits.max_message_size = Some(MAX_MESSAGE);
    let opened = open(&config, &[], &[]);
    let (mut client, mut server) = (opened.client, opened.server);

    if data.len() <= MAX_MESSAGE {
        round_trip(&mut server, &mut client, data);
        round_trip(&mut client, &mut server, data);
    }

    let (opcode, fin) = match data.len() % 4 {
        0 => (OpCode::Binary, true),
        1 => (OpCode::Text, true),
        2 => (OpCode::Binary, false),
        _ => (OpCode::Text, false),
    };
    let mut compressed = Vec::new();
    write_frame(&mut compressed, fin, RSV1, opcode, data, Some(MASK));
    let mut end = Vec::new();
    write_frame(&mut end, true, 0, OpCode::Continuation, &[], Some(MASK));

    let mut checker = Checker::new(Some(MAX_MESSAGE));
    for bytes in [&compressed[..], data, &end[..]] {
        let result = server.receive_data(bytes);
        checker.drain(&mut server);
        let _ = server.take_data_to_send();
        if result.is_err() {
            let state = server.state();
            assert!(
                matches!(state, State::Closing | State::Closed),
                "state {state:?} after {result:?}"
            );
            break;
        }
    }
});
