//! What permessage-deflate costs a server connection in memory: the bytes in use, counted by a
//! global allocator (this test binary has one test, so nothing else allocates meanwhile), busy
//! (after messages both ways, with context takeover) and idle (after `release_buffers`). The
//! cost of compression is the difference with the same conversation uncompressed.

use wskit_proto::{Config, Event, Message, Protocol};

mod support;
use support::counting::{Counting, in_use};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A client and a server after the handshake, with the default configuration (compression as
/// browsers and Python websockets offer it: context takeover both ways, 12-bit windows; the
/// client at level 6) or without compression.
fn pair(compression: bool) -> (Protocol, Protocol) {
    let config = if compression {
        Config::default()
    } else {
        Config::default().with_compression(None)
    };
    // The client compresses at level 6, as zlib's default does: blocks with codes of their own,
    // whose decoding tables the server keeps while busy (the worst case).
    let client_config = match &config.compression {
        Some(deflate) => config
            .clone()
            .with_compression(Some(deflate.clone().with_compression_level(6))),
        None => config.clone(),
    };
    let mut client = Protocol::client(client_config);
    let mut server = Protocol::server(config);
    let request = client.connect_request("localhost", "/");
    client.send_request(&request).unwrap();
    server.receive_data(&client.take_data_to_send()).unwrap();
    let Some(Event::Request(request)) = server.poll_event() else {
        panic!("no request")
    };
    let response = server.accept(&request).unwrap();
    server.send_response(&response).unwrap();
    client.receive_data(&server.take_data_to_send()).unwrap();
    assert!(matches!(client.poll_event(), Some(Event::Response(_))));
    assert_eq!(server.is_compressed(), compression);
    (client, server)
}

/// About 1 KiB of JSON, different for each `seed`.
fn json(seed: u64) -> String {
    let mut text = String::from("[");
    let mut x = seed;
    while text.len() < 1000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        text.push_str(&format!(
            r#"{{"symbol":"S{}","bid":{}.{},"size":{}}},"#,
            x % 53,
            (x >> 20) % 1000,
            (x >> 40) % 100,
            (x >> 30) % 5000
        ));
    }
    text.push_str("{}]");
    text
}

/// The bytes a server's own calls keep: the sum of the changes in use across them.
struct Server {
    protocol: Protocol,
    kept: isize,
    /// Where the server's output is copied to, allocated once, outside the count.
    out: Vec<u8>,
}

impl Server {
    fn run<T>(&mut self, f: impl FnOnce(&mut Protocol, &mut Vec<u8>) -> T) -> T {
        let before = in_use();
        let result = f(&mut self.protocol, &mut self.out);
        self.kept += in_use() - before;
        result
    }

    /// Receive `frame`, echo the message it holds; the echo's frame, in `out`.
    fn echo(&mut self, frame: &[u8]) {
        self.run(|server, out| {
            server.receive_data(frame).unwrap();
            let Some(Event::Message(message)) = server.poll_event() else {
                panic!("no message")
            };
            server.send_message(&message).unwrap();
            drop(message);
            out.clear();
            out.extend_from_slice(server.data_to_send());
            let n = out.len();
            server.consume_data_to_send(n);
        });
    }
}

/// `count` echoes of different messages; the server's kept bytes after the conversation and
/// after `release_buffers`, and the size of the last echo's frame.
fn converse(compression: bool, count: u64) -> (isize, isize, usize) {
    let (mut client, protocol) = pair(compression);
    let mut server = Server {
        protocol,
        kept: 0,
        out: Vec::with_capacity(64 << 10),
    };
    let mut last_frame = 0;
    for seed in 0..count {
        let text = json(seed);
        client.send_text(text.as_bytes(), true).unwrap();
        let frame = client.take_data_to_send();
        server.echo(&frame);
        last_frame = server.out.len();
        client.receive_data(&server.out).unwrap();
        assert_eq!(
            client.poll_event(),
            Some(Event::Message(Message::from(text.as_str())))
        );
    }
    let busy = server.kept;
    server.run(|server, _| server.release_buffers());
    let idle = server.kept;

    // After the release, the conversation goes on with a client that released nothing; a
    // message sent before refers back into the window the server kept.
    let text = json(count - 1);
    client.send_text(text.as_bytes(), true).unwrap();
    let frame = client.take_data_to_send();
    server.echo(&frame);
    client.receive_data(&server.out).unwrap();
    assert_eq!(
        client.poll_event(),
        Some(Event::Message(Message::from(text.as_str())))
    );
    if compression {
        assert!(
            server.out.len() < last_frame / 4,
            "a repeated message after the release: {} bytes, the first time {last_frame}",
            server.out.len()
        );
    }
    (busy, idle, last_frame)
}

/// Busy, a compressed connection keeps at most zlib's formula for 12-bit windows and
/// memLevel 5 (`(1 << 14) + (1 << 14)` for deflate, `1 << 12` plus about 7 KiB for inflate:
/// 43 KiB); idle, its two 4 KiB windows.
#[test]
fn a_compressed_connection_costs_less_than_zlibs_formula_busy_and_its_windows_idle() {
    // Twenty 1 KiB messages each way fill both 4 KiB windows and the compressor's history.
    let (plain_busy, plain_idle, plain_frame) = converse(false, 20);
    let (busy, idle, frame) = converse(true, 20);
    let (busy_cost, idle_cost) = (busy - plain_busy, idle - plain_idle);
    eprintln!(
        "uncompressed: {plain_busy} B busy, {plain_idle} B idle ({plain_frame} B frames); \
         compressed: {busy} B busy, {idle} B idle ({frame} B frames); compression's cost: \
         {busy_cost} B busy, {idle_cost} B idle"
    );
    assert!(frame < plain_frame / 2, "{frame} B against {plain_frame} B");
    assert!(busy_cost <= 43 * 1024, "{busy_cost} B busy");
    assert!(idle_cost <= 2 * 4096, "{idle_cost} B idle");
}
