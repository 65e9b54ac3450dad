//! Frame parsing and whole-message receiving, wskit-proto against tungstenite in one run.
//!
//! Each iteration handles a batch of 100 masked client frames of the given payload size, as a
//! server reads them: `frame_parse` parses headers and unmasks payloads only (as the protocol
//! does with `FrameHeader::parse`); `receive` runs the whole
//! server path (frame checks, UTF-8 validation of text, message events).

use std::io::Cursor;

use bytes::{Buf, BytesMut};
use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use wskit_proto::frame::{FrameHeader, OpCode, write_frame};
use wskit_proto::mask::apply_mask;
use wskit_proto::{Config, Event, Protocol};

const BATCH: usize = 100;
const SIZES: [usize; 3] = [20, 1024, 64 << 10];

fn main() {
    divan::main();
}

/// `BATCH` masked text frames of `size` bytes each.
fn client_frames(size: usize) -> Vec<u8> {
    let payload = vec![b'x'; size];
    let mut out = Vec::new();
    for i in 0..BATCH {
        let key = [i as u8, 0x5a, 0xa5, 0x3c];
        write_frame(&mut out, true, 0, OpCode::Text, &payload, Some(key));
    }
    out
}

fn counters(size: usize) -> (BytesCount, ItemsCount) {
    (BytesCount::new(size * BATCH), ItemsCount::new(BATCH))
}

/// A server-side protocol in the OPEN state, without compression.
fn open_server() -> Protocol {
    let config = Config::default().with_compression(None);
    let mut client = Protocol::client(config.clone());
    let mut server = Protocol::server(config);
    let request = client.connect_request("localhost", "/");
    client.send_request(&request).unwrap();
    server.receive_data(&client.take_data_to_send()).unwrap();
    let Some(Event::Request(request)) = server.poll_event() else {
        unreachable!()
    };
    let response = server.accept(&request).unwrap();
    server.send_response(&response).unwrap();
    server.take_data_to_send();
    server
}

mod frame_parse {
    use super::*;

    #[divan::bench(args = SIZES)]
    fn wskit(bencher: Bencher<'_, '_>, size: usize) {
        let bytes = client_frames(size);
        let (b, n) = counters(size);
        bencher
            .counter(b)
            .counter(n)
            .with_inputs(|| BytesMut::from(&bytes[..]))
            .bench_local_values(|mut buf| {
                // What the protocol does per frame: parse the header, unmask the payload in
                // place, split it off.
                while let Some((header, header_len)) = FrameHeader::parse(&buf).unwrap() {
                    buf.advance(header_len);
                    let mut payload = buf.split_to(header.payload_len as usize);
                    if let Some(key) = header.mask {
                        apply_mask(&mut payload, key, 0);
                    }
                    black_box((header, payload.freeze()));
                }
            });
    }

    #[divan::bench(args = SIZES)]
    fn tungstenite(bencher: Bencher<'_, '_>, size: usize) {
        let bytes = client_frames(size);
        let (b, n) = counters(size);
        bencher
            .counter(b)
            .counter(n)
            .with_inputs(|| {
                tungstenite::protocol::frame::FrameSocket::new(Cursor::new(bytes.clone()))
            })
            .bench_local_values(|mut socket| {
                while let Ok(Some(frame)) = socket.read(None) {
                    black_box(frame);
                }
            });
    }
}

mod receive {
    use super::*;

    #[divan::bench(args = SIZES)]
    fn wskit(bencher: Bencher<'_, '_>, size: usize) {
        let bytes = client_frames(size);
        let (b, n) = counters(size);
        let mut server = open_server();
        bencher.counter(b).counter(n).bench_local(|| {
            server.receive_data(black_box(&bytes)).unwrap();
            let mut count = 0;
            while let Some(event) = server.poll_event() {
                black_box(event);
                count += 1;
            }
            assert_eq!(count, BATCH);
        });
    }

    #[divan::bench(args = SIZES)]
    fn tungstenite(bencher: Bencher<'_, '_>, size: usize) {
        use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
        let bytes = client_frames(size);
        let (b, n) = counters(size);
        let config = WebSocketConfig::default();
        bencher
            .counter(b)
            .counter(n)
            .with_inputs(|| {
                WebSocket::from_raw_socket(Cursor::new(bytes.clone()), Role::Server, Some(config))
            })
            .bench_local_values(|mut ws| {
                for _ in 0..BATCH {
                    black_box(ws.read().unwrap());
                }
                ws
            });
    }
}

mod serialize {
    use super::*;

    #[divan::bench(args = SIZES)]
    fn wskit(bencher: Bencher<'_, '_>, size: usize) {
        let payload = vec![b'x'; size];
        let (b, n) = counters(size);
        let mut out = Vec::with_capacity((size + 14) * BATCH);
        bencher.counter(b).counter(n).bench_local(|| {
            out.clear();
            for _ in 0..BATCH {
                write_frame(&mut out, true, 0, OpCode::Text, black_box(&payload), None);
            }
        });
    }

    #[divan::bench(args = SIZES)]
    fn tungstenite(bencher: Bencher<'_, '_>, size: usize) {
        use tungstenite::protocol::frame::Frame as TFrame;
        use tungstenite::protocol::frame::coding::{Data, OpCode as TOpCode};
        let payload = bytes::Bytes::from(vec![b'x'; size]);
        let (b, n) = counters(size);
        let mut out = Vec::with_capacity((size + 14) * BATCH);
        bencher.counter(b).counter(n).bench_local(|| {
            out.clear();
            for _ in 0..BATCH {
                let frame = TFrame::message(payload.clone(), TOpCode::Data(Data::Text), true);
                frame.format(&mut out).unwrap();
            }
        });
    }
}
