//! The basics: connect, send and receive both ways, close.

use wskit::{CloseCode, Message};

use crate::support::{echo, uri, within};

#[tokio::test]
async fn echo_text_and_binary() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    ws.send("Hello!").await.unwrap();
    ws.send(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("Hello!"));
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from(vec![1u8, 2, 3])
    );
    within(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    assert!(
        within(ws.next()).await.is_none(),
        "a normal close ends the iteration"
    );
    let closed = ws.wait_closed().await;
    assert!(closed.is_ok(), "{closed}");
    server.close();
    within(server.wait_closed()).await;
}

/// Large payloads are written from the message itself (headers and payloads in one vectored
/// write) and large reads become the input buffer: small and large messages, text and binary,
/// sent back to back so that writes end part way through, all come back whole and in order.
#[tokio::test]
async fn small_and_large_messages_interleave_byte_for_byte() {
    for compression in [false, true] {
        let server = if compression {
            wskit::serve(echo, "127.0.0.1:0").await.unwrap()
        } else {
            wskit::serve(echo, "127.0.0.1:0")
                .no_compression()
                .await
                .unwrap()
        };
        let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
        let pattern = |len: usize, seed: usize| -> Vec<u8> {
            (0..len).map(|i| (i * 31 + seed) as u8).collect()
        };
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
        // All sent before any is read: the server's writes fill the socket and end part way
        // through frames, headers and payloads alike.
        let sender = ws.clone();
        let outgoing = messages.clone();
        let send_all = tokio::spawn(async move {
            for message in outgoing {
                sender.send(message).await.unwrap();
            }
        });
        for (i, expected) in messages.iter().enumerate() {
            let got = within(ws.recv()).await.unwrap();
            assert!(
                got == *expected,
                "message {i} (compression {compression}): {} bytes, expected {}",
                got.len(),
                expected.len()
            );
        }
        within(send_all).await.unwrap();
        within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
        server.close();
        within(server.wait_closed()).await;
    }
}
