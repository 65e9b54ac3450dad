//! The basics: connect, send and receive both ways, close; against both I/O layers (see
//! layers.rs), a client of the same layer as the server.

#![cfg(feature = "sync")]

use wskit::Message;

use crate::layers::{Handler, LAYERS, Opt, client_connect, start};
use crate::support::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_text_and_binary() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let ws = client_connect(layer, server.uri()).await.unwrap();
        ws.send("Hello!").await.unwrap();
        ws.send(vec![1u8, 2, 3]).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), "Hello!", "{layer:?}");
        assert_eq!(
            ws.recv().await.unwrap(),
            Message::from(vec![1u8, 2, 3]),
            "{layer:?}"
        );
        ws.close(1000, "bye").await.unwrap();
        let (messages, error) = ws.drain().await;
        assert!(
            messages.is_empty() && error.is_none(),
            "{layer:?}: a normal close ends the iteration: {error:?}"
        );
        let closed = ws.wait_closed().await;
        assert!(closed.is_ok(), "{layer:?}: {closed}");
    }
}

/// Large payloads are written from the message itself (headers and payloads in one vectored
/// write) and large reads become the input buffer: small and large messages, text and binary,
/// sent back to back so that writes end part way through, all come back whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_large_messages_interleave_byte_for_byte() {
    let pattern =
        |len: usize, seed: usize| -> Vec<u8> { (0..len).map(|i| (i * 31 + seed) as u8).collect() };
    let messages: Vec<Message> = vec![
        Message::from("small"),
        Message::from(pattern(4095, 1)),
        Message::from(pattern(4096, 2)),
        Message::from("é ü 𝄞 ".repeat(2000)),
        Message::from(pattern(70_000, 3)),
        Message::from(vec![b'x'; 3]),
        Message::from(pattern((1 << 20) - 64, 4)),
        Message::from(pattern(16 << 10, 5)),
        Message::from("end"),
    ];
    for layer in LAYERS {
        for compression in [false, true] {
            let opts = if compression {
                vec![]
            } else {
                vec![Opt::NoCompression]
            };
            let server = start(layer, Handler::Echo, &opts).await;
            let ws = client_connect(layer, server.uri()).await.unwrap();
            // All sent before any is read: the server's writes fill the socket and end part
            // way through frames, headers and payloads alike.
            let sender = ws.clone();
            let outgoing = messages.clone();
            let send_all = tokio::spawn(async move {
                for message in outgoing {
                    sender.send(message).await.unwrap();
                }
            });
            for (i, expected) in messages.iter().enumerate() {
                let got = ws.recv().await.unwrap();
                assert!(
                    got == *expected,
                    "{layer:?}: message {i} (compression {compression}): {} bytes, expected {}",
                    got.len(),
                    expected.len()
                );
            }
            within(send_all).await.unwrap();
            ws.close(1000, "").await.unwrap();
        }
    }
}
