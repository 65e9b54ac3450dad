//! What an idle connection keeps: measured with a global allocator that counts the bytes in use
//! (its own test binary, so that no other test allocates meanwhile).

use std::time::Duration;

use tokio::sync::mpsc;
use wskit::{CloseCode, Connection, Message};

#[path = "../../wskit-proto/tests/support/counting.rs"]
mod counting;
use counting::{Counting, in_use};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The tests of this binary run one at a time: each counts every allocation of the process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// After a large message has been received and dropped, the connection goes back to holding no
/// buffer for it: neither the buffer the message was read into nor a thread's read slab stays
/// behind in an empty view.
#[tokio::test(flavor = "current_thread")]
async fn an_idle_connection_keeps_nothing_of_a_large_message() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const LARGE: usize = 1 << 20;
    let (received, mut receptions) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let received = received.clone();
            async move {
                while let Ok(message) = ws.recv().await {
                    let len = message.len();
                    drop(message);
                    let _ = received.send(len);
                }
            }
        },
        "127.0.0.1:0",
    )
    .no_compression()
    .max_size(Some(2 * LARGE))
    .await
    .unwrap();
    let ws = wskit::connect(format!("ws://{}/", server.local_addr().unwrap()))
        .no_compression()
        .await
        .unwrap();
    // Warm up: every buffer that is kept on purpose (the threads' read slabs, the runtime's
    // own) exists before the baseline is taken.
    for len in [20, 20 << 10] {
        ws.send(vec![1u8; len]).await.unwrap();
        assert_eq!(receptions.recv().await, Some(len));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = in_use();

    ws.send(Message::from(vec![7u8; LARGE])).await.unwrap();
    assert_eq!(receptions.recv().await, Some(LARGE));
    // Let both drivers finish their writes and reads and go idle.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let grown = in_use() - before;
    assert!(
        grown < 64 << 10,
        "{grown} more bytes in use after a {LARGE}-byte message was received and dropped"
    );

    ws.close(CloseCode::NORMAL, "").await.unwrap();
    server.close();
    server.wait_closed().await;
}

/// A server takes back the buffers of connections that went quiet (`release_idle_buffers`),
/// and they work as before when traffic resumes.
#[tokio::test(flavor = "current_thread")]
async fn a_server_takes_back_the_buffers_of_quiet_connections() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const CLIENTS: usize = 20;
    const LEN: usize = 3000; // read and written through the connection's own buffers
    let server = wskit::serve(
        |mut ws: Connection| async move {
            while let Some(Ok(message)) = ws.next().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        },
        "127.0.0.1:0",
    )
    .no_compression()
    .release_idle_buffers(Some(Duration::from_millis(40)))
    .await
    .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(wskit::connect(&url).no_compression().await.unwrap());
    }
    let echo_all = |round: u8| {
        let clients = &clients;
        async move {
            for ws in clients {
                ws.send(vec![round; LEN]).await.unwrap();
            }
            for ws in clients {
                assert_eq!(ws.recv().await.unwrap(), Message::from(vec![round; LEN]));
            }
        }
    };
    echo_all(1).await;
    let busy = in_use();
    // Quiet for several periods: each connection's buffers are taken back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quiet = in_use();
    // The server kept a read and a write buffer of about LEN bytes per connection.
    let released = busy - quiet;
    assert!(
        released >= (CLIENTS * LEN) as isize,
        "{released} bytes released by {CLIENTS} quiet connections"
    );
    // Traffic resumes, byte for byte.
    echo_all(2).await;
    for ws in &clients {
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    }
    server.close();
    server.wait_closed().await;
}

/// A quiet compressed connection gives back its compressor's tables and history (at 12 bits and
/// memLevel 5: 8 KiB of hash table, 8 KiB of chains, up to 8 KiB of history) and keeps only its
/// two windows; with context takeover, the conversation then goes on, byte for byte, with a
/// client that released nothing. (What is kept, in bytes: wskit-proto's `compression_memory`
/// test.)
#[tokio::test(flavor = "current_thread")]
async fn a_quiet_compressed_connection_keeps_only_its_windows() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const CLIENTS: usize = 10;
    let server = wskit::serve(
        |mut ws: Connection| async move {
            while let Some(Ok(message)) = ws.next().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        },
        "127.0.0.1:0",
    )
    .release_idle_buffers(Some(Duration::from_millis(40)))
    .await
    .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        // The default offer, as browsers and Python websockets send it: context takeover.
        let ws = wskit::connect(&url).await.unwrap();
        assert!(ws.is_compressed());
        clients.push(ws);
    }
    let json = |round: usize| {
        format!(
            "{{\"round\": {round}, \"items\": [{}]}}",
            (0..40)
                .map(|i| format!("{{\"id\": {i}, \"name\": \"item {i}\", \"ok\": true}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let echo_all = |round: usize| {
        let clients = &clients;
        let text = json(round);
        async move {
            for ws in clients {
                ws.send(text.as_str()).await.unwrap();
            }
            for ws in clients {
                assert_eq!(ws.recv().await.unwrap(), text.as_str());
            }
        }
    };
    echo_all(1).await;
    echo_all(2).await;
    let busy = in_use();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quiet = in_use();
    let released = busy - quiet;
    assert!(
        released >= (CLIENTS * 16 * 1024) as isize,
        "{released} bytes released by {CLIENTS} quiet compressed connections"
    );
    // The server rebuilds both directions from the windows it kept; the clients, which
    // released nothing, still understand it and are understood. Messages that repeat the
    // previous ones refer back into those windows.
    for round in 3..6 {
        echo_all(round).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for ws in &clients {
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    }
    server.close();
    server.wait_closed().await;
}
